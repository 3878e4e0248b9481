"""Freqtrade-style feather files (services.md §6.4 naming), as written by `3t data fetch`.

The layout matches what the replay source reads and what freqtrade produces: columns date (UTC), open,
high, low, close, volume; funding files carry the rate in `open` and zeros elsewhere, with the exchange's
own funding times (Hyperliquid stamps them a few ms after the hour). Files are written to a temporary
name and renamed, so an interrupted download never leaves a truncated file behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ttt.adapters.market.hyperliquid_http import Candle, FundingRate

COLUMNS = ("date", "open", "high", "low", "close", "volume")


def pair_stem(symbol: str) -> str:
    """`BTC/USDC:USDC` → `BTC_USDC_USDC` (freqtrade's file-name form of a futures pair)."""
    if "/" not in symbol:
        raise ValueError(f"symbol {symbol!r}: expected BASE/QUOTE:SETTLE")
    return symbol.replace("/", "_").replace(":", "_")


def ohlcv_path(out_dir: Path, symbol: str, timeframe: str) -> Path:
    return out_dir / f"{pair_stem(symbol)}-{timeframe}-futures.feather"


def funding_path(out_dir: Path, symbol: str) -> Path:
    return out_dir / f"{pair_stem(symbol)}-1h-funding_rate.feather"


def _frame(times_ms: Sequence[int], columns: dict[str, Sequence[float]]) -> pd.DataFrame:
    frame = pd.DataFrame({"date": pd.to_datetime(list(times_ms), unit="ms", utc=True)})
    frame["date"] = frame["date"].astype("datetime64[ns, UTC]")
    for name in COLUMNS[1:]:
        frame[name] = pd.Series(columns[name], dtype="float64")
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.reset_index(drop=True).to_feather(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_ohlcv(out_dir: Path, symbol: str, timeframe: str, candles: Sequence[Candle]) -> Path:
    """One bar file; rows sorted by open time, each open time once (replaces an existing file)."""
    ordered = sorted({c.ts_open: c for c in candles}.values(), key=lambda c: c.ts_open)
    frame = _frame(
        [c.ts_open for c in ordered],
        {
            "open": [c.open for c in ordered],
            "high": [c.high for c in ordered],
            "low": [c.low for c in ordered],
            "close": [c.close for c in ordered],
            "volume": [c.volume for c in ordered],
        },
    )
    return _write(frame, ohlcv_path(out_dir, symbol, timeframe))


def write_funding(out_dir: Path, symbol: str, rates: Sequence[FundingRate]) -> Path:
    """One funding file: the hourly rate in `open`, zeros in the other value columns."""
    ordered = sorted({r.time_ms: r for r in rates}.values(), key=lambda r: r.time_ms)
    zeros = [0.0] * len(ordered)
    frame = _frame(
        [r.time_ms for r in ordered],
        {
            "open": [float(r.rate) for r in ordered],
            "high": zeros,
            "low": zeros,
            "close": zeros,
            "volume": zeros,
        },
    )
    return _write(frame, funding_path(out_dir, symbol))
