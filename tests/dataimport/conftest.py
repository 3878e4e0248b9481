"""Fixtures for the data import, retention, paper persistence and products sync tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade


def _migrated(url: str) -> Iterator[Engine]:
    eng = make_engine(url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend (SQLite, MariaDB, PostgreSQL)."""
    yield from _migrated(db_url)


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Engine]:
    """A migrated SQLite database, for the tests that need no backend matrix."""
    yield from _migrated(sqlite_url)
