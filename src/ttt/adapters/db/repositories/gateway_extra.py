"""Queries the order gateway needs beyond `OrderRepository` (portfolio.md §11.8): keyset pages of
`order_execution_log`, newest first, with a time bound."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import OrderRecord
from ttt.adapters.db.types import as_utc


class GatewayOrderQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    def page(
        self,
        *,
        cycle_id: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        since: datetime | float | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> tuple[list[OrderRecord], int | None]:
        """Up to `limit` records with id < before_id, newest first, and the cursor of the next page."""
        stmt = sa.select(OrderRecord)
        if cycle_id is not None:
            stmt = stmt.where(OrderRecord.cycle_id == cycle_id)
        if symbol is not None:
            stmt = stmt.where(OrderRecord.symbol == symbol)
        if status is not None:
            stmt = stmt.where(OrderRecord.status == status)
        if since is not None:
            stmt = stmt.where(OrderRecord.created_at >= as_utc(since))
        if before_id is not None:
            stmt = stmt.where(OrderRecord.id < before_id)
        rows = list(self.session.scalars(stmt.order_by(OrderRecord.id.desc()).limit(limit + 1)))
        if len(rows) > limit:
            return rows[:limit], int(rows[limit - 1].id)
        return rows, None

    def by_client_order_ids(self, cloids: list[str]) -> dict[str, OrderRecord]:
        if not cloids:
            return {}
        stmt = sa.select(OrderRecord).where(OrderRecord.client_order_id.in_(cloids))
        return {r.client_order_id: r for r in self.session.scalars(stmt)}
