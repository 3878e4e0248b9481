"""Run parameters drawn from a per-run seeded generator (providence.md §2, R1).

A run's parameters are a pure function of (seed, symbol, leverage, config), so any run can be replayed
from its stored seed. The draw order below is normative; changing it changes every run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

DEFAULT_VIRTUAL_BALANCE: int = 7000
DEFAULT_MAX_POSITION_DIRECTION: int = 1024

# The reference's example configuration values, keyed as in `providence.ann_params` (§2.1).
DEFAULT_ANN_RANGES: dict[str, Any] = {
    "max_duration": [300, 15778800],
    "reversal_divisor": [1, 9],
    "balance_divisor": 5,
    "pos_scaler": [1.618, 3.236],
    "pos_scaler_divisor": 1000,
    "apr_target": [20, 100],
    "apr_target_divisor": 1.618,
    "min_goal": [1, 9],
    "max_goal": [1, 10],
    "min_goal_weight": [1, 38],
    "max_goal_weight": [69, 200],
    "goal_weight_divisor": 10000,
    "entropy_window_minutes": [1, 15],
    "entropy_window_samples": [5, 20],
    "machine_vision_entropy_max": [5, 15],
    "machine_vision_entropy_divisor": 100,
    "rolling_apr_minutes": [1, 30],
    "max_cross_margin_ratio": 0.05,
    "pos_weight": 0.032732855219630354,
    "pos_weight_divisor": 3,
}

RANGE_KEYS: tuple[str, ...] = (
    "max_duration",
    "reversal_divisor",
    "pos_scaler",
    "apr_target",
    "min_goal",
    "max_goal",
    "min_goal_weight",
    "max_goal_weight",
    "entropy_window_minutes",
    "entropy_window_samples",
    "machine_vision_entropy_max",
    "rolling_apr_minutes",
)
DIVISOR_KEYS: tuple[str, ...] = (
    "balance_divisor",
    "pos_scaler_divisor",
    "apr_target_divisor",
    "goal_weight_divisor",
    "machine_vision_entropy_divisor",
    "pos_weight_divisor",
)
# Lower bounds on a range's minimum (§2.3), plus pos_scaler > 0 so that sizes keep their sign (spec note).
RANGE_MIN_BOUNDS: dict[str, int] = {
    "min_goal": 1,
    "max_goal": 1,
    "max_duration": 1,
    "reversal_divisor": 1,
    "entropy_window_minutes": 1,
    "entropy_window_samples": 2,
    "rolling_apr_minutes": 1,
}

PARAM_KEYS: tuple[str, ...] = (
    "virtual_balance",
    "symbol",
    "leverage",
    "max_duration",
    "max_direction_reversal",
    "balance_divisor",
    "pos_scaler",
    "max_cross_margin_ratio",
    "apr_target",
    "pos_weight",
    "min_goal",
    "max_goal",
    "min_goal_weight",
    "max_goal_weight",
    "volatility_entropy_window_minutes",
    "volatility_entropy_window_samples",
    "machine_vision_entropy_max",
    "rolling_apr_minutes",
    "decision_distance_seconds",
    "system_swing",
)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def merge_ann_params(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """`providence.ann_params` merged over the defaults; unknown keys are kept but never read."""
    merged = dict(DEFAULT_ANN_RANGES)
    if config is not None:
        ann = config.get("ann_params")
        if ann is not None:
            if not isinstance(ann, Mapping):
                raise ValueError(f"providence.ann_params must be a mapping, got {type(ann).__name__}")
            merged.update(ann)
    return merged


def validate_providence_config(config: Mapping[str, Any] | None) -> list[str]:
    """§2.3 checks on the `providence` section (after defaults); each problem names its key."""
    cfg: Mapping[str, Any] = config or {}
    problems: list[str] = []
    try:
        ann = merge_ann_params(cfg)
    except ValueError as exc:
        return [str(exc)]
    for key in RANGE_KEYS:
        value = ann[key]
        name = f"providence.ann_params.{key}"
        check = _is_real if key == "pos_scaler" else _is_int
        kind = "numbers" if key == "pos_scaler" else "integers"
        if not isinstance(value, list | tuple) or len(value) != 2:
            problems.append(f"{name} must be a [min, max] list, got {value!r}")
            continue
        lo, hi = value
        if not (check(lo) and check(hi)):
            problems.append(f"{name} must hold two {kind}, got {value!r}")
            continue
        if lo > hi:
            problems.append(f"{name} has min {lo!r} > max {hi!r}")
        bound = RANGE_MIN_BOUNDS.get(key)
        if bound is not None and lo < bound:
            problems.append(f"{name} minimum must be >= {bound}, got {lo!r}")
        if key == "pos_scaler" and lo <= 0:
            problems.append(f"{name} minimum must be > 0 (trade sizes would change sign), got {lo!r}")
    for key in DIVISOR_KEYS:
        value = ann[key]
        if not _is_real(value) or value <= 0:
            problems.append(f"providence.ann_params.{key} must be a number > 0, got {value!r}")
    pos_weight = ann["pos_weight"]
    if not _is_real(pos_weight) or pos_weight <= 0:
        problems.append(f"providence.ann_params.pos_weight must be a number > 0, got {pos_weight!r}")
    ratio = ann["max_cross_margin_ratio"]
    if not _is_real(ratio) or ratio < 0:
        problems.append(f"providence.ann_params.max_cross_margin_ratio must be a number >= 0, got {ratio!r}")
    balance = cfg.get("virtual_balance", DEFAULT_VIRTUAL_BALANCE)
    if not _is_real(balance) or balance <= 0:
        problems.append(f"providence.virtual_balance must be a number > 0, got {balance!r}")
    cap = cfg.get("max_position_direction", DEFAULT_MAX_POSITION_DIRECTION)
    if not _is_int(cap) or cap < 1:
        problems.append(f"providence.max_position_direction must be an integer >= 1, got {cap!r}")
    return problems


def sample_params(
    seed: int, symbol: str, leverage: float, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The §2.1 parameter dict for one run, drawn in the §2.2 order from PCG64(seed)."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"run seed must be a non-negative int, got {seed!r}")
    problems = validate_providence_config(config)
    if problems:
        raise ValueError("invalid providence configuration: " + "; ".join(problems))
    cfg: Mapping[str, Any] = config or {}
    a = merge_ann_params(cfg)
    g = np.random.Generator(np.random.PCG64(seed))

    def draw(key: str) -> int:
        lo, hi = a[key]
        return draw_int(g, lo, hi)

    system_swing = bool(draw_int(g, 0, 1))
    max_duration = draw("max_duration")
    max_direction_reversal = int(max_duration / draw("reversal_divisor"))
    ps_lo, ps_hi = a["pos_scaler"]
    pos_scaler = float(g.uniform(ps_lo, ps_hi)) / a["pos_scaler_divisor"]
    apr_target = draw("apr_target") / a["balance_divisor"] / a["apr_target_divisor"]
    min_goal = draw("min_goal") / 10
    max_goal = draw("max_goal")
    min_goal_weight = draw("min_goal_weight") / a["goal_weight_divisor"]
    max_goal_weight = draw("max_goal_weight") / a["goal_weight_divisor"]
    window_minutes = draw("entropy_window_minutes")
    window_samples = draw("entropy_window_samples")
    entropy_max = draw("machine_vision_entropy_max") / a["machine_vision_entropy_divisor"]
    rolling_minutes = draw("rolling_apr_minutes")

    return {
        "virtual_balance": cfg.get("virtual_balance", DEFAULT_VIRTUAL_BALANCE),
        "symbol": symbol,
        "leverage": float(leverage),
        "max_duration": max_duration,
        "max_direction_reversal": max_direction_reversal,
        "balance_divisor": a["balance_divisor"],
        "pos_scaler": pos_scaler,
        "max_cross_margin_ratio": a["max_cross_margin_ratio"] / a["balance_divisor"],
        "apr_target": apr_target,
        "pos_weight": a["pos_weight"] / a["pos_weight_divisor"],
        "min_goal": min_goal,
        "max_goal": max_goal,
        "min_goal_weight": min_goal_weight,
        "max_goal_weight": max_goal_weight,
        "volatility_entropy_window_minutes": window_minutes,
        "volatility_entropy_window_samples": window_samples,
        "machine_vision_entropy_max": entropy_max,
        "rolling_apr_minutes": rolling_minutes,
        "decision_distance_seconds": 0,
        "system_swing": system_swing,
    }


def draw_int(g: np.random.Generator, lo: int, hi: int) -> int:
    """`int(a..b)` of §2.2: both ends included."""
    return int(g.integers(lo, hi, endpoint=True))
