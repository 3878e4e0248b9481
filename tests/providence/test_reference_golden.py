"""Golden traces of the reference engine: §19.2 and Appendix A of providence.md, every column."""

from __future__ import annotations

import json

import pytest

from ttt.providence import reference as ref

T0 = 1_700_000_000.0


def test_section_19_2_example() -> None:
    p = ref.sample_params(42, "BTC/USDC:USDC", 40.0)
    s = ref.new_state(p, start_time=T0, start_balance=p["virtual_balance"])
    s, r = ref.step(s, now=1_700_000_005.0, price=100_000.0, volatility=600.0, weight=0.2)
    assert r.status == "continue" and r.entropy == 1.0


# k → status, trade, pos, balance, apr, apr_change (after), apr_last (after), entropy
APPENDIX_A = {
    1: ("continue", 0.0, 0, 7000.0, 0.0, 0, 0.0, 1.0),
    2: ("continue", 0.0, 0, 7000.0, 0.0, 0, 0.0, 1.0),
    3: ("continue", 0.0, 0, 7000.0, 0.0, 0, 0.0, 1.0),
    4: ("continue", 0.0, 0, 7000.0, 0.0, 0, 0.0, 1.0),
    5: ("continue", 0.0, 0, 7000.0, 0.0, 0, 0.0, 1.0),
    6: ("continue", 4.5936154365535494e-07, 1, 6999.999963251076, 0.0, 0, 0.0, 0.0),
    7: ("continue", 0.0, 1, 7000.000192931849, 0.02485020169394651, 0, 0.00355002881342093, 0.0),
    8: (
        "continue",
        0.0,
        1,
        6999.999871378768,
        -0.014495950919800505,
        -5.083333314084205,
        0.0012942813467682506,
        0.0,
    ),
}


def appendix_params() -> dict[str, object]:
    p = dict(ref.sample_params(42, "BTC/USDC:USDC", 40.0))
    p["volatility_entropy_window_minutes"] = 1
    p["volatility_entropy_window_samples"] = 5
    return p


def appendix_price(k: int) -> float:
    return 100_000.0 if k <= 6 else (100_500.0 if k == 7 else 99_800.0)


@pytest.mark.parametrize("json_between_steps", [False, True])
def test_appendix_a_trace(json_between_steps: bool) -> None:
    s = ref.new_state(appendix_params(), T0, 7000)
    for k in range(1, 9):
        if json_between_steps:
            s = json.loads(json.dumps(s))
        s, r = ref.step(s, T0 + 5 * k, appendix_price(k), 600.0, 0.2)
        status, trade, pos, balance, apr, apr_change, apr_last, entropy = APPENDIX_A[k]
        assert r.status == status, k
        assert r.reason is None, k
        assert r.trade == trade, k
        assert r.position_direction == pos == s["position_direction"], k
        assert r.balance == balance, k
        assert r.apr == apr, k
        assert s["apr_change"] == apr_change, k
        assert s["apr_last"] == apr_last, k
        assert r.entropy == entropy, k
        assert s["iteration_count"] == k
    assert s["voms_state"] == {
        "starting_balance": 7000,
        "leverage": 40.0,
        "fee_rate": 0.0004,
        "current_price": 99800.0,
        "trades": [[100000.0, 4.5936154365535494e-07]],
    }
    assert list(s["voms_state"]) == ["starting_balance", "leverage", "fee_rate", "current_price", "trades"]


def test_appendix_a_trade_size_is_the_spec_formula() -> None:
    p = appendix_params()
    q = (((7000.0 * p["pos_weight"]) / 100_000.0) * p["pos_scaler"]) / p["balance_divisor"]  # type: ignore[operator]
    assert q == 4.5936154365535494e-07
