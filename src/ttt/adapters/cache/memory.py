"""In-process implementation of the `Cache` port for the embedded runtime (services.md §5).

Expiry runs on a monotonic clock so a wall-clock jump can neither revive nor kill keys early; both clocks
are injectable so tests drive time instead of sleeping. One mutex guards everything: the embedded runtime
calls in from a thread pool, and the operations are far too short for finer locking to pay off.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ttt.adapters.cache._common import (
    DEFAULT_PREFIX,
    check_count,
    check_maxlen,
    encode_fields,
    encode_value,
    ttl_ms,
)
from ttt.adapters.cache.errors import CacheError
from ttt.ports import StreamEntry

_SWEEP_INTERVAL_S = 30.0

StreamId = tuple[int, int]


@dataclass
class _Value:
    data: bytes
    expires_at: float | None


@dataclass
class _Stream:
    entries: deque[tuple[StreamId, dict[str, str]]] = field(default_factory=deque)
    last_id: StreamId = (0, 0)


def _format_id(entry_id: StreamId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


class MemoryCache:
    """Dict with TTLs plus streams as exactly bounded ring buffers.

    Expired keys are dropped when touched and, so that per-minute keys do not pile up in a long-running
    process, by a full sweep at most every 30 s of monotonic time during writes.
    """

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self._monotonic = monotonic
        self._wall = wall
        self._mutex = threading.RLock()
        self._store: dict[str, _Value | _Stream] = {}
        self._last_sweep = monotonic()

    # -- internals (caller holds the mutex) --------------------------------------------------------

    def _k(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"cache key must be a non-empty str, got {key!r}")
        return self.prefix + key

    def _entry(self, full_key: str, now: float) -> _Value | _Stream | None:
        entry = self._store.get(full_key)
        if isinstance(entry, _Value) and entry.expires_at is not None and now >= entry.expires_at:
            del self._store[full_key]
            return None
        return entry

    def _value(self, full_key: str, now: float) -> _Value | None:
        entry = self._entry(full_key, now)
        if isinstance(entry, _Stream):
            raise CacheError(f"cache key {full_key!r} holds a stream, not a value")
        return entry

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < _SWEEP_INTERVAL_S:
            return
        self._last_sweep = now
        expired = [
            k
            for k, e in self._store.items()
            if isinstance(e, _Value) and e.expires_at is not None and now >= e.expires_at
        ]
        for k in expired:
            del self._store[k]

    def _put(self, full_key: str, data: bytes, ttl_s: float | None, now: float) -> None:
        if isinstance(self._store.get(full_key), _Stream):
            raise CacheError(f"cache key {full_key!r} holds a stream, not a value")
        self._store[full_key] = _Value(data, None if ttl_s is None else now + ttl_s)

    # -- Cache port ---------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._mutex:
            value = self._value(self._k(key), self._monotonic())
            return None if value is None else value.data

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._mutex:
            now = self._monotonic()
            out: list[bytes | None] = []
            for key in keys:
                value = self._value(self._k(key), now)
                out.append(None if value is None else value.data)
            return out

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None, *, nx: bool = False) -> bool:
        full_key = self._k(key)
        data = encode_value(value, key)
        ttl_ms(ttl_s, f"key {key!r}")
        with self._mutex:
            now = self._monotonic()
            self._maybe_sweep(now)
            if nx and self._entry(full_key, now) is not None:
                return False
            self._put(full_key, data, ttl_s, now)
            return True

    def set_many(self, items: Mapping[str, bytes | str], ttl_s: float | None = None) -> None:
        encoded = {self._k(k): encode_value(v, k) for k, v in items.items()}
        ttl_ms(ttl_s, "set_many")
        with self._mutex:
            now = self._monotonic()
            self._maybe_sweep(now)
            clash = [k for k in encoded if isinstance(self._store.get(k), _Stream)]
            if clash:
                raise CacheError(f"cache keys {clash!r} hold streams, not values")
            for full_key, data in encoded.items():
                self._put(full_key, data, ttl_s, now)

    def delete(self, *keys: str) -> int:
        with self._mutex:
            now = self._monotonic()
            deleted = 0
            for full_key in {self._k(k) for k in keys}:
                if self._entry(full_key, now) is not None:
                    del self._store[full_key]
                    deleted += 1
            return deleted

    def ttl(self, key: str) -> float | None:
        with self._mutex:
            now = self._monotonic()
            entry = self._entry(self._k(key), now)
            if not isinstance(entry, _Value) or entry.expires_at is None:
                return None
            return entry.expires_at - now

    def xadd(self, stream: str, fields: Mapping[str, str | int | float], maxlen: int) -> str:
        full_key = self._k(stream)
        check_maxlen(stream, maxlen)
        encoded = encode_fields(stream, fields)
        with self._mutex:
            entry = self._entry(full_key, self._monotonic())
            if isinstance(entry, _Value):
                raise CacheError(f"cache key {full_key!r} holds a value, not a stream")
            if entry is None:
                entry = _Stream()
                self._store[full_key] = entry
            ms = int(self._wall() * 1000)
            last_ms, last_seq = entry.last_id
            # Like Redis, ids never go backwards even when the wall clock does.
            new_id = (last_ms, last_seq + 1) if ms <= last_ms else (ms, 0)
            entry.last_id = new_id
            entry.entries.append((new_id, encoded))
            while len(entry.entries) > maxlen:
                entry.entries.popleft()
            return _format_id(new_id)

    def _stream(self, stream: str) -> _Stream | None:
        entry = self._entry(self._k(stream), self._monotonic())
        if isinstance(entry, _Value):
            raise CacheError(f"cache key {self._k(stream)!r} holds a value, not a stream")
        return entry

    def xrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        check_count(count)
        with self._mutex:
            entry = self._stream(stream)
            if entry is None:
                return []
            items = list(entry.entries) if count is None else list(entry.entries)[:count]
            return [(_format_id(i), dict(f)) for i, f in items]

    def xrevrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        check_count(count)
        with self._mutex:
            entry = self._stream(stream)
            if entry is None:
                return []
            items = list(reversed(entry.entries))
            if count is not None:
                items = items[:count]
            return [(_format_id(i), dict(f)) for i, f in items]

    def xlen(self, stream: str) -> int:
        with self._mutex:
            entry = self._stream(stream)
            return 0 if entry is None else len(entry.entries)

    def ping(self) -> bool:
        return True

    # -- atomic helpers for MemoryLockManager (mirror the Redis Lua scripts) ------------------------

    def delete_if_equals(self, key: str, expected: bytes | str) -> bool:
        """Delete `key` only while it holds `expected`; the compare and the delete are one step."""
        full_key = self._k(key)
        want = encode_value(expected, key)
        with self._mutex:
            value = self._value(full_key, self._monotonic())
            if value is None or value.data != want:
                return False
            del self._store[full_key]
            return True

    def expire_if_equals(self, key: str, expected: bytes | str, ttl_s: float) -> bool:
        """Reset the expiry of `key` only while it holds `expected` (and has not expired)."""
        full_key = self._k(key)
        want = encode_value(expected, key)
        if ttl_ms(ttl_s, f"key {key!r}") is None:
            raise ValueError(f"expire_if_equals for key {key!r} needs a ttl_s")
        with self._mutex:
            now = self._monotonic()
            value = self._value(full_key, now)
            if value is None or value.data != want:
                return False
            value.expires_at = now + ttl_s
            return True
