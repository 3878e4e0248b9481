"""Fixtures shared by the shard-step tests: a migrated SQLite database and the run store over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.repositories.runs import SqlRunStore


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(sqlite_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> SqlRunStore:
    return SqlRunStore(engine)
