"""Volatility and market weight over imported real bars (providence.md §11–§13) equal an independent
pandas computation written here from the spec's formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from tests.dataimport.di_support import FixedClock
from tests.support import require_shared_data
from ttt.adapters.db.repositories.bars import SqlBarStore
from ttt.services.market_import import import_path
from ttt.services.providence.inputs import BarVisibility, volatility_at, weight_from_bars

SYMBOL = "BTC/USDC:USDC"


def _frame(path: str) -> pd.DataFrame:
    df = pd.read_feather(path)
    df["ms"] = df["date"].dt.tz_convert("UTC").astype("datetime64[ms, UTC]").astype("int64")
    return df


def _visible(df: pd.DataFrame, t: float, window_s: int, completed_only: bool) -> pd.DataFrame:
    since = (math.floor(t) - window_s) * 1000
    until = math.floor(t * 1000) - (60_000 if completed_only else 0)
    return df[(df["ms"] >= since) & (df["ms"] <= until)]


def expected_volatility(df: pd.DataFrame, t: float, completed_only: bool) -> float | None:
    """§12: r_j = max(high) − min(low) over the trailing 61 bars; σ = mean of the last 61 r_j."""
    bars = _visible(df, t, 86_400, completed_only)
    if bars.empty:
        return None
    ranges = bars["high"].rolling(61, min_periods=1).max() - bars["low"].rolling(61, min_periods=1).min()
    last = ranges.iloc[-61:].tolist()
    total = 0.0
    for r in last:  # ascending j, as the spec sums
        total += r
    return total / len(last)


def expected_weight(df: pd.DataFrame, t: float, completed_only: bool) -> float:
    """§11: ternary signs of close changes with a dead band of 0.0001 · mean close; Z / (K − 1)."""
    closes = _visible(df, t, 1800, completed_only)["close"].tolist()
    k = len(closes)
    if k < 2:
        return 0.0
    mean = 0.0
    for c in closes:
        mean += c
    theta = 0.0001 * (mean / k)
    d = np.diff(np.array(closes, dtype=np.float64))
    z = int((d > theta).sum()) - int((d < -theta).sum())
    return 0.0 if z == 0 else z / (k - 1)


@pytest.mark.parametrize("completed_only", [True, False])
def test_volatility_and_weight_from_imported_bars_match_pandas(lite: Engine, completed_only: bool) -> None:
    path = require_shared_data("hyperliquid", "BTC_USDC_USDC-1m-futures.feather")
    assert import_path(lite, path, FixedClock()).ok
    df = _frame(str(path))
    first, last = int(df["ms"].iloc[0]), int(df["ms"].iloc[-1])
    times = [
        first / 1000 + 30,  # one bar, or none when only completed bars count
        first / 1000 + 60 * 10 + 7.5,  # fewer than 61 bars
        first / 1000 + 60 * 45,  # weight window full, volatility partial
        (first + last) / 2000 + 12.25,
        last / 1000 + 60,
        last / 1000 + 86_400 - 120,  # the window has nearly run out of data
        *(first / 1000 + 1800 + 600 * k for k in range(20)),
    ]
    store = SqlBarStore(lite)
    visibility = BarVisibility(completed_only=completed_only)
    checked = 0
    for t in times:
        want_vol = expected_volatility(df, t, completed_only)
        assert volatility_at(store, SYMBOL, t, visibility) == want_vol, t
        assert weight_from_bars(store, SYMBOL, t, visibility) == expected_weight(df, t, completed_only), t
        checked += want_vol is not None
    assert checked >= 20
    # Not degenerate: real bars give real ranges and non-zero weights of both signs.
    assert all((expected_volatility(df, t, completed_only) or 0) > 0 for t in times[2:])
    weights = {expected_weight(df, t, completed_only) for t in times}
    assert min(weights) < 0 < max(weights)
