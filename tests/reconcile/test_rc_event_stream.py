"""The reconciliation cycle on the dashboard's live feed (services.md §5 `ttt:stream:events`, §9 `cycle`).

The stream is a view of the audit log: a cycle appears there only once its audit row is committed, and a
failing cache never changes the cycle's outcome.
"""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.reconcile.rc_support import NOW, Scenario, build_scenario, sqlite_trigger
from ttt.adapters.cache.memory import MemoryCache
from ttt.services.dashboard_events import event_name
from ttt.services.portfolio.alerts import EVENTS_STREAM, AlertSink, db_audit_writer
from ttt.telemetry.metrics import Metrics

CYCLE = "sched:20260101T120000Z"


def _streaming(sc: Scenario, cache: MemoryCache) -> Scenario:
    alerts = AlertSink(sc.clock, sc.metrics, audit=db_audit_writer(sc.engine, "test@host"), cache=cache)
    return dataclasses.replace(sc, alerts=alerts)


def _events(cache: MemoryCache) -> list[dict[str, str]]:
    return [dict(fields) for _id, fields in cache.xrange(EVENTS_STREAM)]


def test_a_completed_cycle_publishes_its_start_and_end(engine: Engine) -> None:
    cache = MemoryCache()
    sc = _streaming(build_scenario(engine), cache)
    result = sc.service().run_cycle(CYCLE)
    assert result.outcome == "completed"
    events = _events(cache)
    assert [(e["kind"], e["severity"], e["reason"], e["cycle_id"]) for e in events] == [
        ("cycle.start", "info", "sched", CYCLE),
        ("cycle.end", "info", "completed", CYCLE),
    ]
    assert float(events[0]["ts"]) == NOW
    assert events[1]["message"] == f"cycle {CYCLE} completed: 0 orders, 0 holds"
    assert [event_name("events", e) for e in events] == ["cycle", "cycle"]


def test_a_duplicate_cycle_publishes_nothing_new(engine: Engine) -> None:
    cache = MemoryCache()
    sc = _streaming(build_scenario(engine), cache)
    sc.service().run_cycle(CYCLE)
    before = len(_events(cache))
    assert sc.service().run_cycle(CYCLE).outcome == "duplicate"
    assert len(_events(cache)) == before == 2


def test_a_cycle_whose_start_is_not_recorded_publishes_only_the_alert(engine: Engine) -> None:
    cache = MemoryCache()
    sc = _streaming(build_scenario(engine), cache)
    sqlite_trigger(engine, "no_cycle_start", "audit_log", "NEW.kind = 'cycle.start'")
    assert sc.service().run_cycle(CYCLE).outcome == "held"
    events = _events(cache)
    assert [(e["kind"], e["reason"], e["severity"]) for e in events] == [
        ("alert", "audit_unavailable", "critical")
    ]
    assert event_name("events", events[0]) == "alert"


class _BrokenStream(MemoryCache):
    def xadd(self, stream: str, fields: object, maxlen: int) -> str:  # type: ignore[override]
        raise ConnectionError("cache down")


def test_a_cache_failure_does_not_change_the_cycle(engine: Engine) -> None:
    sc = build_scenario(engine)
    metrics = Metrics.create(CollectorRegistry())
    alerts = AlertSink(sc.clock, metrics, audit=db_audit_writer(engine, "test@host"), cache=_BrokenStream())
    result = dataclasses.replace(sc, alerts=alerts).service().run_cycle(CYCLE)
    assert result.outcome == "completed"
