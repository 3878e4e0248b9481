"""Seeded synthetic prices (services.md §6.5): a per-symbol GBM on a 1-second grid, with bars aggregated
from that path and constant funding.

The seed is derived from SHA-256, never from Python's process-salted `hash`, so two processes (and two
machines) produce the same path for the same `<seed>:<symbol>`. The path is generated in fixed one-hour
chunks in order, so how far ahead anybody has asked never changes a value.

Optional regimes (off unless configured; spec-notes "Synthetic regimes"): a Markov chain over volatility
multipliers and drifts plus Student-t shocks, for fat tails, volatility clustering and trends. They draw
from a second generator, so the Gaussian stream of the plain GBM is the same with or without them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ttt.adapters.market.files import BarSeries
from ttt.adapters.market.replay import PriceEvent, SimClock
from ttt.domain.orders import Bar

YEAR_S = 31_557_600
DT = 1.0 / YEAR_S
CHUNK_S = 3600
DEFAULT_FUNDING_HOURLY = 0.0000125
DEFAULT_START_PRICES: dict[str, float] = {
    "BTC/USDC:USDC": 100_000.0,
    "ETH/USDC:USDC": 3_000.0,
    "SOL/USDC:USDC": 150.0,
    "HYPE/USDC:USDC": 30.0,
}


def derive_seed(seed: int | str, symbol: str, salt: str = "") -> int:
    """First 8 bytes, big-endian, of SHA-256(`<seed>:<symbol>`) (+ `salt` for the regime stream)."""
    digest = hashlib.sha256(f"{seed}:{symbol}{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class RegimeParams:
    """Regime k has volatility `annual_vol · vol_multipliers[k]` and drift `drifts[k]` (the symbol's
    drift when None). Each second the chain leaves its regime with probability 1/`mean_duration_s`, to
    one of the others uniformly. `student_t_df` > 2 replaces the normal shocks by unit-variance
    Student-t ones."""

    vol_multipliers: tuple[float, ...] = (0.5, 1.0, 2.5)
    drifts: tuple[float, ...] | None = None
    mean_duration_s: float = 6 * 3600.0
    student_t_df: float | None = None
    initial: int = 1

    def __post_init__(self) -> None:
        k = len(self.vol_multipliers)
        if k < 1 or any(not (m > 0 and math.isfinite(m)) for m in self.vol_multipliers):
            raise ValueError("regime vol_multipliers must be a non-empty list of finite values > 0")
        if self.drifts is not None and len(self.drifts) != k:
            raise ValueError("regime drifts must have one entry per vol multiplier")
        if not self.mean_duration_s >= 1:
            raise ValueError("regime mean_duration_s must be ≥ 1 second")
        if self.student_t_df is not None and not self.student_t_df > 2:
            raise ValueError("regime student_t_df must be > 2 (finite variance)")
        if not 0 <= self.initial < k:
            raise ValueError("regime initial must index vol_multipliers")


@dataclass(frozen=True)
class SyntheticParams:
    start_price: float = 100.0
    annual_vol: float = 0.8
    annual_drift: float = 0.0
    regime: RegimeParams | None = None

    def __post_init__(self) -> None:
        if not (self.start_price > 0 and math.isfinite(self.start_price)):
            raise ValueError("synthetic start_price must be > 0")
        if not (self.annual_vol >= 0 and math.isfinite(self.annual_vol)):
            raise ValueError("synthetic annual_vol must be ≥ 0")
        if not math.isfinite(self.annual_drift):
            raise ValueError("synthetic annual_drift must be finite")


def default_params(symbol: str) -> SyntheticParams:
    return SyntheticParams(start_price=DEFAULT_START_PRICES.get(symbol, 100.0))


class SyntheticPath:
    """S_0 = start price; S_{k+1} = S_k·exp((μ − σ²/2)·dt + σ·√dt·Z_k), one value per second."""

    def __init__(self, seed: int | str, symbol: str, params: SyntheticParams) -> None:
        self.params = params
        self._rng = np.random.Generator(np.random.PCG64(derive_seed(seed, symbol)))
        self._regime_rng = np.random.Generator(np.random.PCG64(derive_seed(seed, symbol, ":regime")))
        self._regime = params.regime.initial if params.regime else 0
        self._chunks: list[npt.NDArray[np.float64]] = []
        self._regimes: list[npt.NDArray[np.int64]] = []
        self._last = params.start_price
        self._carry = 0.0
        self._length = 0
        self._values: npt.NDArray[np.float64] = np.empty(0)

    def __len__(self) -> int:
        return self._length

    def _next_chunk(self) -> None:
        p = self.params
        z = self._rng.standard_normal(CHUNK_S)
        sigma = np.full(CHUNK_S, p.annual_vol)
        mu = np.full(CHUNK_S, p.annual_drift)
        regimes = np.zeros(CHUNK_S, dtype=np.int64)
        if p.regime is not None:
            regimes = self._regime_path(p.regime)
            sigma = sigma * np.asarray(p.regime.vol_multipliers)[regimes]
            if p.regime.drifts is not None:
                mu = np.asarray(p.regime.drifts, dtype=np.float64)[regimes]
            if p.regime.student_t_df is not None:
                nu = p.regime.student_t_df
                w = self._regime_rng.chisquare(nu, CHUNK_S)
                z = z / np.sqrt(w / nu) * math.sqrt((nu - 2.0) / nu)
        increments = (mu - sigma**2 / 2.0) * DT + sigma * math.sqrt(DT) * z
        # Chunk c holds S_{cN} … S_{cN+N-1}; its first step uses the previous chunk's last increment.
        log_path = np.cumsum(np.concatenate(([self._carry], increments[:-1])))
        values = self._last * np.exp(log_path)
        self._carry = float(increments[-1])
        self._last = float(values[-1])
        self._chunks.append(values)
        self._regimes.append(regimes)
        self._length += CHUNK_S

    def _regime_path(self, regime: RegimeParams) -> npt.NDArray[np.int64]:
        k = len(regime.vol_multipliers)
        leave = self._regime_rng.random(CHUNK_S) < 1.0 / regime.mean_duration_s
        out = np.empty(CHUNK_S, dtype=np.int64)
        current, start = self._regime, 0
        for idx in np.flatnonzero(leave).tolist() if k > 1 else []:
            out[start:idx] = current
            step = int(self._regime_rng.integers(1, k))
            current = (current + step) % k
            start = idx
        out[start:] = current
        self._regime = current
        return out

    def ensure(self, n: int) -> None:
        if n > self._length:
            while self._length < n:
                self._next_chunk()
            self._values = np.concatenate(self._chunks)

    def values(self, start: int, stop: int) -> npt.NDArray[np.float64]:
        """S_start … S_{stop-1}."""
        self.ensure(stop)
        return self._values[start:stop]

    def regimes(self, start: int, stop: int) -> npt.NDArray[np.int64]:
        self.ensure(stop)
        return np.concatenate(self._regimes)[start:stop]


class SyntheticSource:
    """Synthetic prices on a simulated Clock. The path starts `warmup_bars` minutes before the
    minute containing `start_s`, so warm-up history exists at the start."""

    name = "synthetic"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        start_s: float,
        seed: int | str = 42,
        params: Mapping[str, SyntheticParams] | None = None,
        tick_s: float = 5.0,
        end_s: float | None = None,
        warmup_bars: int = 1440,
        funding_hourly: float = DEFAULT_FUNDING_HOURLY,
    ) -> None:
        if not symbols:
            raise ValueError("synthetic source needs at least one symbol")
        if not tick_s > 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s}")
        chosen = dict(params or {})
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.seed = seed
        self.tick_s = float(tick_s)
        self.start_s = float(start_s)
        self.end_s = None if end_s is None else float(end_s)
        self.funding = funding_hourly
        self.origin_s = math.floor(self.start_s / 60.0) * 60 - warmup_bars * 60
        self._paths = {s: SyntheticPath(seed, s, chosen.get(s) or default_params(s)) for s in self.symbols}
        self.clock = SimClock(self.start_s)

    def path(self, symbol: str) -> SyntheticPath:
        return self._paths[symbol]

    def tick_times(self) -> Iterator[float]:
        k = 0
        while self.end_s is None or self.start_s + k * self.tick_s <= self.end_s + 1e-9:
            yield self.start_s + k * self.tick_s
            k += 1

    def run(self) -> Iterator[tuple[float, list[PriceEvent]]]:
        for t in self.tick_times():
            self.clock.set(t)
            yield t, self.prices()

    def advance_to(self, t: float) -> None:
        self.clock.set(t)

    def price(self, symbol: str) -> float:
        k = math.floor(self.clock.now()) - self.origin_s
        return float(self._paths[symbol].values(k, k + 1)[0])

    def prices(self) -> list[PriceEvent]:
        now = self.clock.now()
        return [PriceEvent(s, now, self.price(s), self.name) for s in self.symbols]

    def visible_bars(self, symbol: str) -> BarSeries:
        """Completed 1m bars from the path origin up to the Clock; volume is 1 per second."""
        minutes = max(0, (math.floor(self.clock.now()) - self.origin_s) // 60)
        values = self._paths[symbol].values(0, minutes * 60).reshape(minutes, 60)
        ts = (self.origin_s + 60 * np.arange(minutes, dtype=np.int64)) * 1000
        return BarSeries(
            symbol,
            "1m",
            ts,
            np.ascontiguousarray(values[:, 0]),
            values.max(axis=1),
            values.min(axis=1),
            np.ascontiguousarray(values[:, -1]),
            np.full(minutes, 60.0),
            source=self.name,
        )

    def forming_bar(self, symbol: str) -> Bar:
        now_k = math.floor(self.clock.now()) - self.origin_s
        start_k = (now_k // 60) * 60
        seen = self._paths[symbol].values(start_k, now_k + 1)
        return Bar(
            symbol,
            "1m",
            (self.origin_s + start_k) * 1000,
            float(seen[0]),
            float(seen.max()),
            float(seen.min()),
            float(seen[-1]),
            float(seen.shape[0]),
            is_final=False,
        )

    def funding_hourly(self, symbol: str) -> float:
        return self.funding
