"""Protocols the services depend on.

Services receive these as arguments; runtimes choose the implementation (embedded: in-process cache, DB
locks, SQLite; distributed: Redis, MariaDB/PostgreSQL). Nothing in here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Every time read goes through a Clock, so replay and tests can drive time (R1)."""

    def now(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...


StreamEntry = tuple[str, dict[str, str]]


@runtime_checkable
class Cache(Protocol):
    """Key/value with TTL plus bounded streams (services.md §5).

    Keys given to and returned from the cache are *unprefixed*; the implementation applies
    `cache.prefix`. Values are bytes; callers encode JSON themselves.
    """

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None, *, nx: bool = False) -> bool:
        """Store a value; with `nx`, only when absent. Returns whether it was written."""
        ...

    def set_many(self, items: Mapping[str, bytes | str], ttl_s: float | None = None) -> None:
        """One round trip for many keys (pipelined on Redis)."""
        ...

    def delete(self, *keys: str) -> int: ...

    def ttl(self, key: str) -> float | None:
        """Remaining seconds, None when the key is missing or has no expiry."""
        ...

    def xadd(self, stream: str, fields: Mapping[str, str | int | float], maxlen: int) -> str:
        """Append to a stream trimmed to about `maxlen` entries; returns the entry id `<ms>-<seq>`."""
        ...

    def xrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        """Oldest first."""
        ...

    def xrevrange(self, stream: str, count: int | None = None) -> list[StreamEntry]:
        """Newest first."""
        ...

    def xlen(self, stream: str) -> int: ...

    def ping(self) -> bool: ...


@runtime_checkable
class LockManager(Protocol):
    """Owner-token locks with TTL (portfolio.md §16): no lock is ever deleted without its token."""

    def acquire(self, name: str, ttl_s: float) -> str | None: ...

    def extend(self, name: str, token: str, ttl_s: float) -> bool: ...

    def release(self, name: str, token: str) -> bool: ...
