"""Helpers for tests that read the shared, never-copied market data and recorded fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("T3_SHARED_DATA", SHARED / "data"))
SHARED_FIXTURES = Path(os.environ.get("T3_SHARED_FIXTURES", SHARED / "fixtures"))


def require_shared_data(*relative: str) -> Path:
    """Path inside ../shared/data, or skip with a clear reason when the folder is absent."""
    path = SHARED_DATA.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"shared market data not present at {path} (tests read ../shared/data; never copied)")
    return path


def require_shared_fixture(*relative: str) -> Path:
    path = SHARED_FIXTURES.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"shared fixture not present at {path}")
    return path
