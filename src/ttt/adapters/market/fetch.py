"""The live OHLCV fetch job (services.md §6.1), independent of where bars are stored.

Storage is two callables so the database repository can be plugged in without this module importing it:
`BarWriter(bars)` upserts, `LatestOpen(symbol, tf)` returns the newest stored bar open (ms) or None.

`last_fetch:{symbol}:{tf}` is written only after the bars were stored, so a failed, rate-limited or
crashed job is simply due again at the next run; fetching a bar twice is harmless (upsert), missing one
is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ttt.adapters.market.hyperliquid_http import (
    HyperliquidError,
    HyperliquidInfoClient,
    RateLimited,
    interval_ms,
)
from ttt.domain.orders import Bar
from ttt.domain.symbols import derive_api_coin
from ttt.ports import Cache, Clock

if TYPE_CHECKING:
    from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

BarWriter = Callable[[Sequence[Bar]], object]
LatestOpen = Callable[[str, str], int | None]
FetchOutcome = Literal["ok", "not_due", "rate_limited", "error"]

LAST_FETCH_TTL_S = 86_400.0
DEFAULT_LOOKBACK = {"1m": 20, "4h": 50, "default": 20}
DEFAULT_BACKFILL = {"1m": 1440, "4h": 200, "default": 200}


def last_fetch_key(symbol: str, timeframe: str) -> str:
    return f"last_fetch:{symbol}:{timeframe}"


def boundary_ms(now_ms: int, tf_ms: int) -> int:
    """⌊now/tf⌋·tf: the open of the bar that is forming now."""
    return now_ms - now_ms % tf_ms


def is_due(boundary: int, last_fetch: int | None, backfill: bool = False) -> bool:
    """A job runs once per bar: when a new bar has opened since the last fetch, or in backfill mode."""
    return backfill or last_fetch is None or boundary > last_fetch


def window_since_ms(
    now_ms: int, tf_ms: int, lookback_bars: int, backfill_bars: int, last_stored: int | None
) -> int:
    """since = max(now − backfill·tf, min(now − lookback·tf, last stored ts_open)).

    With nothing stored the whole backfill window is fetched; after downtime the window reaches back to
    the last stored bar (filling the gap), but never further than the backfill depth.
    """
    floor = now_ms - backfill_bars * tf_ms
    recent = now_ms - lookback_bars * tf_ms
    if last_stored is None:
        return floor
    return max(floor, min(recent, last_stored))


def per_timeframe(table: Mapping[str, int], timeframe: str, what: str) -> int:
    if timeframe in table:
        return int(table[timeframe])
    if "default" in table:
        return int(table["default"])
    raise KeyError(f"market_data.{what} has no entry for {timeframe!r} and no default")


@dataclass(frozen=True)
class FetchResult:
    symbol: str
    timeframe: str
    outcome: FetchOutcome
    boundary: int
    since_ms: int | None = None
    bars: int = 0
    message: str = ""


class OhlcvFetcher:
    """Runs the (symbol, timeframe) jobs of one fetch task, `concurrency` at a time."""

    def __init__(
        self,
        *,
        client: HyperliquidInfoClient,
        cache: Cache,
        clock: Clock,
        writer: BarWriter,
        latest_open: LatestOpen,
        api_coins: Mapping[str, str] | None = None,
        lookback_bars: Mapping[str, int] = DEFAULT_LOOKBACK,
        backfill_bars: Mapping[str, int] = DEFAULT_BACKFILL,
        concurrency: int = 4,
        metrics: Metrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("market_data.concurrency must be at least 1")
        self.client = client
        self.cache = cache
        self.clock = clock
        self.writer = writer
        self.latest_open = latest_open
        self.api_coins = dict(api_coins or {})
        self.lookback_bars = dict(lookback_bars)
        self.backfill_bars = dict(backfill_bars)
        self.concurrency = concurrency
        self.metrics = metrics

    def coin(self, symbol: str) -> str:
        return self.api_coins.get(symbol) or derive_api_coin(symbol)

    def run(
        self, symbols: Sequence[str], timeframes: Sequence[str], *, backfill: bool = False
    ) -> list[FetchResult]:
        """All jobs, one `now` for the whole run so every job agrees on the boundary. Results keep the
        (symbol, timeframe) order of the arguments."""
        now_ms = round(self.clock.now() * 1000)
        jobs = [(s, tf) for s in symbols for tf in timeframes]
        if self.concurrency == 1 or len(jobs) <= 1:
            return [self.run_job(s, tf, now_ms, backfill=backfill) for s, tf in jobs]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ohlcv-fetch") as pool:
            futures = [pool.submit(self.run_job, s, tf, now_ms, backfill=backfill) for s, tf in jobs]
            return [f.result() for f in futures]

    def _last_fetch(self, symbol: str, timeframe: str) -> int | None:
        key = last_fetch_key(symbol, timeframe)
        raw = self.cache.get(key)
        if raw is None:
            return None
        try:
            return int(raw.decode() if isinstance(raw, bytes) else raw)
        except ValueError:
            log.warning("cache key %r holds %r, not a bar-open ms; fetching as if absent", key, raw)
            return None

    def run_job(self, symbol: str, timeframe: str, now_ms: int, *, backfill: bool = False) -> FetchResult:
        tf_ms = interval_ms(timeframe)
        boundary = boundary_ms(now_ms, tf_ms)
        if not is_due(boundary, self._last_fetch(symbol, timeframe), backfill):
            return FetchResult(symbol, timeframe, "not_due", boundary)
        lookback = per_timeframe(self.lookback_bars, timeframe, "lookback_bars")
        depth = per_timeframe(self.backfill_bars, timeframe, "backfill_bars")
        since = window_since_ms(now_ms, tf_ms, lookback, depth, self.latest_open(symbol, timeframe))
        try:
            candles = self.client.candle_snapshot(self.coin(symbol), timeframe, since, now_ms)
            bars = [
                Bar(
                    symbol=symbol,
                    timeframe=timeframe,
                    ts_open=c.ts_open,
                    open=c.open,
                    high=c.high,
                    low=c.low,
                    close=c.close,
                    volume=c.volume,
                    is_final=c.ts_open + tf_ms <= now_ms,
                )
                for c in candles
            ]
            if bars:
                self.writer(bars)
        except RateLimited as exc:
            log.warning("OHLCV %s %s skipped: %s", symbol, timeframe, exc)
            return self._done(FetchResult(symbol, timeframe, "rate_limited", boundary, since, 0, str(exc)))
        except HyperliquidError as exc:
            log.warning("OHLCV %s %s failed: %s", symbol, timeframe, exc)
            return self._done(FetchResult(symbol, timeframe, "error", boundary, since, 0, str(exc)))
        except Exception as exc:
            log.exception("OHLCV %s %s failed while storing", symbol, timeframe)
            return self._done(
                FetchResult(symbol, timeframe, "error", boundary, since, 0, f"{type(exc).__name__}: {exc}")
            )
        self.cache.set(last_fetch_key(symbol, timeframe), str(boundary), LAST_FETCH_TTL_S)
        return self._done(FetchResult(symbol, timeframe, "ok", boundary, since, len(bars)))

    def _done(self, result: FetchResult) -> FetchResult:
        if self.metrics is not None:
            self.metrics.market_data_fetch_total.labels(
                symbol=result.symbol, timeframe=result.timeframe, result=result.outcome
            ).inc()
        return result
