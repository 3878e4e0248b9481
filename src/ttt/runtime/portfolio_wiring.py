"""The portfolio side of embedded mode: products, account snapshots, the in-process gateway, the embedded
observer, reconciliation and take-profit on the shared schedule (services.md §1.2, §2).

Nothing here decides anything: it builds the same services the distributed runtime uses and hands them
the embedded adapters (paper exchange, in-process cache, DB locks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from ttt.adapters.db.uow import UnitOfWork
from ttt.config import Settings
from ttt.domain.cycle_ids import scheduled_cycle_id, startup_cycle_id
from ttt.ports import Cache, Clock, ExchangeAdapter, LockManager
from ttt.runtime.scheduler import ScheduledTask
from ttt.services.gateway.bootstrap import build_gateway
from ttt.services.gateway.client import InProcessGatewayClient
from ttt.services.gateway.support import SerializedExchange
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
from ttt.services.portfolio.observer import EmbeddedObserverSource, HttpObserverSource, ObserverPoller
from ttt.services.portfolio.ports import ObserverSource
from ttt.services.portfolio.reconcile import ReconcileService
from ttt.services.portfolio.takeprofit import TakeProfitService
from ttt.services.products_sync import ConfiguredProducts, products_sync, venue_from_config
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

CONTROL_RESET_BASELINE = "take_profit.reset_baseline"
CONTROL_CANCEL_OURS = "orders.cancel_ours"


@dataclass
class PortfolioSide:
    reconcile: ReconcileService
    take_profit: TakeProfitService
    ingestion: BalanceIngestion
    observer: ObserverPoller
    gateway: Any
    products: Callable[[], Any]
    pending_cycles: list[tuple[str, str]] = field(default_factory=list)
    cycles_run: int = 0

    def run_pending_cycles(self) -> None:
        """Forced (take-profit) cycles queued during this instant run after the scheduled tasks."""
        queued, self.pending_cycles = self.pending_cycles, []
        for cycle_id, trigger in queued:
            self.reconcile.run_cycle(cycle_id, trigger)
            self.cycles_run += 1


def build_portfolio_side(
    settings: Settings,
    *,
    engine: Engine,
    cache: Cache,
    locks: LockManager,
    clock: Clock,
    exchange: ExchangeAdapter,
    metrics: Metrics,
) -> PortfolioSide:
    cfg = settings.config
    me = actor("run")
    alerts = AlertSink(
        clock,
        metrics,
        audit=db_audit_writer(engine, me),
        min_interval_s=cfg.observability.alerts.min_interval_s,
        webhook_url=cfg.observability.alerts.webhook_url,
        webhook_token=_secret(settings.secrets.alerts.webhook_token),
        cache=cache,
        events_maxlen=cfg.cache.streams.events_maxlen,
    )
    venue = venue_from_config(cfg.exchange)
    source = ConfiguredProducts(cfg.exchange.paper.products)

    def sync_products() -> Any:
        return products_sync(engine, locks, clock, source, venue)

    sync_products()
    serialized = SerializedExchange(exchange)
    bundle = build_gateway(
        settings, engine=engine, cache=cache, locks=locks, clock=clock, exchange=serialized, metrics=metrics
    )
    bridge = GatewayBridge(InProcessGatewayClient(bundle.service))
    account = wallet(settings)
    ingestion = BalanceIngestion(
        serialized,
        engine,
        clock,
        alerts,
        IngestionSettings(
            exchange_name(settings),
            cfg.exchange.kind,
            account,
            tuple(cfg.exchange.hyperliquid.hip3_dexes),
            cfg.cache.streams.balance_maxlen,
        ),
        metrics=metrics,
        cache=cache,
        locks=locks,
    )
    observer = ObserverPoller(
        lambda address, dex: serialized.fetch_account(address, [dex])[dex],
        [account, *cfg.observer.wallets],
        clock,
        observer_id=cfg.observer.id,
        dexes=["", *cfg.exchange.hyperliquid.hip3_dexes],
        alerts=alerts,
        metrics=metrics,
    )
    q = cfg.portfolio.quorum
    observers: list[ObserverSource] = [
        HttpObserverSource(f"O{i}", url, q.observer_timeout_s) for i, url in enumerate(q.observers, start=1)
    ]
    if settings.embedded_observer:
        observers.append(EmbeddedObserverSource(observer, name="E"))
    reconcile = ReconcileService(
        engine,
        locks,
        clock,
        bridge,
        alerts,
        reconcile_settings(settings, "run"),
        observers=observers,
        cache=cache,
        metrics=metrics,
    )
    side: PortfolioSide
    take_profit = TakeProfitService(
        engine,
        locks,
        clock,
        alerts,
        take_profit_config(settings),
        lambda cycle_id, trigger: side.pending_cycles.append((cycle_id, trigger)),
        metrics=metrics,
        actor=me,
    )
    side = PortfolioSide(reconcile, take_profit, ingestion, observer, bundle.service, sync_products)
    return side


def portfolio_tasks(
    side: PortfolioSide, settings: Settings, clock: Clock, engine: Engine
) -> list[ScheduledTask]:
    """The portfolio rows of the schedule table (services.md §2.1), in the embedded runtime's order."""
    cfg = settings.config
    periods = cfg.scheduler.periods
    reconcile_period = int(periods.reconcile)

    def scheduled_cycle() -> Any:
        result = side.reconcile.run_cycle(scheduled_cycle_id(clock.now(), reconcile_period), "sched")
        side.cycles_run += 1
        return result

    def control() -> int:
        return pick_up_requests(side, engine, clock)

    return [
        ScheduledTask("ttt.products.sync", periods.products_sync, side.products),
        ScheduledTask("ttt.account.update_balance", periods.balance_update, side.ingestion.run),
        ScheduledTask("ttt.observer.poll", cfg.observer.poll_interval_s, side.observer.poll_once),
        ScheduledTask("ttt.portfolio.reconcile", periods.reconcile, scheduled_cycle),
        ScheduledTask("ttt.portfolio.take_profit", periods.take_profit, side.take_profit.run),
        ScheduledTask("ttt.gateway.resolver", cfg.gateway.resolver_period_s, side.gateway.run_resolver_once),
        ScheduledTask("ttt.ops.control", periods.control, control),
    ]


def startup_cycle(side: PortfolioSide, clock: Clock) -> Any:
    """§2.2 step 5: the startup cycle, after the balance and the supervisor."""
    result = side.reconcile.run_cycle(startup_cycle_id(clock.now()), "startup")
    side.cycles_run += 1
    return result


def pick_up_requests(side: PortfolioSide, engine: Engine, clock: Clock) -> int:
    """S1: cycles, baseline resets and cancels that CLI processes asked the running `3t run` for (§1.2)."""
    with UnitOfWork(engine, read_only=True) as uow:
        cycles = [(c.cycle_id, c.trigger) for c in uow.reconciliation.requested_cycles()]
        requests = [
            (r.id, r.kind, r.payload)
            for r in uow.control.pending([CONTROL_RESET_BASELINE, CONTROL_CANCEL_OURS])
        ]
    for cycle_id, trigger in cycles:
        side.reconcile.run_cycle(cycle_id, trigger)
        side.cycles_run += 1
    for request_id, kind, payload in requests:
        with UnitOfWork(engine) as uow:
            picked = uow.control.pick(request_id, clock.now())
        if not picked:
            continue
        try:
            if kind == CONTROL_CANCEL_OURS:
                result = _cancel_ours(side, payload)
            else:
                result = {"ok": True, "epoch_id": side.take_profit.reset_baseline()}
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with UnitOfWork(engine) as uow:
            uow.control.finish(request_id, result)
    return len(cycles) + len(requests)


def _cancel_ours(side: PortfolioSide, payload: Any) -> dict[str, Any]:
    """`3t orders cancel-ours` (portfolio.md §12) on the running gateway; a malformed payload is refused
    whole rather than read as "every symbol"."""
    from ttt.services.gateway.model import GatewayError

    symbols = payload.get("symbols") if isinstance(payload, dict) else None
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        return {"ok": False, "error": f"payload needs a list of symbols, got {payload!r}"}
    try:
        answer = side.gateway.cancel_open(symbols, "ours")
    except GatewayError as exc:
        return {"ok": False, "error": f"{exc.code}: {exc.message}", "details": exc.details}
    results = answer.body["results"]
    return {"ok": not any(r["error"] for r in results), "results": results}


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None
