"""Rules beyond types and ranges (services.md §11.4, providence.md §2.3).

Each rule appends a message naming the dotted key, its value, the rule and where the value came from.
Secret values are never shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ttt.config import resolved
from ttt.config.models import Config, Secrets
from ttt.config.urls import is_http_url, redact_url

Key = tuple[str | int, ...]

SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9]+:[A-Za-z0-9]+$")
CLIENT_ID_PREFIX_RE = re.compile(r"^[0-9a-f]{8}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
PRIVATE_KEY_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# Hyperliquid candle intervals.
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")
DEFAULT_KEY = "default"
MIN_EXCHANGE_NOTIONAL_USD = 10.0
GATEWAY_TOKEN_MIN = 32
REPLAY_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "auto": ("feather", "parquet", "csv"),
    "feather": ("feather",),
    "csv": ("csv",),
    "parquet": ("parquet",),
}

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render_key(path: Sequence[str | int]) -> str:
    """`exchange.paper.products["BTC/USDC:USDC"].sz_decimals`, `universe.symbols[1]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT_RE.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def show(value: Any, limit: int = 120) -> str:
    """A value as the user would write it (JSON-like), shortened."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def replay_file_name(symbol: str, timeframe: str, ext: str) -> str:
    """freqtrade naming: `BTC/USDC:USDC` → `BTC_USDC_USDC-1m-futures.feather`."""
    base, _, rest = symbol.partition("/")
    quote, _, settle = rest.partition(":")
    return f"{base}_{quote}_{settle}-{timeframe}-futures.{ext}"


def timezone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@dataclass
class Checker:
    config: Config
    secrets: Secrets | None
    process: str
    where: Callable[[Key], str]
    secrets_note: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, path: Key, value: Any, rule: str, *, secret: bool = False) -> None:
        shown = "***" if secret and value is not None else show(value)
        self.problems.append(f"{render_key(path)} = {shown}: {rule}{self.where(path)}")

    def missing(self, path: Key, rule: str) -> None:
        self.problems.append(f"{render_key(path)} is not set: {rule}{self.secrets_note}")

    def warn(self, path: Key, value: Any, text: str) -> None:
        self.warnings.append(f"{render_key(path)} = {show(value)}: {text}{self.where(path)}")

    def run(self) -> tuple[list[str], list[str]]:
        self._universe()
        self._orders()
        self._quorum()
        self._persistence_cadence()
        self._take_profit()
        self._hyperliquid()
        self._secrets()
        self._mode()
        self._trading_hours()
        self._paper()
        self._market_data()
        self._replay()
        self._providence()
        self._urls()
        self._portfolio_warnings()
        return self.problems, self.warnings

    # ------------------------------------------------------------------------------------------ rules

    def _universe(self) -> None:
        symbols = self.config.universe.symbols
        path = ("universe", "symbols")
        if not symbols:
            self.problem(path, symbols, "must list at least one symbol")
        seen: set[str] = set()
        for i, symbol in enumerate(symbols):
            if not SYMBOL_RE.match(symbol):
                self.problem(
                    (*path, i), symbol, "must be a perp symbol BASE/QUOTE:SETTLE, e.g. BTC/USDC:USDC"
                )
            if symbol in seen:
                self.problem((*path, i), symbol, "duplicate symbol; each symbol must appear once")
            seen.add(symbol)

    def _orders(self) -> None:
        orders = self.config.orders
        if not CLIENT_ID_PREFIX_RE.match(orders.client_id_prefix):
            self.problem(
                ("orders", "client_id_prefix"),
                orders.client_id_prefix,
                "must be exactly 8 lower-case hex characters",
            )
        if orders.ioc_max_slippage_bps > orders.ioc_max_slippage_bps_limit:
            self.problem(
                ("orders", "ioc_max_slippage_bps"),
                orders.ioc_max_slippage_bps,
                "must not exceed orders.ioc_max_slippage_bps_limit "
                f"({show(orders.ioc_max_slippage_bps_limit)})",
            )

    def _quorum(self) -> None:
        quorum = self.config.portfolio.quorum
        n = resolved.quorum_sources(self.config)
        parts = ["local"]
        if quorum.observers:
            parts.append(f"{len(quorum.observers)} observer URL(s)")
        if resolved.embedded_observer(self.config):
            parts.append("embedded observer")
        if quorum.k > n:
            self.problem(
                ("portfolio", "quorum", "k"),
                quorum.k,
                f"must be between 1 and the number of quorum sources ({n}: {' + '.join(parts)})",
            )
        elif quorum.k == 1:
            self.warn(
                ("portfolio", "quorum", "k"), 1, "a single source decides the actual position (no quorum)"
            )

    def _persistence_cadence(self) -> None:
        n = self.config.providence.db_write_every_ticks
        dispatch = self.config.scheduler.periods.providence_dispatch
        span = n * dispatch
        for key in ("run_freshness_s", "providence_max_silence_s"):
            limit = getattr(self.config.portfolio, key)
            if span >= limit:
                self.problem(
                    ("providence", "db_write_every_ticks"),
                    n,
                    f"{n} × scheduler.periods.providence_dispatch ({dispatch} s) = {span} s must be below "
                    f"portfolio.{key} ({limit} s), or healthy runs look stale",
                )

    def _take_profit(self) -> None:
        window = self.config.take_profit.median_window
        if window % 2 == 0:
            self.problem(("take_profit", "median_window"), window, "must be odd")

    def _hyperliquid(self) -> None:
        hl = self.config.exchange.hyperliquid
        base: Key = ("exchange", "hyperliquid")
        for i, proxy in enumerate(hl.proxies):
            if not is_http_url(proxy):
                self.problem((*base, "proxies", i), proxy, "must be an http(s) URL prefix")
        if hl.proxies and not hl.origin:
            self.problem(
                (*base, "origin"), hl.origin, "required when exchange.hyperliquid.proxies is non-empty"
            )
        if hl.network == "custom" and not hl.base_url:
            self.problem(
                (*base, "base_url"), hl.base_url, "required when exchange.hyperliquid.network is custom"
            )
        if hl.base_url is not None and not is_http_url(hl.base_url):
            self.problem((*base, "base_url"), hl.base_url, "must be an http(s) URL")
        if hl.ws_url is not None and urlsplit(hl.ws_url).scheme not in ("ws", "wss"):
            self.problem((*base, "ws_url"), hl.ws_url, "must be a ws:// or wss:// URL")
        if hl.network == "custom" and hl.ws_url is None and self.config.market_data.price.mode == "websocket":
            self.problem(
                (*base, "ws_url"), None, "required for market_data.price.mode websocket with a custom network"
            )
        if hl.vault_address is not None and not ADDRESS_RE.match(hl.vault_address):
            self.problem(
                (*base, "vault_address"), hl.vault_address, "must be 0x followed by 40 hex characters"
            )
        for i, dex in enumerate(hl.hip3_dexes):
            if not dex or not re.match(r"^[A-Za-z0-9_-]+$", dex):
                self.problem((*base, "hip3_dexes", i), dex, "must be a dex name")

    def _secrets(self) -> None:
        if self.secrets is None:
            return
        hl = self.secrets.exchanges.hyperliquid
        wallet = hl.wallet_address.get_secret_value() if hl.wallet_address else None
        key = hl.private_key.get_secret_value() if hl.private_key else None
        wallet_path: Key = ("secrets", "exchanges", "hyperliquid", "wallet_address")
        key_path: Key = ("secrets", "exchanges", "hyperliquid", "private_key")
        hyperliquid = self.config.exchange.kind == "hyperliquid"
        needs_wallet = hyperliquid and self.process not in ("observer", "sim-exchange")
        if wallet is not None and not ADDRESS_RE.match(wallet):
            self.problem(wallet_path, wallet, "must be 0x followed by 40 hex characters", secret=True)
        elif wallet is None and needs_wallet:
            self.missing(wallet_path, "required when exchange.kind is hyperliquid")
        if key is not None and not PRIVATE_KEY_RE.match(key):
            self.problem(key_path, key, "must be 64 hex characters (optionally 0x-prefixed)", secret=True)
        elif key is None and hyperliquid and resolved.hosts_gateway(self.process):
            self.missing(
                key_path,
                "required when exchange.kind is hyperliquid in a process hosting the gateway "
                f"({self.process})",
            )
        token = self.secrets.gateway.token.get_secret_value() if self.secrets.gateway.token else None
        token_path: Key = ("secrets", "gateway", "token")
        if resolved.serves_gateway_http(self.config, self.process):
            if token is None:
                self.missing(token_path, "required when the gateway serves HTTP")
            elif len(token) < GATEWAY_TOKEN_MIN:
                self.problem(
                    token_path,
                    token,
                    f"must be at least {GATEWAY_TOKEN_MIN} characters (has {len(token)})",
                    secret=True,
                )
        elif self.process == "worker" and resolved.gateway_url(self.config) != "embedded" and token is None:
            self.warnings.append(
                f"secrets.gateway.token is not set: this worker cannot authenticate to the gateway at "
                f"{resolved.gateway_url(self.config)}, so its reconciliation cycles will hold"
            )

    def _mode(self) -> None:
        cfg = self.config
        if cfg.mode != "distributed":
            return
        if resolved.cache_backend(cfg) != "redis":
            self.problem(("cache", "backend"), cfg.cache.backend, "must be redis when mode is distributed")
        if cfg.database.url.lower().startswith("sqlite"):
            self.problem(
                ("database", "url"),
                redact_url(cfg.database.url),
                "mode distributed needs MariaDB or PostgreSQL, not SQLite",
            )
        if cfg.exchange.kind != "hyperliquid":
            self.problem(
                ("exchange", "kind"),
                cfg.exchange.kind,
                "must be hyperliquid when mode is distributed (for paper trading point "
                "exchange.hyperliquid.network: custom at `3t sim-exchange`)",
            )
        if resolved.gateway_url(cfg) == "embedded":
            self.problem(
                ("portfolio", "gateway", "url"),
                "embedded",
                "mode distributed has no in-process gateway; give the URL of `3t gateway`",
            )

    def _trading_hours(self) -> None:
        th = self.config.trading_hours
        if timezone_exists(th.timezone):
            return
        if timezone_exists(th.fallback_timezone):
            self.warn(
                ("trading_hours", "timezone"),
                th.timezone,
                f"unknown to the tz database; using trading_hours.fallback_timezone ({th.fallback_timezone})",
            )
        else:
            self.problem(
                ("trading_hours", "timezone"),
                th.timezone,
                f"neither it nor trading_hours.fallback_timezone ({show(th.fallback_timezone)}) "
                f"exists in the tz database",
            )

    def _paper(self) -> None:
        cfg = self.config
        if not ADDRESS_RE.match(cfg.exchange.paper.wallet):
            self.problem(
                ("exchange", "paper", "wallet"),
                cfg.exchange.paper.wallet,
                "must be 0x followed by 40 hex characters",
            )
        for fee in ("maker_fee", "taker_fee"):
            value = getattr(cfg.exchange.paper, fee)
            if not -0.01 <= value < 0.1:
                self.problem(("exchange", "paper", fee), value, "must be a fee rate between -0.01 and 0.1")
        for i, wallet in enumerate(cfg.observer.wallets):
            if not ADDRESS_RE.match(wallet):
                self.problem(("observer", "wallets", i), wallet, "must be 0x followed by 40 hex characters")
        if cfg.exchange.kind != "paper":
            return
        products = cfg.exchange.paper.products
        for symbol in cfg.universe.symbols:
            if symbol not in products:
                self.problem(
                    ("exchange", "paper", "products"),
                    sorted(products),
                    f"has no entry for universe symbol {symbol} (needed when exchange.kind is paper)",
                )

    def _market_data(self) -> None:
        md = self.config.market_data
        tfs = md.timeframes
        if "1m" not in tfs:
            self.problem(("market_data", "timeframes"), tfs, 'must include "1m"')
        for i, tf in enumerate(tfs):
            if tf not in TIMEFRAMES:
                self.problem(
                    ("market_data", "timeframes", i),
                    tf,
                    f"unknown timeframe; one of {', '.join(TIMEFRAMES)}",
                )
        if len(set(tfs)) != len(tfs):
            self.problem(("market_data", "timeframes"), tfs, "lists a timeframe twice")
        for name in ("lookback_bars", "backfill_bars", "retention_days"):
            mapping: dict[str, int] = getattr(md, name)
            for key in mapping:
                if key != DEFAULT_KEY and key not in TIMEFRAMES:
                    self.problem(
                        ("market_data", name, key), mapping[key], "key must be a timeframe or default"
                    )
        syn = md.synthetic
        for name in ("start_price", "annual_vol", "annual_drift"):
            values: dict[str, float] = getattr(syn, name)
            for key, value in values.items():
                if key != DEFAULT_KEY and not SYMBOL_RE.match(key):
                    self.problem(
                        ("market_data", "synthetic", name, key), value, "key must be a symbol or default"
                    )

    def _replay(self) -> None:
        md = self.config.market_data
        replay = md.replay
        if replay.start is not None and replay.end is not None and replay.start >= replay.end:
            self.problem(
                ("market_data", "replay", "start"),
                replay.start.isoformat(),
                f"must be before market_data.replay.end ({replay.end.isoformat()})",
            )
        if md.source != "replay":
            return
        dispatch = self.config.scheduler.periods.providence_dispatch
        if dispatch % replay.tick_s != 0:
            self.problem(
                ("scheduler", "periods", "providence_dispatch"),
                dispatch,
                f"must be a multiple of market_data.replay.tick_s ({replay.tick_s}) with source replay, "
                f"so every dispatch lands on a simulated tick",
            )
        path_key: Key = ("market_data", "replay", "path")
        if replay.path is None:
            self.problem(path_key, None, "required when market_data.source is replay")
            return
        root = Path(replay.path)
        if not root.exists():
            self.problem(path_key, replay.path, "does not exist")
            return
        exts = REPLAY_EXTENSIONS[replay.format]
        symbols = self.config.universe.symbols
        if root.is_file():
            if len(symbols) != 1:
                self.problem(
                    path_key,
                    replay.path,
                    f"is one file but the universe has {len(symbols)} symbols; give a directory of "
                    f"<BASE>_<QUOTE>_<SETTLE>-1m-futures files",
                )
            elif root.suffix.lstrip(".") not in exts:
                self.problem(
                    path_key, replay.path, f"must be a {' or '.join(exts)} file (format {replay.format})"
                )
            return
        for symbol in symbols:
            names = [replay_file_name(symbol, "1m", ext) for ext in exts]
            if not any((root / name).is_file() for name in names):
                self.problem(
                    path_key,
                    replay.path,
                    f"has no 1m data for {symbol} (expected {' or '.join(names)})",
                )

    def _providence(self) -> None:
        prov = self.config.providence
        ann = prov.ann_params
        base: Key = ("providence", "ann_params")
        lower_bounds = {
            "max_duration": 1,
            "reversal_divisor": 1,
            "min_goal": 1,
            "max_goal": 1,
            "entropy_window_minutes": 1,
            "entropy_window_samples": 2,
            "rolling_apr_minutes": 1,
        }
        for name in (
            "max_duration",
            "reversal_divisor",
            "pos_scaler",
            "apr_target",
            "min_goal",
            "max_goal",
            "min_goal_weight",
            "max_goal_weight",
            "entropy_window_minutes",
            "entropy_window_samples",
            "machine_vision_entropy_max",
            "rolling_apr_minutes",
        ):
            rng: list[Any] = getattr(ann, name)
            if len(rng) != 2:
                self.problem((*base, name), rng, "must be a [min, max] list of 2 numbers")
                continue
            lo, hi = rng
            if lo > hi:
                self.problem((*base, name), rng, "min must not exceed max")
            if name in lower_bounds and lo < lower_bounds[name]:
                self.problem((*base, name), rng, f"min must be at least {lower_bounds[name]}")
            if name == "pos_scaler" and lo <= 0:
                self.problem((*base, name), rng, "min must be greater than 0")
            if name != "pos_scaler" and lo < 0:
                self.problem((*base, name), rng, "min must not be negative")
        # The other §2.3 bounds (divisors > 0, virtual_balance > 0, max_position_direction >= 1) are
        # field constraints of the model

    def _urls(self) -> None:
        cfg = self.config
        for i, url in enumerate(cfg.portfolio.quorum.observers):
            if not is_http_url(url):
                self.problem(("portfolio", "quorum", "observers", i), url, "must be an http(s) URL")
        gw = cfg.portfolio.gateway.url
        if gw is not None and gw != "embedded" and not is_http_url(gw):
            self.problem(("portfolio", "gateway", "url"), gw, 'must be "embedded" or an http(s) URL')
        for path, value in (
            (("observability", "otlp_endpoint"), cfg.observability.otlp_endpoint),
            (("observability", "alerts", "webhook_url"), cfg.observability.alerts.webhook_url),
        ):
            if value is not None and not is_http_url(value):
                self.problem(path, redact_url(value), "must be an http(s) URL")
        for path, value in (
            (("cache", "redis_url"), cfg.cache.redis_url),
            (("celery", "broker_url"), cfg.celery.broker_url),
        ):
            if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
                self.problem(path, redact_url(value), "must be a redis://, rediss:// or unix:// URL")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(cfg.database.url)
        except (ArgumentError, ValueError):
            self.problem(("database", "url"), redact_url(cfg.database.url), "is not a valid SQLAlchemy URL")
        for path, value in (
            (("database", "url"), cfg.database.url),
            (("cache", "redis_url"), cfg.cache.redis_url),
            (("celery", "broker_url"), cfg.celery.broker_url),
        ):
            if redact_url(value) != value:
                self.warn(path, redact_url(value), "contains a password; keep it in secrets.yml instead")

    def _portfolio_warnings(self) -> None:
        pf = self.config.portfolio
        if pf.minimum_trade_threshold_usd < MIN_EXCHANGE_NOTIONAL_USD:
            self.warn(
                ("portfolio", "minimum_trade_threshold_usd"),
                pf.minimum_trade_threshold_usd,
                f"below the exchange minimum order value ({MIN_EXCHANGE_NOTIONAL_USD:g} USD); "
                "such orders are rejected",
            )
        if not pf.can_go_long and not pf.can_go_short:
            self.warnings.append(
                "portfolio.can_go_long and portfolio.can_go_short are both false: "
                "no position will ever be opened" + self.where(("portfolio", "can_go_long"))
            )
        exch = self.config.exchange
        if exch.kind == "hyperliquid" and exch.hyperliquid.network in ("mainnet", "testnet"):
            defaults = type(pf)()
            for key in ("risk_pos_percentage", "max_margin_usage_percentage", "minimum_trade_threshold_usd"):
                value = getattr(pf, key)
                if value == getattr(defaults, key):
                    self.warnings.append(
                        f"portfolio.{key} = {show(value)} is the default, the reference's example value, not "
                        f"sizing advice for real money on {exch.hyperliquid.network}; set it deliberately"
                    )
