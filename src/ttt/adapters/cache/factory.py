"""Build the cache and lock manager a runtime asked for by configuration (services.md §5, §11.2)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ttt.adapters.cache._common import DEFAULT_PREFIX
from ttt.adapters.cache.locks import MemoryLockManager, RedisLockManager
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
from ttt.errors import ConfigError
from ttt.ports import Cache, Clock, LockManager

CACHE_BACKENDS = ("memory", "redis")
LOCK_BACKENDS = ("memory", "redis", "db")


def _redis_url(redis_url: str | None, backend_key: str) -> str:
    if not redis_url:
        raise ConfigError([f"cache.redis_url: required when {backend_key} is redis"])
    return redis_url


def make_cache(
    backend: str, redis_url: str | None = None, prefix: str = DEFAULT_PREFIX, password: str | None = None
) -> Cache:
    """`memory` or `redis`; the Redis client is created lazily by redis-py, so this does no I/O."""
    if backend == "memory":
        return MemoryCache(prefix)
    if backend == "redis":
        return RedisCache(make_redis_client(_redis_url(redis_url, "cache.backend"), password), prefix)
    raise ConfigError([f"cache.backend: must be one of {', '.join(CACHE_BACKENDS)}, got {backend!r}"])


def make_lock_manager(
    backend: str,
    redis_url: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    password: str | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    memory_cache: MemoryCache | None = None,
) -> LockManager:
    """`redis`, `db` (the `locks` table through `engine`) or `memory` (one process only).

    Per portfolio.md §16.1 production uses `redis` when `cache.backend` is redis and `db` otherwise: CLI
    processes next to `3t run` must see its locks, which an in-process store cannot offer. `memory`
    is for tests and single-process tools; pass the runtime's `MemoryCache` to keep locks beside its keys.
    `clock` is the db backend's time source for expiry (default: wall clock).
    """
    if backend == "redis":
        client = make_redis_client(_redis_url(redis_url, "the lock backend"), password)
        return RedisLockManager(client, prefix)
    if backend == "memory":
        return MemoryLockManager(memory_cache if memory_cache is not None else MemoryCache(prefix))
    if backend == "db":
        if engine is None:
            raise ValueError("make_lock_manager('db') needs the SQLAlchemy engine")
        from ttt.adapters.db.locks import DbLockManager

        return DbLockManager(engine, clock)
    raise ConfigError([f"lock backend must be one of {', '.join(LOCK_BACKENDS)}, got {backend!r}"])
