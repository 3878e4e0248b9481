"""`take_profit_state` (the single row id = 1) and `epochs` (portfolio.md §14)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import Epoch, TakeProfitState
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc

STATE_ID = 1
FORCED_STATES = ("pending", "sent", "skipped")


class TakeProfitRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- state -------------------------------------------------------------------------------------

    def get_state(self) -> TakeProfitState | None:
        return self.session.get(TakeProfitState, STATE_ID)

    def put_state(self, state: TakeProfitState) -> TakeProfitState:
        """Insert or replace the singleton; written in the same transaction as any epoch it causes."""
        state.id = STATE_ID
        merged = self.session.merge(state)
        self.session.flush()
        return merged

    # --- epochs ------------------------------------------------------------------------------------

    def add_epoch(self, epoch: Epoch) -> int:
        if len(epoch.forced_state) != len(epoch.forced_cycle_ids):
            raise ValueError("epoch forced_state and forced_cycle_ids must have the same length")
        self.session.add(epoch)
        self.session.flush()
        return int(epoch.id)

    def epoch(self, epoch_id: int) -> Epoch | None:
        return self.session.get(Epoch, epoch_id)

    def epochs(self, limit: int | None = None) -> list[Epoch]:
        """Newest first (`3t epochs list`)."""
        stmt = sa.select(Epoch).order_by(Epoch.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(self.session.scalars(stmt))

    def max_height(self) -> int:
        return int(self.session.execute(sa.select(sa.func.max(Epoch.height))).scalar() or 0)

    def with_pending_forced(self, since: datetime | float) -> list[Epoch]:
        """Epochs triggered since `since` that still have a `pending` forced cycle (§14.5).

        The JSON list is filtered in Python: JSON predicates differ across the three backends."""
        stmt = sa.select(Epoch).where(Epoch.triggered_at >= as_utc(since)).order_by(Epoch.id)
        return [e for e in self.session.scalars(stmt) if "pending" in (e.forced_state or [])]

    def set_forced_state(self, epoch_id: int, forced_state: Sequence[str]) -> bool:
        bad = [s for s in forced_state if s not in FORCED_STATES]
        if bad:
            raise ValueError(f"forced_state values must be in {FORCED_STATES}, got {bad}")
        stmt = sa.update(Epoch).where(Epoch.id == epoch_id).values(forced_state=list(forced_state))
        return bool(execute_count(self.session, stmt))
