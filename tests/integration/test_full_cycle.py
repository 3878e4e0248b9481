"""The whole portfolio path over real HTTP, on the in-process paper exchange and — unchanged — on the
Hyperliquid adapter (real ccxt) against `3t sim-exchange`:

runs in the store vote → desired position → quorum (local snapshot, embedded observer, one HTTP observer,
one stale HTTP observer) → order through the gateway over HTTP → fill → the next cycle holds (no churn).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.exchange.conftest import AGENT, AGENT_KEY, SimServer, sim_factory  # noqa: F401 (fixture)
from tests.exchange.conftest import WALLET as SIM_WALLET
from tests.reconcile.rc_support import BTC, ETH, add_runs, audit_rows, make_settings, set_price
from tests.support import Served
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.hyperliquid import HyperliquidAdapter, HyperliquidSettings
from ttt.adapters.exchange.paper import PaperConfig, PaperExchange
from ttt.api.gateway import create_gateway_app
from ttt.api.observer import create_app as create_observer_app
from ttt.config import load_settings
from ttt.domain.client_ids import client_order_id
from ttt.domain.quorum import Reading, Unavailable
from ttt.errors import OutcomeUnknown
from ttt.services.gateway.bootstrap import build_gateway
from ttt.services.gateway.client import HttpGatewayClient
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.gateway_bridge import GatewayBridge
from ttt.services.portfolio.ingestion import BalanceIngestion, IngestionSettings
from ttt.services.portfolio.observer import EmbeddedObserverSource, HttpObserverSource, ObserverPoller
from ttt.services.portfolio.reconcile import ReconcileService
from ttt.telemetry.metrics import Metrics

TOKEN = "t" * 40
PAPER_WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"


class WallClock:
    def now(self) -> float:
        return time.time()


class OffsetClock:
    """A clock that lags the wall clock: the stale observer's polls look 1000 s old."""

    def __init__(self, lag_s: float) -> None:
        self.lag_s = lag_s

    def now(self) -> float:
        return time.time() - self.lag_s


class Counting:
    """Our ExchangeAdapter port, counting the orders that actually reach the venue."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.placed = 0

    def place_order(self, request: Any) -> Any:
        self.placed += 1
        return self.inner.place_order(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Venue:
    name: str
    exchange: Any
    wallet: str
    kind: str
    move_price: Callable[[str, int], None]
    submissions: Callable[[], int]
    open_orders: Callable[[], list[Any]]


@pytest.fixture(params=["paper", "sim-exchange"])
def venue(request: pytest.FixtureRequest, sim_factory: Callable[..., SimServer]) -> Venue:  # noqa: F811
    clock = WallClock()
    if request.param == "paper":
        paper = PaperExchange(PaperConfig(wallet=PAPER_WALLET), clock)
        for symbol, price in ((BTC, 100_000), (ETH, 3_000)):
            paper.on_price(symbol, price)
        counting = Counting(paper)
        return Venue(
            "paper",
            counting,
            PAPER_WALLET,
            "paper",
            lambda symbol, px: [paper.on_price(symbol, px), None][1],
            lambda: counting.placed,
            lambda: paper.fetch_open_orders(),
        )
    sim = sim_factory(agents={AGENT: SIM_WALLET})
    adapter = HyperliquidAdapter(
        HyperliquidSettings(
            network="custom", base_url=sim.url, wallet_address=SIM_WALLET, private_key=AGENT_KEY
        )
    )

    def move(symbol: str, px: int) -> None:
        # the simulated market clock catches up with the wall clock, so fill times order with our readings
        sim.sim("POST", "/_sim/advance", {"seconds": max(0.0, time.time() - sim.state.clock.now())})
        sim.sim("POST", "/_sim/price", {"coin": symbol.split("/")[0], "px": str(px)})

    counting = Counting(adapter)

    def placed() -> int:
        # both sides of the wire agree: what we sent, and what the simulator holds
        assert len(sim.sim("GET", "/_sim/state")["orders"]) == counting.placed
        return counting.placed

    return Venue("sim-exchange", counting, SIM_WALLET, "hyperliquid", move, placed, adapter.fetch_open_orders)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_full_cycle_through_the_gateway_over_http(venue: Venue, engine: Engine) -> None:
    clock = WallClock()
    cache = MemoryCache()
    locks = DbLockManager(engine, clock)
    metrics = Metrics.create(CollectorRegistry())
    settings = load_settings(
        None,
        None,
        environ={"TTT_SECRET__GATEWAY__TOKEN": TOKEN},
        cli_overrides={"exchange.paper.wallet": venue.wallet},
        process="cli",
    )
    bundle = build_gateway(
        settings, engine=engine, cache=cache, locks=locks, clock=clock, exchange=venue.exchange
    )
    alerts = AlertSink(clock, metrics, audit=db_audit_writer(engine, "test"))
    ingestion = BalanceIngestion(
        venue.exchange,
        engine,
        clock,
        alerts,
        IngestionSettings("paper", venue.kind, venue.wallet),
        metrics=metrics,
    )

    def fetch(wallet: str, dex: str) -> Any:
        return venue.exchange.fetch_account(wallet, [dex])[dex]

    embedded = ObserverPoller(fetch, [venue.wallet], clock, observer_id="embedded")
    remote = ObserverPoller(fetch, [venue.wallet], clock, observer_id="remote")
    stale = ObserverPoller(fetch, [venue.wallet], OffsetClock(1000), observer_id="stale")
    stale.poll_once()

    def refresh() -> None:
        assert ingestion.ingest().outcome == "ok"
        assert embedded.poll_once().published and remote.poll_once().published

    add_runs(engine, BTC, (1, 1, 1, 1), 1.0, clock.now() - 30)  # Σdir 4 → D = 4·25/100 000 = 0.001 BTC
    for symbol, price in ((BTC, 100_000.0), (ETH, 3_000.0)):
        set_price(cache, symbol, price, clock.now())

    poll = 30
    with (
        Served(create_gateway_app(bundle.service, token=TOKEN)) as gateway_url,
        Served(create_observer_app(remote, clock, poll_interval_s=poll)) as remote_url,
        Served(create_observer_app(stale, clock, poll_interval_s=poll)) as stale_url,
    ):
        gateway = GatewayBridge(HttpGatewayClient(gateway_url, TOKEN, timeout_s=10))
        service = ReconcileService(
            engine,
            locks,
            clock,
            gateway,
            alerts,
            make_settings(wallet=venue.wallet, quorum_k=2),
            observers=[
                EmbeddedObserverSource(embedded, "E"),
                HttpObserverSource("O1", remote_url + "/3T-observer.json", timeout_s=5),
                HttpObserverSource("O2", stale_url + "/3T-observer.json", timeout_s=5),
            ],
            cache=cache,
            metrics=metrics,
        )
        refresh()
        first_id = "sched:20260101T120000Z"
        first = service.run_cycle(first_id)
        assert first.outcome == "completed", first.error
        btc, eth = first.record(BTC), first.record(ETH)
        assert (btc.outcome, eth.outcome) == ("order_sent", "no_action"), (btc.hold_reason, eth.hold_reason)
        sources = {d.source: d.reading for d in btc.quorum.sources}  # type: ignore[union-attr]
        assert isinstance(sources["local"], Reading) and sources["local"].size == 0.0
        assert isinstance(sources["E"], Reading) and isinstance(sources["O1"], Reading)
        assert isinstance(sources["O2"], Unavailable) and sources["O2"].reason == "stale"
        cloid = client_order_id(first_id, BTC)
        [resting] = venue.open_orders()
        assert (resting.cloid, resting.side, resting.size) == (cloid, "buy", Decimal("0.001"))
        assert venue.submissions() == 1
        kinds = [r.kind for r in audit_rows(engine)]
        assert kinds.index("reconcile.decision") < kinds.index("order.request") < kinds.index("order.submit")
        assert kinds.index("order.submit") < kinds.index("order.result") < kinds.index("cycle.end")

        time.sleep(0.05)
        venue.move_price(BTC, 99_990)  # trades through the resting buy: it fills at its limit
        assert bundle.service.run_resolver_once()
        with UnitOfWork(engine, read_only=True) as uow:
            record = uow.orders.by_client_order_id(cloid)
            fills = uow.fills.for_client_order_id(cloid)
        assert record is not None and record.status == "FILLED"
        assert [(f.size, f.price) for f in fills] == [(Decimal("0.001"), Decimal(100000))]

        time.sleep(0.05)
        set_price(cache, BTC, 99_990.0, clock.now())
        refresh()
        second = service.run_cycle("sched:20260101T121000Z")
        assert second.outcome == "completed", second.error
        btc2 = second.record(BTC)
        assert btc2.outcome in ("below_threshold", "no_action"), (btc2.outcome, btc2.hold_reason)
        assert btc2.plan is not None and btc2.plan.actual == pytest.approx(0.001)
        assert set(btc2.quorum.members) == {"local", "E", "O1"}  # type: ignore[union-attr]
        assert venue.submissions() == 1  # no churn: the position is held, nothing resent
        assert venue.open_orders() == []


class DropAfterCommit:
    """The venue executes the next order, then the connection dies before the answer (ambiguous)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = True

    def place_order(self, request: Any) -> Any:
        result = self.inner.place_order(request)
        if self.armed:
            self.armed = False
            raise OutcomeUnknown("connection reset after the order was sent")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_gateway_killed_mid_request_resolves_by_status_and_never_duplicates(
    venue: Venue, engine: Engine
) -> None:
    clock = WallClock()
    cache = MemoryCache()
    locks = DbLockManager(engine, clock)
    settings = load_settings(
        None,
        None,
        environ={"TTT_SECRET__GATEWAY__TOKEN": TOKEN},
        cli_overrides={"exchange.paper.wallet": venue.wallet},
        process="cli",
    )
    dropping = DropAfterCommit(venue.exchange)
    first_gateway = build_gateway(
        settings, engine=engine, cache=cache, locks=locks, clock=clock, exchange=dropping
    )
    alerts = AlertSink(clock, None, audit=db_audit_writer(engine, "test"))
    ingestion = BalanceIngestion(
        venue.exchange, engine, clock, alerts, IngestionSettings("paper", venue.kind, venue.wallet)
    )

    def fetch(wallet: str, dex: str) -> Any:
        return venue.exchange.fetch_account(wallet, [dex])[dex]

    embedded = ObserverPoller(fetch, [venue.wallet], clock, observer_id="embedded")
    add_runs(engine, BTC, (1, 1, 1, 1), 1.0, clock.now() - 30)
    for symbol, price in ((BTC, 100_000.0), (ETH, 3_000.0)):
        set_price(cache, symbol, price, clock.now())

    def cycle(gateway_url: str, cycle_id: str) -> Any:
        assert ingestion.ingest().outcome == "ok" and embedded.poll_once().published
        service = ReconcileService(
            engine,
            locks,
            clock,
            GatewayBridge(HttpGatewayClient(gateway_url, TOKEN, timeout_s=10)),
            alerts,
            make_settings(wallet=venue.wallet, quorum_k=2),
            observers=[EmbeddedObserverSource(embedded, "E")],
            cache=cache,
        )
        result = service.run_cycle(cycle_id)
        assert result.outcome == "completed", result.error
        return result.record(BTC)

    first_id = "sched:20260101T120000Z"
    cloid = client_order_id(first_id, BTC)
    with Served(create_gateway_app(first_gateway.service, token=TOKEN)) as url:
        record = cycle(url, first_id)
    assert record.outcome == "order_unknown"  # 202 SENT_UNKNOWN: the engine never resends on its own
    # the gateway process is gone; a new one starts over the same database
    restarted = build_gateway(
        settings, engine=engine, cache=cache, locks=locks, clock=clock, exchange=venue.exchange
    )
    time.sleep(1.1)  # the first status query is due 1 s after the submission
    assert restarted.service.run_resolver_once()
    with UnitOfWork(engine, read_only=True) as uow:
        row = uow.orders.by_client_order_id(cloid)
    assert row is not None and row.status == "RESTING"  # found by its client id, not sent again
    assert venue.submissions() == 1

    time.sleep(0.05)
    venue.move_price(BTC, 99_990)
    assert restarted.service.run_resolver_once()
    time.sleep(0.05)
    set_price(cache, BTC, 99_990.0, clock.now())
    with Served(create_gateway_app(restarted.service, token=TOKEN)) as url:
        record = cycle(url, "sched:20260101T121000Z")
    assert record.outcome in ("below_threshold", "no_action"), (record.outcome, record.hold_reason)
    assert record.plan is not None and record.plan.actual == pytest.approx(0.001)  # one position, not two
    assert venue.submissions() == 1
