"""`Population` API (providence.md §19.3) and the spec's worked examples run through the vectorised engine.

Golden values are the spec's: Appendix A (golden trace), §14.3 E1 and §16.5 (shared history, a run joining
part-way). Behavioural parity on large corpora lives in test_population_parity.py.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest

from ttt.providence import reference as ref
from ttt.providence.population import Population, StepBatch

SYMBOL = "BTC/USDC:USDC"
T0 = 1_700_000_000.0


def params(**overrides: Any) -> dict[str, Any]:
    p = ref.sample_params(42, SYMBOL, 40.0)
    p.update(overrides)
    return p


def quiet_params(**overrides: Any) -> dict[str, Any]:
    """A run that never exits within these tests and never trades (gate closed: Hmax = 0)."""
    quiet: dict[str, Any] = {
        "max_duration": 10**9,
        "max_direction_reversal": 10**9,
        "apr_target": 1e12,
        "machine_vision_entropy_max": 0.0,
    }
    quiet.update(overrides)
    return params(**quiet)


# ---------------------------------------------------------------------------------------------- golden


def test_appendix_a_golden_trace() -> None:
    state = ref.new_state(
        params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=5), T0, 7000
    )
    pop = Population.from_states(SYMBOL, {1: state})
    prices = [100000.0] * 6 + [100500.0, 99800.0]
    rows = []
    for k, price in enumerate(prices, start=1):
        r = pop.step(T0 + 5 * k, price, 600.0, 0.2).as_step_results()[1]
        st = pop.to_states([1])[1]
        rows.append((r, st))
    for k in range(1, 6):
        r, st = rows[k - 1]
        assert (r.status, r.reason, r.trade, r.position_direction) == ("continue", None, 0.0, 0)
        assert (r.balance, r.apr, r.entropy) == (7000.0, 0.0, 1.0)
        assert st["apr_change"] == 0 and st["apr_last"] == 0.0
    r6, st6 = rows[5]
    assert (r6.trade, r6.position_direction, r6.balance) == (4.5936154365535494e-07, 1, 6999.999963251076)
    assert (r6.apr, r6.entropy, st6["apr_change"], st6["apr_last"]) == (0.0, 0.0, 0, 0.0)
    r7, st7 = rows[6]
    assert (r7.trade, r7.position_direction, r7.balance) == (0.0, 1, 7000.000192931849)
    assert (r7.apr, r7.entropy) == (0.02485020169394651, 0.0)
    assert (st7["apr_change"], st7["apr_last"]) == (0, 0.00355002881342093)
    r8, st8 = rows[7]
    assert (r8.status, r8.trade, r8.position_direction, r8.balance) == ("continue", 0.0, 1, 6999.999871378768)
    assert (r8.apr, r8.entropy) == (-0.014495950919800505, 0.0)
    assert (st8["apr_change"], st8["apr_last"]) == (-5.083333314084205, 0.0012942813467682506)
    assert st8["voms_state"] == {
        "starting_balance": 7000,
        "leverage": 40.0,
        "fee_rate": 0.0004,
        "current_price": 99800.0,
        "trades": [[100000.0, 4.5936154365535494e-07]],
    }


E1_WEIGHTS = [-0.0667, -0.0667, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, -0.0333, -0.0333, -0.0333, 0.0, 0.0, 0.0]
E1_TIMES = [9935.0 + 5 * g for g in range(14)]


def test_shared_history_example_16_5_and_e1() -> None:
    """§16.5: run A (member since g = 0), run B (joined at g = 6), now = 10000; E1 (§14.3) at S = 11 / 12."""
    a11 = ref.new_state(
        quiet_params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=11), 9000.0, 7000
    )
    a12 = ref.new_state(
        quiet_params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=12), 9000.0, 7000
    )
    pop = Population.from_states(SYMBOL, {1: a11, 2: a12})
    for g, (t, w) in enumerate(zip(E1_TIMES, E1_WEIGHTS, strict=True)):
        if g == 6:
            b = ref.new_state(
                quiet_params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=5),
                9000.0,
                7000,
            )
            pop.add_runs({3: b})
        batch = pop.step(t, 100000.0, 600.0, w)
    h = dict(zip(batch.run_ids.tolist(), batch.entropy.tolist(), strict=True))
    assert h[1] == 0.35665047157556895
    assert h[2] == 1.0
    assert h[3] == 0.4841962570206112


def test_non_conforming_run_gets_the_normative_entropy() -> None:
    """§16.6: a run whose stored weights are not the shared history's still gets §14.2 on its own lists."""
    shared = ref.new_state(
        quiet_params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=3), 9000.0, 7000
    )
    pop = Population.from_states(SYMBOL, {1: shared})
    for t, w in zip(E1_TIMES[:8], E1_WEIGHTS[:8], strict=True):
        pop.step(t, 100000.0, 600.0, w)
    own = ref.new_state(
        quiet_params(volatility_entropy_window_minutes=1, volatility_entropy_window_samples=3), 9000.0, 7000
    )
    for t, w in ((9962.0, 0.5), (9967.0, -0.5), (9968.0, 0.5), (9969.0, 0.5)):
        own, _ = ref.step(own, t, 100000.0, 600.0, w)
    pop.add_runs({2: own})
    assert 2 in pop._fallback
    now = E1_TIMES[8]
    got = pop.step(now, 100000.0, 600.0, E1_WEIGHTS[8]).as_step_results()
    want_state, want = ref.step(own, now, 100000.0, 600.0, E1_WEIGHTS[8])
    assert got[2].entropy == want.entropy == ref.close_entropy(want_state, now)
    assert want.entropy not in (0.0, 1.0)


# ---------------------------------------------------------------------------------------------- API


def fresh(n: int, start: float = T0 - 10.0, **overrides: Any) -> dict[int, dict[str, Any]]:
    return {i: ref.new_state(quiet_params(**overrides), start, 7000) for i in range(1, n + 1)}


def test_results_empty_before_first_step_and_batch_types() -> None:
    pop = Population(SYMBOL)
    assert len(pop.results()) == 0 and isinstance(pop.results(), StepBatch)
    pop.add_runs(fresh(3))
    batch = pop.step(T0, 100000.0, 600.0, 0.0)
    assert pop.results() is batch
    assert batch.run_ids.dtype == np.int64 and batch.position_direction.dtype == np.int64
    assert batch.trade.dtype == batch.balance.dtype == batch.apr.dtype == batch.entropy.dtype == np.float64
    assert batch.status.dtype == object and batch.reason.dtype == object
    results = batch.as_step_results()
    assert set(results) == {1, 2, 3}
    r = results[1]
    assert isinstance(r, ref.StepResult)
    assert type(r.position_direction) is int and type(r.balance) is float and r.reason is None


def test_skipped_tick_reports_none_apr_and_entropy_and_keeps_states() -> None:
    pop = Population.from_states(SYMBOL, fresh(2))
    pop.step(T0, 100000.0, 600.0, 0.2)
    before = pop.to_states()
    r = pop.step(T0 + 5, None, 600.0, 0.2).as_step_results()[1]
    assert (r.status, r.reason, r.apr, r.entropy) == ("skipped", "price_unavailable", None, None)
    r = pop.step(T0 + 10, 100000.0, math.nan, 0.2).as_step_results()[1]
    assert (r.status, r.reason) == ("skipped", "volatility_unavailable")
    assert pop.to_states() == before


def test_run_ids_keep_insertion_order_and_len_counts_active_runs() -> None:
    pop = Population(SYMBOL)
    pop.add_runs({30: fresh(1)[1], 10: fresh(1)[1]})
    pop.add_runs({20: ref.new_state(quiet_params(rolling_apr_minutes=1), T0 - 10, 7000)})
    assert pop.run_ids == (30, 10, 20)
    assert len(pop) == 3
    assert list(pop.to_states()) == [30, 10, 20]


def test_add_runs_rejects_bad_input_and_adds_nothing() -> None:
    pop = Population.from_states(SYMBOL, fresh(2))
    good = fresh(1)[1]
    with pytest.raises(ValueError, match="duplicate"):
        pop.add_runs({5: good, 1: good})
    other = copy.deepcopy(good)
    other["symbol"] = "ETH/USDC:USDC"
    with pytest.raises(ValueError, match="symbol"):
        pop.add_runs({6: other})
    zero_b0 = copy.deepcopy(good)
    zero_b0["start_balance"] = 0.0
    with pytest.raises(ValueError, match="start_balance"):
        pop.add_runs({7: zero_b0})
    bad_lev = copy.deepcopy(good)
    bad_lev["ann_params"]["leverage"] = -1.0
    with pytest.raises(ValueError, match="leverage"):
        pop.add_runs({8: bad_lev})
    missing = copy.deepcopy(good)
    del missing["aprs"]
    with pytest.raises(ValueError, match="run 9: state lacks aprs"):
        pop.add_runs({9: missing})
    no_w = copy.deepcopy(good)
    del no_w["ann_params"]["volatility_entropy_window_minutes"]
    with pytest.raises(ValueError, match="volatility_entropy_window_minutes"):
        pop.add_runs({10: no_w})
    assert pop.run_ids == (1, 2)


def test_completed_runs_leave_the_active_set_until_removed() -> None:
    states = fresh(2)
    states[2]["ann_params"]["max_duration"] = 5
    pop = Population.from_states(SYMBOL, states)
    r = pop.step(T0, 100000.0, 600.0, 0.0).as_step_results()
    assert (r[2].status, r[2].reason) == ("completed", "max_duration")
    assert pop.run_ids == (1,) and len(pop) == 1 and pop.completed_run_ids == (2,)
    assert set(pop.step(T0 + 5, 100000.0, 600.0, 0.0).run_ids.tolist()) == {1}
    final = pop.to_states([2])[2]
    assert final["iteration_count"] == 1 and final["voms_state"]["trades"] == []
    removed = pop.remove_runs([2])
    assert removed == {2: final}
    assert pop.completed_run_ids == ()
    with pytest.raises(KeyError):
        pop.to_states([2])
    pop.remove_runs([1])
    assert len(pop) == 0 and pop.run_ids == ()


def test_to_states_returns_json_compatible_deep_copies() -> None:
    pop = Population.from_states(SYMBOL, fresh(1, volatility_entropy_window_samples=2))
    for k in range(4):
        pop.step(T0 + 5 * k, 100000.0 + k, 600.0, 0.5)
    out = pop.to_states()
    assert json.loads(json.dumps(out[1])) == out[1]
    out[1]["weights"].append(99.0)
    out[1]["ann_params"]["max_duration"] = 1
    assert pop.to_states() != out
    assert pop.to_states()[1]["weights"][-1] == 0.5


def test_from_states_of_to_states_continues_identically() -> None:
    pop = Population.from_states(
        SYMBOL, fresh(5, volatility_entropy_window_samples=2, machine_vision_entropy_max=0.1)
    )
    prices = [100000.0 * (1 + 0.001 * math.sin(k / 3)) for k in range(60)]
    for k in range(30):
        pop.step(T0 + 5 * k, prices[k], 600.0, 0.3)
    twin = Population.from_states(
        SYMBOL, {int(r): s for r, s in json.loads(json.dumps(pop.to_states())).items()}
    )
    for k in range(30, 60):
        a = pop.step(T0 + 5 * k, prices[k], 600.0, 0.3 if k < 45 else -0.3).as_step_results()
        b = twin.step(T0 + 5 * k, prices[k], 600.0, 0.3 if k < 45 else -0.3).as_step_results()
        assert a == b
    assert pop.to_states() == twin.to_states()


def test_config_may_be_replaced_between_steps() -> None:
    """The cap is read at every step from the current `config` (the service passes the live section)."""
    states = fresh(1, volatility_entropy_window_samples=2, machine_vision_entropy_max=0.2, system_swing=False)
    capped = Population.from_states(SYMBOL, states, {"max_position_direction": 1})
    freed = Population.from_states(SYMBOL, states, {"max_position_direction": 1})
    prices = [100000.0, 100000.0, 100000.0, 100200.0, 100400.0]
    for k, price in enumerate(prices[:4]):
        capped.step(T0 + 5 * k, price, 600.0, 0.5)
        freed.step(T0 + 5 * k, price, 600.0, 0.5)
    before = capped.to_states([1])[1]
    assert before["position_direction"] == 1 and before["apr_last"] > 0
    freed.config = {"max_position_direction": 1024}
    now = T0 + 20
    held = capped.step(now, prices[4], 600.0, 0.5).as_step_results()[1]
    added = freed.step(now, prices[4], 600.0, 0.5).as_step_results()[1]
    assert (held.position_direction, held.trade) == (1, 0.0)  # an add at the cap is blocked (R6)
    assert added.position_direction == 2 and added.trade > 0
    assert held == ref.step(before, now, prices[4], 600.0, 0.5, {"max_position_direction": 1})[1]
    assert added == ref.step(before, now, prices[4], 600.0, 0.5, {"max_position_direction": 1024})[1]


@pytest.mark.parametrize(
    ("now", "price", "weight", "match"),
    [
        (T0 + 5, 100000.0, 1.5, "weight"),
        (T0 + 5, 100000.0, math.nan, "weight"),
        (T0 + 5, 100000.0, True, "weight"),
        (math.inf, 100000.0, 0.0, "now"),
        (T0 - 100, 100000.0, 0.0, "earlier"),
        (T0 + 5, "100000", 0.0, "price"),
    ],
)
def test_step_rejects_bad_inputs_without_changing_anything(
    now: Any, price: Any, weight: Any, match: str
) -> None:
    pop = Population.from_states(SYMBOL, fresh(2))
    pop.step(T0, 100000.0, 600.0, 0.1)
    before = pop.to_states()
    with pytest.raises(ValueError, match=match):
        pop.step(now, price, 600.0, weight)
    assert pop.to_states() == before


def test_cap_config_is_validated() -> None:
    pop = Population.from_states(SYMBOL, fresh(1), {"max_position_direction": 0})
    with pytest.raises(ValueError, match="max_position_direction"):
        pop.step(T0, 100000.0, 600.0, 0.0)
