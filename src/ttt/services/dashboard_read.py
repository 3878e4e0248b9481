"""Read-only queries behind the dashboard's JSON API (services.md §9) for `3t dashboard` and `3t run`.

Lists are newest first and paginated by keyset: the opaque cursor encodes the sort key of the last row
returned, so a page never shifts when new rows arrive and the database answers from the primary key or
an index instead of counting an OFFSET. A cursor that does not decode, or decodes into the wrong shape,
is a 400 naming the parameter, never a 500.

Nothing here reads secrets: the rows are runs, cycles, orders, epochs and audit entries, and audit
payloads never carry secrets (portfolio.md §17).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import (
    AuditEntry,
    Epoch,
    OrderRecord,
    ReconciliationCycle,
    ReconciliationLog,
    Run,
    table_of,
)
from ttt.adapters.db.types import as_utc
from ttt.services.portfolio.read_model import account_summary, jsonable

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
ALERTS_WINDOW_S = 86_400.0
ALERTS_LIMIT = 100
RUN_STATES = ("active", "ended", "flagged", "heightened")

_RUNS = table_of(Run)
_CYCLES = table_of(ReconciliationCycle)
_LOG = table_of(ReconciliationLog)
_ORDERS = table_of(OrderRecord)
_EPOCHS = table_of(Epoch)
_AUDIT = table_of(AuditEntry)


class BadRequest(ValueError):
    """A query parameter the API cannot use; the message names it (HTTP 400)."""


class NotFound(LookupError):
    """The addressed row does not exist (HTTP 404)."""


# --- parameters -----------------------------------------------------------------------------------------


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit={raw!r}: must be an integer between 1 and {MAX_LIMIT}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit={value}: must be between 1 and {MAX_LIMIT}")
    return value


def parse_int(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r}: must be an integer") from None


def encode_cursor(key: list[Any]) -> str:
    data = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(raw: str | None, shape: tuple[type, ...]) -> list[Any] | None:
    """The key a cursor encodes; its element types must match `shape` exactly."""
    if raw is None or raw == "":
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor this API returned") from None
    if (
        not isinstance(key, list)
        or len(key) != len(shape)
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, shape, strict=True))
    ):
        raise BadRequest("cursor: not a cursor this API returned")
    return key


def cursor_time(raw: str) -> datetime:
    """The timestamp part of a keyset cursor, as ISO text: it keeps the stored microseconds exactly, where
    float epoch seconds do only while their resolution stays under half a microsecond (until ~2100)."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest("cursor: not a cursor this API returned") from None
    if parsed.tzinfo is None:
        raise BadRequest("cursor: not a cursor this API returned")
    return parsed.astimezone(UTC)


def keyset_page(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """`limit + 1` rows were read: the extra one only says whether another page exists."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(key(rows[-1])) if more and rows else None)


# --- rows as JSON ---------------------------------------------------------------------------------------


def _j(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(value)
    return out


def _run_row(r: Any) -> dict[str, Any]:
    return _j(
        {
            "id": r.id,
            "symbol": r.symbol,
            "shard": r.shard,
            "start_time": r.start_time,
            "end_time": r.end_time,
            "end_reason": r.end_reason,
            "position_direction": r.position_direction,
            "live_pnl": r.live_pnl,
            "exit_run": bool(r.exit_run),
            "height": r.height,
            "update_time": r.update_time,
        }
    )


def _state_summary(raw: Any) -> dict[str, Any]:
    """Scalar VOMS metrics of a run state, never the raw arrays (§9 run detail)."""
    try:
        state = raw if isinstance(raw, Mapping) else json.loads(raw)
    except (TypeError, ValueError):
        return {"available": False}
    if not isinstance(state, Mapping):
        return {"available": False}
    out: dict[str, Any] = {"available": True}
    for key, value in state.items():
        scalar = isinstance(value, bool | int | float) or value is None
        if scalar or (isinstance(value, str) and len(value) <= 64):
            out[str(key)] = value
    return _j(out)


def _cycle_row(c: Any) -> dict[str, Any]:
    return _j(
        {
            "cycle_id": c.cycle_id,
            "trigger": c.trigger,
            "scheduled_at": c.scheduled_at,
            "started_at": c.started_at,
            "finished_at": c.finished_at,
            "outcome": c.outcome,
            "symbols": c.symbols,
            "orders_sent": c.orders_sent,
            "holds": c.holds,
            "error": c.error,
        }
    )


_ORDER_FIELDS = (
    "client_order_id",
    "cycle_id",
    "symbol",
    "side",
    "size",
    "requested_size",
    "style",
    "time_in_force",
    "limit_price",
    "reference_price",
    "decision_price",
    "reduce_only",
    "status",
    "exchange_order_id",
    "filled_size",
    "avg_fill_price",
    "fees_usd",
    "error_code",
    "error_message",
    "attempts",
    "created_at",
    "updated_at",
    "submitted_at",
    "closed_at",
)


def order_row(o: Any) -> dict[str, Any]:
    return _j({name: getattr(o, name) for name in _ORDER_FIELDS})


def _epoch_row(e: Any) -> dict[str, Any]:
    return _j(
        {
            "id": e.id,
            "kind": e.kind,
            "height": e.height,
            "triggered_at": e.triggered_at,
            "baseline_before": e.baseline_before,
            "value": e.value,
            "gain": e.gain,
            "runs_flagged": e.runs_flagged,
        }
    )


def audit_row(a: Any) -> dict[str, Any]:
    return _j(
        {
            "id": a.id,
            "ts": a.ts,
            "kind": a.kind,
            "actor": a.actor,
            "severity": a.severity,
            "symbol": a.symbol,
            "cycle_id": a.cycle_id,
            "client_order_id": a.client_order_id,
            "message": a.message,
        }
    )


# --- the queries ---------------------------------------------------------------------------------------


class DashboardQueries:
    """Each method reads in one read-only transaction and returns plain JSON-ready data."""

    def __init__(self, engine: Engine) -> None:
        self._engine = read_only(engine)

    def _session(self) -> Session:
        return Session(self._engine)

    def runs(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(params.get("limit"))
        cursor = decode_cursor(params.get("cursor"), (int,))
        state = params.get("state") or None
        if state is not None and state not in RUN_STATES:
            raise BadRequest(f"state={state!r}: one of {', '.join(RUN_STATES)}")
        height = parse_int("height", params.get("height"))
        c = _RUNS.c
        stmt = sa.select(
            c.id,
            c.symbol,
            c.shard,
            c.start_time,
            c.end_time,
            c.end_reason,
            c.position_direction,
            c.live_pnl,
            c.exit_run,
            c.height,
            c.update_time,
        )
        if params.get("symbol"):
            stmt = stmt.where(c.symbol == params["symbol"])
        if state == "active":
            stmt = stmt.where(c.end_time.is_(None), c.exit_run == sa.false())
        elif state == "ended":
            stmt = stmt.where(c.end_time.is_not(None))
        elif state == "flagged":
            stmt = stmt.where(c.exit_run == sa.true(), c.end_time.is_(None))
        elif state == "heightened":
            stmt = stmt.where(c.height.is_not(None))
        if height is not None:
            stmt = stmt.where(c.height == height)
        if cursor is not None:
            stmt = stmt.where(c.id < cursor[0])
        with self._session() as session, session.begin():
            rows = list(session.execute(stmt.order_by(c.id.desc()).limit(limit + 1)))
        page, next_cursor = keyset_page(rows, limit, lambda r: [int(r.id)])
        return {"runs": [_run_row(r) for r in page], "next_cursor": next_cursor}

    def run(self, run_id: str) -> dict[str, Any]:
        try:
            rid = int(run_id)
        except ValueError:
            raise BadRequest(f"run id {run_id!r}: must be an integer") from None
        with self._session() as session, session.begin():
            row = session.get(Run, rid)
            if row is None:
                raise NotFound(f"run {rid} does not exist")
            out = _run_row(row)
            out.update(
                jsonable(
                    {
                        "seed": row.seed,
                        "start_balance": row.start_balance,
                        "end_balance": row.end_balance,
                        "max_duration": row.max_duration,
                        "iteration_count": row.iteration_count,
                        "ann_params": row.ann_params,
                        "apex_file": row.apex_file,
                        "apex_rank": row.apex_rank,
                    }
                )
            )
            out["run_state"] = _state_summary(row.run_state)
        return out

    def cycles(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(params.get("limit"))
        cursor = decode_cursor(params.get("cursor"), (str, str))
        c = _CYCLES.c
        stmt = sa.select(_CYCLES)
        if cursor is not None:
            at = cursor_time(cursor[0])
            stmt = stmt.where(
                sa.or_(c.scheduled_at < at, sa.and_(c.scheduled_at == at, c.cycle_id < cursor[1]))
            )
        with self._session() as session, session.begin():
            rows = list(
                session.execute(stmt.order_by(c.scheduled_at.desc(), c.cycle_id.desc()).limit(limit + 1))
            )
        page, next_cursor = keyset_page(
            rows, limit, lambda r: [as_utc(r.scheduled_at).isoformat(), str(r.cycle_id)]
        )
        return {"cycles": [_cycle_row(r) for r in page], "next_cursor": next_cursor}

    def cycle(self, cycle_id: str) -> dict[str, Any]:
        with self._session() as session, session.begin():
            row = session.execute(sa.select(_CYCLES).where(_CYCLES.c.cycle_id == cycle_id)).one_or_none()
            if row is None:
                raise NotFound(f"cycle {cycle_id!r} does not exist")
            log_rows = session.execute(
                sa.select(_LOG).where(_LOG.c.cycle_id == cycle_id).order_by(_LOG.c.id)
            ).all()
            audit = session.execute(
                sa.select(_AUDIT).where(_AUDIT.c.cycle_id == cycle_id).order_by(_AUDIT.c.id).limit(1000)
            ).all()
            return {
                **_cycle_row(row),
                "log": [jsonable(dict(r._mapping)) for r in log_rows],
                "audit": [audit_row(a) for a in audit],
            }

    def orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(params.get("limit"))
        cursor = decode_cursor(params.get("cursor"), (int,))
        c = _ORDERS.c
        stmt = sa.select(_ORDERS)
        for name in ("status", "symbol", "cycle_id"):
            if params.get(name):
                stmt = stmt.where(c[name] == params[name])
        if cursor is not None:
            stmt = stmt.where(c.id < cursor[0])
        with self._session() as session, session.begin():
            rows = list(session.execute(stmt.order_by(c.id.desc()).limit(limit + 1)))
        page, next_cursor = keyset_page(rows, limit, lambda r: [int(r.id)])
        return {"orders": [order_row(r) for r in page], "next_cursor": next_cursor}

    def epochs(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(params.get("limit"))
        cursor = decode_cursor(params.get("cursor"), (int,))
        c = _EPOCHS.c
        stmt = sa.select(_EPOCHS)
        if cursor is not None:
            stmt = stmt.where(c.id < cursor[0])
        with self._session() as session, session.begin():
            rows = list(session.execute(stmt.order_by(c.id.desc()).limit(limit + 1)))
            page, next_cursor = keyset_page(rows, limit, lambda r: [int(r.id)])
            heights = [int(r.height) for r in page if r.height is not None]
            pnl: dict[int, dict[str, float]] = {}
            if heights:
                rc = _RUNS.c
                for height, symbol, total in session.execute(
                    sa.select(rc.height, rc.symbol, sa.func.sum(rc.live_pnl))
                    .where(rc.height.in_(heights))
                    .group_by(rc.height, rc.symbol)
                ):
                    pnl.setdefault(int(height), {})[str(symbol)] = float(total or 0.0)
        epochs = []
        for r in page:
            row = _epoch_row(r)
            row["pnl_by_symbol"] = jsonable(pnl.get(int(r.height), {})) if r.height is not None else {}
            epochs.append(row)
        return {"epochs": epochs, "next_cursor": next_cursor}

    # --- overview panels -------------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        with self._session() as session, session.begin():
            return _j(account_summary(session))

    def take_profit(self, cfg: Any) -> dict[str, Any]:
        """Baseline, gain (median of the evaluation window vs the baseline, as the task computes it) and
        the thresholds; gain is null until the window is full."""
        from ttt.adapters.db.repositories.take_profit import TakeProfitRepository
        from ttt.domain.quorum import median
        from ttt.domain.takeprofit import gain
        from ttt.services.portfolio.takeprofit import state_from_row

        with self._session() as session, session.begin():
            state = state_from_row(TakeProfitRepository(session).get_state())
        g = None
        if state.baseline is not None and len(state.window) >= cfg.median_window:
            g = gain(median([r.value for r in state.window]), state.baseline)
        cooldown = state.cooldown_until
        return _j(
            {
                "enabled": cfg.enabled,
                "baseline": state.baseline,
                "gain": g,
                "threshold": cfg.threshold,
                "drawdown_threshold": -cfg.threshold / cfg.reward_multiple,
                "cooldown_until": datetime.fromtimestamp(cooldown, UTC) if cooldown else None,
            }
        )

    def last_cycle(self) -> dict[str, Any] | None:
        c = _CYCLES.c
        with self._session() as session, session.begin():
            row = session.execute(
                sa.select(_CYCLES).where(c.finished_at.is_not(None)).order_by(c.finished_at.desc()).limit(1)
            ).one_or_none()
        return None if row is None else _cycle_row(row)

    def alerts(self, now: float | None = None) -> list[dict[str, Any]]:
        """Warning and critical audit entries of the last 24 h, newest first."""
        since = as_utc((time.time() if now is None else now) - ALERTS_WINDOW_S)
        a = _AUDIT.c
        with self._session() as session, session.begin():
            rows = session.execute(
                sa.select(_AUDIT)
                .where(a.ts >= since, a.severity.in_(("warning", "critical")))
                .order_by(a.id.desc())
                .limit(ALERTS_LIMIT)
            ).all()
        return [audit_row(r) for r in rows]

    def market_from_audit(self) -> dict[str, Any] | None:
        """The market source of the newest `config.loaded` row that names one (written by the feed)."""
        a = _AUDIT.c
        with self._session() as session, session.begin():
            rows = session.execute(
                sa.select(a.payload, a.ts, a.actor)
                .where(a.kind == "config.loaded")
                .order_by(a.id.desc())
                .limit(50)
            ).all()
        for payload, ts, actor in rows:
            doc = payload if isinstance(payload, Mapping) else {}
            if doc.get("market_source"):
                return _j(
                    {
                        "source": doc["market_source"],
                        "reason": doc.get("market_reason"),
                        "as_of": ts,
                        "by": actor,
                    }
                )
        return None

    def ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
