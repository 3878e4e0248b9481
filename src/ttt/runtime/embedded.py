"""Embedded mode (S1, services.md §1.2): every service in one process over SQLite and the in-process cache.

The same services as the distributed runtime, wired with local adapters. With a simulated market (synthetic
or replay) the driver owns the Clock: it advances simulated time tick by tick (paced by `speed` against wall
time), publishes prices, stores completed bars, feeds the paper exchange, and then runs the scheduler's due
tasks at that instant, so a run is reproducible from its seed and data.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa

from ttt import __version__
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.migrate import check_schema, upgrade
from ttt.adapters.db.repositories.audit import AuditRepository
from ttt.adapters.db.repositories.bars import BarRepository, SqlBarStore, StoredBar, stored_from_domain
from ttt.adapters.db.repositories.runs import SqlRunStore
from ttt.adapters.exchange.paper import PaperExchange
from ttt.adapters.exchange.paper_sql import AtomicPaperExchange, SqlPaperStore
from ttt.adapters.market.feed import PriceFeed, PricePublisher, read_price
from ttt.adapters.market.fetch import OhlcvFetcher
from ttt.adapters.market.hyperliquid_http import HyperliquidInfoClient
from ttt.clock import WallClock
from ttt.config import Settings
from ttt.errors import PreconditionError
from ttt.runtime.market import MarketChoice, SimulatedMarket, replay_source, synthetic_source
from ttt.runtime.ops_wiring import ops_tasks
from ttt.runtime.portfolio_wiring import build_portfolio_side, portfolio_tasks, startup_cycle
from ttt.runtime.scheduler import ScheduledTask, Scheduler
from ttt.services.gateway.bootstrap import paper_config_from_settings
from ttt.services.locking import LockBusy
from ttt.services.portfolio.read_model import ThrottledStatus, portfolio_status
from ttt.services.providence.dispatch import Dispatcher, DispatchSettings
from ttt.services.providence.inputs import BarVisibility
from ttt.services.providence.purge import purge_runs
from ttt.services.providence.shard import ShardSettings, ShardStepper
from ttt.services.providence.supervisor import SupervisorService, SupervisorSettings
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

INSTANCE_LOCK = "instance:embedded"
INSTANCE_LOCK_TTL_S = 30
INSTANCE_LOCK_EXTEND_S = 10


@dataclass
class RuntimeStatus:
    """What the live terminal status and /api/v1 show; updated by the driver thread."""

    started_at: float
    market: MarketChoice
    sim_time: float | None = None
    ticks: int = 0
    shard_steps: int = 0
    runs_created: int = 0
    cycles: int = 0
    ends: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)


class EmbeddedRuntime:
    def __init__(
        self,
        settings: Settings,
        market: MarketChoice,
        *,
        speed: float | None = None,
        replay_path: str | None = None,
        metrics: Metrics | None = None,
        host: str | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.config
        self.market = market
        self.metrics = metrics or Metrics.create()
        self.host = host or socket.gethostname()
        self.stop_event = threading.Event()
        self.status = RuntimeStatus(started_at=time.time(), market=market)
        self._instance_token: str | None = None
        self._last_extend = 0.0
        self._pending_shards: list[tuple[str, int, float]] = []
        symbols = list(self.cfg.universe.symbols)
        warmup = int(self.cfg.market_data.backfill_bars.get("1m", 1440))

        self.sim: SimulatedMarket | None = None
        if market.source == "synthetic":
            self.sim = synthetic_source(self.cfg.market_data, symbols, time.time(), warmup)
        elif market.source == "replay":
            path = replay_path or self.cfg.market_data.replay.path
            self.sim = replay_source(
                self.cfg.market_data,
                symbols,
                str(path),
                warmup,
                float(self.cfg.exchange.paper.default_funding_hourly),
            )
        self.speed = self._speed(speed)
        self.clock: Any = self.sim.clock if self.sim is not None else WallClock()

        self.engine = make_engine(settings.database_url(), echo=self.cfg.database.echo)
        if settings.auto_migrate:
            upgrade(self.engine)
        else:
            check_schema(self.engine)
        self.cache = MemoryCache(self.cfg.cache.prefix)
        self.locks = DbLockManager(self.engine)
        self.runs = SqlRunStore(self.engine)
        self.bars = SqlBarStore(self.engine)
        self.prices = PricePublisher(
            self.cache,
            self.clock,
            max_age_s=self.cfg.market_data.price.max_age_s,
            stream_maxlen=self.cfg.cache.streams.prices_maxlen,
            metrics=self.metrics,
        )
        self.paper_store = SqlPaperStore(self.engine, self.clock)
        paper = PaperExchange(
            paper_config_from_settings(settings),
            self.clock,
            store=self.paper_store,
            funding_rate=(lambda symbol, _t: self.sim.funding_hourly(symbol))
            if self.sim is not None
            else None,
        )
        # the paper account lives in the database: a restart keeps cash, positions, orders and fills
        self.exchange: Any = AtomicPaperExchange(paper, self.paper_store)
        self._last_bar_ms: dict[str, int] = {}
        self._build_providence(symbols)
        self.portfolio = build_portfolio_side(
            settings,
            engine=self.engine,
            cache=self.cache,
            locks=self.locks,
            clock=self.clock,
            exchange=self.exchange,
            metrics=self.metrics,
        )
        for task in portfolio_tasks(self.portfolio, settings, self.clock, self.engine):
            self.add_task(task)
        for task in ops_tasks(settings, self.engine, self.cache, self.locks, self.clock):
            self.add_task(task)
        self.status_panels = ThrottledStatus(
            lambda: portfolio_status(
                self.engine, symbols, self.clock.now(), take_profit=self.portfolio.take_profit.status
            )
        )
        self.feed: PriceFeed | None = None
        self.fetcher: OhlcvFetcher | None = None
        self._seen_price_ts: dict[str, float] = {}
        if market.source == "hyperliquid":
            self._build_live(symbols)

    def _speed(self, speed: float | None) -> float:
        if speed is not None:
            return float(speed)
        if self.market.source == "replay":
            return float(self.cfg.market_data.replay.speed)
        return float(self.cfg.market_data.synthetic.speed)

    # ------------------------------------------------------------------ wiring

    def _providence_section(self) -> dict[str, Any]:
        return self.cfg.providence.model_dump(mode="json")

    def _build_providence(self, symbols: list[str]) -> None:
        cfg = self.cfg
        periods = cfg.scheduler.periods
        prov = self._providence_section()
        seed = cfg.providence.seed
        rng = np.random.Generator(np.random.PCG64(seed))
        self.supervisor = SupervisorService(
            self.runs,
            self.locks,
            self.clock,
            lambda: SupervisorSettings(
                symbols=symbols, providence=prov, shard_size=cfg.providence.shard_size
            ),
            lambda: {s: p.max_leverage for s, p in self.exchange.products.items()},
            rng,
            host=self.host,
        )
        self.dispatcher = Dispatcher(
            self.runs,
            self.cache,
            self.bars,
            self.locks,
            self.clock,
            lambda: DispatchSettings(
                symbols=symbols,
                period_s=periods.providence_dispatch,
                spread=cfg.providence.dispatch_spread,
                price_max_age_s=cfg.market_data.price.max_age_s,
            ),
            lambda symbol, shard, t, _countdown: self._pending_shards.append((symbol, shard, t)),
            BarVisibility(completed_only=self.sim is not None),
        )
        self.stepper = ShardStepper(
            self.runs,
            self.cache,
            self.locks,
            lambda: ShardSettings(
                symbols=symbols,
                providence=prov,
                db_write_every_ticks=cfg.providence.db_write_every_ticks,
                base_every_ticks=cfg.providence.state_base_every_ticks,
                state_ttl_s=cfg.providence.state_ttl_s,
                shard_lock_ttl_s=cfg.providence.shard_lock_ttl_s,
                dispatch_period_s=periods.providence_dispatch,
            ),
            self.metrics,
        )
        self.scheduler = Scheduler(
            [
                ScheduledTask("ttt.providence.supervisor", periods.providence_supervisor, self._supervise),
                ScheduledTask(
                    "ttt.providence.dispatch", periods.providence_dispatch, self.dispatcher.dispatch
                ),
                ScheduledTask(
                    "ttt.providence.purge",
                    periods.providence_purge,
                    lambda: purge_runs(
                        self.runs, self.locks, self.clock, cfg.providence.purge_flagged_after_s
                    ),
                ),
            ],
            self.metrics,
        )

    def _build_live(self, symbols: list[str]) -> None:
        """Live public market data (§6.1, §6.3): the price feed thread and the bar-boundary OHLCV fetch."""
        cfg = self.cfg
        client = HyperliquidInfoClient.from_settings(cfg.exchange.hyperliquid)
        self.feed = PriceFeed.from_config(
            cfg, cache=self.cache, clock=self.clock, client=client, metrics=self.metrics, locks=self.locks
        )

        def write(bars: Any) -> None:
            rows = stored_from_domain(bars, "hyperliquid", self.clock.now())
            with sa.orm.Session(self.engine) as session, session.begin():
                BarRepository(session).upsert_bars(rows)

        def latest_open(symbol: str, timeframe: str) -> int | None:
            with sa.orm.Session(self.engine) as session:
                return BarRepository(session).latest_open(symbol, timeframe)

        self.fetcher = OhlcvFetcher(
            client=client,
            cache=self.cache,
            clock=self.clock,
            writer=write,
            latest_open=latest_open,
            lookback_bars=dict(cfg.market_data.lookback_bars),
            backfill_bars=dict(cfg.market_data.backfill_bars),
            concurrency=cfg.market_data.concurrency,
            metrics=self.metrics,
        )
        timeframes = list(cfg.market_data.timeframes)
        fetcher = self.fetcher
        self.add_task(
            ScheduledTask(
                "ttt.market_data.fetch",
                cfg.scheduler.periods.market_data_fetch,
                lambda: fetcher.run(symbols, timeframes),
            )
        )
        self._live_fetch = lambda: fetcher.run(symbols, timeframes, backfill=True)

    def _feed_paper_from_cache(self) -> None:
        """The paper venue trades on the live feed's prices: each new observation is a price event."""
        for symbol in self.cfg.universe.symbols:
            record = read_price(self.cache, symbol, self.clock.now(), self.cfg.market_data.price.max_age_s)
            if record is not None and record.ts > self._seen_price_ts.get(symbol, -math.inf):
                self._seen_price_ts[symbol] = record.ts
                self.exchange.on_price(symbol, Decimal(repr(record.price)))
        self.exchange.on_clock()

    def add_task(self, task: ScheduledTask) -> None:
        """Later services (account, reconciliation, take-profit) join the same schedule."""
        self.scheduler.tasks.append(task)

    def _supervise(self) -> list[int]:
        ids = self.supervisor.run()
        self.status.runs_created += len(ids)
        return ids

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        token = self.locks.acquire(INSTANCE_LOCK, INSTANCE_LOCK_TTL_S)
        if token is None:
            raise PreconditionError(
                "another `3t run` holds the instance:embedded lock (one embedded process per database)"
            )
        self._instance_token = token
        self._last_extend = time.monotonic()
        with sa.orm.Session(self.engine) as session, session.begin():
            AuditRepository(session).append(
                ts=time.time(),
                kind="config.loaded",
                actor=f"run@{self.host}",
                severity="info",
                message=self.market.banner(),
                payload={
                    "config_sha256": self.settings.config_hash(),
                    "version": __version__,
                    "mode": "embedded",
                    "market_source": self.market.source,
                    "market_reason": self.market.reason,
                },
            )
        if self.sim is not None:
            self._store_bars(initial=True)
            self._publish_prices()
        if self.feed is not None:
            self.feed.start()
            outcome = self.scheduler.run_task(ScheduledTask("ttt.market_data.fetch", 1.0, self._live_fetch))
            self.status.tasks["ttt.market_data.fetch(backfill)"] = outcome.result
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not self._seen_any_price():
                time.sleep(0.1)
            self._feed_paper_from_cache()
        # §2.2 startup one-offs: products (synced when wired), balance, supervisor, the startup cycle
        for name, work in (
            ("ttt.account.update_balance", self.portfolio.ingestion.run),
            ("ttt.observer.poll", self.portfolio.observer.poll_once),
            ("ttt.providence.supervisor", self._supervise),
            ("ttt.portfolio.reconcile", lambda: startup_cycle(self.portfolio, self.clock)),
        ):
            outcome = self.scheduler.run_task(ScheduledTask(name, 1.0, work))
            self.status.tasks[name] = outcome.result

    def _seen_any_price(self) -> bool:
        now = self.clock.now()
        return any(
            read_price(self.cache, s, now, self.cfg.market_data.price.max_age_s) is not None
            for s in self.cfg.universe.symbols
        )

    def shutdown(self) -> None:
        self.stop_event.set()
        if self.feed is not None:
            self.feed.stop()
        try:
            written = sum(
                self.stepper.flush(symbol, shard)
                for symbol, shards in self.runs.shards_with_members().items()
                for shard in shards
            )
            log.info("flushed %d run states to the database", written)
        except Exception:
            log.exception("flushing run states failed; a restart cold-loads older database copies")
        if self._instance_token:
            try:
                self.locks.release(INSTANCE_LOCK, self._instance_token)
            except Exception:
                log.warning("could not release %s; it expires in %d s", INSTANCE_LOCK, INSTANCE_LOCK_TTL_S)
            self._instance_token = None
        self.engine.dispose()

    def _keep_instance_lock(self) -> None:
        if self._instance_token and time.monotonic() - self._last_extend >= INSTANCE_LOCK_EXTEND_S:
            if not self.locks.extend(INSTANCE_LOCK, self._instance_token, INSTANCE_LOCK_TTL_S):
                log.critical("lost the instance:embedded lock; stopping")
                self.stop_event.set()
            self._last_extend = time.monotonic()

    # ------------------------------------------------------------------ the simulated market driver

    def _store_bars(self, initial: bool = False) -> None:
        assert self.sim is not None
        rows: list[StoredBar] = []
        fetched = _utc(self.clock.now())
        for symbol in self.sim.symbols:
            series = self.sim.visible_bars(symbol)
            last = self._last_bar_ms.get(symbol, -1)
            start = int(np.searchsorted(series.ts_ms, last, side="right"))
            for i in range(start, len(series.ts_ms)):
                rows.append(
                    StoredBar(
                        symbol=symbol,
                        timeframe="1m",
                        ts_open=int(series.ts_ms[i]),
                        open=Decimal(repr(float(series.open[i]))),
                        high=Decimal(repr(float(series.high[i]))),
                        low=Decimal(repr(float(series.low[i]))),
                        close=Decimal(repr(float(series.close[i]))),
                        volume=Decimal(repr(float(series.volume[i]))),
                        source=self.market.source,
                        is_final=True,
                        fetched_at=fetched,
                    )
                )
            if len(series.ts_ms):
                self._last_bar_ms[symbol] = int(series.ts_ms[-1])
        if rows:
            with sa.orm.Session(self.engine) as session, session.begin():
                BarRepository(session).upsert_bars(rows)
        if initial:
            log.info("stored %d warm-up bars", len(rows))

    def _publish_prices(self) -> None:
        assert self.sim is not None
        for event in self.sim.prices():
            self.prices.publish(event.symbol, event.price, event.ts, event.source)
            self.exchange.on_price(event.symbol, Decimal(repr(event.price)))
        self.exchange.on_clock()

    def step_simulated(self, t: float) -> None:
        """Advance the market to t and run everything due at t."""
        assert self.sim is not None
        self.sim.advance_to(t)
        self._publish_prices()
        if t % 60 < self.sim.tick_s:
            self._store_bars()
        self.run_due(t)
        self.status.sim_time = t
        self.status.ticks += 1

    def run_due(self, now: float) -> None:
        for outcome in self.scheduler.run_due(now):
            self.status.tasks[outcome.name] = outcome.result
        shards, self._pending_shards = self._pending_shards, []
        for symbol, shard, t in shards:
            try:
                report = self.stepper.step(symbol, shard, t)
            except LockBusy:
                continue
            except Exception as exc:
                log.exception("shard %s:%d failed", symbol, shard)
                self.status.last_error = f"shard {symbol}:{shard}: {exc}"
                continue
            self.status.shard_steps += 1
            for reason, n in report.ends.items():
                self.status.ends[reason] = self.status.ends.get(reason, 0) + n
        try:
            self.portfolio.run_pending_cycles()
        except Exception as exc:
            log.exception("forced reconciliation cycle failed")
            self.status.last_error = f"forced cycle: {exc}"
        self.status.cycles = self.portfolio.cycles_run

    def run_forever(self, on_tick: Callable[[], None] | None = None) -> None:
        if self.sim is None:
            self._run_wall(on_tick)
            return
        tick_s = self.sim.tick_s
        sim_start = self.clock.now()
        wall_start = time.monotonic()
        t = sim_start
        while not self.stop_event.is_set():
            t = t + tick_s
            if self.speed > 0:
                delay = wall_start + (t - sim_start) / self.speed - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
            end = getattr(self.sim, "end_s", None)
            if end is not None and t > end:
                log.info("replay reached its end at %s", _utc(end).isoformat())
                break
            self.step_simulated(t)
            self._keep_instance_lock()
            if on_tick:
                on_tick()

    def _run_wall(self, on_tick: Callable[[], None] | None) -> None:
        while not self.stop_event.is_set():
            now = self.clock.now()
            if self.feed is not None:
                self._feed_paper_from_cache()
                self.status.ticks += 1
            self.run_due(now)
            self._keep_instance_lock()
            if on_tick:
                on_tick()
            wait = max(0.0, min(0.5, self.scheduler.next_due_at(now) - self.clock.now()))
            self.stop_event.wait(wait)


def _utc(t: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC)


def status_snapshot(rt: EmbeddedRuntime, *, fresh: bool = False) -> dict[str, Any]:
    """The live status: the driver's counters plus the database panels (runs by state, desired vs actual
    per symbol, orders, account, take-profit, fills). The panels are re-read at most every 2 s unless
    `fresh` (the final summary); a panel that cannot be read says so instead of raising."""
    s = rt.status
    panels = getattr(rt, "status_panels", None)
    return {
        "market": {"source": s.market.source, "reason": s.market.reason, "exchange": "paper"},
        "sim_time": s.sim_time,
        "ticks": s.ticks,
        "shard_steps": s.shard_steps,
        "runs_created": s.runs_created,
        "cycles": s.cycles,
        "ends": dict(s.ends),
        "tasks": dict(s.tasks),
        "pid": os.getpid(),
        "uptime_s": math.floor(time.time() - s.started_at),
        "last_error": s.last_error,
        "version": __version__,
        **(panels.get(fresh=fresh) if panels is not None else {}),
    }
