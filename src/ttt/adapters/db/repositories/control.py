"""`control_requests`: CLI commands handed to a running `3t run` (services.md §1.2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import ControlRequest
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc


class ControlRequestRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, kind: str, payload: Any, now: datetime | float) -> int:
        row = ControlRequest(kind=kind, payload=payload, requested_at=as_utc(now))
        self.session.add(row)
        self.session.flush()
        return int(row.id)

    def get(self, request_id: int) -> ControlRequest | None:
        return self.session.get(ControlRequest, request_id)

    def pending(self, kinds: Sequence[str] | None = None) -> list[ControlRequest]:
        stmt = sa.select(ControlRequest).where(ControlRequest.picked_at.is_(None))
        if kinds is not None:
            stmt = stmt.where(ControlRequest.kind.in_(list(kinds)))
        return list(self.session.scalars(stmt.order_by(ControlRequest.id)))

    def pick(self, request_id: int, now: datetime | float) -> bool:
        """Claim a request; False when another picker already has it."""
        stmt = (
            sa.update(ControlRequest)
            .where(ControlRequest.id == request_id, ControlRequest.picked_at.is_(None))
            .values(picked_at=as_utc(now))
        )
        return bool(execute_count(self.session, stmt))

    def finish(self, request_id: int, result: Any) -> bool:
        stmt = sa.update(ControlRequest).where(ControlRequest.id == request_id).values(result=result)
        return bool(execute_count(self.session, stmt))
