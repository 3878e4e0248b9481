"""Market-data and housekeeping tasks of the distributed runtime (services.md §2.1): `ttt.market_data.fetch`,
`ttt.market_data.retention`, `ttt.ops.collect_metrics`, `ttt.ops.retention`.

Thin: each calls the service the embedded runtime calls, under the service's own lock. What they need
beyond the worker context (the OHLCV fetcher, the metrics collector with its broker client) is built on
first use in each OS process, so a low-queue worker builds none of it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ttt.clock import WallClock
from ttt.runtime.celery_app import COLLECT_METRICS, FETCH, MARKET_RETENTION, OPS_RETENTION, app, context
from ttt.runtime.tasks_common import tracked

log = logging.getLogger("ttt.worker")

_lock = threading.Lock()
_built: dict[tuple[int, str], Any] = {}


def _once(key: str, build: Any) -> Any:
    """One object per OS process (rebuilt after a fork); a failed build is retried by the next task."""
    with _lock:
        k = (os.getpid(), key)
        if k not in _built:
            _built[k] = build()
        return _built[k]


def live_fetch_enabled(config: Any) -> bool:
    """Bars are fetched from the exchange's API when the market source is live (§6.1); replayed and
    synthetic bars come from `3t feed`, which owns those sources."""
    return config.market_data.source in ("auto", "hyperliquid") and config.exchange.kind == "hyperliquid"


def _fetcher(ctx: Any) -> Any:
    def build() -> Any:
        from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient
        from ttt.services.market_fetch import build_fetcher

        cfg = ctx.settings.config
        client = HyperliquidInfoClient.from_settings(cfg.exchange.hyperliquid)
        return build_fetcher(ctx.engine, ctx.cache, WallClock(), client, cfg.market_data, metrics=ctx.metrics)

    return _once("fetcher", build)


@app.task(name=FETCH)
def market_data_fetch(backfill: bool = False) -> dict[str, Any]:
    from ttt.services.market_fetch import api_coins_from_db
    from ttt.services.market_fetch import market_data_fetch as run
    from ttt.services.products_sync import venue_from_config

    ctx = context()
    cfg = ctx.settings.config

    def work() -> dict[str, Any]:
        if not live_fetch_enabled(cfg):
            return {"status": "ok", "skipped": f"market_data.source is {cfg.market_data.source}"}
        fetcher = _fetcher(ctx)
        fetcher.api_coins = api_coins_from_db(ctx.engine, venue_from_config(cfg.exchange).name)
        results = run(
            fetcher,
            ctx.locks,
            list(cfg.universe.symbols),
            list(cfg.market_data.timeframes),
            backfill=backfill,
        )
        outcomes: dict[str, int] = {}
        for r in results:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        bars = sum(r.bars for r in results)
        log.info("market_data.fetch backfill=%s bars=%d outcomes=%s", backfill, bars, outcomes)
        return {"status": "ok", "bars": bars, "outcomes": outcomes}

    return tracked(ctx.metrics, FETCH, work)


@app.task(name=MARKET_RETENTION)
def market_data_retention() -> dict[str, Any]:
    from ttt.services.market_retention import market_data_retention as run

    ctx = context()

    def work() -> dict[str, Any]:
        days = dict(ctx.settings.config.market_data.retention_days)
        result = run(ctx.engine, ctx.locks, WallClock(), days)
        return {"status": "ok", "deleted": result.deleted}

    return tracked(ctx.metrics, MARKET_RETENTION, work)


def _collector(ctx: Any) -> Any:
    def build() -> Any:
        import redis

        from ttt.services.ops.collect_metrics import MetricsCollector, QueueLengths

        broker = ctx.settings.broker_url()
        queues = (
            QueueLengths(redis.Redis.from_url(broker))
            if broker.startswith(("redis://", "rediss://"))
            else None
        )
        symbols = list(ctx.settings.config.universe.symbols)
        return MetricsCollector(ctx.engine, ctx.cache, WallClock(), symbols, queue_lengths=queues)

    return _once("collector", build)


@app.task(name=COLLECT_METRICS)
def collect_metrics() -> dict[str, Any]:
    from ttt.services.ops.collect_metrics import collect_metrics as run

    ctx = context()

    def work() -> dict[str, Any]:
        doc = run(_collector(ctx), ctx.locks)
        return {"status": "ok", "gauges": len(doc.gauges), "errors": sorted(doc.errors)}

    return tracked(ctx.metrics, COLLECT_METRICS, work)


@app.task(name=OPS_RETENTION)
def ops_retention() -> dict[str, Any]:
    from ttt.services.ops.retention import RetentionDays
    from ttt.services.ops.retention import ops_retention as run

    ctx = context()

    def work() -> dict[str, Any]:
        result = run(ctx.engine, ctx.locks, WallClock(), RetentionDays.from_config(ctx.settings.config))
        return {"status": "ok", "deleted": result.deleted}

    return tracked(ctx.metrics, OPS_RETENTION, work)


__all__ = ["COLLECT_METRICS", "FETCH", "MARKET_RETENTION", "OPS_RETENTION", "live_fetch_enabled"]
