"""Account snapshot ingestion, task `ttt.account.update_balance` (portfolio.md §2).

A snapshot is either stored whole (possibly marked unusable) or not at all: a half-written snapshot
would read as "flat" for every position it lacks. Older snapshots are never deleted here (L7), so "no
position row" in a stored snapshot always means "flat", never "not fetched".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine

from ttt.adapters.db.models import BalanceSnapshot, Position
from ttt.adapters.db.types import as_utc, canonical_decimal_text
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.balances import AccountSnapshot, Product, RejectedSnapshot, validate_account
from ttt.domain.symbols import MAIN_DEX
from ttt.ports import Cache, Clock, ExchangeAdapter, LockManager
from ttt.services.locking import run_locked
from ttt.services.portfolio.alerts import AlertSink
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

BALANCE_LOCK = "account:balance"
BALANCE_LOCK_TTL_S = 60
BALANCE_STREAM = "stream:balance"
COMPONENT = "account"

IngestionOutcome = Literal["ok", "partial", "invalid", "fetch_error", "rate_limited"]


@dataclass(frozen=True)
class IngestionSettings:
    exchange_name: str
    exchange_kind: str
    wallet: str
    hip3_dexes: Sequence[str] = ()
    stream_maxlen: int = 10000

    @property
    def dexes(self) -> list[str]:
        return [MAIN_DEX, *[d for d in self.hip3_dexes if d != MAIN_DEX]]


@dataclass(frozen=True)
class IngestionResult:
    outcome: IngestionOutcome
    snapshot_id: int | None = None
    problems: Sequence[str] = field(default_factory=tuple)


def is_rate_limited(exc: BaseException) -> bool:
    """HTTP 429 from any adapter (our Hyperliquid client, ccxt, httpx) without importing them here."""
    if type(exc).__name__ in ("RateLimited", "RateLimitExceeded", "DDoSProtection"):
        return True
    return any(getattr(exc, name, None) == 429 for name in ("status", "status_code", "http_status"))


def _leverage_objects(responses: Mapping[str, Any]) -> dict[str, Any]:
    """The raw `leverage` object per coin, stored verbatim as JSON."""
    out: dict[str, Any] = {}
    for state in responses.values():
        entries = state.get("assetPositions", []) if isinstance(state, Mapping) else []
        for entry in entries if isinstance(entries, list) else []:
            pos = entry.get("position") if isinstance(entry, Mapping) else None
            if isinstance(pos, Mapping) and isinstance(pos.get("coin"), str):
                lev = pos.get("leverage")
                out[pos["coin"]] = dict(lev) if isinstance(lev, Mapping) else lev
    return out


class BalanceIngestion:
    def __init__(
        self,
        exchange: ExchangeAdapter,
        engine: Engine,
        clock: Clock,
        alerts: AlertSink,
        settings: IngestionSettings,
        *,
        metrics: Metrics | None = None,
        cache: Cache | None = None,
        locks: LockManager | None = None,
    ) -> None:
        self._exchange = exchange
        self._engine = engine
        self._clock = clock
        self._alerts = alerts
        self._settings = settings
        self._metrics = metrics
        self._cache = cache
        self._locks = locks

    def run(self) -> IngestionResult:
        """The scheduled task: under lock `account:balance`; raises LockBusy when another run holds it."""
        if self._locks is None:
            return self.ingest()
        return run_locked(self._locks, BALANCE_LOCK, BALANCE_LOCK_TTL_S, lambda _token: self.ingest())

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.balance_snapshots_total.labels(result).inc()

    def _products(self) -> tuple[list[Product], dict[str, int]]:
        with UnitOfWork(self._engine, read_only=True) as uow:
            venue = uow.venues.exchange_by_name(self._settings.exchange_name)
            rows = [] if venue is None else uow.venues.products(venue.id)
            return (
                [Product(p.symbol, p.api_coin, int(p.sz_decimals)) for p in rows],
                {p.symbol: int(p.id) for p in rows},
            )

    def ingest(self) -> IngestionResult:
        s = self._settings
        fetched_at = self._clock.now()
        try:
            responses: Mapping[str, Any] = self._exchange.fetch_account(s.wallet, s.dexes)
        except Exception as exc:
            if is_rate_limited(exc):
                self._count("rate_limited")
                log.info("balance fetch rate limited: %s", exc)
                return IngestionResult("rate_limited", problems=(str(exc),))
            self._count("fetch_error")
            self._alerts.alert(
                COMPONENT, "balance_fetch_failed", "warning", message=f"account fetch failed: {exc}"
            )
            return IngestionResult("fetch_error", problems=(f"{type(exc).__name__}: {exc}",))
        products, product_ids = self._products()
        checked = validate_account(responses, s.dexes, products)
        main_answered = isinstance(checked, AccountSnapshot) and not checked.partial
        if main_answered and checked.cross_maintenance_margin_used is None:  # type: ignore[union-attr]
            checked = RejectedSnapshot(("main dex: crossMaintenanceMarginUsed is missing",))
        if isinstance(checked, RejectedSnapshot):
            self._count("invalid")
            self._alerts.alert(
                COMPONENT,
                "balance_fetch_failed",
                "warning",
                message="account snapshot rejected: " + "; ".join(checked.problems),
                detail={"problems": list(checked.problems)},
            )
            return IngestionResult("invalid", problems=checked.problems)
        snapshot_id = self._store(checked, responses, fetched_at, product_ids)
        outcome: IngestionOutcome = "partial" if checked.partial else "ok"
        self._count(outcome)
        for coin in checked.unmapped_nonzero:
            self._alerts.alert(
                COMPONENT,
                "unmapped_position",
                "warning",
                scope=coin,
                message=f"open position in {coin}, which maps to no product; it is ignored",
            )
        if checked.partial:
            log.warning(
                "account snapshot %s partial: dexes %s did not answer", snapshot_id, checked.missing_dexes
            )
        self._publish(snapshot_id, checked, fetched_at)
        return IngestionResult(outcome, snapshot_id)

    def _store(
        self,
        snap: AccountSnapshot,
        responses: Mapping[str, Any],
        fetched_at: float,
        product_ids: Mapping[str, int],
    ) -> int:
        s = self._settings
        cross = snap.cross_maintenance_margin_used
        if cross is None:
            # Only a partial snapshot (main dex missing) gets here; like its other sums, it covers what
            # answered, and the snapshot is unusable.
            cross = snap.total_margin_used
        leverage = _leverage_objects(responses)
        with UnitOfWork(self._engine) as uow:
            venue = uow.venues.ensure_exchange(s.exchange_name, s.exchange_kind, fetched_at)
            row = BalanceSnapshot(
                exchange_id=venue.id,
                wallet=s.wallet.lower(),
                fetched_at=as_utc(fetched_at),
                account_value=snap.account_value,
                cross_maintenance_margin_used=cross,
                total_margin_used=snap.total_margin_used,
                withdrawable=snap.withdrawable,
                usable=snap.usable,
                partial=snap.partial,
                missing_dexes=list(snap.missing_dexes),
                unmapped=list(snap.unmapped),
                off_grid=list(snap.off_grid),
                created_at=as_utc(self._clock.now()),
            )
            positions = [
                Position(
                    product_id=product_ids[p.symbol],
                    position_size=p.size,
                    entry_price=p.entry_price,
                    position_value=p.position_value,
                    unrealized_pnl=p.unrealized_pnl,
                    margin_used=p.margin_used,
                    leverage=leverage.get(p.coin),
                )
                for p in snap.positions
            ]
            return uow.balances.add_snapshot(row, positions)

    def _publish(self, snapshot_id: int, snap: AccountSnapshot, fetched_at: float) -> None:
        if self._cache is None:
            return
        cross = snap.cross_maintenance_margin_used
        try:
            self._cache.xadd(
                BALANCE_STREAM,
                {
                    "snapshot_id": snapshot_id,
                    "account_value": canonical_decimal_text(snap.account_value),
                    "cross_margin": "" if cross is None else canonical_decimal_text(cross),
                    "fetched_at": fetched_at,
                    "usable": int(snap.usable),
                },
                self._settings.stream_maxlen,
            )
        except Exception as exc:  # live-update channel only (services.md §5)
            log.warning("balance stream not published: %s", exc)
