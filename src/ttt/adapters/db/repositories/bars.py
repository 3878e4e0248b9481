"""OHLCV bars in `market_data` (services.md §4.2, §4.3, §6.1).

`upsert_bars` is one multi-row statement: ON CONFLICT DO UPDATE on SQLite and PostgreSQL, ON DUPLICATE
KEY UPDATE on MariaDB. A re-fetched bar replaces the stored one (the still-forming bar becomes final).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import MarketBar, table_of
from ttt.adapters.db.types import as_utc, to_decimal
from ttt.domain.orders import Bar

BARS = table_of(MarketBar)
_C = BARS.c
_KEY = ("symbol", "timeframe", "ts_open")
_VALUES = ("open", "high", "low", "close", "volume", "source", "is_final", "fetched_at")


@dataclass(frozen=True)
class StoredBar:
    symbol: str
    timeframe: str
    ts_open: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    source: str
    is_final: bool
    fetched_at: datetime


def _row(bar: StoredBar) -> dict[str, Any]:
    return {
        "symbol": bar.symbol,
        "timeframe": bar.timeframe,
        "ts_open": int(bar.ts_open),
        "open": to_decimal(bar.open),
        "high": to_decimal(bar.high),
        "low": to_decimal(bar.low),
        "close": to_decimal(bar.close),
        "volume": to_decimal(bar.volume),
        "source": bar.source,
        "is_final": bool(bar.is_final),
        "fetched_at": as_utc(bar.fetched_at),
    }


def stored_from_domain(bars: Sequence[Bar], source: str, fetched_at: datetime | float) -> list[StoredBar]:
    """Float bars from a market source, as exact decimals of their shortest representation."""
    at = as_utc(fetched_at)
    return [
        StoredBar(
            b.symbol,
            b.timeframe,
            b.ts_open,
            to_decimal(b.open),
            to_decimal(b.high),
            to_decimal(b.low),
            to_decimal(b.close),
            to_decimal(b.volume),
            source,
            b.is_final,
            at,
        )
        for b in bars
    ]


def _upsert_statement(dialect_name: str) -> Any:
    if dialect_name == "postgresql":
        pg = postgresql.insert(BARS)
        return pg.on_conflict_do_update(index_elements=list(_KEY), set_={k: pg.excluded[k] for k in _VALUES})
    if dialect_name == "sqlite":
        lite = sqlite.insert(BARS)
        return lite.on_conflict_do_update(
            index_elements=list(_KEY), set_={k: lite.excluded[k] for k in _VALUES}
        )
    if dialect_name in ("mysql", "mariadb"):
        my = mysql.insert(BARS)
        return my.on_duplicate_key_update({k: my.inserted[k] for k in _VALUES})
    raise ValueError(f"unsupported database dialect {dialect_name!r}: use SQLite, MariaDB or PostgreSQL")


class BarRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert_bars(self, bars: Sequence[StoredBar]) -> int:
        """Insert or replace bars by (symbol, timeframe, ts_open); returns how many were given."""
        if not bars:
            return 0
        conn = self.session.connection()
        conn.execute(_upsert_statement(conn.dialect.name), [_row(b) for b in bars])
        return len(bars)

    def range(
        self,
        symbol: str,
        timeframe: str,
        since_open_ms: int,
        until_open_ms: int,
        *,
        final_only: bool = False,
    ) -> list[StoredBar]:
        """Bars with since ≤ ts_open ≤ until, ascending (a primary-key range scan)."""
        stmt = sa.select(BARS).where(
            _C.symbol == symbol,
            _C.timeframe == timeframe,
            _C.ts_open >= since_open_ms,
            _C.ts_open <= until_open_ms,
        )
        if final_only:
            stmt = stmt.where(_C.is_final == sa.true())
        return [
            StoredBar(
                r.symbol,
                r.timeframe,
                int(r.ts_open),
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.source,
                bool(r.is_final),
                r.fetched_at,
            )
            for r in self.session.execute(stmt.order_by(_C.ts_open))
        ]

    def ohlc(
        self, symbol: str, timeframe: str, since_open_ms: int, until_open_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        """(ts_open, open, high, low, close) as floats, the shape of `ttt.ports.BarStore.bars`."""
        stmt = (
            sa.select(_C.ts_open, _C.open, _C.high, _C.low, _C.close)
            .where(
                _C.symbol == symbol,
                _C.timeframe == timeframe,
                _C.ts_open >= since_open_ms,
                _C.ts_open <= until_open_ms,
            )
            .order_by(_C.ts_open)
        )
        return [
            (int(t), float(o), float(h), float(lo), float(c)) for t, o, h, lo, c in self.session.execute(stmt)
        ]

    def latest_open(self, symbol: str, timeframe: str) -> int | None:
        stmt = sa.select(sa.func.max(_C.ts_open)).where(_C.symbol == symbol, _C.timeframe == timeframe)
        value = self.session.execute(stmt).scalar()
        return None if value is None else int(value)

    def timeframes(self) -> list[str]:
        return [str(t) for t in self.session.execute(sa.select(_C.timeframe).distinct()).scalars()]

    def delete_before(self, timeframe: str, cutoff_open_ms: int) -> int:
        """Retention (services.md §4.3): bars of one timeframe opened before the cutoff."""
        stmt = sa.delete(BARS).where(_C.timeframe == timeframe, _C.ts_open < cutoff_open_ms)
        return int(self.session.connection().execute(stmt).rowcount)


class SqlBarStore:
    """`ttt.ports.BarStore` over the database, one short read per call."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def bars(
        self, symbol: str, timeframe: str, since_open_ms: int, until_open_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        with Session(read_only(self.engine)) as s:
            return BarRepository(s).ohlc(symbol, timeframe, since_open_ms, until_open_ms)
