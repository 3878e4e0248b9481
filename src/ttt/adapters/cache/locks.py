"""Owner-token locks with TTL (portfolio.md §16) on Redis and in process.

Release and extend compare the stored token and act in one indivisible step (a Lua script on Redis, the
cache mutex in process); a separate GET followed by DEL could delete a lock another owner took over in
between. There is deliberately no way to delete a lock without its token.
"""

from __future__ import annotations

import secrets

from ttt.adapters.cache._common import DEFAULT_PREFIX, check_lock_name, lock_ttl_ms
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.cache.redis_cache import RedisClient, translate_errors

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def new_token() -> str:
    """32 hex characters from the OS CSPRNG (portfolio.md §16.1)."""
    return secrets.token_hex(16)


class RedisLockManager:
    """Locks at `<prefix>lock:{name}`: SET NX PX to acquire, scripts to release and extend.

    A Redis failure raises `CacheUnavailable`; a holder that cannot extend must treat that exactly like
    `extend` returning False and stop mutating shared state.
    """

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    def key(self, name: str) -> str:
        check_lock_name(name)
        return f"{self.prefix}lock:{name}"

    def acquire(self, name: str, ttl_s: float) -> str | None:
        key = self.key(name)
        px = lock_ttl_ms(name, ttl_s)
        token = new_token()
        with translate_errors(self.client, f"acquire of lock {name!r}"):
            ok = self.client.set(key, token, nx=True, px=px)
        return token if ok else None

    def extend(self, name: str, token: str, ttl_s: float) -> bool:
        key = self.key(name)
        px = lock_ttl_ms(name, ttl_s)
        with translate_errors(self.client, f"extend of lock {name!r}"):
            return bool(self._extend(keys=[key], args=[token, px]))

    def release(self, name: str, token: str) -> bool:
        key = self.key(name)
        with translate_errors(self.client, f"release of lock {name!r}"):
            return bool(self._release(keys=[key], args=[token]))


class MemoryLockManager:
    """The same semantics inside one process, stored in a `MemoryCache` under `lock:{name}`.

    Managers sharing one cache contend with each other, as separate Redis clients do; the cache's
    injectable monotonic clock drives expiry.
    """

    def __init__(self, cache: MemoryCache | None = None) -> None:
        self.cache = cache if cache is not None else MemoryCache()

    def acquire(self, name: str, ttl_s: float) -> str | None:
        check_lock_name(name)
        lock_ttl_ms(name, ttl_s)
        token = new_token()
        return token if self.cache.set(f"lock:{name}", token, ttl_s, nx=True) else None

    def extend(self, name: str, token: str, ttl_s: float) -> bool:
        check_lock_name(name)
        lock_ttl_ms(name, ttl_s)
        return self.cache.expire_if_equals(f"lock:{name}", token, ttl_s)

    def release(self, name: str, token: str) -> bool:
        check_lock_name(name)
        return self.cache.delete_if_equals(f"lock:{name}", token)
