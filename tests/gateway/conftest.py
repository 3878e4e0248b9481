"""A gateway over the paper exchange on a real SQLite database, optionally served over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from prometheus_client import CollectorRegistry

from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import AuditEntry, OrderRecord
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import PaperConfig, PaperExchange
from ttt.api.gateway import create_gateway_app
from ttt.domain.client_ids import client_order_id
from ttt.domain.orders import OrderRequest, PlaceResult
from ttt.ports import LockManager
from ttt.services.gateway.bootstrap import ensure_venue
from ttt.services.gateway.model import OrderPolicy
from ttt.services.gateway.service import GatewayConfig, GatewayService
from ttt.services.gateway.support import AuditAlertSink, CachePrices, SerializedExchange
from ttt.telemetry.metrics import Metrics

TOKEN = "t" * 20 + "0123456789abcdef"  # 36 characters
UNIVERSE = ("BTC/USDC:USDC", "ETH/USDC:USDC")
T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t
        self._mutex = threading.Lock()

    def now(self) -> float:
        with self._mutex:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._mutex:
            self.t += seconds


class CountingExchange:
    """Counts calls per operation; optional hooks replace or wrap an operation."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.hooks: dict[str, Callable[..., Any]] = {}
        self._mutex = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._mutex:
                self.calls[name] = self.calls.get(name, 0) + 1
            hook = self.hooks.get(name)
            if hook is not None:
                return hook(target, *args, **kwargs)
            return target(*args, **kwargs)

        return call

    def count(self, name: str) -> int:
        return self.calls.get(name, 0)


@dataclass
class Harness:
    engine: sa.Engine
    clock: FakeClock
    paper: PaperExchange
    venue: CountingExchange
    cache: MemoryCache
    locks: LockManager
    metrics: Metrics
    config: GatewayConfig
    service: GatewayService
    servers: list[Any] = field(default_factory=list)

    def set_price(self, symbol: str, price: float, *, age_s: float = 0.0, paper: bool = True) -> None:
        if paper:
            self.paper.on_price(symbol, price)
        record = {"price": price, "ts": self.clock.now() - age_s, "source": "replay"}
        self.cache.set(f"price:{symbol}", json.dumps(record))

    def new_service(self, **overrides: Any) -> GatewayService:
        """A fresh service (a restarted process) over the same database and venue."""
        config = replace(self.config, **overrides) if overrides else self.config
        return GatewayService(
            engine=self.engine,
            exchange=self.venue,
            locks=self.locks,
            clock=self.clock,
            prices=CachePrices(self.cache),
            config=config,
            cache=self.cache,
            metrics=self.metrics,
            alert=AuditAlertSink(self.engine, self.clock, self.metrics, "test-gateway"),
            sleep=time.sleep,
        )

    def rows(self) -> list[OrderRecord]:
        with UnitOfWork(self.engine) as uow:
            return uow.orders.list_orders(limit=1000)

    def row(self, cloid: str) -> OrderRecord | None:
        with UnitOfWork(self.engine) as uow:
            return uow.orders.by_client_order_id(cloid)

    def audit(self, kind: str | None = None, cloid: str | None = None) -> list[AuditEntry]:
        with UnitOfWork(self.engine) as uow:
            return uow.audit.tail(10_000, kind=kind, client_order_id=cloid)

    def paper_orders(self) -> int:
        """Orders the paper engine accepted or recorded (every placement gets an oid)."""
        return self.venue.count("place_order")

    @contextmanager
    def serve(self, service: GatewayService | None = None) -> Iterator[str]:
        app = create_gateway_app(service or self.service, token=TOKEN, metrics=self.metrics)
        with serve_app(app) as url:
            yield url


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """uvicorn in a thread on 127.0.0.1 and a free port; stopped on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def make_harness(
    url: str,
    *,
    locks: LockManager | None = None,
    clock: FakeClock | None = None,
    products: dict[str, Any] | None = None,
    **config: Any,
) -> Harness:
    engine = make_engine(url)
    upgrade(engine)
    clock = clock if clock is not None else FakeClock()
    paper_config = PaperConfig() if products is None else PaperConfig(products=products)
    paper = PaperExchange(paper_config, clock)
    venue = CountingExchange(SerializedExchange(paper))
    ensure_venue(engine, "paper", "paper", paper.load_products(), clock.now())
    cache = MemoryCache()
    gateway_config = GatewayConfig(policy=OrderPolicy(universe=UNIVERSE), actor="test-gateway", **config)
    metrics = Metrics.create(CollectorRegistry())
    h = Harness(
        engine=engine,
        clock=clock,
        paper=paper,
        venue=venue,
        cache=cache,
        locks=locks if locks is not None else MemoryLockManager(),
        metrics=metrics,
        config=gateway_config,
        service=None,  # type: ignore[arg-type]
    )
    h.service = h.new_service()
    for symbol, price in (("BTC/USDC:USDC", 100_000.0), ("ETH/USDC:USDC", 3_000.0)):
        h.set_price(symbol, price)
    return h


@pytest.fixture
def harness(sqlite_url: str) -> Iterator[Harness]:
    h = make_harness(sqlite_url)
    yield h
    h.engine.dispose()


def order_body(
    cycle_id: str = "sched:20260101T120000Z", symbol: str = "BTC/USDC:USDC", **fields: Any
) -> dict:
    body: dict[str, Any] = {
        "client_order_id": client_order_id(cycle_id, symbol),
        "cycle_id": cycle_id,
        "symbol": symbol,
        "side": "buy",
        "size": 0.001,
        "style": "post_only",
    }
    body.update(fields)
    return body


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def drop_after_commit(target: Callable[..., PlaceResult], request: OrderRequest, *a: Any, **k: Any) -> Any:
    """The venue commits the order, then the connection drops before the answer arrives."""
    target(request, *a, **k)
    raise ConnectionResetError("connection reset by peer after the order was sent")


def decimal(x: Any) -> Decimal:
    return Decimal(str(x))
