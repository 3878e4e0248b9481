"""Portfolio tasks of the distributed runtime (services.md §2.1, portfolio.md): `ttt.products.sync`,
`ttt.account.update_balance`, `ttt.portfolio.reconcile`, `ttt.portfolio.take_profit`.

The same services the embedded runtime wires (runtime/portfolio_wiring.py), with S2 adapters: the
Hyperliquid adapter for reads (products, account; this process never holds the signing key, so the adapter
is built without it), the separate `3t gateway` over HTTP for orders, HTTP observers
(`portfolio.quorum.observers`), Redis cache and locks.

The portfolio side is built on first use in each OS process: a worker that serves only `low_priority` never
builds it, and a failure to build it (configuration, database) is one failed task, logged, retried by the
next slot, never an order. An unreachable gateway or exchange is not a build failure: the cycle runs and
records its holds (`order_not_sent`, stale inputs), as portfolio.md requires.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from ttt.clock import WallClock
from ttt.runtime.celery_app import (
    HIGH,
    PRODUCTS_SYNC,
    RECONCILE,
    TAKE_PROFIT,
    UPDATE_BALANCE,
    app,
    context,
)
from ttt.runtime.tasks_common import SKIPPED, tracked

log = logging.getLogger("ttt.worker")

MAX_BUSY_RETRIES = 20  # forced/startup/manual cycles retried every `portfolio.busy_retry_s` (F2)


@dataclass
class PortfolioSide:
    exchange: Any
    venue: Any
    ingestion: Any
    reconcile: Any
    take_profit: Any
    gateway_client: Any


_lock = threading.Lock()
_side: tuple[int, PortfolioSide] | None = None


def build_portfolio_side(ctx: Any) -> PortfolioSide:
    from ttt.adapters.exchange.hyperliquid import HyperliquidAdapter, HyperliquidSettings
    from ttt.services.gateway.client import HttpGatewayClient
    from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
    from ttt.services.portfolio.bootstrap import (
        actor,
        exchange_name,
        reconcile_settings,
        take_profit_config,
        wallet,
    )
    from ttt.services.portfolio.gateway_bridge import GatewayBridge
    from ttt.services.portfolio.ingestion import BalanceIngestion, IngestionSettings
    from ttt.services.portfolio.observer import HttpObserverSource
    from ttt.services.portfolio.ports import ObserverSource
    from ttt.services.portfolio.reconcile import ReconcileService
    from ttt.services.portfolio.takeprofit import TakeProfitService
    from ttt.services.products_sync import venue_from_config

    settings = ctx.settings
    cfg = settings.config
    clock = WallClock()
    me = actor("worker")
    secret = settings.secrets.alerts.webhook_token
    alerts = AlertSink(
        clock,
        ctx.metrics,
        audit=db_audit_writer(ctx.engine, me),
        min_interval_s=cfg.observability.alerts.min_interval_s,
        webhook_url=cfg.observability.alerts.webhook_url,
        webhook_token=secret.get_secret_value() if secret is not None else None,
        cache=ctx.cache,
        events_maxlen=cfg.cache.streams.events_maxlen,
    )
    # Reads only: the gateway is the only holder of the signing key (services.md §1.1).
    hl = dataclasses.replace(
        HyperliquidSettings.from_config(cfg.exchange, settings.secrets), private_key=None
    )
    exchange = HyperliquidAdapter(hl, clock=clock, metrics=ctx.metrics)
    ingestion = BalanceIngestion(
        exchange,
        ctx.engine,
        clock,
        alerts,
        IngestionSettings(
            exchange_name(settings),
            cfg.exchange.kind,
            wallet(settings),
            tuple(cfg.exchange.hyperliquid.hip3_dexes),
            cfg.cache.streams.balance_maxlen,
        ),
        metrics=ctx.metrics,
        cache=ctx.cache,
        locks=ctx.locks,
    )
    token = settings.secrets.gateway.token
    if token is None:
        log.warning("secrets.gateway.token is not set: the gateway will refuse this worker's orders (held)")
    client = HttpGatewayClient(
        settings.gateway_url,
        token.get_secret_value() if token is not None else "",
        timeout_s=cfg.portfolio.gateway.timeout_s,
    )
    q = cfg.portfolio.quorum
    observers: list[ObserverSource] = [
        HttpObserverSource(f"O{i}", url, q.observer_timeout_s) for i, url in enumerate(q.observers, start=1)
    ]
    if settings.embedded_observer:
        observers.append(_NoEmbeddedObserver())
    reconcile = ReconcileService(
        ctx.engine,
        ctx.locks,
        clock,
        GatewayBridge(client),
        alerts,
        reconcile_settings(settings, "worker"),
        observers=observers,
        cache=ctx.cache,
        metrics=ctx.metrics,
    )
    take_profit = TakeProfitService(
        ctx.engine,
        ctx.locks,
        clock,
        alerts,
        take_profit_config(settings),
        enqueue_cycle,
        metrics=ctx.metrics,
        actor=me,
    )
    return PortfolioSide(exchange, venue_from_config(cfg.exchange), ingestion, reconcile, take_profit, client)


class _NoEmbeddedObserver:
    """`portfolio.quorum.embedded_observer: true` in S2: the embedded observer lives only in `3t run`, so the
    source is honestly unavailable here, never assumed to agree."""

    name = "E"

    def fetch(self) -> Any:
        from ttt.domain.quorum import Unavailable

        return Unavailable("transport", "no embedded observer in a distributed worker; use `3t observer`")


def portfolio_side() -> PortfolioSide:
    """This process's portfolio side, built on first use (after any prefork fork)."""
    global _side
    ctx = context()
    with _lock:
        if _side is None or _side[0] != os.getpid():
            _side = (os.getpid(), build_portfolio_side(ctx))
        return _side[1]


def set_portfolio_side(side: PortfolioSide | None) -> None:
    """Install a prebuilt side (tests); None forgets it."""
    global _side
    with _lock:
        _side = None if side is None else (os.getpid(), side)


def enqueue_cycle(cycle_id: str, trigger: str, countdown: float | None = None, attempt: int = 0) -> None:
    """Forced cycles (take-profit, drawdown) and busy retries go through the queue as reconcile tasks."""
    reconcile.apply_async(
        kwargs={"cycle_id": cycle_id, "trigger": trigger, "attempt": attempt},
        countdown=countdown,
        queue=HIGH,
        routing_key=HIGH,
    )


@app.task(name=PRODUCTS_SYNC)
def products_sync() -> dict[str, Any]:
    from ttt.services.products_sync import products_sync as run

    ctx = context()

    def work() -> dict[str, Any]:
        side = portfolio_side()
        result = run(ctx.engine, ctx.locks, WallClock(), side.exchange, side.venue)
        return {"status": "ok", **result.as_dict()}

    return tracked(ctx.metrics, PRODUCTS_SYNC, work)


@app.task(name=UPDATE_BALANCE)
def update_balance() -> dict[str, Any]:
    ctx = context()

    def work() -> dict[str, Any]:
        result = portfolio_side().ingestion.run()
        log.info("account.update_balance outcome=%s snapshot=%s", result.outcome, result.snapshot_id)
        return {"status": "ok", "outcome": result.outcome, "snapshot_id": result.snapshot_id}

    return tracked(ctx.metrics, UPDATE_BALANCE, work)


@app.task(name=RECONCILE)
def reconcile(
    cycle_id: str | None = None,
    trigger: str | None = None,
    scheduled_at: float | None = None,
    attempt: int = 0,
) -> dict[str, Any]:
    """A scheduled call (no cycle id) names its cycle by the beat slot (`sched:<slot>`); startup, forced
    and manual calls carry their id. A busy lock skips a scheduled cycle and retries any other (F2)."""
    from ttt.domain.cycle_ids import scheduled_cycle_id

    ctx = context()
    period = int(ctx.settings.config.scheduler.periods.reconcile)

    def work() -> dict[str, Any]:
        at = scheduled_at if scheduled_at is not None else time.time()
        cid = cycle_id if cycle_id is not None else scheduled_cycle_id(at, period)
        trig = trigger or ("sched" if cycle_id is None else cid.split(":", 1)[0])
        result = portfolio_side().reconcile.run_cycle(cid, trig, scheduled_at)
        log.info(
            "portfolio.reconcile cycle=%s trigger=%s outcome=%s orders_sent=%d holds=%d",
            cid,
            trig,
            result.outcome,
            result.orders_sent,
            result.holds,
        )
        answer = {"status": "ok", "cycle_id": cid, "outcome": result.outcome}
        if result.outcome == "busy":
            if trig == "sched":
                ctx.metrics.scheduler_overruns_total.labels(RECONCILE).inc()
                answer["status"] = SKIPPED
            elif attempt < MAX_BUSY_RETRIES:
                enqueue_cycle(cid, trig, countdown=result.retry_after_s, attempt=attempt + 1)
            else:
                log.error("cycle %s still busy after %d attempts; given up", cid, attempt)
                answer["status"] = "error"
        elif result.outcome in ("failed", "held"):
            answer["status"] = "error"
        return answer

    return tracked(ctx.metrics, RECONCILE, work)


@app.task(name=TAKE_PROFIT)
def take_profit() -> dict[str, Any]:
    ctx = context()

    def work() -> dict[str, Any]:
        report = portfolio_side().take_profit.run()
        return {"status": "ok", "forced_sent": list(report.forced_sent)}

    return tracked(ctx.metrics, TAKE_PROFIT, work)


__all__ = [
    "PRODUCTS_SYNC",
    "RECONCILE",
    "TAKE_PROFIT",
    "UPDATE_BALANCE",
    "build_portfolio_side",
    "enqueue_cycle",
    "portfolio_side",
    "set_portfolio_side",
]
