"""The housekeeping rows of the schedule table for the embedded runtime (services.md §2.1): the same
services the Celery tasks call (`ttt.market_data.retention`, `ttt.ops.collect_metrics`, `ttt.ops.retention`),
as `ScheduledTask`s on the in-process scheduler. Each takes its own lock; a held lock is a skipped run."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ttt.config import Settings
from ttt.ports import Cache, Clock, LockManager
from ttt.runtime.scheduler import ScheduledTask
from ttt.services.market_retention import market_data_retention
from ttt.services.ops.collect_metrics import MetricsCollector, collect_metrics
from ttt.services.ops.retention import RetentionDays, ops_retention


def ops_tasks(
    settings: Settings, engine: Engine, cache: Cache, locks: LockManager, clock: Clock
) -> list[ScheduledTask]:
    cfg = settings.config
    periods = cfg.scheduler.periods
    days = RetentionDays.from_config(cfg)
    bar_days = dict(cfg.market_data.retention_days)
    collector = MetricsCollector(engine, cache, clock, list(cfg.universe.symbols))  # no broker in S1
    return [
        ScheduledTask(
            "ttt.market_data.retention",
            periods.market_data_retention,
            lambda: market_data_retention(engine, locks, clock, bar_days),
        ),
        ScheduledTask(
            "ttt.ops.collect_metrics", periods.collect_metrics, lambda: collect_metrics(collector, locks)
        ),
        ScheduledTask(
            "ttt.ops.retention", periods.retention, lambda: ops_retention(engine, locks, clock, days)
        ),
    ]
