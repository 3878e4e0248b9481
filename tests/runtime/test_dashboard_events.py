"""`GET /api/v1/events` (services.md §9): the cache streams (§5) as Server-Sent Events, served by a real
uvicorn over the real Redis (and the memory cache `3t run` uses), read with httpx streaming."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry

from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
from ttt.api.dashboard import ENDPOINTS, create_dashboard_app
from ttt.ports import Cache
from ttt.services.dashboard_events import DashboardEvents, read_after

from ..support import Served, free_port

TOKEN = "s3cret-events-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def redis_cache(redis_url: str, redis_prefix: str) -> Iterator[RedisCache]:
    client = make_redis_client(redis_url)
    yield RedisCache(client, redis_prefix)
    client.close()


def _app(events: DashboardEvents | None, token: str | None = None) -> Any:
    return create_dashboard_app(CollectorRegistry(), dict, dict, token=token, events=events)


class Sse:
    """Messages parsed from an open event-stream response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def next(self) -> dict[str, str]:
        msg: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if msg:
                    return msg
                continue
            if line.startswith(":"):
                msg["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            msg[name] = value[1:] if value.startswith(" ") else value
        raise AssertionError(f"stream ended; partial message {msg!r}")

    def events(self, n: int) -> list[dict[str, str]]:
        """The next `n` messages that carry an event (keep-alive comments skipped)."""
        out: list[dict[str, str]] = []
        while len(out) < n:
            msg = self.next()
            if "event" in msg:
                out.append(msg)
        return out


@contextmanager
def sse(base: str, headers: dict[str, str] | None = None) -> Iterator[Sse]:
    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as client,
        client.stream("GET", f"{base}/api/v1/events", headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Sse(response)


def _write_one_of_each(cache: Cache) -> dict[str, str]:
    """One entry per stream as the writers shape them, plus an events entry neither alert nor cycle."""
    return {
        "price": cache.xadd(
            "stream:prices",
            {"symbol": "BTC", "price": "65000.5", "ts": "1700000000.25", "source": "synthetic"},
            100,
        ),
        "balance": cache.xadd(
            "stream:balance",
            {
                "snapshot_id": 7,
                "account_value": "1234.5",
                "cross_margin": "",
                "fetched_at": 1700000001.0,
                "usable": 1,
            },
            100,
        ),
        "order": cache.xadd(
            "stream:orders",
            {
                "client_order_id": "c-1",
                "symbol": "ETH",
                "side": "buy",
                "size": "0.5",
                "status": "filled",
                "ts": 1.5,
            },
            100,
        ),
        "alert": cache.xadd(
            "stream:events",
            {
                "kind": "alert",
                "severity": "critical",
                "component": "gateway",
                "reason": "circuit_open",
                "symbol": "",
                "cycle_id": "",
                "ts": 2.0,
                "message": "venue down\nsecond line",
            },
            100,
        ),
        "skipped": cache.xadd("stream:events", {"kind": "note", "severity": "info", "message": "x"}, 100),
        "cycle": cache.xadd(
            "stream:events",
            {
                "kind": "cycle.end",
                "severity": "info",
                "component": "reconcile",
                "cycle_id": "cy-9",
                "ts": 3.0,
            },
            100,
        ),
    }


def _expected(ids: dict[str, str]) -> dict[str, tuple[str, str]]:
    """id → (event, data line), written out by hand."""
    return {
        f"prices:{ids['price']}": (
            "price",
            '{"symbol":"BTC","price":"65000.5","ts":"1700000000.25","source":"synthetic"}',
        ),
        f"balance:{ids['balance']}": (
            "balance",
            '{"snapshot_id":"7","account_value":"1234.5","cross_margin":null,"fetched_at":"1700000001.0",'
            '"usable":"1"}',
        ),
        f"orders:{ids['order']}": (
            "order",
            '{"client_order_id":"c-1","symbol":"ETH","side":"buy","size":"0.5","status":"filled","ts":"1.5"}',
        ),
        f"events:{ids['alert']}": (
            "alert",
            '{"kind":"alert","severity":"critical","component":"gateway","reason":"circuit_open",'
            '"symbol":null,"cycle_id":null,"ts":"2.0","message":"venue down\\nsecond line"}',
        ),
        f"events:{ids['cycle']}": (
            "cycle",
            '{"kind":"cycle.end","severity":"info","component":"reconcile","cycle_id":"cy-9","ts":"3.0"}',
        ),
    }


def _check_one_of_each(stream: Sse, cache: Cache) -> None:
    ids = _write_one_of_each(cache)
    got = stream.events(5)
    assert {m["id"]: (m["event"], m["data"]) for m in got} == _expected(ids)
    # Same-stream order is kept: the alert comes before the cycle entry written after it.
    event_ids = [m["id"] for m in got if m["id"].startswith("events:")]
    assert event_ids == [f"events:{ids['alert']}", f"events:{ids['cycle']}"]


def test_endpoint_listed() -> None:
    assert "/api/v1/events" in [path for path, _ in ENDPOINTS]


@pytest.mark.servers
def test_redis_streams_become_sse_messages(redis_cache: RedisCache) -> None:
    # Written before the connect: the exact five messages below prove it is never sent.
    redis_cache.xadd("stream:prices", {"symbol": "BTC", "price": "1", "ts": "1", "source": "x"}, 100)
    events = DashboardEvents(redis_cache, refresh_s=2.5, poll_s=0.05)
    with Served(_app(events)) as base, sse(base) as stream:
        assert stream.next() == {"retry": "2500"}
        _check_one_of_each(stream, redis_cache)
        later = redis_cache.xadd(
            "stream:prices", {"symbol": "SOL", "price": "150", "ts": "9", "source": "x"}, 100
        )
        nxt = stream.events(1)[0]
        assert (nxt["event"], nxt["id"]) == ("price", f"prices:{later}")


@pytest.mark.servers
def test_pre_connect_entries_are_not_sent(redis_cache: RedisCache) -> None:
    redis_cache.xadd("stream:orders", {"client_order_id": "old", "status": "new"}, 100)
    events = DashboardEvents(redis_cache, poll_s=0.05)
    with Served(_app(events)) as base, sse(base) as stream:
        assert stream.next() == {"retry": "5000"}
        new = redis_cache.xadd("stream:orders", {"client_order_id": "new", "status": "new"}, 100)
        first = stream.events(1)[0]
        assert first["id"] == f"orders:{new}"
        assert first["data"] == '{"client_order_id":"new","status":"new"}'


@pytest.mark.servers
def test_token_required(redis_cache: RedisCache) -> None:
    events = DashboardEvents(redis_cache, poll_s=0.05)
    with Served(_app(events, token=TOKEN)) as base:
        refused = httpx.get(f"{base}/api/v1/events", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        with sse(base, AUTH) as stream:
            assert stream.next() == {"retry": "5000"}
            price = redis_cache.xadd("stream:prices", {"symbol": "BTC"}, 100)
            assert stream.events(1)[0]["id"] == f"prices:{price}"


@pytest.mark.servers
def test_last_event_id_resumes(redis_cache: RedisCache) -> None:
    before = redis_cache.xadd("stream:balance", {"snapshot_id": 1}, 100)
    time.sleep(0.05)  # the next entries get a later millisecond than `before`
    p1 = redis_cache.xadd("stream:prices", {"symbol": "A"}, 100)
    p2 = redis_cache.xadd("stream:prices", {"symbol": "B"}, 100)
    p3 = redis_cache.xadd("stream:prices", {"symbol": "C"}, 100)
    b2 = redis_cache.xadd("stream:balance", {"snapshot_id": 2}, 100)
    events = DashboardEvents(redis_cache, poll_s=0.05)
    with Served(_app(events)) as base:
        with sse(base, {"Last-Event-ID": f"prices:{p1}"}) as stream:
            assert stream.next() == {"retry": "5000"}
            got = stream.events(3)
            assert sorted(m["id"] for m in got) == sorted([f"prices:{p2}", f"prices:{p3}", f"balance:{b2}"])
            prices = [m["data"] for m in got if m["event"] == "price"]
            assert prices == ['{"symbol":"B"}', '{"symbol":"C"}']
            assert f"balance:{before}" not in [m["id"] for m in got]
        # An id this server never sent (or garbage) starts with new entries only.
        for unknown in ("garbage", "nostream:1-0", "prices:abc"):
            with sse(base, {"Last-Event-ID": unknown}) as stream:
                assert stream.next() == {"retry": "5000"}
                fresh = redis_cache.xadd("stream:prices", {"symbol": unknown}, 100)
                assert stream.events(1)[0]["id"] == f"prices:{fresh}"


@pytest.mark.servers
def test_disconnect_ends_the_generator(redis_cache: RedisCache) -> None:
    events = DashboardEvents(redis_cache, poll_s=0.05)
    served = Served(_app(events))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.WARNING)
    watched = [logging.getLogger("uvicorn.error"), logging.getLogger("ttt")]
    for logger in watched:
        logger.addHandler(keep)
    try:
        with served as base:
            with sse(base) as stream:
                assert stream.next() == {"retry": "5000"}
                assert events.active == 1
                price = redis_cache.xadd("stream:prices", {"symbol": "BTC"}, 100)
                assert stream.events(1)[0]["id"] == f"prices:{price}"  # the poll loop is running
            deadline = time.monotonic() + 10
            while events.active and time.monotonic() < deadline:
                time.sleep(0.02)
            assert events.active == 0
            # The server keeps serving after the disconnect.
            with sse(base) as stream:
                assert stream.next() == {"retry": "5000"}
    finally:
        for logger in watched:
            logger.removeHandler(keep)
    assert records == [], [r.getMessage() for r in records]


@pytest.mark.servers
def test_cache_failure_ends_with_error_event(
    redis_cache: RedisCache, redis_url: str, redis_prefix: str
) -> None:
    down = RedisCache(make_redis_client(f"redis://127.0.0.1:{free_port()}/0"), redis_prefix)
    with Served(_app(DashboardEvents(down, poll_s=0.05))) as base, sse(base) as stream:
        assert stream.next() == {"retry": "5000"}
        error = stream.next()
        assert error["event"] == "error"
        assert '"error":"cache_unavailable"' in error["data"]
        assert "id" not in error
        assert list(stream.lines) == []  # the stream ended
    # A failure while streaming: the stream key stops being a stream (WRONGTYPE).
    events = DashboardEvents(redis_cache, poll_s=0.05)
    with Served(_app(events)) as base, sse(base) as stream:
        assert stream.next() == {"retry": "5000"}
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"{redis_prefix}stream:orders", b"not a stream")
        raw.close()
        error = stream.events(1)[0]
        assert error["event"] == "error"
        assert "Traceback" not in error["data"]
        assert list(stream.lines) == []


def test_memory_cache_backend() -> None:
    cache = MemoryCache("ttt:")
    events = DashboardEvents(cache, refresh_s=5, poll_s=0.05, keepalive_s=0.3)
    with Served(_app(events)) as base, sse(base) as stream:
        assert stream.next() == {"retry": "5000"}
        assert stream.next() == {"comment": "keep-alive"}
        _check_one_of_each(stream, cache)


def test_close_ends_open_streams_so_the_server_can_stop() -> None:
    events = DashboardEvents(MemoryCache("ttt:"), poll_s=0.05)
    served = Served(_app(events))
    with served as base, sse(base) as stream:
        assert stream.next() == {"retry": "5000"}
        events.close()
        assert list(stream.lines) == []  # the response completed
    assert not served.thread.is_alive()
    assert events.active == 0


def test_without_cache_503() -> None:
    with Served(_app(None)) as base:
        response = httpx.get(f"{base}/api/v1/events", timeout=10)
        assert response.status_code == 503
        assert "poll" in response.json()["message"]


@pytest.mark.servers
def test_read_after_widens_and_bounds(redis_cache: RedisCache) -> None:
    ids = [redis_cache.xadd("stream:prices", {"n": n}, 1000) for n in range(100)]
    after_first = read_after(redis_cache, "stream:prices", tuple(map(int, ids[0].split("-"))), 1000)  # type: ignore[arg-type]
    assert [raw for _, (raw, _) in after_first] == ids[1:]
    assert after_first[0][1][1] == {"n": "1"}
    newest = read_after(redis_cache, "stream:prices", (0, 0), 10)
    assert [raw for _, (raw, _) in newest] == ids[90:]
    assert read_after(redis_cache, "stream:prices", tuple(map(int, ids[-1].split("-"))), 1000) == []  # type: ignore[arg-type]
