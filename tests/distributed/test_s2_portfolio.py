"""The distributed portfolio path with real processes (services.md §1.3, §2.1, §2.2, §8.1; portfolio.md §1).

`3t sim-exchange` (the paper venue, a custom Hyperliquid network), `3t gateway` (the only holder of the
signing key), one `3t worker -Q high_priority` and `3t beat`, on PostgreSQL and the real Redis. The test
plays `3t feed`: it copies the simulator's mids into `price:{symbol}` every second. Four runs voting long
BTC are seeded in the database, as Providence would have written them.

Beat's startup one-offs must then: sync the venue's products, store an account snapshot, and run the
startup reconciliation cycle, whose BTC decision is an order that reaches the simulator through the gateway
with our client order id and an audit trail. The periodic `collect_metrics` writes its Redis document.

A second scenario points the workers at a gateway that is not there: the startup cycle must still be
recorded, and BTC must hold (`cancel_unavailable`) with no order on the venue (money safety).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
import yaml
from eth_account import Account

from tests.distributed import dist_harness as h
from tests.support import free_port

WALLET_KEY = "0x" + "11" * 32  # fixed test keys, never funded anywhere
AGENT_KEY = "0x" + "22" * 32
WALLET = Account.from_key(WALLET_KEY).address.lower()
AGENT = Account.from_key(AGENT_KEY).address.lower()
TOKEN = "g" * 40
BTC, ETH = h.SYMBOLS


@pytest.fixture
def broker() -> Iterator[str]:
    yield from h.broker_session()


def _config(
    directory: Path,
    name: str,
    *,
    db_url: str,
    redis_url: str,
    prefix: str,
    broker: str,
    sim_url: str,
    gateway_port: int,
    metrics_port: int,
    private_key: bool = False,
) -> tuple[Path, Path]:
    config: dict[str, Any] = {
        "mode": "distributed",
        "universe": {"symbols": [BTC, ETH]},
        "database": {"url": db_url, "pool_size": 4},
        "cache": {"redis_url": redis_url, "prefix": prefix},
        "celery": {"broker_url": broker},
        "exchange": {"kind": "hyperliquid", "hyperliquid": {"network": "custom", "base_url": sim_url}},
        "market_data": {"backfill_bars": {"1m": 60, "4h": 10, "default": 10}},
        "portfolio": {
            "quorum": {"k": 1},
            "risk_pos_percentage": 0.01,  # 4 runs · 10 000 · 0.01 · 0.25 (probationary) = 100 USD of BTC
            "gateway": {"url": f"http://127.0.0.1:{gateway_port}", "timeout_s": 10},
        },
        "gateway": {"port": gateway_port},
        "observability": {"log_level": "INFO", "log_format": "text", "metrics_port": metrics_port},
        "providence": {"desired_run_count": 4, "seed": 7, "db_write_every_ticks": 1},
    }
    secrets: dict[str, Any] = {
        "exchanges": {"hyperliquid": {"wallet_address": WALLET}},
        "gateway": {"token": TOKEN},
    }
    if private_key:
        secrets["exchanges"]["hyperliquid"]["private_key"] = AGENT_KEY
    cfg, sec = directory / f"{name}.config.yml", directory / f"{name}.secrets.yml"
    cfg.write_text(yaml.safe_dump(config))
    sec.write_text(yaml.safe_dump(secrets))
    return cfg, sec


def _migrate(db_url: str) -> None:
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.migrate import upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _seed_long_btc(engine: sa.Engine) -> None:
    """Four runs long BTC with a qualifying live PnL, freshly written (what the shard steps leave)."""
    from ttt.adapters.db.uow import UnitOfWork
    from ttt.ports import NewRun, RunProgress

    now = time.time()
    new = [NewRun(BTC, 0, 100 + i, now - 60, 7000.0, 86_400, "test", {}, {"state": 1}) for i in range(4)]
    with UnitOfWork(engine) as uow:
        ids = uow.runs.insert_many(new)
        uow.runs.update_progress_many([RunProgress(i, "{}", 1, 1, now - 5, 1.0) for i in ids])


class SimFeed(threading.Thread):
    """Plays `3t feed`: the simulator's mids into `price:{symbol}` every second."""

    def __init__(self, sim_url: str, redis_url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
        from ttt.adapters.market.feed import PricePublisher

        class Clock:
            def now(self) -> float:
                return time.time()

        self.sim_url = sim_url
        self.publisher = PricePublisher(RedisCache(make_redis_client(redis_url), prefix), Clock())
        self.stop_event = threading.Event()
        self.published = 0

    def publish_once(self) -> None:
        mids = httpx.post(self.sim_url + "/info", json={"type": "allMids"}, timeout=5).json()
        now = time.time()
        for symbol in (BTC, ETH):
            coin = symbol.split("/")[0]
            if coin in mids:
                self.publisher.publish(symbol, float(mids[coin]), now, "poll_mid")
                self.published += 1

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            with contextlib.suppress(httpx.HTTPError):
                self.publish_once()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def _rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def _http_up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _start_sim(tmp_path: Path, cfg: Path, sec: Path, port: int) -> h.Proc:
    return h.start(
        "sim-exchange",
        tmp_path,
        cfg,
        sec,
        "sim-exchange",
        "--port",
        str(port),
        "--wallet",
        f"{WALLET}=10000",
        "--agent",
        f"{AGENT}={WALLET}",
        "--test-api",
        # The price holds still: the post-only buy is priced at the mid the feed read up to a second
        # earlier, and a walk of more than the 1 bp half-spread since then makes it cross (REJECTED).
        "--speed",
        "0.0001",
    )


def _scenario(
    tmp_path: Path, db_url: str, redis_url: str, prefix: str, broker: str, *, with_gateway: bool
) -> dict[str, Any]:
    """Start the stack, wait for the startup cycle's BTC decision, return what the test inspects."""
    from ttt.adapters.db.engine import make_engine

    sim_port, gateway_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    common = dict(
        db_url=db_url,
        redis_url=redis_url,
        prefix=prefix,
        broker=broker,
        sim_url=sim_url,
        gateway_port=gateway_port,
    )
    w_cfg, w_sec = _config(tmp_path, "worker", metrics_port=free_port(), **common)  # type: ignore[arg-type]
    b_cfg, b_sec = _config(tmp_path, "beat", metrics_port=free_port(), **common)  # type: ignore[arg-type]
    g_cfg, g_sec = _config(tmp_path, "gateway", metrics_port=free_port(), private_key=True, **common)  # type: ignore[arg-type]
    _migrate(db_url)
    engine = make_engine(db_url, pool_size=2)
    procs: list[h.Proc] = []
    feed: SimFeed | None = None
    try:
        sim = _start_sim(tmp_path, w_cfg, w_sec, sim_port)
        procs.append(sim)
        h.wait_for(lambda: _http_up(sim_url + "/_sim/state"), 30, "the sim-exchange", procs)
        feed = SimFeed(sim_url, redis_url, prefix)
        feed.publish_once()
        feed.start()
        if with_gateway:
            gateway = h.start("gateway", tmp_path, g_cfg, g_sec, "gateway")
            procs.append(gateway)
            h.wait_for(lambda: _http_up(f"http://127.0.0.1:{gateway_port}/health"), 60, "the gateway", procs)
        _seed_long_btc(engine)
        worker = h.start(
            "worker-high", tmp_path, w_cfg, w_sec, "worker", "-Q", "high_priority", "--concurrency", "1"
        )
        beat = h.start("beat", tmp_path, b_cfg, b_sec, "beat")
        procs += [worker, beat]

        def btc_decision() -> Any:
            rows = _rows(
                engine,
                "SELECT l.outcome, l.client_order_id, l.hold_reason, c.cycle_id, c.outcome "
                "FROM reconciliation_log l JOIN reconciliation_cycles c ON c.cycle_id = l.cycle_id "
                "WHERE l.symbol = :s AND c.trigger = 'startup' AND c.outcome <> 'running'",
                s=BTC,
            )
            return rows[0] if rows else None

        decision = h.wait_for(btc_decision, 120, "the startup cycle's BTC decision", procs)
        client = redis.Redis.from_url(redis_url)
        try:
            metrics_doc = h.wait_for(
                lambda: client.get(f"{prefix}metrics:db"), 60, "the metrics document", procs
            )
        finally:
            client.close()
        return {
            "engine": engine,
            "decision": decision,
            "metrics": json.loads(metrics_doc),
            "sim_state": httpx.get(sim_url + "/_sim/state", timeout=5).json(),
            "worker_log": worker.text(),
            "beat_log": beat.text(),
        }
    except BaseException:
        engine.dispose()
        raise
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGTERM)
        if feed is not None:
            feed.stop()


def test_s2_startup_cycle_sends_an_order_through_the_gateway(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str, broker: str
) -> None:
    out = _scenario(tmp_path, pg_url, redis_url, redis_prefix, broker, with_gateway=True)
    engine = out["engine"]
    try:
        # §2.2 one-offs: products from the venue, then an account snapshot
        products = _rows(
            engine,
            "SELECT p.symbol, p.api_coin FROM products p JOIN exchanges e ON e.id = p.exchange_id "
            "WHERE e.name = 'hyperliquid-custom'",
        )
        assert {(BTC, "BTC"), (ETH, "ETH")} <= set(products)
        snaps = _rows(engine, "SELECT account_value, usable FROM balance_history ORDER BY id")
        assert snaps and snaps[0][1] is True and float(snaps[0][0]) == 10_000.0

        outcome, cloid, hold, cycle_id, cycle_outcome = out["decision"]
        assert cycle_id.startswith("startup:") and cycle_outcome == "completed"
        assert outcome == "order_sent", (outcome, hold, out["worker_log"][-3000:])
        assert cloid and cloid.startswith("0x74747401")

        orders = _rows(
            engine,
            "SELECT client_order_id, symbol, side, status FROM order_execution_log "
            "WHERE client_order_id = :c",
            c=cloid,
        )
        assert len(orders) == 1 and orders[0][1] == BTC and orders[0][2] == "buy"
        assert orders[0][3] in ("RESTING", "FILLED", "PARTIAL")
        audit_kinds = {
            r[0] for r in _rows(engine, "SELECT kind FROM audit_log WHERE client_order_id = :c", c=cloid)
        }
        assert audit_kinds, "no audit row carries the client order id"
        on_venue = [o for o in out["sim_state"]["orders"] if o["cloid"] == cloid]
        assert len(on_venue) == 1 and on_venue[0]["coin"] == "BTC" and on_venue[0]["wallet"] == WALLET

        gauges = out["metrics"]["gauges"]
        active = {s["labels"]["symbol"]: s["value"] for s in gauges["ttt_providence_active_runs"]}
        assert active[BTC] >= 4  # the seeded runs (the supervisor may have added some)
        assert gauges["ttt_account_value_usd"] and gauges["ttt_account_value_usd"][0]["value"] > 0
        assert {s["labels"]["queue"] for s in gauges["ttt_queue_depth"]} == {"high_priority", "low_priority"}
    finally:
        engine.dispose()


def test_s2_startup_cycle_without_a_gateway_holds_and_sends_nothing(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str, broker: str
) -> None:
    out = _scenario(tmp_path, pg_url, redis_url, redis_prefix, broker, with_gateway=False)
    engine = out["engine"]
    try:
        outcome, cloid, hold, cycle_id, cycle_outcome = out["decision"]
        assert cycle_id.startswith("startup:") and cycle_outcome == "completed"
        # portfolio.md F5: the gateway cannot be reached for cancel-open, so every symbol holds
        assert (outcome, hold, cloid) == ("hold", "cancel_unavailable", None), out["worker_log"][-3000:]
        assert out["sim_state"]["orders"] == []
        assert _rows(engine, "SELECT client_order_id FROM order_execution_log") == []
        assert out["sim_state"]["accounts"][WALLET]["positions"] == []  # nothing bought behind our back
    finally:
        engine.dispose()
