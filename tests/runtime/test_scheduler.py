"""The in-process scheduler (services.md §2.3): aligned slots, one firing per missed run, lock skips."""

from __future__ import annotations

from ttt.runtime.scheduler import ScheduledTask, Scheduler
from ttt.services.locking import LockBusy
from ttt.telemetry.metrics import Metrics


def test_slots_are_aligned_and_a_late_wake_fires_once() -> None:
    fired: list[float] = []
    clock = {"t": 1000.0}
    sched = Scheduler([ScheduledTask("ttt.x", 30, lambda: fired.append(clock["t"]))])
    for t in (1000.0, 1001.0, 1019.0, 1020.0, 1021.0):  # slots 990, 990, 1020 → two firings
        clock["t"] = t
        sched.run_due(t)
    assert fired == [1000.0, 1020.0]
    clock["t"] = 1200.0  # six periods late: fires once, not six times
    sched.run_due(1200.0)
    sched.run_due(1201.0)
    assert fired == [1000.0, 1020.0, 1200.0]
    assert sched.next_due_at(1201.0) == 1230.0


def test_registration_order_is_execution_order_and_overlap_is_skipped_and_counted() -> None:
    order: list[str] = []
    metrics = Metrics.create()

    def busy() -> None:
        order.append("dispatch")
        raise LockBusy("providence:dispatch")

    sched = Scheduler(
        [
            ScheduledTask("ttt.providence.supervisor", 300, lambda: order.append("supervisor")),
            ScheduledTask("ttt.providence.dispatch", 5, busy),
            ScheduledTask("ttt.providence.purge", 900, lambda: order.append("purge")),
        ],
        metrics,
    )
    outcomes = sched.run_due(0.0)
    assert order == ["supervisor", "dispatch", "purge"]
    assert [o.result for o in outcomes] == ["ok", "skipped_locked", "ok"]
    assert metrics.scheduler_overruns_total.labels("ttt.providence.dispatch")._value.get() == 1


def test_a_failing_task_is_counted_and_does_not_stop_the_others() -> None:
    ran: list[str] = []
    metrics = Metrics.create()

    def boom() -> None:
        raise RuntimeError("boom")

    sched = Scheduler([ScheduledTask("a", 5, boom), ScheduledTask("b", 5, lambda: ran.append("b"))], metrics)
    assert [o.result for o in sched.run_due(10.0)] == ["error", "ok"]
    assert ran == ["b"]
    assert metrics.task_runs_total.labels("a", "error")._value.get() == 1
