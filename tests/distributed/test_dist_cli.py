"""Start-up checks of `3t worker` / `3t beat` (services.md §1.4, §12 exit codes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.distributed import dist_harness as h


def _run(cfg: Path, sec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ttt.cli.dist_cmd", "--config", str(cfg), "--secrets", str(sec), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=h.REPO)


def test_worker_exits_3_when_the_schema_is_behind(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    cfg, sec = h.write_config(
        tmp_path,
        db_url=pg_url,
        redis_url=redis_url,
        prefix="x:",
        broker_url=h.BROKER_URL,
        runs=1,
        shard_size=1,
    )
    done = _run(cfg, sec, "worker", "-Q", "low_priority")
    assert done.returncode == 3, done.stderr
    assert "3t db upgrade" in done.stderr


def test_worker_and_beat_exit_2_on_bad_configuration(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    cfg, sec = h.write_config(
        tmp_path,
        db_url=pg_url,
        redis_url=redis_url,
        prefix="x:",
        broker_url=h.BROKER_URL,
        runs=1,
        shard_size=1,
    )
    data = yaml.safe_load(cfg.read_text())
    data["celery"]["pool"] = "gevent"
    cfg.write_text(yaml.safe_dump(data))
    for args in (("worker",), ("beat",)):
        done = _run(cfg, sec, *args)
        assert done.returncode == 2, done.stderr
        assert "celery.pool" in done.stderr
    done = _run(cfg, sec, "worker", "-Q", "urgent")
    assert done.returncode == 2 and "-Q 'urgent'" in done.stderr
