"""Where the CPU of a steady-state shard tick goes: the stepping process, MariaDB and Redis, per run-tick.

One process steps S shards of aged runs (the real 1m bars of ../shared/data; every run stepped through 480
ticks of them first, as `bench/distributed.py --aged-ticks 480` does) against the local MariaDB and Redis,
tick after tick with no wait, using the same `ShardStepper` as `step_shard`. It reads the CPU time of itself,
of `mariadbd` and of `redis-server` around the measured ticks; the distributed runtime's own costs (Celery,
beat, a second process) are what `bench/distributed.py` shows on top of these figures. The servers' CPU is the
whole server's: run it while nothing else uses them.

    .venv/bin/python bench/shard_step.py --symbol ETH/USDC:USDC --shards 5 --shard-size 2000 --ticks 120
    .venv/bin/python bench/shard_step.py --shards 1 --shard-size 10000 --buffer-pool-gb 2
    .venv/bin/python bench/shard_step.py --shards 20 --shard-size 10000 --ticks 60 --buffer-pool-gb 2
    .venv/bin/python bench/shard_step.py --shards 20 --shard-size 10000 --ticks 60 --buffer-pool-gb 2 \
        --plain-state

The last two compare the state column as migration 0004 stores it (compressed) with the plain column before
it, on a table larger than the pool when plain.

Needs the local MariaDB (T3_TEST_MARIADB_URL, an admin URL) and Redis (T3_TEST_REDIS_URL, keys on db 15).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distributed import (  # noqa: E402
    CADENCE_S,
    REDIS_URL,
    aged_population,
    buffer_pool,
    create_bench_database,
    drop_bench_data,
    insert_population,
)
from real_path import Bars, load_bars  # noqa: E402

VOLATILITY_LEAD_S = 1440 * 60 + 60
WARM_TICKS = 12  # the cold load, then a base snapshot of every shard
PLAIN_RUN_STATE = (
    "ALTER TABLE runs MODIFY run_state LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
    "NOT NULL CHECK (json_valid(run_state))"
)


class DataTime:
    """Tick inputs on the data's own timeline: this bench needs no wall clock."""

    def __init__(self, bars: Bars) -> None:
        self.bars = bars

    def inputs(self, symbol: str, now: float) -> tuple[float, float, float]:
        return self.bars.tick_inputs(now)


def server_cpu(name: str) -> float | None:
    """CPU seconds of every local process called `name`; None when there is none (a server elsewhere)."""
    pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    if not pids:
        return None
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_sample() -> dict[str, float | None]:
    return {
        "stepping process": time.process_time(),
        "MariaDB": server_cpu("mariadbd") or server_cpu("mysqld"),
        "Redis": server_cpu("redis-server"),
    }


def run(symbol: str, shards: int, shard_size: int, ticks: int, aged_ticks: int, plain_state: bool) -> None:
    from ttt.adapters.cache.locks import RedisLockManager
    from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.migrate import upgrade
    from ttt.adapters.db.repositories.runs import SqlRunStore
    from ttt.config.models import Providence
    from ttt.services.providence.inputs import TickRecord, tick_key
    from ttt.services.providence.shard import ShardSettings, ShardStepper

    bars = load_bars(symbol)
    if bars is None:
        raise SystemExit(f"no 1m data for {symbol} under ../shared/data")
    market = DataTime(bars)
    end = float(bars.t_open[0]) + VOLATILITY_LEAD_S + aged_ticks * CADENCE_S
    n = shards * shard_size
    prefix = f"ttt-bench:{uuid.uuid4().hex[:8]}:"
    admin, name, db_url = create_bench_database()
    client = make_redis_client(REDIS_URL)
    engine = make_engine(db_url, pool_size=4)
    try:
        upgrade(engine)
        if plain_state:
            with engine.begin() as conn:
                conn.exec_driver_sql(PLAIN_RUN_STATE)
        rows = aged_population(n, aged_ticks, market, end=end, symbols=[symbol])
        counts = insert_population(db_url, rows, shard_size)
        alive = counts[symbol]
        print(
            f"{symbol}: {alive:,} aged runs in {-(-alive // shard_size)} shards of {shard_size:,}", flush=True
        )
        cache = RedisCache(client, prefix)
        locks = RedisLockManager(client, prefix)
        prov = Providence().model_dump(mode="json")
        stepper = ShardStepper(
            SqlRunStore(engine),
            cache,
            locks,
            lambda: ShardSettings(symbols=[symbol], providence=prov),
        )

        def tick(k: int) -> tuple[int, int, int]:
            now = end + k * CADENCE_S
            price, volatility, weight = market.inputs(symbol, now)
            cache.set(tick_key(symbol), TickRecord(symbol, now, price, volatility, weight).to_json(), 3600)
            stepped = trades = writes = 0
            for shard in range(-(-alive // shard_size)):
                report = stepper.step(symbol, shard, now)
                stepped, trades, writes = (
                    stepped + report.stepped,
                    trades + report.trades,
                    writes + report.db_writes,
                )
            return stepped, trades, writes

        t0 = time.monotonic()
        for k in range(1, WARM_TICKS + 1):
            tick(k)
        print(
            f"warm-up ({WARM_TICKS} ticks, the first a cold load): {time.monotonic() - t0:.1f} s", flush=True
        )
        before, t0 = cpu_sample(), time.monotonic()
        totals = [0, 0, 0]
        for k in range(WARM_TICKS + 1, WARM_TICKS + 1 + ticks):
            totals = [a + b for a, b in zip(totals, tick(k), strict=True)]
        after, wall = cpu_sample(), time.monotonic() - t0
        run_ticks, trades, writes = totals
        print(
            f"{ticks} ticks: {run_ticks:,} run-ticks in {wall:.1f} s "
            f"({run_ticks / wall:,.0f}/s, one process), "
            f"trades {trades / run_ticks:.2%}, database writes {writes / run_ticks:.2%} of run-ticks"
        )
        total = 0.0
        for part, start in before.items():
            stop = after[part]
            if start is None or stop is None:
                print(f"  {part:17s} (not a local process: not measured)")
                continue
            cpu = stop - start
            total += cpu
            per_row = (
                f", {cpu * 1e6 / writes:,.0f} µs per written row" if part == "MariaDB" and writes else ""
            )
            print(f"  {part:17s} {cpu * 1e6 / run_ticks:6.2f} µs CPU per run-tick{per_row}")
        print(
            f"  {'total':17s} {total * 1e6 / run_ticks:6.2f} µs CPU per run-tick: at that cost 2 cores carry "
            f"≈{2 * run_ticks / total:,.0f} run-ticks/s before any scheduling overhead"
        )
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE TABLE runs")
            size = conn.exec_driver_sql(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'runs'"
            ).scalar_one()
        layout = "plain (before migration 0004)" if plain_state else "compressed"
        print(f"  runs table, run_state {layout}: {size / 2**20:,.0f} MB, {size / alive:,.0f} B per run")
    finally:
        engine.dispose()
        drop_bench_data(client, prefix, admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="ETH/USDC:USDC")
    parser.add_argument("--shards", type=int, default=5)
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=120)
    parser.add_argument("--aged-ticks", type=int, default=480)
    parser.add_argument(
        "--buffer-pool-gb", type=float, default=0, help="MariaDB's innodb_buffer_pool_size for the run"
    )
    parser.add_argument(
        "--plain-state",
        action="store_true",
        help="store run_state uncompressed, as before migration 0004 (the baseline of the comparison)",
    )
    args = parser.parse_args()
    with buffer_pool(args.buffer_pool_gb):
        run(args.symbol, args.shards, args.shard_size, args.ticks, args.aged_ticks, args.plain_state)


if __name__ == "__main__":
    main()
