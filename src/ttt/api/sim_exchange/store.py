"""The simulator's paper stores: in memory, or in a SQLite file (`3t sim-exchange --db`).

Both add to the engine's store what the Hyperliquid API shows but the engine does not keep: each funding
payment with the position size and rate it was computed from (`userFunding`), and every order ever
placed (`/_sim/state`). The SQL variant keeps both in the paper tables of services.md §4.2, so a restarted
simulator answers exactly as before: orders are rows of `paper_orders`, and a funding payment is its
`paper_ledger` row, whose `ref` carries the size and rate next to the engine's `hour:N`
(`hour:N;szi:S;rate:R`); nothing reads that ref back but this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from ttt.adapters.db import models as m
from ttt.adapters.exchange.paper import fmt_decimal
from ttt.adapters.exchange.paper_sql import SqlPaperStore
from ttt.adapters.exchange.paper_store import InMemoryPaperStore, LedgerEntry, LedgerKind, PaperOrder
from ttt.ports import Clock

RateOf = Callable[[str, float], Decimal]
CoinOf = Callable[[str], str]
_REF_MAX = 128  # paper_ledger.ref


@dataclass(frozen=True)
class FundingEvent:
    wallet: str
    time_ms: int
    coin: str
    usdc: Decimal
    szi: Decimal
    rate: Decimal


def _funding_hour(kind: LedgerKind, symbol: str | None, ref: str) -> int | None:
    if kind != "funding" or symbol is None or not ref.startswith("hour:"):
        return None
    try:
        return int(ref[5:].split(";", 1)[0])
    except ValueError:
        return None


class SimStore(InMemoryPaperStore):
    """The in-memory store of a simulator started without `--db`."""

    def __init__(self, rate_of: RateOf, coin_of: CoinOf) -> None:
        super().__init__()
        self._rate_of = rate_of
        self._coin_of = coin_of
        self.funding_events: list[FundingEvent] = []
        self.all_oids: list[int] = []

    def put_order(self, order: PaperOrder) -> None:
        if self.order_by_oid(order.wallet, order.oid) is None:
            self.all_oids.append(order.oid)
        super().put_order(order)

    def all_orders(self) -> list[PaperOrder]:
        return [o for oid in self.all_oids if (o := self._orders.get(oid)) is not None]

    def add_ledger(
        self, wallet: str, ts_ms: int, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str
    ) -> LedgerEntry:
        hour = _funding_hour(kind, symbol, ref)
        if hour is not None and symbol is not None:
            pos = self.position(wallet, symbol)
            self.funding_events.append(
                FundingEvent(
                    wallet=wallet,
                    time_ms=hour * 3_600_000,
                    coin=self._coin_of(symbol),
                    usdc=amount,
                    szi=pos.size if pos is not None else Decimal(0),
                    rate=self._rate_of(symbol, hour * 3600.0),
                )
            )
        return super().add_ledger(wallet, ts_ms, kind, symbol, amount, ref)


class SqlSimStore(SqlPaperStore):
    """The paper tables of one SQLite file; the simulator is the only engine writing them."""

    def __init__(self, engine: Engine, clock: Clock, rate_of: RateOf, coin_of: CoinOf) -> None:
        super().__init__(engine, clock)
        self._engine = engine
        self._rate_of = rate_of
        self._coin_of = coin_of

    def add_ledger(
        self, wallet: str, ts_ms: int, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str
    ) -> LedgerEntry:
        hour = _funding_hour(kind, symbol, ref)
        if hour is not None and symbol is not None:
            pos = self.position(wallet, symbol)
            szi = pos.size if pos is not None else Decimal(0)
            rate = self._rate_of(symbol, hour * 3600.0)
            detailed = f"hour:{hour};szi:{fmt_decimal(szi)};rate:{fmt_decimal(rate)}"
            if len(detailed) <= _REF_MAX:
                ref = detailed
        return super().add_ledger(wallet, ts_ms, kind, symbol, amount, ref)

    def all_orders(self) -> list[PaperOrder]:
        with self._tx(write=False) as s:
            return [self._order(r) for r in s.scalars(sa.select(m.PaperOrder).order_by(m.PaperOrder.oid))]

    @property
    def funding_events(self) -> list[FundingEvent]:
        stmt = (
            sa.select(m.PaperLedgerEntry)
            .where(m.PaperLedgerEntry.kind == "funding")
            .order_by(m.PaperLedgerEntry.id)
        )
        with self._tx(write=False) as s:
            rows = list(s.scalars(stmt))
        out = []
        for row in rows:
            hour = _funding_hour("funding", row.symbol, row.ref or "")
            if hour is None or row.symbol is None:
                continue
            fields = dict(part.split(":", 1) for part in (row.ref or "").split(";")[1:] if ":" in part)
            out.append(
                FundingEvent(
                    wallet=row.wallet,
                    time_ms=hour * 3_600_000,
                    coin=self._coin_of(row.symbol),
                    usdc=row.amount,
                    szi=_decimal(fields.get("szi"), Decimal(0)),
                    rate=_decimal(fields.get("rate"), self._rate_of(row.symbol, hour * 3600.0)),
                )
            )
        return out

    def clear(self) -> None:
        """Delete every paper row (`POST /_sim/reset` on a simulator with `--db`)."""
        with self._engine.begin() as conn:
            for table in (m.PaperTrade, m.PaperOrder, m.PaperLedgerEntry, m.PaperPosition, m.PaperAccount):
                conn.execute(sa.delete(table))
        self._oid = self._tid = self._hour = None

    def close(self) -> None:
        self._engine.dispose()


def _decimal(text: str | None, default: Decimal) -> Decimal:
    if text is None:
        return default
    try:
        return Decimal(text)
    except InvalidOperation:
        return default


def open_sqlite(path: Path) -> Engine:
    """The engine of the simulator's SQLite file, migrated to the head revision (created if missing)."""
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.migrate import upgrade

    engine = make_engine(URL.create("sqlite", database=str(path)))
    upgrade(engine)
    return engine
