"""The distributed runtime's Celery app `ttt` (services.md §1.3, §3): thin tasks over the Providence services.

Tasks hold no logic of their own: each builds (once per OS process, lazily, after any prefork fork) the same
services the embedded runtime wires, here over Redis and MariaDB/PostgreSQL, and calls one of them. The
configuration comes from `TTT_CONFIG` / `TTT_SECRETS`, which `3t worker` exports for its pool children.

The Providence tasks live here; the rest of the §2.1 table is in `tasks_data` (market data, ops) and
`tasks_portfolio` (products, account, reconciliation, take-profit), imported at the end so every task is
registered whenever this app is. `PERIODIC` and `STARTUP_ONE_OFFS` are what `3t beat` fires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import Celery
from kombu import Queue

from ttt.clock import WallClock
from ttt.config import Settings, load_settings
from ttt.runtime.tasks_common import SKIPPED, tracked

log = logging.getLogger("ttt.worker")

HIGH = "high_priority"
LOW = "low_priority"

SUPERVISOR = "ttt.providence.supervisor"
DISPATCH = "ttt.providence.dispatch"
STEP_SHARD = "ttt.providence.step_shard"
PURGE = "ttt.providence.purge"

FETCH = "ttt.market_data.fetch"
MARKET_RETENTION = "ttt.market_data.retention"
UPDATE_BALANCE = "ttt.account.update_balance"
RECONCILE = "ttt.portfolio.reconcile"
TAKE_PROFIT = "ttt.portfolio.take_profit"
PRODUCTS_SYNC = "ttt.products.sync"
COLLECT_METRICS = "ttt.ops.collect_metrics"
OPS_RETENTION = "ttt.ops.retention"

# The §2.1 periodic tasks with their `scheduler.periods` key, in the order beat fires them at one instant:
# Providence first (providence.md §18.4), then the table's order.
PERIODIC: tuple[tuple[str, str], ...] = (
    (SUPERVISOR, "providence_supervisor"),
    (DISPATCH, "providence_dispatch"),
    (PURGE, "providence_purge"),
    (FETCH, "market_data_fetch"),
    (MARKET_RETENTION, "market_data_retention"),
    (UPDATE_BALANCE, "balance_update"),
    (RECONCILE, "reconcile"),
    (TAKE_PROFIT, "take_profit"),
    (PRODUCTS_SYNC, "products_sync"),
    (COLLECT_METRICS, "collect_metrics"),
    (OPS_RETENTION, "retention"),
)
# services.md §2.2 startup one-offs, in spec order; `send` gives them their arguments (backfill, cycle id).
STARTUP_ONE_OFFS: tuple[str, ...] = (PRODUCTS_SYNC, FETCH, UPDATE_BALANCE, SUPERVISOR, RECONCILE)

app = Celery("ttt", set_as_current=False)
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    task_default_queue=HIGH,
    task_queues=(Queue(HIGH, routing_key=HIGH), Queue(LOW, routing_key=LOW)),
    task_routes={STEP_SHARD: {"queue": LOW, "routing_key": LOW}},
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


_soft_limits: dict[str, float] = {}


def soft_time_limits(settings: Settings) -> dict[str, float]:
    """services.md §2.3: `celery.task_soft_time_limit_factor` × the period of each periodic task."""
    periods = settings.config.scheduler.periods
    factor = float(settings.config.celery.task_soft_time_limit_factor)
    return {name: factor * float(getattr(periods, key)) for name, key in PERIODIC}


def configure_app(settings: Settings) -> Celery:
    """Point the app at the configured broker; called by `3t worker`, `3t beat` and at import in children."""
    cfg = settings.config.celery
    app.conf.update(
        broker_url=settings.broker_url(),
        broker_transport_options={"visibility_timeout": int(cfg.visibility_timeout_s)},
    )
    _soft_limits.clear()
    _soft_limits.update(soft_time_limits(settings))
    return app


@dataclass
class WorkerContext:
    """Everything a task needs, built once per OS process."""

    settings: Settings
    pid: int
    engine: Any
    cache: Any
    locks: Any
    runs: Any
    supervisor: Any
    dispatcher: Any
    stepper: Any
    metrics: Any

    def dispose(self) -> None:
        self.engine.dispose()


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def settings_from_env(process: str = "worker") -> Settings:
    return load_settings(os.environ.get("TTT_CONFIG"), os.environ.get("TTT_SECRETS"), process=process)


def max_leverage_from_db(engine: Any, venue_name: str) -> dict[str, object]:
    """Per-symbol max leverage from the `products` table (written by products sync); empty when unknown."""
    from sqlalchemy.orm import Session

    from ttt.adapters.db.repositories.venues import VenueRepository

    with Session(engine) as session:
        repo = VenueRepository(session)
        exchange = repo.exchange_by_name(venue_name)
        if exchange is None:
            return {}
        return {p.symbol: p.max_leverage for p in repo.products(exchange.id)}


def build_context(settings: Settings) -> WorkerContext:
    from ttt.adapters.cache.locks import RedisLockManager
    from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.repositories.bars import SqlBarStore
    from ttt.adapters.db.repositories.runs import SqlRunStore
    from ttt.services.products_sync import venue_from_config
    from ttt.services.providence.dispatch import Dispatcher, DispatchSettings
    from ttt.services.providence.inputs import BarVisibility
    from ttt.services.providence.shard import ShardSettings, ShardStepper
    from ttt.services.providence.supervisor import SupervisorService, SupervisorSettings
    from ttt.telemetry.metrics import Metrics

    cfg = settings.config
    periods = cfg.scheduler.periods
    symbols = list(cfg.universe.symbols)
    prov = cfg.providence.model_dump(mode="json")
    engine = make_engine(
        settings.database_url(), pool_size=cfg.database.pool_size, pool_recycle_s=cfg.database.pool_recycle_s
    )
    client = make_redis_client(settings.redis_url())
    cache = RedisCache(client, cfg.cache.prefix)
    locks = RedisLockManager(client, cfg.cache.prefix)
    runs = SqlRunStore(engine)
    bars = SqlBarStore(engine)
    clock = WallClock()
    metrics = Metrics.create()
    venue = venue_from_config(cfg.exchange).name
    host = f"{socket.gethostname()}:{os.getpid()}"
    supervisor = SupervisorService(
        runs,
        locks,
        clock,
        lambda: SupervisorSettings(symbols=symbols, providence=prov, shard_size=cfg.providence.shard_size),
        lambda: max_leverage_from_db(engine, venue),
        np.random.Generator(np.random.PCG64(cfg.providence.seed)),
        host=host,
    )

    def enqueue(symbol: str, shard: int, t: float, countdown_s: float) -> None:
        step_shard.apply_async((symbol, shard, t), countdown=countdown_s, queue=LOW, routing_key=LOW)

    dispatcher = Dispatcher(
        runs,
        cache,
        bars,
        locks,
        clock,
        lambda: DispatchSettings(
            symbols=symbols,
            period_s=periods.providence_dispatch,
            spread=cfg.providence.dispatch_spread,
            price_max_age_s=cfg.market_data.price.max_age_s,
        ),
        enqueue,
        BarVisibility(completed_only=False),
    )
    stepper = ShardStepper(
        runs,
        cache,
        locks,
        lambda: ShardSettings(
            symbols=symbols,
            providence=prov,
            db_write_every_ticks=cfg.providence.db_write_every_ticks,
            base_every_ticks=cfg.providence.state_base_every_ticks,
            state_ttl_s=cfg.providence.state_ttl_s,
            shard_lock_ttl_s=cfg.providence.shard_lock_ttl_s,
            dispatch_period_s=periods.providence_dispatch,
        ),
        metrics,
    )
    return WorkerContext(
        settings, os.getpid(), engine, cache, locks, runs, supervisor, dispatcher, stepper, metrics
    )


def context() -> WorkerContext:
    """This process's context; rebuilt after a fork so no connection is shared with the parent."""
    global _context
    with _context_lock:
        if _context is None or _context.pid != os.getpid():
            _context = build_context(settings_from_env())
        return _context


def set_context(ctx: WorkerContext | None) -> None:
    """Install a prebuilt context (tests, the embedded bench); None forgets it."""
    global _context
    with _context_lock:
        _context = ctx


@app.task(name=SUPERVISOR)
def supervisor() -> dict[str, Any]:
    ctx = context()

    def work() -> dict[str, Any]:
        return {"status": "ok", "created": len(ctx.supervisor.run())}

    return tracked(ctx.metrics, SUPERVISOR, work)


@app.task(name=DISPATCH)
def dispatch() -> dict[str, Any]:
    ctx = context()

    def work() -> dict[str, Any]:
        report = ctx.dispatcher.dispatch()
        log.info("dispatch t=%r shards=%d", report.t, len(report.jobs))
        return {"status": "ok", "t": report.t, "shards": len(report.jobs)}

    return tracked(ctx.metrics, DISPATCH, work)


@app.task(name=STEP_SHARD, bind=True, acks_late=True, reject_on_worker_lost=True)
def step_shard(self: Any, symbol: str, shard: int, t: float) -> dict[str, Any]:
    """Idempotent per tick (providence.md §18.3): a redelivered or late task returns without stepping."""
    ctx = context()
    started = time.perf_counter()
    result = "error"
    try:
        report = ctx.stepper.step(symbol, int(shard), float(t))
        result = SKIPPED if report.status == "locked" else "ok"
    finally:
        ctx.metrics.task_runs_total.labels(STEP_SHARD, result).inc()
    seconds = time.perf_counter() - started
    lag = time.time() - float(t)
    if report.status == "stepped":
        ctx.metrics.shard_lag_seconds.labels(symbol, str(int(shard))).set(lag)
    delivery = getattr(self.request, "delivery_info", None) or {}
    log.info(
        "step_shard %s:%d t=%r status=%s tick=%r stepped=%d seconds=%.4f lag=%.4f task=%s redelivered=%s "
        "trades=%d db_writes=%d",
        symbol,
        int(shard),
        float(t),
        report.status,
        report.tick,
        report.stepped,
        seconds,
        lag,
        self.request.id,
        bool(delivery.get("redelivered")),
        report.trades,
        report.db_writes,
    )
    return {"status": report.status, "tick": report.tick, "stepped": report.stepped}


@app.task(name=PURGE)
def purge() -> dict[str, Any]:
    from ttt.services.providence.purge import purge_runs

    ctx = context()

    def work() -> dict[str, Any]:
        after_s = ctx.settings.config.providence.purge_flagged_after_s
        return {"status": "ok", "deleted": purge_runs(ctx.runs, ctx.locks, WallClock(), after_s)}

    return tracked(ctx.metrics, PURGE, work)


def beat_kwargs(name: str, occasion: str | None, at: float | None) -> dict[str, Any]:
    """The arguments beat gives a task: the §2.2 one-offs that need them, and the reconcile slot.

    The cycle id is fixed when beat fires, not when a worker picks the task up, so a redelivered or late
    task still names the same cycle (portfolio.md §1.1) and cannot start a second one for the slot.
    """
    from ttt.domain.cycle_ids import startup_cycle_id

    if occasion == "startup" and name == FETCH:
        return {"backfill": True}
    if occasion == "startup" and name == RECONCILE and at is not None:
        return {"cycle_id": startup_cycle_id(at), "trigger": "startup", "scheduled_at": at}
    if occasion == "slot" and name == RECONCILE and at is not None:
        return {"scheduled_at": at}
    return {}


def send(
    name: str,
    *args: Any,
    countdown: float | None = None,
    occasion: str | None = None,
    at: float | None = None,
) -> None:
    """Publish one task by name to its routed queue (beat's only way of running work). Beat says why it
    fires (`occasion` "startup" or "slot", at its start time or the slot time) and gets the arguments.

    A slot firing carries its soft time limit (§2.3; enforced by the prefork pool, where the task sees
    `SoftTimeLimitExceeded` and counts as an error); a start-up one-off does not, since it may backfill."""
    queue = LOW if name == STEP_SHARD else HIGH
    kwargs = beat_kwargs(name, occasion, at)
    limit = _soft_limits.get(name) if occasion == "slot" else None
    app.send_task(
        name,
        args=args,
        kwargs=kwargs,
        queue=queue,
        routing_key=queue,
        countdown=countdown,
        soft_time_limit=limit,
    )


# The rest of the §2.1 tasks register on import (they import `app` and `context` from this module).
from ttt.runtime import tasks_data as _tasks_data  # noqa: E402, F401
from ttt.runtime import tasks_portfolio as _tasks_portfolio  # noqa: E402, F401
