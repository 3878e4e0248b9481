"""Fixtures for the database adapter tests: a migrated engine on each real backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each backend, migrated to head."""
    eng = make_engine(db_url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()


class FakeClock:
    """A settable `ttt.ports.Clock` (a fake of our own port, not of a library)."""

    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
