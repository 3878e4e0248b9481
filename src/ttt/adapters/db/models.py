"""Declarative models of every table of services.md §4.2.

The migrations in `migrations/versions` create exactly this schema (a test compares them). Columns the
spec marks `null` are nullable; everything else is NOT NULL. No column has a server default: timestamps
come from the Clock, other values from the repositories.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ttt.adapters.db.types import BigId, Double, ExactDecimal, JsonText, JsonType, UtcDateTime

# Binary, no-pad collation on MariaDB: text compares exactly as on SQLite and PostgreSQL (a case-insensitive
# default would make `kPEPE` and `KPEPE` collide in unique keys).
TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_nopad_bin"}

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    def as_dict(self) -> dict[str, Any]:
        return {c.key: getattr(self, c.key) for c in sa.inspect(type(self)).column_attrs}

    def __repr__(self) -> str:
        return f"{type(self).__name__}{sa.inspect(self).identity!r}"


def _id() -> Mapped[int]:
    return mapped_column(BigId(), primary_key=True, autoincrement=True)


def _ts(nullable: bool = False) -> Any:
    return mapped_column(UtcDateTime(), nullable=nullable)


def _dec(nullable: bool = False) -> Any:
    return mapped_column(ExactDecimal(), nullable=nullable)


def _dbl(nullable: bool = False) -> Any:
    return mapped_column(Double(), nullable=nullable)


def _json(nullable: bool = False) -> Any:
    return mapped_column(JsonType(), nullable=nullable)


# --- venues ------------------------------------------------------------------------------------------


class Exchange(Base):
    __tablename__ = "exchanges"
    __table_args__ = (TABLE_OPTIONS,)
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    api_url: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    ws_url: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[datetime] = _ts()


class Instrument(Base):
    __tablename__ = "instruments"
    __table_args__ = (TABLE_OPTIONS,)
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    created_at: Mapped[datetime] = _ts()


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (sa.UniqueConstraint("exchange_id", "symbol"), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    instrument_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("instruments.id"))
    exchange_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("exchanges.id"))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    api_coin: Mapped[str] = mapped_column(sa.String(64))
    asset_id: Mapped[int | None] = mapped_column(sa.Integer(), nullable=True)
    product_type: Mapped[str] = mapped_column(sa.String(16))
    margin_mode: Mapped[str] = mapped_column(sa.String(16))
    max_leverage: Mapped[Decimal] = _dec()
    sz_decimals: Mapped[int] = mapped_column(sa.Integer())
    lot_size: Mapped[Decimal] = _dec()
    max_price_decimals: Mapped[int] = mapped_column(sa.Integer())
    min_notional: Mapped[Decimal] = _dec()
    metadata_: Mapped[Any] = mapped_column("metadata", JsonType())
    refreshed_at: Mapped[datetime] = _ts()
    created_at: Mapped[datetime] = _ts()


# --- account snapshots -------------------------------------------------------------------------------


class BalanceSnapshot(Base):
    __tablename__ = "balance_history"
    __table_args__ = (sa.Index(None, "usable", "id"), sa.Index(None, "fetched_at"), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    exchange_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("exchanges.id"))
    wallet: Mapped[str] = mapped_column(sa.String(42))
    fetched_at: Mapped[datetime] = _ts()
    account_value: Mapped[Decimal] = _dec()
    cross_maintenance_margin_used: Mapped[Decimal] = _dec()
    total_margin_used: Mapped[Decimal] = _dec()
    withdrawable: Mapped[Decimal | None] = _dec(nullable=True)
    usable: Mapped[bool] = mapped_column(sa.Boolean())
    partial: Mapped[bool] = mapped_column(sa.Boolean())
    missing_dexes: Mapped[Any] = _json()
    unmapped: Mapped[Any] = _json()
    off_grid: Mapped[Any] = _json()
    created_at: Mapped[datetime] = _ts()


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (sa.Index(None, "snapshot_id", "product_id", unique=True), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    snapshot_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("balance_history.id"))
    product_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("products.id"))
    position_size: Mapped[Decimal] = _dec()
    entry_price: Mapped[Decimal | None] = _dec(nullable=True)
    position_value: Mapped[Decimal | None] = _dec(nullable=True)
    unrealized_pnl: Mapped[Decimal | None] = _dec(nullable=True)
    margin_used: Mapped[Decimal | None] = _dec(nullable=True)
    leverage: Mapped[Any] = _json(nullable=True)


# --- market data -------------------------------------------------------------------------------------


class MarketBar(Base):
    __tablename__ = "market_data"
    __table_args__ = (TABLE_OPTIONS,)
    symbol: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    ts_open: Mapped[int] = mapped_column(sa.BigInteger(), primary_key=True, autoincrement=False)
    open: Mapped[Decimal] = _dec()
    high: Mapped[Decimal] = _dec()
    low: Mapped[Decimal] = _dec()
    close: Mapped[Decimal] = _dec()
    volume: Mapped[Decimal] = _dec()
    source: Mapped[str] = mapped_column(sa.String(16))
    is_final: Mapped[bool] = mapped_column(sa.Boolean())
    fetched_at: Mapped[datetime] = _ts()


# --- providence --------------------------------------------------------------------------------------


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_symbol_state", "symbol", "exit_run", "height", "end_time", "update_time"),
        sa.Index("ix_runs_symbol_shard", "symbol", "shard", "end_time"),
        sa.Index("ix_runs_shard_members", "symbol", "shard", "end_time", "exit_run", "start_time"),
        sa.Index(None, "height"),
        sa.Index(None, "apex_hash"),
        TABLE_OPTIONS,
    )
    id: Mapped[int] = _id()
    symbol: Mapped[str] = mapped_column(sa.String(64))
    shard: Mapped[int] = mapped_column(sa.Integer())
    seed: Mapped[int | None] = mapped_column(sa.BigInteger(), nullable=True)
    start_time: Mapped[datetime] = _ts()
    end_time: Mapped[datetime | None] = _ts(nullable=True)
    end_reason: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    start_balance: Mapped[float] = _dbl()
    end_balance: Mapped[float | None] = _dbl(nullable=True)
    max_duration: Mapped[int] = mapped_column(sa.Integer())
    position_direction: Mapped[int] = mapped_column(sa.Integer())
    live_pnl: Mapped[float | None] = _dbl(nullable=True)
    exit_run: Mapped[bool] = mapped_column(sa.Boolean())
    height: Mapped[int | None] = mapped_column(sa.Integer(), nullable=True)
    iteration_count: Mapped[int] = mapped_column(sa.BigInteger())
    update_time: Mapped[datetime] = _ts()
    host: Mapped[str] = mapped_column(sa.String(255))
    ann_params: Mapped[Any] = _json()
    run_state: Mapped[str] = mapped_column(JsonText())
    apex_file: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    apex_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    apex_rank: Mapped[int | None] = mapped_column(sa.Integer(), nullable=True)


class ApexBurned(Base):
    __tablename__ = "providence_apex_burned"
    __table_args__ = (TABLE_OPTIONS,)
    apex_file: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    apex_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.BigInteger())
    burned_at: Mapped[datetime] = _ts()


# --- take-profit -------------------------------------------------------------------------------------


class TakeProfitState(Base):
    __tablename__ = "take_profit_state"
    __table_args__ = (TABLE_OPTIONS,)
    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    baseline: Mapped[Decimal | None] = _dec(nullable=True)
    baseline_set_at: Mapped[datetime | None] = _ts(nullable=True)
    init_samples: Mapped[Any] = _json()
    window: Mapped[Any] = _json()
    cursor: Mapped[int] = mapped_column(sa.BigInteger())
    cooldown_until: Mapped[datetime | None] = _ts(nullable=True)
    updated_at: Mapped[datetime] = _ts()


class Epoch(Base):
    __tablename__ = "epochs"
    __table_args__ = (TABLE_OPTIONS,)
    id: Mapped[int] = _id()
    kind: Mapped[str] = mapped_column(sa.String(16))
    height: Mapped[int | None] = mapped_column(sa.Integer(), nullable=True, unique=True)
    triggered_at: Mapped[datetime] = _ts()
    baseline_before: Mapped[Decimal] = _dec()
    value: Mapped[Decimal] = _dec()
    gain: Mapped[Decimal] = _dec()
    runs_flagged: Mapped[int] = mapped_column(sa.Integer())
    forced_cycle_ids: Mapped[Any] = _json()
    forced_due_at: Mapped[Any] = _json()
    forced_state: Mapped[Any] = _json()


# --- reconciliation ----------------------------------------------------------------------------------


class ReconciliationCycle(Base):
    __tablename__ = "reconciliation_cycles"
    __table_args__ = (TABLE_OPTIONS,)
    cycle_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    trigger: Mapped[str] = mapped_column(sa.String(16))
    scheduled_at: Mapped[datetime] = _ts()
    started_at: Mapped[datetime | None] = _ts(nullable=True)
    finished_at: Mapped[datetime | None] = _ts(nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    lock_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    snapshot_id: Mapped[int | None] = mapped_column(sa.BigInteger(), nullable=True)
    symbols: Mapped[int] = mapped_column(sa.Integer())
    orders_sent: Mapped[int] = mapped_column(sa.Integer())
    holds: Mapped[int] = mapped_column(sa.Integer())
    error: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)


class ReconciliationLog(Base):
    __tablename__ = "reconciliation_log"
    __table_args__ = (sa.Index(None, "cycle_id"), sa.Index(None, "created_at"), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    cycle_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("reconciliation_cycles.cycle_id"))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    desired_status: Mapped[str] = mapped_column(sa.String(8))
    desired_reason: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    desired: Mapped[float | None] = _dbl(nullable=True)
    desired_clamped: Mapped[float | None] = _dbl(nullable=True)
    actual: Mapped[float | None] = _dbl(nullable=True)
    quorum_status: Mapped[str] = mapped_column(sa.String(24))
    margin_used: Mapped[float | None] = _dbl(nullable=True)
    cap: Mapped[float | None] = _dbl(nullable=True)
    decision_row: Mapped[int | None] = mapped_column(sa.Integer(), nullable=True)
    side: Mapped[str | None] = mapped_column(sa.String(4), nullable=True)
    size: Mapped[float | None] = _dbl(nullable=True)
    size_rounded: Mapped[Decimal | None] = _dec(nullable=True)
    price: Mapped[float | None] = _dbl(nullable=True)
    notional: Mapped[float | None] = _dbl(nullable=True)
    threshold: Mapped[float | None] = _dbl(nullable=True)
    gate: Mapped[str] = mapped_column(sa.String(8))
    outcome: Mapped[str] = mapped_column(sa.String(24))
    hold_reason: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    client_order_id: Mapped[str | None] = mapped_column(sa.String(34), nullable=True)
    created_at: Mapped[datetime] = _ts()


# --- orders and fills --------------------------------------------------------------------------------


class OrderRecord(Base):
    __tablename__ = "order_execution_log"
    __table_args__ = (
        sa.Index(None, "status"),
        sa.Index(None, "symbol", "created_at"),
        sa.Index(None, "cycle_id"),
        TABLE_OPTIONS,
    )
    id: Mapped[int] = _id()
    client_order_id: Mapped[str] = mapped_column(sa.String(34), unique=True)
    cycle_id: Mapped[str] = mapped_column(sa.String(64))
    product_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("products.id"))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    size: Mapped[Decimal] = _dec()
    requested_size: Mapped[Decimal] = _dec()
    style: Mapped[str] = mapped_column(sa.String(16))
    time_in_force: Mapped[str] = mapped_column(sa.String(4))
    limit_price: Mapped[Decimal | None] = _dec(nullable=True)
    reference_price: Mapped[Decimal | None] = _dec(nullable=True)
    decision_price: Mapped[Decimal | None] = _dec(nullable=True)
    reduce_only: Mapped[bool] = mapped_column(sa.Boolean())
    status: Mapped[str] = mapped_column(sa.String(16))
    exchange_order_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    filled_size: Mapped[Decimal] = _dec()
    avg_fill_price: Mapped[Decimal | None] = _dec(nullable=True)
    fees_usd: Mapped[Decimal] = _dec()
    error_code: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    attempts: Mapped[int] = mapped_column(sa.Integer())
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    submitted_at: Mapped[datetime | None] = _ts(nullable=True)
    closed_at: Mapped[datetime | None] = _ts(nullable=True)


class FillRecord(Base):
    __tablename__ = "fills"
    __table_args__ = (
        sa.UniqueConstraint("exchange_id", "trade_id"),
        sa.Index(None, "client_order_id"),
        sa.Index(None, "exchange_time"),
        TABLE_OPTIONS,
    )
    id: Mapped[int] = _id()
    exchange_id: Mapped[int] = mapped_column(BigId(), sa.ForeignKey("exchanges.id"))
    trade_id: Mapped[str] = mapped_column(sa.String(64))
    client_order_id: Mapped[str | None] = mapped_column(sa.String(34), nullable=True)
    exchange_order_id: Mapped[str] = mapped_column(sa.String(64))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    price: Mapped[Decimal] = _dec()
    size: Mapped[Decimal] = _dec()
    fee: Mapped[Decimal] = _dec()
    fee_token: Mapped[str] = mapped_column(sa.String(16))
    liquidity: Mapped[str] = mapped_column(sa.String(5))
    closed_pnl: Mapped[Decimal | None] = _dec(nullable=True)
    exchange_time: Mapped[datetime] = _ts()
    ingested_at: Mapped[datetime] = _ts()


# --- audit -------------------------------------------------------------------------------------------


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index(None, "cycle_id"),
        sa.Index(None, "kind", "ts"),
        sa.Index(None, "client_order_id"),
        sa.Index(None, "ts"),
        TABLE_OPTIONS,
    )
    id: Mapped[int] = _id()
    ts: Mapped[datetime] = _ts()
    kind: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(128))
    cycle_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    symbol: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    client_order_id: Mapped[str | None] = mapped_column(sa.String(34), nullable=True)
    lock_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    severity: Mapped[str] = mapped_column(sa.String(8))
    message: Mapped[str] = mapped_column(sa.Text())
    payload: Mapped[Any] = _json()


# --- paper exchange ----------------------------------------------------------------------------------


class PaperAccount(Base):
    __tablename__ = "paper_accounts"
    __table_args__ = (TABLE_OPTIONS,)
    wallet: Mapped[str] = mapped_column(sa.String(42), primary_key=True)
    cash: Mapped[Decimal] = _dec()
    created_at: Mapped[datetime] = _ts()
    # 0002: the last whole hour (epoch hours) whose funding was settled for this account
    funding_hour: Mapped[int | None] = mapped_column(sa.BigInteger(), nullable=True)


class PaperPosition(Base):
    __tablename__ = "paper_positions"
    __table_args__ = (TABLE_OPTIONS,)
    wallet: Mapped[str] = mapped_column(sa.String(42), primary_key=True)
    symbol: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    size: Mapped[Decimal] = _dec()
    entry_price: Mapped[Decimal] = _dec()
    leverage: Mapped[int] = mapped_column(sa.Integer())
    cum_funding: Mapped[Decimal] = _dec()
    updated_at: Mapped[datetime] = _ts()
    # 0002: exact cost basis Σ signed size·price (entry_price = cost_basis / size is rounded) and the
    # funding paid since the position opened
    cost_basis: Mapped[Decimal | None] = _dec(nullable=True)
    funding_since_open: Mapped[Decimal | None] = _dec(nullable=True)


class PaperOrder(Base):
    __tablename__ = "paper_orders"
    __table_args__ = (
        sa.UniqueConstraint("wallet", "cloid"),
        sa.Index(None, "wallet", "status"),
        TABLE_OPTIONS,
    )
    oid: Mapped[int] = _id()
    cloid: Mapped[str | None] = mapped_column(sa.String(34), nullable=True)
    wallet: Mapped[str] = mapped_column(sa.String(42))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    price: Mapped[Decimal] = _dec()
    size: Mapped[Decimal] = _dec()
    remaining: Mapped[Decimal] = _dec()
    tif: Mapped[str] = mapped_column(sa.String(8))
    reduce_only: Mapped[bool] = mapped_column(sa.Boolean())
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = _ts()
    closed_at: Mapped[datetime | None] = _ts(nullable=True)
    # 0002: what `orderStatus` reports
    filled_size: Mapped[Decimal | None] = _dec(nullable=True)
    avg_price: Mapped[Decimal | None] = _dec(nullable=True)
    error_text: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)


class PaperTrade(Base):
    __tablename__ = "paper_trades"
    __table_args__ = (sa.Index(None, "wallet", "ts"), sa.Index(None, "oid"), TABLE_OPTIONS)
    tid: Mapped[int] = _id()
    oid: Mapped[int] = mapped_column(sa.BigInteger())
    wallet: Mapped[str] = mapped_column(sa.String(42))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    price: Mapped[Decimal] = _dec()
    size: Mapped[Decimal] = _dec()
    fee: Mapped[Decimal] = _dec()
    liquidity: Mapped[str] = mapped_column(sa.String(5))
    closed_pnl: Mapped[Decimal] = _dec()
    ts: Mapped[datetime] = _ts()
    # 0002: the order's cloid (fills carry it) and whether the fill was a liquidation
    cloid: Mapped[str | None] = mapped_column(sa.String(34), nullable=True)
    liquidation: Mapped[bool | None] = mapped_column(sa.Boolean(), nullable=True)


class PaperLedgerEntry(Base):
    __tablename__ = "paper_ledger"
    __table_args__ = (sa.Index(None, "wallet", "ts"), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    wallet: Mapped[str] = mapped_column(sa.String(42))
    ts: Mapped[datetime] = _ts()
    kind: Mapped[str] = mapped_column(sa.String(16))
    symbol: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    amount: Mapped[Decimal] = _dec()
    ref: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)


# --- support -----------------------------------------------------------------------------------------


class LockRow(Base):
    __tablename__ = "locks"
    __table_args__ = (TABLE_OPTIONS,)
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(32))
    expires_at: Mapped[datetime] = _ts()


class ControlRequest(Base):
    __tablename__ = "control_requests"
    __table_args__ = (sa.Index(None, "picked_at"), TABLE_OPTIONS)
    id: Mapped[int] = _id()
    kind: Mapped[str] = mapped_column(sa.String(32))
    payload: Mapped[Any] = _json()
    requested_at: Mapped[datetime] = _ts()
    picked_at: Mapped[datetime | None] = _ts(nullable=True)
    result: Mapped[Any] = _json(nullable=True)


metadata = Base.metadata


def table_of(model: type[Base]) -> sa.Table:
    """The Core table of a model, typed as such (Core bulk statements take tables)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table
