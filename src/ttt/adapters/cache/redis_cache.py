"""Redis implementation of the `Cache` port (services.md §5, distributed runtime).

Every redis-py call goes through `_call`, which turns connection and timeout failures into
`CacheUnavailable`: a caller that cannot reach the cache must know it knows nothing and hold, never
receive a default that looks like data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ttt.adapters.cache._common import (
    DEFAULT_PREFIX,
    check_count,
    check_maxlen,
    encode_fields,
    encode_value,
    ttl_ms,
)
from ttt.adapters.cache.errors import CacheError, CacheUnavailable
from ttt.ports import StreamEntry

T = TypeVar("T")

if TYPE_CHECKING:
    RedisClient = redis.Redis[bytes]
else:
    RedisClient = redis.Redis

SOCKET_TIMEOUT_S = 5.0


def make_redis_client(url: str, password: str | None = None) -> RedisClient:
    """A client that fails within seconds instead of hanging; bytes in, bytes out.

    redis-py's default retry backs off for up to ~10 s per attempt, which would stall a reconciliation
    cycle long after the answer is known to be "unavailable"; two quick retries cover a dropped socket.
    A password embedded in the URL wins over `password` (redis-py gives URL options precedence).
    """
    try:
        return redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            decode_responses=False,
        )
    except ValueError as exc:
        raise CacheError(f"cache.redis_url is not a valid Redis URL: {exc}") from None


def describe_client(client: RedisClient) -> str:
    """host:port/db for messages, never the password."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix:{kw['path']}/{kw.get('db', 0)}"
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"


@contextmanager
def translate_errors(client: RedisClient, what: str) -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        where = describe_client(client)
        raise CacheUnavailable(f"Redis at {where} unavailable during {what}: {exc}") from exc
    except redis.RedisError as exc:
        raise CacheError(f"Redis at {describe_client(client)} refused {what}: {exc}") from exc


def _decode_entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEntry]:
    return [
        (entry_id.decode(), {k.decode("utf-8"): v.decode("utf-8") for k, v in fields.items()})
        for entry_id, fields in raw
    ]


class RedisCache:
    """Plain keys and Redis streams under `prefix`; the client must not decode responses."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"cache key must be a non-empty str, got {key!r}")
        return self.prefix + key

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with translate_errors(self.client, what):
            return fn(*args, **kwargs)

    def get(self, key: str) -> bytes | None:
        result: bytes | None = self._call(f"GET {key}", self.client.get, self._k(key))
        return result

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        full = [self._k(k) for k in keys]
        result: list[bytes | None] = self._call(f"MGET of {len(full)} keys", self.client.mget, full)
        return list(result)

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None, *, nx: bool = False) -> bool:
        data = encode_value(value, key)
        px = ttl_ms(ttl_s, f"key {key!r}")
        result = self._call(f"SET {key}", self.client.set, self._k(key), data, px=px, nx=nx)
        return bool(result)

    def set_many(self, items: Mapping[str, bytes | str], ttl_s: float | None = None) -> None:
        if not items:
            return
        px = ttl_ms(ttl_s, "set_many")
        encoded = {self._k(k): encode_value(v, k) for k, v in items.items()}

        def run() -> None:
            # MULTI/EXEC: one round trip, and readers never see half of the batch.
            with self.client.pipeline(transaction=True) as pipe:
                if px is None:
                    pipe.mset(encoded)  # type: ignore[arg-type]
                else:
                    for full_key, data in encoded.items():
                        pipe.set(full_key, data, px=px)
                pipe.execute()

        self._call(f"SET of {len(encoded)} keys", run)

    def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        result: int = self._call("DEL", self.client.delete, *[self._k(k) for k in keys])
        return int(result)

    def ttl(self, key: str) -> float | None:
        ms: int = self._call(f"PTTL {key}", self.client.pttl, self._k(key))
        # -2: no such key; -1: no expiry.
        return None if ms < 0 else ms / 1000.0

    def xadd(self, stream: str, fields: Mapping[str, str | int | float], maxlen: int) -> str:
        check_maxlen(stream, maxlen)
        encoded = encode_fields(stream, fields)
        entry_id: bytes = self._call(
            f"XADD {stream}",
            self.client.xadd,
            self._k(stream),
            encoded,
            maxlen=maxlen,
            approximate=True,
        )
        return entry_id.decode()

    def xrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        check_count(count)
        if count == 0:
            return []
        raw = self._call(f"XRANGE {stream}", self.client.xrange, self._k(stream), count=count)
        return _decode_entries(raw)

    def xrevrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        check_count(count)
        if count == 0:
            return []
        raw = self._call(f"XREVRANGE {stream}", self.client.xrevrange, self._k(stream), count=count)
        return _decode_entries(raw)

    def xlen(self, stream: str) -> int:
        result: int = self._call(f"XLEN {stream}", self.client.xlen, self._k(stream))
        return int(result)

    def ping(self) -> bool:
        """A health probe: False when Redis cannot be reached or refuses, rather than an exception."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
