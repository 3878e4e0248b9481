"""`ttt.ops.collect_metrics` (services.md §2.1, §3, §8.1): DB-derived gauges computed once, into the cache.

The document at `metrics:db` (key prefixed by the cache, TTL 60 s) is what `DbGaugeCollector` re-exports:

    {"ts": <epoch s>, "gauges": {<name>: [{"labels": {<label>: <value>}, "value": <float>}, ...]},
     "errors": {<name>: "<what failed>"}}

Each gauge is computed in its own guarded block, so one failing query leaves the other gauges in the
document (the reference aborted every collector on one error). A gauge that could not be computed is absent,
never 0: an exporter must not show "no runs" or "flat" for "unknown". The same holds for the account gauges
when no usable snapshot exists yet.

Besides the `DB_GAUGES` families, the document carries `ttt_price_age_seconds` and
`ttt_providence_shard_lag_seconds`, which §8.1 also lists under collect_metrics; they are process gauges
in `Metrics` too, so `DbGaugeCollector` does not re-export them (a series must exist once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ttt.adapters.db import models as m
from ttt.ports import Cache, Clock, LockManager
from ttt.services.locking import run_locked
from ttt.telemetry.metrics import DB_GAUGES_KEY

log = logging.getLogger(__name__)

METRICS_LOCK = "ops:metrics"
METRICS_LOCK_TTL_S = 30
DOC_TTL_S = 60
QUEUES = ("high_priority", "low_priority")
# kombu's Redis transport keeps messages sent with a priority in extra lists `<queue>\x06\x16<p>`
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)
PRICE_AGE = "ttt_price_age_seconds"
SHARD_LAG = "ttt_providence_shard_lag_seconds"

Sample = dict[str, Any]


class QueueLengths:
    """LLEN on the Celery broker's Redis lists (services.md §3 "Queue depth")."""

    def __init__(self, client: Any, queues: Sequence[str] = QUEUES) -> None:
        self._client = client
        self._queues = list(queues)

    def __call__(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self._queues:
            names = [q, *(f"{q}{KOMBU_PRIORITY_SEP}{p}" for p in KOMBU_PRIORITY_STEPS)]
            out[q] = sum(int(self._client.llen(n)) for n in names)
        return out


@dataclass
class MetricsDocument:
    ts: float
    gauges: dict[str, list[Sample]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"ts": self.ts, "gauges": self.gauges, "errors": self.errors},
            separators=(",", ":"),
            allow_nan=False,
        )


def _sample(value: float, **labels: str) -> Sample:
    return {"labels": labels, "value": float(value)}


class MetricsCollector:
    """Computes the document; `symbols` are the universe, reported with 0 runs when none is active."""

    def __init__(
        self,
        engine: Engine,
        cache: Cache,
        clock: Clock,
        symbols: Sequence[str],
        *,
        queue_lengths: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._engine = engine
        self._cache = cache
        self._clock = clock
        self._symbols = list(symbols)
        self._queue_lengths = queue_lengths
        self.gauge_fns: dict[str, Callable[[float], list[Sample]]] = {
            "ttt_providence_active_runs": self.active_runs,
            "ttt_providence_runs_direction": self.runs_direction,
            "ttt_providence_open_pnl_usd": self.open_pnl,
            "ttt_providence_height": self.height,
            "ttt_account_value_usd": self.account_value,
            "ttt_account_margin_used_usd": self.margin_used,
            "ttt_market_data_bar_age_seconds": self.bar_age,
            PRICE_AGE: self.price_age,
            SHARD_LAG: self.shard_lag,
        }
        if queue_lengths is not None:
            self.gauge_fns["ttt_queue_depth"] = self.queue_depth

    # --- one block per gauge ------------------------------------------------------------------------

    def _active(self) -> Any:
        r = m.Run
        return sa.and_(r.end_time.is_(None), r.exit_run.is_(sa.false()))

    def _symbols_with(self, found: Sequence[str]) -> list[str]:
        return list(dict.fromkeys([*self._symbols, *found]))

    def active_runs(self, _now: float) -> list[Sample]:
        r = m.Run
        with self._engine.connect() as conn:
            rows: dict[str, int] = {
                str(s): int(n)
                for s, n in conn.execute(
                    sa.select(r.symbol, sa.func.count()).where(self._active()).group_by(r.symbol)
                )
            }
        return [_sample(rows.get(s, 0), symbol=s) for s in self._symbols_with(list(rows))]

    def runs_direction(self, _now: float) -> list[Sample]:
        r = m.Run
        direction = sa.case(
            (r.position_direction > 0, "long"), (r.position_direction < 0, "short"), else_="flat"
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(r.symbol, direction, sa.func.count())
                .where(self._active())
                .group_by(r.symbol, direction)
            ).all()
        counts = {(s, d): n for s, d, n in rows}
        symbols = self._symbols_with([s for s, _ in counts])
        return [
            _sample(counts.get((s, d), 0), symbol=s, direction=d)
            for s in symbols
            for d in ("long", "short", "flat")
        ]

    def open_pnl(self, _now: float) -> list[Sample]:
        """Σ live_pnl (a double column, so summing in SQL is exact enough); NULL (never written) adds 0."""
        r = m.Run
        with self._engine.connect() as conn:
            rows: dict[str, float] = {
                str(s): float(v)
                for s, v in conn.execute(
                    sa.select(r.symbol, sa.func.coalesce(sa.func.sum(r.live_pnl), 0.0))
                    .where(self._active())
                    .group_by(r.symbol)
                )
            }
        return [_sample(float(rows.get(s, 0.0)), symbol=s) for s in self._symbols_with(list(rows))]

    def height(self, _now: float) -> list[Sample]:
        """The highest epoch height (take-profit); 0 before the first take-profit."""
        with self._engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(m.Epoch.height))).scalar()
        return [_sample(int(top or 0))]

    def _latest_usable(self) -> Any:
        b = m.BalanceSnapshot
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(b.account_value, b.cross_maintenance_margin_used, b.total_margin_used)
                .where(b.usable.is_(sa.true()))
                .order_by(b.id.desc())
                .limit(1)
            ).first()

    def account_value(self, _now: float) -> list[Sample]:
        row = self._latest_usable()
        return [] if row is None else [_sample(float(row.account_value))]

    def margin_used(self, _now: float) -> list[Sample]:
        row = self._latest_usable()
        if row is None:
            return []
        return [
            _sample(float(row.cross_maintenance_margin_used), kind="cross_maintenance"),
            _sample(float(row.total_margin_used), kind="total"),
        ]

    def bar_age(self, now: float) -> list[Sample]:
        """now − newest bar open time per (symbol, timeframe); the primary key makes this an index scan."""
        b = m.MarketBar
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.symbol, b.timeframe, sa.func.max(b.ts_open)).group_by(b.symbol, b.timeframe)
            ).all()
        return [_sample(now - int(newest) / 1000.0, symbol=s, timeframe=tf) for s, tf, newest in rows]

    def price_age(self, now: float) -> list[Sample]:
        """now − ts of `price:{symbol}`; a missing or malformed price gives no sample (unknown, not fresh)."""
        from ttt.adapters.market.feed import price_key

        out: list[Sample] = []
        raws = self._cache.get_many([price_key(s) for s in self._symbols])
        for symbol, raw in zip(self._symbols, raws, strict=True):
            if raw is None:
                continue
            try:
                ts = float(json.loads(raw)["ts"])
            except (ValueError, KeyError, TypeError):
                log.warning("price:%s holds %r, not a price record", symbol, raw[:80])
                continue
            out.append(_sample(now - ts, symbol=symbol))
        return out

    def shard_lag(self, now: float) -> list[Sample]:
        """now − the last processed tick of every shard with active runs (`shard:{symbol}:{shard}:tick`)."""
        r = m.Run
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(r.symbol, r.shard).where(self._active()).distinct()).all()
        shards = sorted((str(s), int(k)) for s, k in found)
        raws = self._cache.get_many([f"shard:{s}:{k}:tick" for s, k in shards])
        out: list[Sample] = []
        for (symbol, shard), raw in zip(shards, raws, strict=True):
            if raw is not None:
                out.append(_sample(now - float(raw), symbol=symbol, shard=str(shard)))
        return out

    def queue_depth(self, _now: float) -> list[Sample]:
        assert self._queue_lengths is not None
        return [_sample(n, queue=q) for q, n in self._queue_lengths().items()]

    # --- the document --------------------------------------------------------------------------------

    def collect(self) -> MetricsDocument:
        now = self._clock.now()
        doc = MetricsDocument(ts=now)
        for name, fn in self.gauge_fns.items():
            try:
                doc.gauges[name] = fn(now)
            except Exception as exc:
                doc.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("collect_metrics: gauge %s not computed: %s", name, doc.errors[name])
        return doc

    def publish(self) -> MetricsDocument:
        doc = self.collect()
        self._cache.set(DB_GAUGES_KEY, doc.to_json(), DOC_TTL_S)
        return doc


def collect_metrics(collector: MetricsCollector, locks: LockManager) -> MetricsDocument:
    """The scheduled task: raises `LockBusy` when another run holds `ops:metrics`."""
    return run_locked(locks, METRICS_LOCK, METRICS_LOCK_TTL_S, lambda _t: collector.publish())


__all__ = [
    "DOC_TTL_S",
    "METRICS_LOCK",
    "MetricsCollector",
    "MetricsDocument",
    "QueueLengths",
    "collect_metrics",
]
