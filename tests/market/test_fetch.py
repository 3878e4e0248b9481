"""The OHLCV fetch job (services.md §6.1) against a real local /info server."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.market.hl_local import InfoServer, ManualClock, Recorded, Reply, candle_route
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.market.fetch import (
    OhlcvFetcher,
    boundary_ms,
    is_due,
    last_fetch_key,
    window_since_ms,
)
from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient
from ttt.domain.orders import Bar
from ttt.telemetry.metrics import Metrics

MIN = 60_000
BTC = "BTC/USDC:USDC"


def ms(*args: int, second: float = 0.0) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000) + round(second * 1000)


NOW_MS = ms(2023, 5, 22, 10, 37, second=12.345)


# -- the rules, with hand-computed values -----------------------------------------------------------------


def test_boundary_is_the_open_of_the_forming_bar() -> None:
    assert boundary_ms(NOW_MS, MIN) == ms(2023, 5, 22, 10, 37)
    assert boundary_ms(NOW_MS, 4 * 60 * MIN) == ms(2023, 5, 22, 8, 0)
    assert boundary_ms(ms(2023, 5, 22, 12, 0), 4 * 60 * MIN) == ms(2023, 5, 22, 12, 0)


def test_due_once_per_bar_or_in_backfill() -> None:
    b = ms(2023, 5, 22, 10, 37)
    assert is_due(b, None)
    assert is_due(b, b - MIN)
    assert not is_due(b, b)
    assert is_due(b, b, backfill=True)


@pytest.mark.parametrize(
    ("last_stored", "expected"),
    [
        (None, NOW_MS - 1440 * MIN),  # nothing stored: the whole backfill window
        (ms(2023, 5, 22, 10, 32), NOW_MS - 20 * MIN),  # up to date: the lookback window
        (ms(2023, 5, 22, 7, 37), ms(2023, 5, 22, 7, 37)),  # 3 h of downtime: back to the last stored bar
        (ms(2023, 5, 20, 10, 0), NOW_MS - 1440 * MIN),  # 2 days of downtime: capped at the backfill depth
    ],
)
def test_window_formula(last_stored: int | None, expected: int) -> None:
    assert window_since_ms(NOW_MS, MIN, 20, 1440, last_stored) == expected


# -- the job against the local server ---------------------------------------------------------------------


class Store:
    """The BarWriter / LatestOpen pair a repository will provide."""

    def __init__(self, latest: dict[tuple[str, str], int] | None = None, fail: bool = False) -> None:
        self.latest = dict(latest or {})
        self.fail = fail
        self.writes: list[list[Bar]] = []
        self._lock = threading.Lock()

    def upsert(self, bars: Sequence[Bar]) -> None:
        if self.fail:
            raise RuntimeError("database is down")
        with self._lock:
            self.writes.append(list(bars))

    def latest_open(self, symbol: str, timeframe: str) -> int | None:
        return self.latest.get((symbol, timeframe))

    def bars(self) -> list[Bar]:
        return [b for w in self.writes for b in w]


def fetcher(
    server: InfoServer, store: Store, clock: ManualClock, cache: MemoryCache, **kw: Any
) -> OhlcvFetcher:
    client = HyperliquidInfoClient(network="custom", base_url=server.url, timeout_s=5, sleep=lambda s: None)
    return OhlcvFetcher(
        client=client,
        cache=cache,
        clock=clock,
        writer=store.upsert,
        latest_open=store.latest_open,
        **kw,
    )


def test_fetch_lookback_window_is_final_and_last_fetch() -> None:
    clock = ManualClock(NOW_MS / 1000)
    cache = MemoryCache(monotonic=clock.monotonic)
    store = Store({(BTC, "1m"): ms(2023, 5, 22, 10, 32)})
    with InfoServer(candle_route(newest_ms=NOW_MS)) as server:
        job = fetcher(server, store, clock, cache)
        [result] = job.run([BTC], ["1m"])
        assert result.outcome == "ok"
        req = server.bodies("candleSnapshot")[0]["req"]
        assert req["coin"] == "BTC" and req["interval"] == "1m"
        assert req["startTime"] == ms(2023, 5, 22, 10, 17)  # now − 20 bars, aligned to the minute
        assert req["endTime"] == NOW_MS
        bars = store.bars()
        assert [b.ts_open for b in bars] == list(
            range(ms(2023, 5, 22, 10, 17), ms(2023, 5, 22, 10, 37) + 1, MIN)
        )
        assert all(b.is_final for b in bars[:-1])
        assert not bars[-1].is_final  # 10:37 is still forming at 10:37:12
        assert bars[0].symbol == BTC and bars[0].timeframe == "1m"
        assert cache.get(last_fetch_key(BTC, "1m")) == str(ms(2023, 5, 22, 10, 37)).encode()
        assert cache.ttl(last_fetch_key(BTC, "1m")) == pytest.approx(86_400)

        # Same bar: not due, nothing sent.
        clock.advance(30)
        [again] = job.run([BTC], ["1m"])
        assert again.outcome == "not_due"
        assert len(server.bodies("candleSnapshot")) == 1
        # Backfill mode ignores the boundary rule.
        [forced] = job.run([BTC], ["1m"], backfill=True)
        assert forced.outcome == "ok"
        assert len(server.bodies("candleSnapshot")) == 2
        # The next minute opens: due again.
        clock.advance(20)
        [next_bar] = job.run([BTC], ["1m"])
        assert next_bar.outcome == "ok"
        assert cache.get(last_fetch_key(BTC, "1m")) == str(ms(2023, 5, 22, 10, 38)).encode()


def test_fetch_backfill_pages_over_5000_bars() -> None:
    clock = ManualClock(NOW_MS / 1000)
    store = Store()
    with InfoServer(candle_route(newest_ms=NOW_MS)) as server:
        job = fetcher(server, store, clock, MemoryCache(), backfill_bars={"1m": 6000})
        [result] = job.run([BTC], ["1m"])
    first = ms(2023, 5, 22, 10, 37) - 6000 * MIN
    sent = [b["req"] for b in server.bodies("candleSnapshot")]
    assert [r["startTime"] for r in sent] == [first, first + 5000 * MIN]
    assert result.outcome == "ok" and result.bars == 6001
    assert [b.ts_open for b in store.bars()] == list(range(first, ms(2023, 5, 22, 10, 37) + 1, MIN))


def test_4h_uses_its_own_lookback() -> None:
    clock = ManualClock(NOW_MS / 1000)
    store = Store({(BTC, "4h"): ms(2023, 5, 22, 8, 0)})
    with InfoServer(candle_route(newest_ms=NOW_MS)) as server:
        job = fetcher(server, store, clock, MemoryCache())
        job.run([BTC], ["4h"])
    req = server.bodies("candleSnapshot")[0]["req"]
    # min(now − 50·4h, 08:00) = now − 200 h; aligned down to the 4 h grid.
    since = NOW_MS - 50 * 4 * 60 * MIN
    assert req["startTime"] == since - since % (4 * 60 * MIN)
    assert len(store.bars()) == 51


def test_429_skips_the_job_and_keeps_last_fetch() -> None:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return 429, "Too Many Requests"

    clock = ManualClock(NOW_MS / 1000)
    cache = MemoryCache(monotonic=clock.monotonic)
    previous = str(ms(2023, 5, 22, 10, 30))
    cache.set(last_fetch_key(BTC, "1m"), previous, 86_400)
    metrics = Metrics.create(CollectorRegistry())
    store = Store()
    with InfoServer(route) as server:
        job = fetcher(server, store, clock, cache, metrics=metrics)
        results = job.run([BTC, "ETH/USDC:USDC"], ["1m"])
    assert [r.outcome for r in results] == ["rate_limited", "rate_limited"]
    assert cache.get(last_fetch_key(BTC, "1m")) == previous.encode()
    assert cache.get(last_fetch_key("ETH/USDC:USDC", "1m")) is None
    assert store.writes == []
    assert len(server.requests) == 2  # a 429 is not retried
    assert (
        metrics.registry.get_sample_value(
            "ttt_market_data_fetch_total", {"symbol": BTC, "timeframe": "1m", "result": "rate_limited"}
        )
        == 1
    )


def test_failed_write_keeps_last_fetch() -> None:
    clock = ManualClock(NOW_MS / 1000)
    cache = MemoryCache(monotonic=clock.monotonic)
    with InfoServer(candle_route(newest_ms=NOW_MS)) as server:
        job = fetcher(server, Store(fail=True), clock, cache)
        [result] = job.run([BTC], ["1m"])
    assert result.outcome == "error" and "database is down" in result.message
    assert cache.get(last_fetch_key(BTC, "1m")) is None


def test_concurrency_bounds_parallel_jobs() -> None:
    inner = candle_route(newest_ms=NOW_MS)

    def slow(body: dict[str, Any], rec: Recorded) -> Reply:
        time.sleep(0.05)
        return inner(body, rec)

    symbols = ["BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC", "HYPE/USDC:USDC", "kPEPE/USDC:USDC"]
    clock = ManualClock(NOW_MS / 1000)
    store = Store()
    with InfoServer(slow) as server:
        job = fetcher(
            server, store, clock, MemoryCache(), concurrency=2, api_coins={"kPEPE/USDC:USDC": "kPEPE"}
        )
        results = job.run(symbols, ["1m", "5m"])
    assert [(r.symbol, r.timeframe) for r in results] == [(s, tf) for s in symbols for tf in ("1m", "5m")]
    assert all(r.outcome == "ok" for r in results)
    assert server.max_in_flight <= 2
    assert sorted({b["req"]["coin"] for b in server.bodies()}) == ["BTC", "ETH", "HYPE", "SOL", "kPEPE"]
