"""`ttt.market_data.retention` (services.md §2.1, §4.3): delete bars older than each timeframe's retention.

`market_data.retention_days` maps a timeframe (or `default`) to days; 0 keeps that timeframe forever. The
cutoff is now − days·86 400 s on the Clock, and a bar goes when its open time is strictly before the cutoff.
Every stored timeframe is pruned, including ones no longer configured for fetching (imported 5m bars, say),
so that nothing grows without bound unless a user asked for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ttt.adapters.db.uow import UnitOfWork
from ttt.ports import Clock, LockManager
from ttt.services.locking import run_locked

log = logging.getLogger(__name__)

RETENTION_LOCK = "market_data:retention"
RETENTION_LOCK_TTL_S = 3600
DAY_MS = 86_400_000
SPEC_DEFAULT_DAYS = 400


def retention_days_for(retention_days: Mapping[str, int], timeframe: str) -> int:
    """The timeframe's own entry, else `default` (400 days when even that is absent)."""
    days = retention_days.get(timeframe, retention_days.get("default", SPEC_DEFAULT_DAYS))
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"market_data.retention_days.{timeframe}: expected whole days ≥ 0, got {days!r}")
    return days


def cutoffs(retention_days: Mapping[str, int], timeframes: Iterable[str], now_s: float) -> dict[str, int]:
    """Cutoff open time (epoch ms) per timeframe; timeframes kept forever are absent."""
    now_ms = math.floor(now_s * 1000)
    out: dict[str, int] = {}
    for tf in timeframes:
        days = retention_days_for(retention_days, tf)
        if days > 0:
            out[tf] = now_ms - days * DAY_MS
    return out


@dataclass(frozen=True)
class RetentionResult:
    deleted: dict[str, int]
    cutoffs: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def prune_market_data(engine: Engine, retention_days: Mapping[str, int], clock: Clock) -> RetentionResult:
    """One transaction per timeframe, so a slow large delete of one timeframe does not hold the others."""
    with UnitOfWork(engine, read_only=True) as uow:
        timeframes = sorted(uow.bars.timeframes())
    limits = cutoffs(retention_days, timeframes, clock.now())
    deleted: dict[str, int] = {}
    for tf, cutoff in limits.items():
        with UnitOfWork(engine) as uow:
            deleted[tf] = uow.bars.delete_before(tf, cutoff)
    log.info("market data retention deleted %s", deleted or "nothing")
    return RetentionResult(deleted, limits)


def market_data_retention(
    engine: Engine, locks: LockManager, clock: Clock, retention_days: Mapping[str, int]
) -> RetentionResult:
    """The scheduled task: raises `LockBusy` when another retention run holds the lock (skipped)."""
    return run_locked(
        locks,
        RETENTION_LOCK,
        RETENTION_LOCK_TTL_S,
        lambda _token: prune_market_data(engine, retention_days, clock),
    )


__all__ = [
    "RETENTION_LOCK",
    "RETENTION_LOCK_TTL_S",
    "RetentionResult",
    "cutoffs",
    "market_data_retention",
    "prune_market_data",
    "retention_days_for",
]
