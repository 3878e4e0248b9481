"""Reads and small writes the portfolio services need beyond the core repositories (portfolio.md §3–§6, §14).

Every statement is parameterised (the symbol is always a bound value, K-25). `dec` columns are never
compared or aggregated in SQL: such filters run in Python on exact decimals (services.md §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import (
    BalanceSnapshot,
    Epoch,
    FillRecord,
    MarketBar,
    OrderRecord,
    ReconciliationLog,
    Run,
    table_of,
)
from ttt.adapters.db.repositories._util import execute_count
from ttt.adapters.db.types import as_utc

RUNS = table_of(Run)
_R = RUNS.c
_FENCE_STATUSES = ("FILLED", "PARTIAL", "CANCELED")
_LOG_FIELDS = frozenset(c.key for c in table_of(ReconciliationLog).c) - {"id", "cycle_id", "symbol"}


@dataclass(frozen=True)
class RunAggregate:
    n: int
    sum_dir: int
    sum_pnl: float


@dataclass(frozen=True)
class FenceOrder:
    status: str
    closed_at: float | None
    filled_size: Decimal


class PortfolioQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- desired state (§3.1, §3.2) -----------------------------------------------------------------

    def liveness(self, symbol: str) -> tuple[int, float | None]:
        """(n_active, newest update_time of the active runs) of one symbol."""
        stmt = sa.select(sa.func.count(), sa.func.max(_R.update_time)).where(
            _R.end_time.is_(None), _R.exit_run == sa.false(), _R.symbol == symbol
        )
        n, newest = self.session.execute(stmt).one()
        if isinstance(newest, str):  # SQLite aggregates bypass the column type
            newest = datetime.fromisoformat(newest)
        return int(n), None if newest is None else as_utc(newest).timestamp()

    def aggregate(
        self, symbol: str, now: float, live_pnl_threshold: float, freshness_s: float
    ) -> RunAggregate:
        """Σ position_direction, Σ live_pnl and the count over the §3.2 selection."""
        stmt = sa.select(sa.func.count(), sa.func.sum(_R.position_direction), sa.func.sum(_R.live_pnl)).where(
            _R.exit_run == sa.false(),
            _R.height.is_(None),
            _R.end_time.is_(None),
            _R.live_pnl > live_pnl_threshold,
            _R.position_direction != 0,
            _R.symbol == symbol,
            _R.update_time >= as_utc(now - freshness_s),
        )
        n, sum_dir, sum_pnl = self.session.execute(stmt).one()
        return RunAggregate(int(n), int(sum_dir or 0), float(sum_pnl or 0.0))

    # --- Kelly cohorts (§4.1) ----------------------------------------------------------------------

    def kelly_current(self, symbol: str) -> list[float]:
        stmt = sa.select(_R.live_pnl).where(
            _R.symbol == symbol,
            _R.height.is_(None),
            _R.exit_run == sa.false(),
            _R.live_pnl.is_not(None),
            _R.live_pnl != 0,
        )
        return [float(x) for x in self.session.execute(stmt.order_by(_R.id)).scalars()]

    def kelly_historical(self, symbol: str) -> list[float]:
        """live_pnl of heighted runs whose height has a positive per-symbol PnL sum (H⁺)."""
        positive = (
            sa.select(_R.height)
            .where(_R.symbol == symbol, _R.height.is_not(None))
            .group_by(_R.height)
            .having(sa.func.sum(_R.live_pnl) > 0)
        )
        stmt = sa.select(_R.live_pnl).where(
            _R.symbol == symbol,
            _R.height.in_(positive.scalar_subquery()),
            _R.live_pnl.is_not(None),
            _R.live_pnl != 0,
        )
        return [float(x) for x in self.session.execute(stmt.order_by(_R.id)).scalars()]

    # --- prices (§3.4 step 4) ------------------------------------------------------------------------

    def newest_bar(self, symbol: str, timeframe: str = "1m") -> tuple[int, Decimal] | None:
        """(ts_open ms, close) of the newest bar of one timeframe."""
        stmt = (
            sa.select(MarketBar.ts_open, MarketBar.close)
            .where(MarketBar.symbol == symbol, MarketBar.timeframe == timeframe)
            .order_by(MarketBar.ts_open.desc())
            .limit(1)
        )
        row = self.session.execute(stmt).first()
        return None if row is None else (int(row[0]), row[1])

    # --- fill fence (§6.5) -------------------------------------------------------------------------

    def fence_inputs(self, symbol: str, since: float) -> tuple[list[float], list[FenceOrder]]:
        """Fill times and closing orders of ours on a symbol since `since` (older fences are irrelevant)."""
        at = as_utc(since)
        fills = self.session.execute(
            sa.select(FillRecord.exchange_time).where(
                FillRecord.symbol == symbol, FillRecord.exchange_time >= at
            )
        ).scalars()
        orders = self.session.execute(
            sa.select(OrderRecord.status, OrderRecord.closed_at, OrderRecord.filled_size).where(
                OrderRecord.symbol == symbol,
                OrderRecord.status.in_(_FENCE_STATUSES),
                OrderRecord.closed_at >= at,
            )
        )
        return (
            [as_utc(t).timestamp() for t in fills],
            [
                FenceOrder(str(s), None if c is None else as_utc(c).timestamp(), Decimal(f))
                for s, c, f in orders
            ],
        )

    # --- reconciliation log ------------------------------------------------------------------------

    def add_log_row(self, row: dict[str, Any]) -> int:
        stmt = sa.insert(table_of(ReconciliationLog)).values(**row).returning(ReconciliationLog.id)
        return int(self.session.execute(stmt).scalar_one())

    def update_log_row(self, log_id: int, **fields: Any) -> bool:
        """Records the gateway's answer on the write-ahead row (portfolio.md §1.3 step 12)."""
        unknown = set(fields) - _LOG_FIELDS
        if unknown:
            raise TypeError(f"unknown reconciliation_log column(s): {', '.join(sorted(unknown))}")
        stmt = sa.update(ReconciliationLog).where(ReconciliationLog.id == log_id).values(**fields)
        return bool(execute_count(self.session, stmt))

    def recent_outcomes(self, symbol: str, n: int) -> list[str]:
        """Outcomes of the symbol's last n log rows, newest first."""
        stmt = (
            sa.select(ReconciliationLog.outcome)
            .where(ReconciliationLog.symbol == symbol)
            .order_by(ReconciliationLog.id.desc())
            .limit(n)
        )
        return [str(o) for o in self.session.execute(stmt).scalars()]

    # --- balances and epochs -----------------------------------------------------------------------

    def recent_usable(self, limit: int) -> list[BalanceSnapshot]:
        """The newest usable snapshots, oldest first."""
        stmt = (
            sa.select(BalanceSnapshot)
            .where(BalanceSnapshot.usable == sa.true())
            .order_by(BalanceSnapshot.id.desc())
            .limit(limit)
        )
        rows = list(self.session.scalars(stmt))
        rows.reverse()
        return rows

    def pending_epochs(self) -> list[Epoch]:
        """Epochs with any forced cycle still `pending` (JSON filtered in Python, portable)."""
        stmt = sa.select(Epoch).order_by(Epoch.id)
        return [e for e in self.session.scalars(stmt) if "pending" in (e.forced_state or [])]

    def max_run_height(self) -> int | None:
        value = self.session.execute(sa.select(sa.func.max(_R.height))).scalar()
        return None if value is None else int(value)

    def max_epoch_height(self) -> int | None:
        value = self.session.execute(sa.select(sa.func.max(Epoch.height))).scalar()
        return None if value is None else int(value)
