"""A real price path for the benchmarks: Hyperliquid 1m bars from `../shared/data/` (never copied here).

Between bar opens the price walks open → low → high → close (open → high → low → close on a down bar) in
three equal legs, so a 5 s tick sees a plausible intrabar path. The market weight and the volatility a tick
sees are the engine's own functions over the bars that had closed by then, as the services compute them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ttt.providence import reference as ref

DATA = Path(os.environ.get("T3_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
WEIGHT_BARS = 30
VOLATILITY_BARS = 1440


@dataclass
class Bars:
    """One symbol's 1m bars; `t_open` in epoch seconds of the data's own timeline."""

    name: str
    t_open: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    _inputs: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)

    def index(self, t: float) -> int:
        """The bar whose minute holds t."""
        return int(np.searchsorted(self.t_open, t, side="right")) - 1

    def price_at(self, t: float) -> float:
        j = self.index(t)
        frac = ((t - self.t_open[j]) / 60.0) * 3
        o, hi, lo, c = self.open[j], self.high[j], self.low[j], self.close[j]
        pts = (o, lo, hi, c) if c >= o else (o, hi, lo, c)
        seg = min(int(frac), 2)
        return float(pts[seg] + (pts[seg + 1] - pts[seg]) * (frac - seg))

    def tick_inputs(self, t: float) -> tuple[float, float, float]:
        """(price, volatility, weight) of a tick at t, as the dispatcher's tick record holds them."""
        weight, volatility = self.weight_and_volatility(t)
        return self.price_at(t), volatility, weight

    def weight_and_volatility(self, t: float) -> tuple[float, float]:
        """From the bars closed by t (those before the minute holding t)."""
        j = self.index(t)
        if j not in self._inputs:
            w = ref.market_weight(list(self.close[max(0, j - WEIGHT_BARS) : j]))
            lo = max(0, j - VOLATILITY_BARS)
            vol = ref.volatility_from_bars(list(self.high[lo:j]), list(self.low[lo:j]))
            self._inputs[j] = (float(w), float(vol) if vol is not None else 0.0)
        return self._inputs[j]


def data_file(symbol: str) -> Path:
    """`BTC/USDC:USDC` → the freqtrade-format 1m file of that market."""
    base, quote = symbol.split("/")[0], symbol.split("/")[1].split(":")[0]
    return DATA / "hyperliquid" / f"{base}_{quote}_{quote}-1m-futures.feather"


def load_bars(symbol: str) -> Bars | None:
    """None when the shared data is not on this machine."""
    path = data_file(symbol)
    if not path.exists():
        return None
    import pyarrow.feather as feather

    table = feather.read_table(path).to_pandas()
    t_open = (table["date"].astype("int64").to_numpy() // 10**9).astype(float)
    return Bars(
        name=path.name,
        t_open=t_open,
        open=table["open"].to_numpy(float),
        high=table["high"].to_numpy(float),
        low=table["low"].to_numpy(float),
        close=table["close"].to_numpy(float),
    )
