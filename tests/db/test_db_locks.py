"""DbLockManager: portfolio.md §21.14 LK-01…LK-04 on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.db.conftest import FakeClock
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.ports import LockManager


@pytest.fixture
def second_engine(engine: Engine) -> Iterator[Engine]:
    """Another engine (its own pool and connections) on the same database: a second "process"."""
    other = make_engine(engine.url.render_as_string(hide_password=False), pool_size=5)
    yield other
    other.dispose()


def test_lk01_second_acquirer_gets_none(engine: Engine) -> None:
    clock = FakeClock()
    a, b = DbLockManager(engine, clock), DbLockManager(engine, clock)
    assert isinstance(a, LockManager)
    token = a.acquire("reconcile", 600)
    assert token is not None and re.fullmatch(r"[0-9a-f]{32}", token)
    assert b.acquire("reconcile", 600) is None
    assert a.acquire("reconcile", 600) is None  # not re-entrant
    assert b.acquire("take_profit", 60) is not None  # other names are independent


def test_lk02_stale_owner_cannot_release_after_takeover(engine: Engine) -> None:
    clock = FakeClock()
    a, b = DbLockManager(engine, clock), DbLockManager(engine, clock)
    token_a = a.acquire("reconcile", 10)
    assert token_a is not None
    clock.advance(9.9)
    assert b.acquire("reconcile", 10) is None  # not yet expired
    clock.advance(0.2)
    token_b = b.acquire("reconcile", 10)
    assert token_b is not None and token_b != token_a
    assert a.release("reconcile", token_a) is False
    assert b.extend("reconcile", token_b, 10) is True  # B still holds it
    assert a.acquire("reconcile", 10) is None
    assert b.release("reconcile", token_b) is True
    assert b.release("reconcile", token_b) is False
    assert a.acquire("reconcile", 10) is not None


def test_lk03_extend_after_losing_the_lock_is_false(engine: Engine) -> None:
    clock = FakeClock()
    a, b = DbLockManager(engine, clock), DbLockManager(engine, clock)
    token_a = a.acquire("reconcile", 10)
    assert token_a is not None
    clock.advance(5)
    assert a.extend("reconcile", token_a, 10) is True  # resets expiry to t+15
    clock.advance(9)
    assert b.acquire("reconcile", 10) is None  # the extension holds
    clock.advance(2)
    assert a.extend("reconcile", token_a, 10) is False  # expired: lost even before anyone took over
    token_b = b.acquire("reconcile", 10)
    assert token_b is not None
    assert a.extend("reconcile", token_a, 10) is False
    assert a.extend("reconcile", "0" * 32, 10) is False
    assert b.extend("reconcile", token_b, 10) is True


def _race(managers: list[DbLockManager], name: str, ttl: float) -> list[str | None]:
    barrier = threading.Barrier(len(managers))
    results: list[str | None] = [None] * len(managers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = managers[i].acquire(name, ttl)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(managers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_lk04_two_processes_contend_with_identical_semantics(engine: Engine, second_engine: Engine) -> None:
    clock = FakeClock()
    managers = [DbLockManager(e, clock) for e in (engine, second_engine) for _ in range(4)]
    for round_ in range(5):
        name = f"providence:shard:BTC/USDC:USDC:{round_}"
        winners = [t for t in _race(managers, name, 30) if t is not None]
        assert len(winners) == 1
        # The lock is exclusive across engines until it expires; then exactly one contender takes over.
        assert managers[0].acquire(name, 30) is None and managers[-1].acquire(name, 30) is None
        clock.advance(31)
        takers = [t for t in _race(managers, name, 30) if t is not None]
        assert len(takers) == 1 and takers[0] != winners[0]
        owner = next(m for m in managers if m.extend(name, takers[0], 30))
        assert owner.release(name, takers[0]) is True
        stale = [m.release(name, winners[0]) for m in managers]
        assert stale == [False] * len(managers)


def test_bad_arguments_are_refused(engine: Engine) -> None:
    locks = DbLockManager(engine, FakeClock())
    with pytest.raises(ValueError, match="ttl_s"):
        locks.acquire("x", 0)
    with pytest.raises(ValueError, match="ttl_s"):
        locks.acquire("x", float("nan"))
    with pytest.raises(ValueError, match="name"):
        locks.acquire("", 10)
