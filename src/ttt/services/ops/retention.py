"""`ttt.ops.retention` (services.md §2.1, §4.3): prune the operational tables per `retention.*` days.

What goes (cutoff = now − days·86 400 s on the Clock; 0 days keeps a table forever):
* positions (`retention.positions_days`): the rows of snapshots fetched before the cutoff;
* balance_history (`retention.balance_history_days`): snapshots fetched before the cutoff that have no
  position rows left;
* reconciliation_log and reconciliation_cycles (`retention.reconciliation_days`): log rows created before
  the cutoff, then finished cycles scheduled before it that have no log rows left;
* fills and order_execution_log (`retention.orders_days`): fills by exchange time, orders created before
  the cutoff whose status is final;
* audit_log (`audit.retention_days`): rows before the cutoff.

What is never deleted, whatever the age (money safety: the engine must keep
what it decides from): the snapshot `take_profit_state.cursor` points at, the snapshot of the latest cycle,
the newest snapshot (and the positions of all three); an order whose status is not final (it may still be
resting on the exchange); a cycle that is still `requested` or `running`; the newest cycle.

Ids are selected first and deleted in small batches by primary key: MariaDB refuses a DELETE whose subquery
reads the same table, and short transactions never hold a table for long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ttt.adapters.db import models as m
from ttt.adapters.db.types import utc_from_epoch
from ttt.ports import Clock, LockManager
from ttt.services.gateway.model import NOT_SENT, TERMINAL
from ttt.services.locking import run_locked

log = logging.getLogger(__name__)

OPS_RETENTION_LOCK = "ops:retention"
OPS_RETENTION_LOCK_TTL_S = 3600
DAY_S = 86_400
BATCH = 1000
FINAL_ORDER_STATUSES = tuple(sorted(TERMINAL | {NOT_SENT}))
UNFINISHED_CYCLES = ("requested", "running")


@dataclass(frozen=True)
class RetentionDays:
    """Days per table group; 0 keeps forever."""

    positions: int = 14
    balance_history: int = 0
    reconciliation: int = 180
    orders: int = 0
    audit: int = 0

    @classmethod
    def from_config(cls, config: Any) -> RetentionDays:
        r = config.retention
        return cls(
            positions=int(r.positions_days),
            balance_history=int(r.balance_history_days),
            reconciliation=int(r.reconciliation_days),
            orders=int(r.orders_days),
            audit=int(config.audit.retention_days),
        )

    def __post_init__(self) -> None:
        for name in ("positions", "balance_history", "reconciliation", "orders", "audit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {name}: expected whole days ≥ 0, got {value!r}")


@dataclass
class OpsRetentionResult:
    deleted: dict[str, int] = field(default_factory=dict)
    protected_snapshots: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def _cutoff(now: float, days: int) -> Any:
    return utc_from_epoch(now - days * DAY_S) if days > 0 else None


def _batches(ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(ids), BATCH):
        yield ids[i : i + BATCH]


def _delete_ids(engine: Engine, column: Any, ids: Sequence[Any]) -> int:
    deleted = 0
    for chunk in _batches(ids):
        with engine.begin() as conn:
            deleted += conn.execute(sa.delete(column.table).where(column.in_(chunk))).rowcount or 0
    return deleted


def protected_snapshots(engine: Engine) -> set[int]:
    """Snapshot ids retention must keep: the take-profit cursor, the latest cycle's and the newest one."""
    with engine.connect() as conn:
        keep: set[int] = set()
        cursor = conn.execute(sa.select(m.TakeProfitState.cursor)).scalars().all()
        keep.update(int(c) for c in cursor if c)
        latest_cycle = conn.execute(
            sa.select(m.ReconciliationCycle.snapshot_id)
            .where(m.ReconciliationCycle.snapshot_id.is_not(None))
            .order_by(m.ReconciliationCycle.scheduled_at.desc())
            .limit(1)
        ).scalar()
        if latest_cycle is not None:
            keep.add(int(latest_cycle))
        newest = conn.execute(sa.select(sa.func.max(m.BalanceSnapshot.id))).scalar()
        if newest is not None:
            keep.add(int(newest))
    return keep


def _old_snapshots(engine: Engine, cutoff: Any, keep: set[int]) -> list[int]:
    with engine.connect() as conn:
        ids = conn.execute(
            sa.select(m.BalanceSnapshot.id).where(m.BalanceSnapshot.fetched_at < cutoff)
        ).scalars()
        return [int(i) for i in ids if int(i) not in keep]


def prune_positions(engine: Engine, now: float, days: int, keep: set[int]) -> int:
    cutoff = _cutoff(now, days)
    if cutoff is None:
        return 0
    snapshots = _old_snapshots(engine, cutoff, keep)
    ids: list[int] = []
    with engine.connect() as conn:
        for chunk in _batches(snapshots):
            ids += conn.execute(sa.select(m.Position.id).where(m.Position.snapshot_id.in_(chunk))).scalars()
    return _delete_ids(engine, m.Position.id, ids)


def prune_balance_history(engine: Engine, now: float, days: int, keep: set[int]) -> int:
    """Only snapshots without position rows go: positions kept forever keep their snapshot (FK)."""
    cutoff = _cutoff(now, days)
    if cutoff is None:
        return 0
    snapshots = _old_snapshots(engine, cutoff, keep)
    with engine.connect() as conn:
        with_positions = set(conn.execute(sa.select(m.Position.snapshot_id).distinct()).scalars())
    return _delete_ids(engine, m.BalanceSnapshot.id, [s for s in snapshots if s not in with_positions])


def prune_reconciliation(engine: Engine, now: float, days: int) -> tuple[int, int]:
    cutoff = _cutoff(now, days)
    if cutoff is None:
        return 0, 0
    c = m.ReconciliationCycle
    with engine.connect() as conn:
        log_ids = list(
            conn.execute(
                sa.select(m.ReconciliationLog.id).where(m.ReconciliationLog.created_at < cutoff)
            ).scalars()
        )
    logs = _delete_ids(engine, m.ReconciliationLog.id, log_ids)
    with engine.connect() as conn:
        newest = conn.execute(sa.select(c.cycle_id).order_by(c.scheduled_at.desc()).limit(1)).scalar()
        referenced = set(conn.execute(sa.select(m.ReconciliationLog.cycle_id).distinct()).scalars())
        candidates = conn.execute(
            sa.select(c.cycle_id).where(c.scheduled_at < cutoff, c.outcome.not_in(UNFINISHED_CYCLES))
        ).scalars()
        cycle_ids = [cid for cid in candidates if cid != newest and cid not in referenced]
    return logs, _delete_ids(engine, c.cycle_id, cycle_ids)


def prune_orders(engine: Engine, now: float, days: int) -> tuple[int, int]:
    cutoff = _cutoff(now, days)
    if cutoff is None:
        return 0, 0
    with engine.connect() as conn:
        fill_ids = list(
            conn.execute(sa.select(m.FillRecord.id).where(m.FillRecord.exchange_time < cutoff)).scalars()
        )
        order_ids = list(
            conn.execute(
                sa.select(m.OrderRecord.id).where(
                    m.OrderRecord.created_at < cutoff, m.OrderRecord.status.in_(FINAL_ORDER_STATUSES)
                )
            ).scalars()
        )
    return _delete_ids(engine, m.FillRecord.id, fill_ids), _delete_ids(engine, m.OrderRecord.id, order_ids)


def prune_audit(engine: Engine, now: float, days: int) -> int:
    cutoff = _cutoff(now, days)
    if cutoff is None:
        return 0
    with engine.connect() as conn:
        ids = list(conn.execute(sa.select(m.AuditEntry.id).where(m.AuditEntry.ts < cutoff)).scalars())
    return _delete_ids(engine, m.AuditEntry.id, ids)


def prune_tables(engine: Engine, days: RetentionDays, clock: Clock) -> OpsRetentionResult:
    """Every table group in turn; positions before balance_history so the snapshots they free can go."""
    now = clock.now()
    keep = protected_snapshots(engine)
    result = OpsRetentionResult(protected_snapshots=sorted(keep))
    d = result.deleted
    d["positions"] = prune_positions(engine, now, days.positions, keep)
    d["balance_history"] = prune_balance_history(engine, now, days.balance_history, keep)
    d["reconciliation_log"], d["reconciliation_cycles"] = prune_reconciliation(
        engine, now, days.reconciliation
    )
    d["fills"], d["order_execution_log"] = prune_orders(engine, now, days.orders)
    d["audit_log"] = prune_audit(engine, now, days.audit)
    log.info("ops retention deleted %s", {k: v for k, v in d.items() if v} or "nothing")
    return result


def ops_retention(
    engine: Engine, locks: LockManager, clock: Clock, days: RetentionDays
) -> OpsRetentionResult:
    """The scheduled task: raises `LockBusy` when another retention run holds `ops:retention`."""
    return run_locked(
        locks, OPS_RETENTION_LOCK, OPS_RETENTION_LOCK_TTL_S, lambda _t: prune_tables(engine, days, clock)
    )


__all__ = [
    "OPS_RETENTION_LOCK",
    "OpsRetentionResult",
    "RetentionDays",
    "ops_retention",
    "protected_snapshots",
    "prune_tables",
]
