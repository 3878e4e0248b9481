"""Tick inputs of one symbol: price visibility, volatility and the per-minute market weight.

providence.md §11–§13: prices older than `max_age_s` (or from the future) are unavailable; only visible bars
count (live: open ≤ t; replay: open + 60 s ≤ t, no look-ahead); the weight is computed once per clock minute
and shared through the cache with set-if-absent, so concurrent dispatchers agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ttt.adapters.market.feed import read_price
from ttt.ports import BarStore, Cache
from ttt.providence import reference

WEIGHT_WINDOW_S = 1800
VOLATILITY_LOOKBACK_S = 86400
WEIGHT_TTL_S = 120
TICK_TTL_S = 60


@dataclass(frozen=True)
class TickRecord:
    symbol: str
    t: float
    price: float | None
    volatility: float | None
    weight: float

    def to_json(self) -> bytes:
        return json.dumps(
            {"t": self.t, "price": self.price, "volatility": self.volatility, "weight": self.weight}
        ).encode()

    @classmethod
    def from_json(cls, symbol: str, raw: bytes) -> TickRecord:
        doc: dict[str, Any] = json.loads(raw)
        return cls(symbol, float(doc["t"]), doc.get("price"), doc.get("volatility"), float(doc["weight"]))


def tick_key(symbol: str) -> str:
    return f"tick:{symbol}"


def weight_key(symbol: str, minute: int) -> str:
    return f"weight:{symbol}:{minute}"


def visible_price(cache: Cache, symbol: str, t: float, max_age_s: float) -> float | None:
    """The feed's latest observation if not older than max_age_s at t (§13.1); otherwise None.

    A record stamped slightly after t is accepted: live prices carry exchange time and clocks skew by
    milliseconds; the simulated driver never publishes ahead of its Clock.
    """
    record = read_price(cache, symbol, t, max_age_s)
    return record.price if record is not None else None


@dataclass(frozen=True)
class BarVisibility:
    """Live mode shows the forming bar; replay/backtest only completed bars (§13.2)."""

    completed_only: bool
    bar_ms: int = 60_000

    def last_visible_open_ms(self, t: float) -> int:
        t_ms = math.floor(t * 1000)
        return t_ms - self.bar_ms if self.completed_only else t_ms


class VolatilityCache:
    """σ per symbol, reused while the visible window holds the same completed bars (§12.4 allows it).

    Only for completed-bars visibility: the window is then fixed by its first and last bar index; live mode
    sees a forming bar that changes between fetches, so it always recomputes.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, int], float | None]] = {}

    def get(self, bars: BarStore, symbol: str, t: float, visibility: BarVisibility) -> float | None:
        if not visibility.completed_only:
            return volatility_at(bars, symbol, t, visibility)
        since_ms = (math.floor(t) - VOLATILITY_LOOKBACK_S) * 1000
        key = (-(-since_ms // visibility.bar_ms), visibility.last_visible_open_ms(t) // visibility.bar_ms)
        hit = self._entries.get(symbol)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = volatility_at(bars, symbol, t, visibility)
        self._entries[symbol] = (key, value)
        return value


def volatility_at(bars: BarStore, symbol: str, t: float, visibility: BarVisibility) -> float | None:
    since = (math.floor(t) - VOLATILITY_LOOKBACK_S) * 1000
    rows = bars.bars(symbol, "1m", since, visibility.last_visible_open_ms(t))
    highs = [r[2] for r in rows]
    lows = [r[3] for r in rows]
    return reference.volatility_from_bars(highs, lows)


def weight_from_bars(bars: BarStore, symbol: str, t: float, visibility: BarVisibility) -> float:
    since = (math.floor(t) - WEIGHT_WINDOW_S) * 1000
    rows = bars.bars(symbol, "1m", since, visibility.last_visible_open_ms(t))
    return reference.market_weight([r[4] for r in rows])


def minute_weight(cache: Cache, bars: BarStore, symbol: str, t: float, visibility: BarVisibility) -> float:
    """The weight of t's clock minute: the first computation wins (SET NX), later ticks reuse it (§11.5)."""
    key = weight_key(symbol, math.floor(t / 60))
    cached = cache.get(key)
    if cached is None:
        cache.set(key, json.dumps(weight_from_bars(bars, symbol, t, visibility)), WEIGHT_TTL_S, nx=True)
        cached = cache.get(key)
    return float(json.loads(cached)) if cached is not None else weight_from_bars(bars, symbol, t, visibility)


def build_tick_record(
    cache: Cache,
    bars: BarStore,
    symbol: str,
    t: float,
    *,
    configured: bool,
    price_max_age_s: float,
    visibility: BarVisibility,
    volatility_cache: VolatilityCache | None = None,
) -> TickRecord:
    """The record every shard of the symbol steps with at t (§18.2 step 2)."""
    if not configured:
        return TickRecord(symbol, t, None, None, 0.0)
    price = visible_price(cache, symbol, t, price_max_age_s)
    if volatility_cache is not None:
        volatility = volatility_cache.get(bars, symbol, t, visibility)
    else:
        volatility = volatility_at(bars, symbol, t, visibility)
    weight = 0.0
    if price is not None and volatility is not None:
        weight = minute_weight(cache, bars, symbol, t, visibility)
    return TickRecord(symbol, t, price, volatility, weight)
