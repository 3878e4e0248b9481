"""Population top-up planning (providence.md §3), without the database or the lock.

The service reads counts, leverages and the burned set, calls `plan_cycle`, then inserts the planned
runs (and burns) in one transaction. Keeping the decision pure makes embedded mode and backtests
reproducible from `providence.seed` and lets every rule be pinned by tests.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttt.domain.params import DEFAULT_VIRTUAL_BALANCE, PARAM_KEYS, sample_params

DEFAULT_DESIRED_RUN_COUNT = 100
DEFAULT_MARGIN_ALLOCATION_THRESHOLD = 45
APEX_FILE_GLOB = "apex_survivors_*.json"
SEED_BOUND = 2**63

# Every §2.1 key that §5 reads (all but virtual_balance and decision_distance_seconds).
APEX_REQUIRED_KEYS: tuple[str, ...] = tuple(
    k for k in PARAM_KEYS if k not in ("virtual_balance", "decision_distance_seconds")
)


@dataclass(frozen=True)
class ApexFile:
    """A loaded survivors file: its basename and its entries in file order, as parsed."""

    basename: str
    survivors: tuple[Any, ...]


@dataclass(frozen=True)
class NewRunSpec:
    """One row for the service to insert (§3.5 step 6); seed is None exactly for apex runs."""

    symbol: str
    seed: int | None
    params: dict[str, Any]
    start_balance: float
    host: str
    apex_file: str | None = None
    apex_hash: str | None = None
    apex_rank: int | None = None


@dataclass(frozen=True)
class SupervisorPlan:
    needed: int
    runs: tuple[NewRunSpec, ...]
    apex_file: str | None
    # Lines for the service to log: missing products rows, skipped survivors, an early stop.
    notes: tuple[str, ...] = field(default_factory=tuple)


def _real(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------- leverage, eligibility, draws


def leverage_map(
    symbols: Sequence[str], max_leverage: Mapping[str, object]
) -> tuple[dict[str, float], list[str]]:
    """§3.3 lev(s) per configured symbol, plus notes for symbols without a usable products row."""
    levs: dict[str, float] = {}
    notes: list[str] = []
    for symbol in symbols:
        if symbol not in max_leverage:
            levs[symbol] = 1.0
            notes.append(f"no products row for {symbol}: leverage 1.0 assumed")
            continue
        raw = max_leverage[symbol]
        value = 1.0
        if raw is not None:
            try:
                parsed = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                parsed = math.nan
            if not math.isfinite(parsed):
                notes.append(f"unusable max_leverage {raw!r} for {symbol}: leverage 1.0 assumed")
            elif parsed != 0:
                value = parsed
        levs[symbol] = max(value, 1.0)
    return levs, notes


def eligible_symbols(
    symbols: Sequence[str], counts: Mapping[str, int], levs: Mapping[str, float], threshold: float
) -> list[str]:
    """§3.5.1: count/lev ≤ T on the count before the new run, in config order (⌊T·lev⌋ + 1 runs)."""
    return [s for s in symbols if counts.get(s, 0) / levs[s] <= threshold]


def choose_symbol(eligible: Sequence[str], levs: Mapping[str, float], rng: np.random.Generator) -> str:
    """§3.5.3: one draw u, index = bisect_right(cumulative leverages, u × total, 0, n − 1)."""
    if not eligible:
        raise ValueError("no eligible symbol to draw from")
    cumulative: list[float] = []
    running = 0.0
    for symbol in eligible:
        running = running + levs[symbol]
        cumulative.append(running)
    u = rng.random()
    return eligible[bisect.bisect_right(cumulative, u * cumulative[-1], 0, len(eligible) - 1)]


def draw_seed(rng: np.random.Generator) -> int:
    """§3.5.4: a run seed in [0, 2**63)."""
    return int(rng.integers(0, SEED_BOUND))


def needed_runs(desired: int, counts: Mapping[str, int]) -> int:
    """§3.4: desired − active (every active run, configured symbol or not); never negative."""
    return max(desired - sum(counts.values()), 0)


def apex_mode_active(config: Mapping[str, Any] | None, needed: int) -> bool:
    """§3.7: load a survivors file only when apex seeding is enabled and runs are needed."""
    return bool((config or {}).get("use_apex_survivors", False)) and needed > 0


# ---------------------------------------------------------------- apex survivors


def apex_hash(ann_params: Mapping[str, Any]) -> str:
    """SHA-256 of the survivor's parameters exactly as stored (sorted keys, default separators)."""
    return hashlib.sha256(json.dumps(ann_params, sort_keys=True, default=str).encode()).hexdigest()


def newest_apex_file(directory: str | Path) -> Path | None:
    """The newest `apex_survivors_*.json` by modification time (name breaks ties), or None."""
    base = Path(directory)
    if not base.is_dir():
        return None
    best: tuple[int, str, Path] | None = None
    for path in base.glob(APEX_FILE_GLOB):
        try:
            if not path.is_file():
                continue
            key = (path.stat().st_mtime_ns, path.name, path)
        except OSError:
            continue
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else best[2]


def load_apex_file(
    path: str | Path,
    *,
    attempts: int = 5,
    delay_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ApexFile | None, str | None]:
    """Read a survivors file, retrying decode / not-found / permission errors; (file, None) or (None, why)."""
    p = Path(path)
    last_error = "not attempted"
    for attempt in range(1, attempts + 1):
        try:
            with p.open(encoding="utf-8") as fh:
                data = json.load(fh)
        except (json.JSONDecodeError, FileNotFoundError, PermissionError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                sleep(delay_s)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"cannot read apex survivors file {p}: {type(exc).__name__}: {exc}"
        if not isinstance(data, list):
            return None, f"apex survivors file {p} is not a JSON array"
        return ApexFile(basename=p.name, survivors=tuple(data)), None
    return None, f"cannot load apex survivors file {p} after {attempts} attempts: {last_error}"


def load_newest_apex_file(
    directory: str | Path, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[ApexFile | None, str | None]:
    """The newest survivors file of `directory`, loaded; (None, why) sends the cycle down the random path."""
    path = newest_apex_file(directory)
    if path is None:
        return None, f"no {APEX_FILE_GLOB} in {directory}"
    return load_apex_file(path, sleep=sleep)


def survivor_problem(entry: object) -> str | None:
    """[Deviation R10] Why §5 could not run this survivor, or None when it is valid."""
    if not isinstance(entry, Mapping):
        return "entry is not an object"
    ann = entry.get("ann_params")
    if not isinstance(ann, Mapping):
        return "ann_params missing or not an object"
    missing = [k for k in APEX_REQUIRED_KEYS if k not in ann]
    if missing:
        return "ann_params lacks " + ", ".join(missing)
    if not isinstance(ann["symbol"], str):
        return "symbol is not a string"
    for key in APEX_REQUIRED_KEYS:
        if key not in ("symbol", "system_swing") and not _real(ann[key]):
            return f"{key} is not a finite number: {ann[key]!r}"
    if not isinstance(ann["system_swing"], bool | int):
        return f"system_swing is not a boolean: {ann['system_swing']!r}"
    if ann["leverage"] <= 0:
        return f"leverage {ann['leverage']!r} <= 0"
    if ann["max_duration"] < 1:
        return f"max_duration {ann['max_duration']!r} < 1"
    if ann["min_goal"] <= 0:
        return f"min_goal {ann['min_goal']!r} <= 0"
    if ann["max_goal"] <= 0:
        return f"max_goal {ann['max_goal']!r} <= 0"
    if ann["volatility_entropy_window_samples"] < 2:
        return f"volatility_entropy_window_samples {ann['volatility_entropy_window_samples']!r} < 2"
    if ann["balance_divisor"] <= 0:
        return f"balance_divisor {ann['balance_divisor']!r} <= 0"
    if "virtual_balance" in ann and not (_real(ann["virtual_balance"]) and ann["virtual_balance"] > 0):
        return f"virtual_balance {ann['virtual_balance']!r} is not > 0"
    rank = entry.get("rank")
    if rank is not None and not (isinstance(rank, int) and not isinstance(rank, bool)):
        return f"rank {rank!r} is not an integer"
    return None


def _pick_survivor(
    apex: ApexFile, eligible: Iterable[str], burned: set[str], reported: set[int], notes: list[str]
) -> tuple[dict[str, Any], str, int | None] | None:
    """First acceptable survivor in file order: (its ann_params, hash, rank), or None."""
    allowed = set(eligible)
    for index, entry in enumerate(apex.survivors):
        problem = survivor_problem(entry)
        if problem is None:
            ann = entry["ann_params"]
            if ann["symbol"] not in allowed:
                continue
            digest = apex_hash(ann)
            if digest in burned:
                continue
            return dict(ann), digest, entry.get("rank")
        if index not in reported:
            reported.add(index)
            notes.append(f"apex survivor {index} in {apex.basename} skipped: {problem}")
    return None


# ---------------------------------------------------------------- the cycle


def plan_cycle(
    *,
    symbols: Sequence[str],
    counts: Mapping[str, int],
    max_leverage: Mapping[str, object],
    config: Mapping[str, Any] | None,
    rng: np.random.Generator,
    host: str,
    apex: ApexFile | None = None,
    burned: Iterable[str] = (),
) -> SupervisorPlan:
    """§3.4–§3.7: the runs to create this cycle.

    `counts` holds the active runs per symbol, including symbols no longer configured (they count towards
    the total). `apex` is the survivors file the caller loaded (only when `apex_mode_active`), and
    `burned` the hashes recorded for its basename. Apex runs make no generator draw.
    """
    cfg: Mapping[str, Any] = config or {}
    desired = cfg.get("desired_run_count", DEFAULT_DESIRED_RUN_COUNT)
    threshold = cfg.get("max_margin_allocation_threshold", DEFAULT_MARGIN_ALLOCATION_THRESHOLD)
    virtual_balance = cfg.get("virtual_balance", DEFAULT_VIRTUAL_BALANCE)

    needed = needed_runs(desired, counts)
    levs, lev_notes = leverage_map(symbols, max_leverage)
    notes = list(lev_notes)
    if needed <= 0:
        return SupervisorPlan(needed=0, runs=(), apex_file=None, notes=tuple(notes))

    use_apex = apex if apex_mode_active(cfg, needed) else None
    run_host = use_apex.basename if use_apex is not None else host
    burned_now = set(burned)
    reported: set[int] = set()
    running_counts = {s: counts.get(s, 0) for s in symbols}
    runs: list[NewRunSpec] = []

    for _ in range(needed):
        eligible = eligible_symbols(symbols, running_counts, levs, threshold)
        if not eligible:
            notes.append(f"no eligible symbol: stopped after {len(runs)} of {needed} runs")
            break
        picked = _pick_survivor(use_apex, eligible, burned_now, reported, notes) if use_apex else None
        if picked is not None and use_apex is not None:
            ann, digest, rank = picked
            burned_now.add(digest)
            symbol = ann["symbol"]
            params = dict(ann)
            params["apex_file"] = use_apex.basename
            params["apex_hash"] = digest
            params["apex_rank"] = rank
            spec = NewRunSpec(
                symbol=symbol,
                seed=None,
                params=params,
                start_balance=params.get("virtual_balance", virtual_balance),
                host=run_host,
                apex_file=use_apex.basename,
                apex_hash=digest,
                apex_rank=rank,
            )
        else:
            symbol = choose_symbol(eligible, levs, rng)
            seed = draw_seed(rng)
            params = sample_params(seed, symbol, levs[symbol], cfg)
            spec = NewRunSpec(
                symbol=symbol,
                seed=seed,
                params=params,
                start_balance=params.get("virtual_balance", virtual_balance),
                host=run_host,
            )
        runs.append(spec)
        running_counts[symbol] += 1

    return SupervisorPlan(
        needed=needed,
        runs=tuple(runs),
        apex_file=use_apex.basename if use_apex is not None else None,
        notes=tuple(notes),
    )
