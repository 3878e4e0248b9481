"""`3t feed`: the distributed price feed process (services.md §1.3, §1.4, §6.3).

Start-up follows §1.4: configuration (exit 2), logging, the Store's schema check (exit 3; the `products`
table supplies the API coins), the cache Redis check, the market source resolved and announced, the
`config.loaded` audit row, the metrics listener (`observability.metrics_port`, default 9103), then the
feed. Only one instance publishes (lock `feed`); the others stand by and take over within a lock TTL
when the active one stops. SIGINT/SIGTERM stop it cleanly (lock released, exit 0); a second signal exits
at once.
"""

from __future__ import annotations

import logging
import os
import socket

import typer

from ttt.cli.context import err_console
from ttt.cli.signals import stop_on_signals

log = logging.getLogger("ttt.feed")


def feed(ctx: typer.Context) -> None:
    """Start the price feed (S2; one active, lock `feed`)."""
    from ttt.adapters.cache.locks import RedisLockManager
    from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
    from ttt.cli.dist_cmd import _check_redis, _config_loaded, _open_store, _settings
    from ttt.clock import WallClock
    from ttt.runtime.feed_service import FeedProcess, check_feed_source, product_coins
    from ttt.runtime.market import info_url, probe_all_mids, resolve_market
    from ttt.runtime.metrics_server import listen_for
    from ttt.telemetry.metrics import Metrics

    settings = _settings(ctx, "feed")
    cfg = settings.config
    hl = cfg.exchange.hyperliquid
    engine = _open_store(settings)
    try:
        _check_redis(settings)
        coins = product_coins(engine, cfg.exchange)
        choice = resolve_market(
            None,
            cfg.market_data.source,
            cfg.exchange.kind,
            lambda: probe_all_mids(info_url(hl.network, hl.base_url), hl.proxies, hl.origin),
        )
        banner = choice.banner()
        err_console.print(banner, markup=False, highlight=False)
        (log.info if choice.source == "hyperliquid" else log.warning)(
            "%s (reason: %s)", banner, choice.reason
        )
        check_feed_source(settings, choice.source)
        _config_loaded(engine, settings, "feed", market=choice)
    finally:
        engine.dispose()

    metrics = Metrics.create()
    listener = listen_for(settings, metrics.registry)
    client = make_redis_client(settings.redis_url())
    instance = f"{socket.gethostname()}:{os.getpid()}"
    process = FeedProcess(
        settings,
        cache=RedisCache(client, cfg.cache.prefix),
        locks=RedisLockManager(client, cfg.cache.prefix),
        clock=WallClock(),
        api_coins=coins,
        metrics=metrics,
        instance=instance,
        market_source=choice.source,
    )

    stop_on_signals(process.stop_event, log, "feed")
    where = f", metrics {listener.url}" if listener is not None else ""
    err_console.print(
        f"3t feed {instance}: {process.transport} prices for {len(cfg.universe.symbols)} symbols, "
        f"waiting for lock 'feed'{where}",
        markup=False,
    )
    try:
        code = process.run()
    finally:
        client.close()
        if listener is not None:
            listener.close()
    if code:
        raise typer.Exit(code)
