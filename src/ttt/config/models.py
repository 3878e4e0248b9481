"""Schema of `config.yml` and `secrets.yml` (services.md §11.2, §11.3).

Every key, its default and a one-line description live here and nowhere else: the loader, the
validation messages and the `3t config init` template are all derived from these models, so they cannot
drift apart. Models are strict (a YAML string is not silently read as a number) and forbid unknown keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from ttt.config.urls import redact_url

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _to_utc_datetime(value: Any) -> Any:
    """Accept the forms users write for a replay bound: ISO text, a YAML date, or epoch s / ms."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO-8601 time, a date, or epoch seconds/milliseconds") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


UtcTime = Annotated[datetime, BeforeValidator(_to_utc_datetime)]


def _empty_secret_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and value == "" else value


Secret = Annotated[SecretStr | None, BeforeValidator(_empty_secret_is_unset)]


def f(default: Any, description: str, **constraints: Any) -> Any:
    """A field with its default and the one-line comment written by `3t config init`."""
    return Field(default, description=description, **constraints)


def section(model: type[BaseModel], description: str) -> Any:
    return Field(default_factory=model, description=description)


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, frozen=True, validate_default=True
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A password typed into a URL must not leak through a repr in a log line or traceback.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) and "@" in value else value


# --------------------------------------------------------------------------------------------- config


class Universe(Section):
    symbols: list[str] = f(
        ["BTC/USDC:USDC", "ETH/USDC:USDC"], "master list of perp symbols BASE/QUOTE:SETTLE, ordered, unique"
    )


class Embedded(Section):
    workers: NonNegInt = f(0, "worker threads of `3t run`; 0 = CPU count (min 2)")
    serve_gateway_http: bool = f(False, "also serve the order gateway over HTTP in `3t run`")
    serve_observer_http: bool = f(False, "also serve the observer document over HTTP in `3t run`")


class Database(Section):
    url: str = f(
        "sqlite:///var/ttt.sqlite", "SQLAlchemy URL; the password comes from secrets.database.password"
    )
    pool_size: PosInt = f(10, "connection pool size (MariaDB/PostgreSQL)")
    pool_recycle_s: PosInt = f(1800, "recycle pooled connections after this many seconds")
    auto_migrate: bool | None = f(
        None, "upgrade the schema at start; null = true in embedded, false in distributed"
    )
    echo: bool = f(False, "log every SQL statement")


class Streams(Section):
    prices_maxlen: PosInt = f(10000, "approximate max length of ttt:stream:prices")
    balance_maxlen: PosInt = f(10000, "approximate max length of ttt:stream:balance")
    orders_maxlen: PosInt = f(10000, "approximate max length of ttt:stream:orders")
    events_maxlen: PosInt = f(10000, "approximate max length of ttt:stream:events")


class Cache(Section):
    backend: Literal["memory", "redis"] | None = f(
        None, "memory | redis; null = memory in embedded, redis in distributed"
    )
    redis_url: str = f(
        "redis://localhost:6379/0", "Redis URL of the state cache; password from secrets.redis"
    )
    prefix: str = f("ttt:", "prefix of every cache key")
    allow_allkeys_eviction: bool = f(False, "accept a Redis maxmemory-policy that may evict any key")
    streams: Streams = section(Streams, "stream length caps")


class Celery(Section):
    broker_url: str = f("redis://localhost:6379/1", "Celery broker URL; password from secrets.redis")
    pool: Literal["prefork", "threads"] = f("prefork", "worker pool: prefork | threads")
    concurrency: NonNegInt = f(0, "worker processes/threads; 0 = CPU count")
    task_soft_time_limit_factor: Fraction = f(0.8, "soft time limit as a fraction of the task's period")
    visibility_timeout_s: PosInt = f(3600, "broker visibility timeout")


class Periods(Section):
    providence_supervisor: PosInt = f(300, "population top-up period (s)")
    providence_dispatch: PosInt = f(5, "Providence tick period Δ (s); decisions depend on it")
    providence_purge: PosInt = f(900, "purge of flagged runs (s)")
    market_data_fetch: PosInt = f(30, "OHLCV fetch period (s)")
    market_data_retention: PosInt = f(3600, "market data retention period (s)")
    balance_update: PosInt = f(15, "account snapshot period (s)")
    reconcile: PosInt = f(600, "reconciliation cycle period (s)")
    take_profit: PosInt = f(5, "take-profit evaluation period (s)")
    products_sync: PosInt = f(3600, "product metadata sync period (s)")
    collect_metrics: PosInt = f(15, "DB-derived metrics period (s)")
    retention: PosInt = f(86400, "table retention period (s)")
    control: PosInt = f(1, "S1 only: pick-up period of CLI requests (s)")


class Scheduler(Section):
    periods: Periods = section(Periods, "periods of the periodic tasks, in seconds")


class AnnParams(Section):
    max_duration: list[int] = f([300, 15778800], "[min, max] run duration (s)")
    reversal_divisor: list[int] = f([1, 9], "[min, max] divisor of max_duration for max reversals")
    balance_divisor: PosFloat = f(5, "divisor of max_cross_margin_ratio and apr_target")
    pos_scaler: list[float] = f([1.618, 3.236], "[min, max] position scaler before its divisor")
    pos_scaler_divisor: PosFloat = f(1000, "divisor of pos_scaler")
    apr_target: list[int] = f([20, 100], "[min, max] APR target before its divisors")
    apr_target_divisor: PosFloat = f(1.618, "second divisor of apr_target")
    min_goal: list[int] = f([1, 9], "[min, max] minimum goal, in tenths")
    max_goal: list[int] = f([1, 10], "[min, max] maximum goal")
    min_goal_weight: list[int] = f([1, 38], "[min, max] minimum goal weight before its divisor")
    max_goal_weight: list[int] = f([69, 200], "[min, max] maximum goal weight before its divisor")
    goal_weight_divisor: PosFloat = f(10000, "divisor of the goal weights")
    entropy_window_minutes: list[int] = f([1, 15], "[min, max] entropy window W (minutes)")
    entropy_window_samples: list[int] = f([5, 20], "[min, max] entropy samples S (min >= 2)")
    machine_vision_entropy_max: list[int] = f([5, 15], "[min, max] entropy ceiling Hmax before its divisor")
    machine_vision_entropy_divisor: PosFloat = f(100, "divisor of machine_vision_entropy_max")
    rolling_apr_minutes: list[int] = f([1, 30], "[min, max] rolling APR window R (minutes)")
    max_cross_margin_ratio: float = f(0.05, "cross margin ratio before balance_divisor (0-1)", ge=0, le=1)
    pos_weight: PosFloat = f(0.032732855219630354, "position weight before its divisor")
    pos_weight_divisor: PosFloat = f(3, "divisor of pos_weight")


class Providence(Section):
    desired_run_count: NonNegInt = f(100, "target number of active runs")
    virtual_balance: PosFloat = f(7000, "starting virtual balance of a random run (USD)")
    max_margin_allocation_threshold: PosFloat = f(45, "T in run count / leverage <= T")
    max_position_direction: int = f(1024, "cap on same-direction position steps (>= 1)", ge=1)
    seed: NonNegInt | None = f(None, "supervisor generator seed; null = OS entropy")
    db_write_every_ticks: PosInt = f(50, "N: write run state every N ticks (alias mysql_update_frequency)")
    state_ttl_s: PosInt = f(86400, "TTL of each shard's cached state (s)")
    state_base_every_ticks: PosInt = f(
        12, "ticks between full snapshots of a shard's cached state; a journal covers the ticks between"
    )
    shard_size: PosInt = f(2000, "max active runs per shard")
    shard_lock_ttl_s: PosInt = f(15, "shard lock TTL (s)")
    dispatch_spread: Fraction = f(0.8, "fraction of the dispatch period over which shard tasks are spread")
    purge_flagged_after_s: PosInt = f(3600, "purge flagged runs older than this (s)")
    use_apex_survivors: bool = f(False, "seed new runs from apex survivor files")
    apex_survivors_dir: str = f("providence", "directory of apex_survivors_*.json")
    ann_params: AnnParams = section(AnnParams, "run parameter search space: [min, max] ranges and divisors")


class Kelly(Section):
    threshold: NonNegFloat = f(0.5, "Kelly threshold τ")
    probationary_multiplier: Fraction = f(0.25, "size multiplier while on probation π")
    min_samples: PosInt = f(10, "minimum completed runs for Kelly metrics")


class Quorum(Section):
    k: int = f(2, "readings that must agree; 1 <= k <= number of sources", ge=1)
    local_max_age_s: PosInt = f(60, "max age of the local account snapshot (s)")
    observers: list[str] = f([], "http(s) URLs of remote /3T-observer.json documents")
    embedded_observer: bool | None = f(
        None, "count the in-process observer; null = true in embedded, false in distributed"
    )
    observer_max_age_s: PosInt = f(120, "max age of an observer reading (s)")
    observer_timeout_s: PosFloat = f(5, "HTTP timeout for observers (s)")
    future_skew_s: NonNegFloat = f(5, "tolerated clock skew of observer readings (s)")


class PortfolioGateway(Section):
    url: str | None = f(
        None, 'gateway URL or "embedded"; null = embedded in embedded, http://127.0.0.1:8002 in distributed'
    )
    timeout_s: PosFloat = f(30, "HTTP timeout towards the gateway (s)")


class Portfolio(Section):
    live_pnl_threshold: NonNegFloat = f(0.2, "minimum live PnL of a run to count (virtual USD)")
    run_freshness_s: PosInt = f(600, "a run not written for this long is ignored (s)")
    providence_max_silence_s: PosInt = f(600, "hold when Providence wrote nothing for this long (s)")
    risk_pos_percentage: Fraction = f(0.000003, "sizing factor (reference example, not advice)")
    kelly: Kelly = section(Kelly, "Kelly sizing")
    invert_decisions: bool = f(False, "trade against the population")
    can_go_long: bool = f(True, "allow long positions")
    can_go_short: bool = f(True, "allow short positions")
    max_margin_usage_percentage: Fraction = f(0.5, "max share of account value used as margin")
    margin_cap_multiplier: PosFloat = f(1.0, "multiplier of the per-symbol margin caps")
    minimum_trade_threshold_usd: NonNegFloat = f(12.5, "smallest order notional (USD); exchange minimum 10")
    balance_max_age_s: PosInt = f(120, "hold when the balance is older than this (s)")
    price_max_age_s: PosInt = f(180, "hold when the price is older than this (s)")
    cycle_lock_ttl_s: PosInt = f(600, "reconciliation cycle lock TTL (s)")
    busy_retry_s: PosInt = f(30, "retry delay when a cycle is already running (s)")
    quorum: Quorum = section(Quorum, "k-of-n quorum on actual positions")
    gateway: PortfolioGateway = section(PortfolioGateway, "how the engine reaches the order gateway")


class Orders(Section):
    style: Literal["post_only", "ioc"] = f("post_only", "post_only | ioc")
    ioc_max_slippage_bps: PosFloat = f(50, "IOC limit distance from the price (bps)")
    ioc_max_slippage_bps_limit: PosFloat = f(500, "hard ceiling of the IOC slippage (bps)")
    client_id_prefix: str = f("74747401", "exactly 8 lower-case hex characters, quoted")


class Gateway(Section):
    bind: str = f("127.0.0.1", "listen address of `3t gateway`")
    port: Port = f(8002, "listen port of `3t gateway`")
    max_body_bytes: PosInt = f(16384, "largest accepted request body")
    max_price_age_s: PosFloat = f(10, "reject orders when the price is older than this (s)")
    max_price_deviation: Fraction = f(0.05, "reject limit prices further than this from the price")
    max_order_notional_usd: PosFloat | None = f(None, "cap on one order's notional (USD); null = no cap")
    duplicate_wait_s: NonNegFloat = f(5, "wait for an in-flight duplicate before answering (s)")
    resolver_period_s: PosFloat = f(10, "period of the unknown-outcome resolver (s)")
    fills_period_s: PosFloat = f(30, "period of the fills poller (s)")
    unknown_resolve_schedule_s: list[NonNegFloat] = f(
        [1, 2, 4, 8, 15], "delays of the status queries after an unknown outcome (s)"
    )
    unknown_grace_s: PosFloat = f(30, "grace before an unresolved order is reported (s)")


class Observer(Section):
    id: str = f("local-observer-1", "observer id in its document")
    bind: str = f("127.0.0.1", "listen address of `3t observer`")
    port: Port = f(8001, "listen port of `3t observer`")
    wallets: list[str] = f(
        [], "public addresses to observe; the embedded observer adds the configured wallet"
    )
    poll_interval_s: PosFloat = f(30, "exchange poll period (s)")
    hip3_dexes: list[str] | None = f(None, "HIP-3 dexes to poll; null = exchange.hyperliquid.hip3_dexes")
    persist_path: str = f("var/3T-observer.json", "where the last document is saved")
    timeout_s: PosFloat = f(15, "exchange HTTP timeout (s)")


class TakeProfit(Section):
    enabled: bool = f(True, "evaluate take-profit epochs")
    threshold: PosFloat = f(1.0, "gain threshold")
    reward_multiple: PosFloat = f(5.0, "reward multiple")
    median_window: PosInt = f(5, "readings in the median (odd)")
    max_reading_age_s: PosFloat = f(300, "ignore readings older than this (s)")
    cooldown_s: NonNegFloat = f(720, "quiet time after an epoch (s)")
    forced_cycle_delays_s: list[NonNegFloat] = f(
        [0, 120, 360], "delays of the forced cycles after an epoch (s)"
    )
    forced_cycle_max_lateness_s: PosFloat = f(600, "skip a forced cycle later than this (s)")


class TradingHours(Section):
    calendar: Literal["always_open", "reference_rest"] = f("always_open", "always_open | reference_rest")
    timezone: str = f("Europe/Vatican", "time zone of the reference_rest calendar")
    fallback_timezone: str = f("Europe/Rome", "used when timezone is unknown to the tz database")
    friday_close_hour: int = f(23, "local hour the market closes on Friday (0-24)", ge=0, le=24)


class CircuitBreaker(Section):
    failures: PosInt = f(5, "consecutive failures that open the breaker")
    reset_s: PosFloat = f(60, "time before a half-open retry (s)")


class Hyperliquid(Section):
    network: Literal["mainnet", "testnet", "custom"] = f("mainnet", "mainnet | testnet | custom")
    base_url: str | None = f(None, "API base URL; required when network = custom")
    ws_url: str | None = f(None, "websocket URL; needed for websocket prices when network = custom")
    proxies: list[str] = f([], "URL prefixes (a list, never a string)")
    origin: str | None = f(None, "Origin header sent through proxies; required when proxies is non-empty")
    timeout_s: PosFloat = f(10, "HTTP timeout (s)")
    rate_limit_ms: NonNegInt = f(100, "minimum spacing of requests (ms)")
    hip3_dexes: list[str] = f([], "builder-deployed (HIP-3) dexes to include")
    vault_address: str | None = f(None, "trade for this vault (0x + 40 hex)")
    user_dex_abstraction: bool = f(False, "account uses dex abstraction")
    circuit_breaker: CircuitBreaker = section(CircuitBreaker, "client circuit breaker")
    read_retries: NonNegInt = f(3, "retries of a failed read")


class Product(Section):
    sz_decimals: NonNegInt = f(0, "size decimals (lot = 10^-sz_decimals)")
    max_leverage: PosInt = f(1, "maximum leverage")
    margin_mode: Literal["cross", "isolated"] = f("cross", "cross | isolated")


def _default_products() -> dict[str, Product]:
    return {
        "BTC/USDC:USDC": Product(sz_decimals=5, max_leverage=40, margin_mode="cross"),
        "ETH/USDC:USDC": Product(sz_decimals=4, max_leverage=25, margin_mode="cross"),
        "SOL/USDC:USDC": Product(sz_decimals=2, max_leverage=20, margin_mode="cross"),
        "HYPE/USDC:USDC": Product(sz_decimals=2, max_leverage=10, margin_mode="cross"),
    }


class Paper(Section):
    wallet: str = f("0x0000000000000000000000000000000000000001", "address of the paper account")
    initial_balance_usd: PosFloat = f(10000, "starting cash (USD)")
    maker_fee: float = f(0.00015, "maker fee rate")
    taker_fee: float = f(0.00045, "taker fee rate")
    slippage_bps: NonNegFloat = f(2, "taker slippage (bps)")
    half_spread_bps: NonNegFloat = f(1, "simulated half spread (bps)")
    maker_fill_rule: Literal["through", "touch"] = f("through", "through | touch")
    leverage: PosInt = f(10, "leverage of paper positions")
    default_funding_hourly: float = f(0.0000125, "hourly funding rate when the source has none")
    products: dict[str, Product] = Field(
        default_factory=_default_products, description="product metadata per symbol"
    )


class Exchange(Section):
    kind: Literal["paper", "hyperliquid"] = f("paper", "paper | hyperliquid")
    allow_mainnet_orders: bool = f(False, "must be true to place real orders on mainnet")
    hyperliquid: Hyperliquid = section(
        Hyperliquid, "every Hyperliquid client (orders, reads, feed, observer)"
    )
    paper: Paper = section(Paper, "in-process paper exchange")


class Price(Section):
    mode: Literal["auto", "websocket", "polling"] = f("auto", "auto | websocket | polling")
    poll_interval_s: PosFloat = f(1.0, "polling period (s)")
    ws_stale_s: PosFloat = f(60, "reconnect the websocket after this silence (s)")
    ws_gap_poll_s: PosFloat = f(15, "websocket gap fill-in period (s)")
    max_age_s: PosFloat = f(60, "price staleness bound (s)")


class Replay(Section):
    path: str | None = f(None, "file or directory of freqtrade-style bar files")
    format: Literal["auto", "feather", "csv", "parquet"] = f("auto", "auto | feather | csv | parquet")
    start: UtcTime | None = f(None, "simulated start (ISO-8601, UTC); null = first common bar")
    end: UtcTime | None = f(None, "simulated end; null = last bar")
    tick_s: PosInt = f(5, "simulated clock step (s)")
    speed: NonNegFloat = f(1, "1 = real time; N = N times faster; 0 = as fast as possible")


class Synthetic(Section):
    seed: NonNegInt = f(42, "generator seed")
    speed: NonNegFloat = f(1, "1 = real time; N = N times faster; 0 = as fast as possible")
    funding_hourly: float = f(0.0000125, "constant hourly funding rate")
    start_price: dict[str, PosFloat] = f(
        {
            "BTC/USDC:USDC": 100000,
            "ETH/USDC:USDC": 3000,
            "SOL/USDC:USDC": 150,
            "HYPE/USDC:USDC": 30,
            "default": 100,
        },
        "starting price per symbol, or default",
    )
    annual_vol: dict[str, NonNegFloat] = f({"default": 0.8}, "annualised volatility per symbol, or default")
    annual_drift: dict[str, float] = f({"default": 0.0}, "annualised drift per symbol, or default")


class MarketData(Section):
    source: Literal["auto", "hyperliquid", "replay", "synthetic"] = f(
        "auto", "auto | hyperliquid | replay | synthetic"
    )
    timeframes: list[str] = f(["1m", "4h"], 'bar timeframes fetched; must include "1m"')
    lookback_bars: dict[str, PosInt] = f({"1m": 20, "4h": 50, "default": 20}, "bars per fetch, per timeframe")
    backfill_bars: dict[str, PosInt] = f(
        {"1m": 1440, "4h": 200, "default": 200}, "bars fetched to fill gaps, per timeframe"
    )
    concurrency: PosInt = f(4, "parallel fetch jobs")
    retention_days: dict[str, NonNegInt] = f({"1m": 7, "default": 400}, "days of bars kept per timeframe")
    price: Price = section(Price, "live price feed")
    replay: Replay = section(Replay, "replay source")
    synthetic: Synthetic = section(Synthetic, "synthetic source")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class Alerts(Section):
    webhook_url: str | None = f(None, "POST alerts to this URL")
    min_interval_s: NonNegFloat = f(300, "rate limit per alert kind (s)")


class Observability(Section):
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = f("INFO", "DEBUG | INFO | WARNING | ERROR | CRITICAL")
    log_format: Literal["json", "text"] | None = f(
        None, "json | text; null = text in embedded, json in distributed"
    )
    metrics_port: Port | None = f(None, "Prometheus port; null = per-process default")
    metrics_bind: str = f("127.0.0.1", "listen address of the metrics port (worker, beat, feed)")
    otlp_endpoint: str | None = f(None, "OTLP/HTTP traces endpoint")
    sampling_rate: float = f(0.01, "share of noisy traces and logs kept (0-1)", ge=0, le=1)
    alerts: Alerts = section(Alerts, "alert webhook")


class Dashboard(Section):
    bind: str = f("127.0.0.1", "listen address")
    port: Port = f(8080, "listen port")
    refresh_s: PosFloat = f(5, "page refresh period (s)")


class Backtest(Section):
    seed: NonNegInt = f(1, "seed of the backtest")
    equity_step_s: PosInt = f(60, "equity curve sampling step (s)")
    baselines: list[Literal["buy_and_hold", "random_vote"]] = f(
        ["buy_and_hold", "random_vote"], "baselines computed on the same data"
    )


class SimExchange(Section):
    bind: str = f("127.0.0.1", "listen address")
    port: Port = f(3001, "listen port")
    network: Literal["mainnet", "testnet"] = f("mainnet", "phantom-agent source expected in signatures")
    verify_signatures: bool = f(True, "reject badly signed actions")
    strict_forbidden_actions: bool = f(False, "reject forbidden actions instead of counting them")
    rate_limit_weight_per_min: PosInt = f(1200, "request weight allowed per minute")


class Retention(Section):
    positions_days: NonNegInt = f(14, "position snapshots kept (days; 0 = forever)")
    balance_history_days: NonNegInt = f(0, "balance history kept (days; 0 = forever)")
    reconciliation_days: NonNegInt = f(180, "reconciliation cycles kept (days; 0 = forever)")
    orders_days: NonNegInt = f(0, "orders kept (days; 0 = forever)")


class Audit(Section):
    retention_days: NonNegInt = f(0, "audit rows kept (days; 0 = forever)")


class Config(Section):
    """The whole of `config.yml`."""

    mode: Literal["embedded", "distributed"] = f("embedded", "embedded | distributed")
    instance_id: str = f("ttt-1", "label on audit rows and heartbeats", min_length=1)
    shutdown_grace_s: PosInt = f(30, "time given to running tasks on shutdown (s)")
    universe: Universe = section(Universe, "symbols traded")
    embedded: Embedded = section(Embedded, "`3t run` (mode embedded)")
    database: Database = section(Database, "the Store")
    cache: Cache = section(Cache, "the state cache")
    celery: Celery = section(Celery, "Celery (mode distributed)")
    scheduler: Scheduler = section(Scheduler, "periodic tasks")
    providence: Providence = section(Providence, "run engine (providence.md)")
    portfolio: Portfolio = section(Portfolio, "reconciliation and sizing (portfolio.md)")
    orders: Orders = section(Orders, "order placement")
    gateway: Gateway = section(Gateway, "order gateway server")
    observer: Observer = section(Observer, "exchange observer")
    take_profit: TakeProfit = section(TakeProfit, "take-profit epochs")
    trading_hours: TradingHours = section(TradingHours, "trading calendar")
    exchange: Exchange = section(Exchange, "where orders go")
    market_data: MarketData = section(MarketData, "bars and prices")
    observability: Observability = section(Observability, "logs, metrics, traces, alerts")
    dashboard: Dashboard = section(Dashboard, "web dashboard")
    backtest: Backtest = section(Backtest, "`3t backtest`")
    sim_exchange: SimExchange = section(SimExchange, "`3t sim-exchange`")
    retention: Retention = section(Retention, "table retention")
    audit: Audit = section(Audit, "audit log")


# -------------------------------------------------------------------------------------------- secrets


class DatabaseSecrets(Section):
    password: Secret = f(None, "merged into database.url when the URL has no password")


class RedisSecrets(Section):
    password: Secret = f(None, "for cache.redis_url and celery.broker_url")


class HyperliquidSecrets(Section):
    wallet_address: Secret = f(None, "master account address (0x + 40 hex); reads and observer")
    private_key: Secret = f(None, "API-wallet (agent) or master key; needed only by the gateway")


class ExchangesSecrets(Section):
    hyperliquid: HyperliquidSecrets = section(HyperliquidSecrets, "Hyperliquid credentials")


class GatewaySecrets(Section):
    token: Secret = f(None, "bearer token, >= 32 characters; required when the gateway serves HTTP")


class DashboardSecrets(Section):
    token: Secret = f(None, "optional; enables dashboard auth")


class ObservabilitySecrets(Section):
    otlp_headers: dict[str, SecretStr] = f({}, 'headers of OTLP exports, e.g. {Authorization: "Bearer …"}')


class AlertsSecrets(Section):
    webhook_token: Secret = f(None, "sent as Authorization: Bearer on webhook POSTs")


class Secrets(Section):
    """The whole of `secrets.yml`. Values are SecretStr so they never print by accident."""

    database: DatabaseSecrets = section(DatabaseSecrets, "database credentials")
    redis: RedisSecrets = section(RedisSecrets, "Redis credentials")
    exchanges: ExchangesSecrets = section(ExchangesSecrets, "exchange credentials")
    gateway: GatewaySecrets = section(GatewaySecrets, "order gateway")
    dashboard: DashboardSecrets = section(DashboardSecrets, "dashboard")
    observability: ObservabilitySecrets = section(ObservabilitySecrets, "telemetry export")
    alerts: AlertsSecrets = section(AlertsSecrets, "alert webhook")
