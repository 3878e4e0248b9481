"""The shard cache as base + journal (providence.md §9.1, §9.4, §18.3): a process that did not step the
shard's previous tick, or one that crashed mid-tick, continues exactly where the shard was."""

from __future__ import annotations

import pickle
from dataclasses import replace

import sqlalchemy as sa

from tests.providence.test_services_providence import (
    BTC,
    FakeClock,
    Harness,
    _reference_run,
    _rows,
    _state,
    _supervisor,
    _ticks,
)
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import Run
from ttt.adapters.db.repositories.runs import SqlRunStore
from ttt.services.providence.codec import decode_base, decode_journal, encode_base
from ttt.services.providence.shard import (
    ShardStepper,
    shard_base_key,
    shard_lock_name,
    shard_state_key,
    shard_tick_key,
)


def _db_view(engine: sa.Engine) -> list[tuple[object, ...]]:
    return [
        (r.id, r.end_time, r.end_reason, r.end_balance, r.iteration_count, r.position_direction, r.run_state)
        for r in _rows(engine)
    ]


def _drive(h: Harness, ticks, *, fresh_each_tick: bool, flag_at: int | None = None, flag_id: int = 0):  # type: ignore[no-untyped-def]
    for k, (t, p, v, w) in enumerate(ticks):
        if flag_at is not None and k == flag_at:
            with sa.orm.Session(h.engine) as s, s.begin():
                s.execute(sa.update(Run).where(Run.id == flag_id).values(exit_run=True))
        if fresh_each_tick:  # another worker process: nothing in memory, only the cache
            h.stepper = ShardStepper(h.store, h.cache, h.locks, lambda: h.settings)
        h.tick(BTC, t, p, v, w)
        assert h.stepper.step(BTC, 0, t).status == "stepped"


def _pair(sqlite_url_a: str, sqlite_url_b: str) -> tuple[Harness, Harness]:
    out = []
    for url in (sqlite_url_a, sqlite_url_b):
        eng = make_engine(url)
        upgrade(eng)
        store = SqlRunStore(eng)
        _supervisor(store, FakeClock(), desired=12, shard_size=50).run()
        h = Harness(store, eng, write_every=4)
        h.settings = replace(h.settings, base_every_ticks=5)
        out.append(h)
    return out[0], out[1]


def test_rebuilt_every_tick_equals_kept_in_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every tick on a process that must replay base + journal gives the same cache, rows and ends as one
    process that kept the population, across base boundaries, an exit flag and completions."""
    kept, moved = _pair(f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}")
    ticks = _ticks(70)
    flag_id = next(r.id for r in _rows(kept.engine) if r.symbol == BTC)
    _drive(kept, ticks, fresh_each_tick=False, flag_at=20, flag_id=flag_id)
    _drive(moved, ticks, fresh_each_tick=True, flag_at=20, flag_id=flag_id)
    assert _db_view(kept.engine) == _db_view(moved.engine)
    assert kept.cached(BTC, 0) == moved.cached(BTC, 0)
    journal = decode_journal(moved.cache.get(shard_state_key(BTC, 0)))
    assert journal is not None and journal.base_t is not None
    assert len([e for e in journal.entries if e.t > journal.base_t]) < 5
    ended = [r for r in _rows(moved.engine) if r.symbol == BTC and r.end_reason]
    assert any(r.end_reason == "exit_flag" for r in ended)
    for engine in (kept.engine, moved.engine):
        engine.dispose()


def test_cached_states_equal_the_reference(store: SqlRunStore, engine: sa.Engine) -> None:
    """§9.1: decoding the cache gives exactly the states `reference.step` produces."""
    _supervisor(store, FakeClock(), desired=8, shard_size=50).run()
    start = {r.id: _state(r) for r in _rows(engine) if r.symbol == BTC}
    h = Harness(store, engine, write_every=7)
    h.settings = replace(h.settings, base_every_ticks=4)
    ticks = _ticks(30)
    _drive(h, ticks, fresh_each_tick=False)
    cached = h.cached_states(BTC, 0)
    for rid, state in start.items():
        expected, results = _reference_run(state, ticks)
        if results[-1].status != "completed":
            assert cached[rid] == expected


def test_tick_whose_commit_did_not_finish_is_stepped_again(store: SqlRunStore, engine: sa.Engine) -> None:
    """A crash after the journal write but before the tick is committed: the next delivery discards the
    uncommitted entry and steps the tick once, to the same result as an uninterrupted shard."""
    _supervisor(store, FakeClock(), desired=8, shard_size=50).run()
    h = Harness(store, engine, write_every=2)
    h.settings = replace(h.settings, base_every_ticks=3)
    ticks = _ticks(12)
    _drive(h, ticks[:7], fresh_each_tick=False)
    committed = h.cache.get(shard_tick_key(BTC, 0))
    t, p, v, w = ticks[7]
    h.tick(BTC, t, p, v, w)
    h.stepper.step(BTC, 0, t)
    expected_states = h.cached_states(BTC, 0)
    expected_rows = _db_view(engine)
    h.cache.set(shard_tick_key(BTC, 0), committed)  # as if the process died before committing tick 7
    h.stepper = ShardStepper(h.store, h.cache, h.locks, lambda: h.settings)
    report = h.stepper.step(BTC, 0, t)
    assert report.status == "stepped"
    assert h.cached_states(BTC, 0) == expected_states
    assert _db_view(engine) == expected_rows
    states = h.cached_states(BTC, 0)
    assert all(s["iteration_count"] == expected_states[rid]["iteration_count"] for rid, s in states.items())


def test_lost_base_cold_loads_members_from_the_database(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    h = Harness(store, engine, write_every=1)
    h.settings = replace(h.settings, base_every_ticks=2)
    ticks = _ticks(8)
    _drive(h, ticks[:5], fresh_each_tick=False)
    h.cache.set(shard_base_key(BTC, 0), b"TTTB garbage")
    _drive(h, ticks[5:], fresh_each_tick=True)
    active = [r.id for r in _rows(engine) if r.symbol == BTC and r.end_time is None]
    cached = h.cached_states(BTC, 0)
    assert active and sorted(cached) == sorted(active)
    # write_every=1: the database copy was current, so the cold load lost nothing
    assert all(
        cached[rid]["iteration_count"] == len(ticks) - sum(1 for t in ticks if t[1] is None) for rid in active
    )


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("executed",))


def test_base_refuses_foreign_objects_and_other_layouts(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=4, shard_size=50).run()
    h = Harness(store, engine)
    _drive(h, _ticks(3), fresh_each_tick=False)
    population = h.stepper._live[(BTC, 0)].population
    good = encode_base(population, 123.0)
    decoded = decode_base(good, BTC)
    assert decoded is not None and decoded[0] == 123.0
    assert decoded[1].to_states() == population.to_states()
    header = good[: len(good) - len(pickle.dumps(population, protocol=5))]
    assert decode_base(header + pickle.dumps(_Boom(), protocol=5), BTC) is None
    other_layout = header[:5] + bytes(16) + header[21:]
    assert decode_base(other_layout + good[len(header) :], BTC) is None
    assert decode_base(good, "ETH/USDC:USDC") is None
    assert decode_base(None, BTC) is None


def test_runs_joining_between_bases_are_replayed(store: SqlRunStore, engine: sa.Engine) -> None:
    """New runs join mid-journal; a process rebuilding from the cache holds them with their stepped state."""
    clock = FakeClock()
    _supervisor(store, clock, desired=4, shard_size=50).run()
    h = Harness(store, engine, write_every=50)
    h.settings = replace(h.settings, base_every_ticks=50)
    ticks = _ticks(10)
    _drive(h, ticks[:4], fresh_each_tick=False)
    clock.t = ticks[3][0]
    _supervisor(store, clock, desired=12, shard_size=50).run()
    _drive(h, ticks[4:], fresh_each_tick=False)
    in_memory = h.stepper._live[(BTC, 0)].population.to_states()
    assert len(in_memory) > 4 - sum(1 for r in _rows(engine) if r.end_time is not None)
    assert h.cached_states(BTC, 0) == in_memory


def test_flags_and_config_changes_between_bases_are_replayed(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=8, shard_size=50).run()
    h = Harness(store, engine, write_every=50)
    h.settings = replace(h.settings, base_every_ticks=50)
    ticks = _ticks(9)
    flag_id = next(r.id for r in _rows(engine) if r.symbol == BTC)
    _drive(h, ticks[:3], fresh_each_tick=False, flag_at=2, flag_id=flag_id)
    h.settings = replace(h.settings, providence={**h.settings.providence, "max_position_direction": 3})
    _drive(h, ticks[3:6], fresh_each_tick=False)
    journal = decode_journal(h.cache.get(shard_state_key(BTC, 0)))
    assert journal is not None and any(e.removed for e in journal.entries)
    assert any(e.config for e in journal.entries)
    live = h.stepper._live[(BTC, 0)].population
    assert flag_id not in h.cached_states(BTC, 0)
    assert h.cached_states(BTC, 0) == live.to_states()
    fresh = ShardStepper(h.store, h.cache, h.locks, lambda: h.settings)
    fresh.step(BTC, 0, ticks[5][0])  # already processed: rebuilds nothing, changes nothing
    h.stepper = fresh
    _drive(h, ticks[6:], fresh_each_tick=False)
    assert fresh._live[(BTC, 0)].population.config["max_position_direction"] == 3


def test_run_ended_elsewhere_leaves_the_kept_population(store: SqlRunStore, engine: sa.Engine) -> None:
    """The per-tick membership check is a count plus the changed rows; a run ended by someone else makes
    the count disagree, the whole list is read, and the run is no longer stepped."""
    _supervisor(store, FakeClock(), desired=8, shard_size=50).run()
    h = Harness(store, engine, write_every=50)
    h.settings = replace(h.settings, base_every_ticks=50)
    ticks = _ticks(6)
    _drive(h, ticks[:3], fresh_each_tick=False)
    before = h.stepper.step(BTC, 0, ticks[2][0])
    assert before.status == "already_processed"
    victim = sorted(h.cached_states(BTC, 0))[0]
    with sa.orm.Session(engine) as s, s.begin():
        s.execute(sa.update(Run).where(Run.id == victim).values(end_time=sa.func.now(), end_reason="manual"))
    t, p, v, w = ticks[3]
    h.tick(BTC, t, p, v, w)
    n_before = len(h.stepper._live[(BTC, 0)].population)
    report = h.stepper.step(BTC, 0, t)
    assert report.stepped == n_before - 1
    assert victim not in h.cached_states(BTC, 0)
    assert next(r for r in _rows(engine) if r.id == victim).end_reason == "manual"


def test_two_processes_taking_turns_equal_one_process(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each process catches up from its own copy (one tick behind) with the other's journal entries,
    without decoding the base."""
    import ttt.services.providence.shard as shard_module

    one, two = _pair(f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}")
    ticks = _ticks(40)
    flag_id = next(r.id for r in _rows(one.engine) if r.symbol == BTC)
    _drive(one, ticks, fresh_each_tick=False, flag_at=13, flag_id=flag_id)
    decoded: list[float] = []
    real_decode = shard_module.decode_base

    def counting_decode(raw, symbol):  # type: ignore[no-untyped-def]
        decoded.append(1.0)
        return real_decode(raw, symbol)

    monkeypatch.setattr(shard_module, "decode_base", counting_decode)
    workers = [ShardStepper(two.store, two.cache, two.locks, lambda: two.settings) for _ in range(2)]
    for k, (t, p, v, w) in enumerate(ticks):
        if k == 13:
            with sa.orm.Session(two.engine) as s, s.begin():
                s.execute(sa.update(Run).where(Run.id == flag_id).values(exit_run=True))
        two.tick(BTC, t, p, v, w)
        assert workers[k % 2].step(BTC, 0, t).status == "stepped"
    assert len(decoded) <= 1  # only the second worker's first tick may need the base
    assert _db_view(one.engine) == _db_view(two.engine)
    assert one.cached(BTC, 0) == two.cached(BTC, 0)
    for engine in (one.engine, two.engine):
        engine.dispose()


def test_step_that_outlived_its_lock_writes_nothing(store: SqlRunStore, engine: sa.Engine) -> None:
    """A step slower than its lock, whose shard another worker took meanwhile: no cache write, no database
    write, so the new holder's tick is not overwritten (providence.md §18.1)."""
    _supervisor(store, FakeClock(), desired=8, shard_size=50).run()
    h = Harness(store, engine, write_every=1)
    ticks = _ticks(4)
    _drive(h, ticks[:3], fresh_each_tick=False)
    before = {
        k: h.cache.get(k) for k in (shard_state_key(BTC, 0), shard_tick_key(BTC, 0), shard_base_key(BTC, 0))
    }
    rows = _db_view(engine)

    class TakenOver:
        """Reading membership takes 'long': the lock expires and another worker acquires it."""

        def __init__(self, inner: SqlRunStore) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def member_changes(self, *a: object) -> object:
            h.locks.cache.delete(f"lock:{shard_lock_name(BTC, 0)}")
            assert h.locks.acquire(shard_lock_name(BTC, 0), 15) is not None
            return self.inner.member_changes(*a)

    clock = iter([0.0] + [100.0] * 20)
    slow = ShardStepper(TakenOver(store), h.cache, h.locks, lambda: h.settings, monotonic=lambda: next(clock))  # type: ignore[arg-type]
    t, p, v, w = ticks[3]
    h.tick(BTC, t, p, v, w)
    report = slow.step(BTC, 0, t)
    assert report.status == "lost_lock" and report.stepped > 0
    assert {k: h.cache.get(k) for k in before} == before
    assert _db_view(engine) == rows
