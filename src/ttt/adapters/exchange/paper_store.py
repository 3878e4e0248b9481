"""State of the paper exchange behind a small store interface.

The engine reads a record, changes it and puts it back, so a database-backed store (the paper tables of
services.md §4.2) can replace the in-memory one without touching the matching logic. Positions keep their
exact cost basis (Σ signed size·price) rather than a rounded entry price, so that realised plus unrealised
PnL reconciles with cash to the last decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from ttt.domain.orders import Fill, Side, TimeInForce

PaperOrderStatus = Literal["open", "filled", "canceled", "rejected"]
LedgerKind = Literal["funding", "fee", "realized_pnl", "deposit", "liquidation"]


@dataclass(frozen=True)
class PaperPosition:
    wallet: str
    symbol: str
    size: Decimal
    cost: Decimal
    cum_funding: Decimal = Decimal(0)
    funding_since_open: Decimal = Decimal(0)
    updated_ms: int = 0

    @property
    def entry_price(self) -> Decimal | None:
        return None if self.size == 0 else self.cost / self.size


@dataclass(frozen=True)
class PaperOrder:
    oid: int
    cloid: str | None
    wallet: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    remaining: Decimal
    tif: TimeInForce
    reduce_only: bool
    status: PaperOrderStatus
    created_ms: int
    closed_ms: int | None = None
    filled_size: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    error_text: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    wallet: str
    ts_ms: int
    kind: LedgerKind
    symbol: str | None
    amount: Decimal
    ref: str


class PaperStore(Protocol):
    def cash(self, wallet: str) -> Decimal | None: ...

    def set_cash(self, wallet: str, cash: Decimal) -> None: ...

    def wallets(self) -> list[str]: ...

    def position(self, wallet: str, symbol: str) -> PaperPosition | None: ...

    def positions(self, wallet: str) -> list[PaperPosition]: ...

    def put_position(self, position: PaperPosition) -> None:
        """A position of size 0 is deleted."""
        ...

    def leverage(self, wallet: str, symbol: str) -> int | None: ...

    def set_leverage(self, wallet: str, symbol: str, leverage: int) -> None: ...

    def next_oid(self) -> int: ...

    def put_order(self, order: PaperOrder) -> None: ...

    def order_by_oid(self, wallet: str, oid: int) -> PaperOrder | None: ...

    def order_by_cloid(self, wallet: str, cloid: str) -> PaperOrder | None: ...

    def open_orders(self, wallet: str | None = None, symbol: str | None = None) -> list[PaperOrder]:
        """Ascending oid, i.e. placement order."""
        ...

    def next_tid(self) -> int: ...

    def add_trade(self, wallet: str, fill: Fill) -> None: ...

    def trades(self, wallet: str, since_ms: int = 0) -> list[Fill]: ...

    def add_ledger(
        self, wallet: str, ts_ms: int, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str
    ) -> LedgerEntry: ...

    def ledger(self, wallet: str) -> list[LedgerEntry]: ...

    def funding_hour(self) -> int | None:
        """The last whole hour (epoch hours) whose funding was settled."""
        ...

    def set_funding_hour(self, hour: int) -> None: ...


class InMemoryPaperStore:
    def __init__(self) -> None:
        self._cash: dict[str, Decimal] = {}
        self._positions: dict[tuple[str, str], PaperPosition] = {}
        self._leverage: dict[tuple[str, str], int] = {}
        self._orders: dict[int, PaperOrder] = {}
        self._cloids: dict[tuple[str, str], int] = {}
        self._trades: dict[str, list[Fill]] = {}
        self._ledger: dict[str, list[LedgerEntry]] = {}
        self._oid = 0
        self._tid = 0
        self._ledger_id = 0
        self._funding_hour: int | None = None

    def cash(self, wallet: str) -> Decimal | None:
        return self._cash.get(wallet)

    def set_cash(self, wallet: str, cash: Decimal) -> None:
        self._cash[wallet] = cash

    def wallets(self) -> list[str]:
        return sorted(self._cash)

    def position(self, wallet: str, symbol: str) -> PaperPosition | None:
        return self._positions.get((wallet, symbol))

    def positions(self, wallet: str) -> list[PaperPosition]:
        return [p for (w, _), p in sorted(self._positions.items()) if w == wallet]

    def put_position(self, position: PaperPosition) -> None:
        key = (position.wallet, position.symbol)
        if position.size == 0:
            self._positions.pop(key, None)
        else:
            self._positions[key] = position

    def leverage(self, wallet: str, symbol: str) -> int | None:
        return self._leverage.get((wallet, symbol))

    def set_leverage(self, wallet: str, symbol: str, leverage: int) -> None:
        self._leverage[(wallet, symbol)] = leverage

    def next_oid(self) -> int:
        self._oid += 1
        return self._oid

    def put_order(self, order: PaperOrder) -> None:
        self._orders[order.oid] = order
        if order.cloid is not None:
            self._cloids.setdefault((order.wallet, order.cloid.lower()), order.oid)

    def order_by_oid(self, wallet: str, oid: int) -> PaperOrder | None:
        order = self._orders.get(oid)
        return order if order is not None and order.wallet == wallet else None

    def order_by_cloid(self, wallet: str, cloid: str) -> PaperOrder | None:
        oid = self._cloids.get((wallet, cloid.lower()))
        return None if oid is None else self._orders[oid]

    def open_orders(self, wallet: str | None = None, symbol: str | None = None) -> list[PaperOrder]:
        return [
            o
            for _, o in sorted(self._orders.items())
            if o.status == "open"
            and (wallet is None or o.wallet == wallet)
            and (symbol is None or o.symbol == symbol)
        ]

    def next_tid(self) -> int:
        self._tid += 1
        return self._tid

    def add_trade(self, wallet: str, fill: Fill) -> None:
        self._trades.setdefault(wallet, []).append(fill)

    def trades(self, wallet: str, since_ms: int = 0) -> list[Fill]:
        return [f for f in self._trades.get(wallet, []) if f.ts_ms >= since_ms]

    def add_ledger(
        self, wallet: str, ts_ms: int, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str
    ) -> LedgerEntry:
        self._ledger_id += 1
        entry = LedgerEntry(self._ledger_id, wallet, ts_ms, kind, symbol, amount, ref)
        self._ledger.setdefault(wallet, []).append(entry)
        return entry

    def ledger(self, wallet: str) -> list[LedgerEntry]:
        return list(self._ledger.get(wallet, []))

    def funding_hour(self) -> int | None:
        return self._funding_hour

    def set_funding_hour(self, hour: int) -> None:
        self._funding_hour = hour


__all__ = [
    "InMemoryPaperStore",
    "LedgerEntry",
    "LedgerKind",
    "PaperOrder",
    "PaperOrderStatus",
    "PaperPosition",
    "PaperStore",
]
