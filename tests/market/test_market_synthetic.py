"""Synthetic source: seed derivation, reproducible GBM, bar aggregation, optional regimes."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from ttt.adapters.market.synthetic import (
    RegimeParams,
    SyntheticParams,
    SyntheticPath,
    SyntheticSource,
    derive_seed,
)

START = 1_750_000_000.0
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"


def test_seed_is_sha256_prefix_big_endian() -> None:
    digest = hashlib.sha256(b"42:BTC/USDC:USDC").hexdigest()
    assert derive_seed(42, BTC) == int(digest[:16], 16)
    assert derive_seed("42", BTC) == derive_seed(42, BTC)
    assert derive_seed(42, ETH) != derive_seed(42, BTC)


def test_path_matches_the_spec_recurrence() -> None:
    """S_{t+1} = S_t·exp((μ − σ²/2)·dt + σ·√dt·Z), Z from PCG64(seed), computed here step by step."""
    mu, sigma, s0, n = 0.05, 0.8, 100_000.0, 500
    path = SyntheticPath(7, BTC, SyntheticParams(start_price=s0, annual_vol=sigma, annual_drift=mu))
    rng = np.random.Generator(np.random.PCG64(int(hashlib.sha256(b"7:BTC/USDC:USDC").hexdigest()[:16], 16)))
    z = rng.standard_normal(n)
    dt = 1 / 31_557_600
    expected = [s0]
    for k in range(n - 1):
        expected.append(expected[-1] * math.exp((mu - sigma**2 / 2) * dt + sigma * math.sqrt(dt) * z[k]))
    np.testing.assert_allclose(path.values(0, n), expected, rtol=1e-12)


def test_identical_seeds_identical_paths_and_symbols_differ() -> None:
    a = SyntheticSource([BTC, ETH], start_s=START, seed=42)
    b = SyntheticSource([BTC, ETH], start_s=START, seed=42)
    c = SyntheticSource([BTC], start_s=START, seed=43)
    n = 3 * 3600 + 17
    np.testing.assert_array_equal(a.path(BTC).values(0, n), b.path(BTC).values(0, n))
    assert not np.array_equal(a.path(BTC).values(0, n) / 100_000, a.path(ETH).values(0, n) / 3_000)
    assert not np.array_equal(a.path(BTC).values(0, n), c.path(BTC).values(0, n))
    assert a.path(BTC).values(0, 1)[0] == 100_000.0 and a.path(ETH).values(0, 1)[0] == 3_000.0


def test_values_do_not_depend_on_how_far_ahead_was_asked() -> None:
    far = SyntheticPath(1, BTC, SyntheticParams(100.0))
    far.ensure(5 * 3600)
    near = SyntheticPath(1, BTC, SyntheticParams(100.0))
    stitched = np.concatenate([near.values(0, 10), near.values(10, 4000), near.values(4000, 5 * 3600)])
    np.testing.assert_array_equal(far.values(0, 5 * 3600), stitched)


def test_bars_aggregate_the_path_and_respect_the_clock() -> None:
    src = SyntheticSource([BTC], start_s=START + 17, seed=5, warmup_bars=30)
    assert src.origin_s == 1_750_000_000 - 40 - 30 * 60  # minute floor of START, minus the warm-up
    bars = src.visible_bars(BTC)
    assert len(bars) == 30
    raw = src.path(BTC).values(0, 30 * 60)
    for m in (0, 13, 29):
        seconds = raw[m * 60 : (m + 1) * 60]
        assert bars.ts_ms[m] == (src.origin_s + 60 * m) * 1000
        assert (bars.open[m], bars.close[m]) == (seconds[0], seconds[-1])
        assert (bars.high[m], bars.low[m], bars.volume[m]) == (seconds.max(), seconds.min(), 60.0)
    assert np.all(bars.ts_ms + 60_000 <= src.clock.now() * 1000)
    k = int(src.clock.now()) - src.origin_s
    assert k == 30 * 60 + 57 and src.price(BTC) == src.path(BTC).values(k, k + 1)[0]
    forming = src.forming_bar(BTC)
    assert forming.ts_open == (src.origin_s + 30 * 60) * 1000 and not forming.is_final
    assert forming.volume == 58.0  # START is 40 s into its minute; +17 s → seconds 0 … 57 seen


def test_prices_are_reproducible_over_a_run() -> None:
    def run() -> list[float]:
        src = SyntheticSource([BTC, ETH], start_s=START, end_s=START + 600, seed=9, tick_s=5)
        return [e.price for _, events in src.run() for e in events]

    first = run()
    assert first == run() and len(first) == 2 * 121


def test_regime_off_is_plain_gbm_and_single_regime_is_identical() -> None:
    plain = SyntheticPath(3, BTC, SyntheticParams(100.0))
    one = SyntheticPath(
        3, BTC, SyntheticParams(100.0, regime=RegimeParams(vol_multipliers=(1.0,), initial=0))
    )
    np.testing.assert_array_equal(plain.values(0, 7200), one.values(0, 7200))


def test_regimes_switch_reproducibly_and_fatten_tails() -> None:
    params = SyntheticParams(
        100.0, regime=RegimeParams(vol_multipliers=(0.5, 1.0, 3.0), mean_duration_s=1800, student_t_df=3.5)
    )
    a = SyntheticPath(11, BTC, params)
    b = SyntheticPath(11, BTC, params)
    n = 24 * 3600
    np.testing.assert_array_equal(a.values(0, n), b.values(0, n))
    regimes = a.regimes(0, n)
    assert set(np.unique(regimes).tolist()) == {0, 1, 2}
    switches = int(np.count_nonzero(np.diff(regimes)))
    assert 20 < switches < 90  # about n / 1800 = 48
    returns = np.diff(np.log(a.values(0, n)))
    plain = np.diff(np.log(SyntheticPath(11, BTC, SyntheticParams(100.0)).values(0, n)))

    def kurtosis(x: np.ndarray) -> float:
        d = x - x.mean()
        return float((d**4).mean() / (d**2).mean() ** 2 - 3)

    assert kurtosis(returns) > 3.0 and abs(kurtosis(plain)) < 0.2
    vol_by_regime = [returns[regimes[1:] == k].std() for k in range(3)]
    assert vol_by_regime[0] < vol_by_regime[1] < vol_by_regime[2]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="student_t_df"):
        RegimeParams(student_t_df=2.0)
    with pytest.raises(ValueError, match="start_price"):
        SyntheticParams(start_price=0.0)
