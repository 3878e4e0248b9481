"""End-to-end Providence throughput of the distributed runtime: Celery + Redis + MariaDB, real processes.

For each size N: a fresh MariaDB database, `3t worker -Q high_priority -c 2`, `3t worker -Q low_priority`
with 2 pool processes, `3t beat`, and a synthetic feed. After the population is created it measures a
number of ticks and prints run-ticks per second (achieved, and the capacity the busy time implies) and
the lateness of shard steps (completion − time of the tick stepped) against the 5 s cadence.

    .venv/bin/python bench/distributed.py --sizes 10000,100000,1000000 --ticks 6 --warmup 6
    .venv/bin/python bench/distributed.py --sizes 1000000 --market replay --aged-ticks 480 --buffer-pool-gb 8

The first is the start-up burst (every run new, a synthetic market); the second the steady state (the real
1m bars of ../shared/data replayed on the wall clock, every run aged through 480 ticks of them first).

Needs the local MariaDB (T3_TEST_MARIADB_URL) and Redis (cache on db 15, broker on T3_TEST_BROKER_URL, db 14).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.distributed import dist_harness as h  # noqa: E402

from real_path import DATA, Bars, load_bars  # noqa: E402

MARIADB_ADMIN = os.environ.get("T3_TEST_MARIADB_URL", "mysql+pymysql://ttt:ttt@127.0.0.1:3306/")
REDIS_URL = os.environ.get("T3_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STEP = re.compile(
    r"step_shard \S+ t=([0-9.]+) status=stepped tick=([0-9.]+) stepped=(\d+) seconds=([0-9.]+) lag=([0-9.]+)"
    r".*? trades=(\d+) db_writes=(\d+)"
)
LOADED = re.compile(r"step_shard (\S+) t=\S+ status=stepped")
CADENCE_S = 5.0
BIRTH_TICKS = 120  # aged runs are born over this many ticks, spreading their 50-tick write phases
LIVE_MINUTES = 120
AGED_CHUNK = 20_000  # replayed data kept for the live part of a run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine_cpu() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine, wall seconds) from /proc/stat: the honest cost of a run-tick
    counts the database and the cache, which run on the same cores as the workers."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), time.monotonic()


def created(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar_one())
    finally:
        engine.dispose()


Row = tuple[str, int, dict[str, Any], dict[str, Any]]  # symbol, seed, params, state


def young_population(n: int) -> Iterator[Row]:
    """N runs created now, split over the symbols: every run young, so this is the start-up burst (young
    runs trade on many of their first ticks)."""
    from ttt.providence import reference

    now = time.time()
    for i in range(n):
        symbol = h.SYMBOLS[i % len(h.SYMBOLS)]
        params = reference.sample_params(i, symbol, 40.0)
        state = reference.new_state(params, start_time=now, start_balance=params["virtual_balance"])
        yield symbol, i, params, state


class TickInputs(Protocol):
    def inputs(self, symbol: str, now: float) -> tuple[float, float, float]:
        """(price, volatility, weight) of a tick at `now`."""
        ...


def aged_population(
    n: int, ticks: int, market: TickInputs, end: float | None = None, symbols: Sequence[str] = h.SYMBOLS
) -> Iterator[Row]:
    """N runs stepped through the replayed market for `ticks` 5 s ticks ending at `end` (now), born over the
    first BIRTH_TICKS of them: steady state, with full windows, held positions and write phases spread over
    the 50-tick cadence. Runs that end while ageing are left out (the supervisor tops them up)."""
    from ttt.providence import reference
    from ttt.providence.population import Population

    end = time.time() if end is None else end
    births = min(BIRTH_TICKS, ticks)
    for s_index, symbol in enumerate(symbols):
        ids = list(range(s_index, n, len(symbols)))
        params = {i: reference.sample_params(i, symbol, 40.0) for i in ids}
        pop = Population(symbol, {})
        t0 = time.monotonic()
        for k in range(ticks):
            now = end - (ticks - 1 - k) * CADENCE_S
            if k < births:
                born = ids[k * len(ids) // births : (k + 1) * len(ids) // births]
                pop.add_runs(
                    {
                        i: reference.new_state(
                            params[i], start_time=now - 1.0, start_balance=params[i]["virtual_balance"]
                        )
                        for i in born
                    }
                )
            price, volatility, weight = market.inputs(symbol, now)
            pop.step(now, price, volatility, weight)
        # Shards fill in yield order: mixed birth ticks give every shard runs of every write phase, as a
        # shard of a long-running deployment has (its runs were topped up at random times). Consecutive ids
        # share a birth tick, so in id order a shard would write almost all its runs at one tick in 50.
        alive = sorted(pop.id_set(), key=lambda i: (i * 2654435761) % 2**32)
        print(
            f"aged {symbol}: {len(alive):,} of {len(ids):,} runs after {ticks} ticks "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        for lo in range(0, len(alive), AGED_CHUNK):  # states of a million aged runs would not fit in memory
            for i, state in pop.to_states(alive[lo : lo + AGED_CHUNK]).items():
                yield symbol, i, params[i], state
        del pop


def insert_population(db_url: str, rows: Iterable[Row], shard_size: int) -> dict[str, int]:
    """Shards filled in order per symbol; the supervisor's margin eligibility would stop far short of large
    N, and this measures stepping, not the top-up. Returns the runs inserted per symbol."""
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.repositories.runs import SqlRunStore
    from ttt.ports import NewRun

    engine = make_engine(db_url)
    store = SqlRunStore(engine)
    counts: dict[str, int] = dict.fromkeys(h.SYMBOLS, 0)
    try:
        batch: list[NewRun] = []
        for symbol, seed, params, state in rows:
            index = counts[symbol]
            counts[symbol] += 1
            batch.append(
                NewRun(
                    symbol=symbol,
                    shard=index // shard_size,
                    seed=seed,
                    start_time=float(state["start_time"]),
                    start_balance=float(params["virtual_balance"]),
                    max_duration=int(params["max_duration"]),
                    host="bench",
                    ann_params=params,
                    run_state=state,
                    apex_file=None,
                    apex_hash=None,
                    apex_rank=None,
                )
            )
            if len(batch) == 5000:
                store.insert_runs(batch)
                batch = []
        if batch:
            store.insert_runs(batch)
    finally:
        engine.dispose()
    return counts


def create_bench_database() -> tuple[sa.Engine, str, str]:
    """(admin engine, name, URL) of a fresh, empty MariaDB database for one benchmark run."""
    name = f"ttt_bench{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = sa.engine.make_url(MARIADB_ADMIN).set(database=name).render_as_string(hide_password=False)
    return admin, name, url


def drop_bench_data(client: Any, prefix: str, admin: sa.Engine, database: str) -> None:
    """A run's cache keys and its database go; closes the client and the admin engine."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
    admin.dispose()


class ReplayMarket(h.Market):
    """Real 1m bars (`../shared/data/`) on the wall clock: data time = wall time − a whole number of
    minutes, chosen so that the bench's last minute is the data's last."""

    source = "replay"

    def __init__(
        self, db_url: str, redis_url: str, prefix: str, paths: dict[str, Bars], lead_s: float
    ) -> None:
        """`lead_s`: data needed before now (the volatility lookback and the ageing)."""
        super().__init__(db_url, redis_url, prefix)
        start = max(float(b.t_open[0]) for b in paths.values())
        last = min(float(b.t_open[-1]) for b in paths.values())
        need = lead_s + LIVE_MINUTES * 60
        if last - start < need:
            raise SystemExit(f"--market replay needs {need / 60:.0f} minutes of 1m bars for every symbol")
        self.offset = 60.0 * (math.floor(time.time() / 60) - math.floor((start + lead_s) / 60) - 1)
        self.paths = paths

    def ohlc(self, symbol: str, minute: int) -> tuple[float, float, float, float]:
        b = self.paths[symbol]
        j = b.index(minute * 60 - self.offset)
        return float(b.open[j]), float(b.high[j]), float(b.low[j]), float(b.close[j])

    def price(self, symbol: str, now: float) -> float:
        return self.paths[symbol].price_at(now - self.offset)

    def inputs(self, symbol: str, now: float) -> tuple[float, float, float]:
        return self.paths[symbol].tick_inputs(now - self.offset)


def bench_size(
    n: int, ticks: int, warmup: int, shard_size: int, workdir: Path, replay: bool, aged_ticks: int
) -> None:
    admin, name, db_url = create_bench_database()
    prefix = f"ttt-bench:{uuid.uuid4().hex[:8]}:"
    session = h.broker_session()
    broker = next(session)
    procs: list[h.Proc] = []
    market = None
    try:
        cfg, sec = h.write_config(
            workdir,
            db_url=db_url,
            redis_url=REDIS_URL,
            prefix=prefix,
            broker_url=broker,
            runs=n,
            shard_size=shard_size,
        )
        text = cfg.read_text().replace("db_write_every_ticks: 1", "db_write_every_ticks: 50")
        cfg.write_text(text)
        h.prepare_database(db_url, cfg, sec)
        t0 = time.monotonic()
        if replay:
            paths = {symbol: load_bars(symbol) for symbol in h.SYMBOLS}
            missing = [symbol for symbol, bars in paths.items() if bars is None]
            if missing:
                raise SystemExit(f"--market replay: no 1m data for {missing} under {DATA}")
            lead_s = 1440 * 60 + aged_ticks * CADENCE_S + 120
            market = ReplayMarket(db_url, REDIS_URL, prefix, {k: v for k, v in paths.items() if v}, lead_s)
        else:
            market = h.Market(db_url, REDIS_URL, prefix)
        if aged_ticks:
            assert isinstance(market, ReplayMarket)
            rows: Iterable[Row] = aged_population(n, aged_ticks, market)
        else:
            rows = young_population(n)
        counts = insert_population(db_url, rows, shard_size)
        print(f"N={n}: inserted {sum(counts.values()):,} runs in {time.monotonic() - t0:.1f} s", flush=True)
        market.warm_up()
        market.start()
        high = h.start(
            "worker-high", workdir, cfg, sec, "worker", "-Q", "high_priority", "--concurrency", "2"
        )
        low = h.start("worker-low", workdir, cfg, sec, "worker", "-Q", "low_priority", "--concurrency", "2")
        beat = h.start("beat", workdir, cfg, sec, "beat")
        procs = [high, low, beat]
        created_at = time.monotonic()
        h.wait_for(lambda: "created" in high.text() and h.dispatch_ticks(high), 3600, "population", procs, 1)
        print(f"N={n}: population ready after {time.monotonic() - created_at:.1f} s", flush=True)
        shards = sum(math.ceil(c / shard_size) for c in counts.values())
        h.wait_for(
            lambda: len(set(LOADED.findall(low.text()))) >= shards, 7200, "every shard loaded", procs, 5
        )
        print(f"N={n}: all {shards} shards loaded after {time.monotonic() - created_at:.0f} s", flush=True)
        warm_until = len(h.dispatch_ticks(high)) + warmup
        h.wait_for(lambda: len(h.dispatch_ticks(high)) >= warm_until, 60 * warmup + 1800, "warm-up", procs, 1)
        print(f"N={n}: warm-up ({warmup} more ticks) done", flush=True)
        start_ticks = len(h.dispatch_ticks(high))
        cpu_start = machine_cpu()
        h.wait_for(
            lambda: len(h.dispatch_ticks(high)) >= start_ticks + ticks + 1,
            60 * ticks + 600,
            "measured ticks",
            procs,
            1,
        )
        cpu_end = machine_cpu()
        beat.stop()
        time.sleep(CADENCE_S)
        measured = h.dispatch_ticks(high)[start_ticks : start_ticks + ticks]
        lo, hi_t = measured[0], measured[-1]
        # (completion time, stepped runs, step seconds, completion − the tick actually stepped): a late task
        # steps the newest tick record, so throughput and lateness are counted by completion, not by task
        steps = [
            (float(t) + float(lag), int(k), float(s), float(t) + float(lag) - float(tick), int(tr), int(wr))
            for t, tick, k, s, lag, tr, wr in STEP.findall(low.text())
        ]
        span = (hi_t - lo) + CADENCE_S
        window = [x for x in steps if lo <= x[0] < lo + span]
        run_ticks = sum(x[1] for x in window)
        busy = sum(x[2] for x in window)
        lags = [x[3] for x in window]
        trades, writes = sum(x[4] for x in window), sum(x[5] for x in window)
        statuses = re.findall(r"step_shard \S+ t=([0-9.]+) status=(\w+)", low.text())
        counts: dict[str, int] = {}
        for t_raw, status in statuses:
            if lo <= float(t_raw) <= hi_t:
                counts[status] = counts.get(status, 0) + 1
        print(f"N={n}: created={created(db_url)} shard task outcomes {counts}", flush=True)
        print(
            f"N={n}: ticks={len(measured)} shard_steps={len(window)} run_ticks={run_ticks} "
            f"achieved={run_ticks / span:,.0f} run-ticks/s "
            f"({run_ticks / max(1, n * len(measured)):.0%} of N runs every {CADENCE_S:.0f} s) "
            f"capacity≈{run_ticks / (busy / 2) if busy else float('nan'):,.0f} run-ticks/s (2 processes) "
            f"lateness p50={percentile(lags, 0.5):.3f}s p99={percentile(lags, 0.99):.3f}s "
            f"late(>{CADENCE_S:.0f}s)={sum(1 for x in lags if x > CADENCE_S)} "
            f"mean_step={statistics.fmean([x[2] for x in window]) if window else float('nan'):.3f}s "
            f"trades={trades / max(1, run_ticks):.1%} "
            f"db_writes={writes / max(1, run_ticks):.1%} of run-ticks",
            flush=True,
        )
        busy_cores = (cpu_end[0] - cpu_start[0]) / max(1e-9, cpu_end[1] - cpu_start[1])
        rate = run_ticks / span
        cores = os.cpu_count() or 1
        print(
            f"N={n}: machine busy {busy_cores:.2f} of {cores} cores while measuring = "
            f"{busy_cores * 1e6 / max(1.0, rate):.1f} µs of CPU per run-tick (all processes: workers, "
            f"MariaDB, Redis, beat, feed); at that cost the whole machine would carry "
            f"≈{rate * cores / busy_cores:,.0f} run-ticks/s",
            flush=True,
        )
    finally:
        for p in procs:
            p.stop()
        if market is not None:
            market.stop()
        with contextlib.suppress(StopIteration):
            next(session)
        drop_bench_data(redis.Redis.from_url(REDIS_URL), prefix, admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument(
        "--warmup", type=int, default=6, help="ticks left out of the figures (cold loads of every shard)"
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=2000,
        help="providence.shard_size (services.md §14 leaves it to tuning)",
    )
    parser.add_argument(
        "--buffer-pool-gb",
        type=float,
        default=0,
        help="set MariaDB's innodb_buffer_pool_size for the run (needs an admin URL; restored afterwards)",
    )
    parser.add_argument(
        "--market",
        choices=("synthetic", "replay"),
        default="synthetic",
        help="synthetic random prices, or the real 1m bars of ../shared/data replayed on the wall clock",
    )
    parser.add_argument(
        "--aged-ticks",
        type=int,
        default=0,
        help="step the population through this many replayed ticks before inserting it (steady state: full "
        f"windows, births spread over {BIRTH_TICKS} ticks); 0 = every run new (the start-up burst)",
    )
    args = parser.parse_args()
    if args.aged_ticks and args.market != "replay":
        parser.error("--aged-ticks needs --market replay")
    with buffer_pool(args.buffer_pool_gb):
        for n in [int(s) for s in args.sizes.split(",") if s]:
            with tempfile.TemporaryDirectory() as tmp:
                bench_size(
                    n,
                    args.ticks,
                    args.warmup,
                    args.shard_size,
                    Path(tmp),
                    args.market == "replay",
                    args.aged_ticks,
                )


@contextlib.contextmanager
def buffer_pool(gb: float) -> Iterator[None]:
    """The server default (128 MB) holds a small fraction of a million runs' rows; a deployment sizes it."""
    admin = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        before = int(conn.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar_one())
        if gb > 0:
            conn.execute(sa.text(f"SET GLOBAL innodb_buffer_pool_size = {int(gb * 2**30)}"))
            time.sleep(5)  # the resize runs in the background
        size = int(conn.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar_one())
    print(f"MariaDB innodb_buffer_pool_size = {size / 2**20:,.0f} MB", flush=True)
    try:
        yield
    finally:
        if gb > 0:
            with admin.connect() as conn:
                conn.execute(sa.text(f"SET GLOBAL innodb_buffer_pool_size = {before}"))
        admin.dispose()


if __name__ == "__main__":
    main()
