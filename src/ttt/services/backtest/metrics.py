"""Backtest metrics (services.md §10.3) as pure functions over a sampled equity series and fills.

Every function takes plain numbers so that the definitions can be checked by hand; `None` stands for the
spec's "null" (a value that is undefined for the given series, never a guessed zero).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

YEAR_S = 365.25 * 86400.0
DAY_S = 86400


@dataclass(frozen=True)
class EquitySample:
    ts: float
    account_value: float
    cash: float = 0.0
    gross_exposure_usd: float = 0.0
    net_exposure_usd: float = 0.0


@dataclass(frozen=True)
class FillFacts:
    notional_usd: float
    fee_usd: float


def _check(ts: Sequence[float], values: Sequence[float]) -> None:
    if len(ts) != len(values):
        raise ValueError(f"equity series: {len(ts)} timestamps but {len(values)} values")
    if not values:
        raise ValueError("equity series is empty")
    if any(b < a for a, b in itertools.pairwise(ts)):
        raise ValueError("equity series timestamps must be ascending")


def years(ts: Sequence[float]) -> float:
    return (ts[-1] - ts[0]) / YEAR_S if ts else 0.0


def total_return(values: Sequence[float]) -> float | None:
    if not values or values[0] <= 0:
        return None
    return values[-1] / values[0] - 1


def cagr(ts: Sequence[float], values: Sequence[float]) -> float | None:
    """Null under one day: annualising a few hours turns noise into absurd numbers."""
    _check(ts, values)
    y = years(ts)
    if y < 1 / 365.25 or values[-1] <= 0 or values[0] <= 0:
        return None
    return float((values[-1] / values[0]) ** (1 / y) - 1)


def max_drawdown(values: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, 1 - v / peak)
    return worst


def max_drawdown_duration_s(ts: Sequence[float], values: Sequence[float]) -> float:
    """From the last sample at the running peak to the first sample back at or above it (or the end)."""
    _check(ts, values)
    peak_v, peak_t = values[0], ts[0]
    under = False
    longest = 0.0
    for t, v in zip(ts, values, strict=True):
        if v >= peak_v:
            if under:
                longest = max(longest, t - peak_t)
                under = False
            peak_v, peak_t = v, t
        else:
            under = True
    if under:
        longest = max(longest, ts[-1] - peak_t)
    return longest


def daily_returns(ts: Sequence[float], values: Sequence[float]) -> list[float]:
    """Simple returns between consecutive 00:00 UTC boundaries inside [t₀, t_N].

    The equity at a boundary is the last sample at or before it. Only whole days count: a partial first
    or last day has no "previous day end" or "day end" in the sense of §10.3.
    """
    _check(ts, values)
    first = math.ceil(ts[0] / DAY_S) * DAY_S
    marks: list[float] = []
    i = 0
    boundary = first
    while boundary <= ts[-1]:
        while i + 1 < len(ts) and ts[i + 1] <= boundary:
            i += 1
        marks.append(values[i])
        boundary += DAY_S
    return [b / a - 1 for a, b in itertools.pairwise(marks)]


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def sharpe(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    m = _mean(returns)
    std = math.sqrt(math.fsum((r - m) ** 2 for r in returns) / (len(returns) - 1))
    if std == 0:
        return None
    return m / std * math.sqrt(365)


def sortino(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(_mean([min(r, 0.0) ** 2 for r in returns]))
    if downside == 0:
        return None
    return _mean(returns) / downside * math.sqrt(365)


def turnover(notionals: Iterable[float], values: Sequence[float]) -> float | None:
    mean_e = _mean(values) if values else 0.0
    if mean_e <= 0:
        return None
    return math.fsum(abs(n) for n in notionals) / mean_e


def annual_turnover(turnover_value: float | None, y: float) -> float | None:
    if turnover_value is None or y <= 0:
        return None
    return turnover_value / y


def exposure_mean(gross: Sequence[float], values: Sequence[float]) -> float | None:
    if len(gross) != len(values):
        raise ValueError(f"{len(gross)} exposures but {len(values)} equity values")
    ratios = [g / v for g, v in zip(gross, values, strict=True) if v > 0]
    return _mean(ratios) if ratios else None


def counts(items: Iterable[str | None]) -> dict[str, int]:
    """Counts by label, sorted by label so that the JSON is stable."""
    c = Counter(i for i in items if i is not None)
    return {k: c[k] for k in sorted(c)}


def equity_metrics(samples: Sequence[EquitySample]) -> dict[str, Any]:
    ts = [s.ts for s in samples]
    values = [s.account_value for s in samples]
    _check(ts, values)
    r = daily_returns(ts, values)
    return {
        "start_equity": values[0],
        "end_equity": values[-1],
        "total_return": total_return(values),
        "cagr": cagr(ts, values),
        "max_drawdown": max_drawdown(values),
        "max_drawdown_duration_s": max_drawdown_duration_s(ts, values),
        "sharpe": sharpe(r),
        "sortino": sortino(r),
        "daily_returns": len(r),
        "exposure_mean": exposure_mean([s.gross_exposure_usd for s in samples], values),
    }


def trading_metrics(
    samples: Sequence[EquitySample],
    fills: Sequence[FillFacts],
    *,
    funding_usd: float,
    order_statuses: Sequence[tuple[str, bool]] = (),
    hold_reasons: Sequence[str | None] = (),
    epoch_kinds: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole §10.3 table. `order_statuses` holds (final status, filled anything) per order."""
    values = [s.account_value for s in samples]
    out = equity_metrics(samples)
    t = turnover([f.notional_usd for f in fills], values)
    out.update(
        {
            "fees_usd": math.fsum(f.fee_usd for f in fills),
            "funding_usd": funding_usd,
            "turnover": t,
            "annual_turnover": annual_turnover(t, years([s.ts for s in samples])),
            "trades": len(fills),
            "orders": len(order_statuses),
            "orders_by_status": counts(status for status, _ in order_statuses),
            "orders_rejected": sum(1 for status, _ in order_statuses if status == "REJECTED"),
            "orders_unfilled": sum(
                1 for status, filled in order_statuses if status != "REJECTED" and not filled
            ),
            "holds": counts(hold_reasons),
            "epochs": counts(epoch_kinds),
        }
    )
    return out
