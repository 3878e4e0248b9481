"""Market weight, volatility and the volatility goal (providence.md §6, §11, §12)."""

from __future__ import annotations

import math

import pytest

from ttt.providence import reference as ref


def test_weight_example_one() -> None:
    closes = [100.00, 100.02, 100.00, 99.98, 99.985]
    total = 0.0
    for c in closes:
        total = total + c
    assert total / 5 == 99.997
    assert 0.0001 * (total / 5) == 0.0099997
    assert ref.market_weight(closes) == -0.25


def test_weight_example_two_dead_band_is_strict() -> None:
    closes = [100.0, 100.01, 100.03, 100.03]
    theta = 0.0001 * (((((0.0 + 100.0) + 100.01) + 100.03) + 100.03) / 4)
    first_difference = 100.01 - 100.0
    assert theta == pytest.approx(0.01000175, abs=1e-17)
    assert first_difference == pytest.approx(0.0100000000000051, abs=1e-16)
    assert first_difference < theta
    assert ref.market_weight(closes) == 1 / 3


def test_weight_dead_band_constant_equals_reference() -> None:
    assert 0.01 / 100 == 0.0001


def test_weight_short_or_flat_series_is_zero() -> None:
    assert ref.market_weight([]) == 0.0
    assert ref.market_weight([100.0]) == 0.0
    assert ref.market_weight([100.0, None, float("nan")]) == 0.0
    assert ref.market_weight([100.0, 100.0, 100.0]) == 0.0
    # Up then down cancels: Z = 0 gives exactly 0.0.
    assert ref.market_weight([100.0, 101.0, 100.0]) == 0.0


def test_weight_skips_missing_closes() -> None:
    # Closes [100, 101, 102] after skipping: two rises over K − 1 = 2 differences.
    assert ref.market_weight([100.0, None, 101.0, float("inf"), 102.0]) == 1.0
    assert ref.market_weight([3.0, 2.0, 1.0, 1.0, 1.0]) == -0.5


def test_volatility_examples() -> None:
    assert ref.volatility_from_bars([105.5], [100.25]) == 5.25
    assert ref.volatility_from_bars([101, 102, 100.5], [99, 100, 98.5]) == 2.8333333333333335


def test_volatility_unavailable_without_finite_bars() -> None:
    assert ref.volatility_from_bars([], []) is None
    assert ref.volatility_from_bars([float("nan"), 3.0], [1.0, None]) is None
    with pytest.raises(ValueError, match="highs"):
        ref.volatility_from_bars([1.0], [])


def test_volatility_excludes_non_finite_bars() -> None:
    assert ref.volatility_from_bars([101, float("inf"), 102, 100.5], [99, 1, 100, 98.5]) == 2.8333333333333335


def test_volatility_uses_last_61_trailing_61_bar_windows() -> None:
    # 130 bars: bar i (1-based) has high = i, low = i − 1 (integers, so every value is exact).
    k = 130
    highs = [float(i) for i in range(1, k + 1)]
    lows = [float(i - 1) for i in range(1, k + 1)]
    # For j ≥ 61 the window i = j−60 … j gives max high j and min low j−61: r_j = 61.
    # σ averages r_j for j = 70 … 130, all 61.
    assert ref.volatility_from_bars(highs, lows) == 61.0
    # K = 61: r_j = j (window 1 … j), σ = (1 + … + 61) / 61 = 31.
    assert ref.volatility_from_bars(highs[:61], lows[:61]) == 31.0
    # K = 62: terms j = 2 … 62 → r = 2 … 61 then r_62 = 62 − 1 = 61; sum = (2+…+61) + 61 = 1890 + 61.
    assert ref.volatility_from_bars(highs[:62], lows[:62]) == (1890.0 + 61.0) / 61


def test_volatility_goal_example() -> None:
    assert ref.volatility_goal(600.0, 100_000.0, 0.002, 0.01, 0.5, 5) == 1.5811388300841898


def test_volatility_goal_clamps_and_flat_band() -> None:
    assert ref.volatility_goal(50.0, 100_000.0, 0.002, 0.01, 0.5, 5) == 0.5
    assert ref.volatility_goal(5000.0, 100_000.0, 0.002, 0.01, 0.5, 5) == 5.0
    assert ref.volatility_goal(600.0, 100_000.0, 0.003, 0.003, 0.7, 9) == 0.7
    # Band edges: s = 0 gives min_goal, s = 1 gives max_goal up to the exp/log round trip.
    assert ref.volatility_goal(200.0, 100_000.0, 0.002, 0.01, 0.5, 5) == 0.5
    edge = ref.volatility_goal(1000.0, 100_000.0, 0.002, 0.01, 0.5, 5)
    assert edge == min(math.exp(1.0 * math.log(5 / 0.5)) * 0.5, 5.0)


def test_volatility_goal_overflow_clamps_to_max_goal() -> None:
    # s × ln(max/min) ≈ 1.2e5 overflows exp; the IEEE result +inf clamps to max_goal (spec note).
    assert ref.volatility_goal(600.0, 110.0, 0.002, 0.01, 0.5, 5) == 5.0
    # Huge negative exponents underflow to 0.0 and clamp to min_goal.
    assert ref.volatility_goal(0.0, 100_000.0, 0.5, 0.5000001, 0.5, 5) == 0.5
