"""Reconciliation cycle ids (portfolio.md §1.1).

The id is chosen by whoever enqueues the cycle and is the seed of every client order id of the cycle,
so the same trigger must always produce the same id.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_STAMP = "%Y%m%dT%H%M%SZ"


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime(_STAMP)


def schedule_slot(now: float, period_s: int) -> int:
    """⌊now / period⌋ · period, in whole seconds."""
    if period_s <= 0:
        raise ValueError(f"scheduler.periods.reconcile must be > 0, got {period_s}")
    return math.floor(now / period_s) * period_s


def scheduled_cycle_id(now: float, period_s: int) -> str:
    return f"sched:{_stamp(schedule_slot(now, period_s))}"


def startup_cycle_id(started_at: float) -> str:
    return f"startup:{_stamp(math.floor(started_at))}"


def manual_cycle_id(now: float) -> str:
    return f"manual:{math.floor(now * 1000)}"


def take_profit_cycle_ids(height: int, count: int = 3) -> list[str]:
    return [f"tp:{height}:{i}" for i in range(1, count + 1)]


def drawdown_cycle_ids(epoch_id: int, count: int = 3) -> list[str]:
    return [f"dd:{epoch_id}:{i}" for i in range(1, count + 1)]
