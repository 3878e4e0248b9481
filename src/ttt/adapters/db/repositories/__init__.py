"""One repository per aggregate; each wraps a Session and hides the SQL."""

from ttt.adapters.db.repositories.audit import AuditRepository
from ttt.adapters.db.repositories.balances import BalanceRepository
from ttt.adapters.db.repositories.bars import BarRepository, SqlBarStore, StoredBar
from ttt.adapters.db.repositories.control import ControlRequestRepository
from ttt.adapters.db.repositories.orders import FillRepository, OrderRepository
from ttt.adapters.db.repositories.paper import PaperRepository
from ttt.adapters.db.repositories.reconciliation import ReconciliationRepository
from ttt.adapters.db.repositories.runs import ApexBurnRepository, RunRepository, SqlRunStore, choose_shard
from ttt.adapters.db.repositories.take_profit import TakeProfitRepository
from ttt.adapters.db.repositories.venues import VenueRepository

__all__ = [
    "ApexBurnRepository",
    "AuditRepository",
    "BalanceRepository",
    "BarRepository",
    "ControlRequestRepository",
    "FillRepository",
    "OrderRepository",
    "PaperRepository",
    "ReconciliationRepository",
    "RunRepository",
    "SqlBarStore",
    "SqlRunStore",
    "StoredBar",
    "TakeProfitRepository",
    "VenueRepository",
    "choose_shard",
]
