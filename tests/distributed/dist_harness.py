"""Real-process harness for the distributed runtime: config files, broker isolation, a synthetic market,
`3t worker` / `3t beat` subprocesses and consistent snapshots of the run table."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("T3_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
SYMBOLS = ["BTC/USDC:USDC", "ETH/USDC:USDC"]
START_PRICES = {"BTC/USDC:USDC": 100_000.0, "ETH/USDC:USDC": 3_000.0}
DISPATCH_RE = re.compile(r"dispatch t=([0-9.]+) shards=(\d+)")
STEP_RE = re.compile(
    r"step_shard (\S+):(\d+) t=([0-9.]+) status=(\w+) tick=(\S+) .*task=(\S+) redelivered=(\w+)"
)
RECEIVED_RE = re.compile(r"Task ttt\.providence\.step_shard\[([0-9a-f-]+)\] received")
BROKER_KEYS = ("high_priority", "low_priority", "unacked", "unacked_index", "unacked_mutex")
BROKER_GUARD = "ttt-test:distributed-broker-guard"


def broker_session() -> Iterator[str]:
    """Exclusive use of the test broker db while a distributed test runs; queues emptied before and after."""
    client = redis.Redis.from_url(BROKER_URL)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 600
    while not client.set(BROKER_GUARD, token, nx=True, ex=900):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test broker {BROKER_URL} stayed in use by another distributed test")
        time.sleep(1)

    def clean() -> None:
        keys = list(BROKER_KEYS) + [k for k in client.scan_iter(match="_kombu.binding.*")]
        client.delete(*keys)

    clean()
    try:
        yield BROKER_URL
    finally:
        clean()
        if client.get(BROKER_GUARD) == token.encode():
            client.delete(BROKER_GUARD)
        client.close()


def write_config(
    directory: Path,
    *,
    db_url: str,
    redis_url: str,
    prefix: str,
    broker_url: str,
    runs: int,
    shard_size: int,
    visibility_timeout_s: int = 3600,
) -> tuple[Path, Path]:
    config: dict[str, Any] = {
        "mode": "distributed",
        "universe": {"symbols": SYMBOLS},
        "database": {"url": db_url, "pool_size": 4},
        "cache": {"redis_url": redis_url, "prefix": prefix},
        "celery": {"broker_url": broker_url, "visibility_timeout_s": visibility_timeout_s},
        # Nothing listens on the discard port: portfolio tasks fail at once (no network here) instead of
        # holding a high-priority worker on DNS or connect timeouts.
        "exchange": {
            "kind": "hyperliquid",
            "hyperliquid": {"network": "custom", "base_url": "http://127.0.0.1:9", "read_retries": 0},
        },
        "portfolio": {"quorum": {"k": 1}},
        "observability": {"log_level": "INFO", "log_format": "text"},
        "providence": {
            "desired_run_count": runs,
            "shard_size": shard_size,
            "db_write_every_ticks": 1,
            "seed": 7,
        },
    }
    secrets = {"exchanges": {"hyperliquid": {"wallet_address": "0x" + "0" * 39 + "1"}}}
    cfg_path, sec_path = directory / "config.yml", directory / "secrets.yml"
    cfg_path.write_text(yaml.safe_dump(config))
    sec_path.write_text(yaml.safe_dump(secrets))
    return cfg_path, sec_path


def prepare_database(db_url: str, cfg_path: Path, sec_path: Path) -> None:
    """Migrate, and list the products the supervisor sizes by (what `3t products sync` would write)."""
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.migrate import upgrade
    from ttt.config import load_settings
    from ttt.domain.orders import ProductMeta
    from ttt.services.products_sync import sync_products, venue_from_config

    class Listed:
        def load_products(self) -> list[ProductMeta]:
            return [ProductMeta(symbol=s, sz_decimals=4, max_leverage=40) for s in SYMBOLS]

    class Clock:
        def now(self) -> float:
            return time.time()

    settings = load_settings(cfg_path, sec_path, environ={}, process="cli")
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        sync_products(engine, Listed(), venue_from_config(settings.config.exchange), Clock())
    finally:
        engine.dispose()


class Market(threading.Thread):
    """A synthetic feed: a fresh `price:{symbol}` every second and the minute bars volatility needs."""

    def __init__(self, db_url: str, redis_url: str, prefix: str, seed: int = 11) -> None:
        super().__init__(daemon=True)
        from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
        from ttt.adapters.db.engine import make_engine
        from ttt.adapters.market.feed import PricePublisher

        class Clock:
            def now(self) -> float:
                return time.time()

        self.cache = RedisCache(make_redis_client(redis_url), prefix)
        self.publisher = PricePublisher(self.cache, Clock())
        self.engine = make_engine(db_url, pool_size=1)
        self.rng = random.Random(seed)
        self.prices = dict(START_PRICES)
        self.stop_event = threading.Event()
        self.last_minute = -1

    source = "synthetic"

    def ohlc(self, symbol: str, minute: int) -> tuple[float, float, float, float]:
        base = self.prices[symbol]
        close = base * (1 + self.rng.gauss(0, 0.001))
        return base, max(base, close) * 1.0008, min(base, close) * 0.9992, close

    def price(self, symbol: str, now: float) -> float:
        self.prices[symbol] *= 1 + self.rng.gauss(0, 0.0005)
        return self.prices[symbol]

    def bars(self, minutes: list[int]) -> None:
        from sqlalchemy.orm import Session

        from ttt.adapters.db.repositories.bars import BarRepository, StoredBar

        rows = []
        for symbol in self.prices:
            for m in minutes:
                o, high, low, close = self.ohlc(symbol, m)
                rows.append(
                    StoredBar(
                        symbol=symbol,
                        timeframe="1m",
                        ts_open=m * 60_000,
                        open=Decimal(repr(o)),
                        high=Decimal(repr(high)),
                        low=Decimal(repr(low)),
                        close=Decimal(repr(close)),
                        volume=Decimal("1"),
                        source=self.source,
                        is_final=True,
                        fetched_at=datetime.now(UTC),
                    )
                )
        with Session(self.engine) as session, session.begin():
            BarRepository(session).upsert_bars(rows)

    def warm_up(self) -> None:
        now_min = math.floor(time.time() / 60)
        self.bars(list(range(now_min - 120, now_min + 1)))
        self.last_minute = now_min
        self.publish()

    def publish(self) -> None:
        now = time.time()
        for symbol in self.prices:
            self.publisher.publish(symbol, self.price(symbol, now), now, self.source)

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            self.publish()
            minute = math.floor(time.time() / 60)
            if minute != self.last_minute:
                self.bars([minute])
                self.last_minute = minute

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        self.engine.dispose()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)

    def kill9(self) -> None:
        """SIGKILL to the whole process group: the worker's main process and its pool children."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


def start(name: str, directory: Path, cfg: Path, sec: Path, *args: str) -> Proc:
    log = directory / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    if (yaml.safe_load(cfg.read_text()).get("observability") or {}).get("metrics_port") is None:
        # several workers/beats share this host: each gets its own metrics port (services.md §1.3)
        from tests.support import free_port

        env["TTT_OBSERVABILITY__METRICS_PORT"] = str(free_port())
    cmd = [sys.executable, "-m", "ttt.cli.dist_cmd", "--config", str(cfg), "--secrets", str(sec), *args]
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True
        )
    return Proc(name, popen, log)


def wait_for(predicate: Any, timeout: float, what: str, procs: Sequence[Proc] = (), poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for p in procs:
            if p.popen.poll() is not None:
                raise AssertionError(
                    f"{p.name} exited with {p.popen.returncode} while waiting for {what}:\n"
                    + p.text()[-3000:]
                )
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def dispatch_ticks(*procs: Proc) -> list[float]:
    """Tick times of dispatches that enqueued at least one shard, from the worker logs."""
    ticks = []
    for p in procs:
        ticks += [float(t) for t, n in DISPATCH_RE.findall(p.text()) if int(n) > 0]
    return sorted(ticks)


@dataclass(frozen=True)
class RunRow:
    id: int
    symbol: str
    shard: int
    start_time: float
    ended: bool
    iteration_count: int
    state: dict[str, Any]


def runs(engine: sa.Engine) -> dict[int, RunRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, symbol, shard, end_time, iteration_count, run_state FROM runs")
        ).all()
    out = {}
    for rid, symbol, shard, end_time, count, raw in rows:
        state = raw if isinstance(raw, dict) else json.loads(raw)
        out[int(rid)] = RunRow(
            int(rid), symbol, int(shard), float(state["start_time"]), end_time is not None, int(count), state
        )
    return out


def settled_snapshot(
    engine: sa.Engine, redis_url: str, prefix: str, timeout: float = 30
) -> tuple[float, dict[int, RunRow]]:
    """(T, runs) at a moment when every shard with members has processed the symbol's latest tick T.

    The shard tick key is set only after the shard's database write, so the rows read in between are the
    states after T; the keys are re-checked afterwards to make sure no newer tick slipped in.
    """
    client = redis.Redis.from_url(redis_url)

    def marks(rows: dict[int, RunRow]) -> dict[tuple[str, int], float | None] | None:
        shards = {(r.symbol, r.shard) for r in rows.values() if not r.ended}
        ticks: dict[tuple[str, int], float | None] = {}
        latest: dict[str, float] = {}
        for symbol in {s for s, _ in shards}:
            raw = client.get(f"{prefix}tick:{symbol}")
            if raw is None:
                return None
            latest[symbol] = float(json.loads(raw)["t"])
        for symbol, shard in shards:
            raw = client.get(f"{prefix}shard:{symbol}:{shard}:tick")
            ticks[(symbol, shard)] = float(raw) if raw is not None else None
            if ticks[(symbol, shard)] != latest[symbol]:
                return None
        return ticks

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            rows = runs(engine)
            before = marks(rows)
            if before:
                rows = runs(engine)
                if marks(rows) == before:
                    return max(v for v in before.values() if v is not None), rows
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError("shards never settled on one tick")
