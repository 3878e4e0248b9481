"""Read models of the dashboard's population, positions, fills, equity and order-detail panels
(services.md §9), beside the list endpoints of `dashboard_read`.

* **Population.** "Qualifying" and Σdir come from `PortfolioQueries.aggregate`, the very query the
  reconciliation forms D from (portfolio.md §3.2), with the configured threshold and freshness, so the
  panel can never disagree with what the engine acts on.
* **Positions.** Only what the latest cycle stored: its reconciliation_log rows and the
  `reconcile.decision` audit rows (breakdown, per-source readings). Anything the cycle did not store is
  null, never zero and never recomputed now.
* **Equity.** Down-sampled while streaming (last value per bucket), so a year of 15 s snapshots never
  sits in memory; the bucket width is chosen from COUNT/MIN/MAX before the rows are read.
"""

from __future__ import annotations

import json
import math
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
    BalanceSnapshot,
    Epoch,
    FillRecord,
    OrderRecord,
    ReconciliationLog,
    Run,
    table_of,
)
from ttt.adapters.db.repositories.portfolio_extra import PortfolioQueries
from ttt.config.models import Portfolio
from ttt.services.dashboard_read import (
    BadRequest,
    NotFound,
    audit_row,
    cursor_time,
    decode_cursor,
    keyset_page,
    order_row,
    parse_limit,
)
from ttt.services.portfolio.read_model import jsonable

HISTOGRAM_BINS = 20
MAX_POINTS = 2000
DECISION_KIND = "reconcile.decision"
ORDER_FILLS_LIMIT = 1000
ORDER_AUDIT_LIMIT = 1000

_RUNS = table_of(Run)
_LOG = table_of(ReconciliationLog)
_AUDIT = table_of(AuditEntry)
_FILLS = table_of(FillRecord)
_ORDERS = table_of(OrderRecord)
_SNAP = table_of(BalanceSnapshot)
_EPOCHS = table_of(Epoch)


# --- parameters -----------------------------------------------------------------------------------------


def parse_time(name: str, raw: str | None) -> datetime | None:
    """ISO-8601 (naive means UTC) or epoch seconds. A `+` sent unescaped in a query arrives as a space,
    so that spelling of the offset is accepted too."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    message = f"{name}={raw!r}: must be ISO-8601 (e.g. 2024-01-31T12:00:00Z) or epoch seconds"
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            raise BadRequest(message)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadRequest(message) from None
    for candidate in (text, _space_as_plus(text)):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise BadRequest(message)


def _space_as_plus(text: str) -> str:
    head, sep, tail = text.rpartition(" ")
    return f"{head}+{tail}" if sep and "T" in head else text


def parse_step(raw: str | None) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"step={raw!r}: must be a number of seconds > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"step={raw!r}: must be a number of seconds > 0")
    return value


def _db_time(value: Any) -> datetime:
    """MIN/MAX bypass the column type: SQLite gives text, MariaDB a naive datetime (stored as UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_doc(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping) else None


# --- pure helpers ---------------------------------------------------------------------------------------


def histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> dict[str, list[Any]]:
    """Equal-width bins from min to max, the last one closed; one zero-width bin when all values agree."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"edges": [], "counts": []}
    lo, hi = min(finite), max(finite)
    if lo == hi:
        return {"edges": [lo, hi], "counts": [len(finite)]}
    width = (hi - lo) / bins
    edges = [lo + i * width for i in range(bins)] + [hi]
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return {"edges": edges, "counts": counts}


def auto_step(first: datetime, last: datetime, max_points: int = MAX_POINTS) -> float:
    """Whole seconds wide enough that aligned buckets over [first, last] number at most `max_points`:
    ⌊last/w⌋ − ⌊first/w⌋ + 1 ≤ ⌊span/w⌋ + 2."""
    span = (last - first).total_seconds()
    return float(max(1, math.ceil(span / (max_points - 2))))


def _fill_row(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(
        {
            "id": f.id,
            "exchange_id": f.exchange_id,
            "trade_id": f.trade_id,
            "client_order_id": f.client_order_id,
            "exchange_order_id": f.exchange_order_id,
            "symbol": f.symbol,
            "side": f.side,
            "price": f.price,
            "size": f.size,
            "fee": f.fee,
            "fee_token": f.fee_token,
            "liquidity": f.liquidity,
            "closed_pnl": f.closed_pnl,
            "exchange_time": f.exchange_time,
            "ingested_at": f.ingested_at,
        }
    )
    return out


def _source_row(doc: Mapping[str, Any], dissent: set[str]) -> dict[str, Any]:
    """One quorum source as the decision audit row stored it (portfolio.md §5)."""
    name = doc.get("source")
    if "unavailable" in doc:
        return {
            "name": name,
            "status": "unavailable",
            "size": None,
            "margin_used": None,
            "as_of": None,
            "age_s": None,
            "reason": doc.get("unavailable"),
        }
    as_of = doc.get("as_of")
    at = None
    if isinstance(as_of, int | float) and not isinstance(as_of, bool) and math.isfinite(as_of):
        at = datetime.fromtimestamp(as_of, UTC)
    out: dict[str, Any] = jsonable(
        {
            "name": name,
            "status": "dissent" if name in dissent else "ok",
            "size": doc.get("size"),
            "margin_used": doc.get("margin_used"),
            "as_of": at,
            "age_s": doc.get("age_s"),
            "reason": None,
        }
    )
    return out


def _position_row(log: Any, payload: Mapping[str, Any] | None) -> dict[str, Any]:
    desired_doc = _json_doc(payload.get("desired")) if payload is not None else None
    quorum_doc = _json_doc(payload.get("quorum")) if payload is not None else None
    desired_value = log.desired
    if desired_value is None and desired_doc is not None:
        desired_value = desired_doc.get("value")
    sources: list[dict[str, Any]] | None = None
    if quorum_doc is not None and isinstance(quorum_doc.get("sources"), list):
        dissent = {str(d) for d in quorum_doc.get("dissent") or []}
        sources = [_source_row(d, dissent) for d in quorum_doc["sources"] if isinstance(d, Mapping)]
    ok = log.quorum_status == "ok"
    out: dict[str, Any] = jsonable(
        {
            "symbol": log.symbol,
            "desired": {
                "status": log.desired_status,
                "value": desired_value,
                "reason": log.desired_reason,
                "breakdown": desired_doc.get("breakdown") if desired_doc is not None else None,
            },
            "actual": {
                "status": "ok" if ok else "unknown",
                "value": log.actual,
                "reason": None if ok else log.quorum_status,
                "sources": sources,
            },
            "cap": log.cap,
            "margin_used": log.margin_used,
            "decision": {
                "row": log.decision_row,
                "side": log.side,
                "size": log.size,
                "outcome": log.outcome,
            },
        }
    )
    return out


# --- the queries ---------------------------------------------------------------------------------------


class DashboardPanels:
    """Each method reads in one read-only transaction and returns plain JSON-ready data.

    `portfolio` is the configuration's `portfolio` section: the population panel needs the same
    live_pnl_threshold and run_freshness_s the reconciliation uses."""

    def __init__(self, engine: Engine, portfolio: Portfolio) -> None:
        self._engine = read_only(engine)
        self._live_pnl_threshold = float(portfolio.live_pnl_threshold)
        self._run_freshness_s = float(portfolio.run_freshness_s)

    def _session(self) -> Session:
        return Session(self._engine)

    def population(self, params: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
        at = time.time() if now is None else now
        symbol = params.get("symbol") or None
        c = _RUNS.c
        active = sa.and_(c.end_time.is_(None), c.exit_run == sa.false())
        if symbol is not None:
            active = sa.and_(active, c.symbol == symbol)

        def count_where(cond: Any) -> Any:
            return sa.func.sum(sa.case((cond, 1), else_=0))

        stmt = (
            sa.select(
                c.symbol,
                sa.func.count(),
                count_where(c.position_direction > 0),
                count_where(c.position_direction < 0),
                count_where(c.position_direction == 0),
                sa.func.sum(c.live_pnl),
                sa.func.count(c.live_pnl),
            )
            .where(active)
            .group_by(c.symbol)
            .order_by(c.symbol)
        )
        with self._session() as session, session.begin():
            groups: dict[str, tuple[Any, ...]] = {str(r[0]): tuple(r) for r in session.execute(stmt)}
            if symbol is not None and symbol not in groups:
                groups[symbol] = (symbol, 0, 0, 0, 0, None, 0)
            portfolio = PortfolioQueries(session)
            rows = []
            for name in sorted(groups):
                _, n, long_, short, flat, pnl, n_pnl = groups[name]
                agg = portfolio.aggregate(name, at, self._live_pnl_threshold, self._run_freshness_s)
                rows.append(
                    {
                        "symbol": name,
                        "active": int(n),
                        "long": int(long_ or 0),
                        "short": int(short or 0),
                        "flat": int(flat or 0),
                        "open_pnl": float(pnl) if int(n_pnl) > 0 and pnl is not None else None,
                        "qualifying": agg.n,
                        "sum_direction": agg.sum_dir,
                    }
                )
            pnls = [
                float(v)
                for v in session.execute(
                    sa.select(c.live_pnl).where(active, c.live_pnl.is_not(None))
                ).scalars()
            ]
        return {"symbols": jsonable(rows), "pnl_histogram": jsonable(histogram(pnls))}

    def positions(self) -> dict[str, Any]:
        lc = _LOG.c
        with self._session() as session, session.begin():
            cycle_id = session.execute(sa.select(lc.cycle_id).order_by(lc.id.desc()).limit(1)).scalar()
            if cycle_id is None:
                return {"cycle_id": None, "symbols": []}
            logs: dict[str, Any] = {}
            for row in session.execute(sa.select(_LOG).where(lc.cycle_id == cycle_id).order_by(lc.id)):
                logs[str(row.symbol)] = row
            a = _AUDIT.c
            payloads: dict[str, Mapping[str, Any] | None] = {}
            for sym, payload in session.execute(
                sa.select(a.symbol, a.payload)
                .where(a.cycle_id == cycle_id, a.kind == DECISION_KIND)
                .order_by(a.id)
            ):
                if sym is not None:
                    payloads[str(sym)] = _json_doc(payload)
        return {
            "cycle_id": cycle_id,
            "symbols": [_position_row(logs[s], payloads.get(s)) for s in sorted(logs)],
        }

    def fills(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit = parse_limit(params.get("limit"))
        cursor = decode_cursor(params.get("cursor"), (str, int))
        since = parse_time("since", params.get("since"))
        c = _FILLS.c
        stmt = sa.select(_FILLS)
        if params.get("symbol"):
            stmt = stmt.where(c.symbol == params["symbol"])
        if since is not None:
            stmt = stmt.where(c.exchange_time >= since)
        if cursor is not None:
            at = cursor_time(cursor[0])
            stmt = stmt.where(sa.or_(c.exchange_time < at, sa.and_(c.exchange_time == at, c.id < cursor[1])))
        with self._session() as session, session.begin():
            rows = list(session.execute(stmt.order_by(c.exchange_time.desc(), c.id.desc()).limit(limit + 1)))
        page, next_cursor = keyset_page(rows, limit, lambda r: [r.exchange_time.isoformat(), int(r.id)])
        return {"fills": [_fill_row(r) for r in page], "next_cursor": next_cursor}

    def equity(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Usable snapshots only (a partial one would plot a false dip). A `step` too fine for the range
        is widened to the automatic one, so no answer exceeds MAX_POINTS points."""
        start = parse_time("from", params.get("from"))
        end = parse_time("to", params.get("to"))
        step = parse_step(params.get("step"))
        if start is not None and end is not None and start > end:
            raise BadRequest(f"from={params.get('from')!r} is after to={params.get('to')!r}")
        s = _SNAP.c
        where = [s.usable == sa.true()]
        if start is not None:
            where.append(s.fetched_at >= start)
        if end is not None:
            where.append(s.fetched_at <= end)
        e = _EPOCHS.c
        epoch_where = []
        if start is not None:
            epoch_where.append(e.triggered_at >= start)
        if end is not None:
            epoch_where.append(e.triggered_at <= end)
        points: list[list[Any]] = []
        with self._session() as session, session.begin():
            n, first, last = session.execute(
                sa.select(sa.func.count(), sa.func.min(s.fetched_at), sa.func.max(s.fetched_at)).where(*where)
            ).one()
            if int(n) > 0:
                lo, hi = _db_time(first), _db_time(last)
                width = step
                if int(n) > MAX_POINTS:
                    width = max(step or 0.0, auto_step(lo, hi))
                points = self._buckets(session, where, width)
            epochs = session.execute(
                sa.select(e.triggered_at, e.kind, e.height).where(*epoch_where).order_by(e.triggered_at, e.id)
            ).all()
        return {
            "points": points,
            "epochs": [jsonable({"ts": t, "kind": k, "height": h}) for t, k, h in epochs],
        }

    @staticmethod
    def _buckets(session: Session, where: list[Any], width: float | None) -> list[list[Any]]:
        """Last snapshot of each ⌊t/width⌋ bucket, oldest first; every snapshot when width is None."""
        s = _SNAP.c
        stmt = (
            sa.select(s.fetched_at, s.account_value)
            .where(*where)
            .order_by(s.fetched_at, s.id)
            .execution_options(yield_per=1000)
        )
        out: list[list[Any]] = []
        bucket: float | None = None
        for fetched_at, value in session.execute(stmt):
            point = [jsonable(fetched_at), jsonable(value)]
            if width is None:
                out.append(point)
                continue
            b = math.floor(fetched_at.timestamp() / width)
            if b == bucket:
                out[-1] = point
            else:
                out.append(point)
                bucket = b
        return out

    def order(self, client_order_id: str) -> dict[str, Any]:
        o = _ORDERS.c
        with self._session() as session, session.begin():
            row = session.execute(
                sa.select(_ORDERS).where(o.client_order_id == client_order_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"order {client_order_id!r} does not exist")
            a = _AUDIT.c
            audit = session.execute(
                sa.select(_AUDIT)
                .where(a.client_order_id == client_order_id)
                .order_by(a.id)
                .limit(ORDER_AUDIT_LIMIT)
            ).all()
            f = _FILLS.c
            ours = f.client_order_id == client_order_id
            if row.exchange_order_id is not None:
                # a fill the exchange reported without our cloid still belongs to the order by its oid
                ours = sa.or_(
                    ours,
                    sa.and_(
                        f.client_order_id.is_(None),
                        f.exchange_order_id == row.exchange_order_id,
                        f.symbol == row.symbol,
                    ),
                )
            fills = session.execute(
                sa.select(_FILLS).where(ours).order_by(f.exchange_time, f.id).limit(ORDER_FILLS_LIMIT)
            ).all()
        return {
            **order_row(row),
            "audit": [audit_row(r) for r in audit],
            "fills": [_fill_row(r) for r in fills],
        }
