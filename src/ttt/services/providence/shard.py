"""One shard tick (providence.md §18.3): lock, coalesce, sync membership, step, persist.

Ends are made durable before they are written: a run's end is first a *pending end* in the shard's cached
state, then a database row, and only after that write succeeds does it leave the cache (§8.3, §9.3). A shard
whose database write fails keeps its pending ends and retries them at its next tick.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ttt.ports import Cache, LockManager, RunEnd, RunMember, RunProgress, RunStore
from ttt.providence import reference
from ttt.providence.population import Population
from ttt.services.providence.codec import ShardSnapshot, decode_snapshot, encode_snapshot
from ttt.services.providence.inputs import TickRecord, tick_key
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSettings:
    """The configuration a shard tick reads; re-read at every tick (the universe can change)."""

    symbols: Sequence[str]
    providence: Mapping[str, Any]
    db_write_every_ticks: int = 50
    state_ttl_s: float = 86400
    shard_lock_ttl_s: float = 15
    dispatch_period_s: float = 5


@dataclass
class ShardTickReport:
    symbol: str
    shard: int
    status: str  # stepped | locked | no_tick | already_processed | lost_lock
    tick: float | None = None
    stepped: int = 0
    skipped_reason: str | None = None
    ends: dict[str, int] = field(default_factory=dict)
    trades: int = 0
    db_writes: int = 0
    db_failed: bool = False
    coalesced: int = 0


def shard_state_key(symbol: str, shard: int) -> str:
    return f"shard:{symbol}:{shard}"


def shard_tick_key(symbol: str, shard: int) -> str:
    return f"shard:{symbol}:{shard}:tick"


def shard_lock_name(symbol: str, shard: int) -> str:
    return f"providence:shard:{symbol}:{shard}"


def stored_price_balance(state: Mapping[str, Any]) -> float:
    """VOMS balance at the state's stored price, B0 without trades (exit_flag / unconfigured ends, §8.1)."""
    voms = state.get("voms_state")
    metrics = reference.voms_metrics(voms) if voms else None
    return float(metrics["account_balance"]) if metrics else float(state["start_balance"])


def _end_from_state(run_id: int, t: float, reason: str, state: Mapping[str, Any], balance: float) -> RunEnd:
    return RunEnd(
        run_id=run_id,
        end_time=t,
        end_reason=reason,
        end_balance=balance,
        live_pnl=balance - float(state["start_balance"]),
        run_state=json.dumps(state),
        position_direction=int(state["position_direction"]),
        iteration_count=int(state["iteration_count"]),
    )


def _invalid_end(run_id: int, t: float, raw: str | None) -> RunEnd:
    return RunEnd(run_id, t, "invalid_state", None, None, raw or "", None, None)


def _parse_state(raw: str | None, symbol: str) -> dict[str, Any] | None:
    """A stored state, or None when it is empty, unparsable or not a state of this symbol."""
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("symbol") != symbol:
        return None
    try:
        Population.from_states(symbol, {0: state})
    except (ValueError, KeyError, TypeError):
        return None
    return state


class ShardStepper:
    """Steps shards of any symbol; keeps a shard's Population in memory only while it is provably current."""

    def __init__(
        self,
        store: RunStore,
        cache: Cache,
        locks: LockManager,
        settings: Callable[[], ShardSettings],
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache = cache
        self._locks = locks
        self._settings = settings
        self._metrics = metrics
        self._monotonic = monotonic
        self._live: dict[tuple[str, int], tuple[float, Population]] = {}

    def step(self, symbol: str, shard: int, t: float) -> ShardTickReport:
        cfg = self._settings()
        name = shard_lock_name(symbol, shard)
        token = self._locks.acquire(name, cfg.shard_lock_ttl_s)
        if token is None:
            self._count_missed(symbol, 1)
            return ShardTickReport(symbol, shard, "locked")
        try:
            return self._step_locked(symbol, shard, t, cfg, name, token)
        finally:
            self._locks.release(name, token)

    def _step_locked(
        self, symbol: str, shard: int, t: float, cfg: ShardSettings, lock: str, token: str
    ) -> ShardTickReport:
        started = self._monotonic()
        raw_tick = self._cache.get(tick_key(symbol))
        if raw_tick is None:
            return ShardTickReport(symbol, shard, "no_tick")
        record = TickRecord.from_json(symbol, raw_tick)
        last_raw = self._cache.get(shard_tick_key(symbol, shard))
        last = float(last_raw) if last_raw is not None else -math.inf
        now = record.t
        if now <= last:
            return ShardTickReport(symbol, shard, "already_processed", tick=now)
        report = ShardTickReport(symbol, shard, "stepped", tick=now)
        if math.isfinite(last) and now > t:
            report.coalesced = max(0, round((now - last) / cfg.dispatch_period_s) - 1)
            self._count_missed(symbol, report.coalesced)

        snapshot = decode_snapshot(self._cache.get(shard_state_key(symbol, shard)))
        population = self._population(symbol, shard, last, snapshot, cfg)
        members = {m.run_id: m for m in self._store.members(symbol, shard)}

        ends: dict[int, RunEnd] = {rid: end for rid, end in snapshot.pending_ends.items() if rid in members}
        stale = [rid for rid in population.run_ids if rid not in members or rid in ends]
        if stale:
            population.remove_runs(stale)
        self._end_flagged(symbol, members, population, snapshot, ends, now)
        self._join_new(symbol, members, population, snapshot, ends, now)

        due: list[tuple[int, bool]] = []
        if symbol not in cfg.symbols:
            states = population.remove_runs(list(population.run_ids))
            for rid, state in states.items():
                balance = stored_price_balance(state)
                ends[rid] = _end_from_state(rid, now, "unconfigured_symbol", state, balance)
        elif len(population):
            due = self._step_population(population, record, ends, report)

        for end in ends.values():
            report.ends[end.end_reason] = report.ends.get(end.end_reason, 0) + 1
        continuing = population.to_states()
        progress = _progress_rows(continuing, due, max(1, int(cfg.db_write_every_ticks)), now)
        self._write_snapshot(symbol, shard, ShardSnapshot(continuing, ends), cfg)

        if self._monotonic() - started > cfg.shard_lock_ttl_s / 3 and not self._locks.extend(
            lock, token, cfg.shard_lock_ttl_s
        ):
            report.status = "lost_lock"
            self._live.pop((symbol, shard), None)
            return report
        try:
            if progress or ends:
                self._store.write_shard_tick(progress, list(ends.values()))
            report.db_writes = len(progress) + len(ends)
            if ends:
                self._write_snapshot(symbol, shard, ShardSnapshot(continuing, {}), cfg)
        except Exception:
            report.db_failed = True
            log.exception("shard %s:%d database write failed; ends stay pending", symbol, shard)
            if self._metrics:
                self._metrics.db_write_failures_total.labels(symbol).inc()
        self._cache.set(shard_tick_key(symbol, shard), repr(now), cfg.state_ttl_s)
        self._live[(symbol, shard)] = (now, population)
        self._observe(symbol, report, self._monotonic() - started)
        return report

    def flush(self, symbol: str, shard: int) -> int:
        """Write every cached member state and pending end to the database (clean shutdown, §1.4).

        The in-process cache does not survive a restart; without this a restart would cold-load states up to
        N stepped ticks old (§9.4). Returns the number of rows written; skips a shard whose lock is held.
        """
        cfg = self._settings()
        name = shard_lock_name(symbol, shard)
        token = self._locks.acquire(name, cfg.shard_lock_ttl_s)
        if token is None:
            return 0
        try:
            raw_tick = self._cache.get(shard_tick_key(symbol, shard))
            snapshot = decode_snapshot(self._cache.get(shard_state_key(symbol, shard)))
            if raw_tick is None or not (snapshot.states or snapshot.pending_ends):
                return 0
            now = float(raw_tick)
            members = {m.run_id for m in self._store.members(symbol, shard)}
            states = {rid: st for rid, st in snapshot.states.items() if rid in members}
            progress = _progress_rows(states, [(rid, True) for rid in states], 1, now)
            ends = [end for rid, end in snapshot.pending_ends.items() if rid in members]
            self._store.write_shard_tick(progress, ends)
            if ends:
                self._write_snapshot(symbol, shard, ShardSnapshot(snapshot.states, {}), cfg)
            return len(progress) + len(ends)
        finally:
            self._locks.release(name, token)

    def _population(
        self, symbol: str, shard: int, last: float, snapshot: ShardSnapshot, cfg: ShardSettings
    ) -> Population:
        live = self._live.get((symbol, shard))
        if live is not None and live[0] == last:
            population = live[1]
            population.config = dict(cfg.providence)
            return population
        self._live.pop((symbol, shard), None)
        return Population.from_states(symbol, snapshot.states, dict(cfg.providence))

    def _end_flagged(
        self,
        symbol: str,
        members: Mapping[int, RunMember],
        population: Population,
        snapshot: ShardSnapshot,
        ends: dict[int, RunEnd],
        now: float,
    ) -> None:
        flagged = [rid for rid, m in members.items() if m.exit_run and rid not in ends]
        in_population = set(population.run_ids)
        removed = population.remove_runs([rid for rid in flagged if rid in in_population])
        for rid in flagged:
            state = (
                removed.get(rid) or snapshot.states.get(rid) or _parse_state(members[rid].run_state, symbol)
            )
            if state is None:
                ends[rid] = _invalid_end(rid, now, members[rid].run_state)
            else:
                ends[rid] = _end_from_state(rid, now, "exit_flag", state, stored_price_balance(state))

    def _join_new(
        self,
        symbol: str,
        members: Mapping[int, RunMember],
        population: Population,
        snapshot: ShardSnapshot,
        ends: dict[int, RunEnd],
        now: float,
    ) -> None:
        present = set(population.run_ids)
        joining: dict[int, dict[str, Any]] = {}
        for rid, member in members.items():
            if rid in present or rid in ends or member.start_time >= now:
                continue
            state = snapshot.states.get(rid) or _parse_state(member.run_state, symbol)
            if state is None:
                ends[rid] = _invalid_end(rid, now, member.run_state)
            else:
                joining[rid] = state
        if joining:
            population.add_runs(joining)

    def _step_population(
        self,
        population: Population,
        record: TickRecord,
        ends: dict[int, RunEnd],
        report: ShardTickReport,
    ) -> list[tuple[int, bool]]:
        """Step once; record completions as ends; return (run id, traded) of every continuing stepped run."""
        batch = population.step(record.t, record.price, record.volatility, record.weight)
        report.stepped = len(batch.run_ids)
        if len(batch.run_ids) and batch.status[0] == "skipped":
            report.skipped_reason = str(batch.reason[0])
            if self._metrics:
                missing = "price" if report.skipped_reason == "price_unavailable" else "volatility"
                self._metrics.stale_ticks_total.labels(record.symbol, missing).inc()
            return []
        completed = [int(r) for r, s in zip(batch.run_ids, batch.status, strict=True) if s == "completed"]
        final_states = population.remove_runs(completed)
        stepped: list[tuple[int, bool]] = []
        for i, raw_id in enumerate(batch.run_ids):
            rid = int(raw_id)
            if batch.status[i] == "completed":
                balance = float(batch.balance[i])
                ends[rid] = _end_from_state(rid, record.t, str(batch.reason[i]), final_states[rid], balance)
                continue
            traded = bool(batch.trade[i] != 0.0)
            if traded:
                report.trades += 1
                if self._metrics:
                    side = "buy" if batch.trade[i] > 0 else "sell"
                    self._metrics.virtual_trades_total.labels(record.symbol, side).inc()
            stepped.append((rid, traded))
        return stepped

    def _write_snapshot(self, symbol: str, shard: int, snapshot: ShardSnapshot, cfg: ShardSettings) -> None:
        self._cache.set(shard_state_key(symbol, shard), encode_snapshot(snapshot), cfg.state_ttl_s)

    def _count_missed(self, symbol: str, n: int) -> None:
        if self._metrics and n > 0:
            self._metrics.missed_ticks_total.labels(symbol).inc(n)

    def _observe(self, symbol: str, report: ShardTickReport, seconds: float) -> None:
        if not self._metrics:
            return
        self._metrics.shard_step_seconds.labels(symbol).observe(seconds)
        for reason, n in report.ends.items():
            self._metrics.run_ends_total.labels(symbol, reason).inc(n)


def _progress_rows(
    states: Mapping[int, Mapping[str, Any]], stepped: Sequence[tuple[int, bool]], every: int, now: float
) -> list[RunProgress]:
    """Rows for runs that traded or whose iteration_count hit the cadence N (§9.2)."""
    rows = []
    for rid, traded in stepped:
        state = states[rid]
        if not traded and int(state["iteration_count"]) % every != 0:
            continue
        rows.append(
            RunProgress(
                run_id=rid,
                run_state=json.dumps(state),
                position_direction=int(state["position_direction"]),
                iteration_count=int(state["iteration_count"]),
                update_time=now,
                live_pnl=stored_price_balance(state) - float(state["start_balance"]),
            )
        )
    return rows
