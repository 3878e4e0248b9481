"""End to end on the paper exchange with SQLite: runs vote → desired → quorum (local snapshot, embedded
observer, one HTTP observer served by uvicorn, one stale HTTP observer) → order through the gateway
protocol → fill → the next cycle holds its position without churn."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.reconcile.paper_gateway import PaperGateway
from tests.reconcile.rc_support import (
    BTC,
    ETH,
    NOW,
    WALLET,
    FakeClock,
    add_runs,
    audit_rows,
    make_settings,
    seed_products,
    set_price,
)
from tests.support import Served as SharedServed
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import PaperConfig, PaperExchange
from ttt.api.observer import create_app
from ttt.domain.client_ids import client_order_id
from ttt.domain.quorum import Reading, Unavailable
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.ingestion import BalanceIngestion, IngestionSettings
from ttt.services.portfolio.observer import EmbeddedObserverSource, HttpObserverSource, ObserverPoller
from ttt.services.portfolio.reconcile import ReconcileService
from ttt.telemetry.metrics import Metrics


class Served(SharedServed):
    """The observer app of a poller, served; `with` yields its document URL."""

    def __init__(self, poller: ObserverPoller, clock: FakeClock) -> None:
        super().__init__(create_app(poller, clock, poll_interval_s=30))

    def __enter__(self) -> str:
        return super().__enter__() + "/3T-observer.json"


@pytest.fixture
def world(engine: Engine) -> Iterator[dict[str, object]]:
    clock = FakeClock(NOW)
    seed_products(engine, NOW - 3600)
    paper = PaperExchange(PaperConfig(wallet=WALLET), clock)
    cache = MemoryCache()
    for symbol, price in ((BTC, 100_000), (ETH, 2_000)):
        paper.on_price(symbol, price)
        set_price(cache, symbol, float(price), NOW - 1)
    add_runs(engine, BTC, (1, 1, 1, 1), 1.0, NOW - 30)  # Σdir 4 → D = 4·25/100 000 = 0.001 BTC
    metrics = Metrics.create(CollectorRegistry())
    alerts = AlertSink(clock, metrics, audit=db_audit_writer(engine, "test"))
    fetch = paper.clearinghouse_state
    embedded = ObserverPoller(lambda w, d: fetch(w, d), [WALLET], clock, observer_id="embedded")
    remote = ObserverPoller(lambda w, d: fetch(w, d), [WALLET], clock, observer_id="remote")
    old_clock = FakeClock(NOW - 1000)
    stale = ObserverPoller(lambda w, d: fetch(w, d), [WALLET], old_clock, observer_id="stale")
    stale.poll_once()  # its one success is 1000 s old
    with Served(remote, clock) as remote_url, Served(stale, clock) as stale_url:
        yield {
            "engine": engine,
            "clock": clock,
            "paper": paper,
            "cache": cache,
            "metrics": metrics,
            "alerts": alerts,
            "gateway": PaperGateway(paper, engine, clock),
            "ingestion": BalanceIngestion(
                paper, engine, clock, alerts, IngestionSettings("paper", "paper", WALLET), metrics=metrics
            ),
            "pollers": [embedded, remote],
            "observers": [
                EmbeddedObserverSource(embedded, "E"),
                HttpObserverSource("O1", remote_url, timeout_s=5),
                HttpObserverSource("O2", stale_url, timeout_s=5),
            ],
        }


def _refresh(world: dict[str, object]) -> None:
    result = world["ingestion"].ingest()  # type: ignore[attr-defined]
    assert result.outcome == "ok"
    for poller in world["pollers"]:  # type: ignore[attr-defined]
        assert poller.poll_once().published


def test_cycle_on_paper_orders_fills_and_then_holds(world: dict[str, object]) -> None:
    engine: Engine = world["engine"]  # type: ignore[assignment]
    clock: FakeClock = world["clock"]  # type: ignore[assignment]
    paper: PaperExchange = world["paper"]  # type: ignore[assignment]
    gateway: PaperGateway = world["gateway"]  # type: ignore[assignment]
    _refresh(world)
    service = ReconcileService(
        engine,
        DbLockManager(engine, clock),
        clock,
        gateway,
        world["alerts"],  # type: ignore[arg-type]
        make_settings(quorum_k=2),
        observers=world["observers"],  # type: ignore[arg-type]
        cache=world["cache"],  # type: ignore[arg-type]
        metrics=world["metrics"],  # type: ignore[arg-type]
    )

    first = service.run_cycle("sched:20260101T120000Z")
    assert first.outcome == "completed", first.error
    btc, eth = first.record(BTC), first.record(ETH)
    assert (btc.outcome, eth.outcome) == ("order_sent", "no_action")
    assert eth.desired is not None and eth.desired.result.reason == "no_qualifying_runs"  # type: ignore[union-attr]
    sources = {d.source: d.reading for d in btc.quorum.sources}  # type: ignore[union-attr]
    assert sources["local"] == Reading(0.0, 0.0, NOW)
    assert isinstance(sources["E"], Reading) and isinstance(sources["O1"], Reading)
    assert isinstance(sources["O2"], Unavailable) and sources["O2"].reason == "stale"
    cloid = client_order_id("sched:20260101T120000Z", BTC)
    assert gateway.exchange_submissions == [cloid]
    [resting] = paper.fetch_open_orders(BTC)
    assert (resting.cloid, resting.side, resting.size, resting.price) == (
        cloid,
        "buy",
        Decimal("0.001"),
        100000,
    )
    kinds = [r.kind for r in audit_rows(engine)]
    decision = kinds.index("reconcile.decision")
    assert kinds.index("cycle.start") < decision < kinds.index("order.request") < kinds.index("order.result")
    assert kinds.index("order.result") < kinds.index("cycle.end")

    # the market trades through the resting buy: it fills at its limit
    clock.advance(10)
    fills = paper.on_price(BTC, 99_990)
    assert [(f.cloid, f.size, f.price) for f in fills] == [(cloid, Decimal("0.001"), Decimal(100000))]
    assert gateway.sync_fills() == 1
    set_price(world["cache"], BTC, 99_990.0, clock.now())  # type: ignore[arg-type]

    # readings taken before the fill must not be believed (fill fence, Q-21)
    fenced = service.run_cycle("manual:1767268810000", dry_run=True)
    reasons = {d.source: getattr(d.reading, "reason", None) for d in fenced.record(BTC).quorum.sources}  # type: ignore[union-attr]
    assert reasons["local"] == reasons["E"] == reasons["O1"] == "older_than_fill"
    assert fenced.record(BTC).hold_reason == "quorum_no_sources"

    clock.advance(10)
    _refresh(world)
    second = service.run_cycle("sched:20260101T121000Z")
    assert second.outcome == "completed", second.error
    btc2 = second.record(BTC)
    assert btc2.outcome in ("below_threshold", "no_action"), (btc2.outcome, btc2.hold_reason)
    assert btc2.plan is not None and btc2.plan.actual == pytest.approx(0.001)
    assert btc2.quorum is not None and set(btc2.quorum.members) == {"local", "E", "O1"}
    assert gateway.exchange_submissions == [cloid]  # no churn
    assert paper.fetch_open_orders() == []
    with UnitOfWork(engine, read_only=True) as uow:
        rows = [
            (r.cycle_id, r.symbol, r.outcome)
            for r in uow.reconciliation.log_for_cycle("sched:20260101T121000Z")
        ]
        cycle = uow.reconciliation.cycle("sched:20260101T121000Z")
    assert rows == [
        ("sched:20260101T121000Z", BTC, btc2.outcome),
        ("sched:20260101T121000Z", ETH, "no_action"),
    ]
    assert cycle is not None and cycle.outcome == "completed" and cycle.orders_sent == 0 and cycle.holds == 0
