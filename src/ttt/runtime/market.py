"""Market source resolution (services.md §6) and the simulated-market driver of embedded mode.

`auto` is resolved once at start-up: with the paper exchange, one allMids probe with a 5 s timeout decides
between live Hyperliquid data and the synthetic source; with a live exchange it is always live data (real
orders never run on synthetic prices). The choice and its reason are announced loudly.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from ttt.adapters.market.files import BarSeries, discover
from ttt.adapters.market.replay import PriceEvent, ReplaySource, SimClock
from ttt.adapters.market.synthetic import SyntheticParams, SyntheticSource
from ttt.errors import ConfigError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
NETWORK_INFO_URLS = {
    "mainnet": "https://api.hyperliquid.xyz/info",
    "testnet": "https://api.hyperliquid-testnet.xyz/info",
}


@dataclass(frozen=True)
class MarketChoice:
    source: str  # hyperliquid | replay | synthetic
    reason: str  # forced | configured | api_answered | api_unreachable | live_exchange
    detail: str = ""

    def banner(self) -> str:
        text = f"MARKET DATA: {self.source.upper()}"
        if self.reason == "api_unreachable":
            text += " (Hyperliquid API did not answer within 5 s)"
        elif self.reason == "forced":
            text += " (forced on the command line)"
        elif self.reason == "configured":
            text += " (market_data.source)"
        elif self.reason == "api_answered":
            text += " (Hyperliquid API answered)"
        elif self.reason == "live_exchange":
            text += " (live exchange: never synthetic)"
        return text


def info_url(network: str, base_url: str | None) -> str:
    if network == "custom":
        if not base_url:
            raise ConfigError(["exchange.hyperliquid.base_url: required when network is custom"])
        return base_url.rstrip("/") + "/info"
    return NETWORK_INFO_URLS[network]


def probe_all_mids(
    url: str, proxies: Sequence[str], origin: str | None, timeout_s: float = PROBE_TIMEOUT_S
) -> bool:
    """True iff one allMids POST answers HTTP 200 with a JSON object within the timeout (§6)."""
    target = (proxies[0] + url) if proxies else url
    headers = {"Origin": origin} if proxies and origin else {}
    try:
        response = httpx.post(target, json={"type": "allMids"}, headers=headers, timeout=timeout_s)
        return response.status_code == 200 and isinstance(response.json(), dict)
    except (httpx.HTTPError, ValueError):
        return False


def resolve_market(
    forced: str | None,
    configured: str,
    exchange_kind: str,
    probe: Callable[[], bool],
) -> MarketChoice:
    if forced:
        return MarketChoice(forced, "forced")
    if configured != "auto":
        return MarketChoice(configured, "configured")
    if exchange_kind == "hyperliquid":
        return MarketChoice("hyperliquid", "live_exchange")
    if probe():
        return MarketChoice("hyperliquid", "api_answered")
    return MarketChoice("synthetic", "api_unreachable")


class SimulatedMarket(Protocol):
    """What the embedded driver needs from a replay or synthetic source."""

    clock: SimClock
    symbols: tuple[str, ...]
    tick_s: float

    def advance_to(self, t: float) -> None: ...

    def prices(self) -> list[PriceEvent]: ...

    def visible_bars(self, symbol: str) -> BarSeries: ...

    def funding_hourly(self, symbol: str) -> float: ...


def synthetic_source(
    market_cfg: Any, symbols: Sequence[str], start_s: float, warmup_bars: int
) -> SyntheticSource:
    syn = market_cfg.synthetic

    def per_symbol(table: dict[str, float], symbol: str) -> float:
        return float(table.get(symbol, table.get("default", 0.0)))

    params = {
        s: SyntheticParams(
            start_price=per_symbol(syn.start_price, s),
            annual_vol=per_symbol(syn.annual_vol, s),
            annual_drift=per_symbol(syn.annual_drift, s),
        )
        for s in symbols
    }
    return SyntheticSource(
        symbols,
        start_s=math.floor(start_s / market_cfg.replay.tick_s) * market_cfg.replay.tick_s,
        seed=syn.seed,
        params=params,
        tick_s=market_cfg.replay.tick_s,
        warmup_bars=warmup_bars,
        funding_hourly=syn.funding_hourly,
    )


def replay_source(
    market_cfg: Any, symbols: Sequence[str], path: str, warmup_bars: int, default_funding: float
) -> ReplaySource:
    rp = market_cfg.replay
    data = discover(Path(path), fmt=rp.format, symbols=symbols)
    return ReplaySource(
        {s: data.bars[s] for s in symbols},
        {s: data.funding[s] for s in symbols if s in data.funding},
        tick_s=rp.tick_s,
        start_s=_iso_to_epoch(rp.start),
        end_s=_iso_to_epoch(rp.end),
        default_funding_hourly=default_funding,
        warmup_bars=warmup_bars,
    )


def _iso_to_epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def describe(choice: MarketChoice) -> str:
    return json.dumps({"source": choice.source, "reason": choice.reason})
