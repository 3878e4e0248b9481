"""The reconciliation cycle, task `ttt.portfolio.reconcile` (portfolio.md §1, in its normative order).

The pure rules decide (`ttt.domain`); this module reads their inputs once per cycle (L1), writes the
write-ahead records, talks to the gateway and raises the alerts. Its invariant is P1: any failure to know
something ends in a hold with an alert, and only a positively established `Flat` can lead to an order
towards flat.

SQLite note: a writing unit of work holds the database write lock for its whole duration, so no lock
call, alert (which writes an audit row) or second writing unit of work ever happens inside one here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ttt.adapters.db.models import ReconciliationCycle
from ttt.adapters.db.repositories.portfolio_extra import FenceOrder, PortfolioQueries
from ttt.adapters.db.repositories.reconciliation import FINISHED
from ttt.adapters.db.types import as_utc
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.calendar import CalendarConfig, is_market_open
from ttt.domain.caps import margin_caps, max_margin
from ttt.domain.client_ids import is_valid_cycle_id
from ttt.domain.decisions import cycle_hold
from ttt.domain.desired import (
    Aggregate,
    AggregateInput,
    Bar,
    DesiredConfig,
    DesiredOutcome,
    KellyInput,
    KellyInputs,
    LivePrice,
    Population,
    PopulationInput,
    PriceInput,
    desired_position,
    select_price,
)
from ttt.domain.kelly import kelly_metrics
from ttt.domain.quorum import (
    LocalPosition,
    LocalSnapshot,
    ObserverConfig,
    ObserverDocument,
    OrderClosure,
    QuorumOutcome,
    Reading,
    SourceResult,
    Unavailable,
    fill_fence,
    local_reading,
    observer_reading,
    quorum,
)
from ttt.domain.results import Flat, Unknown, Value, severity_of
from ttt.domain.rounding import DEFAULT_MIN_NOTIONAL, lot_size
from ttt.domain.symbol_plan import PlanConfig, SymbolPlan, plan_symbol
from ttt.domain.symbols import api_coin, coin_dex
from ttt.errors import CacheUnavailable
from ttt.ports import Cache, Clock, LockManager
from ttt.services.portfolio.alerts import AlertSeverity, AlertSink
from ttt.services.portfolio.outcomes import submit_outcome
from ttt.services.portfolio.ports import (
    ObserverSource,
    OrderGateway,
    OrderSubmission,
    SubmitAnswer,
)
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

RECONCILE_LOCK = "reconcile"
COMPONENT = "reconcile"
LOCAL_SOURCE = "local"
MAX_BUSY_RETRIES = 10
REJECTED_CRITICAL_AFTER = 3

CycleOutcome = Literal["completed", "duplicate", "market_closed", "busy", "failed", "held", "dry_run"]
SymbolOutcome = Literal[
    "order_sent",
    "no_action",
    "below_threshold",
    "blocked_by_margin_gate",
    "rounded_to_zero",
    "below_exchange_minimum",
    "hold",
    "order_not_sent",
    "order_rejected",
    "order_unknown",
]
QueriesFactory = Callable[[Session], PortfolioQueries]
DirectionVote = Callable[[str, str], int]  # (cycle_id, symbol) → +1 or −1


@dataclass(frozen=True)
class ReconcileSettings:
    universe: tuple[str, ...]
    exchange_name: str
    wallet: str
    desired: DesiredConfig = field(default_factory=DesiredConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    kelly_min_samples: int = 10
    balance_max_age_s: float = 120.0
    price_max_age_s: float = 180.0
    live_price_max_age_s: float = 60.0
    cycle_lock_ttl_s: float = 600.0
    busy_retry_s: float = 30.0
    quorum_k: int = 2
    local_max_age_s: float = 60.0
    observer: ObserverConfig = field(default_factory=ObserverConfig)
    observer_timeout_s: float = 5.0
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    order_style: str | None = None
    actor: str = "reconcile"


@dataclass
class SymbolRecord:
    """Everything the cycle knows about one symbol; becomes a reconciliation_log row and an audit row."""

    symbol: str
    outcome: SymbolOutcome
    hold_reason: str | None = None
    hold_detail: str | None = None
    desired: DesiredOutcome | None = None
    quorum: QuorumOutcome | None = None
    plan: SymbolPlan | None = None
    price: float | None = None
    cap: float | None = None
    client_order_id: str | None = None
    answer: SubmitAnswer | None = None
    pending_order: bool = False


@dataclass
class CycleResult:
    cycle_id: str
    trigger: str
    outcome: CycleOutcome
    lock_token: str | None = None
    snapshot_id: int | None = None
    records: list[SymbolRecord] = field(default_factory=list)
    error: str | None = None
    retry_after_s: float | None = None
    alerts: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def orders_sent(self) -> int:
        return sum(1 for r in self.records if r.outcome == "order_sent")

    @property
    def holds(self) -> int:
        return sum(1 for r in self.records if r.outcome == "hold")

    def record(self, symbol: str) -> SymbolRecord:
        for r in self.records:
            if r.symbol == symbol:
                return r
        raise KeyError(symbol)


@dataclass(frozen=True)
class ProductInfo:
    id: int
    symbol: str
    coin: str
    lot: Decimal
    min_notional: Decimal
    max_leverage: float


@dataclass
class CycleInputs:
    now: float
    snapshot_id: int | None = None
    balance: float | None = None
    cross_margin: float | None = None
    local: LocalSnapshot | None = None
    caps: dict[str, float] = field(default_factory=dict)
    products: dict[str, ProductInfo] = field(default_factory=dict)
    prices: dict[str, PriceInput] = field(default_factory=dict)
    documents: dict[str, ObserverDocument | Unavailable] = field(default_factory=dict)
    fences: dict[str, float | None] = field(default_factory=dict)
    premarks: dict[str, Unknown] = field(default_factory=dict)


@dataclass(frozen=True)
class _StoredSnapshot:
    snapshot_id: int
    fetched_at: float
    balance: float
    cross: float | None
    positions: dict[int, LocalPosition]
    missing_dexes: frozenset[str]
    off_grid: frozenset[str]


def trigger_of(cycle_id: str) -> str:
    return cycle_id.split(":", 1)[0]


def _f(x: Decimal | float | None) -> float | None:
    return None if x is None else float(x)


class _LockLost(Exception):
    pass


class ReconcileService:
    def __init__(
        self,
        engine: Engine,
        locks: LockManager,
        clock: Clock,
        gateway: OrderGateway,
        alerts: AlertSink,
        settings: ReconcileSettings,
        *,
        observers: Sequence[ObserverSource] = (),
        cache: Cache | None = None,
        metrics: Metrics | None = None,
        queries: QueriesFactory = PortfolioQueries,
        direction_vote: DirectionVote | None = None,
    ) -> None:
        self._engine = engine
        # Backtest hook (services.md §10.4 random_vote): replaces the sign of Σdir; None in production.
        self.direction_vote = direction_vote
        self._locks = locks
        self._clock = clock
        self._gateway = gateway
        self._alerts = alerts
        self.settings = settings
        self._observers = list(observers)
        self._cache = cache
        self._metrics = metrics
        self._queries = queries
        self._busy_slots = 0
        names = [LOCAL_SOURCE, *(o.name for o in self._observers)]
        if len(set(names)) != len(names):
            raise ValueError(f"quorum source names must be unique, got {names}")
        if not 1 <= settings.quorum_k <= len(names):
            raise ValueError(
                f"portfolio.quorum.k = {settings.quorum_k} must be between 1 and the {len(names)} sources"
            )

    # --- alerts and metrics -------------------------------------------------------------------------

    def _alert(
        self,
        result: CycleResult,
        reason: str,
        severity: AlertSeverity,
        *,
        symbol: str | None = None,
        scope: str | None = None,
        message: str = "",
        dry_run: bool = False,
    ) -> None:
        result.alerts.append((reason, severity, symbol or scope))
        if dry_run:
            return
        self._alerts.alert(
            COMPONENT,
            reason,
            severity,
            scope=scope if scope is not None else symbol,
            symbol=symbol,
            message=message,
            cycle_id=result.cycle_id,
            lock_token=result.lock_token,
        )

    def _count_cycle(self, trigger: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.reconciliation_cycles_total.labels(trigger, outcome).inc()

    # --- entry point --------------------------------------------------------------------------------

    def run_cycle(
        self,
        cycle_id: str,
        trigger: str | None = None,
        scheduled_at: float | None = None,
        *,
        dry_run: bool = False,
        symbols: Sequence[str] | None = None,
    ) -> CycleResult:
        if not is_valid_cycle_id(cycle_id):
            raise ValueError(f"cycle id {cycle_id!r} does not match ^[A-Za-z0-9:._-]{{1,64}}$")
        trig = trigger or trigger_of(cycle_id)
        universe = self._universe(symbols)
        if dry_run:
            result = CycleResult(cycle_id, trig, "dry_run")
            inputs = self._inputs(result, universe, dry_run=True, cancel_failures={})
            result.records = [self._evaluate(result, inputs, s, dry_run=True) for s in universe]
            return result
        started = self._clock.now()
        result = CycleResult(cycle_id, trig, "completed")
        try:
            with UnitOfWork(self._engine, read_only=True) as uow:
                existing = uow.reconciliation.cycle(cycle_id)
                finished = existing is not None and existing.outcome in FINISHED
        except SQLAlchemyError as exc:
            return self._abort(result, "db_unavailable", f"database unavailable: {exc}")
        if finished:
            result.outcome = "duplicate"
            self._count_cycle(trig, "duplicate")
            return result
        # C1
        if not is_market_open(started, self.settings.calendar):
            return self._market_closed(result, scheduled_at, started)
        # C2
        try:
            token = self._locks.acquire(RECONCILE_LOCK, self.settings.cycle_lock_ttl_s)
        except CacheUnavailable as exc:
            return self._abort(result, "cache_unavailable", f"lock backend unavailable: {exc}")
        except SQLAlchemyError as exc:
            return self._abort(result, "db_unavailable", f"database unavailable for the lock: {exc}")
        if token is None:
            return self._busy(result)
        if trig == "sched":
            self._busy_slots = 0
        result.lock_token = token
        try:
            return self._locked_cycle(result, universe, scheduled_at, started)
        finally:
            try:
                self._locks.release(RECONCILE_LOCK, token)
            except Exception as exc:  # it expires by TTL; never unconditional delete
                log.error("reconcile lock not released (expires by TTL): %s", exc)

    def _universe(self, symbols: Sequence[str] | None) -> list[str]:
        universe = list(self.settings.universe)
        if symbols is None:
            return universe
        unknown = [s for s in symbols if s not in universe]
        if unknown:
            raise ValueError(f"symbol(s) not in universe.symbols: {', '.join(unknown)}")
        return [s for s in universe if s in symbols]

    def _abort(self, result: CycleResult, reason: str, message: str) -> CycleResult:
        result.outcome = "held"
        result.error = message
        self._alert(result, reason, "critical", message=message)
        self._count_cycle(result.trigger, "held")
        return result

    def _busy(self, result: CycleResult) -> CycleResult:
        """F2: a scheduled cycle is skipped; forced and manual ones are retried by the caller."""
        result.outcome = "busy"
        if result.trigger == "sched":
            self._busy_slots += 1
            if self._busy_slots >= 2:
                self._alert(
                    result,
                    "cycle_lock_contention",
                    "warning",
                    message=f"reconcile lock busy for {self._busy_slots} consecutive scheduled slots",
                )
        else:
            result.retry_after_s = self.settings.busy_retry_s
        self._count_cycle(result.trigger, "busy")
        return result

    def _market_closed(self, result: CycleResult, scheduled_at: float | None, now: float) -> CycleResult:
        result.outcome = "market_closed"
        try:
            with UnitOfWork(self._engine) as uow:
                row = uow.reconciliation.cycle(result.cycle_id)
                if row is None:
                    uow.reconciliation.add_cycle(
                        ReconciliationCycle(
                            cycle_id=result.cycle_id,
                            trigger=result.trigger,
                            scheduled_at=as_utc(scheduled_at if scheduled_at is not None else now),
                            started_at=as_utc(now),
                            finished_at=as_utc(now),
                            outcome="market_closed",
                            symbols=0,
                            orders_sent=0,
                            holds=0,
                        )
                    )
                else:
                    uow.reconciliation.update_cycle(
                        result.cycle_id,
                        outcome="market_closed",
                        started_at=as_utc(now),
                        finished_at=as_utc(now),
                    )
        except SQLAlchemyError as exc:
            log.error("market_closed cycle row not written: %s", exc)
        self._count_cycle(result.trigger, "market_closed")
        return result

    # --- C3 … C7 ------------------------------------------------------------------------------------

    def _locked_cycle(
        self, result: CycleResult, universe: list[str], scheduled_at: float | None, started: float
    ) -> CycleResult:
        token = result.lock_token
        try:
            with UnitOfWork(self._engine) as uow:
                row = uow.reconciliation.cycle(result.cycle_id)
                if row is not None and row.outcome in FINISHED:
                    result.outcome = "duplicate"
                else:
                    fields = {
                        "started_at": as_utc(started),
                        "finished_at": None,
                        "outcome": "running",
                        "lock_token": token,
                        "symbols": len(universe),
                        "orders_sent": 0,
                        "holds": 0,
                        "error": None,
                    }
                    if row is None:
                        at = scheduled_at if scheduled_at is not None else started
                        uow.reconciliation.add_cycle(
                            ReconciliationCycle(
                                cycle_id=result.cycle_id,
                                trigger=result.trigger,
                                scheduled_at=as_utc(at),
                                **fields,
                            )
                        )
                    else:
                        uow.reconciliation.update_cycle(result.cycle_id, **fields)
                    uow.audit.append(
                        ts=started,
                        kind="cycle.start",
                        actor=self.settings.actor,
                        message=f"cycle {result.cycle_id} started",
                        payload={
                            "trigger": result.trigger,
                            "scheduled_at": scheduled_at if scheduled_at is not None else started,
                            "lock_token": token,
                            "symbols": universe,
                        },
                        cycle_id=result.cycle_id,
                        lock_token=token,
                    )
        except SQLAlchemyError as exc:
            result.outcome = "held"
            result.error = f"cycle record not written: {exc}"
            self._alert(result, "audit_unavailable", "critical", message=result.error)
            self._count_cycle(result.trigger, "held")
            return result
        if result.outcome == "duplicate":
            self._count_cycle(result.trigger, "duplicate")
            return result
        self._alerts.publish(
            "cycle.start",
            "info",
            component=COMPONENT,
            reason=result.trigger,
            cycle_id=result.cycle_id,
            ts=started,
            message=f"cycle {result.cycle_id} started",
        )
        try:
            self._cycle_body(result, universe)
            result.outcome = "completed"
        except Exception as exc:
            log.exception("reconcile cycle %s failed", result.cycle_id)
            result.outcome = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            self._alert(result, "internal_error", "critical", message=f"cycle failed: {result.error}")
        self._finish(result, started)
        return result

    def _finish(self, result: CycleResult, started: float) -> None:
        now = self._clock.now()
        try:
            with UnitOfWork(self._engine) as uow:
                uow.reconciliation.update_cycle(
                    result.cycle_id,
                    finished_at=as_utc(now),
                    outcome=result.outcome,
                    snapshot_id=result.snapshot_id,
                    orders_sent=result.orders_sent,
                    holds=result.holds,
                    error=result.error,
                )
                uow.audit.append(
                    ts=now,
                    kind="cycle.end",
                    actor=self.settings.actor,
                    message=f"cycle {result.cycle_id} {result.outcome}",
                    payload={
                        "trigger": result.trigger,
                        "lock_token": result.lock_token,
                        "outcome": result.outcome,
                        "orders_sent": result.orders_sent,
                        "holds": result.holds,
                        "symbols": len(result.records),
                        "snapshot_id": result.snapshot_id,
                        "error": result.error,
                    },
                    cycle_id=result.cycle_id,
                    lock_token=result.lock_token,
                    severity="info" if result.outcome == "completed" else "critical",
                )
        except SQLAlchemyError as exc:
            self._alert(result, "audit_unavailable", "critical", message=f"cycle end not recorded: {exc}")
        else:
            self._alerts.publish(
                "cycle.end",
                "info" if result.outcome == "completed" else "critical",
                component=COMPONENT,
                reason=result.outcome,
                cycle_id=result.cycle_id,
                ts=now,
                message=f"cycle {result.cycle_id} {result.outcome}: {result.orders_sent} orders, "
                f"{result.holds} holds",
            )
        self._count_cycle(result.trigger, result.outcome)
        if self._metrics is not None:
            self._metrics.reconciliation_cycle_seconds.observe(max(0.0, now - started))
            if result.outcome == "completed":
                self._metrics.reconciliation_last_success.set(now)

    def _extend(self, result: CycleResult) -> None:
        assert result.lock_token is not None
        try:
            held = self._locks.extend(RECONCILE_LOCK, result.lock_token, self.settings.cycle_lock_ttl_s)
        except Exception as exc:
            log.error("reconcile lock extension failed: %s", exc)
            held = False
        if not held:
            raise _LockLost()

    def _cycle_body(self, result: CycleResult, universe: list[str]) -> None:
        # C4
        cancel_failures = self._cancel(result, universe)
        lost = False
        try:
            self._extend(result)
        except _LockLost:
            lost = True
        inputs = (
            None if lost else self._inputs(result, universe, dry_run=False, cancel_failures=cancel_failures)
        )
        if inputs is not None:
            result.snapshot_id = inputs.snapshot_id
            try:
                self._extend(result)
            except _LockLost:
                lost = True
        # C6
        for symbol in universe:
            if lost:
                record = SymbolRecord(symbol, "hold", "lock_lost", "the reconcile lock was lost")
                self._record(result, record, inputs, write_ahead=False)
                continue
            assert inputs is not None
            record = self._evaluate(result, inputs, symbol, dry_run=False)
            self._record(result, record, inputs, write_ahead=record.pending_order)
            try:
                self._extend(result)
            except _LockLost:
                lost = True
        if lost:
            self._alert(
                result, "cycle_lock_lost", "critical", message="reconcile lock lost; remaining symbols held"
            )

    # --- C4 ------------------------------------------------------------------------------------------

    def _cancel(self, result: CycleResult, universe: list[str]) -> dict[str, Unknown]:
        failures: dict[str, Unknown] = {}
        if not universe:
            return failures
        try:
            answers = self._gateway.cancel_open(universe)
        except Exception as exc:
            message = f"cancel-open failed: {type(exc).__name__}: {exc}"
            self._alert(result, "cancel_unavailable", "critical", message=message)
            return {s: Unknown("cancel_unavailable", message) for s in universe}
        by_symbol = {a.symbol: a for a in answers}
        for symbol in universe:
            answer = by_symbol.get(symbol)
            if answer is None or answer.error is not None:
                why = "no answer for the symbol" if answer is None else str(answer.error)
                failures[symbol] = Unknown("cancel_failed", why)
                self._alert(
                    result, "cancel_failed", "warning", symbol=symbol, message=f"cancel failed: {why}"
                )
        return failures

    # --- C5 ------------------------------------------------------------------------------------------

    def _read(self, work: Callable[[PortfolioQueries, UnitOfWork], Any]) -> Any:
        with UnitOfWork(self._engine, read_only=True) as uow:
            return work(self._queries(uow.session), uow)

    def _inputs(
        self,
        result: CycleResult,
        universe: list[str],
        *,
        dry_run: bool,
        cancel_failures: Mapping[str, Unknown],
    ) -> CycleInputs:
        s = self.settings
        inputs = CycleInputs(now=self._clock.now())
        premarks: dict[str, Unknown] = dict(cancel_failures)

        def premark_all(reason: Unknown) -> None:
            for symbol in universe:
                premarks.setdefault(symbol, reason)

        # 1. account snapshot
        snapshot_error: Unknown | None = None
        try:
            snap = self._read(lambda q, uow: self._snapshot(uow))
        except SQLAlchemyError as exc:
            snap = None
            snapshot_error = Unknown("balance_unavailable", f"snapshot query failed: {exc}")
        age: float | None = None
        if snap is not None:
            inputs.snapshot_id, inputs.balance, inputs.cross_margin = (
                snap.snapshot_id,
                snap.balance,
                snap.cross,
            )
            age = inputs.now - snap.fetched_at
        # 2. products, caps and metadata (one query)
        caps_ok = True
        try:
            inputs.products = self._read(lambda q, uow: self._products(uow))
        except SQLAlchemyError as exc:
            caps_ok = False
            log.error("margin caps query failed: %s", exc)
        # 4. the local source: the snapshot's positions by symbol
        if snap is not None:
            by_id = {p.id: p.symbol for p in inputs.products.values()}
            inputs.local = LocalSnapshot(
                snap.fetched_at,
                {by_id[pid]: pos for pid, pos in snap.positions.items() if pid in by_id},
                snap.missing_dexes,
                snap.off_grid,
            )
        hold = snapshot_error or cycle_hold(
            age, s.balance_max_age_s, inputs.balance, inputs.cross_margin, caps_available=caps_ok
        )
        if hold is None and caps_ok and inputs.balance is not None:
            leverage = {sym: p.max_leverage for sym, p in inputs.products.items()}
            inputs.caps = margin_caps(universe, leverage, max_margin(inputs.balance, s.plan.max_margin_usage))
        if hold is not None:
            self._alert(result, hold.reason, "critical", message=hold.detail or hold.reason, dry_run=dry_run)
            premark_all(hold)
        for symbol in universe:
            if caps_ok and symbol not in inputs.products and symbol not in premarks:
                premarks[symbol] = Unknown("instrument_metadata_missing", f"no product row for {symbol}")
                self._alert(
                    result,
                    "instrument_metadata_missing",
                    "warning",
                    symbol=symbol,
                    message=f"no product metadata for {symbol} on {s.exchange_name}",
                    dry_run=dry_run,
                )
        # 3. prices
        for symbol in universe:
            inputs.prices[symbol] = self._price(symbol, inputs.now)
        # 5. observer documents, concurrently (the embedded one is in-process and quick)
        inputs.documents = self._documents()
        if self._metrics is not None and not dry_run:
            for name, doc in inputs.documents.items():
                if isinstance(doc, ObserverDocument):
                    self._metrics.observer_document_age_seconds.labels(name).set(inputs.now - doc.timestamp)
        # 6. fill fences
        horizon = inputs.now - (s.local_max_age_s + s.observer.max_age_s)
        for symbol in universe:
            try:
                times, orders = self._fence_inputs(symbol, horizon)
                inputs.fences[symbol] = fill_fence(
                    times, [OrderClosure(o.status, o.closed_at, float(o.filled_size)) for o in orders]
                )
            except SQLAlchemyError as exc:
                premarks.setdefault(symbol, Unknown("internal_error", f"fill fence query failed: {exc}"))
                self._alert(
                    result, "internal_error", "critical", symbol=symbol, message=str(exc), dry_run=dry_run
                )
        inputs.premarks = premarks
        return inputs

    def _fence_inputs(self, symbol: str, horizon: float) -> tuple[list[float], list[FenceOrder]]:
        with UnitOfWork(self._engine, read_only=True) as uow:
            return self._queries(uow.session).fence_inputs(symbol, horizon)

    def _snapshot(self, uow: UnitOfWork) -> _StoredSnapshot | None:
        found = uow.balances.latest_usable()
        if found is None:
            return None
        snap, positions = found
        return _StoredSnapshot(
            snapshot_id=int(snap.id),
            fetched_at=snap.fetched_at.timestamp(),
            balance=float(snap.account_value),
            cross=_f(snap.cross_maintenance_margin_used),
            positions={
                p.product_id: LocalPosition(float(p.position_size), _f(p.margin_used)) for p in positions
            },
            missing_dexes=frozenset(str(d).lower() for d in (snap.missing_dexes or [])),
            off_grid=frozenset(snap.off_grid or []),
        )

    def _products(self, uow: UnitOfWork) -> dict[str, ProductInfo]:
        venue = uow.venues.exchange_by_name(self.settings.exchange_name)
        if venue is None:
            return {}
        out = {}
        for p in uow.venues.products(venue.id):
            out[p.symbol] = ProductInfo(
                id=int(p.id),
                symbol=p.symbol,
                coin=api_coin(p.symbol, p.api_coin),
                lot=lot_size(int(p.sz_decimals)),
                min_notional=p.min_notional if p.min_notional is not None else DEFAULT_MIN_NOTIONAL,
                max_leverage=float(p.max_leverage),
            )
        return out

    def _price(self, symbol: str, now: float) -> PriceInput:
        s = self.settings
        bar: Bar | None = None
        try:
            newest = self._read(lambda q, uow: q.newest_bar(symbol, "1m"))
            if newest is not None:
                bar = Bar("1m", newest[0] / 1000.0, float(newest[1]))
        except SQLAlchemyError as exc:
            log.warning("1m close of %s unavailable: %s", symbol, exc)
        live: LivePrice | None = None
        if self._cache is not None:
            try:
                raw = self._cache.get(f"price:{symbol}")
                if raw is not None:
                    doc = json.loads(raw)
                    price, ts = float(doc["price"]), float(doc["ts"])
                    if math.isfinite(price) and math.isfinite(ts):
                        live = LivePrice(price, ts)
            except Exception as exc:
                log.warning("live price of %s unavailable: %s", symbol, exc)
        return select_price(bar, live, now, s.price_max_age_s, s.live_price_max_age_s)

    def _documents(self) -> dict[str, ObserverDocument | Unavailable]:
        if not self._observers:
            return {}

        def fetch(source: ObserverSource) -> ObserverDocument | Unavailable:
            try:
                return source.fetch()
            except Exception as exc:
                return Unavailable("transport", f"{type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(max_workers=min(8, len(self._observers))) as pool:
            docs = list(pool.map(fetch, self._observers))
        return {o.name: d for o, d in zip(self._observers, docs, strict=True)}

    # --- C6: the per-symbol pipeline ----------------------------------------------------------------

    def _evaluate(
        self, result: CycleResult, inputs: CycleInputs, symbol: str, *, dry_run: bool
    ) -> SymbolRecord:
        premark = inputs.premarks.get(symbol)
        if premark is not None:
            return SymbolRecord(symbol, "hold", premark.reason, premark.detail)
        try:
            return self._pipeline(result, inputs, symbol, dry_run=dry_run)
        except Exception as exc:
            log.exception("reconcile %s: internal error", symbol)
            message = f"{type(exc).__name__}: {exc}"
            self._alert(result, "internal_error", "critical", symbol=symbol, message=message, dry_run=dry_run)
            return SymbolRecord(symbol, "hold", "internal_error", message)

    def _pipeline(
        self, result: CycleResult, inputs: CycleInputs, symbol: str, *, dry_run: bool
    ) -> SymbolRecord:
        s = self.settings
        product = inputs.products[symbol]
        assert inputs.balance is not None and inputs.cross_margin is not None
        price_input = inputs.prices[symbol]
        desired = self._desired(symbol, inputs.now, inputs.balance, price_input, result.cycle_id)
        q = self._quorum(result, inputs, symbol, product, dry_run=dry_run)
        price = price_input.value if isinstance(price_input, Value) else None
        cap = inputs.caps.get(symbol, 0.0)
        plan = plan_symbol(
            desired.result,
            q.result,
            price,
            cap,
            inputs.cross_margin,
            inputs.balance,
            product.lot,
            result.cycle_id,
            symbol,
            s.plan,
            product.min_notional,
        )
        record = SymbolRecord(symbol, "hold", desired=desired, quorum=q, plan=plan, price=price, cap=cap)
        if plan.outcome == "hold":
            assert plan.hold is not None
            record.hold_reason, record.hold_detail = plan.hold.reason, plan.hold.detail
            self._alert(
                result,
                plan.hold.reason,
                severity_of(plan.hold.reason),
                symbol=symbol,
                message=plan.hold.detail or plan.hold.reason,
                dry_run=dry_run,
            )
        elif plan.outcome == "order":
            assert plan.order is not None
            record.outcome, record.pending_order = "order_unknown", True
            record.client_order_id = plan.order.client_order_id
        else:
            record.outcome = plan.outcome
            if plan.outcome == "below_exchange_minimum":
                log.warning("%s: order below the exchange minimum notional, not sent", symbol)
        return record

    def _desired(
        self, symbol: str, now: float, balance: float, price: PriceInput, cycle_id: str = ""
    ) -> DesiredOutcome:
        s = self.settings
        cfg = s.desired
        population: PopulationInput
        aggregate: AggregateInput
        kelly: KellyInput
        try:
            n, newest = self._read(lambda q, uow: q.liveness(symbol))
            population = Population(n, newest)
        except Exception as exc:
            population = Unknown("desired_state_error", f"liveness query failed: {exc}")
        try:
            agg = self._read(
                lambda q, uow: q.aggregate(symbol, now, cfg.live_pnl_threshold, cfg.run_freshness_s)
            )
            aggregate = Aggregate(agg.n, agg.sum_dir, agg.sum_pnl)
        except Exception as exc:
            aggregate = Unknown("desired_state_error", f"aggregate query failed: {exc}")
        try:
            current = kelly_metrics(self._read(lambda q, uow: q.kelly_current(symbol)), s.kelly_min_samples)
            historical = kelly_metrics(
                self._read(lambda q, uow: q.kelly_historical(symbol)), s.kelly_min_samples
            )
            kelly = KellyInputs(
                None if current is None else current.kelly, None if historical is None else historical.kelly
            )
        except Exception as exc:
            kelly = Unknown("kelly_error", f"Kelly query failed: {exc}")
        outcome = desired_position(population, aggregate, balance, kelly, price, now, cfg)
        if self.direction_vote is not None and isinstance(outcome.result, Value):
            assert isinstance(aggregate, Aggregate)
            sign = self.direction_vote(cycle_id, symbol)
            voted = Aggregate(aggregate.n, sign * abs(aggregate.sum_dir), aggregate.sum_pnl)
            outcome = desired_position(population, voted, balance, kelly, price, now, cfg)
        return outcome

    def _quorum(
        self, result: CycleResult, inputs: CycleInputs, symbol: str, product: ProductInfo, *, dry_run: bool
    ) -> QuorumOutcome:
        s = self.settings
        fence = inputs.fences.get(symbol)
        sources: list[tuple[str, SourceResult]] = []
        if inputs.local is None:
            sources.append((LOCAL_SOURCE, Unavailable("stale", "no usable snapshot")))
        else:
            local = local_reading(
                inputs.local, symbol, coin_dex(product.coin), inputs.now, s.local_max_age_s, fence
            )
            sources.append((LOCAL_SOURCE, local))
        for observer in self._observers:
            doc = inputs.documents.get(observer.name, Unavailable("transport", "not fetched"))
            reading = observer_reading(
                doc, s.wallet, product.coin, product.lot, inputs.now, s.observer, fence
            )
            sources.append((observer.name, reading))
        outcome = quorum(sources, s.quorum_k, product.lot)
        for name, reading in sources:
            if isinstance(reading, Unavailable):
                if self._metrics is not None and not dry_run:
                    self._metrics.quorum_source_errors_total.labels(name, reading.reason).inc()
                self._alert(
                    result,
                    "quorum_source_unavailable",
                    "warning",
                    scope=name,
                    message=f"{name} unavailable for {symbol}: {reading.reason} ({reading.detail or ''})",
                    dry_run=dry_run,
                )
        for name in outcome.dissent:
            if self._metrics is not None and not dry_run:
                self._metrics.quorum_dissent_total.labels(name).inc()
            self._alert(
                result,
                "quorum_dissent",
                "warning",
                scope=name,
                symbol=symbol,
                message=f"{name} disagrees with the quorum on {symbol}",
                dry_run=dry_run,
            )
        return outcome

    # --- recording (C6 step 11, 12) -----------------------------------------------------------------

    def _record(
        self, result: CycleResult, record: SymbolRecord, inputs: CycleInputs | None, *, write_ahead: bool
    ) -> None:
        now = self._clock.now()
        result.records.append(record)
        if write_ahead:
            plan = record.plan
            assert plan is not None and plan.order is not None
            try:
                log_id = self._write(result, record, inputs, now, outcome="order_unknown")
            except SQLAlchemyError as exc:
                record.outcome, record.hold_reason = "hold", "audit_unavailable"
                record.hold_detail = f"write-ahead record failed: {exc}"
                self._alert(
                    result, "audit_unavailable", "critical", symbol=record.symbol, message=record.hold_detail
                )
                self._observe(record, inputs)
                return
            submission = OrderSubmission(
                client_order_id=plan.order.client_order_id,
                cycle_id=result.cycle_id,
                symbol=record.symbol,
                side=plan.order.side,
                size=float(plan.order.size),
                decision_price=plan.order.decision_price,
                style=self.settings.order_style,
            )
            try:
                answer = self._gateway.submit(submission)
            except Exception as exc:
                log.exception("gateway client raised for %s", record.symbol)
                answer = SubmitAnswer("timeout", body={"error": "client_error", "message": str(exc)})
            record.answer = answer
            record.outcome = self._answer_outcome(result, record, answer)
            try:
                with UnitOfWork(self._engine) as uow:
                    self._queries(uow.session).update_log_row(log_id, outcome=record.outcome)
            except SQLAlchemyError as exc:
                log.error("gateway answer for %s not recorded on the log row: %s", record.symbol, exc)
            self._after_answer(result, record)
        else:
            try:
                self._write(result, record, inputs, now, outcome=record.outcome)
            except SQLAlchemyError as exc:
                self._alert(
                    result,
                    "audit_unavailable",
                    "critical",
                    symbol=record.symbol,
                    message=f"decision record failed: {exc}",
                )
        self._observe(record, inputs)

    def _observe(self, record: SymbolRecord, inputs: CycleInputs | None) -> None:
        if self._metrics is None:
            return
        m = self._metrics
        m.reconciliation_symbol_outcomes_total.labels(record.symbol, record.outcome).inc()
        if record.outcome == "hold":
            m.reconciliation_holds_total.labels(record.symbol, record.hold_reason or "unknown").inc()
        plan = record.plan
        for gauge, value in (
            (m.position_desired, plan.desired if plan is not None else None),
            (m.position_actual, plan.actual if plan is not None else None),
        ):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(record.symbol)
            else:
                gauge.labels(record.symbol).set(value)

    def _answer_outcome(
        self, result: CycleResult, record: SymbolRecord, answer: SubmitAnswer
    ) -> SymbolOutcome:
        """§11.7; a rejection's alert waits for `_after_answer`, which knows the streak."""
        mapped = submit_outcome(answer)
        if mapped.alert is not None and mapped.outcome != "order_rejected":
            self._alert(
                result,
                mapped.alert,
                mapped.severity or "warning",
                symbol=record.symbol,
                message=mapped.message,
            )
        return mapped.outcome

    def _after_answer(self, result: CycleResult, record: SymbolRecord) -> None:
        if record.outcome != "order_rejected":
            return
        try:
            recent = self._read(lambda q, uow: q.recent_outcomes(record.symbol, REJECTED_CRITICAL_AFTER))
        except SQLAlchemyError:
            recent = []
        streak = len(recent) == REJECTED_CRITICAL_AFTER and all(o == "order_rejected" for o in recent)
        error = (record.answer.body or {}).get("error") if record.answer else None
        self._alert(
            result,
            "order_rejected",
            "critical" if streak else "warning",
            symbol=record.symbol,
            message=f"exchange rejected the order: {error}",
        )

    def _write(
        self,
        result: CycleResult,
        record: SymbolRecord,
        inputs: CycleInputs | None,
        now: float,
        *,
        outcome: str,
    ) -> int:
        row = self._log_row(result, record, now, outcome)
        payload = self._decision_payload(result, record, inputs, outcome)
        with UnitOfWork(self._engine) as uow:
            log_id = self._queries(uow.session).add_log_row(row)
            uow.audit.append(
                ts=now,
                kind="reconcile.decision",
                actor=self.settings.actor,
                message=f"{record.symbol}: {outcome}"
                + (f" ({record.hold_reason})" if record.hold_reason else ""),
                payload=payload,
                severity="warning" if record.outcome == "hold" else "info",
                cycle_id=result.cycle_id,
                symbol=record.symbol,
                client_order_id=record.client_order_id,
                lock_token=result.lock_token,
            )
        return log_id

    def _log_row(self, result: CycleResult, record: SymbolRecord, now: float, outcome: str) -> dict[str, Any]:
        desired = record.desired.result if record.desired is not None else None
        plan = record.plan
        decision = plan.decision if plan is not None else None
        gate = plan.gate if plan is not None else None
        q = record.quorum
        if isinstance(desired, Value):
            status, reason = "value", None
        elif isinstance(desired, Flat):
            status, reason = "flat", desired.reason
        elif isinstance(desired, Unknown):
            status, reason = "unknown", desired.reason
        else:
            status, reason = "unknown", "not_evaluated"
        if q is None:
            quorum_status = "not_evaluated"
        else:
            quorum_status = "ok" if isinstance(q.result, Value) else q.result.reason
        return {
            "cycle_id": result.cycle_id,
            "symbol": record.symbol,
            "desired_status": status,
            "desired_reason": reason,
            "desired": plan.desired_before_clamp if plan is not None else None,
            "desired_clamped": plan.desired if plan is not None else None,
            "actual": plan.actual if plan is not None else None,
            "quorum_status": quorum_status[:24],
            "margin_used": plan.margin_used if plan is not None else None,
            "cap": None if record.cap is None else record.cap * self.settings.plan.margin_cap_multiplier,
            "decision_row": decision.row if decision is not None else None,
            "side": decision.side if decision is not None else None,
            "size": decision.size if decision is not None else None,
            "size_rounded": plan.sizing.size if plan is not None and plan.sizing is not None else None,
            "price": record.price,
            "notional": decision.notional if decision is not None else None,
            "threshold": self.settings.plan.minimum_trade_threshold_usd,
            "gate": "n/a" if gate is None or not gate.increasing else ("blocked" if gate.blocked else "pass"),
            "outcome": outcome,
            "hold_reason": record.hold_reason,
            "client_order_id": record.client_order_id,
            "created_at": as_utc(now),
        }

    def _decision_payload(
        self, result: CycleResult, record: SymbolRecord, inputs: CycleInputs | None, outcome: str
    ) -> dict[str, Any]:
        s = self.settings
        desired = record.desired
        plan = record.plan
        now = inputs.now if inputs is not None else self._clock.now()
        sources = []
        if record.quorum is not None:
            for d in record.quorum.sources:
                if isinstance(d.reading, Reading):
                    sources.append(
                        {
                            "source": d.source,
                            "size": d.reading.size,
                            "margin_used": d.reading.margin_used,
                            "as_of": d.reading.as_of,
                            "age_s": now - d.reading.as_of,
                            "canonical": d.canonical,
                        }
                    )
                else:
                    sources.append(
                        {"source": d.source, "unavailable": d.reading.reason, "detail": d.reading.detail}
                    )
        desired_doc: dict[str, Any] | None = None
        if desired is not None:
            r = desired.result
            desired_doc = {
                "kind": type(r).__name__.lower(),
                "value": r.value if isinstance(r, Value) else None,
                "reason": getattr(r, "reason", None),
                "breakdown": asdict(desired.breakdown),
            }
        gate = plan.gate if plan is not None else None
        decision = plan.decision if plan is not None else None
        return {
            "outcome": outcome,
            "hold_reason": record.hold_reason,
            "hold_detail": record.hold_detail,
            "snapshot_id": inputs.snapshot_id if inputs is not None else None,
            "balance": inputs.balance if inputs is not None else None,
            "desired": desired_doc,
            "quorum": {
                "k": s.quorum_k,
                "sources": sources,
                "members": list(record.quorum.members) if record.quorum else [],
                "dissent": list(record.quorum.dissent) if record.quorum else [],
            },
            "actual": plan.actual if plan is not None else None,
            "margin_used": plan.margin_used if plan is not None else None,
            "cap": record.cap,
            "cap_multiplier": s.plan.margin_cap_multiplier,
            "desired_before_clamp": plan.desired_before_clamp if plan is not None else None,
            "desired_after_clamp": plan.desired if plan is not None else None,
            "decision": None
            if decision is None
            else {
                "row": decision.row,
                "delta": decision.size,
                "side": decision.side,
                "execute": decision.execute,
                "notional": decision.notional,
            },
            "size_rounded": str(plan.sizing.size) if plan is not None and plan.sizing is not None else None,
            "price": record.price,
            "threshold": s.plan.minimum_trade_threshold_usd,
            "gate": None
            if gate is None
            else {
                "cross_margin": gate.cross_margin,
                "max_margin": gate.max_margin,
                "increasing": gate.increasing,
                "blocked": gate.blocked,
            },
            "client_order_id": record.client_order_id,
        }


__all__ = ["CycleResult", "ReconcileService", "ReconcileSettings", "SymbolRecord", "trigger_of"]
