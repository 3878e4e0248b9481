"""Server-Sent Events for the dashboard (services.md §9): new entries of the cache streams (§5) as
`price`, `balance`, `order`, `alert` and `cycle` messages.

The streams are live-update channels only and clients fall back to polling the JSON endpoints every
`dashboard.refresh_s`, so this stream never has to be complete: a cache failure ends it with
`event: error` instead of retrying, and a gap longer than `backlog` entries is cut to the newest ones.

The Cache port reads streams only newest-first with a count (no blocking read, no start id), so each poll
reads the newest few entries and widens the window until it reaches an entry already sent.

Event ids are `<stream>:<entry id>`. A reconnecting client sends back only the last one, which places
one stream exactly; entry ids are millisecond timestamps of one clock (the Redis server, or the process
for the memory cache) and each poll is sent in id order, so the other streams resume from that
millisecond: nothing is lost, and only an entry of the very same millisecond can repeat.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from anyio import sleep, to_thread

from ttt.adapters.market.feed import PRICES_STREAM
from ttt.ports import Cache, StreamEntry
from ttt.services.gateway.service import ORDERS_STREAM
from ttt.services.portfolio.alerts import EVENTS_STREAM
from ttt.services.portfolio.ingestion import BALANCE_STREAM

log = logging.getLogger("ttt.dashboard.events")

StreamId = tuple[int, int]


@dataclass(frozen=True)
class Source:
    name: str
    stream: str


SOURCES = (
    Source("prices", PRICES_STREAM),
    Source("balance", BALANCE_STREAM),
    Source("orders", ORDERS_STREAM),
    Source("events", EVENTS_STREAM),
)
_BY_NAME = {s.name: s for s in SOURCES}
# The kinds the reconciliation cycle audits and publishes once the audit row is committed (reconcile.py).
CYCLE_KINDS = frozenset({"cycle.start", "cycle.end"})
ALERT_SEVERITIES = frozenset({"warning", "critical"})
_FIRST_READ = 16
_ORIGIN: StreamId = (0, 0)


def parse_id(text: str) -> StreamId | None:
    ms, sep, seq = text.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def event_name(source: str, fields: Mapping[str, str]) -> str | None:
    """The SSE event of one entry; None for an events-stream entry that is neither a cycle nor an alert."""
    if source == "prices":
        return "price"
    if source == "balance":
        return "balance"
    if source == "orders":
        return "order"
    if fields.get("kind") in CYCLE_KINDS:
        return "cycle"
    if fields.get("severity") in ALERT_SEVERITIES:
        return "alert"
    return None


def message(event: str, event_id: str | None, data: Mapping[str, object]) -> str:
    """One SSE message; json.dumps escapes newlines, so the data stays on one line."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def entry_data(fields: Mapping[str, str]) -> dict[str, str | None]:
    """The writers store None as an empty string; the client gets null for it."""
    return {k: (v if v != "" else None) for k, v in fields.items()}


def parse_last_event_id(header: str | None) -> tuple[str, StreamId] | None:
    """`<stream>:<entry id>` as this module sends it; anything else is None (start with new entries)."""
    if not header:
        return None
    name, _, raw = header.strip().partition(":")
    entry = parse_id(raw)
    if name not in _BY_NAME or entry is None:
        return None
    return name, entry


def read_after(cache: Cache, stream: str, after: StreamId, limit: int) -> list[tuple[StreamId, StreamEntry]]:
    """Entries with an id above `after`, oldest first, at most the newest `limit` of them."""
    count = min(_FIRST_READ, limit)
    while True:
        batch = cache.xrevrange(stream, count)
        newer: list[tuple[StreamId, StreamEntry]] = []
        reached = False
        for entry in batch:
            entry_id = parse_id(entry[0])
            if entry_id is None:
                continue
            if entry_id <= after:
                reached = True
                break
            newer.append((entry_id, entry))
        if reached or len(batch) < count or count >= limit:
            newer.reverse()
            return newer
        count = min(count * 4, limit)


def last_id(cache: Cache, stream: str) -> StreamId:
    newest = cache.xrevrange(stream, 1)
    parsed = parse_id(newest[0][0]) if newest else None
    return parsed if parsed is not None else _ORIGIN


class DashboardEvents:
    """The `/api/v1/events` stream over one Cache; `active` counts the open streams.

    uvicorn's graceful shutdown waits for every open response, and an event stream never ends on its
    own: whoever stops the server calls `close()` first, which ends every stream within one poll.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        refresh_s: float = 5.0,
        poll_s: float = 0.5,
        keepalive_s: float = 15.0,
        backlog: int = 1000,
    ) -> None:
        if poll_s <= 0 or keepalive_s <= 0 or backlog < 1 or refresh_s <= 0:
            raise ValueError("poll_s, keepalive_s and refresh_s must be > 0 and backlog ≥ 1")
        self.cache = cache
        self.refresh_s = refresh_s
        self.poll_s = poll_s
        self.keepalive_s = keepalive_s
        self.backlog = backlog
        self.active = 0
        self._closed = threading.Event()

    def close(self) -> None:
        """End every open stream at its next poll, and any later one right after its `retry` line."""
        self._closed.set()

    def start_cursors(self, last_event_id: str | None) -> dict[str, StreamId]:
        """New entries only, or resume after a known Last-Event-ID (see the module docstring)."""
        cursors = {s.name: last_id(self.cache, s.stream) for s in SOURCES}
        resume = parse_last_event_id(last_event_id)
        if resume is None:
            return cursors
        name, given = resume
        for source in SOURCES:
            # Never past the newest entry: an id from before a Redis flush must not hide new entries.
            start = given if source.name == name else (given[0], -1)
            cursors[source.name] = min(start, cursors[source.name])
        return cursors

    def poll(self, cursors: Mapping[str, StreamId]) -> tuple[list[str], dict[str, StreamId]]:
        """The messages of every entry past the cursors, in id order, and the advanced cursors."""
        found: list[tuple[StreamId, int, str, StreamEntry]] = []
        moved = dict(cursors)
        for index, source in enumerate(SOURCES):
            entries = read_after(self.cache, source.stream, cursors[source.name], self.backlog)
            if entries:
                moved[source.name] = entries[-1][0]
            found.extend((entry_id, index, source.name, entry) for entry_id, entry in entries)
        found.sort(key=lambda item: (item[0], item[1]))
        out: list[str] = []
        for _, _, name, (raw_id, fields) in found:
            event = event_name(name, fields)
            if event is not None:
                out.append(message(event, f"{name}:{raw_id}", entry_data(fields)))
        return out, moved

    def _failure(self, exc: Exception) -> str:
        log.warning("dashboard event stream ended, cache failed: %s", exc)
        text = f"live updates stopped, cache failed ({type(exc).__name__}: {exc}); poll the JSON endpoints"
        return message("error", None, {"error": "cache_unavailable", "message": text})

    async def stream(
        self, last_event_id: str | None, is_disconnected: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[str]:
        """The SSE body until the client goes away; blocking cache reads run in worker threads."""
        self.active += 1
        try:
            failure: str | None = None
            try:
                cursors = await to_thread.run_sync(self.start_cursors, last_event_id)
            except Exception as exc:  # the client falls back to polling; never a traceback
                failure = self._failure(exc)
            # Sent once the start is fixed, so whatever is written after the client sees it is sent.
            yield f"retry: {round(self.refresh_s * 1000)}\n\n"
            if failure is not None:
                yield failure
                return
            last_write = time.monotonic()
            while not self._closed.is_set() and not await is_disconnected():
                try:
                    out, cursors = await to_thread.run_sync(self.poll, cursors)
                except Exception as exc:
                    yield self._failure(exc)
                    return
                now = time.monotonic()
                if out:
                    yield "".join(out)
                    last_write = now
                elif now - last_write >= self.keepalive_s:
                    yield ": keep-alive\n\n"
                    last_write = now
                await sleep(self.poll_s)
        finally:
            self.active -= 1
