"""`reconciliation_cycles` and `reconciliation_log` (portfolio.md §1, services.md §4.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import ReconciliationCycle, ReconciliationLog, table_of
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc

CYCLES = table_of(ReconciliationCycle)
LOG = table_of(ReconciliationLog)
FINISHED = ("completed", "market_closed")
_CYCLE_FIELDS = frozenset(c.key for c in CYCLES.c) - {"cycle_id"}


class ReconciliationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def cycle(self, cycle_id: str) -> ReconciliationCycle | None:
        return self.session.get(ReconciliationCycle, cycle_id)

    def add_cycle(self, cycle: ReconciliationCycle) -> None:
        """Insert a cycle row; an existing cycle id is a unique-key error (ids de-duplicate, §1.1)."""
        self.session.add(cycle)
        self.session.flush()

    def request_cycle(self, cycle_id: str, trigger: str, scheduled_at: datetime | float) -> bool:
        """A `requested` row for the running embedded process (services.md §1.2); False if the id exists."""
        if self.cycle(cycle_id) is not None:
            return False
        self.add_cycle(
            ReconciliationCycle(
                cycle_id=cycle_id,
                trigger=trigger,
                scheduled_at=as_utc(scheduled_at),
                outcome="requested",
                symbols=0,
                orders_sent=0,
                holds=0,
            )
        )
        return True

    def update_cycle(self, cycle_id: str, **fields: Any) -> bool:
        unknown = set(fields) - _CYCLE_FIELDS
        if unknown:
            raise TypeError(f"unknown reconciliation_cycles column(s): {', '.join(sorted(unknown))}")
        stmt = sa.update(ReconciliationCycle).where(ReconciliationCycle.cycle_id == cycle_id).values(**fields)
        return bool(execute_count(self.session, stmt))

    def requested_cycles(self) -> list[ReconciliationCycle]:
        stmt = (
            sa.select(ReconciliationCycle)
            .where(ReconciliationCycle.outcome == "requested")
            .order_by(ReconciliationCycle.scheduled_at)
        )
        return list(self.session.scalars(stmt))

    def recent_cycles(self, limit: int = 50) -> list[ReconciliationCycle]:
        stmt = sa.select(ReconciliationCycle).order_by(ReconciliationCycle.scheduled_at.desc()).limit(limit)
        return list(self.session.scalars(stmt))

    def latest_finished(self) -> ReconciliationCycle | None:
        stmt = (
            sa.select(ReconciliationCycle)
            .where(ReconciliationCycle.outcome.in_(FINISHED))
            .order_by(ReconciliationCycle.finished_at.desc())
            .limit(1)
        )
        return self.session.scalars(stmt).one_or_none()

    def add_log_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Per-symbol rows of a cycle in one multi-row statement."""
        if not rows:
            return 0
        self.session.connection().execute(sa.insert(LOG), [dict(r) for r in rows])
        return len(rows)

    def log_for_cycle(self, cycle_id: str) -> list[ReconciliationLog]:
        stmt = sa.select(ReconciliationLog).where(ReconciliationLog.cycle_id == cycle_id)
        return list(self.session.scalars(stmt.order_by(ReconciliationLog.id)))

    def delete_before(self, cutoff: datetime | float) -> int:
        """Retention: cycles scheduled before the cutoff and their log rows; returns cycles deleted."""
        at = as_utc(cutoff)
        conn = self.session.connection()
        old = sa.select(CYCLES.c.cycle_id).where(CYCLES.c.scheduled_at < at)
        conn.execute(sa.delete(LOG).where(LOG.c.cycle_id.in_(old.scalar_subquery())))
        return int(conn.execute(sa.delete(CYCLES).where(CYCLES.c.scheduled_at < at)).rowcount)
