"""Metrics hooks of `3t worker` (services.md §1.3, §8.1) that belong to the process, not to a task.

Task accounting (`ttt_task_runs_total`, `ttt_task_duration_seconds`) is done by the tasks themselves
(`ttt.runtime.tasks_common.tracked`), so it is not repeated here: a series must have one writer. What the
worker process adds is the end of a prefork child: its live-gauge files are dropped from the multiprocess
directory so a dead child's gauges do not linger in the aggregate (counters and histograms keep their
totals, which is what Prometheus expects of a counter).
"""

from __future__ import annotations

import os
from typing import Any

_connected = False


def _child_exit(pid: int | None = None, **_: Any) -> None:
    from ttt.runtime.metrics_server import mark_process_dead

    mark_process_dead(pid if pid is not None else os.getpid())


def connect() -> None:
    """Connect the Celery signal handlers once per process (idempotent)."""
    global _connected
    if _connected:
        return
    from celery import signals

    signals.worker_process_shutdown.connect(_child_exit, weak=False)
    _connected = True
