"""`balance_history` and `positions` (portfolio.md §2.4; retention services.md §4.3)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import BalanceSnapshot, Position, table_of
from ttt.adapters.db.types import as_utc

SNAP = table_of(BalanceSnapshot)
POS = table_of(Position)


class BalanceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_snapshot(self, snapshot: BalanceSnapshot, positions: Sequence[Position] = ()) -> int:
        """One snapshot with its non-zero positions; the caller's transaction makes them atomic."""
        self.session.add(snapshot)
        self.session.flush()
        for p in positions:
            p.snapshot_id = snapshot.id
            self.session.add(p)
        self.session.flush()
        return int(snapshot.id)

    def get(self, snapshot_id: int) -> BalanceSnapshot | None:
        return self.session.get(BalanceSnapshot, snapshot_id)

    def positions(self, snapshot_id: int) -> list[Position]:
        stmt = sa.select(Position).where(Position.snapshot_id == snapshot_id).order_by(Position.product_id)
        return list(self.session.scalars(stmt))

    def latest_usable(self) -> tuple[BalanceSnapshot, list[Position]] | None:
        """The newest usable snapshot and its positions (cycle input C5); the caller judges its age."""
        stmt = (
            sa.select(BalanceSnapshot)
            .where(BalanceSnapshot.usable == sa.true())
            .order_by(BalanceSnapshot.id.desc())
            .limit(1)
        )
        snap = self.session.scalars(stmt).one_or_none()
        if snap is None:
            return None
        return snap, self.positions(snap.id)

    def usable_after(self, cursor: int, limit: int = 1000) -> list[BalanceSnapshot]:
        """Usable snapshots with id > cursor in id order (take-profit, portfolio.md §14.3)."""
        stmt = (
            sa.select(BalanceSnapshot)
            .where(BalanceSnapshot.usable == sa.true(), BalanceSnapshot.id > cursor)
            .order_by(BalanceSnapshot.id)
            .limit(limit)
        )
        return list(self.session.scalars(stmt))

    def latest_id(self) -> int | None:
        value = self.session.execute(sa.select(sa.func.max(SNAP.c.id))).scalar()
        return None if value is None else int(value)

    def delete_positions_before(self, cutoff: datetime | float, keep: Collection[int] = ()) -> int:
        """Positions of snapshots fetched before the cutoff, except those of the `keep` snapshots."""
        old = sa.select(SNAP.c.id).where(SNAP.c.fetched_at < as_utc(cutoff))
        if keep:
            old = old.where(SNAP.c.id.not_in(list(keep)))
        stmt = sa.delete(POS).where(POS.c.snapshot_id.in_(old.scalar_subquery()))
        return int(self.session.connection().execute(stmt).rowcount)

    def delete_snapshots_before(self, cutoff: datetime | float, keep: Collection[int] = ()) -> int:
        """Snapshots (and their positions) fetched before the cutoff, except `keep` (the take-profit
        cursor and the latest cycle's snapshot, services.md §4.3)."""
        self.delete_positions_before(cutoff, keep)
        stmt = sa.delete(SNAP).where(SNAP.c.fetched_at < as_utc(cutoff))
        if keep:
            stmt = stmt.where(SNAP.c.id.not_in(list(keep)))
        return int(self.session.connection().execute(stmt).rowcount)
