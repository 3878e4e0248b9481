"""SV-12, SV-13, read retries, write-once and the circuit breaker, against a running sim-exchange."""

from __future__ import annotations

import socket
from collections.abc import Callable
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from tests.exchange.conftest import AGENT, AGENT_KEY, STRANGER_KEY, WALLET, WALLET_KEY, SimServer
from ttt.adapters.exchange.hl_parse import error_code
from ttt.adapters.exchange.hyperliquid import (
    ExchangeUnavailable,
    HyperliquidAdapter,
    HyperliquidSettings,
    OutcomeUnknown,
)
from ttt.domain.client_ids import client_order_id
from ttt.domain.orders import OrderRequest
from ttt.errors import ConfigError
from ttt.telemetry.metrics import Metrics

CLOID = client_order_id("manual:1764000000000", "BTC/USDC:USDC")


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def _adapter(
    url: str, key: str = AGENT_KEY, **kw: object
) -> tuple[HyperliquidAdapter, list[float], FakeClock]:
    sleeps: list[float] = []
    clock = FakeClock()
    metrics = kw.pop("metrics", None)
    settings = HyperliquidSettings(
        network="custom", base_url=url, wallet_address=WALLET, private_key=key, **kw
    )  # type: ignore[arg-type]
    adapter = HyperliquidAdapter(settings, clock=clock, sleep=sleeps.append, metrics=metrics)  # type: ignore[arg-type]
    return adapter, sleeps, clock


def _order(cloid: str = CLOID, price: int = 99_000, tif: str = "Alo") -> OrderRequest:
    return OrderRequest("BTC/USDC:USDC", "buy", Decimal("0.001"), Decimal(price), tif, cloid=cloid)  # type: ignore[arg-type]


def test_sv12_bad_signature_is_rejected_and_maps_to_exchange_rejected(
    sim_factory: Callable[..., SimServer],
) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    adapter, _, _ = _adapter(sim.url, key=STRANGER_KEY)
    result = adapter.place_order(_order())
    assert result.status == "error"
    assert result.error_text is not None and result.error_text.endswith("does not exist.")
    assert result.error_text.startswith("User or API Wallet 0x")
    assert error_code(result.error_text) == "exchange_rejected"
    assert sim.sim("GET", "/_sim/state")["orders"] == []


def test_unapproved_key_is_a_clear_configuration_error(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    stranger, _, _ = _adapter(sim.url, key=STRANGER_KEY)
    with pytest.raises(
        ConfigError, match=r"private_key: its address 0x[0-9a-f]{40} is not an approved API wallet"
    ):
        stranger.check_credentials()
    assert _adapter(sim.url, key=AGENT_KEY)[0].check_credentials() == "agent"
    assert _adapter(sim.url, key=WALLET_KEY)[0].check_credentials() == "master"


def test_sv13_drop_after_commit_is_an_unknown_outcome_resolved_by_cloid(sim: SimServer) -> None:
    adapter, _, _ = _adapter(sim.url, key=WALLET_KEY)
    adapter.load_products()
    sim.sim("POST", "/_sim/fault", {"endpoint": "exchange", "mode": "drop_after_commit", "count": 1})
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(_order())
    status = adapter.order_status(cloid=CLOID)
    assert status.status == "open" and status.cloid == CLOID
    orders = sim.sim("GET", "/_sim/state")["orders"]
    assert len(orders) == 1 and orders[0]["cloid"] == CLOID and orders[0]["status"] == "open"


def test_writes_are_never_retried(sim: SimServer) -> None:
    adapter, sleeps, _ = _adapter(sim.url, key=WALLET_KEY)
    adapter.load_products()
    sim.sim("POST", "/_sim/fault", {"endpoint": "exchange", "mode": "500", "count": 2})
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(_order())
    assert sleeps == []
    assert len(sim.state.faults["exchange"]) == 1  # exactly one request reached the server
    assert sim.sim("GET", "/_sim/state")["orders"] == []


def test_a_rate_limited_write_was_not_sent(sim: SimServer) -> None:
    adapter, _, _ = _adapter(sim.url, key=WALLET_KEY)
    adapter.load_products()
    sim.sim("POST", "/_sim/fault", {"endpoint": "exchange", "mode": "429", "count": 1})
    with pytest.raises(ExchangeUnavailable):
        adapter.place_order(_order())


def test_refused_connection_is_known_not_sent(sim: SimServer) -> None:
    adapter, _, _ = _adapter(sim.url, key=WALLET_KEY)
    adapter.load_products()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    adapter.client.urls["api"] = {"public": closed, "private": closed}
    with pytest.raises(ExchangeUnavailable, match="not sent"):
        adapter.place_order(_order())


def test_reads_retry_after_one_and_two_seconds(sim: SimServer) -> None:
    adapter, sleeps, _ = _adapter(sim.url, key=WALLET_KEY)
    sim.sim("POST", "/_sim/fault", {"endpoint": "info", "mode": "500", "count": 2})
    mids = adapter.fetch_mids()
    assert mids["BTC"] == Decimal(100_000)
    assert sleeps == [1.0, 2.0]


def test_429_storm_opens_the_breaker_then_half_open_probes(sim: SimServer) -> None:
    metrics = Metrics.create(CollectorRegistry())
    adapter, sleeps, clock = _adapter(sim.url, key=WALLET_KEY, metrics=metrics)
    gauge = ("ttt_exchange_circuit_open", {"exchange": "hyperliquid"})
    sim.sim("POST", "/_sim/fault", {"endpoint": "info", "mode": "429", "count": 1000})
    faults = sim.state.faults["info"]

    for i in range(5):
        with pytest.raises(ExchangeUnavailable):
            adapter.fetch_mids()
        assert adapter.breaker.is_open == (i == 4)
    assert sleeps == [1.0, 2.0] * 5
    assert len(faults) == 1000 - 15
    assert metrics.registry.get_sample_value(*gauge) == 1

    with pytest.raises(ExchangeUnavailable, match="circuit breaker open"):
        adapter.fetch_mids()
    assert len(faults) == 1000 - 15  # nothing sent while open

    clock.t += 60
    with pytest.raises(ExchangeUnavailable):
        adapter.fetch_mids()  # the single half-open trial fails: open again
    assert len(faults) == 1000 - 16
    assert adapter.breaker.state == "open"
    with pytest.raises(ExchangeUnavailable, match="circuit breaker open"):
        adapter.fetch_mids()

    faults.clear()
    clock.t += 60
    assert adapter.fetch_mids()["BTC"] == Decimal(100_000)
    assert adapter.breaker.state == "closed"
    assert metrics.registry.get_sample_value(*gauge) == 0


def test_opening_the_breaker_rotates_the_proxy() -> None:
    adapter = HyperliquidAdapter(
        HyperliquidSettings(
            network="custom",
            base_url="http://127.0.0.1:9",
            wallet_address=WALLET,
            proxies=("http://127.0.0.1:9/p1/", "http://127.0.0.1:9/p2/"),
            origin="ttt",
            read_attempts=1,
        ),
        sleep=lambda s: None,
    )
    assert adapter.client.proxy_prefix == "http://127.0.0.1:9/p1/"
    for _ in range(5):
        with pytest.raises(ExchangeUnavailable):
            adapter.fetch_mids()
    assert adapter.breaker.is_open
    assert adapter.client.proxy_prefix == "http://127.0.0.1:9/p2/"


def test_rejections_are_mapped_and_never_success(sim: SimServer) -> None:
    adapter, _, _ = _adapter(sim.url, key=WALLET_KEY)
    adapter.load_products()
    # bid = 99 990, ask = 100 010: a post-only buy at 100 020 would cross
    crossed = adapter.place_order(_order(price=100_020))
    assert crossed.status == "error"
    assert crossed.error_text == "Post only order would have immediately matched, bbo was 99990.0@100010.0."
    assert error_code(crossed.error_text) == "post_only_would_cross"
    no_match = adapter.place_order(
        _order(cloid=client_order_id("c2", "BTC/USDC:USDC"), price=100_020, tif="Ioc")
    )
    assert error_code(no_match.error_text) == "ioc_no_match"
    small = adapter.place_order(
        OrderRequest(
            "BTC/USDC:USDC",
            "buy",
            Decimal("0.00001"),
            Decimal(99_000),
            "Alo",
            cloid=client_order_id("c3", "x"),
        )
    )
    assert error_code(small.error_text) == "below_exchange_minimum"
    assert (
        adapter.set_isolated_leverage("BTC/USDC:USDC", 41)
        == "Invalid leverage value 41: must be between 1 and 40."
    )
    assert adapter.set_isolated_leverage("BTC/USDC:USDC", 5) is None


def test_a_read_timeout_is_a_network_failure(sim: SimServer) -> None:
    adapter, _, _ = _adapter(sim.url, key=WALLET_KEY, timeout_s=0.5, read_attempts=1)
    sim.sim("POST", "/_sim/fault", {"endpoint": "info", "mode": "timeout", "count": 1, "seconds": 1.5})
    with pytest.raises(ExchangeUnavailable, match="RequestTimeout"):
        adapter.fetch_mids()
    assert adapter.breaker.consecutive == 1
