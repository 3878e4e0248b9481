"""Baselines of services.md §10.4: what the strategy must beat on the same data, period and fees."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ttt.services.backtest.metrics import EquitySample, FillFacts

BASELINES = ("buy_and_hold", "random_vote")


def vote_seed(seed: int, cycle_id: str, symbol: str) -> int:
    """First 8 bytes, big-endian, of SHA-256(`<seed>:<cycle_id>:<symbol>`): no process-salted hash (§6.5)."""
    digest = hashlib.sha256(f"{seed}:{cycle_id}:{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def random_vote(seed: int, cycle_id: str, symbol: str) -> int:
    """The random_vote direction for one symbol in one cycle: a uniform ±1 from a PCG64 generator."""
    rng = np.random.Generator(np.random.PCG64(vote_seed(seed, cycle_id, symbol)))
    return 1 if rng.random() < 0.5 else -1


@dataclass(frozen=True)
class RandomVote:
    """The reconciliation hook (`ReconcileService.direction_vote`) for the random_vote baseline."""

    seed: int

    def __call__(self, cycle_id: str, symbol: str) -> int:
        return random_vote(self.seed, cycle_id, symbol)


@dataclass(frozen=True)
class BuyAndHold:
    samples: list[EquitySample]
    fills: list[FillFacts]


def buy_and_hold(
    ts: Sequence[float],
    prices: Sequence[Mapping[str, float]],
    start_equity: float,
    *,
    taker_fee: float,
    half_spread_bps: float,
    slippage_bps: float,
) -> BuyAndHold:
    """Split E₀ equally, buy each symbol once at t₀ as a taker (the paper engine's taker price
    P·(1 + h)·(1 + s) and taker fee, 1× notional), hold to the end with no funding.

    Sizes are not rounded to lots: the baseline measures the market, not the exchange's size grid.
    """
    if len(ts) != len(prices) or not ts:
        raise ValueError("buy_and_hold needs one price map per sample and at least one sample")
    first = prices[0]
    if not first:
        raise ValueError("buy_and_hold: no symbol has a price at the start")
    symbols = sorted(first)
    per_symbol = start_equity / len(symbols)
    buy_factor = (1 + half_spread_bps / 10_000) * (1 + slippage_bps / 10_000)
    sizes: dict[str, float] = {}
    fills: list[FillFacts] = []
    for s in symbols:
        entry = first[s] * buy_factor
        sizes[s] = per_symbol / entry
        fills.append(FillFacts(per_symbol, per_symbol * taker_fee))
    cash = start_equity - sum(f.notional_usd + f.fee_usd for f in fills)
    last = dict(first)
    # E₀ is the equity before the purchase, so the entry costs (fees, spread, slippage) count as return.
    samples = [EquitySample(ts[0], start_equity, start_equity)]
    for t, p in zip(ts[1:], prices[1:], strict=True):
        last.update({s: v for s, v in p.items() if s in sizes})
        exposure = sum(sizes[s] * last[s] for s in symbols)
        samples.append(EquitySample(t, cash + exposure, cash, abs(exposure), exposure))
    return BuyAndHold(samples, fills)
