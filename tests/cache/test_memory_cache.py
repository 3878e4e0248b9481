"""MemoryCache behaviour the contract suite cannot drive: injected clocks, id rules, sweeping, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.cache.cache_support import FakeMonotonic
from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.cache.memory import MemoryCache


class FakeWall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_stream_ids_are_ms_and_sequence_and_never_go_back() -> None:
    wall = FakeWall(1_700_000_000.0)
    cache = MemoryCache(wall=wall)
    assert cache.xadd("s", {"a": "1"}, 10) == "1700000000000-0"
    assert cache.xadd("s", {"a": "2"}, 10) == "1700000000000-1"
    wall.t = 1_699_999_999.0  # the wall clock steps back
    assert cache.xadd("s", {"a": "3"}, 10) == "1700000000000-2"
    wall.t = 1_700_000_000.5
    assert cache.xadd("s", {"a": "4"}, 10) == "1700000000500-0"
    assert cache.xadd("other", {"a": "1"}, 10) == "1700000000500-0", "sequences are per stream"


def test_trimmed_stream_keeps_its_last_id() -> None:
    wall = FakeWall(5.0)
    cache = MemoryCache(wall=wall)
    for _ in range(5):
        cache.xadd("s", {"a": "1"}, 2)
    assert [i for i, _ in cache.xrange("s")] == ["5000-3", "5000-4"]
    assert cache.xadd("s", {"a": "1"}, 2) == "5000-5"


def test_expiry_follows_the_monotonic_clock_not_the_wall_clock() -> None:
    mono, wall = FakeMonotonic(), FakeWall(1_000.0)
    cache = MemoryCache(monotonic=mono, wall=wall)
    cache.set("k", "v", 10)
    wall.t += 3600
    assert cache.get("k") == b"v"
    mono.advance(9.9)
    assert cache.get("k") == b"v"
    assert cache.ttl("k") == pytest.approx(0.1)
    mono.advance(0.1)
    assert cache.get("k") is None


def test_expired_keys_are_swept_without_being_read() -> None:
    """Per-minute keys (ttt:weight:...) are never read again; they must not accumulate forever."""
    mono = FakeMonotonic()
    cache = MemoryCache(monotonic=mono)
    for minute in range(100):
        cache.set(f"weight:BTC:{minute}", "0.1", 120)
    mono.advance(121)
    cache.set("weight:BTC:100", "0.2", 120)
    assert len(cache._store) == 1


def test_prefixes_separate_nothing_visible_but_are_applied() -> None:
    cache = MemoryCache(prefix="x:")
    cache.set("k", "v")
    assert list(cache._store) == ["x:k"]
    assert cache.get("k") == b"v"


def _run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def wrapped(i: int) -> None:
        try:
            start.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_threads_appending_to_one_stream_get_unique_ordered_ids() -> None:
    cache = MemoryCache()
    per_thread = 300

    def work(i: int) -> None:
        for n in range(per_thread):
            cache.xadd("stream:events", {"thread": i, "n": n}, 100_000)

    _run_threads(8, work)
    entries = cache.xrange("stream:events")
    assert len(entries) == cache.xlen("stream:events") == 8 * per_thread
    ids = [tuple(int(p) for p in i.split("-")) for i, _ in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for i in range(8):
        mine = [int(f["n"]) for _, f in entries if f["thread"] == str(i)]
        assert mine == list(range(per_thread)), "each thread's entries stay in its own order"


def test_threads_racing_set_nx_have_exactly_one_winner() -> None:
    cache = MemoryCache()
    for round_no in range(50):
        wins: list[int] = []

        def work(i: int, key: str = f"weight:BTC:{round_no}", wins: list[int] = wins) -> None:
            if cache.set(key, str(i), 120, nx=True):
                wins.append(i)

        _run_threads(6, work)
        assert len(wins) == 1
        assert cache.get(f"weight:BTC:{round_no}") == str(wins[0]).encode()


def test_threads_contending_for_one_lock_never_overlap() -> None:
    cache = MemoryCache()
    managers = [MemoryLockManager(cache) for _ in range(8)]
    guard = threading.Lock()
    holders = 0
    max_holders = 0
    acquired = [0] * len(managers)
    failed_releases: list[int] = []

    def work(i: int) -> None:
        nonlocal holders, max_holders
        mgr = managers[i]
        for _ in range(150):
            token = mgr.acquire("reconcile", 60)
            if token is None:
                continue
            with guard:
                holders += 1
                max_holders = max(max_holders, holders)
            acquired[i] += 1
            time.sleep(0.0002)  # hold long enough for the other threads to try
            assert mgr.extend("reconcile", token, 60)
            with guard:
                holders -= 1
            if not mgr.release("reconcile", token):
                failed_releases.append(i)

    _run_threads(len(managers), work)
    assert max_holders == 1
    assert not failed_releases
    assert sum(acquired) > 0
    assert cache.get("lock:reconcile") is None
