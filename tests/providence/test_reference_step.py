"""Branches of the §5 step (providence.md), on constructed states with hand-computed expectations."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest

from ttt.providence import reference as ref

from .reference_support import B0, NOW, apr_at, base_params, book, make_state, unit_size

SIGMA = 0.5


# ---------------------------------------------------------------- new_state


def test_new_state_keys_and_initial_values() -> None:
    p = base_params()
    s = ref.new_state(p, 5.0, 1000)
    assert list(s) == list(ref.STATE_KEYS)
    assert s == {
        "start_time": 5.0,
        "start_balance": 1000.0,
        "symbol": "BTC/USDC:USDC",
        "ann_params": p,
        "weights": [],
        "weights_timestamp": [],
        "aprs": [],
        "aprs_timestamp": [],
        "position_direction": 0,
        "apr_change": 0,
        "apr_last": 0,
        "voms_state": None,
        "iteration_count": 0,
    }
    p["leverage"] = 99.0
    assert s["ann_params"]["leverage"] == 10.0


@pytest.mark.parametrize(
    ("params", "balance"),
    [
        (base_params(), 0.0),
        (base_params(), -1.0),
        (base_params(), math.inf),
        (base_params(leverage=0.0), 1000.0),
        (base_params(leverage=-2.0), 1000.0),
        ({"symbol": "X"}, 1000.0),
    ],
)
def test_new_state_rejects_runs_that_would_error_for_ever(params: dict[str, Any], balance: float) -> None:
    with pytest.raises(ValueError):
        ref.new_state(params, 0.0, balance)


# ---------------------------------------------------------------- S4 / S5 skipped ticks


@pytest.mark.parametrize("price", [None, math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_unavailable_price_returns_the_identical_state(price: float | None) -> None:
    state = make_state(pos=2, apr_last=0.25)
    state["voms_state"] = book(price=100.0, fee=0.0004)
    snapshot = copy.deepcopy(state)
    s, r = ref.step(state, NOW, price, None, 0.5)
    assert state == snapshot
    assert s == snapshot
    assert s is not state and s["weights"] is not state["weights"]
    assert s["voms_state"] is not state["voms_state"]
    # Balance of the untouched book at its stored price: 1000 + (100 − 100 − 0.08).
    assert r == ref.StepResult("skipped", "price_unavailable", 0.0, 2, 1000.0 + (0.0 - 0.08), None, None)


@pytest.mark.parametrize("sigma", [None, math.nan, math.inf, -1e-9])
def test_unavailable_volatility_returns_the_identical_state(sigma: float | None) -> None:
    state = make_state(pos=-1, voms_state=None)
    snapshot = copy.deepcopy(state)
    s, r = ref.step(state, NOW, 100.0, sigma, 0.5)
    assert state == snapshot and s == snapshot
    assert r == ref.StepResult("skipped", "volatility_unavailable", 0.0, -1, B0, None, None)


def test_zero_volatility_is_available() -> None:
    _, r = ref.step(make_state(), NOW, 100.0, 0.0, 0.5)
    assert r.status == "continue"


# ---------------------------------------------------------------- S3 max duration


@pytest.mark.parametrize("price", [200.0, None])
def test_max_duration_uses_the_stored_price(price: float | None) -> None:
    state = make_state(pos=1, max_duration=100, start_time=NOW - 100.5)
    state["voms_state"] = book(price=100.0, fee=0.0004)
    snapshot = copy.deepcopy(state)
    s, r = ref.step(state, NOW, price, None, 0.5)
    assert state == snapshot
    assert (r.status, r.reason, r.trade, r.apr, r.entropy) == ("completed", "max_duration", 0.0, None, None)
    assert r.balance == 1000.0 + (((1.0 * 100.0) - 100.0) - 0.08)
    assert s["voms_state"] == book(price=100.0, fee=0.0004)
    assert s["iteration_count"] == 8
    assert s["weights"] == state["weights"] and s["aprs"] == []


def test_max_duration_is_strict_and_fresh_runs_serialise_an_empty_book() -> None:
    state = make_state(voms_state=None, max_duration=100, start_time=0.0)
    state["weights_timestamp"] = [90.0, 95.0, 99.0]
    _, r = ref.step(state, 100.0, 100.0, SIGMA, 0.5)
    assert r.reason != "max_duration"
    s, r = ref.step(state, 100.25, None, None, 0.5)
    assert (r.status, r.reason, r.balance) == ("completed", "max_duration", B0)
    assert s["voms_state"] == {
        "starting_balance": B0,
        "leverage": 10.0,
        "fee_rate": 0.0004,
        "current_price": 0.0,
        "trades": [],
    }


# ---------------------------------------------------------------- S7–S11


def test_apr_formula_and_change_against_negative_mean() -> None:
    state = make_state(apr_last=-2.0, machine_vision_entropy_max=0.0)
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    apr = (((1010.0 - 1000.0) / (NOW / 3600)) * 24 * 365.24) / 1000.0
    assert r.apr == apr == apr_at(110.0)
    assert s["apr_change"] == ((apr - -2.0) / -2.0) * -1
    assert s["apr_last"] == apr / 1


def test_apr_is_zero_when_d_is_not_positive() -> None:
    state = make_state(start_time=NOW, machine_vision_entropy_max=0.0)
    _, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert r.apr == 0.0


def test_rolling_mean_strict_window_and_pruning() -> None:
    r_min = 2
    state = make_state(rolling_apr_minutes=r_min, machine_vision_entropy_max=0.0)
    state["aprs"] = [9.0, 1.0, 2.0, 4.0]
    # Ages: 3 min (pruned: before now − 3 min? no, equal → kept), 2 min (not < 2: out of the mean),
    # 119 s, 30 s.
    state["aprs_timestamp"] = [NOW - 180, NOW - 120, NOW - 119, NOW - 30]
    state["weights"] = [0.5, 0.5, 0.5, 0.5]
    state["weights_timestamp"] = [NOW - 121, NOW - 120, NOW - 60, NOW - 5]
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    apr = apr_at(110.0)
    assert s["apr_last"] == (((0.0 + 2.0) + 4.0) + apr) / 3
    # ca = now − (R + 1)·60 = now − 180: the entry at exactly the cutoff is kept.
    assert s["aprs_timestamp"] == [NOW - 180, NOW - 120, NOW - 119, NOW - 30, NOW]
    # cw = now − (W + 1)·60 = now − 120: the entry at now − 121 is pruned, now − 120 kept.
    assert s["weights_timestamp"] == [NOW - 120, NOW - 60, NOW - 5, NOW]
    assert s["weights"] == [0.5, 0.5, 0.5, 0.5]
    assert r.apr == apr


def test_pruning_happens_only_when_the_first_entry_is_old() -> None:
    state = make_state(machine_vision_entropy_max=0.0)
    state["weights"] = [0.1, -0.2]
    state["weights_timestamp"] = [NOW - 120, NOW - 200]  # first entry not < cutoff: nothing pruned
    s, _ = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert s["weights_timestamp"] == [NOW - 120, NOW - 200, NOW]


# ---------------------------------------------------------------- S12 APR target


def test_apr_target_exit_before_entropy() -> None:
    # σ/P = 0.5/110 lies in [0.002, 0.01]: G by §6, threshold apr_target × G.
    apr = apr_at(110.0)
    g = ref.volatility_goal(SIGMA, 110.0, 0.002, 0.01, 0.5, 5)
    target = 0.5 * apr / g
    assert apr > target * g
    state = make_state(pos=1, apr_target=target)
    snapshot = copy.deepcopy(state)
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert state == snapshot
    assert (r.status, r.reason, r.trade, r.apr, r.entropy) == ("completed", "apr_target", 0.0, apr, None)
    assert s["voms_state"]["current_price"] == 110.0
    assert r.balance == 1010.0
    assert s["weights"][-1] == 0.5 and s["aprs"][-1] == apr


def test_apr_target_is_strict() -> None:
    apr = apr_at(110.0)
    g = ref.volatility_goal(SIGMA, 110.0, 0.002, 0.01, 0.5, 5)
    target = apr / g
    if target * g != apr:
        pytest.skip("apr / g × g is not exact for these values")
    _, r = ref.step(make_state(pos=1, apr_target=target), NOW, 110.0, SIGMA, 0.5)
    assert r.reason != "apr_target"


# ---------------------------------------------------------------- S13 / S14 gate, reversal, margin, cap


def test_entropy_gate_is_strict_and_blocks_everything() -> None:
    state = make_state(pos=0, machine_vision_entropy_max=0.0, max_direction_reversal=0)
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert (r.status, r.reason, r.entropy, r.trade) == ("continue", None, 0.0, 0.0)
    assert s["position_direction"] == 0


def test_too_few_samples_give_entropy_one() -> None:
    state = make_state(volatility_entropy_window_samples=4, machine_vision_entropy_max=1.0)
    _, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)  # 4 samples, not > 4
    assert (r.entropy, r.trade) == (1.0, 0.0)


def test_reversal_exit_is_strict_and_applies_to_runs_that_never_traded() -> None:
    _, r = ref.step(make_state(voms_state=None, max_direction_reversal=NOW), NOW, 100.0, SIGMA, 0.5)
    assert r.reason is None and r.trade == unit_size(100.0)
    s, r = ref.step(make_state(voms_state=None, max_direction_reversal=NOW - 0.5), NOW, 100.0, SIGMA, 0.5)
    assert (r.status, r.reason, r.apr, r.entropy, r.balance) == ("completed", "reversal", 0.0, 0.0, B0)
    assert s["voms_state"]["trades"] == [] and s["voms_state"]["current_price"] == 100.0


def test_margin_limit_does_not_refresh_voms_state() -> None:
    state = make_state(pos=2, apr_last=1.0, max_cross_margin_ratio=0.0)
    snapshot = copy.deepcopy(state)
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert state == snapshot
    assert (r.status, r.reason, r.trade, r.position_direction) == ("continue", "margin_limit", 0.0, 2)
    assert r.apr == apr_at(110.0) and r.entropy == 0.0
    assert s["voms_state"] == snapshot["voms_state"]  # current_price still 100
    assert r.balance == 1000.0  # balance of the returned (old) book, not 1010
    assert s["iteration_count"] == 8
    assert s["weights_timestamp"][-1] == NOW and s["aprs"] == [apr_at(110.0)]
    assert s["apr_change"] == (apr_at(110.0) - 1.0) / 1.0


def test_margin_ratio_is_strict_and_uses_pre_trade_metrics() -> None:
    # margin_used = |100| / 10 = 10, B = 1010: a limit equal to the ratio lets the add through.
    state = make_state(pos=2, apr_last=1.0, max_cross_margin_ratio=10.0 / 1010.0)
    s, r = ref.step(state, NOW, 110.0, SIGMA, 0.5)
    assert r.reason is None and s["position_direction"] == 3


def test_margin_check_needs_a_book() -> None:
    # No trades: ratio 0, so even a zero limit does not stop the add (APR = 0, A = −1 → ac = 1 > 0).
    state = make_state(pos=2, apr_last=-1.0, voms_state=None, max_cross_margin_ratio=0.0)
    s, r = ref.step(state, NOW, 100.0, SIGMA, 0.5)
    assert r.reason is None and s["position_direction"] == 3


def test_reducing_is_not_margin_checked() -> None:
    state = make_state(pos=2, apr_last=0.0, prior_weight=-0.5, max_cross_margin_ratio=0.0)
    s, r = ref.step(state, NOW, 90.0, SIGMA, -0.5)
    assert r.reason is None and s["position_direction"] == 1


@pytest.mark.parametrize(
    ("pos", "w", "price", "apr_last", "expected"),
    [
        (2, 0.5, 110.0, 1.0, 2),  # add at the cap: blocked
        (1, 0.5, 110.0, 1.0, 2),  # add below the cap: allowed
        (2, -0.5, 90.0, 0.0, 1),  # reduce at the cap: allowed (R6)
        (-2, 0.5, 100.0, 0.0, -1),  # reduce from the short cap: allowed (R6)
        (-2, -0.5, 110.0, 1.0, -2),  # short add at the cap: blocked
        (5, -0.5, 90.0, 0.0, 4),  # above a lowered cap: still unwinds
    ],
)
def test_cap_blocks_only_trades_that_grow_the_position(
    pos: int, w: float, price: float, apr_last: float, expected: int
) -> None:
    state = make_state(pos=pos, apr_last=apr_last, prior_weight=w)
    s, r = ref.step(state, NOW, price, SIGMA, w, {"max_position_direction": 2})
    assert r.reason is None
    assert s["position_direction"] == r.position_direction == expected


def test_flat_run_opens_under_cap_one() -> None:
    s, _ = ref.step(make_state(voms_state=None), NOW, 100.0, SIGMA, 0.5, {"max_position_direction": 1})
    assert s["position_direction"] == 1


# ---------------------------------------------------------------- input rules


@pytest.mark.parametrize("w", [1.5, -1.0000001, math.nan, math.inf, True, "0.5", None])
def test_bad_weight_raises(w: Any) -> None:
    with pytest.raises(ValueError, match="weight"):
        ref.step(make_state(), NOW, 100.0, SIGMA, w)


@pytest.mark.parametrize("now", [math.nan, math.inf, NOW - 6, None])
def test_bad_now_raises(now: Any) -> None:
    with pytest.raises(ValueError, match="now"):
        ref.step(make_state(), now, 100.0, SIGMA, 0.5)


def test_now_before_a_stored_apr_timestamp_raises() -> None:
    state = make_state()
    state["aprs"], state["aprs_timestamp"] = [1.0], [NOW + 1]
    with pytest.raises(ValueError, match="aprs_timestamp"):
        ref.step(state, NOW, 100.0, SIGMA, 0.5)


def test_bad_inputs_raise_even_when_the_tick_would_be_skipped() -> None:
    with pytest.raises(ValueError):
        ref.step(make_state(), NOW, None, None, 2.0)
    with pytest.raises(ValueError, match="price"):
        ref.step(make_state(), NOW, "100", SIGMA, 0.5)
    with pytest.raises(ValueError, match="max_position_direction"):
        ref.step(make_state(), NOW, 100.0, SIGMA, 0.5, {"max_position_direction": 0})


def test_now_equal_to_the_last_timestamp_and_bounds_of_w_are_accepted() -> None:
    state = make_state()
    state["weights_timestamp"][-1] = NOW
    for w in (-1.0, 1.0, 0):
        s, r = ref.step(state, NOW, 100.0, SIGMA, w)
        assert r.status == "continue"
        assert isinstance(s["weights"][-1], float)


# ---------------------------------------------------------------- JSON round trip


def _run_sequence(json_every: int | None) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(20240601)
    cfg = {"max_position_direction": 3}
    states = []
    for seed in range(6):
        p = ref.sample_params(seed, "ETH/USDC:USDC", 20.0)
        p.update(
            volatility_entropy_window_minutes=1,
            volatility_entropy_window_samples=2,
            machine_vision_entropy_max=1.01,
        )
        states.append(ref.new_state(p, NOW - 10, 500.0))
    # Constructed runs that reach margin_limit and the cap (see reference_support).
    gate_open = {"machine_vision_entropy_max": 1.01}
    states.append(make_state(pos=2, apr_last=1.0, max_cross_margin_ratio=0.0, **gate_open))
    states.append(make_state(pos=3, apr_last=1.0, **gate_open))
    states.append(make_state(pos=-3, apr_last=1.0, system_swing=True, **gate_open))
    out: list[tuple[Any, ...]] = []
    t = NOW
    price = 110.0
    done = [False] * len(states)
    for tick in range(300):
        t += float(rng.integers(0, 8))
        drift = 0.002 if (tick // 60) % 2 == 0 else -0.002
        price = price * (1 + drift + float(rng.normal(0, 0.003)))
        p_in: float | None = None if rng.random() < 0.05 else price
        sigma: float | None = None if rng.random() < 0.03 else 0.8
        w = float(rng.choice([-0.5, -0.1, 0.0, 0.2, 0.6, 0.6]))
        for i, st in enumerate(states):
            if done[i]:
                continue
            if json_every is not None and tick % json_every == 0:
                st = json.loads(json.dumps(st, allow_nan=False))
            st, r = ref.step(st, t, p_in, sigma, w, cfg)
            states[i] = st
            done[i] = r.status == "completed"
            out.append((i, r, json.dumps(st, allow_nan=False)))
    return out


def test_json_round_trip_gives_identical_subsequent_steps() -> None:
    plain = _run_sequence(None)
    round_tripped = _run_sequence(1)
    assert plain == round_tripped
    trades = [r.trade for _, r, _ in plain if r.trade != 0.0]
    reasons = {r.reason for _, r, _ in plain}
    assert len(trades) > 10
    assert {"price_unavailable", "volatility_unavailable", "margin_limit"} <= reasons


def test_state_missing_keys_is_named() -> None:
    state = make_state()
    del state["aprs_timestamp"]
    with pytest.raises(ValueError, match="aprs_timestamp"):
        ref.step(state, NOW, 100.0, SIGMA, 0.5)
