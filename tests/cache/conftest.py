"""Backends under contract test: every `Cache` and `LockManager` implementation gets the same suite."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from tests.cache.cache_support import FakeMonotonic
from ttt.adapters.cache.locks import MemoryLockManager, RedisLockManager
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.models import LockRow
from ttt.ports import Cache, LockManager


@dataclass
class CacheCase:
    kind: str
    cache: Cache
    advance: Callable[[float], None]
    """Let `seconds` pass: the injected clock for memory, a real wait for Redis."""
    exact_trim: bool
    trim_slack: int = 0


@pytest.fixture(params=["memory", "redis"])
def cache_case(request: pytest.FixtureRequest) -> Iterator[CacheCase]:
    if request.param == "memory":
        clock = FakeMonotonic()
        yield CacheCase("memory", MemoryCache(monotonic=clock), clock.advance, exact_trim=True)
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client = make_redis_client(redis_url)
    raw = redis.Redis.from_url(redis_url)
    # Approximate MAXLEN trims whole stream nodes only, so up to one node's worth can stay above the bound.
    node_max = int(raw.config_get("stream-node-max-entries")["stream-node-max-entries"])
    try:
        yield CacheCase(
            "redis",
            RedisCache(client, prefix),
            time.sleep,
            exact_trim=False,
            trim_slack=node_max,
        )
    finally:
        client.close()
        raw.close()


@dataclass
class LockCase:
    kind: str
    a: LockManager
    b: LockManager
    """Two contenders that share nothing but the lock store (separate clients / engines)."""
    advance: Callable[[float], None]
    peek: Callable[[str], str | None]
    """The token stored for a lock name, read around the manager."""
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _memory_locks() -> LockCase:
    clock = FakeMonotonic()
    cache = MemoryCache(monotonic=clock)

    def peek(name: str) -> str | None:
        raw = cache.get(f"lock:{name}")
        return None if raw is None else raw.decode()

    return LockCase("memory", MemoryLockManager(cache), MemoryLockManager(cache), clock.advance, peek)


def _redis_locks(request: pytest.FixtureRequest) -> LockCase:
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client_a, client_b = make_redis_client(redis_url), make_redis_client(redis_url)
    raw = redis.Redis.from_url(redis_url)

    def peek(name: str) -> str | None:
        value = raw.get(f"{prefix}lock:{name}")
        return None if value is None else value.decode()

    return LockCase(
        "redis",
        RedisLockManager(client_a, prefix),
        RedisLockManager(client_b, prefix),
        time.sleep,
        peek,
        [client_a.close, client_b.close, raw.close],
    )


class FakeClock:
    """A `ttt.ports.Clock` shared by both DB contenders, so expiry needs no sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _db_locks(url_fixture: str) -> Callable[[pytest.FixtureRequest], LockCase]:
    """Two engines on one database: two "processes" (LK-04)."""

    def build(request: pytest.FixtureRequest) -> LockCase:
        url: str = request.getfixturevalue(url_fixture)
        engine_a, engine_b = make_engine(url, pool_size=2), make_engine(url, pool_size=2)
        LockRow.__table__.create(engine_a)
        clock = FakeClock()
        a, b = DbLockManager(engine_a, clock), DbLockManager(engine_b, clock)

        def peek(name: str) -> str | None:
            held = a.holder(name)
            return held[0] if held is not None and held[1] > clock.now() else None

        return LockCase("db", a, b, clock.advance, peek, [engine_a.dispose, engine_b.dispose])

    return build


LOCK_BACKENDS: dict[str, Callable[[pytest.FixtureRequest], LockCase]] = {
    "memory": lambda request: _memory_locks(),
    "redis": _redis_locks,
    "db-sqlite": _db_locks("sqlite_url"),
    "db-mariadb": _db_locks("mariadb_url"),
    "db-postgresql": _db_locks("pg_url"),
}


@pytest.fixture(params=sorted(LOCK_BACKENDS))
def lock_case(request: pytest.FixtureRequest) -> Iterator[LockCase]:
    case = LOCK_BACKENDS[request.param](request)
    try:
        yield case
    finally:
        for close in case.cleanup:
            close()
