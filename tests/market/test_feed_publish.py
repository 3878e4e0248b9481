"""Publishing rules of the price feed (services.md §5, §6.3) and the consumer's max-age rule."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from tests.market.hl_local import ManualClock
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.market.feed import (
    PRICES_STREAM,
    PriceFeed,
    PricePublisher,
    price_key,
    read_price,
    resolve_transport,
)
from ttt.telemetry.metrics import Metrics

T0 = 1_700_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def cache(clock: ManualClock) -> MemoryCache:
    return MemoryCache(monotonic=clock.monotonic, wall=clock.now)


def test_auto_transport_polls_only_with_proxies() -> None:
    assert resolve_transport("auto", []) == "websocket"
    assert resolve_transport("auto", ["http://proxy/"]) == "polling"
    assert resolve_transport("websocket", ["http://proxy/"]) == "websocket"
    assert resolve_transport("polling", []) == "polling"
    with pytest.raises(ValueError, match="mode"):
        resolve_transport("sse", [])


def test_publish_sets_key_with_ttl_then_appends_stream(cache: MemoryCache, clock: ManualClock) -> None:
    metrics = Metrics.create(CollectorRegistry())
    pub = PricePublisher(cache, clock, max_age_s=60, stream_maxlen=3, metrics=metrics)
    assert pub.publish("BTC/USDC:USDC", 30135.0, T0 - 2, "poll_mid")
    raw = cache.get(price_key("BTC/USDC:USDC"))
    assert raw is not None
    assert json.loads(raw) == {"price": 30135.0, "ts": T0 - 2, "source": "poll_mid"}
    assert cache.ttl(price_key("BTC/USDC:USDC")) == pytest.approx(60.0)
    (_, fields) = cache.xrange(PRICES_STREAM)[0]
    assert fields == {"symbol": "BTC/USDC:USDC", "price": "30135.0", "ts": repr(T0 - 2), "source": "poll_mid"}
    for i in range(5):
        pub.publish("BTC/USDC:USDC", 30136.0 + i, T0 + i, "ws_trade")
    assert cache.xlen(PRICES_STREAM) <= 3  # MAXLEN trims the stream
    reg = metrics.registry
    labels = {"symbol": "BTC/USDC:USDC"}
    assert reg.get_sample_value("ttt_price_updates_total", {**labels, "source": "poll_mid"}) == 1
    assert reg.get_sample_value("ttt_price_updates_total", {**labels, "source": "ws_trade"}) == 5
    # The last publication (ts T0+4) is 4 s in the clock's future: age clamps at 0.
    assert reg.get_sample_value("ttt_price_age_seconds", labels) == 0


def test_older_price_is_dropped(cache: MemoryCache, clock: ManualClock) -> None:
    pub = PricePublisher(cache, clock, max_age_s=60)
    assert pub.publish("ETH/USDC:USDC", 1900.0, T0, "ws_trade")
    assert not pub.publish("ETH/USDC:USDC", 1800.0, T0 - 1, "poll_mid")
    assert json.loads(cache.get(price_key("ETH/USDC:USDC")) or b"")["price"] == 1900.0
    assert cache.xlen(PRICES_STREAM) == 1
    assert pub.publish("ETH/USDC:USDC", 1901.0, T0, "poll_mid")  # same ts is not older


def test_a_price_already_stale_is_never_published(cache: MemoryCache, clock: ManualClock) -> None:
    pub = PricePublisher(cache, clock, max_age_s=60)
    assert not pub.publish("BTC/USDC:USDC", 30000.0, T0 - 61, "ws_trade")
    assert cache.get(price_key("BTC/USDC:USDC")) is None
    assert cache.xlen(PRICES_STREAM) == 0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_unusable_prices_are_dropped(cache: MemoryCache, clock: ManualClock, bad: float) -> None:
    assert not PricePublisher(cache, clock).publish("BTC/USDC:USDC", bad, T0, "poll_mid")
    assert cache.get(price_key("BTC/USDC:USDC")) is None


def test_silent_feed_makes_the_price_unavailable(cache: MemoryCache, clock: ManualClock) -> None:
    """After the last update, the key expires at max_age_s; nothing re-publishes it."""
    feed = PriceFeed(
        cache=cache,
        clock=clock,
        coins={"BTC/USDC:USDC": "BTC"},
        transport="websocket",
        ws_url="ws://x",
        max_age_s=60,
    )
    trade = {"coin": "BTC", "side": "B", "px": "30135.0", "sz": "0.1", "time": int(T0 * 1000), "tid": 1}
    assert feed.handle_ws_message(json.dumps({"channel": "trades", "data": [trade]}))
    assert read_price(cache, "BTC/USDC:USDC", clock.now(), 180) is not None
    clock.advance(59.9)
    assert read_price(cache, "BTC/USDC:USDC", clock.now(), 180) is not None
    clock.advance(0.2)
    assert cache.get(price_key("BTC/USDC:USDC")) is None
    assert read_price(cache, "BTC/USDC:USDC", clock.now(), 180) is None


def test_consumer_max_age_rule_applies_even_if_the_key_survives(
    cache: MemoryCache, clock: ManualClock
) -> None:
    # A record written without TTL (e.g. by an older writer) still ages out for the consumer.
    cache.set(price_key("SOL/USDC:USDC"), json.dumps({"price": 150.0, "ts": T0, "source": "poll_mid"}))
    assert read_price(cache, "SOL/USDC:USDC", T0 + 180, 180) is not None
    assert read_price(cache, "SOL/USDC:USDC", T0 + 180.5, 180) is None


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"price": "x", "ts": 1, "source": "poll_mid"}',
        '{"price": 0, "ts": 1, "source": "s"}',
        '{"ts": 1}',
    ],
)
def test_malformed_record_reads_as_no_price(cache: MemoryCache, raw: str) -> None:
    cache.set(price_key("BTC/USDC:USDC"), raw)
    assert read_price(cache, "BTC/USDC:USDC", T0, 1e12) is None


def test_trade_batch_publishes_the_latest_positive_trade(cache: MemoryCache, clock: ManualClock) -> None:
    feed = PriceFeed(
        cache=cache,
        clock=clock,
        coins={"BTC/USDC:USDC": "BTC", "KPEPE/USDC:USDC": "kPEPE"},
        transport="websocket",
        ws_url="ws://x",
    )
    t = int(T0 * 1000)
    batch = [
        {"coin": "BTC", "px": "30010.0", "sz": "1", "time": t - 5, "side": "A"},
        {"coin": "BTC", "px": "30020.5", "sz": "1", "time": t - 1, "side": "B"},
        {"coin": "BTC", "px": "30000.0", "sz": "1", "time": t - 9, "side": "B"},
        {"coin": "BTC", "px": "0", "sz": "1", "time": t, "side": "B"},  # invalid price, ignored
        {"coin": "kPEPE", "px": "0.001565", "sz": "1", "time": t - 3, "side": "B"},
    ]
    assert feed.handle_ws_message(json.dumps({"channel": "trades", "data": batch}))
    btc = read_price(cache, "BTC/USDC:USDC", clock.now(), 60)
    assert btc is not None and (btc.price, btc.ts, btc.source) == (30020.5, (t - 1) / 1000, "ws_trade")
    pepe = read_price(cache, "KPEPE/USDC:USDC", clock.now(), 60)
    assert pepe is not None and pepe.price == 0.001565
    # Non-data channels do not count as subscription traffic.
    assert not feed.handle_ws_message('{"channel":"pong"}')
    assert not feed.handle_ws_message('{"channel":"subscriptionResponse","data":{}}')
    assert not feed.handle_ws_message("garbage")
