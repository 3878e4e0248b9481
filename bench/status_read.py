"""Benchmark: the database panels of the `3t run` live status (`read_model.portfolio_status`).

The live view and `/api/v1/overview` re-read these panels at most every 2 s; this prints how long one read
takes on a SQLite file holding N runs (a tenth of them flagged) and a history of cycles, orders and fills,
so a slow query shows up before it slows the driver thread. Not a test: no assertions.

    .venv/bin/python bench/status_read.py                 # N = 100,000 runs
    .venv/bin/python bench/status_read.py --runs 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import ReconciliationCycle, ReconciliationLog, Run, table_of
from ttt.services.portfolio import read_model

SYMBOLS = ["BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC"]


def _fill_runs(engine: sa.Engine, n: int, now: datetime) -> None:
    base: dict[str, Any] = {
        "shard": 0,
        "seed": None,
        "start_time": now,
        "end_time": None,
        "end_reason": None,
        "start_balance": 1.0,
        "end_balance": None,
        "max_duration": 3600,
        "position_direction": 0,
        "live_pnl": None,
        "height": None,
        "iteration_count": 0,
        "update_time": now,
        "host": "bench",
        "ann_params": {},
        "run_state": "{}",
        "apex_file": None,
        "apex_hash": None,
        "apex_rank": None,
    }
    table = table_of(Run)
    for start in range(0, n, 50_000):
        rows = [
            {**base, "symbol": SYMBOLS[i % len(SYMBOLS)], "shard": i // 2000, "exit_run": i % 10 == 0}
            for i in range(start, min(n, start + 50_000))
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)


def _fill_cycles(engine: sa.Engine, cycles: int, now: datetime) -> None:
    cyc = table_of(ReconciliationCycle)
    log = table_of(ReconciliationLog)
    with engine.begin() as conn:
        for k in range(cycles):
            at = now - timedelta(minutes=10 * (cycles - k))
            cycle_id = f"sched:{k:08d}"
            conn.execute(
                sa.insert(cyc),
                [
                    {
                        "cycle_id": cycle_id,
                        "trigger": "sched",
                        "scheduled_at": at,
                        "started_at": at,
                        "finished_at": at,
                        "outcome": "completed",
                        "lock_token": None,
                        "snapshot_id": None,
                        "symbols": len(SYMBOLS),
                        "orders_sent": 0,
                        "holds": 0,
                        "error": None,
                    }
                ],
            )
            conn.execute(
                sa.insert(log),
                [
                    {
                        "cycle_id": cycle_id,
                        "symbol": s,
                        "desired_status": "value",
                        "desired": 0.1,
                        "desired_clamped": 0.1,
                        "actual": 0.1,
                        "quorum_status": "ok",
                        "threshold": 10.0,
                        "gate": "n/a",
                        "outcome": "no_action",
                        "created_at": at,
                    }
                    for s in SYMBOLS
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=4_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        upgrade(engine)
        _fill_runs(engine, args.runs, now)
        _fill_cycles(engine, args.cycles, now)
        print(f"SQLite, {args.runs:,} runs, {args.cycles:,} cycles × {len(SYMBOLS)} symbols")
        for name, read in (
            ("run_counts", read_model.run_counts),
            ("latest_positions", lambda s: read_model.latest_positions(s, SYMBOLS)),
            ("order_summary", read_model.order_summary),
            ("account_summary", read_model.account_summary),
            ("fills_summary", lambda s: read_model.fills_summary(s, now.timestamp())),
        ):
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                with Session(engine) as session:
                    read(session)
                best = min(best, time.perf_counter() - t)
            print(f"  {name:<18} {best * 1000:8.2f} ms (best of {args.repeat})")
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            read_model.portfolio_status(engine, SYMBOLS, now.timestamp())
            best = min(best, time.perf_counter() - t)
        print(f"  {'portfolio_status':<18} {best * 1000:8.2f} ms (every panel, best of {args.repeat})")
        engine.dispose()


if __name__ == "__main__":
    main()
