"""`/ws` of the simulator (services.md §6.3, §7.4) over a real uvicorn server and the real `websockets`
client, the project's live price feed against it, and `--db` persistence of the paper venue.

Expected values are the prices the tests set, rendered as Hyperliquid decimal strings, and the paper
rules of §7.2 worked by hand (half spread 1 bp, slippage 2 bp, taker fee 0.00045, funding 0.0000125/h).
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from tests.exchange.conftest import WALLET, SimServer
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.market.feed import PriceFeed, read_price
from ttt.api.sim_exchange import SimState
from ttt.api.sim_exchange.info import handle_info
from ttt.api.sim_exchange.state import WallClock
from ttt.domain.orders import OrderRequest, PlaceResult, TimeInForce

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"
_HASH = re.compile(r"^0x[0-9a-f]{64}$")


def _ws(sim: SimServer) -> ClientConnection:
    return connect(sim.url.replace("http://", "ws://") + "/ws", open_timeout=5, close_timeout=1)


def _send(ws: Connection, payload: Any) -> None:
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))


def _recv(ws: Connection) -> Any:
    return json.loads(ws.recv(timeout=5))


def _subscribe(ws: Connection, subscription: dict[str, Any]) -> None:
    _send(ws, {"method": "subscribe", "subscription": subscription})
    assert _recv(ws) == {
        "channel": "subscriptionResponse",
        "data": {"method": "subscribe", "subscription": subscription},
    }


def _until_pong(ws: Connection) -> list[Any]:
    """Everything the server queued before answering a ping (the ping is a barrier: one writer, in order)."""
    _send(ws, {"method": "ping"})
    seen = []
    while (msg := _recv(ws)) != {"channel": "pong"}:
        seen.append(msg)
    return seen


def test_all_mids_and_trades_follow_the_price(sim: SimServer) -> None:
    sim_ms = sim.sim("GET", "/_sim/state")["time_ms"]
    with _ws(sim) as ws:
        _subscribe(ws, {"type": "allMids"})
        assert _recv(ws) == {
            "channel": "allMids",
            "data": {"mids": {"BTC": "100000.0", "ETH": "3000.0", "SOL": "150.0", "HYPE": "30.0"}},
        }
        _subscribe(ws, {"type": "trades", "coin": "BTC"})

        sim.sim("POST", "/_sim/price", {"coin": "BTC", "px": "100250.5"})
        up = {m["channel"]: m["data"] for m in _until_pong(ws)}
        assert up["allMids"] == {"mids": {"BTC": "100250.5", "ETH": "3000.0", "SOL": "150.0", "HYPE": "30.0"}}
        [trade_up] = up["trades"]
        assert {k: v for k, v in trade_up.items() if k not in ("hash", "tid", "users")} == {
            "coin": "BTC",
            "side": "B",
            "px": "100250.5",
            "sz": "0.00001",
            "time": sim_ms,
        }
        assert len(trade_up["users"]) == 2

        sim.sim("POST", "/_sim/price", {"coin": "BTC", "px": 99000})
        down = {m["channel"]: m["data"] for m in _until_pong(ws)}
        [trade_down] = down["trades"]
        assert (trade_down["side"], trade_down["px"]) == ("A", "99000.0")
        assert down["allMids"]["mids"]["BTC"] == "99000.0"
        assert _HASH.match(trade_up["hash"]) and _HASH.match(trade_down["hash"])
        assert trade_up["hash"] != trade_down["hash"] and trade_up["tid"] != trade_down["tid"]
        assert all(isinstance(t["tid"], int) and 0 < t["tid"] < 2**53 for t in (trade_up, trade_down))

        sim.sim("POST", "/_sim/price", {"coin": "ETH", "px": 3100})  # no BTC trade, new mids
        assert _until_pong(ws) == [
            {
                "channel": "allMids",
                "data": {"mids": {"BTC": "99000.0", "ETH": "3100.0", "SOL": "150.0", "HYPE": "30.0"}},
            }
        ]
        assert sim.sim("GET", "/_sim/state")["ws"] == {"connections": 1, "subscriptions": 2}


def test_ping_errors_and_unsubscribe(sim: SimServer) -> None:
    with _ws(sim) as ws:
        _send(ws, {"method": "ping"})
        assert _recv(ws) == {"channel": "pong"}

        bad: list[Any] = [
            "not json",
            [1, 2],
            {"method": "launch"},
            {"method": "subscribe"},
            {"method": "subscribe", "subscription": {"type": "trades", "coin": "DOGE"}},
            {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}},
            {"method": "unsubscribe", "subscription": {"type": "trades", "coin": "ETH"}},
        ]
        for payload in bad:
            _send(ws, payload if isinstance(payload, str) else json.dumps(payload))
            reply = _recv(ws)
            assert reply["channel"] == "error" and isinstance(reply["data"], str) and reply["data"], payload
        _send(ws, {"method": "subscribe", "subscription": {"type": "trades", "coin": "DOGE"}})
        assert "DOGE" in _recv(ws)["data"]

        _subscribe(ws, {"type": "trades", "coin": "ETH"})  # still usable after the errors
        _send(ws, {"method": "subscribe", "subscription": {"type": "trades", "coin": "ETH"}})
        assert _recv(ws)["channel"] == "error"
        sim.sim("POST", "/_sim/price", {"coin": "ETH", "px": "3001.5"})
        [msg] = _until_pong(ws)
        assert msg["channel"] == "trades" and [(t["coin"], t["px"]) for t in msg["data"]] == [
            ("ETH", "3001.5")
        ]

        unsub = {"method": "unsubscribe", "subscription": {"type": "trades", "coin": "ETH"}}
        _send(ws, unsub)
        assert _recv(ws) == {"channel": "subscriptionResponse", "data": unsub}
        sim.sim("POST", "/_sim/price", {"coin": "ETH", "px": 3002})
        assert _until_pong(ws) == []
    deadline = time.monotonic() + 5
    while sim.sim("GET", "/_sim/state")["ws"] != {"connections": 0, "subscriptions": 0}:
        assert time.monotonic() < deadline, "closed connection still counted"
        time.sleep(0.02)


def test_live_feed_runs_against_the_simulator(sim: SimServer) -> None:
    cache = MemoryCache("t3simws:")
    feed = PriceFeed(
        cache=cache,
        clock=WallClock(),
        coins={BTC: "BTC", ETH: "ETH"},
        transport="websocket",
        ws_url=sim.url.replace("http://", "ws://") + "/ws",
    )
    sim_ms = sim.sim("GET", "/_sim/state")["time_ms"]
    feed.start()
    try:
        deadline = time.monotonic() + 10
        while sim.sim("GET", "/_sim/state")["ws"]["subscriptions"] < 2:
            assert time.monotonic() < deadline and feed.alive, "the feed never subscribed"
            time.sleep(0.02)
        sim.sim("POST", "/_sim/price", {"coin": "BTC", "px": "101234.5"})
        record = None
        while record is None:
            assert time.monotonic() < deadline, "the feed never published the simulator's trade"
            record = read_price(cache, BTC, time.time(), 60.0)
            time.sleep(0.02)
        assert (record.price, record.ts, record.source) == (101234.5, sim_ms / 1000, "ws_trade")
        assert read_price(cache, ETH, time.time(), 60.0) is None  # ETH never traded
    finally:
        feed.stop()
    assert feed.error is None


def _state(db: Path, start_s: float) -> SimState:
    return SimState(wallets={WALLET: 10_000}, prices={BTC: 100_000, ETH: 3000}, start_s=start_s, db=db)


def _buy(state: SimState, symbol: str, size: str, px: int, tif: TimeInForce) -> PlaceResult:
    return state.engine.place_order(OrderRequest(symbol, "buy", Decimal(size), Decimal(px), tif), WALLET)


def _views(state: SimState) -> dict[str, Any]:
    user = {"user": WALLET}
    return {
        "account": handle_info(state, {"type": "clearinghouseState", **user}),
        "fills": handle_info(state, {"type": "userFills", **user}),
        "open": handle_info(state, {"type": "frontendOpenOrders", **user}),
        "funding": handle_info(state, {"type": "userFunding", "startTime": 0, **user}),
    }


def test_db_keeps_the_venue_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite"
    start = 1_700_000_000.0  # 472222.22… h: the next whole hour is 20 min away
    first = _state(db, start)
    taker = first.engine.place_order(
        OrderRequest(BTC, "buy", Decimal("0.01"), Decimal(101_000), "Ioc"), WALLET
    )
    resting = _buy(first, ETH, "0.1", 2900, "Alo")
    assert (taker.status, taker.oid, resting.status, resting.oid) == ("filled", 1, "resting", 2)
    first.advance(3600)  # one funding hour at P = 100000
    before = _views(first)
    first.close()

    # taker buy = 100000·1.0001·1.0002 = 100030.002; fee 0.01·100030.002·0.00045 = 0.450135009
    # funding 0.01·100000·0.0000125 = 0.0125; cash 10000 − 0.450135009 − 0.0125
    # account value = cash + 0.01·(100000 − 100030.002) = 9999.237344991, shown to 6 decimals
    [position] = before["account"]["assetPositions"]
    assert (position["position"]["coin"], position["position"]["szi"]) == ("BTC", "0.01")
    assert position["position"]["entryPx"] == "100030.002"
    assert before["account"]["marginSummary"]["accountValue"] == "9999.237345"
    [fill] = before["fills"]
    assert (fill["px"], fill["sz"], fill["side"], fill["fee"], fill["oid"]) == (
        "100030.002",
        "0.01",
        "B",
        "0.450135009",
        1,
    )
    [open_order] = before["open"]
    assert (open_order["oid"], open_order["coin"], open_order["limitPx"]) == (2, "ETH", "2900.0")
    [funding] = before["funding"]
    assert funding["time"] == 472223 * 3_600_000
    assert {k: funding["delta"][k] for k in ("coin", "usdc", "szi", "fundingRate")} == {
        "coin": "BTC",
        "usdc": "-0.0125",
        "szi": "0.01",
        "fundingRate": "0.0000125",
    }

    second = _state(db, start + 3600)  # the same --wallet again: no second deposit
    try:
        after = _views(second)
        assert {k: v for k, v in after["account"].items() if k != "time"} == {
            k: v for k, v in before["account"].items() if k != "time"
        }
        assert (after["fills"], after["open"], after["funding"]) == (
            before["fills"],
            before["open"],
            before["funding"],
        )
        again = second.engine.place_order(
            OrderRequest(ETH, "buy", Decimal("0.1"), Decimal(2800), "Alo"), WALLET
        )
        assert again.oid == 3

        second.reset()  # the test API's reset empties the file too
        fresh = _views(second)
        assert fresh["account"]["marginSummary"]["accountValue"] == "10000.0"
        assert (fresh["account"]["assetPositions"], fresh["fills"], fresh["open"], fresh["funding"]) == (
            [],
            [],
            [],
            [],
        )
    finally:
        second.close()
