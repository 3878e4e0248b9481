"""Read-only portfolio views for the live status of `3t run` and `/api/v1/overview` (services.md §9, §12).

Every query is bounded so that a status refreshed every second stays cheap at 100k runs and months of
history: newest rows come from indexed columns with a LIMIT, counts group on indexed columns. Each panel
is read on its own and a failed read becomes `{"available": false, "error": …}` for that panel only: the
status loop never sees an exception, and a panel it cannot read is never shown as zero. Unknown values
stay `None` (JSON null) with a status saying why; a trader must never read "unknown" as flat.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import (
    AuditEntry,
    BalanceSnapshot,
    FillRecord,
    OrderRecord,
    ReconciliationCycle,
    ReconciliationLog,
    Run,
    table_of,
)
from ttt.adapters.db.types import as_utc

log = logging.getLogger(__name__)

RECENT_ORDERS = 5
FILLS_WINDOW_S = 86_400.0
FILLS_SCAN_LIMIT = 10_000
ERROR_MAX_CHARS = 200
# Gateway record statuses in lifecycle order (portfolio.md §11.3); unknown ones sort after them.
ORDER_STATUS_ORDER = (
    "RECEIVED",
    "NOT_SENT",
    "SENT_UNKNOWN",
    "RESTING",
    "PARTIAL",
    "FILLED",
    "CANCELED",
    "REJECTED",
    "EXPIRED_UNKNOWN",
)

_AUDIT = table_of(AuditEntry)
_LOG = table_of(ReconciliationLog)
_CYCLES = table_of(ReconciliationCycle)
_ORDERS = table_of(OrderRecord)
_FILLS = table_of(FillRecord)
_SNAP = table_of(BalanceSnapshot)
_RUNS = table_of(Run)


# --- JSON helpers -------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Decimals as exact text, datetimes as ISO-8601 UTC, non-finite floats as null (never 0)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _error_text(exc: BaseException) -> str:
    """One short line: the exception type and the first line of its message (never a traceback)."""
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:ERROR_MAX_CHARS]


_last_errors: dict[str, str] = {}


def guarded(name: str, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one panel's read; any failure becomes an `unavailable` panel instead of an exception.

    The status is re-read every few seconds, so a lasting failure is logged once, not on every read."""
    try:
        panel = read()
    except Exception as exc:
        error = _error_text(exc)
        if _last_errors.get(name) != error:
            log.warning("status panel %s unavailable: %s", name, error)
            _last_errors[name] = error
        return {"available": False, "error": error}
    if _last_errors.pop(name, None) is not None:
        log.info("status panel %s readable again", name)
    return {"available": True, **jsonable(panel)}


# --- positions: the newest decision per symbol ---------------------------------------------------------


def _desired(row: Any) -> dict[str, Any]:
    status = row.desired_status
    known = status in ("value", "flat")
    return {
        "status": status,
        "value": row.desired if known else None,
        "clamped": row.desired_clamped if known else None,
        "reason": row.desired_reason,
    }


def _actual(row: Any) -> dict[str, Any]:
    """A is known only when the quorum agreed and the cycle recorded a size; otherwise it is unknown."""
    ok = row.quorum_status == "ok" and row.actual is not None and math.isfinite(row.actual)
    return {
        "status": "ok" if ok else "unknown",
        "value": row.actual if ok else None,
        "reason": None if ok else (row.quorum_status if row.quorum_status != "ok" else "not_recorded"),
    }


def _symbol_status(row: Any, actual: Mapping[str, Any]) -> str:
    if row.outcome == "hold":
        return f"hold: {row.hold_reason or 'unknown'}"
    return "ok" if actual["status"] == "ok" else "unknown"


def _no_decision(symbol: str) -> dict[str, Any]:
    unknown = {"status": "unknown", "value": None, "reason": "no_decision"}
    return {
        "symbol": symbol,
        "desired": {**unknown, "clamped": None},
        "actual": dict(unknown),
        "status": "unknown",
        "decision": None,
        "cycle_id": None,
    }


def latest_positions(session: Session, symbols: Sequence[str]) -> dict[str, Any]:
    """Desired vs actual per universe symbol from the newest decision row of each symbol.

    Every cycle writes one row per symbol, so the newest `4 × symbols` rows (index on created_at, LIMIT)
    hold each symbol's latest decision unless the symbol was skipped for a long time; such a symbol is
    shown as unknown (`no_decision`), never as flat.
    """
    limit = max(64, 4 * len(symbols))
    rows = list(session.execute(sa.select(_LOG).order_by(_LOG.c.created_at.desc()).limit(limit)))
    newest: dict[str, Any] = {}
    for candidate in rows:
        held = newest.get(candidate.symbol)
        if held is None or (candidate.created_at, candidate.id) > (held.created_at, held.id):
            newest[candidate.symbol] = candidate
    out = []
    for symbol in symbols:
        row = newest.get(symbol)
        if row is None:
            out.append(_no_decision(symbol))
            continue
        actual = _actual(row)
        out.append(
            {
                "symbol": symbol,
                "desired": _desired(row),
                "actual": actual,
                "status": _symbol_status(row, actual),
                "cap": row.cap,
                "margin_used": row.margin_used,
                "price": row.price,
                "decision": {
                    "row": row.decision_row,
                    "side": row.side,
                    "size": row.size_rounded if row.size_rounded is not None else row.size,
                    "outcome": row.outcome,
                    "hold_reason": row.hold_reason,
                    "client_order_id": row.client_order_id,
                    "at": row.created_at,
                },
                "cycle_id": row.cycle_id,
            }
        )
    last = max(rows, key=lambda r: (r.created_at, r.id), default=None)
    return {"cycle_id": None if last is None else last.cycle_id, "symbols": out}


def last_cycle(session: Session) -> dict[str, Any]:
    """The newest finished cycle (completed or failed): the newest `cycle.end` audit row (index on kind,
    ts), then its cycle row by primary key. Falls back to the cycle of the newest decision row (e.g. after
    audit retention); `cycle_id` None when neither exists."""
    cycle_id = session.execute(
        sa.select(_AUDIT.c.cycle_id)
        .where(_AUDIT.c.kind == "cycle.end")
        .order_by(_AUDIT.c.ts.desc(), _AUDIT.c.id.desc())
        .limit(1)
    ).scalar()
    if cycle_id is None:
        cycle_id = session.execute(
            sa.select(_LOG.c.cycle_id).order_by(_LOG.c.created_at.desc(), _LOG.c.id.desc()).limit(1)
        ).scalar()
    row = None
    if cycle_id is not None:
        row = session.execute(sa.select(_CYCLES).where(_CYCLES.c.cycle_id == cycle_id)).one_or_none()
    if row is None:
        return {"cycle_id": None}
    return {
        "cycle_id": row.cycle_id,
        "trigger": row.trigger,
        "outcome": row.outcome,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "orders_sent": row.orders_sent,
        "holds": row.holds,
        "error": row.error,
    }


# --- orders, fills, account, runs ----------------------------------------------------------------------


def order_summary(session: Session, recent: int = RECENT_ORDERS) -> dict[str, Any]:
    """Counts by status (index on status) and the newest records (primary key, LIMIT)."""
    counts = {
        str(s): int(n)
        for s, n in session.execute(sa.select(_ORDERS.c.status, sa.func.count()).group_by(_ORDERS.c.status))
    }
    rank = {s: i for i, s in enumerate(ORDER_STATUS_ORDER)}
    ordered = dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    stmt = sa.select(
        _ORDERS.c.created_at,
        _ORDERS.c.symbol,
        _ORDERS.c.side,
        _ORDERS.c.size,
        _ORDERS.c.filled_size,
        _ORDERS.c.status,
        _ORDERS.c.client_order_id,
        _ORDERS.c.cycle_id,
    )
    rows = session.execute(stmt.order_by(_ORDERS.c.id.desc()).limit(recent))
    return {
        "counts": ordered,
        "total": sum(counts.values()),
        "recent": [dict(r._mapping) for r in rows],
    }


def fills_summary(session: Session, now: float, window_s: float = FILLS_WINDOW_S) -> dict[str, Any]:
    """Fills and fees per fee token over the last `window_s` (index on exchange_time, LIMIT).

    Fees are summed here, not in SQL: decimals are text on SQLite and never summed inside the database.
    """
    since = as_utc(now - window_s)
    stmt = (
        sa.select(_FILLS.c.fee, _FILLS.c.fee_token)
        .where(_FILLS.c.exchange_time >= since)
        .order_by(_FILLS.c.exchange_time.desc())
        .limit(FILLS_SCAN_LIMIT + 1)
    )
    rows = list(session.execute(stmt))
    truncated = len(rows) > FILLS_SCAN_LIMIT
    fees: dict[str, Decimal] = {}
    for row in rows[:FILLS_SCAN_LIMIT]:
        fees[row.fee_token] = fees.get(row.fee_token, Decimal(0)) + row.fee
    return {
        "window_s": window_s,
        "count": min(len(rows), FILLS_SCAN_LIMIT),
        "fees": dict(sorted(fees.items())),
        "truncated": truncated,
    }


def _snapshot_json(row: Any) -> dict[str, Any]:
    return {
        "value": row.account_value,
        "margin_cross": row.cross_maintenance_margin_used,
        "margin_total": row.total_margin_used,
        "snapshot_at": row.fetched_at,
        "snapshot_id": row.id,
    }


def account_summary(session: Session) -> dict[str, Any]:
    """The newest usable account snapshot (index on usable, id); an unusable newer one is flagged."""
    cols = (
        _SNAP.c.id,
        _SNAP.c.fetched_at,
        _SNAP.c.account_value,
        _SNAP.c.cross_maintenance_margin_used,
        _SNAP.c.total_margin_used,
        _SNAP.c.usable,
    )
    usable = session.execute(
        sa.select(*cols).where(_SNAP.c.usable == sa.true()).order_by(_SNAP.c.id.desc()).limit(1)
    ).one_or_none()
    newest = session.execute(sa.select(*cols).order_by(_SNAP.c.id.desc()).limit(1)).one_or_none()
    if usable is None:
        out: dict[str, Any] = {
            "value": None,
            "margin_cross": None,
            "margin_total": None,
            "snapshot_at": None,
            "snapshot_id": None,
        }
    else:
        out = _snapshot_json(usable)
    out["newest_unusable_at"] = (
        newest.fetched_at if newest is not None and (usable is None or newest.id != usable.id) else None
    )
    return out


def run_counts(session: Session) -> dict[str, Any]:
    """Runs by state (providence.md §3.4; services.md §9 states) and active runs per symbol.

    Grouped on the leading columns of `ix_runs_symbol_state` with COUNT(column) for the ended and
    heightened parts, so the database answers from that index in its order, without a sort.
    """
    c = _RUNS.c
    stmt = sa.select(
        c.symbol, c.exit_run, sa.func.count(), sa.func.count(c.end_time), sa.func.count(c.height)
    ).group_by(c.symbol, c.exit_run)
    by_state = {"active": 0, "flagged": 0, "ended": 0, "heightened": 0}
    active: dict[str, int] = {}
    for symbol, exit_run, total, ended, heightened in session.execute(stmt):
        open_runs = int(total) - int(ended)
        by_state["ended"] += int(ended)
        by_state["heightened"] += int(heightened)
        if exit_run:
            by_state["flagged"] += open_runs
        else:
            by_state["active"] += open_runs
            if open_runs:
                active[str(symbol)] = active.get(str(symbol), 0) + open_runs
    return {"by_state": by_state, "active_by_symbol": dict(sorted(active.items()))}


# --- the whole status ----------------------------------------------------------------------------------


def portfolio_status(
    engine: Engine,
    symbols: Sequence[str],
    now: float,
    take_profit: Callable[[], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every panel, each read in its own read-only transaction and each guarded on its own."""
    ro = read_only(engine)

    def read(query: Callable[[Session], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with Session(ro) as session, session.begin():
                return query(session)

        return run

    out = {
        "runs": guarded("runs", read(run_counts)),
        "positions": guarded("positions", read(lambda s: latest_positions(s, symbols))),
        "last_cycle": guarded("last_cycle", read(last_cycle)),
        "orders": guarded("orders", read(order_summary)),
        "account": guarded("account", read(account_summary)),
        "fills": guarded("fills", read(lambda s: fills_summary(s, now))),
    }
    if take_profit is not None:
        tp = take_profit

        def tp_read() -> dict[str, Any]:
            status = dict(tp())
            status.pop("window", None)  # the raw readings are long; the gain already summarises them
            for key in ("baseline_set_at", "cooldown_until"):
                if isinstance(status.get(key), int | float):
                    status[key] = datetime.fromtimestamp(status[key], UTC)
            return status

        out["take_profit"] = guarded("take_profit", tp_read)
    return out


class ThrottledStatus:
    """Re-reads the panels at most every `min_interval_s` of wall time; callers in between get the last
    result. The live view asks on every simulated tick and the dashboard on every request, so without
    this a fast replay would query the database hundreds of times a second."""

    def __init__(self, read: Callable[[], dict[str, Any]], min_interval_s: float = 2.0) -> None:
        self._read = read
        self._min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._at = -math.inf

    def get(self, *, fresh: bool = False) -> dict[str, Any]:
        with self._lock:
            if fresh or self._last is None or time.monotonic() - self._at >= self._min_interval_s:
                try:
                    self._last = self._read()
                except Exception as exc:  # portfolio_status guards each panel; this is the last resort
                    log.warning("status read failed: %s", _error_text(exc))
                    self._last = {"status_error": _error_text(exc)}
                self._at = time.monotonic()
            return self._last
