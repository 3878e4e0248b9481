"""Metrics listeners of `3t worker` (prefork, multiprocess aggregation) and `3t beat` as real processes
(services.md §1.3, §8.1): a task run in a pool child shows in the parent's `/metrics`; the listener binds
the configured port; a taken port is one line and exit 1; the worker writes `config.loaded`."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed import dist_harness as h
from tests.runtime import s2_support as s
from tests.support import free_port


@pytest.fixture
def broker() -> Iterator[str]:
    yield from h.broker_session()


def test_prefork_worker_and_beat_serve_metrics(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str, broker: str
) -> None:
    from ttt.config import load_settings
    from ttt.runtime.celery_app import configure_app, send

    task = "ttt.ops.collect_metrics"

    worker_port, beat_port = free_port(), free_port()
    wdir, bdir = tmp_path / "w", tmp_path / "b"
    wdir.mkdir()
    bdir.mkdir()
    cfg, sec = s.s2_config(
        wdir, db_url=pg_url, redis_url=redis_url, prefix=redis_prefix, metrics_port=worker_port
    )
    bcfg, bsec = s.s2_config(
        bdir, db_url=pg_url, redis_url=redis_url, prefix=redis_prefix, metrics_port=beat_port
    )
    h.prepare_database(pg_url, cfg, sec)
    worker = h.start(
        "worker", wdir, cfg, sec, "worker", "-Q", "high_priority", "-c", "2", "--pool", "prefork"
    )
    beat = None
    try:
        s.wait_until(lambda: s.listening(worker_port), 60, "worker metrics listener", [worker])
        s.wait_until(lambda: "ready" in worker.text(), 60, "worker ready", [worker])
        configure_app(load_settings(cfg, sec, environ={}, process="cli"))
        send(task)
        send(task)

        def counted() -> float | None:
            # the two may run at once in the two children: one then finds the ops:metrics lock held
            text = s.scrape(worker_port) or ""
            counts = [
                s.sample(text, "ttt_task_runs_total", result=r, task=task) for r in ("ok", "skipped_locked")
            ]
            total = sum(c or 0.0 for c in counts)
            return total if total >= 2 else None

        assert s.wait_until(counted, 60, "two task runs counted across the pool", [worker]) == 2.0
        text = s.scrape(worker_port) or ""
        assert (s.sample(text, "ttt_task_runs_total", result="ok", task=task) or 0) >= 1
        assert s.sample(text, "ttt_task_duration_seconds_count", task=task) == 2.0

        beat = h.start("beat", bdir, bcfg, bsec, "beat")
        beat_text = s.wait_until(lambda: s.scrape(beat_port), 60, "beat metrics listener", [beat])
        assert "ttt_scheduler_overruns" in beat_text
    finally:
        worker.stop(signal.SIGTERM, timeout=60)
        if beat is not None:
            beat.stop(signal.SIGTERM, timeout=30)
    assert worker.popen.returncode == 0, worker.text()[-3000:]
    leftovers = glob.glob(os.path.join(tempfile.gettempdir(), f"ttt-metrics-{worker.popen.pid}-*"))
    assert leftovers == [], "the multiprocess directory is removed at exit"
    rows = [r for r in s.audit_rows(pg_url, "config.loaded") if r["actor"].startswith("worker@")]
    assert len(rows) == 1 and rows[0]["payload"]["process"] == "worker"


def test_worker_metrics_port_in_use_is_one_line_and_exit_1(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    with s.taken_port() as port:
        cfg, sec = s.s2_config(
            tmp_path, db_url=pg_url, redis_url=redis_url, prefix=redis_prefix, metrics_port=port
        )
        h.prepare_database(pg_url, cfg, sec)
        cmd = [
            sys.executable,
            "-m",
            "ttt.cli.dist_cmd",
            "--config",
            str(cfg),
            "--secrets",
            str(sec),
            "worker",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=h.REPO)
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
