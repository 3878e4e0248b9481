"""Builders for the service-layer portfolio tests: a migrated database, runs, snapshots, fakes of OUR ports.

Only our own protocols are faked (Clock, OrderGateway, ObserverSource); the database is real SQLite (or
the real servers), and failures are injected into the real database (triggers, renamed tables).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.models import AuditEntry, BalanceSnapshot, Position, Run
from ttt.adapters.db.types import as_utc
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import DEFAULT_PRODUCTS
from ttt.domain.orders import ProductMeta
from ttt.domain.quorum import ObserverDocument, Unavailable, parse_observer_document
from ttt.ports import LockManager, NewRun, RunProgress
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.observer import iso_utc
from ttt.services.portfolio.ports import CancelResult, OpenOrderView, OrderSubmission, SubmitAnswer
from ttt.services.portfolio.reconcile import ReconcileService, ReconcileSettings
from ttt.telemetry.metrics import Metrics

NOW = 1_767_268_800.0  # 2026-01-01T12:00:00Z, a Thursday
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
PRICES = {BTC: 100_000.0, ETH: 2_000.0}


class FakeClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


# --- database setup ----------------------------------------------------------------------------------


def seed_products(
    engine: Engine, now: float, products: Sequence[ProductMeta] | None = None, exchange: str = "paper"
) -> None:
    rows = list(products) if products is not None else [DEFAULT_PRODUCTS[BTC], DEFAULT_PRODUCTS[ETH]]
    with UnitOfWork(engine) as uow:
        venue = uow.venues.ensure_exchange(exchange, "paper", now)
        for p in rows:
            inst = uow.venues.ensure_instrument(p.symbol.split("/")[0], now)
            uow.venues.upsert_product(
                exchange_id=venue.id,
                instrument_id=inst.id,
                symbol=p.symbol,
                now=now,
                metadata={},
                api_coin=p.api_coin,
                asset_id=None,
                product_type=p.product_type,
                margin_mode=p.margin_mode,
                max_leverage=Decimal(p.max_leverage),
                sz_decimals=p.sz_decimals,
                lot_size=p.lot_size,
                max_price_decimals=p.max_price_decimals,
                min_notional=p.min_notional,
            )


def add_runs(
    engine: Engine,
    symbol: str,
    directions: Sequence[int],
    pnl: float,
    update_time: float,
    *,
    height: int | None = None,
    exit_run: bool = False,
) -> list[int]:
    """Runs with the given position directions and live PnL, last written at `update_time`."""
    new = [
        NewRun(symbol, 0, i, update_time - 100, 7000.0, 86400, "test", {}, {"state": 1})
        for i, _ in enumerate(directions)
    ]
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many(new)
        uow.runs.update_progress_many(
            [RunProgress(i, "{}", d, 1, update_time, pnl) for i, d in zip(ids, directions, strict=True)]
        )
        if height is not None or exit_run:
            uow.session.execute(
                sa.update(Run).where(Run.id.in_(ids)).values(height=height, exit_run=exit_run)
            )
    return ids


def add_snapshot(
    engine: Engine,
    fetched_at: float,
    positions: Mapping[str, tuple[str, str | None]],
    *,
    account_value: str = "10000",
    cross: str = "50",
    usable: bool = True,
    missing_dexes: Sequence[str] = (),
    off_grid: Sequence[str] = (),
    exchange: str = "paper",
) -> int:
    """A stored snapshot: positions maps symbol → (size, margin_used)."""
    with UnitOfWork(engine) as uow:
        venue = uow.venues.ensure_exchange(exchange, "paper", fetched_at)
        products = uow.venues.products_by_symbol(venue.id)
        snap = BalanceSnapshot(
            exchange_id=venue.id,
            wallet=WALLET,
            fetched_at=as_utc(fetched_at),
            account_value=Decimal(account_value),
            cross_maintenance_margin_used=Decimal(cross),
            total_margin_used=Decimal(cross),
            withdrawable=None,
            usable=usable,
            partial=not usable,
            missing_dexes=list(missing_dexes),
            unmapped=[],
            off_grid=list(off_grid),
            created_at=as_utc(fetched_at),
        )
        rows = [
            Position(
                product_id=products[s].id,
                position_size=Decimal(size),
                margin_used=None if margin is None else Decimal(margin),
            )
            for s, (size, margin) in positions.items()
        ]
        return uow.balances.add_snapshot(snap, rows)


def set_price(cache: MemoryCache, symbol: str, price: float, ts: float) -> None:
    cache.set(f"price:{symbol}", json.dumps({"price": price, "ts": ts, "source": "synthetic"}))


def sqlite_trigger(engine: Engine, name: str, table: str, when: str = "1", event: str = "INSERT") -> None:
    """Make the real database refuse writes: a BEFORE trigger that aborts the statement."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {when} "
            f"BEGIN SELECT RAISE(ABORT, 'injected failure {name}'); END"
        )


def drop_trigger(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {name}")


def audit_rows(engine: Engine, kind: str | None = None) -> list[AuditEntry]:
    with UnitOfWork(engine, read_only=True) as uow:
        return uow.audit.tail(10_000, kind=kind)


def alert_reasons(engine: Engine) -> list[str]:
    return [r.payload["reason"] for r in audit_rows(engine, "alert")]


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- fakes of our own ports --------------------------------------------------------------------------


@dataclass
class FakeGateway:
    """OrderGateway: records every call; answers are configurable per test."""

    answer: Callable[[OrderSubmission], SubmitAnswer] | None = None
    cancel: Callable[[Sequence[str]], list[CancelResult]] | None = None
    submissions: list[OrderSubmission] = field(default_factory=list)
    cancel_calls: list[list[str]] = field(default_factory=list)
    on_submit: Callable[[OrderSubmission], None] | None = None

    def submit(self, order: OrderSubmission) -> SubmitAnswer:
        self.submissions.append(order)
        if self.on_submit is not None:
            self.on_submit(order)
        if self.answer is not None:
            return self.answer(order)
        return SubmitAnswer("response", 201, {"status": "RESTING", "client_order_id": order.client_order_id})

    def cancel_open(self, symbols: Sequence[str]) -> list[CancelResult]:
        self.cancel_calls.append(list(symbols))
        if self.cancel is not None:
            return self.cancel(symbols)
        return [CancelResult(s) for s in symbols]

    def open_orders(self, symbol: str | None = None) -> list[OpenOrderView]:
        return []


class StaticObserver:
    """ObserverSource with a fixed document (or unavailability), built from positions."""

    def __init__(self, name: str, document: ObserverDocument | Unavailable) -> None:
        self.name = name
        self.document = document
        self.fetches = 0

    def fetch(self) -> ObserverDocument | Unavailable:
        self.fetches += 1
        return self.document


def observer_document(
    timestamp: float, positions: Mapping[str, tuple[str, str | None]], wallet: str = WALLET
) -> dict[str, Any]:
    coins = {BTC: "BTC", ETH: "ETH"}
    entries = []
    for symbol, (size, margin) in positions.items():
        pos: dict[str, Any] = {"coin": coins.get(symbol, symbol.split("/")[0]), "szi": size}
        if margin is not None:
            pos["marginUsed"] = margin
        entries.append({"type": "oneWay", "position": pos})
    return {
        "observer_id": "test",
        "timestamp": iso_utc(timestamp),
        "schema": "3t-observer/1",
        "positions": {wallet: {"assetPositions": entries, "marginSummary": {"accountValue": "10000"}}},
    }


def static_observer(
    name: str, timestamp: float, positions: Mapping[str, tuple[str, str | None]]
) -> StaticObserver:
    parsed = parse_observer_document(observer_document(timestamp, positions))
    return StaticObserver(name, parsed)


# --- a complete scenario -----------------------------------------------------------------------------

HOLDING = {BTC: ("0.001", "10"), ETH: ("0.05", "10")}


@dataclass
class Scenario:
    engine: Engine
    clock: FakeClock
    cache: MemoryCache
    metrics: Metrics
    alerts: AlertSink
    gateway: FakeGateway
    locks: LockManager
    observers: list[StaticObserver]
    settings: ReconcileSettings

    def service(self, **overrides: Any) -> ReconcileService:
        kwargs: dict[str, Any] = {
            "observers": self.observers,
            "cache": self.cache,
            "metrics": self.metrics,
        }
        kwargs.update(overrides)
        return ReconcileService(
            self.engine, self.locks, self.clock, self.gateway, self.alerts, self.settings, **kwargs
        )

    def alert_count(self, reason: str) -> float:
        return sum(
            counter(self.metrics, "ttt_alerts_total", component=c, reason=reason, severity=sev)
            for c in ("reconcile", "account", "take_profit", "observer")
            for sev in ("warning", "critical")
        )


def make_settings(**overrides: Any) -> ReconcileSettings:
    from ttt.domain.desired import DesiredConfig

    base: dict[str, Any] = {
        "universe": (BTC, ETH),
        "exchange_name": "paper",
        "wallet": WALLET,
        "desired": DesiredConfig(risk_pos_percentage=0.01),
        "quorum_k": 2,
        "actor": "test@host",
    }
    base.update(overrides)
    return ReconcileSettings(**base)


def build_scenario(
    engine: Engine,
    *,
    btc_dirs: Sequence[int] = (1, 1, 1, 1),
    eth_dirs: Sequence[int] = (1, 1, 1, 1),
    holding: Mapping[str, tuple[str, str | None]] = HOLDING,
    settings: ReconcileSettings | None = None,
    locks: LockManager | None = None,
) -> Scenario:
    """Account holds BTC 0.001 and ETH 0.05; the runs want exactly that (D = Σdir·25/P), so a healthy
    cycle does nothing. Any failure must hold, never turn into an order towards flat."""
    clock = FakeClock(NOW)
    seed_products(engine, NOW - 3600)
    if btc_dirs:
        add_runs(engine, BTC, btc_dirs, 1.0, NOW - 30)
    if eth_dirs:
        add_runs(engine, ETH, eth_dirs, 1.0, NOW - 30)
    add_snapshot(engine, NOW - 5, holding)
    cache = MemoryCache()
    for symbol, price in PRICES.items():
        set_price(cache, symbol, price, NOW - 1)
    metrics = Metrics.create(CollectorRegistry())
    alerts = AlertSink(clock, metrics, audit=db_audit_writer(engine, "test@host"), min_interval_s=300)
    observers = [static_observer("O1", NOW - 3, holding), static_observer("O2", NOW - 4, holding)]
    return Scenario(
        engine=engine,
        clock=clock,
        cache=cache,
        metrics=metrics,
        alerts=alerts,
        gateway=FakeGateway(),
        locks=locks if locks is not None else DbLockManager(engine, clock),
        observers=observers,
        settings=settings if settings is not None else make_settings(),
    )
