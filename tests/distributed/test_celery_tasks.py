"""Task-level pins of the Celery app (services.md §3, SV-09) against the real Redis and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def test_providence_tasks_are_counted_like_every_other_task(worker_context: object) -> None:
    """services.md §8.1 `ttt_task_runs_total{task,result}`: supervisor, dispatch and purge through the same
    accounting as the §2.1 tasks (a held lock is `skipped_locked` and an overrun); shard steps too."""
    from ttt.runtime import celery_app as c
    from ttt.services.providence.inputs import TickRecord, tick_key
    from ttt.services.providence.shard import shard_lock_name

    ctx: Any = worker_context

    def sample(name: str, **labels: str) -> float:
        return ctx.metrics.registry.get_sample_value(name, labels) or 0.0

    counted = [(c.SUPERVISOR, "ok"), (c.PURGE, "ok"), (c.DISPATCH, "ok"), (c.DISPATCH, "skipped_locked")]
    counted += [(c.STEP_SHARD, "ok"), (c.STEP_SHARD, "skipped_locked")]
    before = {k: sample("ttt_task_runs_total", task=k[0], result=k[1]) for k in counted}
    overruns = sample("ttt_scheduler_overruns_total", task=c.DISPATCH)

    def runs(task: str, result: str) -> float:
        return sample("ttt_task_runs_total", task=task, result=result) - before[(task, result)]

    assert c.supervisor.apply().get()["created"] > 0
    assert c.purge.apply().get()["status"] == "ok"
    token = ctx.locks.acquire("providence:dispatch", 30)
    assert c.dispatch.apply().get() == {"status": "skipped_locked"}
    ctx.locks.release("providence:dispatch", token)
    symbol = h.SYMBOLS[0]
    t = time.time() + 1.0
    ctx.cache.set(tick_key(symbol), TickRecord(symbol, t, 100_000.0, 500.0, 0.1).to_json(), 60)
    held = ctx.locks.acquire(shard_lock_name(symbol, 0), 15)
    assert c.step_shard.apply(args=(symbol, 0, t)).get()["status"] == "locked"
    ctx.locks.release(shard_lock_name(symbol, 0), held)
    assert c.step_shard.apply(args=(symbol, 0, t)).get()["status"] == "stepped"

    assert runs(c.SUPERVISOR, "ok") == 1 and runs(c.PURGE, "ok") == 1
    assert runs(c.DISPATCH, "skipped_locked") == 1 and runs(c.DISPATCH, "ok") == 0
    assert sample("ttt_scheduler_overruns_total", task=c.DISPATCH) - overruns == 1
    assert runs(c.STEP_SHARD, "skipped_locked") == 1 and runs(c.STEP_SHARD, "ok") == 1


def test_slot_firings_carry_the_section_2_3_soft_time_limit(tmp_path: Path, pg_url: str) -> None:
    """What beat publishes on the real broker: factor × period as the soft limit of a slot firing, none
    for a start-up one-off (it may backfill)."""
    import json

    import redis
    import yaml

    from ttt.config import load_settings
    from ttt.runtime import celery_app as c

    session = h.broker_session()
    broker = next(session)
    try:
        cfg, sec = h.write_config(
            tmp_path, db_url=pg_url, redis_url=broker, prefix="t:", broker_url=broker, runs=1, shard_size=5
        )
        doc = yaml.safe_load(cfg.read_text())
        doc["scheduler"] = {"periods": {"reconcile": 300, "take_profit": 10}}
        doc["celery"]["task_soft_time_limit_factor"] = 0.5
        cfg.write_text(yaml.safe_dump(doc))
        settings = load_settings(cfg, sec, environ={}, process="beat")
        assert c.soft_time_limits(settings)[c.RECONCILE] == 150.0
        c.configure_app(settings)
        now = time.time()
        c.send(c.RECONCILE, occasion="slot", at=now)
        c.send(c.TAKE_PROFIT, occasion="slot", at=now)
        c.send(c.RECONCILE, occasion="startup", at=now)
        client = redis.Redis.from_url(broker)
        queued = [json.loads(m)["headers"] for m in reversed(client.lrange("high_priority", 0, -1))]
        client.close()
        assert [(m["task"], m["timelimit"]) for m in queued] == [
            (c.RECONCILE, [None, 150.0]),
            (c.TAKE_PROFIT, [None, 5.0]),
            (c.RECONCILE, [None, None]),
        ]
    finally:
        next(session, None)
