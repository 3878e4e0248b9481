"""Scalar/vectorised parity (providence.md §17.2, §17.4): `Population` against `reference.step`.

Each hypothesis example is one large seeded corpus (≥ 200 runs × ≥ 2000 ticks) with the adversarial
parameter overrides and inputs §17.4 lists, runs added part-way (fresh, stale cold loads and runs with a
foreign history), and a to_states → JSON → from_states round trip part-way. Every step result of every run is
compared, and states are compared at checkpoints and at completion. The comparison is the §17.2 contract,
plus bit equality (the SHOULD of §17.2, which this engine meets).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttt.providence import reference as ref
from ttt.providence.population import Population

SYMBOL = "BTC/USDC:USDC"
T0 = 1_700_000_000.0
EXIT_REASONS = {"max_duration", "apr_target", "reversal"}

# ---------------------------------------------------------------------------------------------- comparison


def floats_agree(a: float, b: float) -> bool:
    """§17.2: 1e-9 relative, 1e-12 absolute near zero (NaN only matches NaN)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= max(1e-12, 1e-9 * max(abs(a), abs(b)))


def compare_results(rid: int, tick: int, want: ref.StepResult, got: ref.StepResult) -> None:
    where = f"run {rid} at tick {tick}"
    assert got.status == want.status, f"{where}: status {got.status!r} != {want.status!r}"
    assert got.reason == want.reason, f"{where}: reason {got.reason!r} != {want.reason!r}"
    assert got.position_direction == want.position_direction, f"{where}: position_direction"
    assert type(got.position_direction) is int
    assert math.copysign(1.0, got.trade) == math.copysign(1.0, want.trade) or got.trade == want.trade == 0
    for name in ("trade", "balance", "apr", "entropy"):
        a, b = getattr(want, name), getattr(got, name)
        if a is None or b is None:
            assert a is None and b is None, f"{where}: {name} {b!r} != {a!r}"
            continue
        assert floats_agree(a, b), f"{where}: {name} {b!r} != {a!r}"
        assert a == b, f"{where}: {name} not bit-identical: {b!r} != {a!r}"


def compare_states(want: Any, got: Any, where: str) -> None:
    """§17.2 on states: exact keys, ints, bools, list lengths; floats within tolerance; then bit equality."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not a dict"
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            compare_states(want[k], got[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            compare_states(a, b, f"{where}[{i}]")
    elif isinstance(want, float) or isinstance(got, float):
        assert isinstance(got, int | float) and not isinstance(got, bool), f"{where}: {got!r}"
        assert floats_agree(float(want), float(got)), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def assert_same_state(want: dict[str, Any], got: dict[str, Any], where: str) -> None:
    compare_states(want, got, where)
    assert json.dumps(got) == json.dumps(want), f"{where}: states agree in value but not bit for bit"


# ---------------------------------------------------------------------------------------------- corpus


def corpus_params(rng: random.Random, i: int) -> dict[str, Any]:
    """sample_params over random seeds, with the §17.4 adversarial overrides on a share of the runs."""
    p = ref.sample_params(rng.randrange(2**63), SYMBOL, rng.choice([40.0, 20.0, 3.0]))
    kind = i % 10
    if kind == 0:
        p["max_cross_margin_ratio"] = 0.0  # margin_limit on every add
    elif kind == 1:
        p["volatility_entropy_window_minutes"] = 1  # W = 1, S = 20: warm-up impossible at 5 s
        p["volatility_entropy_window_samples"] = 20
    elif kind == 2:
        p["min_goal_weight"] = p["max_goal_weight"]  # v_max == v_min: G = min_goal
    elif kind == 3:
        p["max_duration"] = rng.randint(300, 4000)  # max_duration exits inside the corpus
        p["max_direction_reversal"] = int(p["max_duration"] / rng.randint(1, 9))
    elif kind == 4:
        p["max_direction_reversal"] = rng.randint(30, 600)  # reversal exits while flat
    elif kind == 5:
        p["apr_target"] = rng.choice([1e-6, 1e-5, 1e-4])  # apr_target exits
    elif kind == 6:
        p["volatility_entropy_window_samples"] = rng.randint(2, 4)  # gate opens early: many trades
        p["volatility_entropy_window_minutes"] = rng.randint(1, 3)
    if i % 4 == 0:
        p["system_swing"] = not p["system_swing"]
    return p


class Inputs:
    """Adversarial tick inputs: equal timestamps, gaps, repeated weights, None/NaN/inf prices and σ."""

    def __init__(self, rng: random.Random, bad_rate: float) -> None:
        self.rng = rng
        self.bad_rate = bad_rate
        self.now = T0
        self.price = 100_000.0
        self.weight = 0.2
        self.repeat = 0

    def next(self, k: int) -> tuple[float, float | None, float | None, float]:
        rng = self.rng
        if k % 400 == 399:
            self.now += rng.choice([1900.0, 3700.0])  # a gap longer than every window
            self.repeat = 3
        elif self.repeat:
            self.repeat -= 1  # equal consecutive timestamps with an unchanged price: APR ties
        else:
            self.now += rng.choice([5.0] * 12 + [0.0, 0.0, 1.0, 2.5, 30.0, 61.0, 90.0])
            if rng.random() < 0.6:
                self.price *= math.exp(rng.gauss(0.0, 0.0015))
        if rng.random() < 0.08:
            self.weight = rng.choice([0.0, 0.0, 0.2, 0.2, -0.1, 1 / 3, -0.5, 1.0, -1.0, 0.0333])
        price: float | None = self.price
        vol: float | None = rng.choice([600.0, 300.0, 80.0, 1500.0, 0.0, 5000.0])
        if rng.random() < self.bad_rate:
            price = rng.choice([None, math.nan, math.inf, -math.inf, -1.0, 0.0])
        if rng.random() < self.bad_rate:
            vol = rng.choice([None, math.nan, math.inf, -1.0])
        return self.now, price, vol, self.weight


def foreign_state(rng: random.Random, now: float, i: int) -> dict[str, Any]:
    """A run stepped by the reference on its own tick sequence (a history the population never saw)."""
    st_ = ref.new_state(corpus_params(rng, i), now - 400.0, 7000.0)
    t = now - 300.0
    while t < now - 3.0:
        st_, _ = ref.step(
            st_, t, 100_000.0 * (1 + rng.uniform(-0.01, 0.01)), 600.0, rng.choice([0.5, -0.5, 0.0])
        )
        t += rng.choice([3.0, 7.0, 11.0])
    return st_


def run_corpus(seed: int, n_runs: int, n_ticks: int, cap: int, bad_rate: float) -> Counter[str | None]:
    rng = random.Random(seed)
    config = {"max_position_direction": cap}
    refs: dict[int, dict[str, Any]] = {
        i: ref.new_state(corpus_params(rng, i), T0 - rng.uniform(1.0, 600.0), 7000.0) for i in range(n_runs)
    }
    pop = Population.from_states(SYMBOL, refs, config)
    inputs = Inputs(rng, bad_rate)
    reasons: Counter[str | None] = Counter()
    next_id = n_runs
    snapshot: dict[int, dict[str, Any]] = {}
    saw_fallback = False
    for k in range(n_ticks):
        now, price, vol, w = inputs.next(k)
        if k == n_ticks // 5:
            snapshot = json.loads(json.dumps(refs))
        if k in (n_ticks // 4, n_ticks // 2):  # fresh runs part-way
            fresh = {}
            for _ in range(20):
                fresh[next_id] = ref.new_state(corpus_params(rng, next_id), now - 1.0, 7000.0)
                next_id += 1
            pop.add_runs(fresh)
            refs.update(fresh)
        if k == n_ticks // 5 + 40:  # cold loads from an older copy, and foreign histories (§16.6)
            stale = [int(r) for r in snapshot if int(r) in refs][:6]
            for rid in stale:
                pop.remove_runs([rid])
                refs[rid] = snapshot[str(rid)]
                pop.add_runs({rid: refs[rid]})
            foreign = {}
            for _ in range(4):
                foreign[next_id] = foreign_state(rng, now, next_id)
                next_id += 1
            pop.add_runs(foreign)
            refs.update(foreign)
            saw_fallback = len(pop._fallback) >= len(stale) + len(foreign) - 1
        if k == (3 * n_ticks) // 5:  # to_states → JSON → from_states
            out = json.loads(json.dumps(pop.to_states()))
            states = {int(r): s for r, s in out.items()}
            assert set(states) == set(refs)
            for rid, s in states.items():
                assert_same_state(refs[rid], s, f"run {rid} before the round trip")
            pop = Population.from_states(SYMBOL, states, config)

        batch = pop.step(now, price, vol, w)
        got = batch.as_step_results()
        assert set(got) == set(refs), f"tick {k}: stepped {len(got)} runs, expected {len(refs)}"
        counts = dict(zip(batch.run_ids.tolist(), batch.iteration_count.tolist(), strict=True))
        for rid in list(refs):
            before = refs[rid]["position_direction"]
            new, want = ref.step(refs[rid], now, price, vol, w, config)
            compare_results(rid, k, want, got[rid])
            assert counts[rid] == new["iteration_count"], f"run {rid} tick {k}: batch iteration_count"
            reasons[want.reason] += 1
            if want.trade:
                reasons["<buy>" if want.trade > 0 else "<sell>"] += 1
                if abs(before) >= cap and abs(want.position_direction) < abs(before):
                    reasons["<unwind at cap>"] += 1
            if want.status == "completed":
                assert rid in pop.completed_run_ids
                assert_same_state(new, pop.to_states([rid])[rid], f"completed run {rid} at tick {k}")
                del refs[rid]
            else:
                refs[rid] = new
        assert len(pop) == len(refs)
        removed = pop.remove_runs(pop.completed_run_ids)
        assert not pop.completed_run_ids and all(r not in refs for r in removed)
        if k % 250 == 0 or k == n_ticks - 1:
            states = pop.to_states()
            assert list(states) == sorted(refs, key=list(pop.run_ids).index)
            assert pop.id_set() == set(refs)
            for rid, s in states.items():
                assert_same_state(refs[rid], s, f"run {rid} at tick {k}")
    assert saw_fallback, "the corpus did not exercise non-conforming runs"
    return reasons


@pytest.mark.slow
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(seed=st.integers(0, 2**32 - 1), cap=st.sampled_from([2, 1024]), bad_rate=st.sampled_from([0.02, 0.06]))
def test_population_matches_reference_on_large_corpora(seed: int, cap: int, bad_rate: float) -> None:
    reasons = run_corpus(seed, n_runs=200, n_ticks=2000, cap=cap, bad_rate=bad_rate)
    wanted = EXIT_REASONS | {"margin_limit", "price_unavailable", "volatility_unavailable", "<buy>", "<sell>"}
    missing = wanted - set(reasons)
    assert not missing, f"corpus lacks {sorted(missing)}: {dict(reasons)}"


def test_cap_two_corpus_reaches_every_exit_and_the_exact_mean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed corpus with cap = 2 (R6); also proves the exact-mean near-tie path ran (§1.3 fallback)."""
    calls = Counter[str]()
    original = Population._exact_prev_means

    def counting(self: Population, slots: Any, b_prev: int) -> None:
        calls["exact"] += len(slots)
        original(self, slots, b_prev)

    monkeypatch.setattr(Population, "_exact_prev_means", counting)
    reasons = run_corpus(20240601, n_runs=200, n_ticks=2000, cap=2, bad_rate=0.04)
    assert EXIT_REASONS | {"margin_limit", "<buy>", "<sell>", "<unwind at cap>"} <= set(reasons), dict(
        reasons
    )
    assert calls["exact"] > 0, "no APR near-tie was re-decided exactly"
