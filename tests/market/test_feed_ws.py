"""The websocket transport against a real local websocket server speaking Hyperliquid's protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.market.hl_local import (
    InfoServer,
    Recorded,
    Reply,
    WallClock,
    WsServer,
    cassette_answer,
    free_port,
    running,
    wait_for,
)
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.market.feed import PRICES_STREAM, PriceFeed, price_key, read_price
from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"


def now_ms() -> int:
    return int(time.time() * 1000)


def recording_sleep(
    feed_ref: list[PriceFeed], limit: int | None = None
) -> tuple[list[float], Callable[[float], None]]:
    """Records every delay the feed chooses and waits only briefly, so back-off is asserted, not timed."""
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if limit is not None and len(delays) >= limit:
            feed_ref[0].stop(timeout_s=0)
        time.sleep(0.01)

    return delays, sleep


def make_feed(cache: MemoryCache, ws_url: str, sleep: Callable[[float], None], **kw: Any) -> PriceFeed:
    kw.setdefault("coins", {BTC: "BTC"})
    return PriceFeed(
        cache=cache,
        clock=WallClock(),
        transport="websocket",
        ws_url=ws_url,
        ws_open_timeout_s=2,
        sleep=sleep,
        **kw,
    )


def price_of(cache: MemoryCache, symbol: str) -> float | None:
    rec = read_price(cache, symbol, time.time(), 60)
    return None if rec is None else rec.price


def test_disconnect_reconnect_and_prices_resume() -> None:
    t = now_ms()
    plans = [
        [
            (
                "send",
                [
                    {"coin": "BTC", "px": "30010.0", "sz": "1", "time": t + 5, "side": "B"},
                    {"coin": "BTC", "px": "30000.0", "sz": "1", "time": t, "side": "A"},
                ],
            ),
            ("close",),
        ],
        [("send", [{"coin": "BTC", "px": "30100.0", "sz": "1", "time": t + 900, "side": "B"}]), ("hold",)],
    ]
    cache = MemoryCache()
    ref: list[PriceFeed] = []
    delays, sleep = recording_sleep(ref)
    with WsServer(plans, expect_subs=1) as server:
        feed = make_feed(cache, server.url, sleep)
        ref.append(feed)
        with running(feed):
            assert wait_for(lambda: price_of(cache, BTC) == 30100.0)
        assert not feed.alive
    assert len(server.connections) >= 2
    for conn in server.connections[:2]:
        assert conn.subscriptions == [{"type": "trades", "coin": "BTC"}]
    assert server.connections[0].closed_by_server
    # The first connection delivered data, so the reconnect waits the initial 1 s of the back-off.
    assert delays[0] == 1.0
    stream = [f for _, f in cache.xrange(PRICES_STREAM)]
    assert [(f["price"], f["source"]) for f in stream[:2]] == [
        ("30010.0", "ws_trade"),
        ("30100.0", "ws_trade"),
    ]


def test_silent_connection_is_replaced_after_ws_stale_s() -> None:
    t = now_ms()
    plans = [
        [("send", [{"coin": "BTC", "px": "30000.0", "sz": "1", "time": t, "side": "B"}]), ("hold",)],
        [("send", [{"coin": "BTC", "px": "30200.0", "sz": "1", "time": t + 1, "side": "B"}]), ("hold",)],
    ]
    cache = MemoryCache()
    ref: list[PriceFeed] = []
    delays, sleep = recording_sleep(ref)
    with WsServer(plans) as server:
        # Pings are answered with pongs, which are not subscription data: silence is still detected.
        feed = make_feed(cache, server.url, sleep, ws_stale_s=0.6, ping_interval_s=0.1)
        ref.append(feed)
        with running(feed):
            assert wait_for(lambda: price_of(cache, BTC) == 30200.0)
    assert server.connections[0].pings >= 1
    assert not server.connections[0].closed_by_server
    assert delays[0] == 1.0


def test_connection_failures_back_off_1_2_4_up_to_30_s() -> None:
    cache = MemoryCache()
    ref: list[PriceFeed] = []
    delays, sleep = recording_sleep(ref, limit=8)
    feed = make_feed(cache, f"ws://127.0.0.1:{free_port()}/ws", sleep)
    ref.append(feed)
    with running(feed):
        assert wait_for(lambda: not feed.alive)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert feed.error is None


def test_gap_poll_fills_silent_and_hip3_coins_from_all_mids() -> None:
    mids = cassette_answer("test_get_all_mids.yaml", "allMids")

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        if body.get("dex") == "xyz":
            return 200, {"xyz:CL": "65.25", "xyz:GOLD": "2400.0"}
        return 200, mids

    t = now_ms()
    plans = [
        [("send", [{"coin": "BTC", "px": "30500.0", "sz": "1", "time": t + 10_000, "side": "B"}]), ("hold",)]
    ]
    cache = MemoryCache()
    ref: list[PriceFeed] = []
    _, sleep = recording_sleep(ref)
    with InfoServer(route) as info, WsServer(plans) as server:
        client = HyperliquidInfoClient(network="custom", base_url=info.url, timeout_s=5)
        coins = {BTC: "BTC", ETH: "ETH", "XYZ-CL/USDC:USDC": "xyz:CL"}
        feed = make_feed(cache, server.url, sleep, coins=coins, client=client, ws_gap_poll_s=0.3)
        ref.append(feed)
        with running(feed):
            assert wait_for(lambda: price_of(cache, BTC) == 30500.0)
            # ETH never trades: it keeps being filled from allMids; the HIP-3 coin always is.
            assert wait_for(lambda: len([b for b in info.bodies() if b.get("dex") is None]) >= 2)
            assert wait_for(lambda: len(info.bodies()) >= 4)
        client.close()
    # Only native coins are subscribed; the HIP-3 coin comes from the dex's allMids.
    assert sorted(s["coin"] for s in server.connections[0].subscriptions) == ["BTC", "ETH"]
    eth = read_price(cache, ETH, time.time(), 60)
    assert eth is not None and (eth.price, eth.source) == (float(mids["ETH"]), "poll_mid")
    cl = read_price(cache, "XYZ-CL/USDC:USDC", time.time(), 60)
    assert cl is not None and (cl.price, cl.source) == (65.25, "poll_mid")
    btc = read_price(cache, BTC, time.time(), 60)
    assert btc is not None and btc.source == "ws_trade"  # a fresh trade is not overwritten by a mid
    assert {"type": "allMids", "dex": "xyz"} in info.bodies()


def test_stop_is_clean_and_prices_then_expire() -> None:
    from tests.market.hl_local import ManualClock

    t = now_ms()
    mono = ManualClock(0.0)
    cache = MemoryCache(monotonic=mono.monotonic)
    ref: list[PriceFeed] = []
    _, sleep = recording_sleep(ref)
    plans = [[("send", [{"coin": "BTC", "px": "30000.0", "sz": "1", "time": t, "side": "B"}]), ("hold",)]]
    with WsServer(plans) as server:
        feed = make_feed(cache, server.url, sleep, max_age_s=60)
        ref.append(feed)
        feed.start()
        assert wait_for(lambda: cache.get(price_key(BTC)) is not None)
        feed.stop()
        assert not feed.alive
        assert not any(th.name.startswith("price-feed") for th in threading.enumerate())
    mono.advance(60.0)
    assert cache.get(price_key(BTC)) is None
