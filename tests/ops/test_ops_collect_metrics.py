"""`ttt.ops.collect_metrics` (services.md §8.1): the cache document equals a hand count of the rows, each
gauge is guarded on its own, and `DbGaugeCollector` re-exports the document unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.ops.conftest import NOW, FixedClock, at, insert, run, snapshot, venue
from tests.support import free_port
from ttt.adapters.cache.locks import RedisLockManager
from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
from ttt.adapters.db import models as m
from ttt.adapters.db.repositories.bars import StoredBar
from ttt.adapters.db.uow import UnitOfWork
from ttt.services.locking import LockBusy
from ttt.services.ops.collect_metrics import (
    METRICS_LOCK,
    MetricsCollector,
    QueueLengths,
    collect_metrics,
)
from ttt.telemetry.metrics import DB_GAUGES, DB_GAUGES_KEY, DbGaugeCollector, exposition

BTC, ETH, SOL = "BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = make_redis_client(redis_url)
    yield c
    c.close()


def _seed(engine: Engine, cache: RedisCache) -> None:
    venue(engine)
    insert(
        engine,
        m.Run,
        [
            run(1, BTC, position_direction=2, live_pnl=10.5),
            run(2, BTC, position_direction=-1, live_pnl=-3.25),
            run(3, BTC, position_direction=0, live_pnl=None),
            run(
                4, BTC, position_direction=5, live_pnl=100.0, end_time=at(NOW - 10), end_reason="max_duration"
            ),
            run(5, BTC, position_direction=1, live_pnl=7.0, exit_run=True, height=2),
            run(6, ETH, shard=1, position_direction=1, live_pnl=2.0),
        ],
    )
    epoch = {
        "triggered_at": at(NOW),
        "baseline_before": Decimal(1),
        "value": Decimal(1),
        "gain": Decimal(0),
        "runs_flagged": 0,
        "forced_cycle_ids": [],
        "forced_due_at": [],
        "forced_state": [],
    }
    insert(
        engine,
        m.Epoch,
        [
            {"id": 1, "kind": "take_profit", "height": 1, **epoch},
            {"id": 2, "kind": "take_profit", "height": 3, **epoch},
            {"id": 3, "kind": "drawdown_reset", "height": None, **epoch},
        ],
    )
    insert(
        engine,
        m.BalanceSnapshot,
        [
            snapshot(1, NOW - 60, value="1000"),
            snapshot(2, NOW - 30, value="1234.5"),
            snapshot(3, NOW - 10, usable=False, value="999"),  # newest, but partial: not the account value
        ],
    )
    bar = dict(open=Decimal(1), high=Decimal(1), low=Decimal(1), close=Decimal(1), volume=Decimal(1))
    with UnitOfWork(engine) as uow:
        uow.bars.upsert_bars(
            [
                StoredBar(
                    BTC,
                    "1m",
                    int((NOW - 180) * 1000),
                    **bar,
                    source="replay",
                    is_final=True,
                    fetched_at=at(NOW),
                ),
                StoredBar(
                    BTC,
                    "1m",
                    int((NOW - 120) * 1000),
                    **bar,
                    source="replay",
                    is_final=True,
                    fetched_at=at(NOW),
                ),
                StoredBar(
                    BTC,
                    "4h",
                    int((NOW - 14_400) * 1000),
                    **bar,
                    source="replay",
                    is_final=True,
                    fetched_at=at(NOW),
                ),
            ]
        )
    cache.set(f"price:{BTC}", json.dumps({"price": 100000.0, "ts": NOW - 7, "source": "synthetic"}), 600)
    cache.set(f"price:{SOL}", "not json", 600)
    cache.set(f"shard:{BTC}:0:tick", repr(NOW - 3), 600)


def _values(doc: dict, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(sorted(s["labels"].items())): s["value"] for s in doc["gauges"][name]}  # type: ignore[misc]


def test_document_equals_a_hand_count_of_the_rows(
    engine: Engine, client: redis.Redis, redis_prefix: str
) -> None:
    cache = RedisCache(client, redis_prefix)
    _seed(engine, cache)
    high, low = f"{redis_prefix}q:high", f"{redis_prefix}q:low"
    client.rpush(high, "a", "b", "c")
    client.rpush(f"{high}\x06\x163", "d", "e")  # kombu's priority list of the same queue
    collector = MetricsCollector(
        engine, cache, FixedClock(), [BTC, ETH, SOL], queue_lengths=QueueLengths(client, [high, low])
    )

    published = collect_metrics(collector, RedisLockManager(client, redis_prefix))

    raw = client.get(f"{redis_prefix}{DB_GAUGES_KEY}")
    assert raw is not None
    assert 0 < client.ttl(f"{redis_prefix}{DB_GAUGES_KEY}") <= 60
    doc = json.loads(raw)
    assert doc["errors"] == {} and published.errors == {}
    assert doc["ts"] == NOW
    assert _values(doc, "ttt_providence_active_runs") == {
        (("symbol", BTC),): 3,  # runs 1, 2, 3; 4 ended, 5 flagged
        (("symbol", ETH),): 1,
        (("symbol", SOL),): 0,
    }
    directions = _values(doc, "ttt_providence_runs_direction")
    assert directions[(("direction", "long"), ("symbol", BTC))] == 1
    assert directions[(("direction", "short"), ("symbol", BTC))] == 1
    assert directions[(("direction", "flat"), ("symbol", BTC))] == 1
    assert directions[(("direction", "long"), ("symbol", ETH))] == 1
    assert directions[(("direction", "flat"), ("symbol", ETH))] == 0
    assert directions[(("direction", "short"), ("symbol", SOL))] == 0
    assert len(directions) == 9
    assert _values(doc, "ttt_providence_open_pnl_usd") == {
        (("symbol", BTC),): 7.25,  # 10.5 − 3.25 + (NULL → 0)
        (("symbol", ETH),): 2.0,
        (("symbol", SOL),): 0.0,
    }
    assert _values(doc, "ttt_providence_height") == {(): 3}
    assert _values(doc, "ttt_account_value_usd") == {(): 1234.5}
    assert _values(doc, "ttt_account_margin_used_usd") == {
        (("kind", "cross_maintenance"),): 12.5,
        (("kind", "total"),): 50.25,
    }
    assert _values(doc, "ttt_market_data_bar_age_seconds") == {
        (("symbol", BTC), ("timeframe", "1m")): 120.0,
        (("symbol", BTC), ("timeframe", "4h")): 14_400.0,
    }
    assert _values(doc, "ttt_queue_depth") == {(("queue", high),): 5, (("queue", low),): 0}
    assert _values(doc, "ttt_price_age_seconds") == {(("symbol", BTC),): 7.0}  # ETH absent, SOL malformed
    assert _values(doc, "ttt_providence_shard_lag_seconds") == {(("shard", "0"), ("symbol", BTC)): 3.0}

    reg = CollectorRegistry()
    reg.register(DbGaugeCollector(lambda: client.get(f"{redis_prefix}{DB_GAUGES_KEY}")))
    text = exposition(reg)[0].decode()
    assert f'ttt_providence_active_runs{{symbol="{BTC}"}} 3.0' in text
    assert "ttt_account_value_usd 1234.5" in text
    assert f'ttt_queue_depth{{queue="{high}"}} 5.0' in text


def test_no_usable_snapshot_means_no_account_sample_not_zero(
    engine: Engine, client: redis.Redis, redis_prefix: str
) -> None:
    cache = RedisCache(client, redis_prefix)
    doc = MetricsCollector(engine, cache, FixedClock(), [BTC]).collect()
    assert doc.errors == {}
    assert doc.gauges["ttt_account_value_usd"] == []
    assert doc.gauges["ttt_account_margin_used_usd"] == []
    assert doc.gauges["ttt_providence_active_runs"] == [{"labels": {"symbol": BTC}, "value": 0.0}]
    assert "ttt_queue_depth" not in doc.gauges  # no broker given


def test_one_failing_gauge_does_not_stop_the_others(
    engine: Engine, client: redis.Redis, redis_prefix: str
) -> None:
    cache = RedisCache(client, redis_prefix)
    _seed(engine, cache)
    dead_broker = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    collector = MetricsCollector(
        engine, cache, FixedClock(), [BTC, ETH], queue_lengths=QueueLengths(dead_broker)
    )
    doc = collector.publish()
    assert set(doc.errors) == {"ttt_queue_depth"}
    assert "ConnectionError" in doc.errors["ttt_queue_depth"]
    assert "ttt_queue_depth" not in doc.gauges
    assert set(DB_GAUGES) - set(doc.gauges) == {"ttt_queue_depth"}
    stored = json.loads(client.get(f"{redis_prefix}{DB_GAUGES_KEY}") or b"{}")
    assert stored["gauges"]["ttt_providence_height"] == [{"labels": {}, "value": 3.0}]
    assert "ttt_queue_depth" in stored["errors"]


def test_the_task_skips_when_its_lock_is_held(engine: Engine, client: redis.Redis, redis_prefix: str) -> None:
    cache = RedisCache(client, redis_prefix)
    locks = RedisLockManager(client, redis_prefix)
    token = locks.acquire(METRICS_LOCK, 30)
    assert token is not None
    with pytest.raises(LockBusy):
        collect_metrics(MetricsCollector(engine, cache, FixedClock(), [BTC]), locks)
    assert client.get(f"{redis_prefix}{DB_GAUGES_KEY}") is None
