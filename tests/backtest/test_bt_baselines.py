"""§10.4 baselines: buy_and_hold arithmetic by hand; random_vote's seed derivation and its hook."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ttt.services.backtest.baselines import RandomVote, buy_and_hold, random_vote, vote_seed


def test_buy_and_hold_splits_equity_buys_as_taker_and_holds() -> None:
    result = buy_and_hold(
        [0.0, 60.0, 120.0],
        [{"A": 100.0, "B": 10.0}, {"A": 110.0, "B": 10.0}, {"A": 110.0}],
        1000.0,
        taker_fee=0.001,
        half_spread_bps=10.0,
        slippage_bps=0.0,
    )
    # 500 USD each, entry at P·1.001; fee 0.5 each
    size_a, size_b = 500 / 100.1, 500 / 10.01
    cash = 1000 - 1000 - 1.0
    assert [f.notional_usd for f in result.fills] == [500.0, 500.0]
    assert [f.fee_usd for f in result.fills] == pytest.approx([0.5, 0.5])
    values = [s.account_value for s in result.samples]
    assert values[0] == 1000.0  # before the purchase: entry costs count against the baseline
    assert values[1] == pytest.approx(cash + size_a * 110 + size_b * 10)
    assert values[2] == pytest.approx(cash + size_a * 110 + size_b * 10)  # B keeps its last price
    assert result.samples[1].gross_exposure_usd == pytest.approx(size_a * 110 + size_b * 10)


def test_buy_and_hold_refuses_a_start_without_prices() -> None:
    with pytest.raises(ValueError, match="no symbol has a price"):
        buy_and_hold([0.0], [{}], 1000.0, taker_fee=0.0, half_spread_bps=0.0, slippage_bps=0.0)


def test_vote_seed_is_the_first_eight_bytes_of_sha256_big_endian() -> None:
    digest = hashlib.sha256(b"1:sched:20250722T120000Z:BTC/USDC:USDC").digest()
    assert vote_seed(1, "sched:20250722T120000Z", "BTC/USDC:USDC") == int.from_bytes(digest[:8], "big")


def test_random_vote_is_a_seeded_uniform_sign() -> None:
    seed = vote_seed(3, "sched:X", "ETH/USDC:USDC")
    expected = 1 if np.random.Generator(np.random.PCG64(seed)).random() < 0.5 else -1
    assert random_vote(3, "sched:X", "ETH/USDC:USDC") == expected
    votes = [random_vote(3, f"sched:{i}", "ETH/USDC:USDC") for i in range(2000)]
    assert set(votes) == {-1, 1}
    assert 900 < votes.count(1) < 1100  # ±4.5σ of a fair coin
    assert RandomVote(3)("sched:7", "ETH/USDC:USDC") == votes[7]
    # another seed, cycle or symbol gives an independent draw sequence
    assert [random_vote(4, f"sched:{i}", "ETH/USDC:USDC") for i in range(64)] != votes[:64]
