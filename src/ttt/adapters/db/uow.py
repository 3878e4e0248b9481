"""A unit of work: one session, one transaction, every repository sharing them.

with UnitOfWork(engine) as uow:
    ids = uow.runs.insert_many(new_runs)
    uow.apex.burn_many(burns, now)
# committed here; an exception inside the block rolls everything back
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ttt.adapters.db.engine import read_only as _read_only
from ttt.adapters.db.repositories import (
    ApexBurnRepository,
    AuditRepository,
    BalanceRepository,
    BarRepository,
    ControlRequestRepository,
    FillRepository,
    OrderRepository,
    PaperRepository,
    ReconciliationRepository,
    RunRepository,
    TakeProfitRepository,
    VenueRepository,
)


class UnitOfWork:
    session: Session

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        """`read_only` (SQLite): the transaction does not take the write lock; see `engine.read_only`."""
        self._factory = sessionmaker(_read_only(engine) if read_only else engine, expire_on_commit=False)

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        s = self.session
        self.venues = VenueRepository(s)
        self.balances = BalanceRepository(s)
        self.bars = BarRepository(s)
        self.runs = RunRepository(s)
        self.apex = ApexBurnRepository(s)
        self.take_profit = TakeProfitRepository(s)
        self.reconciliation = ReconciliationRepository(s)
        self.orders = OrderRepository(s)
        self.fills = FillRepository(s)
        self.audit = AuditRepository(s)
        self.paper = PaperRepository(s)
        self.control = ControlRequestRepository(s)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        """Commit what is done so far (e.g. a write-ahead audit row before acting, portfolio.md §17)."""
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
