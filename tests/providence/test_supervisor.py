"""Supervisor planning (providence.md §3): leverage map, eligibility, seeded draws and apex survivors."""

from __future__ import annotations

import hashlib
import json
import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttt.providence import reference as ref
from ttt.providence.supervisor import (
    ApexFile,
    apex_hash,
    choose_symbol,
    draw_seed,
    eligible_symbols,
    leverage_map,
    load_apex_file,
    load_newest_apex_file,
    newest_apex_file,
    plan_cycle,
    survivor_problem,
)

HOST = "worker-1"


def gen(seed: int = 99) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


class FixedDraws:
    """Stands in for the generator where the test dictates u; only `random` is used by the symbol draw."""

    def __init__(self, us: list[float]) -> None:
        self.us = list(us)

    def random(self) -> float:
        return self.us.pop(0)


def hand_index(weights: list[float], u: float) -> int:
    """bisect_right(c, u × total, 0, n − 1) written out: how many of c_0 … c_{n−2} are ≤ u × total."""
    c: list[float] = []
    acc = 0.0
    for w in weights:
        acc = acc + w
        c.append(acc)
    x = u * c[-1]
    return sum(1 for ci in c[:-1] if ci <= x)


# ---------------------------------------------------------------- §3.3 leverage map


def test_leverage_map_rules() -> None:
    symbols = ["A", "B", "C", "D", "E", "F", "G"]
    raw = {"A": 40, "B": None, "C": 0, "D": 0.5, "E": "20", "F": Decimal("3.5")}
    levs, notes = leverage_map(symbols, raw)
    assert levs == {"A": 40.0, "B": 1.0, "C": 1.0, "D": 1.0, "E": 20.0, "F": 3.5, "G": 1.0}
    assert all(isinstance(v, float) for v in levs.values())
    assert len(notes) == 1 and "G" in notes[0]


def test_leverage_map_unusable_value_falls_back_with_a_note() -> None:
    levs, notes = leverage_map(["A"], {"A": "n/a"})
    assert levs == {"A": 1.0} and "A" in notes[0]


# ---------------------------------------------------------------- §3.5.1 eligibility


def test_eligibility_is_count_over_leverage_at_most_t() -> None:
    levs = {"A": 1.0, "B": 1.0, "C": 2.0}
    assert eligible_symbols(["C", "A", "B"], {"A": 45, "B": 46, "C": 90}, levs, 45) == ["C", "A"]
    assert eligible_symbols(["C", "A", "B"], {"A": 45, "B": 46, "C": 91}, levs, 45) == ["A"]


@pytest.mark.parametrize(("lev", "start"), [(1.0, 0), (2.5, 0), (3.0, 100), (40.0, 1790)])
def test_cycle_allows_floor_t_lev_plus_one_runs(lev: float, start: int) -> None:
    plan = plan_cycle(
        symbols=["A"],
        counts={"A": start},
        max_leverage={"A": lev},
        config={"desired_run_count": 100_000, "max_margin_allocation_threshold": 45},
        rng=gen(),
        host=HOST,
    )
    assert start + len(plan.runs) == math.floor(45 * lev) + 1
    assert any("no eligible symbol" in n for n in plan.notes)


# ---------------------------------------------------------------- §3.5.3 / §3.5.4 draws


@pytest.mark.parametrize(
    ("u", "expected"),
    [(0.0, 0), (0.05, 0), (0.1, 1), (0.25, 1), (0.3999, 1), (0.4, 2), (0.99, 2), (0.9999999, 2)],
)
def test_symbol_draw_is_bisect_right_on_cumulative_leverage(u: float, expected: int) -> None:
    # c = [1, 4, 10]; u × 10 equal to c_0 = 1 goes past it (bisect_right).
    eligible = ["A", "B", "C"]
    levs = {"A": 1.0, "B": 3.0, "C": 6.0}
    assert hand_index([1.0, 3.0, 6.0], u) == expected
    assert choose_symbol(eligible, levs, FixedDraws([u])) == eligible[expected]  # type: ignore[arg-type]


def test_symbol_draw_with_a_seeded_generator_matches_hand_computation() -> None:
    eligible = ["A", "B", "C", "D"]
    weights = [40.0, 1.0, 20.0, 3.0]
    levs = dict(zip(eligible, weights, strict=True))
    g, twin = gen(7), gen(7)
    picks = [choose_symbol(eligible, levs, g) for _ in range(500)]
    assert picks == [eligible[hand_index(weights, twin.random())] for _ in range(500)]
    assert picks.count("A") > picks.count("C") > picks.count("D") > 0


def test_seed_draw_is_one_integers_call_below_2_63() -> None:
    g, twin = gen(3), gen(3)
    seeds = [draw_seed(g) for _ in range(100)]
    assert seeds == [int(twin.integers(0, 2**63)) for _ in range(100)]
    assert all(0 <= s < 2**63 and isinstance(s, int) for s in seeds)


def test_random_cycle_consumes_u_then_seed_per_run() -> None:
    symbols = ["BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC"]
    raw = {"BTC/USDC:USDC": 40, "ETH/USDC:USDC": 25, "SOL/USDC:USDC": None}
    cfg = {"desired_run_count": 10, "virtual_balance": 5000}
    g, twin = gen(11), gen(11)
    plan = plan_cycle(
        symbols=symbols, counts={"BTC/USDC:USDC": 4}, max_leverage=raw, config=cfg, rng=g, host=HOST
    )
    assert plan.needed == 6 and len(plan.runs) == 6 and plan.apex_file is None
    weights = [40.0, 25.0, 1.0]
    for run in plan.runs:
        symbol = symbols[hand_index(weights, twin.random())]
        seed = int(twin.integers(0, 2**63))
        assert (run.symbol, run.seed) == (symbol, seed)
        lev = weights[symbols.index(symbol)]
        assert run.params == ref.sample_params(seed, symbol, lev, cfg)
        assert run.start_balance == 5000
        assert run.host == HOST
        assert (run.apex_file, run.apex_hash, run.apex_rank) == (None, None, None)
    assert g.bit_generator.state == twin.bit_generator.state


def test_no_runs_needed_means_no_draw() -> None:
    g = gen(5)
    before = g.bit_generator.state
    # Active runs of a symbol no longer configured still count towards the total.
    plan = plan_cycle(
        symbols=["A"], counts={"A": 5, "Z": 95}, max_leverage={"A": 2}, config={}, rng=g, host=HOST
    )
    assert plan.needed == 0 and plan.runs == ()
    assert g.bit_generator.state == before


def test_counts_grow_within_the_cycle() -> None:
    plan = plan_cycle(
        symbols=["A", "B"],
        counts={"A": 45},
        max_leverage={"A": 1, "B": 1},
        config={"desired_run_count": 95},
        rng=gen(),
        host=HOST,
    )
    symbols = [r.symbol for r in plan.runs]
    # A (45/1 ≤ 45) takes exactly one more run and B 46 (0 … 45 ≤ 45): 47 of the 50 needed.
    assert (len(symbols), symbols.count("A"), symbols.count("B")) == (47, 1, 46)
    assert plan.notes == ("no eligible symbol: stopped after 47 of 50 runs",)


# ---------------------------------------------------------------- §3.7 apex survivors: files


def _write(path: Path, data: Any, mtime: float) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.utime(path, (mtime, mtime))
    return path


def test_newest_file_by_modification_time(tmp_path: Path) -> None:
    _write(tmp_path / "apex_survivors_b.json", [], 1_000)
    newest = _write(tmp_path / "apex_survivors_a.json", [], 2_000)
    _write(tmp_path / "other.json", [], 3_000)
    _write(tmp_path / "apex_survivors_c.txt", [], 4_000)
    assert newest_apex_file(tmp_path) == newest
    assert newest_apex_file(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert newest_apex_file(tmp_path / "empty") is None


def test_load_valid_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "apex_survivors_1.json", [{"ann_params": {"symbol": "A"}, "rank": 1}], 1)
    apex, error = load_apex_file(path, sleep=lambda s: None)
    assert error is None
    assert apex == ApexFile("apex_survivors_1.json", ({"ann_params": {"symbol": "A"}, "rank": 1},))


@pytest.mark.parametrize("content", ["[{not json", None])
def test_load_retries_five_times_one_second_apart(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "apex_survivors_x.json"
    if content is not None:
        path.write_text(content)
    sleeps: list[float] = []
    apex, error = load_apex_file(path, sleep=sleeps.append)
    assert apex is None and error is not None and "5 attempts" in error
    assert sleeps == [1.0] * 4


def test_load_succeeds_when_the_file_is_completed_between_attempts(tmp_path: Path) -> None:
    path = tmp_path / "apex_survivors_x.json"
    path.write_text("[{")

    def finish(_: float) -> None:
        path.write_text("[]")

    apex, error = load_apex_file(path, sleep=finish)
    assert error is None and apex == ApexFile("apex_survivors_x.json", ())


def test_load_rejects_a_non_array_without_retrying(tmp_path: Path) -> None:
    path = _write(tmp_path / "apex_survivors_x.json", {"ann_params": {}}, 1)
    sleeps: list[float] = []
    apex, error = load_apex_file(path, sleep=sleeps.append)
    assert apex is None and error is not None and "array" in error and sleeps == []


def test_hash_is_sha256_of_sorted_json_with_default_str() -> None:
    d = {"symbol": "Ä/USDC:USDC", "leverage": 3.0, "max_goal": 7, "system_swing": True, "b": None, "a": 0.1}
    expected = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()
    assert apex_hash(d) == expected
    assert apex_hash(dict(reversed(list(d.items())))) == expected
    assert len(expected) == 64
    # Non-JSON values go through str(), as the spec's default=str says.
    odd = {"x": Decimal("1.5")}
    assert apex_hash(odd) == hashlib.sha256(json.dumps(odd, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- §3.7 apex survivors: validity (R10)


def survivor(
    symbol: str = "A", leverage: float = 3.0, rank: int | None = None, **over: Any
) -> dict[str, Any]:
    ann = dict(ref.sample_params(17, symbol, leverage))
    ann.update(over)
    entry: dict[str, Any] = {"ann_params": ann}
    if rank is not None:
        entry["rank"] = rank
    return entry


def test_valid_survivor_has_no_problem() -> None:
    assert survivor_problem(survivor(rank=3)) is None
    entry = survivor()
    del entry["ann_params"]["virtual_balance"]
    del entry["ann_params"]["decision_distance_seconds"]
    assert survivor_problem(entry) is None


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda a: a.pop("rolling_apr_minutes"), "lacks rolling_apr_minutes"),
        (lambda a: a.pop("symbol"), "lacks symbol"),
        (lambda a: a.update(leverage=0.0), "leverage"),
        (lambda a: a.update(leverage=-3.0), "leverage"),
        (lambda a: a.update(max_duration=0), "max_duration"),
        (lambda a: a.update(min_goal=0.0), "min_goal"),
        (lambda a: a.update(max_goal=0), "max_goal"),
        (lambda a: a.update(volatility_entropy_window_samples=1), "volatility_entropy_window_samples"),
        (lambda a: a.update(virtual_balance=0), "virtual_balance"),
        (lambda a: a.update(virtual_balance=-10.0), "virtual_balance"),
        (lambda a: a.update(pos_scaler="big"), "pos_scaler"),
    ],
)
def test_each_invalid_survivor_reason(mutate: Any, needle: str) -> None:
    entry = survivor()
    mutate(entry["ann_params"])
    problem = survivor_problem(entry)
    assert problem is not None and needle in problem


def test_malformed_entries() -> None:
    assert survivor_problem([1, 2]) == "entry is not an object"
    assert survivor_problem({"rank": 1}) == "ann_params missing or not an object"
    assert survivor_problem({**survivor(), "rank": "first"}) is not None


# ---------------------------------------------------------------- §3.7 apex survivors: the cycle


def apex_cycle(
    survivors: list[Any], *, desired: int, burned: set[str] | None = None, **cfg: Any
) -> tuple[Any, np.random.Generator, np.random.Generator]:
    config = {"desired_run_count": desired, "use_apex_survivors": True, "virtual_balance": 9000, **cfg}
    g, twin = gen(21), gen(21)
    plan = plan_cycle(
        symbols=["A", "B"],
        counts={"A": 0, "B": 46},  # B is at 46/1 > 45: not eligible
        max_leverage={"A": 40, "B": 1},
        config=config,
        rng=g,
        host=HOST,
        apex=ApexFile("apex_survivors_7.json", tuple(survivors)),
        burned=burned or set(),
    )
    return plan, g, twin


def test_apex_selection_skips_invalid_ineligible_and_burned() -> None:
    invalid = survivor(leverage=0.0)
    ineligible = survivor(symbol="B", leverage=5.0)
    burned = survivor(leverage=2.0)
    first = survivor(leverage=3.0, rank=7, virtual_balance=5000)
    second = survivor(leverage=4.0)
    del second["ann_params"]["virtual_balance"]
    plan, g, twin = apex_cycle(
        [invalid, ineligible, burned, first, second], desired=49, burned={apex_hash(burned["ann_params"])}
    )
    assert plan.needed == 3 and plan.apex_file == "apex_survivors_7.json"
    r0, r1, r2 = plan.runs
    assert (r0.seed, r0.symbol, r0.start_balance, r0.apex_rank) == (None, "A", 5000, 7)
    assert r0.apex_hash == apex_hash(first["ann_params"])
    assert r0.params == {
        **first["ann_params"],
        "apex_file": "apex_survivors_7.json",
        "apex_hash": r0.apex_hash,
        "apex_rank": 7,
    }
    assert r0.params["leverage"] == 3.0  # the survivor's leverage, not lev(A) = 40
    assert (r1.seed, r1.start_balance, r1.apex_rank, r1.apex_file) == (
        None,
        9000,
        None,
        "apex_survivors_7.json",
    )
    assert r1.apex_hash == apex_hash(second["ann_params"])
    # Survivors exhausted: the third run takes the random path, one u and one seed.
    assert r2.apex_hash is None and r2.symbol == "A"
    twin.random()
    assert r2.seed == int(twin.integers(0, 2**63))
    assert g.bit_generator.state == twin.bit_generator.state
    # Every run of a cycle that loaded a file names it as host, the random fallback included.
    assert {r.host for r in plan.runs} == {"apex_survivors_7.json"}
    skipped = [n for n in plan.notes if "skipped" in n]
    assert len(skipped) == 1 and "survivor 0" in skipped[0] and "leverage" in skipped[0]


def test_apex_runs_make_no_generator_draw() -> None:
    plan, g, twin = apex_cycle([survivor(leverage=float(i + 1)) for i in range(3)], desired=49)
    assert [r.seed for r in plan.runs] == [None, None, None]
    assert g.bit_generator.state == twin.bit_generator.state


def test_a_survivor_is_used_once_per_cycle() -> None:
    same = survivor()
    plan, _, _ = apex_cycle([same, dict(same)], desired=48)
    assert [r.apex_hash is not None for r in plan.runs] == [True, False]


def test_apex_mode_off_ignores_the_file() -> None:
    plan, _, _ = apex_cycle([survivor()], desired=47, use_apex_survivors=False)
    (run,) = plan.runs
    assert run.apex_hash is None and run.seed is not None and run.host == HOST and plan.apex_file is None


def test_load_newest_apex_file(tmp_path: Path) -> None:
    apex, error = load_newest_apex_file(tmp_path, sleep=lambda s: None)
    assert apex is None and error is not None and "apex_survivors_*.json" in error
    _write(tmp_path / "apex_survivors_old.json", [1], 10)
    _write(tmp_path / "apex_survivors_new.json", [2], 20)
    apex, error = load_newest_apex_file(tmp_path, sleep=lambda s: None)
    assert error is None and apex == ApexFile("apex_survivors_new.json", (2,))
