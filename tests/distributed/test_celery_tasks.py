"""Task-level pins of the Celery app (services.md §3, SV-09) against the real Redis and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed import dist_harness as h


def test_app_settings_follow_section_3() -> None:
    from ttt.runtime import celery_app as c

    conf = c.app.conf
    assert c.app.main == "ttt"
    assert conf.task_ignore_result is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.timezone == "UTC"
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.task_default_queue == "high_priority"
    assert {q.name for q in conf.task_queues} == {"high_priority", "low_priority"}
    assert c.app.amqp.router.route({}, c.STEP_SHARD)["queue"].name == "low_priority"
    for name in (c.SUPERVISOR, c.DISPATCH, c.PURGE):
        assert c.app.amqp.router.route({}, name)["queue"].name == "high_priority"
    step = c.app.tasks[c.STEP_SHARD]
    assert step.acks_late and step.reject_on_worker_lost
    for name in (c.SUPERVISOR, c.DISPATCH, c.PURGE):
        assert not c.app.tasks[name].acks_late
    registered = {n for n in c.app.tasks if n.startswith("ttt.")}
    assert registered == {c.STEP_SHARD} | {name for name, _ in c.PERIODIC}


@pytest.fixture
def worker_context(tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str) -> Iterator[object]:
    from ttt.config import load_settings
    from ttt.runtime import celery_app as c

    cfg, sec = h.write_config(
        tmp_path,
        db_url=pg_url,
        redis_url=redis_url,
        prefix=redis_prefix,
        broker_url=h.BROKER_URL,
        runs=12,
        shard_size=50,
    )
    h.prepare_database(pg_url, cfg, sec)
    ctx = c.build_context(load_settings(cfg, sec, environ={}, process="worker"))
    c.set_context(ctx)
    try:
        yield ctx
    finally:
        c.set_context(None)
        ctx.dispose()


def test_sv09_duplicate_step_shard_delivery_returns_at_once(worker_context: object) -> None:
    from ttt.runtime import celery_app as c
    from ttt.services.providence.inputs import TickRecord, tick_key
    from ttt.services.providence.shard import shard_state_key

    ctx = worker_context
    assert c.supervisor.apply().get()["created"] > 0
    symbol = h.SYMBOLS[0]
    t = time.time() + 1.0  # strictly after the runs' creation, so they join at this tick
    ctx.cache.set(tick_key(symbol), TickRecord(symbol, t, 100_000.0, 500.0, 0.1).to_json(), 60)

    first = c.step_shard.apply(args=(symbol, 0, t)).get()
    assert first["status"] == "stepped" and first["stepped"] > 0
    rows_after_first = {rid: r for rid, r in h.runs(ctx.engine).items() if r.symbol == symbol}
    assert rows_after_first and all(r.iteration_count == 1 for r in rows_after_first.values())
    cached = ctx.cache.get(shard_state_key(symbol, 0))

    second = c.step_shard.apply(args=(symbol, 0, t)).get()
    assert second == {"status": "already_processed", "tick": t, "stepped": 0}
    assert {rid: r for rid, r in h.runs(ctx.engine).items() if r.symbol == symbol} == rows_after_first
    assert ctx.cache.get(shard_state_key(symbol, 0)) == cached
