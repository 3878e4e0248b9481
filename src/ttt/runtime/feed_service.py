"""`3t feed` (services.md §1.3, §6.3): the distributed price feed, one active instance behind lock `feed`.

The transports, the publishing rule, the lock cadence (TTL 30 s, extended every 10 s) and the heartbeat
live in `PriceFeed`; this module wires it for a standalone process: API coins from the `products` table
(portfolio.md §0; derived from the symbol when the table does not list one), the Redis cache and lock
manager, and a lock manager that turns a Redis outage into "lock not held" — a holder that cannot extend
stops publishing and stands by, exactly as when another instance took the lock over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ttt.errors import CacheUnavailable, ConfigError
from ttt.ports import LockManager

log = logging.getLogger(__name__)


def product_coins(engine: Any, exchange_cfg: Any) -> dict[str, str]:
    """symbol → API coin of every product `3t products sync` stored for the configured venue."""
    from sqlalchemy.orm import Session

    from ttt.adapters.db.repositories.venues import VenueRepository
    from ttt.services.products_sync import venue_from_config

    venue = venue_from_config(exchange_cfg).name
    with Session(engine) as session:
        repo = VenueRepository(session)
        exchange = repo.exchange_by_name(venue)
        if exchange is None:
            return {}
        return {p.symbol: p.api_coin for p in repo.products(exchange.id) if p.api_coin}


class OutageTolerantLocks:
    """A `LockManager` whose unreachable backend reads as "not acquired" / "not extended".

    `RedisLockManager` raises `CacheUnavailable` when Redis does not answer; portfolio.md §16 asks a
    holder to treat that like a failed extend. Without this the feed thread would die on a Redis blip
    instead of standing by and retrying.
    """

    def __init__(self, inner: LockManager) -> None:
        self.inner = inner

    def acquire(self, name: str, ttl_s: float) -> str | None:
        try:
            return self.inner.acquire(name, ttl_s)
        except CacheUnavailable as exc:
            log.warning("lock %r: cache unavailable (%s); standing by", name, exc)
            return None

    def extend(self, name: str, token: str, ttl_s: float) -> bool:
        try:
            return self.inner.extend(name, token, ttl_s)
        except CacheUnavailable as exc:
            log.warning("lock %r: cannot extend, cache unavailable (%s); stopping publication", name, exc)
            return False

    def release(self, name: str, token: str) -> bool:
        try:
            return bool(self.inner.release(name, token))
        except CacheUnavailable as exc:
            log.warning("lock %r: cannot release, cache unavailable (%s); it expires by TTL", name, exc)
            return False

    def __getattr__(self, item: str) -> Any:  # other LockManager methods pass through
        return getattr(self.inner, item)


def check_feed_source(settings: Any, source: str) -> None:
    """Which market sources a standalone feed can serve (exit 2 otherwise, naming the key).

    In S2 every consumer runs on the wall clock, so only live data can feed them: a replay publishes
    historical timestamps and a synthetic path is only meaningful on the simulated clock `3t run` and
    `3t backtest` drive. Both stay S1/backtest features (docs/spec-notes.md).
    """
    if source == "hyperliquid":
        return
    raise ConfigError(
        [
            f"market_data.source = {source}: `3t feed` publishes live Hyperliquid prices only; "
            f"{source} data needs the simulated clock of `3t run` or `3t backtest`"
        ]
    )


class FeedProcess:
    """The feed of one `3t feed` process: start, wait for a signal, stop (releasing the lock)."""

    def __init__(
        self,
        settings: Any,
        *,
        cache: Any,
        locks: LockManager,
        clock: Any,
        api_coins: Mapping[str, str],
        metrics: Any,
        instance: str,
        market_source: str = "hyperliquid",
    ) -> None:
        from ttt.adapters.market.feed import PriceFeed
        from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient, ws_url_for
        from ttt.domain.symbols import derive_api_coin

        cfg = settings.config
        hl = cfg.exchange.hyperliquid
        price = cfg.market_data.price
        # settings.price_mode also knows that a custom network without ws_url can only poll
        transport = settings.price_mode
        self.client = HyperliquidInfoClient.from_settings(hl)
        self.feed = PriceFeed(
            cache=cache,
            clock=clock,
            coins={s: api_coins.get(s) or derive_api_coin(s) for s in cfg.universe.symbols},
            transport=transport,
            client=self.client,
            ws_url=ws_url_for(hl.network, hl.ws_url) if transport == "websocket" else None,
            poll_interval_s=price.poll_interval_s,
            ws_stale_s=price.ws_stale_s,
            ws_gap_poll_s=price.ws_gap_poll_s,
            max_age_s=price.max_age_s,
            stream_maxlen=cfg.cache.streams.prices_maxlen,
            hip3_dexes=hl.hip3_dexes,
            metrics=metrics,
            locks=OutageTolerantLocks(locks),
            instance=instance,
            market_source=market_source,
        )
        self.stop_event = threading.Event()

    @property
    def transport(self) -> str:
        return str(self.feed.transport)

    def run(self, poll_s: float = 0.5) -> int:
        """Run until `stop_event` is set or the feed dies; 0 after a clean stop, 1 after a crash."""
        self.feed.start()
        try:
            while not self.stop_event.wait(poll_s):
                if not self.feed.alive:
                    break
        finally:
            self.feed.stop()
            self.client.close()
        if self.feed.error is not None:
            log.error("price feed failed: %s: %s", type(self.feed.error).__name__, self.feed.error)
            return 1
        return 0
