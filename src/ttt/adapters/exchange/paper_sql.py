"""`PaperStore` over the paper tables (services.md §4.2), so the paper engine survives restarts.

Mapping onto the tables:
* `paper_accounts`: cash; `funding_hour` (revision 0002) is the last settled funding hour. The engine
  settles every account together, so all rows carry the same hour; before any account exists the hour
  lives in memory only, which is harmless because nothing can pay funding without an account.
* `paper_positions`: one row per (wallet, symbol). `cost_basis` (0002) is the exact Σ signed size·price
  the engine works with; `entry_price` is written as cost_basis / size for readers of the table. `leverage`
  is the leverage chosen with `set_isolated_leverage`, or 0 when none was chosen (the engine then applies
  `exchange.paper.leverage`). A closed position keeps its row at size 0 only when it carries a chosen
  leverage; readers see no position either way.
* `paper_orders` and `paper_trades` keep the engine's oids and tids; `filled_size`, `avg_price`,
  `error_text`, the fill's `cloid` and `liquidation` flag are 0002 columns.
* `paper_ledger`: one row per cash movement, with the database's increasing id.

Exactness: the tables hold DECIMAL(38,18). The engine's values almost always fit; a value with more
than 18 decimals (a fee on a many-digit price, say) is rounded DOWN to 1e-18 before it is written. Floor
rounding commutes with adding a number already on the 1e-18 grid, so `cash` still equals the sum of the
ledger exactly.

Transactions: outside `atomic()` each call is its own short transaction. The runtime should wrap each
engine event (`place_order`, `on_price`, `on_clock`, …) in `atomic()`, so that a crash can never leave
a fill recorded without its cash movement. One engine per database: oids and tids are allocated in
process from the stored maxima.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ttt.adapters.db import models as m
from ttt.adapters.db.engine import read_only
from ttt.adapters.db.types import DEC_SCALE
from ttt.adapters.exchange.paper_store import (
    LedgerEntry,
    LedgerKind,
    PaperOrder,
    PaperOrderStatus,
    PaperPosition,
)
from ttt.domain.orders import Fill, Liquidity, Side, TimeInForce
from ttt.ports import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_QUANTUM = Decimal(1).scaleb(-DEC_SCALE)
_CONTEXT = Context(prec=80)
_ZERO = Decimal(0)


def _ts(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // _MS


def storable(value: Decimal) -> Decimal:
    """At most 18 decimals, rounded toward −∞ (see the module docstring)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DEC_SCALE:
        with localcontext(_CONTEXT):
            return value.quantize(_QUANTUM, rounding=ROUND_FLOOR)
    return value


class SqlPaperStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._write = sessionmaker(engine, expire_on_commit=False)
        self._read = sessionmaker(read_only(engine), expire_on_commit=False)
        self._clock = clock
        self._session: Session | None = None
        self._oid: int | None = None
        self._tid: int | None = None
        self._hour: int | None = None

    # --- transactions ------------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Every store call inside shares one transaction, committed at the end (nested: joins)."""
        if self._session is not None:
            yield
            return
        session = self._write()
        self._session = session
        try:
            yield
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self._session = None
            session.close()

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Session]:
        if self._session is not None:
            yield self._session
            return
        session = (self._write if write else self._read)()
        try:
            yield session
            if write:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    # --- accounts ----------------------------------------------------------------------------------

    def cash(self, wallet: str) -> Decimal | None:
        with self._tx(write=False) as s:
            row = s.get(m.PaperAccount, wallet)
            return None if row is None else row.cash

    def set_cash(self, wallet: str, cash: Decimal) -> None:
        with self._tx(write=True) as s:
            row = s.get(m.PaperAccount, wallet)
            if row is None:
                hour = self._stored_hour(s)
                s.add(
                    m.PaperAccount(
                        wallet=wallet,
                        cash=storable(cash),
                        created_at=self._now(),
                        funding_hour=hour if hour is not None else self._hour,
                    )
                )
            else:
                row.cash = storable(cash)
            s.flush()

    def wallets(self) -> list[str]:
        with self._tx(write=False) as s:
            return list(s.scalars(sa.select(m.PaperAccount.wallet).order_by(m.PaperAccount.wallet)))

    # --- positions and leverage --------------------------------------------------------------------

    @staticmethod
    def _position(row: m.PaperPosition) -> PaperPosition:
        cost = row.cost_basis if row.cost_basis is not None else row.size * row.entry_price
        return PaperPosition(
            wallet=row.wallet,
            symbol=row.symbol,
            size=row.size,
            cost=cost,
            cum_funding=row.cum_funding,
            funding_since_open=row.funding_since_open if row.funding_since_open is not None else _ZERO,
            updated_ms=_ms(row.updated_at),
        )

    def position(self, wallet: str, symbol: str) -> PaperPosition | None:
        with self._tx(write=False) as s:
            row = s.get(m.PaperPosition, (wallet, symbol))
            return None if row is None or row.size == 0 else self._position(row)

    def positions(self, wallet: str) -> list[PaperPosition]:
        stmt = sa.select(m.PaperPosition).where(m.PaperPosition.wallet == wallet)
        with self._tx(write=False) as s:
            rows = s.scalars(stmt.order_by(m.PaperPosition.symbol))
            return [self._position(r) for r in rows if r.size != 0]

    def put_position(self, position: PaperPosition) -> None:
        """Size 0 closes the position (the row stays only to remember a chosen leverage)."""
        with self._tx(write=True) as s:
            row = s.get(m.PaperPosition, (position.wallet, position.symbol))
            if position.size == 0:
                if row is not None and row.leverage == 0:
                    s.delete(row)
                elif row is not None:
                    row.size = row.entry_price = row.cost_basis = row.funding_since_open = _ZERO
                    row.cum_funding = _ZERO
                    row.updated_at = _ts(position.updated_ms)
                s.flush()
                return
            with localcontext(_CONTEXT):
                entry = storable(position.cost / position.size)
            values = {
                "size": storable(position.size),
                "entry_price": entry,
                "cost_basis": storable(position.cost),
                "cum_funding": storable(position.cum_funding),
                "funding_since_open": storable(position.funding_since_open),
                "updated_at": _ts(position.updated_ms),
            }
            if row is None:
                s.add(m.PaperPosition(wallet=position.wallet, symbol=position.symbol, leverage=0, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            s.flush()

    def leverage(self, wallet: str, symbol: str) -> int | None:
        with self._tx(write=False) as s:
            row = s.get(m.PaperPosition, (wallet, symbol))
            return row.leverage if row is not None and row.leverage > 0 else None

    def set_leverage(self, wallet: str, symbol: str, leverage: int) -> None:
        if leverage < 1:
            raise ValueError(f"paper leverage must be ≥ 1, got {leverage}")
        with self._tx(write=True) as s:
            row = s.get(m.PaperPosition, (wallet, symbol))
            if row is None:
                s.add(
                    m.PaperPosition(
                        wallet=wallet,
                        symbol=symbol,
                        size=_ZERO,
                        entry_price=_ZERO,
                        cost_basis=_ZERO,
                        leverage=leverage,
                        cum_funding=_ZERO,
                        funding_since_open=_ZERO,
                        updated_at=self._now(),
                    )
                )
            else:
                row.leverage = leverage
            s.flush()

    # --- orders ------------------------------------------------------------------------------------

    def next_oid(self) -> int:
        if self._oid is None:
            with self._tx(write=False) as s:
                self._oid = int(s.scalar(sa.select(sa.func.max(m.PaperOrder.oid))) or 0)
        self._oid += 1
        return self._oid

    @staticmethod
    def _order(row: m.PaperOrder) -> PaperOrder:
        side: Side = "buy" if row.side == "buy" else "sell"
        tif: TimeInForce = "Alo" if row.tif == "Alo" else "Ioc" if row.tif == "Ioc" else "Gtc"
        status: PaperOrderStatus = row.status  # type: ignore[assignment]
        return PaperOrder(
            oid=int(row.oid),
            cloid=row.cloid,
            wallet=row.wallet,
            symbol=row.symbol,
            side=side,
            price=row.price,
            size=row.size,
            remaining=row.remaining,
            tif=tif,
            reduce_only=bool(row.reduce_only),
            status=status,
            created_ms=_ms(row.created_at),
            closed_ms=None if row.closed_at is None else _ms(row.closed_at),
            filled_size=row.filled_size if row.filled_size is not None else _ZERO,
            avg_price=row.avg_price,
            error_text=row.error_text,
        )

    def put_order(self, order: PaperOrder) -> None:
        values = {
            "cloid": order.cloid,
            "wallet": order.wallet,
            "symbol": order.symbol,
            "side": order.side,
            "price": storable(order.price),
            "size": storable(order.size),
            "remaining": storable(order.remaining),
            "tif": order.tif,
            "reduce_only": order.reduce_only,
            "status": order.status,
            "created_at": _ts(order.created_ms),
            "closed_at": None if order.closed_ms is None else _ts(order.closed_ms),
            "filled_size": storable(order.filled_size),
            "avg_price": None if order.avg_price is None else storable(order.avg_price),
            "error_text": order.error_text,
        }
        with self._tx(write=True) as s:
            row = s.get(m.PaperOrder, order.oid)
            if row is None:
                s.add(m.PaperOrder(oid=order.oid, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            s.flush()

    def order_by_oid(self, wallet: str, oid: int) -> PaperOrder | None:
        with self._tx(write=False) as s:
            row = s.get(m.PaperOrder, oid)
            return self._order(row) if row is not None and row.wallet == wallet else None

    def order_by_cloid(self, wallet: str, cloid: str) -> PaperOrder | None:
        stmt = sa.select(m.PaperOrder).where(
            m.PaperOrder.wallet == wallet, m.PaperOrder.cloid == cloid.lower()
        )
        with self._tx(write=False) as s:
            row = s.scalars(stmt).one_or_none()
            return None if row is None else self._order(row)

    def open_orders(self, wallet: str | None = None, symbol: str | None = None) -> list[PaperOrder]:
        stmt = sa.select(m.PaperOrder).where(m.PaperOrder.status == "open")
        if wallet is not None:
            stmt = stmt.where(m.PaperOrder.wallet == wallet)
        if symbol is not None:
            stmt = stmt.where(m.PaperOrder.symbol == symbol)
        with self._tx(write=False) as s:
            return [self._order(r) for r in s.scalars(stmt.order_by(m.PaperOrder.oid))]

    # --- trades and ledger -------------------------------------------------------------------------

    def next_tid(self) -> int:
        if self._tid is None:
            with self._tx(write=False) as s:
                self._tid = int(s.scalar(sa.select(sa.func.max(m.PaperTrade.tid))) or 0)
        self._tid += 1
        return self._tid

    def add_trade(self, wallet: str, fill: Fill) -> None:
        with self._tx(write=True) as s:
            s.add(
                m.PaperTrade(
                    tid=fill.tid,
                    oid=fill.oid,
                    wallet=wallet,
                    symbol=fill.symbol,
                    side=fill.side,
                    price=storable(fill.price),
                    size=storable(fill.size),
                    fee=storable(fill.fee),
                    liquidity=fill.liquidity,
                    closed_pnl=storable(fill.closed_pnl),
                    ts=_ts(fill.ts_ms),
                    cloid=fill.cloid,
                    liquidation=fill.liquidation,
                )
            )
            s.flush()

    def trades(self, wallet: str, since_ms: int = 0) -> list[Fill]:
        stmt = (
            sa.select(m.PaperTrade)
            .where(m.PaperTrade.wallet == wallet, m.PaperTrade.ts >= _ts(since_ms))
            .order_by(m.PaperTrade.tid)
        )
        with self._tx(write=False) as s:
            out = []
            for r in s.scalars(stmt):
                side: Side = "buy" if r.side == "buy" else "sell"
                liquidity: Liquidity = "maker" if r.liquidity == "maker" else "taker"
                out.append(
                    Fill(
                        tid=int(r.tid),
                        oid=int(r.oid),
                        cloid=r.cloid,
                        symbol=r.symbol,
                        side=side,
                        price=r.price,
                        size=r.size,
                        fee=r.fee,
                        liquidity=liquidity,
                        closed_pnl=r.closed_pnl,
                        ts_ms=_ms(r.ts),
                        liquidation=bool(r.liquidation),
                    )
                )
            return out

    def add_ledger(
        self, wallet: str, ts_ms: int, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str
    ) -> LedgerEntry:
        amount = storable(amount)
        with self._tx(write=True) as s:
            row = m.PaperLedgerEntry(
                wallet=wallet, ts=_ts(ts_ms), kind=kind, symbol=symbol, amount=amount, ref=ref
            )
            s.add(row)
            s.flush()
            return LedgerEntry(int(row.id), wallet, ts_ms, kind, symbol, amount, ref)

    def ledger(self, wallet: str) -> list[LedgerEntry]:
        stmt = sa.select(m.PaperLedgerEntry).where(m.PaperLedgerEntry.wallet == wallet)
        with self._tx(write=False) as s:
            return [
                LedgerEntry(
                    int(r.id),
                    r.wallet,
                    _ms(r.ts),
                    r.kind,  # type: ignore[arg-type]
                    r.symbol,
                    r.amount,
                    r.ref or "",
                )
                for r in s.scalars(stmt.order_by(m.PaperLedgerEntry.id))
            ]

    # --- funding cursor ----------------------------------------------------------------------------

    @staticmethod
    def _stored_hour(s: Session) -> int | None:
        value = s.scalar(sa.select(sa.func.max(m.PaperAccount.funding_hour)))
        return None if value is None else int(value)

    def funding_hour(self) -> int | None:
        with self._tx(write=False) as s:
            stored = self._stored_hour(s)
        return stored if stored is not None else self._hour

    def set_funding_hour(self, hour: int) -> None:
        self._hour = hour
        with self._tx(write=True) as s:
            s.execute(sa.update(m.PaperAccount).values(funding_hour=hour))


__all__ = ["SqlPaperStore", "storable"]


class AtomicPaperExchange:
    """The paper engine with each event in one transaction of its SQL store: a crash never leaves a fill
    recorded without its cash movement. Reads pass straight through."""

    _EVENTS = frozenset({"place_order", "cancel", "on_price", "on_clock", "set_isolated_leverage", "deposit"})

    def __init__(self, engine: object, store: SqlPaperStore) -> None:
        self._engine = engine
        self._store = store

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._engine, name)
        if name not in self._EVENTS or not callable(attr):
            return attr

        def atomic_call(*args: object, **kwargs: object) -> object:
            with self._store.atomic():
                return attr(*args, **kwargs)

        return atomic_call
