"""The in-process scheduler of embedded mode (services.md §2): slots aligned to ⌊t/period⌋·period, one
firing per late slot (misfire), never overlapping itself (each task takes its lock; a held lock skips)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ttt.services.locking import LockBusy
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class ScheduledTask:
    name: str
    period_s: float
    run: Callable[[], object]
    last_slot: float | None = field(default=None, compare=False)

    def slot(self, now: float) -> float:
        return math.floor(now / self.period_s) * self.period_s


@dataclass
class TaskOutcome:
    name: str
    result: str  # ok | error | skipped_locked
    seconds: float
    value: object = None


class Scheduler:
    """Runs due tasks in the order they were registered (Providence: supervisor, dispatch, purge first)."""

    def __init__(self, tasks: list[ScheduledTask], metrics: Metrics | None = None) -> None:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names: {names}")
        for task in tasks:
            if not (task.period_s > 0 and math.isfinite(task.period_s)):
                raise ValueError(f"{task.name}: period must be > 0, got {task.period_s}")
        self.tasks = tasks
        self._metrics = metrics

    def due(self, now: float) -> list[ScheduledTask]:
        """Tasks whose current slot has not fired yet; a task that missed several slots fires once."""
        return [t for t in self.tasks if t.last_slot is None or t.slot(now) > t.last_slot]

    def next_due_at(self, now: float) -> float:
        return min((t.slot(now) + t.period_s for t in self.tasks), default=now + 1.0)

    def run_due(self, now: float) -> list[TaskOutcome]:
        outcomes = []
        for task in self.due(now):
            task.last_slot = task.slot(now)
            outcomes.append(self.run_task(task))
        return outcomes

    def run_task(self, task: ScheduledTask) -> TaskOutcome:
        started = time.perf_counter()
        try:
            value = task.run()
            result = "ok"
        except LockBusy:
            value, result = None, "skipped_locked"
            if self._metrics:
                self._metrics.scheduler_overruns_total.labels(task.name).inc()
        except Exception:
            value, result = None, "error"
            log.exception("task %s failed", task.name)
        seconds = time.perf_counter() - started
        if self._metrics:
            self._metrics.task_runs_total.labels(task.name, result).inc()
            self._metrics.task_duration_seconds.labels(task.name).observe(seconds)
        return TaskOutcome(task.name, result, seconds, value)
