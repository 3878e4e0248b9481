"""`3t beat` (services.md §3 "Beat", §2.3, SV-10): one active scheduler guarded by the lock `beat`.

A small loop rather than Celery beat: the slot, misfire and order rules are the embedded scheduler's
(`ttt.runtime.scheduler`), so both modes fire the same tasks at the same instants. A standby polls the lock
often enough to take over within the lock's TTL after the active beat stops (released at once on a clean
stop; expired at most 60 s after a crash, as the holder extends it every 20 s). A holder that fails to
extend stops scheduling immediately: two schedulers must never run, and a missed slot is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ttt.errors import CacheUnavailable
from ttt.ports import LockManager
from ttt.runtime.scheduler import ScheduledTask, Scheduler
from ttt.telemetry.metrics import Metrics

log = logging.getLogger("ttt.beat")

BEAT_LOCK = "beat"
BEAT_LOCK_TTL_S = 60.0
BEAT_LOCK_EXTEND_S = 20.0
STANDBY_POLL_S = 0.5
MAX_SLEEP_S = 1.0

# send(name, occasion="startup"|"slot", at=start or slot time): the sender chooses the task's arguments
Send = Callable[..., None]


class BeatLoop:
    def __init__(
        self,
        locks: LockManager,
        periodic: Sequence[tuple[str, float]],
        send: Send,
        *,
        startup: Sequence[str] = (),
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        lock_ttl_s: float = BEAT_LOCK_TTL_S,
        extend_every_s: float = BEAT_LOCK_EXTEND_S,
        standby_poll_s: float = STANDBY_POLL_S,
    ) -> None:
        self._locks = locks
        self._periodic = list(periodic)
        self._send = send
        self._startup = list(startup)
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._ttl = lock_ttl_s
        self._extend_every = extend_every_s
        self._poll = standby_poll_s
        self.stop_event = threading.Event()
        self.active = False

    def _scheduler(self) -> Scheduler:
        def sender(name: str) -> Callable[[], object]:
            return lambda: self._send(name)

        tasks = [ScheduledTask(name, float(period), sender(name)) for name, period in self._periodic]
        return Scheduler(tasks, self._metrics)

    def run(self) -> None:
        """Until `stop_event`: wait for the lock, schedule while holding it, fall back to standby if lost."""
        announced_standby = False
        while not self.stop_event.is_set():
            try:
                token = self._locks.acquire(BEAT_LOCK, self._ttl)
            except CacheUnavailable as exc:
                log.warning("beat: cache unavailable while taking the lock: %s", exc)
                token = None
            if token is None:
                if not announced_standby:
                    log.info("beat standby: lock %r is held by another beat", BEAT_LOCK)
                    announced_standby = True
                self.stop_event.wait(self._poll)
                continue
            announced_standby = False
            try:
                self._active(token)
            finally:
                self.active = False
                try:
                    self._locks.release(BEAT_LOCK, token)
                except CacheUnavailable:
                    log.warning("beat: could not release %r; it expires in %.0f s", BEAT_LOCK, self._ttl)

    def _active(self, token: str) -> None:
        self.active = True
        log.info("beat active: holding lock %r", BEAT_LOCK)
        scheduler = self._scheduler()
        started = self._clock()
        for name in self._startup:
            self._fire(name, "startup", started)
            for task in scheduler.tasks:
                if task.name == name:  # the one-off stands for this slot's firing
                    task.last_slot = task.slot(started)
        last_extend = self._monotonic()
        while not self.stop_event.is_set():
            if self._monotonic() - last_extend >= self._extend_every:
                try:
                    kept = self._locks.extend(BEAT_LOCK, token, self._ttl)
                except CacheUnavailable as exc:
                    log.warning("beat: extend failed: %s", exc)
                    kept = False
                if not kept:
                    log.error("beat lost lock %r; stopped scheduling, back to standby", BEAT_LOCK)
                    return
                last_extend = self._monotonic()
            now = self._clock()
            for task in scheduler.due(now):
                task.last_slot = task.slot(now)
                self._fire(task.name, "slot", task.last_slot)
            wait = scheduler.next_due_at(now) - self._clock()
            self.stop_event.wait(max(0.0, min(MAX_SLEEP_S, wait)))

    def _fire(self, name: str, occasion: str, at: float) -> None:
        why = f"{occasion} {at:.0f}"
        started = time.perf_counter()
        try:
            self._send(name, occasion=occasion, at=at)
            result = "ok"
            log.info("beat sent %s (%s)", name, why)
        except Exception as exc:  # the broker may be down; the next slot tries again
            result = "error"
            log.error("beat could not send %s (%s): %s", name, why, exc)
        if self._metrics:
            self._metrics.task_runs_total.labels(name, result).inc()
            self._metrics.task_duration_seconds.labels(name).observe(time.perf_counter() - started)
