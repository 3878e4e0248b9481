"""The beat schedule of the distributed runtime (services.md §2.1, §2.2): every task of the table, its
period key, the one-offs in spec order and the arguments beat gives them."""

from __future__ import annotations

from ttt.config.models import Config

SPEC_TABLE = {  # services.md §2.1: task → scheduler.periods key (ttt.ops.control is S1 only)
    "ttt.providence.supervisor": "providence_supervisor",
    "ttt.providence.dispatch": "providence_dispatch",
    "ttt.providence.purge": "providence_purge",
    "ttt.market_data.fetch": "market_data_fetch",
    "ttt.market_data.retention": "market_data_retention",
    "ttt.account.update_balance": "balance_update",
    "ttt.portfolio.reconcile": "reconcile",
    "ttt.portfolio.take_profit": "take_profit",
    "ttt.products.sync": "products_sync",
    "ttt.ops.collect_metrics": "collect_metrics",
    "ttt.ops.retention": "retention",
}


def test_periodic_covers_the_schedule_table_on_the_high_queue() -> None:
    from ttt.runtime import celery_app as c

    assert dict(c.PERIODIC) == SPEC_TABLE
    assert [name for name, _ in c.PERIODIC][:3] == [c.SUPERVISOR, c.DISPATCH, c.PURGE]
    periods = Config().scheduler.periods
    for name, key in c.PERIODIC:
        assert getattr(periods, key) > 0
        assert name in c.app.tasks
        assert c.app.amqp.router.route({}, name)["queue"].name == "high_priority"
        assert not c.app.tasks[name].acks_late


def test_startup_one_offs_in_spec_order_with_their_arguments() -> None:
    from ttt.runtime import celery_app as c

    assert c.STARTUP_ONE_OFFS == (
        "ttt.products.sync",
        "ttt.market_data.fetch",
        "ttt.account.update_balance",
        "ttt.providence.supervisor",
        "ttt.portfolio.reconcile",
    )
    started = 1_767_225_600.75  # 2026-01-01T00:00:00.75Z
    assert c.beat_kwargs("ttt.market_data.fetch", "startup", started) == {"backfill": True}
    assert c.beat_kwargs("ttt.portfolio.reconcile", "startup", started) == {
        "cycle_id": "startup:20260101T000000Z",
        "trigger": "startup",
        "scheduled_at": started,
    }
    # a periodic reconcile is named by beat's slot, not by when a worker picks it up
    assert c.beat_kwargs("ttt.portfolio.reconcile", "slot", 1_767_225_600.0) == {
        "scheduled_at": 1_767_225_600.0
    }
    assert c.beat_kwargs("ttt.market_data.fetch", "slot", 1_767_225_600.0) == {}
    assert c.beat_kwargs("ttt.products.sync", "startup", started) == {}
