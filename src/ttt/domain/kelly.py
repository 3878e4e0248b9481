"""Kelly sizing, exactly the reference's arithmetic including its sign quirk (portfolio.md §4, P3).

The quirk is part of the strategy that live results were obtained with, so it is reproduced rather
than corrected: for instance K_c = 0 with K_h > 0 yields the maximum boost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ttt.domain.run_records import RunRecord

KellyRule = Literal["probation", "historical_zero", "performance"]


@dataclass(frozen=True, slots=True)
class KellyMetrics:
    win_rate: float
    payoff_ratio: float
    kelly: float


@dataclass(frozen=True, slots=True)
class KellySizing:
    size: float
    rule: KellyRule
    performance: float | None
    k_current: float | None
    k_historical: float | None


def kelly_metrics(samples: Iterable[float | None], min_samples: int = 10) -> KellyMetrics | None:
    """(w, R, K) of the non-null, non-zero PnL values, or None when the sample cannot support it."""
    x = [v for v in samples if v is not None and v != 0]
    n = len(x)
    if n < min_samples:
        return None
    wins = [v for v in x if v > 0]
    losses = [abs(v) for v in x if v < 0]
    if not wins or not losses:
        return None
    w = len(wins) / n
    mean_win = sum(wins) / len(wins)
    mean_loss = sum(losses) / len(losses)
    if mean_loss == 0:
        return None
    r = mean_win / mean_loss
    k = w - (1 - w) / r
    return KellyMetrics(win_rate=w, payoff_ratio=r, kelly=k)


def current_cohort_samples(runs: Iterable[RunRecord], symbol: str) -> list[float | None]:
    """live_pnl of the unfinalised cohort: height NULL and not flagged; no freshness or θ filter."""
    return [r.live_pnl for r in runs if r.symbol == symbol and r.height is None and not r.exit_run]


def historical_cohort_samples(runs: Sequence[RunRecord], symbol: str) -> list[float | None]:
    """live_pnl of the heighted runs whose height had a positive PnL sum for this symbol."""
    totals: dict[int, float] = {}
    for r in runs:
        if r.symbol == symbol and r.height is not None and r.live_pnl is not None:
            totals[r.height] = totals.get(r.height, 0.0) + r.live_pnl
    positive = {h for h, total in totals.items() if total > 0}
    return [r.live_pnl for r in runs if r.symbol == symbol and r.height is not None and r.height in positive]


def performance(k_current: float, k_historical: float, threshold: float = 0.5) -> float:
    """p of §4.2 with the reference's sign flip, cap at τ and floor to −0.98 below −1."""
    p0 = 1 - k_current / k_historical
    if (k_current < 0 and k_historical > 0) or (k_current > 0 and k_historical > 0):
        p0 = -p0
    if p0 > threshold:
        return threshold
    if p0 < -1.0:
        return -0.98
    return p0


def kelly_size(
    s_base: float,
    k_current: float | None,
    k_historical: float | None,
    threshold: float = 0.5,
    probationary_multiplier: float = 0.25,
) -> KellySizing:
    """S from S_base; first matching rule of the §4.2 table wins."""
    if k_current is None or k_historical is None:
        return KellySizing(s_base * probationary_multiplier, "probation", None, k_current, k_historical)
    if k_historical == 0:
        return KellySizing(s_base, "historical_zero", None, k_current, k_historical)
    p = performance(k_current, k_historical, threshold)
    return KellySizing(s_base * (1 + p), "performance", p, k_current, k_historical)
