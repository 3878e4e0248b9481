"""A migrated SQLite engine per test (the embedded deployment's database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()
