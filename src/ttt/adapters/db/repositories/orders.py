"""`order_execution_log` and `fills` (portfolio.md §11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ttt.adapters.db.models import FillRecord, OrderRecord, table_of
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc

ORDERS = table_of(OrderRecord)
FILLS = table_of(FillRecord)
TERMINAL = ("FILLED", "PARTIAL", "CANCELED", "REJECTED", "EXPIRED_UNKNOWN")
_ORDER_FIELDS = frozenset(c.key for c in ORDERS.c) - {"id", "client_order_id", "updated_at"}


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, order: OrderRecord) -> int:
        """Insert a new record; a second row for a client_order_id is a unique-key error (§11.3)."""
        self.session.add(order)
        self.session.flush()
        return int(order.id)

    def by_client_order_id(self, client_order_id: str) -> OrderRecord | None:
        stmt = sa.select(OrderRecord).where(OrderRecord.client_order_id == client_order_id)
        return self.session.scalars(stmt).one_or_none()

    def update(self, client_order_id: str, now: datetime | float, **fields: Any) -> bool:
        """Status and fill updates; `updated_at` is always set to `now`."""
        unknown = set(fields) - _ORDER_FIELDS
        if unknown:
            raise TypeError(f"unknown order_execution_log column(s): {', '.join(sorted(unknown))}")
        stmt = (
            sa.update(OrderRecord)
            .where(OrderRecord.client_order_id == client_order_id)
            .values(updated_at=as_utc(now), **fields)
        )
        return bool(execute_count(self.session, stmt))

    def list_orders(
        self,
        *,
        status: str | Sequence[str] | None = None,
        symbol: str | None = None,
        cycle_id: str | None = None,
        limit: int = 100,
    ) -> list[OrderRecord]:
        """Newest first (`3t orders list`, the resolver's SENT_UNKNOWN / RESTING scan)."""
        stmt = sa.select(OrderRecord)
        if isinstance(status, str):
            stmt = stmt.where(OrderRecord.status == status)
        elif status is not None:
            stmt = stmt.where(OrderRecord.status.in_(list(status)))
        if symbol is not None:
            stmt = stmt.where(OrderRecord.symbol == symbol)
        if cycle_id is not None:
            stmt = stmt.where(OrderRecord.cycle_id == cycle_id)
        return list(self.session.scalars(stmt.order_by(OrderRecord.id.desc()).limit(limit)))

    def delete_closed_before(self, cutoff: datetime | float) -> int:
        """Retention (`retention.orders_days`): terminal records created before the cutoff."""
        stmt = sa.delete(ORDERS).where(ORDERS.c.created_at < as_utc(cutoff), ORDERS.c.status.in_(TERMINAL))
        return int(self.session.connection().execute(stmt).rowcount)


class FillRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_new(self, fills: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert fills not yet stored, keyed on (exchange_id, trade_id); returns the new trade ids.

        Existing ids are filtered first and the rest go in one statement; only when a concurrent writer
        wins the race does it fall back to one savepoint per row. No INSERT IGNORE: on MariaDB it would
        also swallow truncation errors.
        """
        if not fills:
            return []
        rows: dict[tuple[int, str], dict[str, Any]] = {}
        for f in fills:
            rows.setdefault((int(f["exchange_id"]), str(f["trade_id"])), dict(f))
        existing: set[tuple[int, str]] = set()
        for exchange_id in {k[0] for k in rows}:
            ids = [k[1] for k in rows if k[0] == exchange_id]
            for i in range(0, len(ids), 500):
                stmt = sa.select(FILLS.c.trade_id).where(
                    FILLS.c.exchange_id == exchange_id, FILLS.c.trade_id.in_(ids[i : i + 500])
                )
                existing.update((exchange_id, str(t)) for t in self.session.execute(stmt).scalars())
        new = [row for key, row in rows.items() if key not in existing]
        if not new:
            return []
        try:
            with self.session.begin_nested():
                self.session.connection().execute(sa.insert(FILLS), new)
            return [str(r["trade_id"]) for r in new]
        except IntegrityError:
            inserted = []
            for row in new:
                try:
                    with self.session.begin_nested():
                        self.session.connection().execute(sa.insert(FILLS), [row])
                    inserted.append(str(row["trade_id"]))
                except IntegrityError:
                    continue
            return inserted

    def for_client_order_id(self, client_order_id: str) -> list[FillRecord]:
        stmt = sa.select(FillRecord).where(FillRecord.client_order_id == client_order_id)
        return list(self.session.scalars(stmt.order_by(FillRecord.exchange_time, FillRecord.id)))

    def recent(self, limit: int = 100, symbol: str | None = None) -> list[FillRecord]:
        stmt = sa.select(FillRecord)
        if symbol is not None:
            stmt = stmt.where(FillRecord.symbol == symbol)
        return list(self.session.scalars(stmt.order_by(FillRecord.exchange_time.desc()).limit(limit)))

    def latest_exchange_time(self, exchange_id: int) -> datetime | None:
        stmt = sa.select(sa.func.max(FILLS.c.exchange_time)).where(FILLS.c.exchange_id == exchange_id)
        value: datetime | None = self.session.execute(stmt).scalar()
        return value

    def delete_before(self, cutoff: datetime | float) -> int:
        stmt = sa.delete(FILLS).where(FILLS.c.exchange_time < as_utc(cutoff))
        return int(self.session.connection().execute(stmt).rowcount)
