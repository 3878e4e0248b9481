"""The decision table, its minimum-notional rule and the global margin gate (portfolio.md §7, §8).

The output is a side and a positive size: the reference returned a signed δ whose sign did not
consistently mean "buy", which is exactly the kind of ambiguity that sends an order the wrong way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ttt.domain.results import Unknown

EPSILON = 1e-8

Side = Literal["buy", "sell"]
DecisionOutcome = Literal["execute", "below_threshold", "no_action"]


@dataclass(frozen=True, slots=True)
class Decision:
    execute: bool
    side: Side | None
    size: float
    row: int
    notional: float
    outcome: DecisionOutcome


def _row(a: float, d: float) -> tuple[int, float, Side | None]:
    """(row, δ ≥ 0, side) of the 11-row table; |A| and |D| are compared exactly."""
    exists = abs(a) > EPSILON
    risk = abs(d) > EPSILON
    if exists and risk:
        if a < 0 and d < 0:
            if abs(a) > abs(d):
                return 1, abs(a) - abs(d), "buy"
            if abs(a) < abs(d):
                return 2, abs(d) - abs(a), "sell"
            return 3, 0.0, None
        if a < 0 < d:
            return 4, abs(a) + d, "buy"
        if d < 0 < a:
            return 5, a + abs(d), "sell"
        if a < d:
            return 6, d - a, "buy"
        if a > d:
            return 7, a - d, "sell"
        return 8, 0.0, None
    if risk:
        return 9, abs(d), "buy" if d > 0 else "sell"
    if exists:
        return 10, abs(a), "sell" if a > 0 else "buy"
    return 11, 0.0, None


def decide(actual: float, desired: float, price: float, threshold: float) -> Decision:
    """decide(A, D, P, T): execute iff δ > 0 and δ·P ≥ T on the unrounded δ (inclusive)."""
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"decide needs a known price > 0, got {price!r}; the symbol must be held instead")
    if not (math.isfinite(actual) and math.isfinite(desired)):
        raise ValueError(f"decide needs finite A and D, got A={actual!r}, D={desired!r}")
    row, delta, side = _row(actual, desired)
    notional = delta * price
    if side is None:
        return Decision(False, None, 0.0, row, 0.0, "no_action")
    if delta > 0 and notional >= threshold:
        return Decision(True, side, delta, row, notional, "execute")
    return Decision(False, None, delta, row, notional, "below_threshold")


@dataclass(frozen=True, slots=True)
class GateResult:
    increasing: bool
    blocked: bool
    cross_margin: float
    max_margin: float


def increases_exposure(actual: float, desired: float) -> bool:
    return abs(desired) > abs(actual)


def margin_gate(
    actual: float, desired: float, cross_margin: float, balance: float, max_margin_usage: float
) -> GateResult:
    """§8: an exposure-increasing trade is blocked iff C ≥ B·μ; a blocked flip is blocked whole."""
    m_max = balance * max_margin_usage
    increasing = increases_exposure(actual, desired)
    return GateResult(increasing, increasing and cross_margin >= m_max, cross_margin, m_max)


def cycle_hold(
    snapshot_age_s: float | None,
    balance_max_age_s: float,
    balance: float | None,
    cross_margin: float | None,
    caps_available: bool = True,
) -> Unknown | None:
    """C5 steps 1–2: the reason every symbol of the cycle is held, or None when the inputs are usable."""
    if snapshot_age_s is None or balance is None:
        return Unknown("balance_unavailable", "no usable account snapshot")
    if snapshot_age_s > balance_max_age_s:
        return Unknown("balance_unavailable", f"newest usable snapshot is {snapshot_age_s:.0f} s old")
    if not (math.isfinite(balance) and balance > 0):
        return Unknown("balance_invalid", f"balance {balance!r} is not > 0")
    if cross_margin is None or not math.isfinite(cross_margin):
        return Unknown("margin_unavailable", "cross maintenance margin is missing")
    if not caps_available:
        return Unknown("margin_caps_unavailable", "margin caps could not be computed")
    return None
