"""The embedded runtime's housekeeping rows (services.md §2.1 in S1): the same services on the in-process
scheduler, each under its lock."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ops.conftest import NOW, FixedClock, insert, run
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db import models as m
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.migrate import upgrade
from ttt.config import load_settings
from ttt.runtime.ops_wiring import ops_tasks
from ttt.runtime.scheduler import Scheduler
from ttt.telemetry.metrics import DB_GAUGES_KEY


def test_embedded_ops_tasks_run_on_the_scheduler(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ttt.sqlite'}")
    upgrade(engine)
    insert(engine, m.Run, [run(1, "BTC/USDC:USDC", position_direction=1, live_pnl=1.5)])
    settings = load_settings(None, None, environ={}, process="run")
    cache = MemoryCache()
    clock = FixedClock(NOW)
    locks = DbLockManager(engine, clock)
    tasks = ops_tasks(settings, engine, cache, locks, clock)
    assert [t.name for t in tasks] == [
        "ttt.market_data.retention",
        "ttt.ops.collect_metrics",
        "ttt.ops.retention",
    ]
    assert [t.period_s for t in tasks] == [3600, 15, 86400]

    outcomes = Scheduler(tasks).run_due(NOW)
    assert [(o.name, o.result) for o in outcomes] == [(t.name, "ok") for t in tasks]
    doc = json.loads(cache.get(DB_GAUGES_KEY) or b"{}")
    assert {"labels": {"symbol": "BTC/USDC:USDC"}, "value": 1.0} in doc["gauges"][
        "ttt_providence_active_runs"
    ]
    assert "ttt_queue_depth" not in doc["gauges"]  # no broker in embedded mode

    token = locks.acquire("ops:metrics", 30)
    assert token is not None
    assert Scheduler(tasks).run_task(tasks[1]).result == "skipped_locked"
    engine.dispose()
