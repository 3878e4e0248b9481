"""Redis-only behaviour: the keyspace as other clients see it, and failures surfacing as CacheUnavailable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cache.cache_support import free_port, private_redis_server
from ttt.adapters.cache.errors import CacheError, CacheUnavailable
from ttt.adapters.cache.factory import make_cache, make_lock_manager
from ttt.adapters.cache.locks import RedisLockManager
from ttt.adapters.cache.policy import check_eviction_policy
from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
from ttt.errors import TTTError


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_prefix_is_applied_on_the_server(redis_url: str, redis_prefix: str, raw: redis.Redis) -> None:
    cache = RedisCache(make_redis_client(redis_url), redis_prefix)
    cache.set("price:BTC", "1", 60)
    cache.xadd("stream:prices", {"a": "1"}, 10)
    assert raw.get(f"{redis_prefix}price:BTC") == b"1"
    assert raw.xlen(f"{redis_prefix}stream:prices") == 1
    assert raw.get("price:BTC") is None
    raw.set(f"{redis_prefix}other", "x")
    assert cache.get("other") == b"x"
    assert cache.get(f"{redis_prefix}price:BTC") is None


def test_ttl_is_set_on_the_server_in_ms(redis_url: str, redis_prefix: str, raw: redis.Redis) -> None:
    cache = RedisCache(make_redis_client(redis_url), redis_prefix)
    cache.set("weight:BTC:1", "0.1", 120, nx=True)
    cache.set_many({"m:1": "a", "m:2": "b"}, ttl_s=60)
    assert 119_000 < raw.pttl(f"{redis_prefix}weight:BTC:1") <= 120_000
    assert 59_000 < raw.pttl(f"{redis_prefix}m:2") <= 60_000


def test_lock_key_layout_and_expiry(redis_url: str, redis_prefix: str, raw: redis.Redis) -> None:
    locks = RedisLockManager(make_redis_client(redis_url), redis_prefix)
    token = locks.acquire("gateway:order:0xabc", 60)
    assert token is not None
    assert raw.get(f"{redis_prefix}lock:gateway:order:0xabc") == token.encode()
    assert 59_000 < raw.pttl(f"{redis_prefix}lock:gateway:order:0xabc") <= 60_000
    assert locks.extend("gateway:order:0xabc", token, 600)
    assert 599_000 < raw.pttl(f"{redis_prefix}lock:gateway:order:0xabc") <= 600_000


def test_default_prefix_is_ttt(redis_url: str) -> None:
    cache = RedisCache(make_redis_client(redis_url))
    assert cache.prefix == "ttt:"
    assert RedisLockManager(make_redis_client(redis_url)).key("beat") == "ttt:lock:beat"


def test_unreachable_redis_raises_cache_unavailable() -> None:
    port = free_port()  # nothing listens here
    client = make_redis_client(f"redis://127.0.0.1:{port}/0")
    cache = RedisCache(client)
    for call in (
        lambda: cache.get("price:BTC"),
        lambda: cache.get_many(["a", "b"]),
        lambda: cache.set("a", "1", 5),
        lambda: cache.set_many({"a": "1"}, 5),
        lambda: cache.xadd("stream:prices", {"a": "1"}, 10),
        lambda: cache.xrange("stream:prices"),
        lambda: cache.ttl("a"),
        lambda: RedisLockManager(client).acquire("reconcile", 10),
        lambda: RedisLockManager(client).extend("reconcile", "0" * 32, 10),
        lambda: check_eviction_policy(client, allow_allkeys=False),
    ):
        with pytest.raises(CacheUnavailable, match=f"127.0.0.1:{port}"):
            call()
    assert cache.ping() is False
    assert issubclass(CacheUnavailable, TTTError)


def test_redis_url_must_be_valid() -> None:
    with pytest.raises(CacheError, match=r"cache\.redis_url"):
        make_redis_client("http://example.invalid/")


def test_factory_password_reaches_the_server(tmp_path: Path) -> None:
    with private_redis_server(tmp_path, "--requirepass", "s3cret") as url:
        cache = make_cache("redis", url, "ttt:", password="s3cret")
        assert cache.ping() is True
        assert cache.set("k", "v")
        assert cache.get("k") == b"v"
        locks = make_lock_manager("redis", url, "ttt:", password="s3cret")
        assert locks.acquire("beat", 10) is not None

        without = make_cache("redis", url, "ttt:")
        assert without.ping() is False
        with pytest.raises(CacheError):
            without.get("k")
