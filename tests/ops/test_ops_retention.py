"""`ttt.ops.retention` (services.md §4.3): exactly the rows older than each cutoff go; protected rows stay."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.ops.conftest import (
    DAY,
    NOW,
    FixedClock,
    at,
    audit,
    cycle,
    fill,
    insert,
    log_row,
    order,
    position,
    snapshot,
    venue,
)
from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.db import models as m
from ttt.services.locking import LockBusy
from ttt.services.ops.retention import (
    OPS_RETENTION_LOCK,
    RetentionDays,
    ops_retention,
    protected_snapshots,
    prune_tables,
)

DAYS = RetentionDays(positions=14, balance_history=30, reconciliation=180, orders=90, audit=365)


def _ids(engine: Engine, column: object) -> list[object]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(column)).scalars())  # type: ignore[call-overload]


def _seed(engine: Engine) -> None:
    venue(engine)
    snaps = {
        1: NOW - 40 * DAY,  # old: positions go, then the snapshot itself
        2: NOW - 20 * DAY,  # positions go; snapshot younger than 30 d stays
        3: NOW - 35 * DAY,  # take-profit cursor: protected
        4: NOW - 50 * DAY,  # snapshot of the latest cycle: protected
        5: NOW - 14 * DAY + 1,  # positions just inside the window
        6: NOW - 14 * DAY - 1,  # positions just outside
        7: NOW - 1 * DAY,  # newest
        8: NOW - 31 * DAY,  # old, no positions
        9: NOW - 30 * DAY,  # exactly at the cutoff: kept (strictly before goes)
    }
    insert(engine, m.BalanceSnapshot, [snapshot(sid, t) for sid, t in snaps.items()])
    insert(engine, m.Position, [position(sid, sid) for sid in range(1, 8)])
    insert(
        engine,
        m.TakeProfitState,
        [{"id": 1, "baseline": None, "init_samples": [], "window": [], "cursor": 3, "updated_at": at(NOW)}],
    )
    insert(
        engine,
        m.ReconciliationCycle,
        [
            cycle("sched:a", NOW - 200 * DAY),
            cycle("sched:b", NOW - 190 * DAY),
            cycle("manual:c", NOW - 300 * DAY, outcome="requested"),
            cycle("sched:e", NOW - 181 * DAY, outcome="failed"),
            cycle("sched:d", NOW - 1 * DAY, snapshot_id=4),
        ],
    )
    insert(
        engine,
        m.ReconciliationLog,
        [
            log_row(1, "sched:a", NOW - 200 * DAY),
            log_row(2, "sched:a", NOW - 200 * DAY),
            log_row(3, "sched:b", NOW - 170 * DAY),
            log_row(4, "sched:d", NOW - 1 * DAY),
            log_row(5, "sched:b", NOW - 180 * DAY),  # exactly at the cutoff
        ],
    )
    insert(
        engine,
        m.OrderRecord,
        [
            order(1, NOW - 100 * DAY, "FILLED"),
            order(2, NOW - 100 * DAY, "RESTING"),  # may still rest on the exchange
            order(3, NOW - 100 * DAY, "SENT_UNKNOWN"),  # fate unknown
            order(4, NOW - 10 * DAY, "CANCELED"),
            order(5, NOW - 91 * DAY, "NOT_SENT"),
            order(6, NOW - 100 * DAY, "RECEIVED"),  # in flight
        ],
    )
    insert(engine, m.FillRecord, [fill(1, NOW - 91 * DAY), fill(2, NOW - 89 * DAY)])
    insert(
        engine,
        m.AuditEntry,
        [audit(1, NOW - 366 * DAY), audit(2, NOW - 364 * DAY), audit(3, NOW - 365 * DAY)],
    )


def test_retention_deletes_exactly_the_rows_before_each_cutoff(engine: Engine) -> None:
    _seed(engine)
    assert protected_snapshots(engine) == {3, 4, 9}  # cursor 3, latest cycle's 4, newest id 9

    result = prune_tables(engine, DAYS, FixedClock())

    assert result.deleted == {
        "positions": 3,  # of snapshots 1 (40 d), 2 (20 d) and 6 (14 d + 1 s)
        "balance_history": 2,  # 1 (its positions just went) and 8; 9 sits exactly on the cutoff
        "reconciliation_log": 2,  # both rows of sched:a
        "reconciliation_cycles": 2,  # sched:a and sched:e; sched:b still has a log row
        "fills": 1,
        "order_execution_log": 2,  # FILLED and NOT_SENT; RESTING, SENT_UNKNOWN, RECEIVED stay
        "audit_log": 1,
    }
    assert _ids(engine, m.Position.id) == [3, 4, 5, 7]
    assert _ids(engine, m.BalanceSnapshot.id) == [2, 3, 4, 5, 6, 7, 9]
    assert _ids(engine, m.ReconciliationLog.id) == [3, 4, 5]
    assert _ids(engine, m.ReconciliationCycle.cycle_id) == ["manual:c", "sched:b", "sched:d"]
    assert _ids(engine, m.OrderRecord.id) == [2, 3, 4, 6]
    assert _ids(engine, m.FillRecord.id) == [2]
    assert _ids(engine, m.AuditEntry.id) == [2, 3]

    again = prune_tables(engine, DAYS, FixedClock())
    assert again.total == 0


def test_zero_days_keeps_every_table_forever(engine: Engine) -> None:
    _seed(engine)
    result = prune_tables(engine, RetentionDays(0, 0, 0, 0, 0), FixedClock(NOW + 10_000 * DAY))
    assert result.total == 0
    assert len(_ids(engine, m.Position.id)) == 7
    assert len(_ids(engine, m.AuditEntry.id)) == 3


def test_defaults_follow_section_4_3() -> None:
    from ttt.config.models import Config

    days = RetentionDays.from_config(Config())
    assert days == RetentionDays(positions=14, balance_history=0, reconciliation=180, orders=0, audit=0)


def test_negative_days_are_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="retention audit"):
        RetentionDays(audit=-1)


def test_the_task_takes_its_lock_and_skips_when_held(engine: Engine) -> None:
    _seed(engine)
    locks = MemoryLockManager()
    token = locks.acquire(OPS_RETENTION_LOCK, 60)
    assert token is not None
    with pytest.raises(LockBusy):
        ops_retention(engine, locks, FixedClock(), DAYS)
    assert len(_ids(engine, m.AuditEntry.id)) == 3
    locks.release(OPS_RETENTION_LOCK, token)
    assert ops_retention(engine, locks, FixedClock(), DAYS).deleted["audit_log"] == 1
    assert locks.acquire(OPS_RETENTION_LOCK, 60) is not None  # released after the run
