"""The `LockManager` contract (portfolio.md §16, pins LK-01..LK-03) for every lock backend.

Each case has two managers that share only the lock store, standing in for two processes.
"""

from __future__ import annotations

import re

import pytest

from tests.cache.conftest import LockCase
from ttt.ports import LockManager

TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def test_implements_the_port(lock_case: LockCase) -> None:
    assert isinstance(lock_case.a, LockManager)


def test_lk01_second_contender_gets_none(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    token = a.acquire("reconcile", 10)
    assert token is not None and TOKEN_RE.match(token)
    assert lock_case.peek("reconcile") == token
    assert b.acquire("reconcile", 10) is None
    assert a.acquire("reconcile", 10) is None, "locks are not re-entrant"
    assert lock_case.peek("reconcile") == token


def test_tokens_are_fresh_per_acquisition(lock_case: LockCase) -> None:
    a = lock_case.a
    tokens = []
    for _ in range(5):
        token = a.acquire("take_profit", 10)
        assert token is not None
        tokens.append(token)
        assert a.release("take_profit", token) is True
    assert len(set(tokens)) == 5


def test_names_are_independent(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    assert a.acquire("providence:shard:BTC:0", 10) is not None
    assert b.acquire("providence:shard:BTC:1", 10) is not None
    assert b.acquire("providence:shard:BTC:0", 10) is None


def test_release_frees_the_lock(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    token = a.acquire("beat", 10)
    assert token is not None
    assert a.release("beat", token) is True
    assert lock_case.peek("beat") is None
    assert a.release("beat", token) is False, "a second release has nothing to delete"
    assert b.acquire("beat", 10) is not None


def test_release_with_a_wrong_token_is_refused(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    token = a.acquire("feed", 10)
    assert token is not None
    forged = "0" * 32 if token != "0" * 32 else "1" * 32
    assert b.release("feed", forged) is False
    assert a.release("feed", token.upper()) is False
    assert b.extend("feed", forged, 10) is False
    assert lock_case.peek("feed") == token
    assert b.acquire("feed", 10) is None
    assert a.release("feed", token) is True


def test_lk02_stale_owner_cannot_release_after_takeover(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    old = a.acquire("account:balance", 0.2)
    assert old is not None
    lock_case.advance(0.35)
    new = b.acquire("account:balance", 10)
    assert new is not None and new != old
    assert a.release("account:balance", old) is False
    assert lock_case.peek("account:balance") == new
    assert a.acquire("account:balance", 10) is None, "B still holds the lock"
    assert b.release("account:balance", new) is True


def test_lk03_extend_after_losing_returns_false(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    old = a.acquire("reconcile", 0.2)
    assert old is not None
    lock_case.advance(0.35)
    assert a.extend("reconcile", old, 10) is False, "expired, nobody else holds it yet"
    new = b.acquire("reconcile", 10)
    assert new is not None
    assert a.extend("reconcile", old, 10) is False, "taken over by B"
    assert lock_case.peek("reconcile") == new


def test_extend_keeps_a_live_lock_past_its_original_ttl(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    token = a.acquire("gateway:resolver", 1.0)
    assert token is not None
    lock_case.advance(0.6)
    assert a.extend("gateway:resolver", token, 2.0) is True
    lock_case.advance(0.6)  # 1.2 s after acquiring: past the original 1 s, well inside the extension
    assert b.acquire("gateway:resolver", 10) is None
    assert lock_case.peek("gateway:resolver") == token
    assert a.release("gateway:resolver", token) is True


def test_an_unextended_lock_expires_and_can_be_taken(lock_case: LockCase) -> None:
    a, b = lock_case.a, lock_case.b
    assert a.acquire("ops:metrics", 0.2) is not None
    lock_case.advance(0.35)
    assert lock_case.peek("ops:metrics") is None
    assert b.acquire("ops:metrics", 10) is not None


@pytest.mark.parametrize("bad", [0, -5])
def test_non_positive_ttl_is_rejected(lock_case: LockCase, bad: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        lock_case.a.acquire("beat", bad)
    assert lock_case.peek("beat") is None


def test_empty_name_is_rejected(lock_case: LockCase) -> None:
    with pytest.raises(ValueError, match="lock name"):
        lock_case.a.acquire("", 10)
