"""The polling transport against a real local /info server: proxies and Origin, 429 back-off, overruns."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.market.hl_local import InfoServer, Recorded, Reply, WallClock, cassette_answer, running, wait_for
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.market.feed import PRICES_STREAM, PriceFeed, read_price
from ttt.adapters.market.hyperliquid_http import MAINNET_URL, HyperliquidInfoClient
from ttt.config.models import Config

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"
ORIGIN = "https://app.hyperliquid.xyz"


@pytest.fixture(scope="module")
def mids() -> dict[str, str]:
    recorded: dict[str, str] = cassette_answer("test_get_all_mids.yaml", "allMids")
    return recorded


def serve_mids(mids: dict[str, str]) -> Callable[[dict[str, Any], Recorded], Reply]:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return 200, mids

    return route


class Sleeps:
    """Records the delays the feed chose; stops the feed after `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.delays: list[float] = []
        self.limit = limit
        self.feed: PriceFeed | None = None

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit and self.feed is not None:
            self.feed.stop(timeout_s=0)


def polling_feed(cache: MemoryCache, client: HyperliquidInfoClient, sleeps: Sleeps, **kw: Any) -> PriceFeed:
    kw.setdefault("coins", {BTC: "BTC", ETH: "ETH"})
    feed = PriceFeed(cache=cache, clock=WallClock(), transport="polling", client=client, sleep=sleeps, **kw)
    sleeps.feed = feed
    return feed


def test_polling_through_a_proxy_sends_origin(mids: dict[str, str]) -> None:
    cache = MemoryCache()
    sleeps = Sleeps(limit=3)
    with InfoServer(serve_mids(mids)) as server:
        client = HyperliquidInfoClient(proxies=[f"{server.url}/proxy/"], origin=ORIGIN, timeout_s=5)
        feed = polling_feed(cache, client, sleeps, poll_interval_s=30.0)
        with running(feed):
            assert wait_for(lambda: not feed.alive)
        client.close()
    assert len(server.requests) == 3
    for rec in server.requests:
        assert rec.path == f"/proxy/{MAINNET_URL}/info"
        assert rec.headers.get("origin") == ORIGIN
        assert rec.body == {"type": "allMids"}
    btc = read_price(cache, BTC, time.time(), 60)
    eth = read_price(cache, ETH, time.time(), 60)
    assert btc is not None and (btc.price, btc.source) == (30135.0, "poll_mid")
    assert eth is not None and eth.price == 1903.95
    assert cache.xlen(PRICES_STREAM) == 6


def test_polling_without_proxy_sends_no_origin(mids: dict[str, str]) -> None:
    cache = MemoryCache()
    sleeps = Sleeps(limit=2)
    with InfoServer(serve_mids(mids)) as server:
        client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5)
        feed = polling_feed(cache, client, sleeps, poll_interval_s=30.0)
        with running(feed):
            assert wait_for(lambda: not feed.alive)
        client.close()
    assert len(server.requests) == 2
    assert all(r.path == "/info" and "origin" not in r.headers for r in server.requests)


def test_auto_mode_polls_through_configured_proxies(mids: dict[str, str]) -> None:
    cache = MemoryCache()
    sleeps = Sleeps(limit=1)
    with InfoServer(serve_mids(mids)) as server:
        config = Config.model_validate(
            {
                "universe": {"symbols": [BTC]},
                "exchange": {"hyperliquid": {"proxies": [f"{server.url}/p/"], "origin": ORIGIN}},
            }
        )
        feed = PriceFeed.from_config(config, cache=cache, clock=WallClock(), sleep=sleeps)
        sleeps.feed = feed
        assert feed.transport == "polling"
        with running(feed):
            assert wait_for(lambda: not feed.alive)
    assert server.requests[0].headers.get("origin") == ORIGIN
    assert server.requests[0].path == f"/p/{MAINNET_URL}/info"


def test_hip3_coins_are_polled_per_dex(mids: dict[str, str]) -> None:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        # Some answers name dex coins without the prefix; both forms map to the symbol.
        return 200, ({"CL": "65.25"} if body.get("dex") == "xyz" else mids)

    cache = MemoryCache()
    sleeps = Sleeps(limit=1)
    with InfoServer(route) as server:
        client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5)
        feed = polling_feed(cache, client, sleeps, coins={BTC: "BTC", "XYZ-CL/USDC:USDC": "xyz:CL"})
        with running(feed):
            assert wait_for(lambda: not feed.alive)
        client.close()
    assert server.bodies() == [{"type": "allMids"}, {"type": "allMids", "dex": "xyz"}]
    cl = read_price(cache, "XYZ-CL/USDC:USDC", time.time(), 60)
    assert cl is not None and cl.price == 65.25


def test_429_backs_off_doubling_and_resets_after_success(mids: dict[str, str]) -> None:
    script = [429, 429, 429, 200, 429, 200]

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        status = script.pop(0) if script else 200
        return (status, "Too Many Requests") if status == 429 else (200, mids)

    cache = MemoryCache()
    sleeps = Sleeps(limit=6)
    with InfoServer(route) as server:
        client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5)
        feed = polling_feed(cache, client, sleeps, poll_interval_s=0.05)
        with running(feed):
            assert wait_for(lambda: not feed.alive)
        client.close()
    d = sleeps.delays
    # 2, 4, 8 s after three 429s; a normal interval wait after the success; then 2 s again (reset).
    assert d[:3] == [2.0, 4.0, 8.0]
    assert 0 <= d[3] <= 0.05
    assert d[4] == 2.0
    assert 0 <= d[5] <= 0.05
    assert len(server.requests) == 6


def test_429_back_off_is_capped_at_60_s() -> None:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return 429, "rate limited"

    sleeps = Sleeps(limit=8)
    with InfoServer(route) as server:
        client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5)
        feed = polling_feed(MemoryCache(), client, sleeps)
        with running(feed):
            assert wait_for(lambda: not feed.alive)
        client.close()
    assert sleeps.delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_overrun_is_warned_and_the_next_cycle_starts_at_once(
    mids: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        time.sleep(0.06)  # a slow answer forces the cycle past its 0.01 s interval
        return 200, mids

    sleeps = Sleeps(limit=1)
    with InfoServer(route) as server:
        client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5)
        feed = polling_feed(MemoryCache(), client, sleeps, poll_interval_s=0.01)
        with caplog.at_level(logging.WARNING, logger="ttt.adapters.market.feed"), running(feed):
            assert wait_for(lambda: len(server.requests) >= 2)
        client.close()
    assert any("longer than poll_interval_s" in r.getMessage() for r in caplog.records)
    assert sleeps.delays == []  # an overrunning cycle does not wait before the next one
