"""Replay of recorded bars on a simulated Clock (services.md §6.4).

A bar gives only four numbers, so prices inside it follow one fixed path (O→L→H→C when C ≥ O, else
O→H→L→C, linear over equal thirds). Everything is read through the source's own Clock, so no service can
see a bar, a price or a funding rate from after the Clock: that is what makes a replay an honest
backtest and what makes two replays of the same files identical (SV-14).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ttt.adapters.market.files import BarSeries, FundingSeries
from ttt.domain.orders import Bar
from ttt.errors import DataError

DEFAULT_FUNDING_HOURLY = 0.0000125


class SimClock:
    """A Clock that only moves forward, and only when its source moves it."""

    def __init__(self, start: float) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {t}")
        self._now = float(t)


@dataclass(frozen=True)
class PriceEvent:
    symbol: str
    ts: float
    price: float
    source: str


def waypoints(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
    """The four path points at 0, 1/3, 2/3 and 1 of the bar."""
    return (o, lo, h, c) if c >= o else (o, h, lo, c)


def path_value(o: float, h: float, lo: float, c: float, frac: float) -> float:
    """Price at fraction `frac` ∈ [0, 1] of the bar along the deterministic path."""
    points = waypoints(o, h, lo, c)
    x = min(max(frac, 0.0), 1.0) * 3.0
    leg = min(int(x), 2)
    a, b = points[leg], points[leg + 1]
    return a + (b - a) * (x - leg)


def path_extremes(o: float, h: float, lo: float, c: float, frac: float) -> tuple[float, float]:
    """(high, low) of the path over [0, frac]: the waypoints passed plus the current value."""
    points = waypoints(o, h, lo, c)
    x = min(max(frac, 0.0), 1.0) * 3.0
    seen = [points[k] for k in range(4) if k <= x]
    seen.append(path_value(o, h, lo, c, frac))
    return max(seen), min(seen)


class ReplaySource:
    """Bars by symbol (one timeframe each, normally 1m) replayed from `start_s` to `end_s` in `tick_s`
    steps. `warmup_bars` completed bars before the start are visible as history."""

    name = "replay"

    def __init__(
        self,
        bars: Mapping[str, BarSeries],
        funding: Mapping[str, FundingSeries] | None = None,
        *,
        tick_s: float = 5.0,
        start_s: float | None = None,
        end_s: float | None = None,
        default_funding_hourly: float = DEFAULT_FUNDING_HOURLY,
        warmup_bars: int = 1440,
    ) -> None:
        if not bars:
            raise DataError("replay: no bar series given")
        if not (tick_s > 0 and math.isfinite(tick_s)):
            raise ValueError(f"market_data.replay.tick_s must be > 0, got {tick_s}")
        if warmup_bars < 0:
            raise ValueError(f"market_data.backfill_bars must be ≥ 0, got {warmup_bars}")
        self._bars = dict(bars)
        self._funding = dict(funding or {})
        self._tf_ms = {s: b.tf_ms for s, b in self._bars.items()}
        self._ends = {s: b.ts_ms + self._tf_ms[s] for s, b in self._bars.items()}
        self.symbols: tuple[str, ...] = tuple(self._bars)
        self.tick_s = float(tick_s)
        self.default_funding_hourly = default_funding_hourly
        self.warmup_bars = warmup_bars
        first_common = max(int(b.ts_ms[0]) for b in self._bars.values()) / 1000
        last_common = min(int(self._ends[s][-1]) for s in self.symbols) / 1000
        self.start_s = float(start_s) if start_s is not None else first_common
        self.end_s = float(end_s) if end_s is not None else last_common
        if self.end_s < self.start_s:
            raise DataError(
                f"replay: end {self.end_s} is before start {self.start_s} (the files share no common period)"
            )
        self._floor = {s: self._history_start(s) for s in self.symbols}
        self.clock = SimClock(self.start_s)

    def _history_start(self, symbol: str) -> int:
        """Index of the first bar any service may see: `warmup_bars` before the start."""
        completed = int(np.searchsorted(self._ends[symbol], self.start_s * 1000, side="right"))
        return max(0, completed - self.warmup_bars)

    # --- driving -----------------------------------------------------------------------------------

    def tick_times(self) -> Iterator[float]:
        n = math.floor((self.end_s - self.start_s) / self.tick_s + 1e-9)
        for k in range(n + 1):
            yield self.start_s + k * self.tick_s

    def run(self) -> Iterator[tuple[float, list[PriceEvent]]]:
        """Advance the Clock tick by tick; each step yields the prices published at that time."""
        for t in self.tick_times():
            self.clock.set(t)
            yield t, self.prices()

    def advance_to(self, t: float) -> None:
        self.clock.set(t)

    # --- what services see (never past the Clock) --------------------------------------------------

    def _covering(self, symbol: str, t_ms: float) -> int | None:
        series = self._bars[symbol]
        i = int(np.searchsorted(series.ts_ms, t_ms, side="right")) - 1
        if i < self._floor[symbol] or i < 0 or t_ms >= self._ends[symbol][i]:
            return None
        return i

    def price(self, symbol: str) -> float | None:
        """Path value now, or None inside a gap in the data (consumers then see staleness)."""
        t_ms = self.clock.now() * 1000
        i = self._covering(symbol, t_ms)
        if i is None:
            return None
        s = self._bars[symbol]
        frac = (t_ms - float(s.ts_ms[i])) / self._tf_ms[symbol]
        return path_value(float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]), frac)

    def prices(self) -> list[PriceEvent]:
        now = self.clock.now()
        out: list[PriceEvent] = []
        for symbol in self.symbols:
            p = self.price(symbol)
            if p is not None:
                out.append(PriceEvent(symbol, now, p, self.name))
        return out

    def visible_bars(self, symbol: str) -> BarSeries:
        """Completed bars (ts_open + tf ≤ Clock), from the warm-up onwards."""
        stop = int(np.searchsorted(self._ends[symbol], self.clock.now() * 1000, side="right"))
        return self._bars[symbol].slice(self._floor[symbol], max(stop, self._floor[symbol]))

    def warmup(self, symbol: str) -> BarSeries:
        """The final bars loaded before the start."""
        stop = int(np.searchsorted(self._ends[symbol], self.start_s * 1000, side="right"))
        return self._bars[symbol].slice(self._floor[symbol], max(stop, self._floor[symbol]))

    def forming_bar(self, symbol: str) -> Bar | None:
        """The bar containing the Clock as seen so far: open O, high/low the path's extremes, close the
        path value, not final."""
        t_ms = self.clock.now() * 1000
        i = self._covering(symbol, t_ms)
        if i is None:
            return None
        s = self._bars[symbol]
        o, h, lo, c = float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i])
        frac = (t_ms - float(s.ts_ms[i])) / self._tf_ms[symbol]
        high, low = path_extremes(o, h, lo, c, frac)
        close, volume = path_value(o, h, lo, c, frac), frac * float(s.volume[i])
        return Bar(symbol, s.timeframe, int(s.ts_ms[i]), o, high, low, close, volume, is_final=False)

    def funding_hourly(self, symbol: str) -> float:
        """The funding file's rate for the Clock's hour, else the configured default (§6.6)."""
        series = self._funding.get(symbol)
        if series is None:
            return self.default_funding_hourly
        rate = series.hourly_rate_at(int(self.clock.now() * 1000))
        return self.default_funding_hourly if rate is None else rate
