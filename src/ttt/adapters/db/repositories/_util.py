"""Small helpers shared by the repositories."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session


def execute_count(session: Session, stmt: Any, params: Any = None) -> int:
    """Run an UPDATE/DELETE through the session (ORM objects stay in sync); affected row count."""
    result = session.execute(stmt, params) if params is not None else session.execute(stmt)
    assert isinstance(result, sa.CursorResult)
    return int(result.rowcount)
