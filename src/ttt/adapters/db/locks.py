"""`LockManager` over the `locks` table (portfolio.md §16.1, db backend).

Each operation is one short transaction of a single conditional statement, so correctness rests on the
database's row locking rather than on a read-then-write:
* acquire: INSERT; on a duplicate key, UPDATE ... WHERE expires_at < now (takeover of an expired lock);
* release: DELETE WHERE name AND owner;
* extend: UPDATE WHERE name AND owner AND expires_at > now.
Losing a race (duplicate key, deadlock victim) means "not acquired", never an exception.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import LockRow, table_of
from ttt.adapters.db.types import utc_from_epoch
from ttt.ports import Clock

LOCKS = table_of(LockRow)
_C = LOCKS.c
_MAX_NAME = 255
_RETRIES = 3
T = TypeVar("T")

# MariaDB: 1213 deadlock victim, 1205 lock wait timeout; PostgreSQL: 40P01 deadlock, 40001 serialization.
_MYSQL_RETRYABLE = {1205, 1213}
_PG_RETRYABLE = {"40P01", "40001"}


class _WallClock:
    def now(self) -> float:
        return time.time()


def new_token() -> str:
    """32 hex characters from the OS CSPRNG."""
    return secrets.token_hex(16)


def _retryable(exc: OperationalError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None)
    if code in _PG_RETRYABLE:
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in _MYSQL_RETRYABLE


class DbLockManager:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock if clock is not None else _WallClock()

    @staticmethod
    def _check(name: str, ttl_s: float) -> None:
        if not name or len(name) > _MAX_NAME:
            raise ValueError(f"lock name must be 1..{_MAX_NAME} characters, got {name!r}")
        if not math.isfinite(ttl_s) or ttl_s <= 0:
            raise ValueError(f"lock {name!r}: ttl_s must be a positive finite number, got {ttl_s!r}")

    def _retry(self, op: Callable[[], T], on_conflict: T) -> T:
        for attempt in range(_RETRIES):
            try:
                return op()
            except OperationalError as exc:
                if not _retryable(exc):
                    raise
                if attempt == _RETRIES - 1:
                    return on_conflict
                time.sleep(0.01 * (attempt + 1))
        return on_conflict  # pragma: no cover - loop always returns

    def acquire(self, name: str, ttl_s: float) -> str | None:
        self._check(name, ttl_s)
        token = new_token()
        now = self.clock.now()
        expires = utc_from_epoch(now + ttl_s)

        def insert() -> bool:
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(LOCKS).values(name=name, owner=token, expires_at=expires))
                return True
            except IntegrityError:
                return False

        def take_over() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(
                    sa.update(LOCKS)
                    .where(_C.name == name, _C.expires_at < utc_from_epoch(now))
                    .values(owner=token, expires_at=expires)
                )
                return result.rowcount == 1

        if self._retry(insert, False) or self._retry(take_over, False):
            return token
        return None

    def extend(self, name: str, token: str, ttl_s: float) -> bool:
        self._check(name, ttl_s)
        now = self.clock.now()

        def op() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(
                    sa.update(LOCKS)
                    .where(_C.name == name, _C.owner == token, _C.expires_at > utc_from_epoch(now))
                    .values(expires_at=utc_from_epoch(now + ttl_s))
                )
                return result.rowcount == 1

        return self._retry(op, False)

    def release(self, name: str, token: str) -> bool:
        if not name:
            raise ValueError("lock name must not be empty")

        def op() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(sa.delete(LOCKS).where(_C.name == name, _C.owner == token))
                return result.rowcount == 1

        return self._retry(op, False)

    def holder(self, name: str) -> tuple[str, float] | None:
        """(owner token, expiry epoch seconds) for diagnostics; None when no row exists."""
        with read_only(self.engine).connect() as conn:
            row = conn.execute(sa.select(_C.owner, _C.expires_at).where(_C.name == name)).first()
        return None if row is None else (str(row.owner), row.expires_at.timestamp())
