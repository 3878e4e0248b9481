"""make_cache / make_lock_manager: the configured backend, or an error naming the configuration key."""

from __future__ import annotations

import pytest
import redis

from ttt.adapters.cache.factory import make_cache, make_lock_manager
from ttt.adapters.cache.locks import MemoryLockManager, RedisLockManager
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.cache.redis_cache import RedisCache
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.models import LockRow
from ttt.errors import ConfigError
from ttt.ports import Cache, LockManager


def test_memory_backend() -> None:
    cache = make_cache("memory", prefix="p:")
    assert isinstance(cache, MemoryCache) and isinstance(cache, Cache)
    cache.set("k", "v")
    assert cache.get("k") == b"v"


def test_redis_backend_uses_url_and_prefix(redis_url: str, redis_prefix: str) -> None:
    cache = make_cache("redis", redis_url, redis_prefix)
    assert isinstance(cache, RedisCache)
    cache.set("k", "v", 30)
    raw = redis.Redis.from_url(redis_url)
    try:
        assert raw.get(f"{redis_prefix}k") == b"v"
    finally:
        raw.close()


def test_unknown_cache_backend_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"cache\.backend.*'sqlite'"):
        make_cache("sqlite")


def test_redis_backend_needs_a_url() -> None:
    with pytest.raises(ConfigError, match=r"cache\.redis_url"):
        make_cache("redis", None)


def test_redis_lock_managers_from_the_factory_contend(redis_url: str, redis_prefix: str) -> None:
    a = make_lock_manager("redis", redis_url, redis_prefix)
    b = make_lock_manager("redis", redis_url, redis_prefix)
    assert isinstance(a, RedisLockManager) and isinstance(a, LockManager)
    token = a.acquire("beat", 10)
    assert token is not None
    assert b.acquire("beat", 10) is None
    assert b.release("beat", token) is True, "any manager holding the token may release"


def test_memory_lock_manager_shares_the_given_cache() -> None:
    cache = MemoryCache()
    locks = make_lock_manager("memory", memory_cache=cache)
    assert isinstance(locks, MemoryLockManager)
    token = locks.acquire("feed", 30)
    assert token is not None
    assert cache.get("lock:feed") == token.encode()
    assert MemoryLockManager(cache).acquire("feed", 30) is None


def test_db_lock_manager_from_the_factory(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        LockRow.__table__.create(engine)
        a, b = make_lock_manager("db", engine=engine), make_lock_manager("db", engine=engine)
        assert isinstance(a, DbLockManager) and isinstance(a, LockManager)
        token = a.acquire("reconcile", 60)
        assert token is not None
        assert b.acquire("reconcile", 60) is None
        assert a.release("reconcile", token) is True
    finally:
        engine.dispose()


def test_db_lock_manager_needs_an_engine() -> None:
    with pytest.raises(ValueError, match="engine"):
        make_lock_manager("db")


def test_unknown_lock_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="'zookeeper'"):
        make_lock_manager("zookeeper")
