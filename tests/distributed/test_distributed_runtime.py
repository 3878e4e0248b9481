"""The distributed runtime with real processes (services.md §1.3, §2.4, §3; providence.md §18).

Two `3t worker` processes (high and low queue), one `3t beat`, the real Redis (cache on the test db under a
private prefix, broker on its own db index) and a real MariaDB / PostgreSQL. A synthetic feed in the test
keeps prices and bars fresh, so every tick has inputs and every dispatched tick steps every run once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed import dist_harness as h

RUNS = 40
SHARD_SIZE = 5  # 4 shards per symbol: several low-queue tasks per tick, spread over the tick
CLEAN_TICKS = 4


@pytest.fixture
def broker() -> Iterator[str]:
    yield from h.broker_session()


def _expected(ticks: list[float], after: float, upto: float) -> int:
    return sum(1 for t in ticks if after < t <= upto)


def _check_exact(
    before: dict[int, h.RunRow], after: dict[int, h.RunRow], ticks: list[float], t0: float, t1: float
) -> int:
    """Every run active over (t0, t1] advanced once per dispatched tick in it; returns the runs checked."""
    n = _expected(ticks, t0, t1)
    assert n >= 2, f"too few ticks between snapshots: {n}"
    checked = 0
    for rid, row in after.items():
        if row.ended or rid not in before or before[rid].ended:
            continue
        assert row.iteration_count - before[rid].iteration_count == n, (
            f"run {rid} (shard {row.symbol}:{row.shard}) advanced "
            f"{row.iteration_count - before[rid].iteration_count} times over {n} ticks"
        )
        checked += 1
    assert checked > 0
    return checked


def _check_never_twice(rows: dict[int, h.RunRow], ticks: list[float]) -> None:
    for rid, row in rows.items():
        stamps = row.state["weights_timestamp"]
        assert stamps == sorted(set(stamps)), f"run {rid} was stepped twice at one tick time: {stamps}"
        if not row.ended:
            assert row.iteration_count <= _expected(ticks, row.start_time, float("inf")), (
                f"run {rid} stepped {row.iteration_count} times, more than the ticks since it started"
            )


def _scenario(tmp_path: Path, db_url: str, redis_url: str, redis_prefix: str, broker: str) -> None:
    from ttt.adapters.db.engine import make_engine

    cfg, sec = h.write_config(
        tmp_path,
        db_url=db_url,
        redis_url=redis_url,
        prefix=redis_prefix,
        broker_url=broker,
        runs=RUNS,
        shard_size=SHARD_SIZE,
        visibility_timeout_s=5,
    )
    h.prepare_database(db_url, cfg, sec)
    market = h.Market(db_url, redis_url, redis_prefix)
    market.warm_up()
    market.start()
    engine = make_engine(db_url, pool_size=2)
    high = h.start("worker-high", tmp_path, cfg, sec, "worker", "-Q", "high_priority", "--concurrency", "2")
    low = h.start("worker-low", tmp_path, cfg, sec, "worker", "-Q", "low_priority", "--concurrency", "2")
    beat = h.start("beat", tmp_path, cfg, sec, "beat")
    procs = [high, low, beat]
    low2: h.Proc | None = None
    try:
        h.wait_for(lambda: len(h.dispatch_ticks(high)) >= 2, 60, "the first dispatched ticks", procs)
        assert len(h.runs(engine)) == RUNS

        # Clean phase: exactly one step per run per tick.
        t1, s1 = h.settled_snapshot(engine, redis_url, redis_prefix)
        h.wait_for(
            lambda: len([t for t in h.dispatch_ticks(high) if t > t1]) >= CLEAN_TICKS,
            60,
            "clean ticks",
            procs,
        )
        t2, s2 = h.settled_snapshot(engine, redis_url, redis_prefix)
        _check_exact(s1, s2, h.dispatch_ticks(high), t1, t2)

        # Crash: kill -9 the low worker while the tick's later shards are reserved (countdown) or running.
        seen = len(h.dispatch_ticks(high))
        h.wait_for(lambda: len(h.dispatch_ticks(high)) > seen, 30, "a fresh dispatch", procs, poll=0.05)
        time.sleep(1.2)
        received_before = set(h.RECEIVED_RE.findall(low.text()))
        done_before = {m[5] for m in h.STEP_RE.findall(low.text())}
        low.kill9()
        procs.remove(low)
        unfinished = received_before - done_before
        assert unfinished, "the kill found no reserved step_shard task; nothing to redeliver"
        low2 = h.start(
            "worker-low-2", tmp_path, cfg, sec, "worker", "-Q", "low_priority", "--concurrency", "2"
        )
        procs.append(low2)

        def redelivered() -> set[str]:
            return {m[5] for m in h.STEP_RE.findall(low2.text()) if m[5] in unfinished}

        again = h.wait_for(redelivered, 90, "redelivery of the killed worker's shard tasks", procs)
        statuses = {m[5]: m[3] for m in h.STEP_RE.findall(low2.text())}
        assert all(statuses[task] in ("stepped", "already_processed", "locked") for task in again)

        # Recovered: exact again, and nothing was ever stepped twice.
        t3, s3 = h.settled_snapshot(engine, redis_url, redis_prefix)
        h.wait_for(
            lambda: len([t for t in h.dispatch_ticks(high) if t > t3]) >= 3, 60, "recovered ticks", procs
        )
        beat.stop()
        t4, s4 = h.settled_snapshot(engine, redis_url, redis_prefix)
        ticks = h.dispatch_ticks(high)
        _check_exact(s3, s4, ticks, t3, t4)
        for rid, row in s3.items():
            if not row.ended and rid in s2 and not s2[rid].ended:
                assert row.iteration_count - s2[rid].iteration_count <= _expected(ticks, t2, t3)
        _check_never_twice(s4, ticks)
    finally:
        for p in [beat, high, low, *([low2] if low2 else [])]:
            p.stop(signal.SIGTERM)
        market.stop()
        engine.dispose()


def test_distributed_mariadb(
    tmp_path: Path, mariadb_url: str, redis_url: str, redis_prefix: str, broker: str
) -> None:
    _scenario(tmp_path, mariadb_url, redis_url, redis_prefix, broker)


def test_distributed_postgresql(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str, broker: str
) -> None:
    _scenario(tmp_path, pg_url, redis_url, redis_prefix, broker)
