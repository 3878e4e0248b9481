"""SV-11: the real ccxt client (network custom) against a running sim-exchange."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import ccxt
import pytest
from prometheus_client import CollectorRegistry

from tests.exchange.conftest import AGENT, AGENT_KEY, WALLET, SimServer
from ttt.adapters.exchange.hyperliquid import (
    ForbiddenActionError,
    GuardedHyperliquid,
    HyperliquidAdapter,
    HyperliquidSettings,
)
from ttt.domain.client_ids import client_order_id
from ttt.telemetry.metrics import Metrics

POST_ONLY_CLOID = client_order_id("sched:20260101T120000Z", "BTC/USDC:USDC")
IOC_CLOID = client_order_id("sched:20260101T120000Z", "ETH/USDC:USDC")


def _adapter(url: str, metrics: Metrics | None = None) -> HyperliquidAdapter:
    settings = HyperliquidSettings(
        network="custom", base_url=url, wallet_address=WALLET, private_key=AGENT_KEY
    )
    return HyperliquidAdapter(settings, metrics=metrics)


def test_sv11_ccxt_end_to_end_sends_no_forbidden_action(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    client = _adapter(sim.url).client
    assert isinstance(client, ccxt.hyperliquid)
    assert client.options["builderFee"] is False and client.options["refSet"] is True

    markets = client.load_markets()
    assert "BTC/USDC:USDC" in markets and markets["BTC/USDC:USDC"]["swap"]
    balance = client.fetch_balance()
    assert balance["USDC"]["total"] == 10_000

    resting = client.create_order(
        "BTC/USDC:USDC",
        "limit",
        "buy",
        0.001,
        99_000,
        {"clientOrderId": POST_ONLY_CLOID, "timeInForce": "Alo"},
    )
    assert resting["info"] == {"resting": {"oid": 1, "cloid": POST_ONLY_CLOID}}
    # ask = 3000·1.0001 = 3000.3; taker buy = 3000.3·1.0002 = 3000.90006
    filled = client.create_order(
        "ETH/USDC:USDC", "limit", "buy", 0.01, 3010, {"clientOrderId": IOC_CLOID, "timeInForce": "Ioc"}
    )
    assert filled["info"]["filled"] == {
        "totalSz": "0.01",
        "avgPx": "3000.90006",
        "oid": 2,
        "cloid": IOC_CLOID,
    }

    canceled = client.cancel_order("", "BTC/USDC:USDC", {"clientOrderId": POST_ONLY_CLOID})
    assert canceled["info"] == "success"
    fetched = client.fetch_order("", "ETH/USDC:USDC", {"clientOrderId": IOC_CLOID})
    assert fetched["status"] == "closed" and fetched["clientOrderId"] == IOC_CLOID
    fetched_canceled = client.fetch_order("", "BTC/USDC:USDC", {"clientOrderId": POST_ONLY_CLOID})
    assert fetched_canceled["status"] == "canceled"

    state = sim.sim("GET", "/_sim/state")
    assert state["counters"]["forbidden_actions"] == 0
    assert state["counters"]["orders_with_builder"] == 0
    assert set(state["actions"]) == {"order", "cancelByCloid"}
    assert [o["status"] for o in state["orders"]] == ["canceled", "filled"]


class _UnpatchedInit(GuardedHyperliquid):
    """ccxt's own start-up steps restored, so only the request guard stands between them and the wire."""

    handle_builder_fee_approval = ccxt.hyperliquid.handle_builder_fee_approval
    set_ref = ccxt.hyperliquid.set_ref


def test_guard_refuses_ccxt_startup_actions_before_sending(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    metrics = Metrics.create(CollectorRegistry())
    adapter = _adapter(sim.url, metrics)
    client = adapter.client
    client.__class__ = _UnpatchedInit
    client.options["refSet"] = False

    order = client.create_order(
        "BTC/USDC:USDC",
        "limit",
        "buy",
        0.001,
        99_000,
        {"clientOrderId": POST_ONLY_CLOID, "timeInForce": "Alo"},
    )
    assert "resting" in order["info"]
    registry = metrics.registry
    # ccxt retries a failed approval at every client initialisation (market load, then the order)
    assert (
        registry.get_sample_value("ttt_exchange_forbidden_actions_total", {"action": "approveBuilderFee"})
        == 2
    )
    assert registry.get_sample_value("ttt_exchange_forbidden_actions_total", {"action": "setReferrer"}) == 1
    state = sim.sim("GET", "/_sim/state")
    assert state["counters"]["forbidden_actions"] == 0
    assert state["actions"] == {"order": 1}


def test_guard_refuses_an_order_with_a_builder(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    metrics = Metrics.create(CollectorRegistry())
    client = _adapter(sim.url, metrics).client
    client.load_markets()
    client.options["approvedBuilderFee"] = True  # what ccxt does after a successful approval
    with pytest.raises(ForbiddenActionError):
        client.create_order(
            "BTC/USDC:USDC",
            "limit",
            "buy",
            0.001,
            99_000,
            {"clientOrderId": POST_ONLY_CLOID, "timeInForce": "Alo"},
        )
    assert (
        metrics.registry.get_sample_value("ttt_exchange_forbidden_actions_total", {"action": "order.builder"})
        == 1
    )
    assert sim.sim("GET", "/_sim/state")["actions"] == {}


def test_guard_allows_dex_abstraction_only_when_configured(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    adapter = _adapter(sim.url)
    body = '{"action":{"type":"userDexAbstraction","enabled":true},"nonce":1}'
    with pytest.raises(ForbiddenActionError):
        adapter.client.guard(sim.url + "/exchange", body)
    allowed = HyperliquidAdapter(
        HyperliquidSettings(
            network="custom",
            base_url=sim.url,
            wallet_address=WALLET,
            private_key=AGENT_KEY,
            user_dex_abstraction=True,
        )
    )
    allowed.client.guard(sim.url + "/exchange", body)


def test_integer_price_above_five_figures_is_sent_unchanged(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(agents={AGENT: WALLET})
    adapter = _adapter(sim.url)
    adapter.load_products()
    from ttt.domain.orders import OrderRequest

    result = adapter.place_order(
        OrderRequest("BTC/USDC:USDC", "buy", Decimal("0.001"), Decimal(99_123), "Alo", cloid=POST_ONLY_CLOID)
    )
    assert result.status == "resting"
    assert sim.sim("GET", "/_sim/state")["orders"][0]["px"] == "99123.0"
