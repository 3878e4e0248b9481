"""Per-symbol tick inputs and the exit goal (providence.md §6, §11, §12).

Bar selection (which bars are visible at t) belongs to the caller; these functions take the selected
values in ascending open-time order and do the arithmetic exactly as specified.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TypeGuard

WEIGHT_DEAD_BAND: float = 0.0001
VOLATILITY_WINDOW_BARS: int = 61


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def market_weight(closes: Sequence[float | None]) -> float:
    """§11 steps 2–4: mean ternary close change with a 0.01 % dead band; 0.0 with fewer than two closes."""
    c = [float(x) for x in closes if _finite(x)]
    k = len(c)
    if k < 2:
        return 0.0
    total = 0.0
    for x in c:
        total = total + x
    mean = total / k
    theta = WEIGHT_DEAD_BAND * mean
    z = 0
    for prev, cur in itertools.pairwise(c):
        d = cur - prev
        if d > theta:
            z += 1
        elif d < -theta:
            z -= 1
    if z == 0:
        return 0.0
    return z / (k - 1)


def volatility_from_bars(highs: Sequence[float | None], lows: Sequence[float | None]) -> float | None:
    """§12 steps 2–3: mean of the last 61 trailing 61-bar ranges; None when no bar has finite high and low."""
    if len(highs) != len(lows):
        raise ValueError(f"volatility needs as many highs as lows, got {len(highs)} and {len(lows)}")
    bars = [(float(h), float(lo)) for h, lo in zip(highs, lows, strict=True) if _finite(h) and _finite(lo)]
    k = len(bars)
    if k == 0:
        return None
    span = VOLATILITY_WINDOW_BARS - 1
    total = 0.0
    terms = 0
    # Only r_j for the last 61 j enter the mean; earlier ranges are never needed.
    for j in range(max(0, k - 1 - span), k):
        window = bars[max(0, j - span) : j + 1]
        r = max(h for h, _ in window) - min(lo for _, lo in window)
        total = total + r
        terms += 1
    return total / terms


def _c_exp(x: float) -> float:
    """math.exp, but +inf on overflow as the C library returns, so huge σ/P clamps to max_goal."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def volatility_goal(
    volatility: float,
    price: float,
    min_goal_weight: float,
    max_goal_weight: float,
    min_goal: float,
    max_goal: float,
) -> float:
    """§6: goal multiplier rising exponentially from min_goal to max_goal across the σ/P band, clamped."""
    v_min = price * min_goal_weight
    v_max = price * max_goal_weight
    if v_max == v_min:
        return float(min_goal)
    s = (volatility - v_min) / (v_max - v_min)
    g = _c_exp(s * math.log(max_goal / min_goal)) * min_goal
    if g < min_goal:
        return float(min_goal)
    if g > max_goal:
        return float(max_goal)
    return g
