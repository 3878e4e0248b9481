"""The simulator's /info and /exchange rules, driven by the official hyperliquid-python-sdk (an independent
implementation of the signing) and by raw HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import eth_account
import httpx
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import (
    OrderType,
    get_timestamp_ms,
    order_request_to_order_wire,
    order_wires_to_order_action,
    sign_l1_action,
)
from hyperliquid.utils.types import Cloid

from tests.exchange.conftest import AGENT, AGENT_KEY, STRANGER_KEY, WALLET, WALLET_KEY, SimServer

ALO: OrderType = {"limit": {"tif": "Alo"}}


def _sdk(sim: SimServer, key: str = WALLET_KEY, **kw: Any) -> Exchange:
    return Exchange(eth_account.Account.from_key(key), sim.url, account_address=WALLET, **kw)


def test_official_sdk_reads_and_trades(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet")  # the SDK signs as testnet for any non-mainnet URL
    info = Info(sim.url, skip_ws=True)
    assert [u["name"] for u in info.meta()["universe"]] == ["BTC", "ETH", "SOL", "HYPE"]
    assert info.all_mids()["BTC"] == "100000.0"
    state = info.user_state(WALLET)
    assert state["marginSummary"]["accountValue"] == "10000.0" and state["assetPositions"] == []

    exchange = _sdk(sim)
    cloid = Cloid.from_str("0x74747401ac68f1dd3b9b15bea5c75641")
    placed = exchange.order("BTC", True, 0.001, 99_000, ALO, cloid=cloid)
    assert placed == {
        "status": "ok",
        "response": {
            "type": "order",
            "data": {"statuses": [{"resting": {"oid": 1, "cloid": cloid.to_raw()}}]},
        },
    }
    assert [o["oid"] for o in info.open_orders(WALLET)] == [1]
    assert info.query_order_by_cloid(WALLET, cloid)["order"]["status"] == "open"
    canceled = exchange.cancel("BTC", 1)
    assert canceled["response"]["data"]["statuses"] == ["success"]
    again = exchange.cancel_by_cloid("BTC", cloid)
    assert again["response"]["data"]["statuses"] == [
        {"error": "Order was never placed, already canceled, or filled."}
    ]
    assert info.open_orders(WALLET) == []


def test_sdk_approve_agent_then_agent_trades(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet")
    master = _sdk(sim)
    result, agent_key = master.approve_agent("bot")
    assert result == {"status": "ok", "response": {"type": "default"}}
    agent = _sdk(sim, key=agent_key)
    placed = agent.order("ETH", False, 0.01, 3100, ALO)
    assert "resting" in placed["response"]["data"]["statuses"][0]
    agents = Info(sim.url, skip_ws=True).post("/info", {"type": "extraAgents", "user": WALLET})
    assert [(a["name"], a["address"]) for a in agents] == [
        ("bot", eth_account.Account.from_key(agent_key).address.lower())
    ]


def test_unknown_signer_wrong_network_and_unknown_agent(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet")
    stranger = _sdk(sim, key=STRANGER_KEY).order("BTC", True, 0.001, 99_000, ALO)
    address = eth_account.Account.from_key(STRANGER_KEY).address.lower()
    assert stranger == {"status": "err", "response": f"User or API Wallet {address} does not exist."}
    mainnet_sim = sim_factory(network="mainnet")
    # a testnet signature recovers to some other address on a mainnet simulator
    wrong_net = _sdk(mainnet_sim).order("BTC", True, 0.001, 99_000, ALO)
    assert wrong_net["status"] == "err" and wrong_net["response"].endswith("does not exist.")
    assert sim.sim("GET", "/_sim/state")["counters"]["rejected_signatures"] == 1


def _signed(action: dict[str, Any], key: str = WALLET_KEY, nonce: int | None = None) -> dict[str, Any]:
    nonce = nonce if nonce is not None else get_timestamp_ms()
    wallet = eth_account.Account.from_key(key)
    signature = sign_l1_action(wallet, action, None, nonce, None, False)
    return {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}


def _btc_order(builder: bool = False, trigger: bool = False) -> dict[str, Any]:
    order_type: Any = {"trigger": {"triggerPx": 90_000, "isMarket": True, "tpsl": "sl"}} if trigger else ALO
    wire = order_request_to_order_wire(
        {
            "coin": "BTC",
            "is_buy": True,
            "sz": 0.001,
            "limit_px": 99_000,
            "order_type": order_type,
            "reduce_only": False,
        },
        0,
    )
    return order_wires_to_order_action([wire], {"b": "0x" + "ab" * 20, "f": 10} if builder else None)


def test_nonces_are_unique_and_recent(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet")
    post = lambda body: httpx.post(sim.url + "/exchange", json=body).json()  # noqa: E731
    nonce = get_timestamp_ms()
    assert post(_signed({"type": "noop"}, nonce=nonce))["status"] == "ok"
    duplicate = post(_signed({"type": "noop"}, nonce=nonce))
    assert duplicate["status"] == "err" and duplicate["response"].startswith("Invalid nonce")
    stale = post(_signed({"type": "noop"}, nonce=nonce - 3 * 86_400_000))
    assert stale["status"] == "err" and stale["response"].startswith("Invalid nonce")
    future = post(_signed({"type": "noop"}, nonce=nonce + 2 * 86_400_000))
    assert future["status"] == "err" and future["response"].startswith("Invalid nonce")


def test_forbidden_actions_are_counted_and_strict_rejects_them(sim_factory: Callable[..., SimServer]) -> None:
    for strict in (False, True):
        sim = sim_factory(network="testnet", strict=strict)
        post = lambda body, s=sim: httpx.post(s.url + "/exchange", json=body).json()  # noqa: E731
        referrer = post(_signed({"type": "setReferrer", "code": "X"}))
        with_builder = post(_signed(_btc_order(builder=True)))
        approval = _sdk(sim).approve_builder_fee("0x" + "ab" * 20, "0.001%")
        if strict:
            assert (
                referrer
                == with_builder
                == approval
                == {"status": "err", "response": "forbidden action in simulator"}
            )
        else:
            assert referrer == approval == {"status": "ok", "response": {"type": "default"}}
            assert "resting" in with_builder["response"]["data"]["statuses"][0]
        state = sim.sim("GET", "/_sim/state")
        assert state["counters"]["forbidden_actions"] == 3
        assert state["counters"]["orders_with_builder"] == 1
        assert state["forbidden_by_action"] == {"setReferrer": 1, "order.builder": 1, "approveBuilderFee": 1}


def test_unsupported_and_trigger_orders(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet")
    post = lambda body: httpx.post(sim.url + "/exchange", json=body).json()  # noqa: E731
    assert post(_signed({"type": "twapOrder", "twap": {}})) == {
        "status": "err",
        "response": "Unsupported action twapOrder",
    }
    trigger = post(_signed(_btc_order(trigger=True)))
    assert trigger["response"]["data"]["statuses"] == [
        {"error": "Trigger orders are not supported by the simulator."}
    ]


def test_schedule_cancel_is_honoured(sim_factory: Callable[..., SimServer]) -> None:
    class Wall:
        t = time.time()

        def now(self) -> float:
            return self.t

    wall = Wall()
    sim = sim_factory(network="testnet", wall=wall)
    exchange = _sdk(sim)
    exchange.order("BTC", True, 0.001, 99_000, ALO)
    too_soon = exchange.schedule_cancel(get_timestamp_ms() + 1000)
    assert too_soon["status"] == "err"
    assert exchange.schedule_cancel(get_timestamp_ms() + 10_000) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    assert len(Info(sim.url, skip_ws=True).open_orders(WALLET)) == 1
    wall.t += 20
    assert Info(sim.url, skip_ws=True).open_orders(WALLET) == []


def test_info_rejects_unknown_types_and_rate_limits(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(rate_limit=50)
    unknown = sim.info({"type": "bogusType"})
    assert unknown.status_code == 422 and "bogusType" in unknown.text
    assert unknown.headers["content-type"].startswith("text/plain")
    codes = [sim.info({"type": "meta"}).status_code for _ in range(2)]
    assert codes == [200, 429]  # the unknown type (20) + meta (20) fit in 50, a second meta does not
    assert sim.info({"type": "allMids"}).status_code == 200  # weight 2 still fits


def test_test_api_price_advance_reset(sim: SimServer) -> None:
    sim.sim("POST", "/_sim/price", {"coin": "BTC", "px": 95_000})
    assert sim.info({"type": "allMids"}).json()["BTC"] == "95000.0"
    before = sim.sim("GET", "/_sim/state")["time_ms"]
    sim.sim("POST", "/_sim/advance", {"seconds": 3600})
    assert sim.sim("GET", "/_sim/state")["time_ms"] == before + 3_600_000
    sim.sim("POST", "/_sim/reset")
    assert sim.info({"type": "allMids"}).json()["BTC"] == "100000.0"
    bad = httpx.post(sim.url + "/_sim/fault", json={"endpoint": "info", "mode": "teapot"})
    assert bad.status_code == 422 and "teapot" in bad.text


def test_test_api_is_absent_without_the_flag() -> None:
    from fastapi.testclient import TestClient

    from ttt.api.sim_exchange import SimSettings, SimState, create_app

    client = TestClient(create_app(SimState(wallets={WALLET: Decimal(1)}), SimSettings(test_api=False)))
    assert client.get("/_sim/state").status_code == 404
    assert client.post("/info", json={"type": "meta"}).status_code == 200


def test_agent_flag_maps_agent_to_wallet(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet", agents={AGENT: WALLET})
    placed = _sdk(sim, key=AGENT_KEY).order("BTC", True, 0.001, 99_000, ALO)
    assert "resting" in placed["response"]["data"]["statuses"][0]
    role = sim.info({"type": "userRole", "user": AGENT}).json()
    assert role == {"role": "agent", "data": {"user": WALLET}}


def test_no_verify_accepts_any_signature(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(network="testnet", verify=False)
    placed = _sdk(sim, key=STRANGER_KEY).order("BTC", True, 0.001, 99_000, ALO)
    assert "resting" in placed["response"]["data"]["statuses"][0]
    assert sim.sim("GET", "/_sim/state")["orders"][0]["wallet"] == WALLET


def test_cli_parses_wallets_and_agents() -> None:
    from ttt.cli.sim_exchange_cmd import parse_agents, parse_wallets
    from ttt.errors import ConfigError

    assert parse_wallets([f"{WALLET.upper().replace('0X', '0x')}=2500.5"]) == {WALLET: Decimal("2500.5")}
    assert parse_agents([f"{AGENT}={WALLET}"]) == {AGENT: WALLET}
    for bad in (["nope"], [f"{WALLET}=abc"], ["0x12=5"], [f"{WALLET}=-1"]):
        with pytest.raises(ConfigError, match="--wallet"):
            parse_wallets(bad)
