"""`ttt.market_data.fetch` as a service (services.md §2.1, §6.1): the OHLCV fetcher over the `market_data`
table, shared by the embedded runtime and the Celery task.

`OhlcvFetcher` (adapters/market/fetch.py) decides which jobs are due and fetches; this module gives it the
database as storage and runs it under the lock `market_data:fetch` (120 s), so two workers never fetch the
same boundary at once. Bars fetched live are stored with `source = hyperliquid` (a custom network such as
`3t sim-exchange` speaks the same API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ttt.adapters.db.repositories.bars import BarRepository, stored_from_domain
from ttt.adapters.market.fetch import FetchResult, OhlcvFetcher
from ttt.ports import Cache, Clock, LockManager
from ttt.services.locking import run_locked

FETCH_LOCK = "market_data:fetch"
FETCH_LOCK_TTL_S = 120
LIVE_SOURCE = "hyperliquid"


def build_fetcher(
    engine: Engine,
    cache: Cache,
    clock: Clock,
    client: Any,
    market_data: Any,
    *,
    metrics: Any = None,
    api_coins: Mapping[str, str] | None = None,
) -> OhlcvFetcher:
    """An `OhlcvFetcher` writing to `market_data`; `market_data` is the config section of that name."""

    def write(bars: Any) -> None:
        rows = stored_from_domain(bars, LIVE_SOURCE, clock.now())
        with Session(engine) as session, session.begin():
            BarRepository(session).upsert_bars(rows)

    def latest_open(symbol: str, timeframe: str) -> int | None:
        with Session(engine) as session:
            return BarRepository(session).latest_open(symbol, timeframe)

    return OhlcvFetcher(
        client=client,
        cache=cache,
        clock=clock,
        writer=write,
        latest_open=latest_open,
        api_coins=api_coins,
        lookback_bars=dict(market_data.lookback_bars),
        backfill_bars=dict(market_data.backfill_bars),
        concurrency=market_data.concurrency,
        metrics=metrics,
    )


def api_coins_from_db(engine: Engine, venue_name: str) -> dict[str, str]:
    """symbol → exchange coin from `products` (products sync); empty before the first sync."""
    from ttt.adapters.db.repositories.venues import VenueRepository

    with Session(engine) as session:
        repo = VenueRepository(session)
        exchange = repo.exchange_by_name(venue_name)
        if exchange is None:
            return {}
        return {p.symbol: p.api_coin for p in repo.products(exchange.id)}


def market_data_fetch(
    fetcher: OhlcvFetcher,
    locks: LockManager,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    *,
    backfill: bool = False,
) -> list[FetchResult]:
    """The scheduled task (and, with `backfill`, the startup one-off); raises `LockBusy` when held."""
    return run_locked(
        locks, FETCH_LOCK, FETCH_LOCK_TTL_S, lambda _t: fetcher.run(symbols, timeframes, backfill=backfill)
    )


__all__ = ["FETCH_LOCK", "api_coins_from_db", "build_fetcher", "market_data_fetch"]
