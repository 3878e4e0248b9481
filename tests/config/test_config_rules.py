"""Every validation rule of services.md §11.4 and providence.md §2.3: each bad value fails naming its key,
and the nearest good value passes (so no rule test can pass vacuously)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttt.config import load_settings
from ttt.errors import ConfigError

from .config_support import GATEWAY_TOKEN, secrets_yaml, write

HL_DATA = Path("/work/shared/data/hyperliquid")


def load(tmp_path: Path, yaml_text: str, secrets: str = "", process: str = "run"):  # type: ignore[no-untyped-def]
    cfg = write(tmp_path / "config.yml", yaml_text)
    sec = write(tmp_path / "secrets.yml", secrets)
    return load_settings(cfg, sec, environ={}, process=process)


def fails(tmp_path: Path, yaml_text: str, key: str, secrets: str = "", process: str = "run") -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, yaml_text, secrets, process)
    text = "\n".join(info.value.problems)
    assert key in text, text
    return text


# (bad config, key named, good config)
CASES: list[tuple[str, str, str, str]] = [
    ("symbols empty", "universe: {symbols: []}", "universe.symbols", "universe: {symbols: [BTC/USDC:USDC]}"),
    (
        "symbol duplicate",
        'universe: {symbols: ["BTC/USDC:USDC", "BTC/USDC:USDC"]}',
        "universe.symbols[1]",
        'universe: {symbols: ["BTC/USDC:USDC", "ETH/USDC:USDC"]}',
    ),
    (
        "symbol not a perp",
        "universe: {symbols: [BTC]}",
        "universe.symbols[0]",
        "universe: {symbols: [BTC/USDC:USDC]}",
    ),
    (
        "client id upper",
        'orders: {client_id_prefix: "7474740A"}',
        "orders.client_id_prefix",
        'orders: {client_id_prefix: "7474740a"}',
    ),
    (
        "client id length",
        'orders: {client_id_prefix: "7474740"}',
        "orders.client_id_prefix",
        'orders: {client_id_prefix: "00000000"}',
    ),
    ("quorum k zero", "portfolio: {quorum: {k: 0}}", "portfolio.quorum.k", "portfolio: {quorum: {k: 1}}"),
    (
        "quorum without embedded observer",
        "portfolio: {quorum: {k: 2, embedded_observer: false}}",
        "portfolio.quorum.k",
        "portfolio: {quorum: {k: 2, embedded_observer: false, observers: ['https://o/3T-observer.json']}}",
    ),
    (
        "silence bound",
        "providence: {db_write_every_ticks: 100}\n"
        "portfolio: {run_freshness_s: 1000, providence_max_silence_s: 500}",
        "portfolio.providence_max_silence_s",
        "providence: {db_write_every_ticks: 100}\n"
        "portfolio: {run_freshness_s: 1000, providence_max_silence_s: 501}",
    ),
    (
        "median even",
        "take_profit: {median_window: 4}",
        "take_profit.median_window",
        "take_profit: {median_window: 3}",
    ),
    (
        "tp threshold zero",
        "take_profit: {threshold: 0}",
        "take_profit.threshold",
        "take_profit: {threshold: 0.1}",
    ),
    (
        "reward zero",
        "take_profit: {reward_multiple: 0}",
        "take_profit.reward_multiple",
        "take_profit: {reward_multiple: 1}",
    ),
    (
        "proxy without origin",
        "exchange: {hyperliquid: {proxies: ['https://proxy.example/']}}",
        "exchange.hyperliquid.origin",
        "exchange: {hyperliquid: {proxies: ['https://proxy.example/'], origin: 'https://me.example'}}",
    ),
    (
        "proxy not a URL",
        "exchange: {hyperliquid: {proxies: ['proxy.example'], origin: o}}",
        "exchange.hyperliquid.proxies[0]",
        "exchange: {hyperliquid: {proxies: ['http://proxy.example/'], origin: o}}",
    ),
    (
        "custom without base_url",
        "exchange: {hyperliquid: {network: custom}}",
        "exchange.hyperliquid.base_url",
        "exchange: {hyperliquid: {network: custom, base_url: 'http://127.0.0.1:3001'}}",
    ),
    (
        "distributed with memory cache",
        "mode: distributed\ncache: {backend: memory}\n" + "DIST",
        "cache.backend",
        "mode: distributed\ncache: {backend: redis}\n" + "DIST",
    ),
    (
        "distributed with paper",
        "mode: distributed\nexchange: {kind: paper}\n"
        "database: {url: 'postgresql://h/d'}\nportfolio: {quorum: {k: 1}}",
        "exchange.kind",
        "DIST",
    ),
    (
        "timezones unknown",
        "trading_hours: {timezone: Mars/Olympus, fallback_timezone: Mars/Base}",
        "trading_hours.timezone",
        "trading_hours: {timezone: Mars/Olympus, fallback_timezone: Europe/Rome}",
    ),
    (
        "paper product missing",
        "universe: {symbols: ['DOGE/USDC:USDC']}",
        "exchange.paper.products",
        "universe: {symbols: ['DOGE/USDC:USDC']}\n"
        "exchange: {paper: {products: {'DOGE/USDC:USDC':"
        " {sz_decimals: 0, max_leverage: 10, margin_mode: cross}}}}",
    ),
    (
        "timeframes without 1m",
        "market_data: {timeframes: [5m, 4h]}",
        "market_data.timeframes",
        "market_data: {timeframes: [1m, 5m]}",
    ),
    (
        "timeframe unknown",
        "market_data: {timeframes: [1m, 7m]}",
        "market_data.timeframes[1]",
        "market_data: {timeframes: [1m, 15m]}",
    ),
    (
        "map key not a timeframe",
        "market_data: {lookback_bars: {1x: 20}}",
        'market_data.lookback_bars["1x"]',
        "market_data: {lookback_bars: {1h: 20}}",
    ),
    (
        "map key not a symbol",
        "market_data: {synthetic: {start_price: {BTC: 5}}}",
        "market_data.synthetic.start_price.BTC",
        "market_data: {synthetic: {start_price: {'BTC/USDC:USDC': 5}}}",
    ),
    (
        "fraction above 1",
        "providence: {dispatch_spread: 1.5}",
        "providence.dispatch_spread",
        "providence: {dispatch_spread: 1}",
    ),
    (
        "fraction zero",
        "portfolio: {max_margin_usage_percentage: 0}",
        "portfolio.max_margin_usage_percentage",
        "portfolio: {max_margin_usage_percentage: 0.01}",
    ),
    (
        "not finite",
        "portfolio: {margin_cap_multiplier: .inf}",
        "portfolio.margin_cap_multiplier",
        "portfolio: {margin_cap_multiplier: 2}",
    ),
    (
        "nan",
        "market_data: {synthetic: {annual_drift: {default: .nan}}}",
        "annual_drift",
        "market_data: {synthetic: {annual_drift: {default: -0.1}}}",
    ),
    (
        "period zero",
        "scheduler: {periods: {reconcile: 0}}",
        "scheduler.periods.reconcile",
        "scheduler: {periods: {reconcile: 1}}",
    ),
    (
        "threshold negative",
        "portfolio: {live_pnl_threshold: -1}",
        "portfolio.live_pnl_threshold",
        "portfolio: {live_pnl_threshold: 0}",
    ),
    (
        "int as text",
        'portfolio: {busy_retry_s: "30"}',
        "portfolio.busy_retry_s",
        "portfolio: {busy_retry_s: 30}",
    ),
    (
        "bool as text",
        "portfolio: {can_go_long: yes}",
        "portfolio.can_go_long",
        "portfolio: {can_go_long: true}",
    ),
    ("bad choice", "orders: {style: market}", "orders.style", "orders: {style: ioc}"),
    (
        "ioc slippage over limit",
        "orders: {ioc_max_slippage_bps: 600}",
        "orders.ioc_max_slippage_bps",
        "orders: {ioc_max_slippage_bps: 500}",
    ),
    (
        "paper wallet",
        "exchange: {paper: {wallet: '0x12'}}",
        "exchange.paper.wallet",
        "exchange: {paper: {wallet: '0x" + "0" * 39 + "2'}}",
    ),
    (
        "observer url",
        "portfolio: {quorum: {observers: ['observer-1:8001']}}",
        "portfolio.quorum.observers[0]",
        "portfolio: {quorum: {observers: ['http://observer-1:8001/3T-observer.json']}}",
    ),
    (
        "gateway url",
        "portfolio: {gateway: {url: 'gw:8002'}}",
        "portfolio.gateway.url",
        "portfolio: {gateway: {url: 'http://gw:8002'}}",
    ),
    ("port range", "dashboard: {port: 70000}", "dashboard.port", "dashboard: {port: 8081}"),
    # providence.md §2.3
    (
        "range order",
        "providence: {ann_params: {max_goal: [5, 2]}}",
        "providence.ann_params.max_goal",
        "providence: {ann_params: {max_goal: [2, 5]}}",
    ),
    (
        "range length",
        "providence: {ann_params: {apr_target: [20]}}",
        "providence.ann_params.apr_target",
        "providence: {ann_params: {apr_target: [20, 20]}}",
    ),
    (
        "range integers",
        "providence: {ann_params: {min_goal: [1.5, 9]}}",
        "providence.ann_params.min_goal",
        "providence: {ann_params: {min_goal: [2, 9]}}",
    ),
    (
        "samples below 2",
        "providence: {ann_params: {entropy_window_samples: [1, 20]}}",
        "providence.ann_params.entropy_window_samples",
        "providence: {ann_params: {entropy_window_samples: [2, 20]}}",
    ),
    (
        "duration below 1",
        "providence: {ann_params: {max_duration: [0, 10]}}",
        "providence.ann_params.max_duration",
        "providence: {ann_params: {max_duration: [1, 10]}}",
    ),
    (
        "reversal below 1",
        "providence: {ann_params: {reversal_divisor: [0, 9]}}",
        "providence.ann_params.reversal_divisor",
        "providence: {ann_params: {reversal_divisor: [1, 1]}}",
    ),
    (
        "window below 1",
        "providence: {ann_params: {entropy_window_minutes: [0, 15]}}",
        "providence.ann_params.entropy_window_minutes",
        "providence: {ann_params: {entropy_window_minutes: [1, 1]}}",
    ),
    (
        "rolling apr below 1",
        "providence: {ann_params: {rolling_apr_minutes: [0, 30]}}",
        "providence.ann_params.rolling_apr_minutes",
        "providence: {ann_params: {rolling_apr_minutes: [1, 30]}}",
    ),
    (
        "max_goal below 1",
        "providence: {ann_params: {max_goal: [0, 10]}}",
        "providence.ann_params.max_goal",
        "providence: {ann_params: {max_goal: [1, 1]}}",
    ),
    (
        "divisor zero",
        "providence: {ann_params: {goal_weight_divisor: 0}}",
        "providence.ann_params.goal_weight_divisor",
        "providence: {ann_params: {goal_weight_divisor: 0.5}}",
    ),
    (
        "pos_scaler non-positive",
        "providence: {ann_params: {pos_scaler: [0, 1]}}",
        "providence.ann_params.pos_scaler",
        "providence: {ann_params: {pos_scaler: [0.5, 1]}}",
    ),
    (
        "virtual balance",
        "providence: {virtual_balance: 0}",
        "providence.virtual_balance",
        "providence: {virtual_balance: 1}",
    ),
    (
        "max position direction",
        "providence: {max_position_direction: 0}",
        "providence.max_position_direction",
        "providence: {max_position_direction: 1}",
    ),
]

DIST = (
    "database: {url: 'postgresql://h/d'}\n"
    "exchange: {kind: hyperliquid, hyperliquid: {network: custom, base_url: 'http://127.0.0.1:3001'}}\n"
    "portfolio: {quorum: {k: 1}}"
)


def _expand(text: str) -> str:
    return text.replace("DIST", DIST)


@pytest.mark.parametrize(("bad", "key", "good"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_rejects_bad_and_accepts_good(tmp_path: Path, bad: str, key: str, good: str) -> None:
    secrets = secrets_yaml()
    fails(tmp_path, _expand(bad) + "\n", key, secrets)
    load(tmp_path, _expand(good) + "\n", secrets)


# ------------------------------------------------------------------------------ process-specific secrets


HL = (
    "exchange: {kind: hyperliquid}\n"
    "portfolio: {risk_pos_percentage: 0.001, max_margin_usage_percentage: 0.3,"
    " minimum_trade_threshold_usd: 20}\n"
)


def test_hyperliquid_needs_the_wallet_address(tmp_path: Path) -> None:
    text = fails(
        tmp_path, HL, "secrets.exchanges.hyperliquid.wallet_address", secrets_yaml(wallet=None), "worker"
    )
    assert "required when exchange.kind is hyperliquid" in text
    fails(
        tmp_path, HL, "secrets.exchanges.hyperliquid.wallet_address", secrets_yaml(wallet="0x1234"), "worker"
    )
    assert load(tmp_path, HL, secrets_yaml(private_key=None), "worker").warnings == ()


def test_missing_secrets_file_is_named(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", HL)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={}, process="worker")
    (found,) = info.value.problems
    assert found.startswith("secrets.exchanges.hyperliquid.wallet_address is not set")
    assert "no secrets file at secrets.yml" in found


def test_private_key_only_where_the_gateway_runs(tmp_path: Path) -> None:
    no_key = secrets_yaml(private_key=None)
    for process in ("run", "gateway"):
        with_token = secrets_yaml(private_key=None, token=GATEWAY_TOKEN)
        fails(tmp_path, HL, "secrets.exchanges.hyperliquid.private_key", with_token, process)
    for process in ("worker", "beat", "feed", "dashboard", "cli"):
        load(tmp_path, HL, no_key, process)
    fails(
        tmp_path, HL, "secrets.exchanges.hyperliquid.private_key", secrets_yaml(private_key="0xabc"), "worker"
    )


def test_observer_needs_no_secrets(tmp_path: Path) -> None:
    load(tmp_path, HL, "", "observer")


def test_gateway_token_when_the_gateway_serves_http(tmp_path: Path) -> None:
    fails(tmp_path, "embedded: {serve_gateway_http: true}\n", "secrets.gateway.token", "", "run")
    load(tmp_path, "embedded: {serve_gateway_http: false}\n", "", "run")
    load(tmp_path, "embedded: {serve_gateway_http: true}\n", secrets_yaml(token=GATEWAY_TOKEN), "run")
    fails(tmp_path, "", "secrets.gateway.token", "", "gateway")


# ----------------------------------------------------------------------------------------- replay


def test_replay_needs_a_path(tmp_path: Path) -> None:
    fails(tmp_path, "market_data: {source: replay}\n", "market_data.replay.path")
    fails(
        tmp_path,
        f"market_data: {{source: replay, replay: {{path: '{tmp_path / 'nowhere'}'}}}}\n",
        "does not exist",
    )


def test_replay_directory_needs_every_symbols_1m_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "BTC_USDC_USDC-1m-futures.feather").write_bytes(b"")
    (data / "ETH_USDC_USDC-5m-futures.feather").write_bytes(b"")
    text = fails(
        tmp_path, f"market_data: {{source: replay, replay: {{path: '{data}'}}}}\n", "market_data.replay.path"
    )
    assert "ETH/USDC:USDC" in text and "ETH_USDC_USDC-1m-futures.feather" in text
    assert "BTC/USDC:USDC" not in text
    (data / "ETH_USDC_USDC-1m-futures.csv").write_bytes(b"")
    load(tmp_path, f"market_data: {{source: replay, replay: {{path: '{data}'}}}}\n")
    fails(tmp_path, f"market_data: {{source: replay, replay: {{path: '{data}', format: feather}}}}\n", "ETH")


def test_replay_of_the_shared_hyperliquid_data(tmp_path: Path) -> None:
    if not (HL_DATA / "BTC_USDC_USDC-1m-futures.feather").exists():
        pytest.skip(f"shared data not present at {HL_DATA}")
    settings = load(tmp_path, f"market_data: {{source: replay, replay: {{path: '{HL_DATA}'}}}}\n")
    assert settings.config.market_data.replay.path == str(HL_DATA)


def test_replay_dispatch_must_be_a_multiple_of_tick(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for base in ("BTC", "ETH"):
        (data / f"{base}_USDC_USDC-1m-futures.feather").write_bytes(b"")
    base_cfg = f"market_data: {{source: replay, replay: {{path: '{data}', tick_s: 2}}}}\n"
    fails(tmp_path, base_cfg, "scheduler.periods.providence_dispatch")
    load(tmp_path, base_cfg + "scheduler: {periods: {providence_dispatch: 6}}\n")
    # only with source replay
    load(tmp_path, "market_data: {replay: {tick_s: 2}}\n")


def test_replay_bounds_parse_and_order(tmp_path: Path) -> None:
    settings = load(tmp_path, "market_data: {replay: {start: 2024-01-01, end: '2024-01-02T12:00:00Z'}}\n")
    replay = settings.config.market_data.replay
    assert replay.start is not None and replay.start.isoformat() == "2024-01-01T00:00:00+00:00"
    assert replay.end is not None and replay.end.isoformat() == "2024-01-02T12:00:00+00:00"
    fails(
        tmp_path, "market_data: {replay: {start: 2024-01-02, end: 2024-01-01}}\n", "market_data.replay.start"
    )
    fails(tmp_path, "market_data: {replay: {start: 'yesterday'}}\n", "market_data.replay.start")


# --------------------------------------------------------------------------------------- warnings


def test_warnings_are_collected_not_raised(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "portfolio: {minimum_trade_threshold_usd: 5, can_go_long: false, can_go_short: false,"
        " quorum: {k: 1}}\n"
        "trading_hours: {timezone: Mars/Olympus}\n",
    )
    text = "\n".join(settings.warnings)
    assert len(settings.warnings) == 4
    assert "portfolio.minimum_trade_threshold_usd = 5" in text
    assert "can_go_long and portfolio.can_go_short are both false" in text
    assert "portfolio.quorum.k = 1" in text
    assert 'trading_hours.timezone = "Mars/Olympus"' in text and "Europe/Rome" in text
