"""The `runs` table and the apex burn list (providence.md §3.5–§3.7, §8.1, §9.2, §10, §18).

The shard hot path writes one multi-row statement per kind (progress in `run_progress`, ends as one
executemany keyed on a bound id), never one ORM flush per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import read_only
from ttt.adapters.db.models import ApexBurned, Run, table_of
from ttt.adapters.db.repositories.run_progress import update_progress
from ttt.adapters.db.types import as_utc, dump_json
from ttt.domain.run_records import RunRecord
from ttt.ports import NewRun, RunEnd, RunMember, RunProgress

RUNS = table_of(Run)
BURNED = table_of(ApexBurned)
_C = RUNS.c

RunFilter = Literal["active", "ended", "flagged", "heighted", "all"]


def _active() -> sa.ColumnElement[bool]:
    """The one definition of an active run (providence.md §3.4)."""
    return sa.and_(_C.end_time.is_(None), _C.exit_run == sa.false())


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _storable_state(raw: str) -> str:
    """State text as given when it is JSON; otherwise kept verbatim as a JSON string (invalid_state ends
    store the raw text that failed to load, and JSON columns cannot hold non-JSON)."""
    try:
        json.loads(raw, parse_constant=_reject)
        return raw
    except ValueError:
        return dump_json(raw)


def _reject(name: str) -> Any:
    raise ValueError(name)


def choose_shard(counts: dict[int, int], shard_size: int) -> int:
    """Lowest shard index with fewer than `shard_size` active runs (providence.md §18.1)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    index = 0
    while counts.get(index, 0) >= shard_size:
        index += 1
    return index


class RunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- writes (bulk) -----------------------------------------------------------------------------

    def insert_many(self, runs: Sequence[NewRun]) -> list[int]:
        """Insert new runs (§3.5 step 6) in one multi-row statement; ids in input order."""
        if not runs:
            return []
        rows = []
        for run in runs:
            start = as_utc(run.start_time)
            rows.append(
                {
                    "symbol": run.symbol,
                    "shard": run.shard,
                    "seed": run.seed,
                    "start_time": start,
                    "end_time": None,
                    "end_reason": None,
                    "start_balance": float(run.start_balance),
                    "end_balance": None,
                    "max_duration": int(run.max_duration),
                    "position_direction": 0,
                    "live_pnl": None,
                    "exit_run": False,
                    "height": None,
                    "iteration_count": 0,
                    "update_time": start,
                    "host": run.host,
                    "ann_params": dict(run.ann_params),
                    "run_state": dump_json(run.run_state),
                    "apex_file": run.apex_file,
                    "apex_hash": run.apex_hash,
                    "apex_rank": run.apex_rank,
                }
            )
        stmt = sa.insert(RUNS).returning(_C.id, sort_by_parameter_order=True)
        return [int(i) for i in self.session.execute(stmt, rows).scalars().all()]

    def update_progress_many(self, progress: Sequence[RunProgress]) -> int:
        """Periodic and trade writes (§9.2), one multi-row UPDATE per chunk; an ended run is never
        overwritten."""
        return update_progress(self.session.connection(), progress) if progress else 0

    def record_ends_many(self, ends: Sequence[RunEnd]) -> int:
        """End records (§8.1); `exit_run` untouched, None counters keep their stored values."""
        if not ends:
            return 0
        stmt = (
            sa.update(RUNS)
            .where(_C.id == sa.bindparam("b_id"))
            .values(
                end_time=sa.bindparam("b_end_time"),
                update_time=sa.bindparam("b_end_time"),
                end_reason=sa.bindparam("b_end_reason"),
                end_balance=sa.bindparam("b_end_balance"),
                live_pnl=sa.bindparam("b_live_pnl"),
                run_state=sa.bindparam("b_run_state"),
                position_direction=sa.func.coalesce(
                    sa.bindparam("b_position_direction", type_=sa.Integer()), _C.position_direction
                ),
                iteration_count=sa.func.coalesce(
                    sa.bindparam("b_iteration_count", type_=sa.BigInteger()), _C.iteration_count
                ),
            )
        )
        params = [
            {
                "b_id": e.run_id,
                "b_end_time": as_utc(e.end_time),
                "b_end_reason": e.end_reason,
                "b_end_balance": None if e.end_balance is None else float(e.end_balance),
                "b_live_pnl": None if e.live_pnl is None else float(e.live_pnl),
                "b_run_state": _storable_state(e.run_state),
                "b_position_direction": e.position_direction,
                "b_iteration_count": e.iteration_count,
            }
            for e in ends
        ]
        return int(self.session.connection().execute(stmt, params).rowcount)

    # --- shard membership and counts ---------------------------------------------------------------

    def members(self, symbol: str, shard: int, *, with_state: bool = True) -> list[RunMember]:
        """Unended runs of one shard (§18.3 step 3), ascending id."""
        cols = [_C.id, _C.exit_run, _C.start_time]
        if with_state:
            cols.append(_C.run_state)
        stmt = (
            sa.select(*cols)
            .where(_C.symbol == symbol, _C.shard == shard, _C.end_time.is_(None))
            .order_by(_C.id)
        )
        return [
            RunMember(
                run_id=int(row.id),
                exit_run=bool(row.exit_run),
                start_time=row.start_time.timestamp(),
                run_state=row.run_state if with_state else None,
            )
            for row in self.session.execute(stmt)
        ]

    def member_changes(
        self, symbol: str, shard: int, known_max_id: int, since: float | None
    ) -> tuple[int, list[RunMember]]:
        """The shard's number of unended runs and those flagged, newer than `known_max_id` or started since
        `since`, in one round trip. Each kind of change is its own branch of a UNION so that each is an index
        range (one OR over them scans the whole shard); the count comes as one more row, id NULL."""
        unended = (_C.symbol == symbol, _C.shard == shard, _C.end_time.is_(None))

        def changed(*where: Any) -> Any:
            return sa.select(sa.literal(-1).label("n"), _C.id, _C.exit_run, _C.start_time).where(
                *unended, *where
            )

        branches = [changed(_C.exit_run.is_(True)), changed(_C.id > known_max_id)]
        if since is not None:
            branches.append(changed(_C.exit_run == sa.false(), _C.start_time >= as_utc(since)))
        count = sa.select(sa.func.count()).where(*unended).scalar_subquery()
        branches.append(sa.select(count, sa.null(), sa.null(), sa.null()))
        total = 0
        rows: dict[int, RunMember] = {}
        for row in self.session.execute(sa.union(*branches)):
            if row.id is None:
                total = int(row.n)
            else:
                rows[int(row.id)] = RunMember(
                    int(row.id), bool(row.exit_run), row.start_time.timestamp(), None
                )
        return total, [rows[k] for k in sorted(rows)]

    def states(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Stored state text of the given runs (cold load, §9.4)."""
        out: dict[int, str] = {}
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            stmt = sa.select(_C.id, _C.run_state).where(_C.id.in_(chunk))
            out.update({int(r.id): r.run_state for r in self.session.execute(stmt)})
        return out

    def active_counts(self) -> dict[str, int]:
        stmt = sa.select(_C.symbol, sa.func.count()).where(_active()).group_by(_C.symbol)
        return {str(s): int(n) for s, n in self.session.execute(stmt)}

    def active_shard_counts(self, symbol: str) -> dict[int, int]:
        stmt = sa.select(_C.shard, sa.func.count()).where(_active(), _C.symbol == symbol).group_by(_C.shard)
        return {int(s): int(n) for s, n in self.session.execute(stmt)}

    def next_shard_for(self, symbol: str, shard_size: int) -> int:
        return choose_shard(self.active_shard_counts(symbol), shard_size)

    def shards_with_members(self) -> dict[str, list[int]]:
        stmt = (
            sa.select(_C.symbol, _C.shard)
            .where(_C.end_time.is_(None))
            .group_by(_C.symbol, _C.shard)
            .order_by(_C.symbol, _C.shard)
        )
        out: dict[str, list[int]] = {}
        for symbol, shard in self.session.execute(stmt):
            out.setdefault(str(symbol), []).append(int(shard))
        return out

    # --- flags, heights, purge ---------------------------------------------------------------------

    def flag_exit(self, run_id: int, now: datetime | float) -> bool:
        """`3t runs exit ID`: Providence ends the run at its shard's next tick (§8.2)."""
        stmt = (
            sa.update(RUNS)
            .where(_C.id == run_id, _C.end_time.is_(None), _C.exit_run == sa.false())
            .values(exit_run=True, update_time=as_utc(now))
        )
        return bool(self.session.connection().execute(stmt).rowcount)

    def max_height(self) -> int:
        return int(self.session.execute(sa.select(sa.func.max(_C.height))).scalar() or 0)

    def flag_take_profit(self, height: int, now: datetime | float) -> int:
        """portfolio.md §14.4 take-profit step 2: every unflagged, unheighted run gets the height."""
        stmt = (
            sa.update(RUNS)
            .where(_C.exit_run == sa.false(), _C.height.is_(None))
            .values(height=height, exit_run=True, update_time=as_utc(now))
        )
        return int(self.session.connection().execute(stmt).rowcount)

    def flag_drawdown_reset(self, now: datetime | float) -> int:
        """portfolio.md §14.4 drawdown reset: every unheighted run, active or ended."""
        stmt = sa.update(RUNS).where(_C.height.is_(None)).values(exit_run=True, update_time=as_utc(now))
        return int(self.session.connection().execute(stmt).rowcount)

    def purge(self, now: datetime | float, flagged_after_s: float) -> int:
        """providence.md §10 as one statement; runs with a height are never deleted."""
        stmt = sa.delete(RUNS).where(_purgeable(now, flagged_after_s))
        return int(self.session.connection().execute(stmt).rowcount)

    def purgeable_ids(self, now: datetime | float, flagged_after_s: float) -> list[int]:
        """The §10 rows, read without locking anything."""
        stmt = sa.select(_C.id).where(_purgeable(now, flagged_after_s)).order_by(_C.id)
        return [int(i) for i in self.session.connection().execute(stmt).scalars()]

    def purge_ids(self, ids: Sequence[int], now: datetime | float, flagged_after_s: float) -> int:
        """Deletes those of `ids` that still match §10, found by primary key: it locks only those rows."""
        if not ids:
            return 0
        stmt = sa.delete(RUNS).where(_C.id.in_(list(ids)), _purgeable(now, flagged_after_s))
        return int(self.session.connection().execute(stmt).rowcount)

    # --- reads -------------------------------------------------------------------------------------

    def get(self, run_id: int) -> Run | None:
        return self.session.get(Run, run_id)

    def list_runs(
        self, symbol: str | None = None, state: RunFilter = "all", limit: int = 100, offset: int = 0
    ) -> list[Run]:
        stmt = sa.select(Run)
        if symbol is not None:
            stmt = stmt.where(_C.symbol == symbol)
        if state == "active":
            stmt = stmt.where(_active())
        elif state == "ended":
            stmt = stmt.where(_C.end_time.is_not(None))
        elif state == "flagged":
            stmt = stmt.where(_C.exit_run == sa.true(), _C.end_time.is_(None))
        elif state == "heighted":
            stmt = stmt.where(_C.height.is_not(None))
        return list(self.session.scalars(stmt.order_by(_C.id.desc()).limit(limit).offset(offset)))

    def records(self, symbol: str | None = None, *, unheighted_only: bool = False) -> list[RunRecord]:
        """The columns the portfolio side reads, as plain records (portfolio.md §3, §4)."""
        stmt = sa.select(
            _C.symbol,
            _C.position_direction,
            _C.live_pnl,
            _C.update_time,
            _C.exit_run,
            _C.height,
            _C.end_time,
        )
        if symbol is not None:
            stmt = stmt.where(_C.symbol == symbol)
        if unheighted_only:
            stmt = stmt.where(_C.height.is_(None))
        return [
            RunRecord(
                symbol=r.symbol,
                position_direction=int(r.position_direction),
                live_pnl=r.live_pnl,
                update_time=r.update_time.timestamp(),
                exit_run=bool(r.exit_run),
                height=r.height,
                end_time=_epoch(r.end_time),
            )
            for r in self.session.execute(stmt.order_by(_C.id))
        ]

    def liveness(self, symbol: str) -> tuple[int, datetime | None]:
        """(n_active, newest update_time among them) for portfolio.md §3.1."""
        stmt = sa.select(sa.func.count(), sa.func.max(_C.update_time)).where(_active(), _C.symbol == symbol)
        n, newest = self.session.execute(stmt).one()
        return int(n), newest


class ApexBurnRepository:
    """`providence_apex_burned`: written with the run insert, never purged (providence.md §3.7)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def burn_many(self, burns: Sequence[tuple[str, str, int]], burned_at: datetime | float) -> None:
        """(apex_file, apex_hash, run_id) rows; a survivor burned twice is a unique-key error."""
        if not burns:
            return
        at = as_utc(burned_at)
        rows = [{"apex_file": f, "apex_hash": h, "run_id": r, "burned_at": at} for f, h, r in burns]
        self.session.connection().execute(sa.insert(BURNED), rows)

    def burned_hashes(self, apex_file: str) -> set[str]:
        stmt = sa.select(BURNED.c.apex_hash).where(BURNED.c.apex_file == apex_file)
        return {str(h) for h in self.session.execute(stmt).scalars()}

    def list_burned(self, apex_file: str | None = None) -> list[ApexBurned]:
        stmt = sa.select(ApexBurned)
        if apex_file is not None:
            stmt = stmt.where(BURNED.c.apex_file == apex_file)
        return list(self.session.scalars(stmt.order_by(BURNED.c.burned_at, BURNED.c.apex_hash)))


def _purgeable(now: datetime | float, flagged_after_s: float) -> sa.ColumnElement[bool]:
    cutoff = as_utc(as_utc(now).timestamp() - float(flagged_after_s))
    return sa.or_(
        sa.and_(_C.exit_run == sa.true(), _C.height.is_(None), _C.update_time < cutoff),
        sa.and_(_C.end_time.is_not(None), _C.height.is_(None)),
    )


PURGE_BATCH = 1000


class SqlRunStore:
    """`ttt.ports.RunStore` over the database: every method is one short transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._reader = read_only(engine)

    def _session(self, *, writes: bool = False) -> Session:
        return Session(self.engine if writes else self._reader, expire_on_commit=False)

    def active_counts(self) -> dict[str, int]:
        with self._session() as s:
            return RunRepository(s).active_counts()

    def active_shard_counts(self, symbol: str) -> dict[int, int]:
        with self._session() as s:
            return RunRepository(s).active_shard_counts(symbol)

    def shards_with_members(self) -> dict[str, list[int]]:
        with self._session() as s:
            return RunRepository(s).shards_with_members()

    def insert_runs(self, runs: Sequence[NewRun]) -> list[int]:
        """Runs and the burns of their apex survivors commit together or not at all (§3.7)."""
        with self._session(writes=True) as s, s.begin():
            ids = RunRepository(s).insert_many(runs)
            burns = [
                (r.apex_file, r.apex_hash, run_id)
                for r, run_id in zip(runs, ids, strict=True)
                if r.apex_file is not None and r.apex_hash is not None
            ]
            if burns:
                at = max(r.start_time for r in runs)
                ApexBurnRepository(s).burn_many(burns, at)
            return ids

    def burned_apex_hashes(self, apex_file: str) -> set[str]:
        with self._session() as s:
            return ApexBurnRepository(s).burned_hashes(apex_file)

    def members(self, symbol: str, shard: int, *, with_state: bool = True) -> list[RunMember]:
        with self._session() as s:
            return RunRepository(s).members(symbol, shard, with_state=with_state)

    def member_changes(
        self, symbol: str, shard: int, known_max_id: int, since: float | None
    ) -> tuple[int, list[RunMember]]:
        with self._session() as s:
            return RunRepository(s).member_changes(symbol, shard, known_max_id, since)

    def member_states(self, run_ids: Sequence[int]) -> dict[int, str]:
        if not run_ids:
            return {}
        with self._session() as s:
            return RunRepository(s).states(run_ids)

    def write_shard_tick(self, progress: Sequence[RunProgress], ends: Sequence[RunEnd]) -> None:
        with self._session(writes=True) as s, s.begin():
            repo = RunRepository(s)
            repo.update_progress_many(progress)
            repo.record_ends_many(ends)

    def purge(self, now: float, flagged_after_s: float) -> int:
        """§10 in two steps: the matching ids are read without locks, then deleted by primary key in short
        batches that re-check the condition. The single statement scans the whole table and, on MariaDB,
        keeps every row it scanned locked until it commits, so every shard's write waited for the scan (over
        a minute at a million runs, past the 50 s lock wait timeout)."""
        with self._session() as s:
            ids = RunRepository(s).purgeable_ids(now, flagged_after_s)
        deleted = 0
        for lo in range(0, len(ids), PURGE_BATCH):
            with self._session(writes=True) as s, s.begin():
                deleted += RunRepository(s).purge_ids(ids[lo : lo + PURGE_BATCH], now, flagged_after_s)
        return deleted
