"""Paper exchange tables (services.md §4.2): accounts, positions, orders, trades, ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import PaperAccount, PaperLedgerEntry, PaperOrder, PaperPosition, PaperTrade
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc

ORDER_STATUSES = ("open", "filled", "canceled", "rejected")
LEDGER_KINDS = ("funding", "fee", "realized_pnl", "deposit", "liquidation")
_ORDER_FIELDS = frozenset({"remaining", "status", "closed_at", "price", "size"})


class PaperRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- accounts ----------------------------------------------------------------------------------

    def account(self, wallet: str) -> PaperAccount | None:
        return self.session.get(PaperAccount, wallet)

    def put_account(self, wallet: str, cash: Decimal, now: datetime | float) -> PaperAccount:
        row = self.account(wallet)
        if row is None:
            row = PaperAccount(wallet=wallet, cash=cash, created_at=as_utc(now))
            self.session.add(row)
        else:
            row.cash = cash
        self.session.flush()
        return row

    # --- positions ---------------------------------------------------------------------------------

    def position(self, wallet: str, symbol: str) -> PaperPosition | None:
        return self.session.get(PaperPosition, (wallet, symbol))

    def positions(self, wallet: str) -> list[PaperPosition]:
        stmt = sa.select(PaperPosition).where(PaperPosition.wallet == wallet).order_by(PaperPosition.symbol)
        return list(self.session.scalars(stmt))

    def put_position(self, position: PaperPosition) -> PaperPosition:
        """Insert or replace by (wallet, symbol); a closed position is kept with size 0."""
        merged = self.session.merge(position)
        self.session.flush()
        return merged

    # --- orders ------------------------------------------------------------------------------------

    def add_order(self, order: PaperOrder) -> int:
        """Insert and return the increasing oid; a cloid reused by a wallet is a unique-key error."""
        if order.status not in ORDER_STATUSES:
            raise ValueError(f"paper order status must be one of {ORDER_STATUSES}, got {order.status!r}")
        self.session.add(order)
        self.session.flush()
        return int(order.oid)

    def order(self, oid: int) -> PaperOrder | None:
        return self.session.get(PaperOrder, oid)

    def order_by_cloid(self, wallet: str, cloid: str) -> PaperOrder | None:
        stmt = sa.select(PaperOrder).where(PaperOrder.wallet == wallet, PaperOrder.cloid == cloid)
        return self.session.scalars(stmt).one_or_none()

    def open_orders(self, wallet: str, symbol: str | None = None) -> list[PaperOrder]:
        stmt = sa.select(PaperOrder).where(PaperOrder.wallet == wallet, PaperOrder.status == "open")
        if symbol is not None:
            stmt = stmt.where(PaperOrder.symbol == symbol)
        return list(self.session.scalars(stmt.order_by(PaperOrder.oid)))

    def update_order(self, oid: int, **fields: Any) -> bool:
        unknown = set(fields) - _ORDER_FIELDS
        if unknown:
            raise TypeError(f"paper order field(s) cannot be updated: {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in ORDER_STATUSES:
            raise ValueError(f"paper order status must be one of {ORDER_STATUSES}")
        stmt = sa.update(PaperOrder).where(PaperOrder.oid == oid).values(**fields)
        return bool(execute_count(self.session, stmt))

    # --- trades and ledger -------------------------------------------------------------------------

    def add_trade(self, trade: PaperTrade) -> int:
        self.session.add(trade)
        self.session.flush()
        return int(trade.tid)

    def trades(self, wallet: str, since: datetime | float | None = None) -> list[PaperTrade]:
        stmt = sa.select(PaperTrade).where(PaperTrade.wallet == wallet)
        if since is not None:
            stmt = stmt.where(PaperTrade.ts >= as_utc(since))
        return list(self.session.scalars(stmt.order_by(PaperTrade.tid)))

    def add_ledger(self, entry: PaperLedgerEntry) -> int:
        if entry.kind not in LEDGER_KINDS:
            raise ValueError(f"paper ledger kind must be one of {LEDGER_KINDS}, got {entry.kind!r}")
        self.session.add(entry)
        self.session.flush()
        return int(entry.id)

    def ledger(
        self, wallet: str, *, kind: str | None = None, since: datetime | float | None = None
    ) -> list[PaperLedgerEntry]:
        stmt = sa.select(PaperLedgerEntry).where(PaperLedgerEntry.wallet == wallet)
        if kind is not None:
            stmt = stmt.where(PaperLedgerEntry.kind == kind)
        if since is not None:
            stmt = stmt.where(PaperLedgerEntry.ts >= as_utc(since))
        return list(self.session.scalars(stmt.order_by(PaperLedgerEntry.id)))
