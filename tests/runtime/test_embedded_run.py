"""`3t run` as a real subprocess on the synthetic market (SV-08, the parts wired so far): start, tick, serve
/metrics, stop cleanly on SIGINT, and resume every unended run from its saved state on restart."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support import free_port


def _start(workdir: Path, port: int, *global_options: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ttt.cli import run; run()",
            "--config",
            "config.yml",
            *global_options,
            "run",
            "--market",
            "synthetic",
            "--speed",
            "60",
            "--no-status",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_metrics(port: int, proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"3t run exited early ({proc.returncode}):\n{proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            if response.status_code == 200:
                return response.text
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("/metrics never answered")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def _check_final_summary(out: str, db: Path) -> None:
    """`--json`: the summary printed on exit carries the status panels, equal to what the database holds."""
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    summary = json.loads("\n".join(lines[start:]))
    with sqlite3.connect(db) as conn:
        newest_cycle = conn.execute(
            "select cycle_id from reconciliation_log order by created_at desc, id desc limit 1"
        ).fetchone()[0]
        last_cycle = conn.execute(
            "select cycle_id from audit_log where kind = 'cycle.end' order by ts desc, id desc limit 1"
        ).fetchone()[0]
        orders = dict(conn.execute("select status, count(*) from order_execution_log group by status"))
        active_sql = "select count(*) from runs where end_time is null and not exit_run"
        active = conn.execute(active_sql).fetchone()[0]
        decided = conn.execute(
            "select symbol, desired_clamped, actual, quorum_status, outcome from reconciliation_log "
            "where cycle_id = ?",
            (newest_cycle,),
        ).fetchall()
        value = conn.execute(
            "select account_value from balance_history where usable order by id desc limit 1"
        ).fetchone()[0]
    assert summary["positions"]["available"] and summary["positions"]["cycle_id"] == newest_cycle
    assert summary["last_cycle"]["cycle_id"] == last_cycle
    assert summary["orders"]["counts"] == orders and summary["orders"]["total"] == sum(orders.values())
    assert summary["runs"]["by_state"]["active"] == active
    assert Decimal(summary["account"]["value"]) == Decimal(value)
    assert summary["take_profit"]["available"] and summary["fills"]["available"]
    symbols = {r["symbol"]: r for r in summary["positions"]["symbols"]}
    for r in symbols.values():  # a known A is a number; an unknown one is null with its reason, never 0
        assert (r["actual"]["status"] == "ok") == (r["actual"]["value"] is not None), r
    assert decided
    for symbol, desired, actual, quorum, outcome in decided:
        shown = symbols[symbol]
        assert shown["decision"]["outcome"] == outcome
        if shown["desired"]["status"] != "unknown":
            assert shown["desired"]["clamped"] == desired
        assert shown["actual"]["value"] == (actual if quorum == "ok" else None)


def _runs(db: Path) -> dict[int, tuple[int, str | None, str]]:
    with sqlite3.connect(db) as conn:
        return {
            rid: (it, reason, state)
            for rid, it, reason, state in conn.execute(
                "select id, iteration_count, end_reason, run_state from runs"
            )
        }


@pytest.mark.slow
def test_sv08_run_ticks_serves_metrics_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "ttt.sqlite"
    (tmp_path / "config.yml").write_text(
        f'database:\n  url: "sqlite:///{db}"\ndashboard:\n  port: {port}\n'
        "providence:\n  desired_run_count: 60\n  db_write_every_ticks: 5\n"
        # a short reconcile period and sizing that clears the exchange minimum, so orders happen in seconds
        "scheduler:\n  periods:\n    reconcile: 60\n"
        "portfolio:\n  live_pnl_threshold: 0.0\n  risk_pos_percentage: 0.01\n"
    )
    proc = _start(tmp_path, port, "--json")
    try:
        _wait_metrics(port, proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            overview = httpx.get(f"http://127.0.0.1:{port}/api/v1/overview", timeout=2).json()
            if overview["shard_steps"] >= 30 and overview["cycles"] >= 8:
                break
            time.sleep(0.5)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        api = {
            path: httpx.get(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5).json()
            for path in ("runs?state=active&limit=500", "population", "positions", "fills", "orders")
        }
    finally:
        out = _stop(proc)
    # the full JSON API of §9 on the embedded dashboard, read from the run's own database
    assert len(api["runs?state=active&limit=500"]["runs"]) == 60
    assert sum(s["active"] for s in api["population"]["symbols"]) == 60
    assert api["positions"]["cycle_id"] is not None and api["positions"]["symbols"]
    assert api["fills"]["fills"] and api["orders"]["orders"]
    assert overview["market"] == {"source": "synthetic", "reason": "forced", "exchange": "paper"}
    assert overview["shard_steps"] >= 30, overview
    assert "ttt_providence_shard_step_seconds_count" in metrics
    assert 'ttt_reconciliation_cycles_total{outcome="completed",trigger="sched"}' in metrics
    assert 'ttt_task_runs_total{result="ok",task="ttt.providence.dispatch"}' in metrics
    assert "MARKET DATA: SYNTHETIC" in out and "Traceback" not in out
    _check_final_summary(out, db)

    first = _runs(db)
    assert len([r for r in first.values() if r[1] is None]) == 60  # desired count of active runs
    assert max(it for it, _, _ in first.values()) >= 5  # ticks processed and persisted on the cadence
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from locks").fetchone()[0] == 0  # every lock released
        assert conn.execute("select count(*) from audit_log where kind = 'config.loaded'").fetchone()[0] == 1
        cycles = conn.execute(
            "select count(*) from reconciliation_cycles where outcome = 'completed'"
        ).fetchone()
        assert cycles[0] >= 8
        assert conn.execute("select count(*) from reconciliation_log").fetchone()[0] >= 16
        orders = conn.execute("select count(*) from order_execution_log").fetchone()[0]
        fills = conn.execute("select count(*) from fills").fetchone()[0]
        audited = conn.execute(
            "select count(distinct client_order_id) from audit_log where kind = 'order.request'"
        ).fetchone()[0]
    assert orders >= 1 and fills >= 1, (orders, fills)
    assert audited == orders  # every order record has its write-ahead audit row
    with sqlite3.connect(db) as conn:
        paper_fills_before = conn.execute("select count(*) from paper_trades").fetchone()[0]
        cash_before = conn.execute("select cash from paper_accounts").fetchall()
    assert paper_fills_before >= fills and len(cash_before) == 1  # the paper account is in the database

    proc = _start(tmp_path, port)
    try:
        _wait_metrics(port, proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/overview", timeout=2).json()["shard_steps"] >= 20:
                break
            time.sleep(0.5)
    finally:
        _stop(proc)
    second = _runs(db)
    for rid, (it, reason, state) in first.items():
        if reason is None and rid in second:
            it2, _, state2 = second[rid]
            # every unended run continues from its saved state: never reset, never lost
            assert it2 >= it
            assert json.loads(state2)["start_time"] == json.loads(state)["start_time"]
    assert sum(1 for r in second.values() if r[2] is not None) >= 60
    with sqlite3.connect(db) as conn:
        # the restart continued the same paper account: earlier fills are still there, none lost
        assert conn.execute("select count(*) from paper_trades").fetchone()[0] >= paper_fills_before
