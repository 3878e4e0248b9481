"""Providence services over the real SQLite store and the in-process cache: supervisor, dispatch, shard step,
persistence cadence, pending ends, purge (providence.md §3, §8–§10, §18)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest
import sqlalchemy as sa

from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.models import Run
from ttt.adapters.db.repositories.runs import SqlRunStore
from ttt.adapters.market.feed import price_key
from ttt.ports import RunEnd, RunProgress
from ttt.providence import reference
from ttt.services.locking import LockBusy
from ttt.services.providence.codec import ShardSnapshot
from ttt.services.providence.dispatch import Dispatcher, DispatchSettings
from ttt.services.providence.inputs import BarVisibility, TickRecord, tick_key
from ttt.services.providence.purge import purge_runs
from ttt.services.providence.shard import ShardSettings, ShardStepper, shard_lock_name, shard_state_key
from ttt.services.providence.supervisor import SupervisorService, SupervisorSettings

BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
T0 = 1_700_000_000.0


@dataclass
class FakeClock:
    t: float = T0

    def now(self) -> float:
        return self.t


class ListBars:
    """A BarStore over a list, for dispatch tests that need exact control of visibility."""

    def __init__(self, rows: Sequence[tuple[int, float, float, float, float]]) -> None:
        self.rows = list(rows)

    def bars(self, symbol: str, timeframe: str, since_open_ms: int, until_open_ms: int):  # type: ignore[no-untyped-def]
        return [r for r in self.rows if since_open_ms <= r[0] <= until_open_ms]


PROV = {"desired_run_count": 12, "max_margin_allocation_threshold": 45, "virtual_balance": 7000}


def _supervisor(
    store: SqlRunStore, clock: FakeClock, desired: int = 12, shard_size: int = 5
) -> SupervisorService:
    cfg = SupervisorSettings(
        symbols=[BTC, ETH], providence={**PROV, "desired_run_count": desired}, shard_size=shard_size
    )
    return SupervisorService(
        store,
        MemoryLockManager(),
        clock,
        lambda: cfg,
        lambda: {BTC: 40, ETH: 25},
        np.random.Generator(np.random.PCG64(7)),
        host="test-host",
    )


def _state(row: Run) -> dict:  # type: ignore[type-arg]
    """run_state is stored as the state's JSON text."""
    return json.loads(row.run_state)


def _rows(engine: sa.Engine) -> list[Run]:
    with sa.orm.Session(engine) as s:
        return list(s.scalars(sa.select(Run).order_by(Run.id)))


def test_supervisor_tops_up_assigns_shards_and_is_idempotent(store: SqlRunStore, engine: sa.Engine) -> None:
    clock = FakeClock()
    ids = _supervisor(store, clock).run()
    assert len(ids) == 12
    rows = _rows(engine)
    for symbol in (BTC, ETH):
        shards = [r.shard for r in rows if r.symbol == symbol]
        # lowest shard with < 5 active runs, in creation order (§18.1)
        assert shards == [i // 5 for i in range(len(shards))]
    for r in rows:
        params = r.ann_params
        assert params == reference.sample_params(r.seed, r.symbol, params["leverage"], PROV)
        assert _state(r) == reference.new_state(params, T0, 7000.0)
        assert r.host == "test-host" and r.end_time is None and r.iteration_count == 0
    assert _supervisor(store, clock).run() == []  # population full: nothing to do


def test_supervisor_lock_held_skips(store: SqlRunStore) -> None:
    clock = FakeClock()
    sup = _supervisor(store, clock)
    sup._locks.acquire("providence:supervisor", 300)
    with pytest.raises(LockBusy):
        sup.run()


def _publish_price(cache: MemoryCache, symbol: str, price: float, ts: float) -> None:
    cache.set(price_key(symbol), json.dumps({"price": price, "ts": ts, "source": "synthetic"}), 60)


def test_dispatch_builds_one_record_per_symbol_and_spreads_shards(store: SqlRunStore) -> None:
    clock = FakeClock(T0 + 100)
    _supervisor(store, FakeClock(), desired=12, shard_size=5).run()
    cache = MemoryCache()
    minute = int(T0 // 60) * 60
    bars = ListBars(
        [((minute - 60 * k) * 1000, 100.0, 101.0 + k, 99.0, 100.0 + 0.5 * k) for k in range(5, 0, -1)]
    )
    _publish_price(cache, BTC, 100_000.0, clock.t - 10)
    _publish_price(cache, ETH, 3_000.0, clock.t - 61)  # older than max age: unavailable (§13.1)
    jobs: list[tuple[str, int, float, float]] = []
    settings = DispatchSettings(symbols=[BTC, ETH], period_s=5, spread=0.8, price_max_age_s=60)
    dispatcher = Dispatcher(
        store,
        cache,
        bars,
        MemoryLockManager(),
        clock,
        lambda: settings,
        lambda *job: jobs.append(job),
        BarVisibility(completed_only=True),
    )
    report = dispatcher.dispatch()
    btc = TickRecord.from_json(BTC, cache.get(tick_key(BTC)))  # type: ignore[arg-type]
    eth = TickRecord.from_json(ETH, cache.get(tick_key(ETH)))  # type: ignore[arg-type]
    assert btc.price == 100_000.0 and btc.t == clock.t
    assert btc.volatility is not None and btc.volatility > 0
    assert eth.price is None and eth.weight == 0.0
    shards = store.shards_with_members()
    expected_order = [(BTC, k) for k in shards[BTC]] + [(ETH, k) for k in shards[ETH]]
    assert [(s, k) for s, k, _, _ in jobs] == expected_order
    total = len(expected_order)
    assert [c for *_, c in jobs] == pytest.approx([5 * 0.8 * j / total for j in range(total)])
    assert report.t == clock.t


def test_dispatch_does_not_overlap_itself(store: SqlRunStore) -> None:
    locks = MemoryLockManager()
    locks.acquire("providence:dispatch", 30)
    dispatcher = Dispatcher(
        store,
        MemoryCache(),
        ListBars([]),
        locks,
        FakeClock(),
        lambda: DispatchSettings(symbols=[BTC]),
        lambda *job: None,
        BarVisibility(completed_only=False),
    )
    with pytest.raises(LockBusy):
        dispatcher.dispatch()


class Harness:
    """Supervisor-created runs stepped shard by shard with hand-set tick records."""

    def __init__(self, store: SqlRunStore, engine: sa.Engine, write_every: int = 3) -> None:
        self.store = store
        self.engine = engine
        self.cache = MemoryCache()
        self.locks = MemoryLockManager()
        self.settings = ShardSettings(
            symbols=[BTC, ETH],
            providence={"max_position_direction": 1024},
            db_write_every_ticks=write_every,
            dispatch_period_s=5,
        )
        self.stepper = ShardStepper(store, self.cache, self.locks, lambda: self.settings)

    def tick(self, symbol: str, t: float, price: float | None, vol: float | None, weight: float) -> None:
        self.cache.set(tick_key(symbol), TickRecord(symbol, t, price, vol, weight).to_json(), 60)

    def cached(self, symbol: str, shard: int) -> ShardSnapshot:
        """Decoded by a fresh stepper, so from the cache alone, never from a live population."""
        return ShardStepper(self.store, self.cache, self.locks, lambda: self.settings).cached(symbol, shard)

    def cached_states(self, symbol: str, shard: int) -> dict[int, dict]:  # type: ignore[type-arg]
        return self.cached(symbol, shard).states


def _reference_run(state: dict, ticks: Sequence[tuple[float, float | None, float | None, float]]):  # type: ignore[no-untyped-def,type-arg]
    results = []
    for t, p, v, w in ticks:
        state, r = reference.step(state, t, p, v, w)
        results.append(r)
        if r.status == "completed":
            break
    return state, results


def _ticks(n: int) -> list[tuple[float, float | None, float | None, float]]:
    rng = np.random.default_rng(3)
    price = 100_000.0
    out: list[tuple[float, float | None, float | None, float]] = []
    for k in range(1, n + 1):
        price *= float(np.exp(rng.normal(0, 0.0008)))
        weight = 0.2 if (k // 25) % 2 == 0 else -0.1  # long same-sign stretches: entropy 0, trades happen
        p: float | None = None if k % 17 == 0 else price
        out.append((T0 + 5 * k, p, 300.0, weight))
    return out


def test_shard_steps_match_reference_and_persist_on_cadence(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=12, shard_size=50).run()
    rows = {r.id: r for r in _rows(engine) if r.symbol == BTC}
    h = Harness(store, engine, write_every=3)
    ticks = _ticks(80)
    trades = 0
    for t, p, v, w in ticks:
        h.tick(BTC, t, p, v, w)
        report = h.stepper.step(BTC, 0, t)
        assert report.status == "stepped"
        trades += report.trades
    assert trades > 0
    cached = h.cached_states(BTC, 0)
    db_rows = {r.id: r for r in _rows(engine)}
    for rid, row in rows.items():
        expected, results = _reference_run(_state(row), ticks)
        final = results[-1]
        if final.status == "completed":
            assert db_rows[rid].end_reason == final.reason
            assert db_rows[rid].end_balance == final.balance
            assert _state(db_rows[rid]) == expected
            assert rid not in cached
        else:
            assert cached[rid] == expected
            db_state = _state(db_rows[rid])
            # the DB copy is at most N−1 stepped ticks behind and never ahead (§9.2, §9.4)
            assert db_state["iteration_count"] <= expected["iteration_count"]
            assert expected["iteration_count"] - db_state["iteration_count"] < 3
            assert db_rows[rid].iteration_count == db_state["iteration_count"]
            assert db_rows[rid].position_direction == db_state["position_direction"]


def test_sv09_redelivered_tick_returns_at_once_and_changes_nothing(
    store: SqlRunStore, engine: sa.Engine
) -> None:
    _supervisor(store, FakeClock(), desired=4, shard_size=50).run()
    h = Harness(store, engine)
    h.tick(BTC, T0 + 5, 100_000.0, 300.0, 0.2)
    assert h.stepper.step(BTC, 0, T0 + 5).status == "stepped"
    before = (h.cached_states(BTC, 0), [(r.id, r.iteration_count, r.run_state) for r in _rows(engine)])
    again = h.stepper.step(BTC, 0, T0 + 5)
    assert again.status == "already_processed"
    assert (
        h.cached_states(BTC, 0),
        [(r.id, r.iteration_count, r.run_state) for r in _rows(engine)],
    ) == before


def test_held_shard_lock_drops_the_task(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    h = Harness(store, engine)
    h.tick(BTC, T0 + 5, 100_000.0, 300.0, 0.2)
    h.locks.acquire(shard_lock_name(BTC, 0), 15)
    assert h.stepper.step(BTC, 0, T0 + 5).status == "locked"


def test_exit_flag_and_unconfigured_symbol_end_runs_at_stored_price(
    store: SqlRunStore, engine: sa.Engine
) -> None:
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    h = Harness(store, engine)
    btc_ids = [r.id for r in _rows(engine) if r.symbol == BTC]
    h.tick(BTC, T0 + 5, 100_000.0, 300.0, 0.2)
    h.stepper.step(BTC, 0, T0 + 5)
    with sa.orm.Session(engine) as s, s.begin():
        s.execute(sa.update(Run).where(Run.id == btc_ids[0]).values(exit_run=True))
    h.tick(BTC, T0 + 10, 100_500.0, 300.0, 0.2)
    report = h.stepper.step(BTC, 0, T0 + 10)
    assert report.ends.get("exit_flag") == 1
    flagged = next(r for r in _rows(engine) if r.id == btc_ids[0])
    assert flagged.end_reason == "exit_flag" and flagged.end_time is not None
    assert flagged.exit_run is True
    assert (
        flagged.end_balance == 7000.0
        or flagged.end_balance == reference.voms_metrics(_state(flagged)["voms_state"])["account_balance"]
    )
    # the universe drops BTC: every remaining BTC run ends with unconfigured_symbol, state unchanged
    h.settings = replace(h.settings, symbols=[ETH])
    h.tick(BTC, T0 + 15, 100_500.0, 300.0, 0.2)
    report = h.stepper.step(BTC, 0, T0 + 15)
    ended = [r for r in _rows(engine) if r.symbol == BTC and r.end_reason == "unconfigured_symbol"]
    assert len(ended) == len(btc_ids) - 1 - sum(
        1
        for r in _rows(engine)
        if r.symbol == BTC and r.end_reason not in (None, "exit_flag", "unconfigured_symbol")
    )
    assert all(r.iteration_count == _state(r)["iteration_count"] for r in ended)


class FailingOnce:
    """Our RunStore port with one injected write failure (a database outage)."""

    def __init__(self, inner: SqlRunStore) -> None:
        self.inner = inner
        self.fail_next = False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def write_shard_tick(self, progress: Sequence[RunProgress], ends: Sequence[RunEnd]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise sa.exc.OperationalError("UPDATE runs", {}, Exception("database is down"))
        self.inner.write_shard_tick(progress, ends)


def test_failed_end_write_stays_pending_and_is_retried(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    failing = FailingOnce(store)
    h = Harness(store, engine)
    h.stepper = ShardStepper(failing, h.cache, h.locks, lambda: h.settings)  # type: ignore[arg-type]
    target = next(r.id for r in _rows(engine) if r.symbol == BTC)
    h.tick(BTC, T0 + 5, 100_000.0, 300.0, 0.2)
    h.stepper.step(BTC, 0, T0 + 5)
    with sa.orm.Session(engine) as s, s.begin():
        s.execute(sa.update(Run).where(Run.id == target).values(exit_run=True))
    failing.fail_next = True
    h.tick(BTC, T0 + 10, 100_000.0, 300.0, 0.2)
    report = h.stepper.step(BTC, 0, T0 + 10)
    assert report.db_failed
    pending = h.cached(BTC, 0).pending_ends
    assert target in pending and pending[target].end_reason == "exit_flag"
    assert next(r for r in _rows(engine) if r.id == target).end_time is None
    # a restart: a new stepper (no in-memory population) retries the pending end at the next tick
    h.stepper = ShardStepper(store, h.cache, h.locks, lambda: h.settings)
    h.tick(BTC, T0 + 15, 100_000.0, 300.0, 0.2)
    h.stepper.step(BTC, 0, T0 + 15)
    row = next(r for r in _rows(engine) if r.id == target)
    assert row.end_reason == "exit_flag" and row.end_time is not None
    assert h.cached(BTC, 0).pending_ends == {}


def test_cold_load_from_database_when_cache_is_lost(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=4, shard_size=50).run()
    h = Harness(store, engine, write_every=1)
    ticks = _ticks(6)
    for t, p, v, w in ticks[:3]:
        h.tick(BTC, t, p, v, w)
        h.stepper.step(BTC, 0, t)
    h.cache.delete(shard_state_key(BTC, 0))
    h.stepper = ShardStepper(store, h.cache, h.locks, lambda: h.settings)
    for t, p, v, w in ticks[3:]:
        h.tick(BTC, t, p, v, w)
        h.stepper.step(BTC, 0, t)
    rows = [r for r in _rows(engine) if r.symbol == BTC and r.end_time is None]
    cached = h.cached_states(BTC, 0)
    assert rows and all(r.id in cached for r in rows)


@pytest.mark.parametrize("corrupt", ["not a json object", "another symbol", "a state missing a key"])
def test_corrupt_state_ends_with_invalid_state(store: SqlRunStore, engine: sa.Engine, corrupt: str) -> None:
    """The bad state ends alone; every other member of the shard joins and steps (the batch is validated
    at once and, on a failure, run by run)."""
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    btc = [r for r in _rows(engine) if r.symbol == BTC]
    target = btc[0]
    state = _state(target)
    if corrupt == "not a json object":
        text = '{"not": "a state"'
    elif corrupt == "another symbol":
        text = json.dumps({**state, "symbol": ETH})
    else:
        del state["aprs"]
        text = json.dumps(state)
    with sa.orm.Session(engine) as s, s.begin():
        s.execute(
            sa.update(Run)
            .where(Run.id == target.id)
            .values(run_state=json.dumps(text) if corrupt == "not a json object" else text)
        )
    h = Harness(store, engine)
    h.tick(BTC, T0 + 5, 100_000.0, 300.0, 0.2)
    report = h.stepper.step(BTC, 0, T0 + 5)
    assert report.ends == {"invalid_state": 1}
    assert report.stepped == len(btc) - 1
    row = next(r for r in _rows(engine) if r.id == target.id)
    assert row.end_reason == "invalid_state" and row.end_balance is None
    assert set(h.cached_states(BTC, 0)) == {r.id for r in btc[1:]}


def test_purge_deletes_ended_unheighted_runs(store: SqlRunStore, engine: sa.Engine) -> None:
    _supervisor(store, FakeClock(), desired=3, shard_size=50).run()
    ids = [r.id for r in _rows(engine)]
    store.write_shard_tick([], [RunEnd(ids[0], T0 + 5, "max_duration", 7000.0, 0.0, "{}", 0, 1)])
    deleted = purge_runs(store, MemoryLockManager(), FakeClock(T0 + 10), 3600)
    assert deleted == 1
    assert [r.id for r in _rows(engine)] == ids[1:]


def test_flush_writes_every_cached_state_for_a_lossless_restart(
    store: SqlRunStore, engine: sa.Engine
) -> None:
    _supervisor(store, FakeClock(), desired=6, shard_size=50).run()
    h = Harness(store, engine, write_every=1000)  # periodic writes never due during the test
    for t, p, v, w in _ticks(7):
        h.tick(BTC, t, p, v, w)
        h.stepper.step(BTC, 0, t)
    cached = h.cached_states(BTC, 0)
    assert cached
    assert h.stepper.flush(BTC, 0) == len(cached)
    for row in _rows(engine):
        if row.id in cached:
            assert _state(row) == cached[row.id]
            assert row.iteration_count == cached[row.id]["iteration_count"]


def test_volatility_cache_equals_direct_computation_at_every_tick() -> None:
    from ttt.services.providence.inputs import VolatilityCache, volatility_at

    class Counting(ListBars):
        calls = 0

        def bars(self, symbol, timeframe, since_open_ms, until_open_ms):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().bars(symbol, timeframe, since_open_ms, until_open_ms)

    rng = np.random.default_rng(5)
    start = int(T0 // 60) * 60
    store = Counting(
        [
            ((start - 60 * k) * 1000, 100.0, 100.0 + rng.uniform(0, 2), 99.0 - rng.uniform(0, 2), 100.0)
            for k in range(1500, 0, -1)
        ]
    )
    cache = VolatilityCache()
    vis = BarVisibility(completed_only=True)
    ticks = 0
    for t in np.arange(start + 1.0, start + 1800.0, 5.0):
        t = float(t)
        if t % 60 < 5:  # the minute that just closed becomes visible
            minute = int(t // 60) * 60 - 60
            store.rows.append(
                (minute * 1000, 100.0, 100.5 + rng.uniform(0, 1), 99.5 - rng.uniform(0, 1), 100.0)
            )
        direct = volatility_at(ListBars(store.rows), BTC, t, vis)
        assert cache.get(store, BTC, t, vis) == direct
        ticks += 1
    assert Counting.calls < ticks / 5  # recomputed about once a minute, not at every tick
