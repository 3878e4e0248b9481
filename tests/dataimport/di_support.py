"""Helpers shared by the dataimport tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import MarketBar


class FixedClock:
    """A settable `ttt.ports.Clock` (our own port, not a library fake)."""

    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def market_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """The whole market_data table, ordered by key, every column."""
    table = MarketBar.__table__
    with read_only(engine).connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.symbol, table.c.timeframe, table.c.ts_open))
        return [tuple(r) for r in rows]


def market_count(engine: Engine, symbol: str | None = None, timeframe: str | None = None) -> int:
    table = MarketBar.__table__
    stmt = sa.select(sa.func.count()).select_from(table)
    if symbol is not None:
        stmt = stmt.where(table.c.symbol == symbol)
    if timeframe is not None:
        stmt = stmt.where(table.c.timeframe == timeframe)
    with read_only(engine).connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def raw_market_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """market_data as the driver returns it, without type processing (fast, for very large tables);
    fetched_at is left out."""
    sql = (
        "SELECT symbol, timeframe, ts_open, open, high, low, close, volume, source, is_final "
        "FROM market_data ORDER BY symbol, timeframe, ts_open"
    )
    with read_only(engine).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]
