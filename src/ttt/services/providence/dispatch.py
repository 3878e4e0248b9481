"""Dispatch (providence.md §18.2): one tick record per symbol, one shard task per shard, spread over Δ."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ttt.ports import BarStore, Cache, Clock, LockManager, RunStore
from ttt.services.locking import run_locked
from ttt.services.providence.inputs import (
    TICK_TTL_S,
    BarVisibility,
    TickRecord,
    VolatilityCache,
    build_tick_record,
    tick_key,
)

DISPATCH_LOCK = "providence:dispatch"
DISPATCH_LOCK_TTL_S = 30

Enqueue = Callable[[str, int, float, float], None]
"""enqueue(symbol, shard, t, countdown_s): hand one `step_shard` to the task runner."""


@dataclass(frozen=True)
class DispatchSettings:
    symbols: Sequence[str]
    period_s: float = 5.0
    spread: float = 0.8
    price_max_age_s: float = 60.0


@dataclass
class DispatchReport:
    t: float
    records: dict[str, TickRecord] = field(default_factory=dict)
    jobs: list[tuple[str, int, float]] = field(default_factory=list)


def stable_shard_order(shards: dict[str, list[int]], symbols: Sequence[str]) -> list[tuple[str, int]]:
    """Configured symbols in config order, then any others (being wound down) by name; shards ascending."""
    ordered = [s for s in symbols if s in shards] + sorted(s for s in shards if s not in symbols)
    return [(symbol, shard) for symbol in ordered for shard in sorted(shards[symbol])]


class Dispatcher:
    def __init__(
        self,
        store: RunStore,
        cache: Cache,
        bars: BarStore,
        locks: LockManager,
        clock: Clock,
        settings: Callable[[], DispatchSettings],
        enqueue: Enqueue,
        visibility: BarVisibility,
    ) -> None:
        self._store = store
        self._cache = cache
        self._bars = bars
        self._locks = locks
        self._clock = clock
        self._settings = settings
        self._enqueue = enqueue
        self._visibility = visibility
        self._volatility = VolatilityCache()

    def dispatch(self) -> DispatchReport:
        """Raises LockBusy when a previous dispatch still runs (it is skipped, never queued)."""
        return run_locked(self._locks, DISPATCH_LOCK, DISPATCH_LOCK_TTL_S, lambda _token: self._dispatch())

    def _dispatch(self) -> DispatchReport:
        cfg = self._settings()
        t = self._clock.now()
        report = DispatchReport(t)
        jobs = stable_shard_order(self._store.shards_with_members(), cfg.symbols)
        for symbol in dict.fromkeys(symbol for symbol, _ in jobs):
            record = build_tick_record(
                self._cache,
                self._bars,
                symbol,
                t,
                configured=symbol in cfg.symbols,
                price_max_age_s=cfg.price_max_age_s,
                visibility=self._visibility,
                volatility_cache=self._volatility,
            )
            self._cache.set(tick_key(symbol), record.to_json(), TICK_TTL_S)
            report.records[symbol] = record
        total = len(jobs)
        for j, (symbol, shard) in enumerate(jobs):
            countdown = cfg.period_s * cfg.spread * j / total
            self._enqueue(symbol, shard, t, countdown)
            report.jobs.append((symbol, shard, countdown))
        return report
