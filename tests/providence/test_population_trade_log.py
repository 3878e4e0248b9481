"""The population's compact fill log: engine fills are stored as (run, price, side) and their size recomputed,
imported sizes that do not follow §5 S14.7 are kept exactly (providence.md §15.4, §17.2, §19.3).

Expected trades are the inputs themselves, or `reference.step` run side by side (bit equality via JSON).
"""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import pytest

from tests.providence.test_population_parity import assert_same_state, compare_results
from ttt.providence import population as population_module
from ttt.providence import reference as ref
from ttt.providence.population import Population

SYMBOL = "BTC/USDC:USDC"
T0 = 1_700_000_000.0


def trader_params(i: int) -> dict[str, Any]:
    """A run that stays open and may trade at every tick (entropy gate always open)."""
    p = ref.sample_params(1000 + i, SYMBOL, 40.0)
    p.update(
        max_duration=10**9,
        max_direction_reversal=10**9,
        apr_target=1e12,
        machine_vision_entropy_max=2.0,
        max_cross_margin_ratio=1e9,
        system_swing=bool(i % 2),
    )
    return p


def formula_size(state: dict[str, Any], price: float, side: int) -> float:
    """§5 S14.7 by hand: q = (((B0 × pos_weight) / P) × pos_scaler) / balance_divisor, times δ."""
    a = state["ann_params"]
    q = (((float(state["start_balance"]) * a["pos_weight"]) / price) * a["pos_scaler"]) / a["balance_divisor"]
    return q * side


def with_book(state: dict[str, Any], trades: list[list[float]]) -> dict[str, Any]:
    out = copy.deepcopy(state)
    out["voms_state"] = {
        "starting_balance": float(state["start_balance"]),
        "leverage": state["ann_params"]["leverage"],
        "fee_rate": 0.0004,
        "current_price": 100_000.0,
        "trades": trades,
    }
    return out


class Driver:
    """Steps a population and the reference on the same ticks and checks results and states bit for bit."""

    def __init__(self, seed: int, t: float = T0) -> None:
        self.rng = random.Random(seed)
        self.t = t
        self.price = 100_000.0
        self.fills = 0

    def run(self, pop: Population, refs: dict[int, dict[str, Any]], ticks: int) -> None:
        for _ in range(ticks):
            self.t += 5.0
            self.price *= 1 + self.rng.uniform(-0.002, 0.002)
            w = self.rng.choice([0.4, -0.4, 0.0, 0.9, -0.7])
            got = pop.step(self.t, self.price, 600.0, w).as_step_results()
            assert set(got) == set(refs)
            for rid in list(refs):
                new, want = ref.step(refs[rid], self.t, self.price, 600.0, w)
                compare_results(rid, 0, want, got[rid])
                assert want.status == "continue", f"run {rid} left the test ({want.reason})"
                self.fills += want.trade != 0.0
                refs[rid] = new
        states = pop.to_states()
        for rid, st in refs.items():
            assert_same_state(st, states[rid], f"run {rid}")


def test_foreign_trade_sizes_survive_round_trips_exactly() -> None:
    base = {i: ref.new_state(trader_params(i), T0 - 30.0, 7000.0) for i in range(1, 5)}
    base[5] = ref.new_state({**trader_params(5), "pos_weight": 0.0}, T0 - 30.0, 7000.0)
    books = {
        1: [
            [100_000.0, 0.123456789],
            [99_000.0, formula_size(base[1], 99_000.0, 1)],
            [101_000.0, -0.0],
            [98_000.0, formula_size(base[1], 98_000.0, -1)],
            [97_000.5, 1e-300],
        ],
        2: [
            [100_500.0, formula_size(base[2], 100_500.0, -1)],
            [99_500.0, formula_size(base[2], 99_500.0, 1)],
        ],
        3: [[1.0, 5e-9], [2.5, -3e-9], [100_000.0, 0.0]],
        # pos_weight 0: the formula gives ±0.0, and the sign of zero must survive.
        5: [[100_000.0, 0.0], [100_000.0, -0.0], [99_000.0, 0.0]],
    }
    refs = {rid: with_book(st, books[rid]) if rid in books else st for rid, st in base.items()}
    pop = Population.from_states(SYMBOL, copy.deepcopy(refs))
    first = pop.to_states()
    for rid, st in refs.items():
        assert json.dumps(first[rid]["voms_state"]) == json.dumps(st["voms_state"])
    assert math.copysign(1.0, first[1]["voms_state"]["trades"][2][1]) == -1.0
    assert [math.copysign(1.0, q) for _, q in first[5]["voms_state"]["trades"]] == [1.0, -1.0, 1.0]
    assert pop._fq_n == 6  # only the sizes the formula does not give take the exact side table

    driver = Driver(seed=11)
    driver.run(pop, refs, 40)
    assert driver.fills > 0, "no engine fills: the test would not exercise recomputed sizes"
    assert pop._fq_n == 6

    out = json.loads(json.dumps(pop.to_states()))
    pop = Population.from_states(SYMBOL, {int(rid): st for rid, st in out.items()})
    assert pop._fq_n == 6, "engine fills coming back through from_states must be recognised, not stored"
    before = driver.fills
    driver.run(pop, refs, 40)
    assert driver.fills > before


def test_a_reused_run_id_does_not_inherit_the_old_runs_fills() -> None:
    refs = {i: ref.new_state(trader_params(i), T0 - 30.0, 7000.0) for i in (1, 2)}
    pop = Population.from_states(SYMBOL, copy.deepcopy(refs))
    driver = Driver(seed=5)
    driver.run(pop, refs, 20)
    assert refs[1]["voms_state"]["trades"], "run 1 never traded"
    pop.remove_runs([1])
    del refs[1]
    reborn = with_book(ref.new_state(trader_params(7), T0 - 30.0, 7000.0), [[123.0, 0.5]])
    pop.add_runs({1: copy.deepcopy(reborn)})
    assert pop.to_states([1])[1]["voms_state"]["trades"] == [[123.0, 0.5]]
    refs[1] = reborn
    driver.run(pop, refs, 20)


def test_log_compaction_keeps_survivors_fills_exact() -> None:
    rng = random.Random(3)
    refs: dict[int, dict[str, Any]] = {}
    for i in range(60):
        st = ref.new_state(trader_params(i), T0 - 30.0, 7000.0)
        trades = []
        for _ in range(80):
            p = rng.uniform(90_000.0, 110_000.0)
            if rng.random() < 0.3:
                trades.append([p, rng.uniform(-1.0, 1.0)])
            else:
                trades.append([p, formula_size(st, p, rng.choice([1, -1]))])
        refs[i] = with_book(st, trades)
    pop = Population.from_states(SYMBOL, copy.deepcopy(refs))
    assert pop.trade_log_fills() == 60 * 80
    gone = list(range(0, 60, 3)) + list(range(1, 60, 3))
    pop.remove_runs(gone)
    for rid in gone:
        del refs[rid]
    assert pop.trade_log_fills() == 20 * 80, "the log was not compacted"
    states = pop.to_states()
    for rid, st in refs.items():
        assert json.dumps(states[rid]["voms_state"]) == json.dumps(st["voms_state"])
    Driver(seed=9).run(pop, refs, 15)


def test_run_sequence_renumbering_keeps_order_and_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(population_module, "_SEQ_LIMIT", 12)
    calls = []
    original = Population._renumber_seqs

    def counting(self: Population) -> None:
        calls.append(len(self))
        original(self)

    monkeypatch.setattr(Population, "_renumber_seqs", counting)
    refs: dict[int, dict[str, Any]] = {}
    pop = Population(SYMBOL)
    order: list[int] = []
    driver = Driver(seed=21)
    next_id = 100
    for round_ in range(8):
        fresh = {}
        for _ in range(4):
            st = ref.new_state(trader_params(next_id), driver.t - 1.0, 7000.0)
            if next_id % 3 == 0:
                st = with_book(st, [[77_000.0, 0.25 + next_id]])
            fresh[next_id] = st
            next_id += 1
        pop.add_runs(copy.deepcopy(fresh))
        refs.update(fresh)
        order.extend(fresh)
        driver.run(pop, refs, 6)
        drop = order[round_ % 2 :: 2][:3]
        pop.remove_runs(drop)
        for rid in drop:
            del refs[rid]
            order.remove(rid)
        assert list(pop.run_ids) == order
    assert len(calls) >= 2, "the sequence limit was not reached repeatedly"
    assert driver.fills > 0
    driver.run(pop, refs, 5)
    with pytest.raises(ValueError, match="at most 12 runs"):
        pop.add_runs({i: ref.new_state(trader_params(i), driver.t, 7000.0) for i in range(500, 513)})
    assert list(pop.run_ids) == order
