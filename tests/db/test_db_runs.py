"""The runs table: bulk hot paths (providence.md §3.5, §8.1, §9.2), membership, counts, purge (§10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import Run
from ttt.adapters.db.repositories import SqlRunStore, choose_shard
from ttt.adapters.db.repositories.run_progress import update_progress
from ttt.adapters.db.repositories.runs import RUNS, RunRepository
from ttt.adapters.db.uow import UnitOfWork
from ttt.ports import NewRun, RunEnd, RunProgress, RunStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
N = 5000


def _new_run(i: int, *, symbol: str | None = None, shard: int = 0, t: float = T0, **kw: object) -> NewRun:
    return NewRun(
        symbol=symbol or ("BTC/USDC:USDC" if i % 2 == 0 else "ETH/USDC:USDC"),
        shard=shard,
        seed=(2**63 - 1) - i,
        start_time=t,
        start_balance=7000.0,
        max_duration=86400 + i,
        host="host-a",
        ann_params={"symbol": "BTC", "leverage": 3.0, "order": [1, 2, i]},
        run_state={"start_balance": 7000.0, "iteration_count": 0, "weights": [], "i": i},
        **kw,  # type: ignore[arg-type]
    )


def _all_rows(engine: Engine) -> dict[int, sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {int(r.id): r for r in conn.execute(sa.select(RUNS))}


def test_bulk_insert_update_and_end_5000_runs(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i, shard=i % 3) for i in range(N)])
    assert len(ids) == N and len(set(ids)) == N and ids == sorted(ids)

    rows = _all_rows(engine)
    assert set(rows) == set(ids)
    first, last = rows[ids[0]], rows[ids[-1]]
    assert first.seed == 2**63 - 1 and last.seed == 2**63 - N
    assert first.start_time == datetime(2026, 1, 1, tzinfo=UTC) == first.update_time
    assert first.end_time is None and first.live_pnl is None and first.exit_run is False
    assert first.iteration_count == 0 and first.position_direction == 0 and first.height is None
    assert last.ann_params == {"symbol": "BTC", "leverage": 3.0, "order": [1, 2, N - 1]}
    assert json.loads(last.run_state)["i"] == N - 1
    assert last.max_duration == 86400 + N - 1

    progress = [
        RunProgress(
            run_id=rid,
            run_state=json.dumps({"i": i, "w": [i * 0.5, -1.25]}),
            position_direction=(i % 7) - 3,
            iteration_count=i * 2,
            update_time=T0 + 10.5,
            live_pnl=i * 0.25 - 100.0,
        )
        for i, rid in enumerate(ids)
    ]
    with UnitOfWork(engine) as uow:
        assert uow.runs.update_progress_many(progress) == N

    rows = _all_rows(engine)
    for i, rid in enumerate(ids):
        r = rows[rid]
        assert (r.position_direction, r.iteration_count, r.live_pnl) == ((i % 7) - 3, i * 2, i * 0.25 - 100.0)
        assert r.update_time == datetime(2026, 1, 1, 0, 0, 10, 500000, tzinfo=UTC)
        assert json.loads(r.run_state) == {"i": i, "w": [i * 0.5, -1.25]}

    flagged = ids[0]
    with UnitOfWork(engine) as uow:
        assert uow.runs.flag_exit(flagged, T0 + 15) is True
        assert uow.runs.flag_exit(flagged, T0 + 15) is False  # already flagged

    ended = ids[::10]
    ends = [
        RunEnd(
            run_id=rid,
            end_time=T0 + 20,
            end_reason="exit_flag" if rid == flagged else "max_duration",
            end_balance=7000.0 + k,
            live_pnl=float(k),
            run_state=json.dumps({"final": k}),
            position_direction=k % 3,
            iteration_count=10_000 + k,
        )
        for k, rid in enumerate(ended)
    ]
    invalid = ids[1]
    ends.append(RunEnd(invalid, T0 + 20, "invalid_state", None, None, "not json {", None, None))
    with UnitOfWork(engine) as uow:
        assert uow.runs.record_ends_many(ends) == len(ended) + 1

    rows = _all_rows(engine)
    end_at = datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC)
    for k, rid in enumerate(ended):
        r = rows[rid]
        assert r.end_time == end_at == r.update_time
        assert (r.end_balance, r.live_pnl) == (7000.0 + k, float(k))
        assert (r.position_direction, r.iteration_count) == (k % 3, 10_000 + k)
        assert json.loads(r.run_state) == {"final": k}
        assert r.exit_run is (rid == flagged)  # §8.1: exit_run left unchanged
    assert rows[flagged].end_reason == "exit_flag" and rows[ended[1]].end_reason == "max_duration"
    bad = rows[invalid]
    assert bad.end_reason == "invalid_state" and bad.end_balance is None and bad.live_pnl is None
    assert (bad.position_direction, bad.iteration_count) == ((1 % 7) - 3, 2)  # kept
    assert json.loads(bad.run_state) == "not json {"
    untouched = rows[ids[2]]
    assert untouched.end_time is None and untouched.iteration_count == 4

    # An ended run is never overwritten by a late progress write.
    with UnitOfWork(engine) as uow:
        assert uow.runs.update_progress_many([progress[10]]) == 0
    assert _all_rows(engine)[ids[10]].iteration_count == 10_000 + 1

    with UnitOfWork(engine) as uow:
        counts = uow.runs.active_counts()
        members = uow.runs.members("BTC/USDC:USDC", 0)
        shards = uow.runs.shards_with_members()
    # Active: not ended and not flagged. ids[0] is both; ids[1] (ETH) ended invalid.
    ended_set = set(ended) | {invalid}
    expect_btc = sum(1 for i, rid in enumerate(ids) if i % 2 == 0 and rid not in ended_set)
    expect_eth = sum(1 for i, rid in enumerate(ids) if i % 2 == 1 and rid not in ended_set)
    assert counts == {"BTC/USDC:USDC": expect_btc, "ETH/USDC:USDC": expect_eth}
    expect_members = [rid for i, rid in enumerate(ids) if i % 2 == 0 and i % 3 == 0 and rid not in ended_set]
    assert [m.run_id for m in members] == expect_members
    assert all(m.exit_run is False and m.start_time == T0 for m in members)
    assert json.loads(members[0].run_state or "")["i"] == ids.index(members[0].run_id)
    assert shards == {"BTC/USDC:USDC": [0, 1, 2], "ETH/USDC:USDC": [0, 1, 2]}


def _set(engine: Engine, rid: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(RUNS).where(RUNS.c.id == rid).values(**values))


AWKWARD_TEXTS = [
    "it's",
    "back\\slash \\\" and a quote \\'",
    "percent %s %(x)s %% 100%",
    "caf\u00e9 \u4e2d\u6587 \U0001f680",
    "line\nbreak\ttab\x1a\x7f",  # no NUL: JSONB cannot hold \\u0000
    "'); DROP TABLE runs; --",
]


def test_progress_write_stores_any_state_text_exactly(engine: Engine) -> None:
    """The state reaches every database byte-exact, whatever characters it holds (the MariaDB path renders
    values as literals, so this is the test that it cannot be confused by the text)."""
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(len(AWKWARD_TEXTS) * 2)])
    states = {}
    progress = []
    for k, rid in enumerate(ids):
        text = AWKWARD_TEXTS[k % len(AWKWARD_TEXTS)]
        state = {"text": text, "k": k, "x": [0.1, -2.5e-300, 12345.678]}
        raw = json.dumps(state, ensure_ascii=k % 2 == 0)
        states[rid] = state
        progress.append(RunProgress(rid, raw, -k, 1000 + k, T0 + 0.000001 * k + 7, -0.1 * k))
    with UnitOfWork(engine) as uow:
        assert uow.runs.update_progress_many(progress) == len(ids)
    rows = _all_rows(engine)
    for k, rid in enumerate(ids):
        r = rows[rid]
        assert json.loads(r.run_state) == states[rid]
        assert (r.position_direction, r.iteration_count, r.live_pnl) == (-k, 1000 + k, -0.1 * k)
        assert r.update_time == datetime.fromtimestamp(T0 + 7, UTC).replace(microsecond=k)
    assert rows[ids[0]].end_time is None


def test_progress_write_means_the_same_without_backslash_escapes(mariadb_url: str) -> None:
    """MariaDB's literals must not depend on the session's sql_mode: under NO_BACKSLASH_ESCAPES a backslash
    is an ordinary character, so an escaped literal would store different text."""
    engine = make_engine(mariadb_url)
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(len(AWKWARD_TEXTS))])
    states: dict[int, dict[str, str]] = {}
    for k, (rid, text) in enumerate(zip(ids, AWKWARD_TEXTS, strict=True)):
        states[rid] = {"text": text, "q": "it's", "b": "a\\b"} if k % 2 else {"plain": "caf\u00e9 [1, 2]"}
    progress = [
        RunProgress(rid, json.dumps(st, ensure_ascii=False), 1, 9, T0 + 9, 0.5) for rid, st in states.items()
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        try:
            assert update_progress(conn, progress) == len(ids)
        finally:
            conn.exec_driver_sql("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    rows = _all_rows(engine)
    engine.dispose()
    assert {rid: json.loads(rows[rid].run_state) for rid in ids} == states


@pytest.mark.parametrize(
    "bad",
    [
        '{"x": NaN}',
        '{"x": [Infinity]}',
        '{"x": -Infinity}',
        '{"x": 1,}',
        "{'x': 1}",
        '{"x": [1, 2}',
        "",
        "not json",
    ],
)
def test_progress_write_refuses_non_json_and_writes_nothing(engine: Engine, bad: str) -> None:
    """Every dialect refuses the same texts before the statement, MariaDB included, whose json_valid check
    the progress statement skips."""
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(2)])
    good = RunProgress(ids[0], json.dumps({"ok": 1}), 1, 5, T0 + 5, 0.0)
    with pytest.raises(ValueError, match="JSON"), UnitOfWork(engine) as uow:
        uow.runs.update_progress_many([good, RunProgress(ids[1], bad, 1, 5, T0 + 5, 0.0)])
    rows = _all_rows(engine)
    assert rows[ids[0]].iteration_count == 0 and json.loads(rows[ids[0]].run_state)["i"] == 0


def test_progress_write_skips_only_its_own_json_check_on_mariadb(mariadb_url: str) -> None:
    """The progress statement leaves MariaDB's json_valid check to the worker; the column keeps it for every
    other statement, and what the progress write stored passes it."""
    engine = make_engine(mariadb_url)
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(3)])
    progress = [
        RunProgress(rid, json.dumps({"k": k, "w": [0.5, -1e-9]}), 1, 7, T0 + 7, 0.0)
        for k, rid in enumerate(ids)
    ]
    with engine.begin() as conn:
        assert update_progress(conn, progress) == 3
        valid = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM runs WHERE JSON_VALID(run_state) AND id IN ({','.join(map(str, ids))})"
        ).scalar_one()
    with pytest.raises(OperationalError, match=r"(?i)constraint"), engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE runs SET run_state = 'not json' WHERE id = {ids[0]}")
    engine.dispose()
    assert valid == 3


def test_run_state_is_stored_compressed_on_mariadb_and_reads_back_unchanged(mariadb_url: str) -> None:
    """Migration 0004: the server compresses the state it stores, and every reader still gets the exact
    text that was written (a state as large as an aged run's, with every kind of JSON value in it)."""
    engine = make_engine(mariadb_url)
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(2)])
    states = {
        rid: json.dumps(
            {
                "aprs": [(-1) ** j * (j + k) / 7 for j in range(900)],
                "note": "ünïcode ✓ 'quoted' \\ back",
                "ok": True,
                "none": None,
            },
            ensure_ascii=False,
        )
        for k, rid in enumerate(ids)
    }
    with engine.connect() as conn:
        ddl = conn.exec_driver_sql("SHOW CREATE TABLE runs").one()[1]
        (state_line,) = [line for line in ddl.splitlines() if "`run_state`" in line]
        compressions_before = int(
            conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Column_compressions'").one()[1]
        )
        conn.commit()
        written = update_progress(conn, [RunProgress(r, s, 1, 3, T0 + 3, 0.0) for r, s in states.items()])
        conn.commit()
        compressions = int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Column_compressions'").one()[1])
        stored = dict(
            conn.exec_driver_sql(f"SELECT id, run_state FROM runs WHERE id IN ({ids[0]}, {ids[1]})").all()
        )
    engine.dispose()
    assert written == 2
    assert "COMPRESSED" in state_line and "json_valid" in state_line
    assert compressions - compressions_before >= 2
    assert {rid: json.loads(text) for rid, text in stored.items()} == {
        rid: json.loads(text) for rid, text in states.items()
    }
    assert stored == states


def test_purge_deletes_exactly_the_section_10_rows(engine: Engine) -> None:
    now = T0 + 10_000
    a_s = 3600.0
    cutoff = datetime.fromtimestamp(now - a_s, UTC)
    older = datetime.fromtimestamp(now - a_s - 0.000001, UTC)
    recent = datetime.fromtimestamp(now - 10, UTC)
    ended_at = datetime.fromtimestamp(now - 5, UTC)
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(8)])
        uow.apex.burn_many([("apex_survivors_1.json", "h" * 64, ids[1])], T0)
    active, flag_old, flag_recent, ended, ended_h, flag_old_h, flag_at_cutoff, ended_flagged = ids
    _set(engine, flag_old, exit_run=True, update_time=older)
    _set(engine, flag_recent, exit_run=True, update_time=recent)
    _set(engine, ended, end_time=ended_at, update_time=ended_at)
    _set(engine, ended_h, end_time=ended_at, height=1, exit_run=True)
    _set(engine, flag_old_h, exit_run=True, height=1, update_time=older)
    _set(engine, flag_at_cutoff, exit_run=True, update_time=cutoff)
    _set(engine, ended_flagged, exit_run=True, end_time=ended_at, update_time=ended_at)

    with UnitOfWork(engine) as uow:
        assert uow.runs.purge(now, a_s) == 3
    assert set(_all_rows(engine)) == {active, flag_recent, ended_h, flag_old_h, flag_at_cutoff}
    with UnitOfWork(engine) as uow:
        assert uow.apex.burned_hashes("apex_survivors_1.json") == {"h" * 64}  # purge never touches it


@pytest.mark.parametrize("shape", ["by_ids", "one_statement"])
def test_an_open_purge_does_not_block_shard_writes_on_mariadb(mariadb_url: str, shape: str) -> None:
    """The store deletes by primary key, so a purge transaction holds only the rows it deletes; the single
    scanning statement (the `one_statement` case) holds the active run too, which shows the test can fail."""
    engine = make_engine(mariadb_url)
    upgrade(engine)
    try:
        with UnitOfWork(engine) as uow:
            active, ended = uow.runs.insert_many([_new_run(0), _new_run(1)])
        _set(engine, ended, end_time=datetime.fromtimestamp(T0 + 5, UTC))
        with Session(engine) as held, held.begin():
            repo = RunRepository(held)
            if shape == "by_ids":
                assert repo.purgeable_ids(T0 + 10, 3600.0) == [ended]
                assert repo.purge_ids([ended], T0 + 10, 3600.0) == 1  # not committed yet
            else:
                assert repo.purge(T0 + 10, 3600.0) == 1
            with engine.connect() as conn, conn.begin():
                conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
                write = [RunProgress(active, json.dumps({"i": 1}), 1, 1, T0 + 10, 0.0)]
                if shape == "by_ids":
                    assert update_progress(conn, write) == 1
                else:
                    with pytest.raises(OperationalError, match="Lock wait timeout"):
                        update_progress(conn, write)
    finally:
        engine.dispose()


def test_take_profit_and_drawdown_flags(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(i) for i in range(4)])
    _set(engine, ids[0], exit_run=True)  # already flagged: not captured by a take-profit
    _set(engine, ids[1], end_time=datetime.fromtimestamp(T0 + 1, UTC))  # ended, unflagged: captured
    with UnitOfWork(engine) as uow:
        assert uow.runs.max_height() == 0
        assert uow.runs.flag_take_profit(1, T0 + 50) == 3
        assert uow.runs.max_height() == 1
    rows = _all_rows(engine)
    assert [rows[i].height for i in ids] == [None, 1, 1, 1]
    assert all(rows[i].exit_run for i in ids)
    with UnitOfWork(engine) as uow:
        new = uow.runs.insert_many([_new_run(9, t=T0 + 60)])
        assert uow.runs.flag_drawdown_reset(T0 + 70) == 2  # ids[0] and the new run: height NULL
    rows = _all_rows(engine)
    assert rows[new[0]].exit_run is True and rows[new[0]].height is None
    assert rows[new[0]].update_time == datetime.fromtimestamp(T0 + 70, UTC)


def test_shard_choice_fills_lowest_index_first(engine: Engine) -> None:
    assert choose_shard({}, 2) == 0
    assert choose_shard({0: 2, 1: 1}, 2) == 1
    assert choose_shard({0: 2, 1: 2}, 2) == 2
    assert choose_shard({0: 2, 2: 2}, 2) == 1
    with UnitOfWork(engine) as uow:
        assert uow.runs.next_shard_for("BTC/USDC:USDC", 2) == 0
        ids = uow.runs.insert_many([_new_run(0, shard=0), _new_run(2, shard=0)])
        uow.runs.insert_many([_new_run(1, symbol="BTC/USDC:USDC", shard=1)])
        assert uow.runs.active_shard_counts("BTC/USDC:USDC") == {0: 2, 1: 1}
        assert uow.runs.next_shard_for("BTC/USDC:USDC", 2) == 1
        assert uow.runs.next_shard_for("ETH/USDC:USDC", 2) == 0
        uow.runs.flag_exit(ids[0], T0 + 1)
        assert uow.runs.next_shard_for("BTC/USDC:USDC", 2) == 0


def test_run_store_inserts_runs_and_apex_burns_atomically(engine: Engine) -> None:
    store = SqlRunStore(engine)
    assert isinstance(store, RunStore)
    apex = {"apex_file": "apex_survivors_7.json", "apex_hash": "a" * 64, "apex_rank": 3}
    ids = store.insert_runs([_new_run(0), _new_run(1, **apex)])
    assert store.burned_apex_hashes("apex_survivors_7.json") == {"a" * 64}
    assert store.burned_apex_hashes("other.json") == set()
    assert store.active_counts() == {"BTC/USDC:USDC": 1, "ETH/USDC:USDC": 1}
    with pytest.raises(IntegrityError):
        store.insert_runs([_new_run(2), _new_run(3, **apex)])  # the same survivor twice
    assert store.active_counts() == {"BTC/USDC:USDC": 1, "ETH/USDC:USDC": 1}  # rolled back together

    with UnitOfWork(engine) as uow:
        run = uow.runs.get(ids[1])
        assert run is not None and isinstance(run, Run)
        assert (run.apex_file, run.apex_hash, run.apex_rank) == ("apex_survivors_7.json", "a" * 64, 3)
        burned = uow.apex.list_burned()
        assert [(b.apex_file, b.run_id) for b in burned] == [("apex_survivors_7.json", ids[1])]

    store.write_shard_tick(
        [RunProgress(ids[0], '{"s": 1}', 1, 50, T0 + 5, 1.5)],
        [RunEnd(ids[1], T0 + 5, "apr_target", 7100.0, 100.0, '{"s": 2}', 2, 51)],
    )
    members = {m.run_id: m for m in store.members("BTC/USDC:USDC", 0)}
    assert list(members) == [ids[0]] and json.loads(members[ids[0]].run_state or "") == {"s": 1}
    assert store.members("ETH/USDC:USDC", 0) == []
    assert store.purge(T0 + 10, 3600) == 1


def test_records_and_liveness_for_the_portfolio_side(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many([_new_run(0), _new_run(2, t=T0 + 30)])
        uow.runs.update_progress_many([RunProgress(ids[0], "{}", -2, 50, T0 + 40, 3.5)])
    with UnitOfWork(engine) as uow:
        recs = uow.runs.records("BTC/USDC:USDC")
        n, newest = uow.runs.liveness("BTC/USDC:USDC")
        listed = uow.runs.list_runs(state="active")
    assert [(r.position_direction, r.live_pnl, r.update_time) for r in recs] == [
        (-2, 3.5, T0 + 40),
        (0, None, T0 + 30),
    ]
    assert all(r.active for r in recs)
    assert (n, newest) == (2, datetime.fromtimestamp(T0 + 40, UTC))
    assert [r.id for r in listed] == [ids[1], ids[0]]


def test_member_changes_counts_unended_runs_and_lists_only_the_changed(engine: Engine) -> None:
    btc = "BTC/USDC:USDC"
    with UnitOfWork(engine) as uow:
        early = uow.runs.insert_many([_new_run(0, symbol=btc, shard=1) for _ in range(5)])
        late = uow.runs.insert_many([_new_run(0, symbol=btc, shard=1, t=T0 + 60) for _ in range(2)])
        other = uow.runs.insert_many([_new_run(0, symbol=btc, shard=2)])
    store = SqlRunStore(engine)
    with UnitOfWork(engine) as uow:
        uow.runs.flag_exit(early[1], T0 + 5)
        uow.runs.record_ends_many([RunEnd(early[2], T0 + 6, "max_duration", 7000.0, 0.0, "{}", 0, 1)])
        uow.runs.flag_exit(early[2], T0 + 7)  # ended and flagged: not a member any more

    # Nothing new beyond what the caller knows: the count and the flagged run.
    count, changed = store.member_changes(btc, 1, max(late), T0 + 120)
    assert (count, [(m.run_id, m.exit_run) for m in changed]) == (6, [(early[1], True)])
    count, changed = store.member_changes(btc, 1, early[-1], T0 + 30)
    assert count == 6
    assert [m.run_id for m in changed] == [early[1], *late]  # flagged, and newer ids (also started since)
    assert [m.exit_run for m in changed] == [True, False, False]
    assert changed[1].start_time == T0 + 60
    count, changed = store.member_changes(btc, 1, max(late), None)
    assert (count, [m.run_id for m in changed]) == (6, [early[1]])
    count, changed = store.member_changes(btc, 1, 0, None)
    assert (count, sorted(m.run_id for m in changed)) == (6, sorted(set(early + late) - {early[2]}))
    assert store.member_changes(btc, 2, max(other), T0 + 1) == (1, [])
    assert store.member_changes(btc, 7, 0, None) == (0, [])
    assert store.member_changes("ETH/USDC:USDC", 1, 0, T0) == (0, [])
