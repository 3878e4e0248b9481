"""What every §2.1 task of the distributed runtime shares: its accounting (services.md §2.3, §8.1).

`tracked(ctx, name, work)` runs one task body and counts `ttt_task_runs_total{task,result}` and
`ttt_task_duration_seconds{task}`. A held lock (`LockBusy`) is `skipped_locked` and an overrun
(`ttt_scheduler_overruns_total`); any other exception is `error`, logged by Celery as a task failure and
re-raised, never retried automatically: the next slot runs the task again, so a broken dependency costs one
failed run per period and never a crash loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ttt.services.locking import LockBusy

log = logging.getLogger("ttt.worker")

SKIPPED = "skipped_locked"


def tracked(metrics: Any, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    result = "error"
    try:
        answer = work()
        result = "ok" if answer.get("status", "ok") == "ok" else str(answer["status"])
        if result not in ("ok", SKIPPED):
            result = "error"
        return answer
    except LockBusy:
        result = SKIPPED
        metrics.scheduler_overruns_total.labels(name).inc()
        log.info("%s skipped: its lock is held (overrun)", name)
        return {"status": SKIPPED}
    finally:
        metrics.task_runs_total.labels(name, result).inc()
        metrics.task_duration_seconds.labels(name).observe(time.perf_counter() - started)
