"""Benchmark: the hottest database write, a shard tick's periodic and trade writes (providence.md §9.2).

Fills a fresh MariaDB database with N runs holding realistic states (runs stepped for a while through the
reference engine), then writes W random rows per round with each statement shape, interleaved, and prints
per-row wall time, MariaDB server CPU (read from /proc, so only when the server runs on this machine) and
client CPU, with ratios against the baseline measured in the same run:

* `executemany` — one parameterised single-row UPDATE per run, what the ORM would do (the baseline);
* `case-hex` — one CASE UPDATE per chunk with every state as a hex literal (the previous shape);
* `update_progress` — what the engine uses now (`adapters/db/repositories/run_progress.py`).

    .venv/bin/python bench/run_writes.py --runs 100000 --writes 20000 --rounds 3

Needs the local MariaDB (T3_TEST_MARIADB_URL, default root without password). Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from distributed import Row, insert_population
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.repositories import run_progress
from ttt.adapters.db.types import as_utc
from ttt.ports import RunProgress
from ttt.providence import reference

ADMIN_URL = os.environ.get("T3_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")
Writer = Callable[[Connection, Sequence[RunProgress]], int]
SYMBOL = "BTC/USDC:USDC"


def sample_states(count: int, ticks: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for i in range(count):
        params = reference.sample_params(i, SYMBOL, 40.0)
        state = reference.new_state(params, start_time=now, start_balance=params["virtual_balance"])
        price = 100.0
        for k in range(ticks):
            price *= 1 + rng.gauss(0, 0.002)
            state, _ = reference.step(state, now + 5 * k, price, 0.01, rng.uniform(-1, 1))
        out.append(orjson.dumps(state).decode())
    return out


def server_cpu_s() -> float | None:
    try:
        pid = subprocess.run(
            ["pidof", "mariadbd"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (subprocess.CalledProcessError, IndexError, OSError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_executemany(conn: Connection, rows: Sequence[RunProgress]) -> int:
    stmt = sa.text(
        "UPDATE runs SET run_state = :s, position_direction = :p, iteration_count = :c, update_time = :u, "
        "live_pnl = :l WHERE id = :i AND end_time IS NULL"
    )
    params = [
        {
            "s": r.run_state,
            "p": r.position_direction,
            "c": r.iteration_count,
            "u": as_utc(r.update_time),
            "l": r.live_pnl,
            "i": r.run_id,
        }
        for r in rows
    ]
    return int(conn.execute(stmt, params).rowcount)


def write_case_hex(conn: Connection, rows: Sequence[RunProgress]) -> int:
    ids = [r.run_id for r in rows]

    def case(values: list[str]) -> str:
        return "CASE id " + " ".join(f"WHEN {i} THEN {v}" for i, v in zip(ids, values, strict=True)) + " END"

    states = case([f"X'{r.run_state.encode().hex()}'" for r in rows])
    times = case([f"TIMESTAMP'{as_utc(r.update_time).strftime('%Y-%m-%d %H:%M:%S.%f')}'" for r in rows])
    sql = (
        f"UPDATE runs SET run_state = CONVERT({states} USING utf8mb4), "
        f"position_direction = {case([str(r.position_direction) for r in rows])}, "
        f"iteration_count = {case([str(r.iteration_count) for r in rows])}, update_time = {times}, "
        f"live_pnl = {case([repr(r.live_pnl) for r in rows])} "
        f"WHERE id IN ({','.join(map(str, ids))}) AND end_time IS NULL"
    )
    return int(conn.exec_driver_sql(sql).rowcount)


def write_current(conn: Connection, rows: Sequence[RunProgress]) -> int:
    return run_progress.update_progress(conn, rows)


def population_rows(n: int, states: list[str]) -> Iterator[Row]:
    for i in range(n):
        yield SYMBOL, i, reference.sample_params(i, SYMBOL, 40.0), orjson.loads(states[i % len(states)])


def measure(engine: sa.Engine, writer: Writer, rows: list[RunProgress], chunk: int) -> dict[str, float]:
    s0, c0, w0 = server_cpu_s(), time.process_time(), time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, len(rows), chunk):
            writer(conn, rows[i : i + chunk])
    s1, c1, w1 = server_cpu_s(), time.process_time(), time.perf_counter()
    per = 1e6 / len(rows)
    return {
        "wall": (w1 - w0) * per,
        "client": (c1 - c0) * per,
        "server": (s1 - s0) * per if s0 is not None and s1 is not None else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--writes", type=int, default=20_000, help="rows written per shape per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ticks", type=int, default=60, help="reference steps behind each sample state")
    ap.add_argument("--chunk", type=int, default=run_progress.CHUNK)
    args = ap.parse_args()

    name = f"ttt_benchw{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine = make_engine(
        sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    )
    try:
        upgrade(engine)
        states = sample_states(32, args.ticks, seed=7)
        sizes = sorted(len(s) for s in states)
        print(f"state sizes: median {sizes[len(sizes) // 2]:,} B, max {sizes[-1]:,} B", flush=True)
        t0 = time.perf_counter()
        insert_population(
            engine.url.render_as_string(hide_password=False), population_rows(args.runs, states), 5000
        )
        print(f"{args.runs:,} runs inserted in {time.perf_counter() - t0:.1f} s", flush=True)
        shapes: dict[str, Writer] = {
            "executemany": write_executemany,
            "case-hex": write_case_hex,
            "update_progress": write_current,
        }
        results: dict[str, list[dict[str, float]]] = {k: [] for k in shapes}
        rng = random.Random(11)
        for rnd in range(args.rounds):
            for label, writer in shapes.items():
                ids = sorted(rng.sample(range(1, args.runs + 1), args.writes))
                stamp = datetime.now(UTC)
                rows = [RunProgress(i, states[i % len(states)], 1, rnd + 1, stamp, 1.5) for i in ids]
                results[label].append(measure(engine, writer, rows, args.chunk))
        base = {
            k: statistics.median(r[k] for r in results["executemany"]) for k in ("wall", "server", "client")
        }
        print(f"\nper row, median of {args.rounds} rounds of {args.writes:,} rows (chunk {args.chunk}):")
        print(f"{'shape':<16} {'wall µs':>9} {'server µs':>10} {'client µs':>10} {'wall vs baseline':>17}")
        for label in shapes:
            med: dict[str, Any] = {k: statistics.median(r[k] for r in results[label]) for k in base}
            print(
                f"{label:<16} {med['wall']:9.1f} {med['server']:10.1f} {med['client']:10.1f} "
                f"{base['wall'] / med['wall']:16.2f}×"
            )
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


if __name__ == "__main__":
    main()
