"""One shard tick (providence.md §18.3): lock, coalesce, sync membership, step, persist.

Ends are made durable before they are written: a run's end is first a *pending end* in the shard's cached
state, then a database row, and only after that write succeeds does it leave the cache (§8.3, §9.3). A shard
whose database write fails keeps its pending ends and retries them at its next tick.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ttt.ports import Cache, LockManager, RunEnd, RunMember, RunProgress, RunStore, StrictJsonText
from ttt.providence import reference
from ttt.providence.population import Population
from ttt.services.providence.codec import (
    JournalEntry,
    ShardJournal,
    ShardSnapshot,
    decode_base,
    decode_journal,
    encode_base,
    encode_journal,
    rebuild,
)
from ttt.services.providence.inputs import TickRecord, tick_key
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_JOINS_PER_BASE = 64
_KEEP_AFTER_BASE = 2
_FULL_READ_SLOWER = 4


@dataclass(frozen=True)
class ShardSettings:
    """The configuration a shard tick reads; re-read at every tick (the universe can change)."""

    symbols: Sequence[str]
    providence: Mapping[str, Any]
    db_write_every_ticks: int = 50
    state_ttl_s: float = 86400
    shard_lock_ttl_s: float = 15
    dispatch_period_s: float = 5
    base_every_ticks: int = 12


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


def shard_base_key(symbol: str, shard: int) -> str:
    return f"shard:{symbol}:{shard}:base"


def shard_tick_key(symbol: str, shard: int) -> str:
    return f"shard:{symbol}:{shard}:tick"


def shard_lock_name(symbol: str, shard: int) -> str:
    return f"providence:shard:{symbol}:{shard}"


def stored_price_balance(state: Mapping[str, Any]) -> float:
    """VOMS balance at the state's stored price, B0 without trades (exit_flag / unconfigured ends, §8.1)."""
    voms = state.get("voms_state")
    metrics = reference.voms_metrics(voms) if voms else None
    return float(metrics["account_balance"]) if metrics else float(state["start_balance"])


def state_text(state: Mapping[str, Any]) -> str:
    """The stored JSON of a state (§9.2), written for every trading run at every tick.

    orjson is about nine times faster than `json` here, and strict, so its output is marked as such and
    not parsed again before the write. It writes NaN and infinities as `null`, which would store a
    different state, and a valid state has no `null`: any output holding one is made again by `json`, as a
    plain `str` whose `NaN` the database write then refuses, as it refuses any non-JSON number.
    Lists, not NumPy arrays: `OPT_SERIALIZE_NUMPY` corrupted the heap here (orjson 3.13.0; README).
    """
    try:
        raw = orjson.dumps(state)
    except TypeError:
        raw = b"null"
    if b"null" in raw:
        return json.dumps(state, separators=(",", ":"))
    return StrictJsonText(raw.decode())


def _end_from_state(run_id: int, t: float, reason: str, state: Mapping[str, Any], balance: float) -> RunEnd:
    return RunEnd(
        run_id=run_id,
        end_time=t,
        end_reason=reason,
        end_balance=balance,
        live_pnl=balance - float(state["start_balance"]),
        run_state=state_text(state),
        position_direction=int(state["position_direction"]),
        iteration_count=int(state["iteration_count"]),
    )


def _invalid_end(run_id: int, t: float, raw: str | None) -> RunEnd:
    return RunEnd(run_id, t, "invalid_state", None, None, raw or "", None, None)


def _decode_state(raw: str | None, symbol: str) -> dict[str, Any] | None:
    """A stored state's JSON object of this symbol, or None (empty, unparsable, another symbol). Stored
    states are strict JSON (the columns refuse NaN), so orjson's strictness changes nothing."""
    if not raw:
        return None
    try:
        state = orjson.loads(raw)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("symbol") != symbol:
        return None
    return state


def _valid(state: Mapping[str, Any], symbol: str) -> bool:
    try:
        Population.from_states(symbol, {0: state})
    except (ValueError, KeyError, TypeError):
        return False
    return True


def _parse_state(raw: str | None, symbol: str) -> dict[str, Any] | None:
    """A stored state, or None when it is empty, unparsable or not a valid state of this symbol."""
    state = _decode_state(raw, symbol)
    return state if state is not None and _valid(state, symbol) else None


@dataclass(frozen=True)
class _Due:
    """The continuing runs of a stepped tick, aligned: whether each traded, and its iteration count."""

    run_ids: npt.NDArray[np.int64]
    traded: npt.NDArray[np.bool_]
    iteration_count: npt.NDArray[np.int64]


@dataclass
class _Live:
    """A shard this process stepped last: valid only while the shard's committed tick is still `t`."""

    t: float
    population: Population
    journal: ShardJournal


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
        self._live: dict[tuple[str, int], _Live] = {}

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
        last = self._committed_tick(symbol, shard)
        now = record.t
        if last is not None and now <= last:
            return ShardTickReport(symbol, shard, "already_processed", tick=now)
        report = ShardTickReport(symbol, shard, "stepped", tick=now)
        if last is not None and now > t:
            report.coalesced = max(0, round((now - last) / cfg.dispatch_period_s) - 1)
            self._count_missed(symbol, report.coalesced)

        population, journal, cold = self._load(symbol, shard, last, cfg)
        config = dict(cfg.providence)
        config_changed = population.config != config
        if config_changed:
            population.config = config
        present = population.id_set()
        member_ids, details = self._members(symbol, shard, present, journal, last, now, cfg, cold)

        ends: dict[int, RunEnd] = {rid: end for rid, end in journal.pending_ends.items() if rid in member_ids}
        flagged = [rid for rid, m in details.items() if m.exit_run and rid not in ends]
        flagged_set = set(flagged)
        removed_ids = sorted(
            rid for rid in present if rid not in member_ids or rid in ends or rid in flagged_set
        )
        removed = population.remove_runs(removed_ids) if removed_ids else {}
        self._end_flagged(symbol, flagged, removed, ends, now)
        joined = self._join_new(symbol, details, present, population, ends, now)

        stepped_symbol = symbol in cfg.symbols
        due: _Due | None = None
        if not stepped_symbol:
            states = population.remove_runs(list(population.run_ids))
            for rid, state in states.items():
                balance = stored_price_balance(state)
                ends[rid] = _end_from_state(rid, now, "unconfigured_symbol", state, balance)
        elif len(population):
            due = self._step_population(population, record, ends, report)

        for end in ends.values():
            report.ends[end.end_reason] = report.ends.get(end.end_reason, 0) + 1
        progress = _progress_rows(population, due, max(1, int(cfg.db_write_every_ticks)), now)
        entry = JournalEntry(
            now,
            record.price,
            record.volatility,
            record.weight,
            removed=tuple(removed_ids),
            joined=joined,
            stepped=stepped_symbol,
            config=config if config_changed else None,
        )
        journal = ShardJournal(
            journal.base_t, [e for e in journal.entries if e.t < now] + [entry], dict(ends)
        )
        # A step that outlived its lock writes nothing: the cache may already hold the next holder's tick.
        if self._monotonic() - started > cfg.shard_lock_ttl_s / 3 and not self._locks.extend(
            lock, token, cfg.shard_lock_ttl_s
        ):
            report.status = "lost_lock"
            self._live.pop((symbol, shard), None)
            return report
        self._write_journal(symbol, shard, journal, cfg)
        recorded = False
        try:
            if progress or ends:
                self._store.write_shard_tick(progress, list(ends.values()))
            report.db_writes = len(progress) + len(ends)
            recorded = True
        except Exception:
            report.db_failed = True
            log.exception("shard %s:%d database write failed; ends stay pending", symbol, shard)
            if self._metrics:
                self._metrics.db_write_failures_total.labels(symbol).inc()
        self._cache.set(shard_tick_key(symbol, shard), repr(now), cfg.state_ttl_s)
        if recorded:
            journal.pending_ends = {}
        if self._base_due(symbol, shard, journal, now, cfg):
            self._cache.set(shard_base_key(symbol, shard), encode_base(population, now), cfg.state_ttl_s)
            # The last entries stay as anchors, so a process one tick behind catches up without the base;
            # not when they hold many joined states, which would be re-encoded at every tick until they age
            # out (after a cold load, the whole shard): such a process reads the base instead.
            anchors = journal.entries[-_KEEP_AFTER_BASE:]
            if sum(len(e.joined) for e in anchors) > _JOINS_PER_BASE:
                anchors = []
            journal = ShardJournal(now, anchors, journal.pending_ends)
            self._write_journal(symbol, shard, journal, cfg)
        elif recorded and ends:
            self._write_journal(symbol, shard, journal, cfg)
        self._live[(symbol, shard)] = _Live(now, population, journal)
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
            last = self._committed_tick(symbol, shard)
            if last is None:
                return 0
            population, journal, _ = self._load(symbol, shard, last, cfg)
            if not (len(population) or journal.pending_ends):
                return 0
            members = {m.run_id for m in self._store.members(symbol, shard, with_state=False)}
            states = {rid: st for rid, st in population.to_states().items() if rid in members}
            progress = [_progress_row(rid, st, last) for rid, st in states.items()]
            ends = [end for rid, end in journal.pending_ends.items() if rid in members]
            self._store.write_shard_tick(progress, ends)
            if journal.pending_ends:
                journal.pending_ends = {}
                self._write_journal(symbol, shard, journal, cfg)
            return len(progress) + len(ends)
        finally:
            self._locks.release(name, token)

    def cached(self, symbol: str, shard: int) -> ShardSnapshot:
        """The shard's cached member states and pending ends, decoded as a fresh process would (§9.1)."""
        cfg = self._settings()
        last = self._committed_tick(symbol, shard)
        journal = decode_journal(self._cache.get(shard_state_key(symbol, shard)))
        population = self._rebuild(symbol, shard, journal, last, cfg)
        states = population.to_states() if population is not None else {}
        return ShardSnapshot(states, dict(journal.pending_ends) if journal else {})

    def _members(
        self,
        symbol: str,
        shard: int,
        present: set[int],
        journal: ShardJournal,
        last: float | None,
        now: float,
        cfg: ShardSettings,
        cold: bool,
    ) -> tuple[set[int], dict[int, RunMember]]:
        """The ids of the shard's unended runs, and the details of those that may need action (flagged, not
        yet joined). A shard whose population is current (kept or rebuilt) asks only for those and the
        count; it reads the whole list when the count disagrees, after a cold load, and periodically on the
        shard's phase (a vanished run and an unseen one could cancel out in the count)."""
        if not cold and not self._phase_hit(symbol, shard, now, cfg, offset=1, slower=_FULL_READ_SLOWER):
            known = present | set(journal.pending_ends)
            count, changed = self._store.member_changes(symbol, shard, max(known, default=0), last)
            ids = known.union(m.run_id for m in changed)
            if count == len(ids):
                return ids, {m.run_id: m for m in changed}
        members = {m.run_id: m for m in self._store.members(symbol, shard, with_state=False)}
        return set(members), members

    @staticmethod
    def _phase_hit(
        symbol: str, shard: int, now: float, cfg: ShardSettings, offset: int = 0, slower: int = 1
    ) -> bool:
        every = max(1, int(cfg.base_every_ticks)) * slower
        phase = (zlib.crc32(f"{symbol}:{shard}".encode()) + offset) % every
        return int(now // max(cfg.dispatch_period_s, 1e-9)) % every == phase

    def _committed_tick(self, symbol: str, shard: int) -> float | None:
        raw = self._cache.get(shard_tick_key(symbol, shard))
        return float(raw) if raw is not None else None

    def _load(
        self, symbol: str, shard: int, last: float | None, cfg: ShardSettings
    ) -> tuple[Population, ShardJournal, bool]:
        """The population as of the committed tick: kept in memory, rebuilt from the cache, or empty (cold:
        every member then loads from the database, §9.4)."""
        live = self._live.pop((symbol, shard), None)
        if live is not None and live.t == last:
            self._live[(symbol, shard)] = live
            return live.population, live.journal, False
        journal = decode_journal(self._cache.get(shard_state_key(symbol, shard)))
        population = None
        if live is not None and journal is not None and last is not None:
            # Another process stepped the shard since: catch up from our own copy with its journal entries.
            population = self._replay(symbol, shard, journal, (live.t, live.population), last, cfg)
        if population is None:
            population = self._rebuild(symbol, shard, journal, last, cfg)
        if population is not None and journal is not None:
            kept = [e for e in journal.entries if last is not None and e.t <= last]
            return population, ShardJournal(journal.base_t, kept, journal.pending_ends), False
        if journal is not None and last is not None:
            log.warning("shard %s:%d cache inconsistent at tick %r: members cold-load", symbol, shard, last)
        pending = journal.pending_ends if journal is not None else {}
        return Population.from_states(symbol, {}, dict(cfg.providence)), ShardJournal(None, [], pending), True

    def _rebuild(
        self, symbol: str, shard: int, journal: ShardJournal | None, last: float | None, cfg: ShardSettings
    ) -> Population | None:
        if journal is None or last is None:
            return None
        base = None
        if journal.base_t is not None:
            base = decode_base(self._cache.get(shard_base_key(symbol, shard)), symbol)
        return self._replay(symbol, shard, journal, base, last, cfg)

    def _replay(
        self,
        symbol: str,
        shard: int,
        journal: ShardJournal,
        base: tuple[float, Population] | None,
        last: float,
        cfg: ShardSettings,
    ) -> Population | None:
        try:
            return rebuild(symbol, journal, base, last, cfg.providence)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("shard %s:%d journal replay failed (%s)", symbol, shard, exc)
            return None

    def _base_due(
        self, symbol: str, shard: int, journal: ShardJournal, now: float, cfg: ShardSettings
    ) -> bool:
        """Every `base_every_ticks` ticks, on a per-shard phase so shards do not all snapshot at once; sooner
        when joins (whole states) make the journal heavy."""
        since = [e for e in journal.entries if journal.base_t is None or e.t > journal.base_t]
        if not since:
            return False
        every = max(1, int(cfg.base_every_ticks))
        if len(since) >= every or sum(len(e.joined) for e in since) > _JOINS_PER_BASE:
            return True
        return self._phase_hit(symbol, shard, now, cfg)

    def _end_flagged(
        self,
        symbol: str,
        flagged: Sequence[int],
        removed: Mapping[int, Mapping[str, Any]],
        ends: dict[int, RunEnd],
        now: float,
    ) -> None:
        outside = [rid for rid in flagged if rid not in removed]
        stored = self._store.member_states(outside) if outside else {}
        for rid in flagged:
            raw = stored.get(rid)
            state = removed.get(rid) or _parse_state(raw, symbol)
            if state is None:
                ends[rid] = _invalid_end(rid, now, raw)
            else:
                ends[rid] = _end_from_state(rid, now, "exit_flag", state, stored_price_balance(state))

    def _join_new(
        self,
        symbol: str,
        members: Mapping[int, RunMember],
        present: set[int],
        population: Population,
        ends: dict[int, RunEnd],
        now: float,
    ) -> dict[int, dict[str, Any]]:
        wanted = [
            rid
            for rid, member in members.items()
            if rid not in present and rid not in ends and member.start_time < now
        ]
        if not wanted:
            return {}
        stored = self._store.member_states(wanted)
        joining: dict[int, dict[str, Any]] = {}
        for rid in wanted:
            state = _decode_state(stored.get(rid), symbol)
            if state is None:
                ends[rid] = _invalid_end(rid, now, stored.get(rid))
            else:
                joining[rid] = state
        if not joining:
            return {}
        try:
            population.add_runs(joining)  # validates the whole batch and adds nothing on a bad state
        except (ValueError, KeyError, TypeError):
            bad = [rid for rid, state in joining.items() if not _valid(state, symbol)]
            for rid in bad:
                ends[rid] = _invalid_end(rid, now, stored.get(rid))
                del joining[rid]
            population.add_runs(joining)
        return joining

    def _step_population(
        self,
        population: Population,
        record: TickRecord,
        ends: dict[int, RunEnd],
        report: ShardTickReport,
    ) -> _Due | None:
        """Step once; record completions as ends; return the continuing stepped runs (None when skipped)."""
        batch = population.step(record.t, record.price, record.volatility, record.weight)
        report.stepped = len(batch.run_ids)
        if len(batch.run_ids) and batch.status_code[0] == 2:
            report.skipped_reason = str(batch.reason[0])
            if self._metrics:
                missing = "price" if report.skipped_reason == "price_unavailable" else "volatility"
                self._metrics.stale_ticks_total.labels(record.symbol, missing).inc()
            return None
        done = batch.status_code == 1
        if done.any():
            positions = np.flatnonzero(done).tolist()
            completed = batch.run_ids[done].tolist()
            final_states = population.remove_runs(completed)
            for i, rid in zip(positions, completed, strict=True):
                state = final_states[rid]
                ends[rid] = _end_from_state(
                    rid, record.t, str(batch.reason[i]), state, float(batch.balance[i])
                )
        going = ~done
        trade = batch.trade[going]
        buys, sells = int(np.count_nonzero(trade > 0)), int(np.count_nonzero(trade < 0))
        report.trades = buys + sells
        if self._metrics:
            for side, n in (("buy", buys), ("sell", sells)):
                if n:
                    self._metrics.virtual_trades_total.labels(record.symbol, side).inc(n)
        return _Due(batch.run_ids[going], trade != 0.0, batch.iteration_count[going])

    def _write_journal(self, symbol: str, shard: int, journal: ShardJournal, cfg: ShardSettings) -> None:
        self._cache.set(shard_state_key(symbol, shard), encode_journal(journal), cfg.state_ttl_s)

    def _count_missed(self, symbol: str, n: int) -> None:
        if self._metrics and n > 0:
            self._metrics.missed_ticks_total.labels(symbol).inc(n)

    def _observe(self, symbol: str, report: ShardTickReport, seconds: float) -> None:
        if not self._metrics:
            return
        self._metrics.shard_step_seconds.labels(symbol).observe(seconds)
        for reason, n in report.ends.items():
            self._metrics.run_ends_total.labels(symbol, reason).inc(n)


def _progress_rows(population: Population, due: _Due | None, every: int, now: float) -> list[RunProgress]:
    """Rows for runs that traded or whose iteration_count hit the cadence N (§9.2); only those runs are
    serialised."""
    if due is None:
        return []
    wanted = due.run_ids[due.traded | (due.iteration_count % every == 0)].tolist()
    if not wanted:
        return []
    return [_progress_row(rid, state, now) for rid, state in population.to_states(wanted).items()]


def _progress_row(rid: int, state: Mapping[str, Any], now: float) -> RunProgress:
    return RunProgress(
        run_id=rid,
        run_state=state_text(state),
        position_direction=int(state["position_direction"]),
        iteration_count=int(state["iteration_count"]),
        update_time=now,
        live_pnl=stored_price_balance(state) - float(state["start_balance"]),
    )
