"""Portfolio commands (services.md §12): `reconcile`, `positions`, `epochs list`, `take-profit
status|reset-baseline`, `audit tail`, `observer`.

Commands that change state defer to a running `3t run` (lock `instance:embedded`) by leaving a request
row for it; otherwise they act in-process. Runtime pieces this module cannot build itself (the order
gateway client, the exchange) come from a wiring factory the runtime registers with `set_wiring`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ttt.cli.context import CliState
from ttt.config.settings import Settings
from ttt.domain.quorum import ObserverDocument, Reading, Unavailable
from ttt.errors import PreconditionError, TTTError
from ttt.ports import Cache, Clock, LockManager
from ttt.services.portfolio.bootstrap import (
    actor,
    reconcile_settings,
    take_profit_config,
)
from ttt.services.portfolio.ports import ObserverSource, OrderGateway

INSTANCE_LOCK = "instance:embedded"


class _WallClock:
    def now(self) -> float:
        return time.time()


@dataclass
class PortfolioWiring:
    """What the runtime supplies to in-process portfolio commands."""

    gateway: OrderGateway | None = None
    observers: list[ObserverSource] = field(default_factory=list)
    cache: Cache | None = None
    locks: LockManager | None = None
    clock: Clock = field(default_factory=_WallClock)


WiringFactory = Callable[[Settings, Engine], PortfolioWiring]
_wiring_factory: WiringFactory | None = None


def set_wiring(factory: WiringFactory | None) -> None:
    """Registered by the runtime (and by tests) so in-process cycles can reach the gateway."""
    global _wiring_factory
    _wiring_factory = factory


class DatabaseUnavailable(TTTError):
    """The database could not be reached (exit code 1, one line)."""


class _EmbeddedObserverElsewhere:
    """E lives inside `3t run`; from a CLI process it is honestly unavailable, never assumed to agree."""

    name = "E"

    def fetch(self) -> ObserverDocument | Unavailable:
        return Unavailable("transport", "the embedded observer runs inside `3t run`, not in this process")


# --- settings → services ---------------------------------------------------------------------------------


def _state(ctx: typer.Context) -> CliState:
    return ctx.obj if isinstance(ctx.obj, CliState) else CliState()


def _settings(ctx: typer.Context) -> Settings:
    from ttt.config import load_settings

    state = _state(ctx)
    overrides = {"observability.log_level": state.log_level} if state.log_level else None
    return load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process="cli")


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    from ttt.adapters.db.engine import make_engine, redacted

    db = settings.config.database
    password = settings.secrets.database.password
    engine = make_engine(
        db.url,
        password=password.get_secret_value() if password is not None else None,
        pool_size=db.pool_size,
        pool_recycle_s=db.pool_recycle_s,
    )
    try:
        yield engine
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnavailable(f"database error ({redacted(engine.url)}): {reason}") from None
    finally:
        engine.dispose()


def _default_wiring(settings: Settings, engine: Engine) -> PortfolioWiring:
    from ttt.adapters.cache.factory import make_cache, make_lock_manager
    from ttt.config import resolved
    from ttt.services.portfolio.observer import HttpObserverSource

    c = settings.config
    backend = resolved.cache_backend(c)
    redis_password = settings.secrets.redis.password
    pw = redis_password.get_secret_value() if redis_password is not None else None
    cache = make_cache(backend, c.cache.redis_url, c.cache.prefix, pw) if backend == "redis" else None
    locks = make_lock_manager(
        "redis" if backend == "redis" else "db", c.cache.redis_url, c.cache.prefix, pw, engine=engine
    )
    q = c.portfolio.quorum
    observers: list[ObserverSource] = [
        HttpObserverSource(f"O{i}", url, q.observer_timeout_s) for i, url in enumerate(q.observers, start=1)
    ]
    if resolved.embedded_observer(c):
        observers.append(_EmbeddedObserverElsewhere())
    return PortfolioWiring(gateway=None, observers=observers, cache=cache, locks=locks)


def _wiring(settings: Settings, engine: Engine) -> PortfolioWiring:
    factory = _wiring_factory or _default_wiring
    return factory(settings, engine)


def _instance_running(engine: Engine, clock: Clock) -> bool:
    from ttt.adapters.db.locks import DbLockManager

    holder = DbLockManager(engine, clock).holder(INSTANCE_LOCK)
    return holder is not None and holder[1] > clock.now()


def _alert_sink(settings: Settings, engine: Engine, clock: Clock, *, quiet: bool = False) -> Any:
    from ttt.services.portfolio.alerts import AlertSink, db_audit_writer

    alerts = settings.config.observability.alerts
    token = settings.secrets.alerts.webhook_token
    return AlertSink(
        clock,
        None,
        audit=None if quiet else db_audit_writer(engine, actor()),
        min_interval_s=alerts.min_interval_s,
        webhook_url=None if quiet else alerts.webhook_url,
        webhook_token=token.get_secret_value() if token is not None else None,
    )


def _service(settings: Settings, engine: Engine, wiring: PortfolioWiring, *, gateway: OrderGateway) -> Any:
    from ttt.services.portfolio.reconcile import ReconcileService

    return ReconcileService(
        engine,
        wiring.locks if wiring.locks is not None else _db_locks(engine, wiring.clock),
        wiring.clock,
        gateway,
        _alert_sink(settings, engine, wiring.clock),
        reconcile_settings(settings),
        observers=wiring.observers,
        cache=wiring.cache,
    )


def _db_locks(engine: Engine, clock: Clock) -> LockManager:
    from ttt.adapters.db.locks import DbLockManager

    return DbLockManager(engine, clock)


class _NoGateway:
    """Dry runs never reach the gateway; any call would be a bug, so it fails loudly."""

    def submit(self, order: Any) -> Any:
        raise PreconditionError("dry run: no order may be sent")

    def cancel_open(self, symbols: Any) -> Any:
        raise PreconditionError("dry run: nothing may be cancelled")

    def open_orders(self, symbol: str | None = None) -> list[Any]:
        return []


# --- rendering -------------------------------------------------------------------------------------------


def _record_json(record: Any) -> dict[str, Any]:
    desired = record.desired.result if record.desired is not None else None
    plan = record.plan
    sources = []
    if record.quorum is not None:
        for d in record.quorum.sources:
            if isinstance(d.reading, Reading):
                sources.append({"source": d.source, "size": d.reading.size, "as_of": d.reading.as_of})
            else:
                sources.append(
                    {"source": d.source, "unavailable": d.reading.reason, "detail": d.reading.detail}
                )
    order = plan.order if plan is not None else None
    return {
        "symbol": record.symbol,
        "outcome": "would_order" if record.pending_order and record.answer is None else record.outcome,
        "hold_reason": record.hold_reason,
        "desired": getattr(desired, "value", None),
        "desired_kind": None if desired is None else type(desired).__name__.lower(),
        "desired_reason": getattr(desired, "reason", None),
        "desired_clamped": plan.desired if plan is not None else None,
        "actual": plan.actual if plan is not None else None,
        "price": record.price,
        "order": None
        if order is None
        else {"side": order.side, "size": str(order.size), "client_order_id": order.client_order_id},
        "sources": sources,
    }


def _render_records(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        what = r["outcome"] + (f" ({r['hold_reason']})" if r["hold_reason"] else "")
        if r["order"]:
            what += f": {r['order']['side']} {r['order']['size']}"
        desired = r["desired"] if r["desired"] is not None else f"{r['desired_kind']}:{r['desired_reason']}"
        lines.append(f"{r['symbol']}: desired {desired}  actual {r['actual']}  → {what}")
        for s in r["sources"]:
            detail = f"{s['size']}" if "size" in s else f"unavailable ({s['unavailable']})"
            lines.append(f"    {s['source']}: {detail}")
    return "\n".join(lines) if lines else "(no symbols)"


# --- commands --------------------------------------------------------------------------------------------


def reconcile(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and print decisions; no orders, no writes.")
    ] = False,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this universe symbol.")] = None,
) -> None:
    """Request a manual reconciliation cycle (or compute one with --dry-run)."""
    from ttt.domain.cycle_ids import manual_cycle_id

    settings = _settings(ctx)
    symbols = [symbol] if symbol else None
    if symbol and symbol not in settings.config.universe.symbols:
        raise PreconditionError(f"--symbol {symbol} is not in universe.symbols")
    with _engine(settings) as engine:
        wiring = _wiring(settings, engine)
        cycle_id = manual_cycle_id(wiring.clock.now())
        if dry_run:
            svc = _service(settings, engine, wiring, gateway=_NoGateway())
            result = svc.run_cycle(cycle_id, "manual", dry_run=True, symbols=symbols)
            rows = [_record_json(r) for r in result.records]
            _state(ctx).emit(
                {"cycle_id": cycle_id, "dry_run": True, "symbols": rows}, lambda: _render_records(rows)
            )
            return
        if _instance_running(engine, wiring.clock):
            from ttt.adapters.db.uow import UnitOfWork

            with UnitOfWork(engine) as uow:
                uow.reconciliation.request_cycle(cycle_id, "manual", wiring.clock.now())
            data = {"cycle_id": cycle_id, "requested": True}
            _state(ctx).emit(data, lambda: f"cycle {cycle_id} requested from the running `3t run`")
            return
        if wiring.gateway is None:
            raise PreconditionError(
                "no order gateway is reachable from this process: start `3t run` (the cycle is then "
                "requested from it) or configure the runtime wiring; nothing was done"
            )
        svc = _service(settings, engine, wiring, gateway=wiring.gateway)
        result = svc.run_cycle(cycle_id, "manual", symbols=symbols)
        from ttt.services.portfolio.reconcile import MAX_BUSY_RETRIES

        for _ in range(MAX_BUSY_RETRIES):
            if result.outcome != "busy":
                break
            time.sleep(result.retry_after_s or settings.config.portfolio.busy_retry_s)
            result = svc.run_cycle(cycle_id, "manual", symbols=symbols)
        rows = [_record_json(r) for r in result.records]
        data = {"cycle_id": cycle_id, "outcome": result.outcome, "error": result.error, "symbols": rows}
        _state(ctx).emit(data, lambda: f"cycle {cycle_id}: {result.outcome}\n" + _render_records(rows))
        if result.outcome in ("failed", "held", "busy"):
            raise typer.Exit(1)


def positions(ctx: typer.Context) -> None:
    """Print desired vs actual per symbol with the per-source quorum detail (read-only)."""
    from ttt.domain.cycle_ids import manual_cycle_id

    settings = _settings(ctx)
    with _engine(settings) as engine:
        wiring = _wiring(settings, engine)
        svc = _service(settings, engine, wiring, gateway=_NoGateway())
        result = svc.run_cycle(manual_cycle_id(wiring.clock.now()), "manual", dry_run=True)
        rows = [_record_json(r) for r in result.records]
        _state(ctx).emit({"symbols": rows}, lambda: _render_records(rows))


epochs_app = typer.Typer(name="epochs", help="Take-profit epochs (heights), drawdown and baseline resets.")
take_profit_app = typer.Typer(name="take-profit", help="Take-profit state and the manual baseline reset.")
audit_app = typer.Typer(name="audit", help="The append-only audit log.")


@epochs_app.command("list")
def epochs_list(ctx: typer.Context, limit: Annotated[int, typer.Option("-n", "--limit", min=1)] = 50) -> None:
    """List epochs, newest first."""
    from ttt.adapters.db.uow import UnitOfWork

    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        rows = [
            {
                "id": e.id,
                "kind": e.kind,
                "height": e.height,
                "triggered_at": e.triggered_at.isoformat(),
                "baseline_before": str(e.baseline_before),
                "value": str(e.value),
                "gain": str(e.gain),
                "runs_flagged": e.runs_flagged,
                "forced_cycles": dict(zip(e.forced_cycle_ids or [], e.forced_state or [], strict=False)),
            }
            for e in uow.take_profit.epochs(limit)
        ]

    def render() -> str:
        if not rows:
            return "no epochs"
        return "\n".join(
            f"{r['id']:>5} {r['kind']:<15} height {r['height'] if r['height'] is not None else '-':>4} "
            f"{r['triggered_at']}  β {r['baseline_before']} → {r['value']} (g {r['gain']}) "
            f"runs {r['runs_flagged']} {r['forced_cycles']}"
            for r in rows
        )

    _state(ctx).emit(rows, render)


def _tp_service(settings: Settings, engine: Engine, clock: Clock) -> Any:
    from ttt.services.portfolio.takeprofit import TakeProfitService

    def refuse(cycle_id: str, trigger: str) -> None:
        raise PreconditionError(f"forced cycle {cycle_id} must be sent by the running take-profit task")

    return TakeProfitService(
        engine,
        _db_locks(engine, clock),
        clock,
        _alert_sink(settings, engine, clock),
        take_profit_config(settings),
        refuse,
        actor=actor(),
    )


@take_profit_app.command("status")
def take_profit_status(ctx: typer.Context) -> None:
    """Show baseline, window, gain and cooldown."""
    settings = _settings(ctx)
    clock = _WallClock()
    with _engine(settings) as engine:
        status = _tp_service(settings, engine, clock).status()
    _state(ctx).emit(status, lambda: "\n".join(f"{k}: {v}" for k, v in status.items()))


@take_profit_app.command("reset-baseline")
def take_profit_reset_baseline(ctx: typer.Context) -> None:
    """Set the baseline to the median of the fresh readings (epoch `baseline_reset`)."""
    settings = _settings(ctx)
    clock = _WallClock()
    with _engine(settings) as engine:
        if _instance_running(engine, clock):
            from ttt.adapters.db.uow import UnitOfWork

            with UnitOfWork(engine) as uow:
                request_id = uow.control.add("take_profit.reset_baseline", {}, clock.now())
            data: dict[str, Any] = {"requested": True, "request_id": request_id}
            _state(ctx).emit(
                data, lambda: f"baseline reset requested from the running `3t run` (#{request_id})"
            )
            return
        from ttt.services.locking import LockBusy

        try:
            epoch_id = _tp_service(settings, engine, clock).reset_baseline()
        except LockBusy:
            raise PreconditionError("the take-profit task is running; try again in a few seconds") from None
    _state(ctx).emit({"epoch_id": epoch_id}, lambda: f"baseline reset (epoch {epoch_id})")


@audit_app.command("tail")
def audit_tail(
    ctx: typer.Context,
    cycle: Annotated[str | None, typer.Option("--cycle", help="Only rows of this cycle id.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only rows of this kind.")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Number of rows.")] = 50,
) -> None:
    """Print the newest audit rows, oldest first."""
    from ttt.adapters.db.uow import UnitOfWork

    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        rows = [
            {
                "id": r.id,
                "ts": r.ts.isoformat(),
                "kind": r.kind,
                "severity": r.severity,
                "cycle_id": r.cycle_id,
                "symbol": r.symbol,
                "client_order_id": r.client_order_id,
                "message": r.message,
                "payload": r.payload,
            }
            for r in uow.audit.tail(n, cycle_id=cycle, kind=kind)
        ]

    def render() -> str:
        if not rows:
            return "no audit rows"
        return "\n".join(
            f"{r['ts']} {r['severity']:<8} {r['kind']:<20} {r['cycle_id'] or '-'} {r['symbol'] or '-'} "
            f"{r['message']}"
            for r in rows
        )

    _state(ctx).emit(rows, render)


def observer(ctx: typer.Context) -> None:
    """Start the exchange observer HTTP server (polls clearinghouseState; needs no secrets)."""
    import uvicorn

    from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient
    from ttt.api.observer import create_app
    from ttt.config import resolved
    from ttt.services.portfolio.alerts import AlertSink
    from ttt.services.portfolio.observer import ObserverPoller, hyperliquid_info_fetch
    from ttt.telemetry.metrics import Metrics

    settings = _settings(ctx)
    c = settings.config
    if not c.observer.wallets:
        raise PreconditionError("observer.wallets is empty: nothing to observe")
    clock = _WallClock()
    metrics = Metrics.create()
    client = HyperliquidInfoClient.from_settings(c.exchange.hyperliquid, metrics=metrics)
    alerts = AlertSink(clock, metrics, min_interval_s=c.observability.alerts.min_interval_s)
    poller = ObserverPoller(
        hyperliquid_info_fetch(client.post_info),
        c.observer.wallets,
        clock,
        observer_id=c.observer.id,
        dexes=resolved.observer_hip3_dexes(c),
        alerts=alerts,
        metrics=metrics,
        persist_path=c.observer.persist_path,
    )
    stop = threading.Event()
    loop = threading.Thread(
        target=poller.run, args=(stop, c.observer.poll_interval_s), name="observer-poll", daemon=True
    )
    loop.start()
    app = create_app(poller, clock, poll_interval_s=c.observer.poll_interval_s, registry=metrics.registry)
    try:
        uvicorn.run(app, host=c.observer.bind, port=c.observer.port, log_level="warning")
    finally:
        stop.set()
        client.close()


COMMANDS: dict[str, Callable[..., None]] = {
    "reconcile": reconcile,
    "positions": positions,
    "observer": observer,
}
SUB_APPS: dict[str, typer.Typer] = {"epochs": epochs_app, "take-profit": take_profit_app, "audit": audit_app}


def register(app: typer.Typer) -> None:
    """For the lead: `register(app)` adds every portfolio command to the `3t` app."""
    for name, command in COMMANDS.items():
        app.command(name=name)(command)
    for name, sub in SUB_APPS.items():
        app.add_typer(sub, name=name)
