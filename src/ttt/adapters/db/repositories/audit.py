"""`audit_log` (portfolio.md §17): append-only. There is no update method, and the only delete is the
retention job's (`audit.retention_days`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import AuditEntry, table_of
from ttt.adapters.db.types import as_utc

AUDIT = table_of(AuditEntry)
_C = AUDIT.c
SEVERITIES = ("info", "warning", "critical")


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def append(
        self,
        *,
        ts: datetime | float,
        kind: str,
        actor: str,
        message: str,
        payload: Mapping[str, Any] | None = None,
        severity: str = "info",
        cycle_id: str | None = None,
        symbol: str | None = None,
        client_order_id: str | None = None,
        lock_token: str | None = None,
    ) -> int:
        """Insert one row and return its id. Write-ahead callers commit before acting (§17)."""
        if severity not in SEVERITIES:
            raise ValueError(f"audit severity must be one of {SEVERITIES}, got {severity!r}")
        stmt = (
            sa.insert(AUDIT)
            .values(
                ts=as_utc(ts),
                kind=kind,
                actor=actor,
                cycle_id=cycle_id,
                symbol=symbol,
                client_order_id=client_order_id,
                lock_token=lock_token,
                severity=severity,
                message=message,
                payload=dict(payload or {}),
            )
            .returning(_C.id)
        )
        return int(self.session.execute(stmt).scalar_one())

    def tail(
        self,
        n: int = 50,
        *,
        cycle_id: str | None = None,
        kind: str | None = None,
        client_order_id: str | None = None,
    ) -> list[AuditEntry]:
        """The newest `n` matching rows, oldest first (`3t audit tail`)."""
        stmt = sa.select(AuditEntry)
        if cycle_id is not None:
            stmt = stmt.where(_C.cycle_id == cycle_id)
        if kind is not None:
            stmt = stmt.where(_C.kind == kind)
        if client_order_id is not None:
            stmt = stmt.where(_C.client_order_id == client_order_id)
        rows = list(self.session.scalars(stmt.order_by(_C.id.desc()).limit(n)))
        rows.reverse()
        return rows

    def delete_before(self, cutoff: datetime | float) -> int:
        """Retention only: rows with ts before the cutoff."""
        stmt = sa.delete(AUDIT).where(_C.ts < as_utc(cutoff))
        return int(self.session.connection().execute(stmt).rowcount)
