"""Protocols the services depend on.

Services receive these as arguments; runtimes choose the implementation (embedded: in-process cache, DB
locks, SQLite; distributed: Redis, MariaDB/PostgreSQL). Nothing in here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


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


# --- Providence persistence -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunMember:
    """What membership sync reads for one unended run of a shard (providence.md §18.3)."""

    run_id: int
    exit_run: bool
    start_time: float
    run_state: str | None


@dataclass(frozen=True)
class NewRun:
    """A run the supervisor creates; `apex_*` set only for runs seeded from a survivors file."""

    symbol: str
    shard: int
    seed: int | None
    start_time: float
    start_balance: float
    max_duration: int
    host: str
    ann_params: Mapping[str, Any]
    run_state: Mapping[str, Any]
    apex_file: str | None = None
    apex_hash: str | None = None
    apex_rank: int | None = None


class StrictJsonText(str):
    """JSON text that a strict encoder made (RFC 8259: no NaN or infinities), so a writer may store it
    without parsing it again; plain `str` states are parsed before they are stored."""

    __slots__ = ()


@dataclass(frozen=True)
class RunProgress:
    """A periodic or trade write of one run (providence.md §9.2)."""

    run_id: int
    run_state: str
    position_direction: int
    iteration_count: int
    update_time: float
    live_pnl: float


@dataclass(frozen=True)
class RunEnd:
    """An end record (providence.md §8.1).

    For `invalid_state` the balance, PnL and counters are None (the stored values stay as they were) and
    `run_state` is the raw text that failed to load.
    """

    run_id: int
    end_time: float
    end_reason: str
    end_balance: float | None
    live_pnl: float | None
    run_state: str
    position_direction: int | None
    iteration_count: int | None


@runtime_checkable
class RunStore(Protocol):
    """The runs table as Providence needs it; each write method is one transaction."""

    def active_counts(self) -> dict[str, int]:
        """Active runs (end_time NULL and exit_run false) per symbol."""
        ...

    def active_shard_counts(self, symbol: str) -> dict[int, int]:
        """Active runs per shard index of one symbol."""
        ...

    def shards_with_members(self) -> dict[str, list[int]]:
        """Shard indexes that hold at least one unended run, per symbol, ascending."""
        ...

    def insert_runs(self, runs: Sequence[NewRun]) -> list[int]:
        """Insert runs, and the apex burns of those that carry one, in one transaction; returns ids."""
        ...

    def burned_apex_hashes(self, apex_file: str) -> set[str]: ...

    def members(self, symbol: str, shard: int, *, with_state: bool = True) -> list[RunMember]:
        """Unended runs of one shard, ascending id; without `with_state` their `run_state` is None."""
        ...

    def member_changes(
        self, symbol: str, shard: int, known_max_id: int, since: float | None
    ) -> tuple[int, list[RunMember]]:
        """(number of unended runs of the shard, those of them that are flagged, have an id above
        `known_max_id` or started at or after `since`), without states: a cheap membership check per tick."""
        ...

    def member_states(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Stored `run_state` text of the given runs (joins and cold loads, §9.4)."""
        ...

    def write_shard_tick(self, progress: Sequence[RunProgress], ends: Sequence[RunEnd]) -> None:
        """One transaction, one multi-row statement per kind."""
        ...

    def purge(self, now: float, flagged_after_s: float) -> int: ...


@runtime_checkable
class BarStore(Protocol):
    """Stored OHLCV bars, read by the tick inputs (providence.md §11–§13)."""

    def bars(
        self, symbol: str, timeframe: str, since_open_ms: int, until_open_ms: int
    ) -> Sequence[tuple[int, float, float, float, float]]:
        """(ts_open ms, open, high, low, close) with since ≤ ts_open ≤ until, ascending."""
        ...


# --- Exchange adapters (services.md §7.1) -------------------------------------------------------------

from ttt.domain.orders import (  # noqa: E402
    Bar,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    PlaceResult,
    ProductMeta,
)


@runtime_checkable
class ExchangeAdapter(Protocol):
    """What the services need from a venue; paper and Hyperliquid implement the same shapes so that the
    gateway, ingestion and the observer never branch on the venue."""

    def load_products(self) -> list[ProductMeta]: ...

    def fetch_account(self, wallet: str, dexes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Raw `clearinghouseState` per requested dex (key `""` is the main dex); a dex that failed is
        absent, so ingestion can mark the snapshot partial."""
        ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[OpenOrder]: ...

    def place_order(self, request: OrderRequest) -> PlaceResult: ...

    def cancel(self, symbol: str, cloids: Sequence[str] = (), oids: Sequence[int] = ()) -> dict[str, str]:
        """Per order id (cloid, or oid as text): `success` or the exchange's error text."""
        ...

    def order_status(self, cloid: str | None = None, oid: int | None = None) -> OrderStatus: ...

    def fetch_fills(self, since_ms: int) -> list[Fill]: ...

    def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[Bar]: ...

    def fetch_mids(self) -> dict[str, Any]:
        """{api coin: mid} as decimals."""
        ...

    def fetch_funding(self) -> dict[str, Any]:
        """{api coin: hourly funding rate} as decimals."""
        ...

    def set_isolated_leverage(self, symbol: str, leverage: int) -> str | None:
        """None when accepted, otherwise the error text."""
        ...
