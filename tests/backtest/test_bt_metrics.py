"""§10.3 metric definitions on hand-made equity series (SV-15); expected values computed by hand here."""

from __future__ import annotations

import math
import statistics

import pytest

from ttt.services.backtest.metrics import (
    EquitySample,
    FillFacts,
    annual_turnover,
    cagr,
    counts,
    daily_returns,
    exposure_mean,
    max_drawdown,
    max_drawdown_duration_s,
    sharpe,
    sortino,
    total_return,
    trading_metrics,
    turnover,
)

DAY = 86400.0
T0 = 1_753_142_400.0  # 2025-07-22T00:00:00Z, a UTC midnight


def test_sv15_total_return_drawdown_and_sharpe_on_daily_series() -> None:
    ts = [T0 + i * DAY for i in range(4)]
    values = [100.0, 110.0, 99.0, 120.0]
    assert total_return(values) == pytest.approx(0.2)
    assert max_drawdown(values) == pytest.approx(0.1)  # 1 − 99/110
    r = daily_returns(ts, values)
    assert r == pytest.approx([0.1, -0.1, 120 / 99 - 1])
    # by hand: mean and sample standard deviation of the three daily returns
    r3 = 21 / 99  # 0.212121…
    mean = (0.1 - 0.1 + r3) / 3
    std = math.sqrt(((0.1 - mean) ** 2 + (-0.1 - mean) ** 2 + (r3 - mean) ** 2) / 2)
    assert sharpe(r) == pytest.approx(mean / std * math.sqrt(365))
    m = trading_metrics([EquitySample(t, v) for t, v in zip(ts, values, strict=True)], [], funding_usd=0.0)
    assert m["total_return"] == pytest.approx(0.2)
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(365))


def test_sortino_uses_root_mean_square_of_negative_returns() -> None:
    r = [0.1, -0.1, 21 / 99]
    downside = math.sqrt((0 + 0.01 + 0) / 3)
    assert sortino(r) == pytest.approx(statistics.fmean(r) / downside * math.sqrt(365))
    assert sortino([0.01, 0.02]) is None  # no downside: undefined, not infinite
    assert sortino([-0.01]) is None


def test_sharpe_is_null_below_two_returns_or_zero_spread() -> None:
    assert sharpe([0.05]) is None
    assert sharpe([]) is None
    assert sharpe([0.01, 0.01, 0.01]) is None


def test_daily_returns_use_utc_midnights_and_only_whole_days() -> None:
    # hourly samples from 06:00 on day 0 to 12:00 on day 2: whole days are day 1 only (00:00 → 00:00)
    ts = [T0 + 6 * 3600 + h * 3600 for h in range(55)]
    values = [100.0 + h for h in range(55)]
    # equity at day-1 midnight (h = 18) is 118, at day-2 midnight (h = 42) is 142
    assert daily_returns(ts, values) == pytest.approx([142 / 118 - 1])
    # the value at a boundary is the last sample at or before it (90 arrives 5 s after the last midnight)
    assert daily_returns([T0 - 10, T0 + DAY - 10, T0 + 2 * DAY + 5], [50.0, 60.0, 90.0]) == pytest.approx(
        [60 / 50 - 1, 0.0]
    )


def test_cagr_annualises_and_is_null_under_one_day_or_at_ruin() -> None:
    year = 365.25 * DAY
    assert cagr([0.0, year], [100.0, 121.0]) == pytest.approx(0.21)
    assert cagr([0.0, 2 * year], [100.0, 121.0]) == pytest.approx(0.1)  # √1.21 − 1
    assert cagr([0.0, 3600.0], [100.0, 101.0]) is None
    assert cagr([0.0, year], [100.0, 0.0]) is None


def test_max_drawdown_takes_the_deepest_fall_from_a_running_peak() -> None:
    assert max_drawdown([100.0, 80.0, 120.0, 90.0, 130.0]) == pytest.approx(0.25)  # 1 − 90/120
    assert max_drawdown([100.0, 101.0, 102.0]) == 0.0


def test_max_drawdown_duration_peak_to_recovery_or_end() -> None:
    ts = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    # peak 110 at t=10, recovered at t=40 (30 s); then peak 115 at t=40, never recovered (20 s to the end)
    assert max_drawdown_duration_s(ts, [100.0, 110.0, 90.0, 105.0, 115.0, 100.0, 114.0]) == 30.0
    # still under water at the end: measured to the end
    assert max_drawdown_duration_s(ts[:4], [100.0, 90.0, 95.0, 99.0]) == 30.0
    # flat at the peak is not a drawdown; the peak time moves forward
    assert max_drawdown_duration_s(ts[:4], [100.0, 100.0, 90.0, 100.0]) == 20.0
    assert max_drawdown_duration_s([0.0, 1.0], [1.0, 2.0]) == 0.0


def test_turnover_exposure_and_counts() -> None:
    values = [100.0, 200.0, 300.0]  # mean 200
    assert turnover([50.0, -150.0, 200.0], values) == pytest.approx(2.0)
    assert annual_turnover(2.0, 0.5) == pytest.approx(4.0)
    assert annual_turnover(2.0, 0.0) is None
    assert exposure_mean([50.0, 100.0, 0.0], values) == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert counts(["b", "a", "b", None]) == {"a": 1, "b": 2}
    assert list(counts(["z", "a"])) == ["a", "z"]


def test_trading_metrics_sums_fees_and_counts_orders_by_final_status() -> None:
    samples = [EquitySample(0.0, 100.0, gross_exposure_usd=50.0), EquitySample(60.0, 102.0)]
    fills = [FillFacts(40.0, 0.018), FillFacts(60.0, 0.027)]
    m = trading_metrics(
        samples,
        fills,
        funding_usd=0.5,
        order_statuses=[("FILLED", True), ("REJECTED", False), ("CANCELED", False), ("CANCELED", True)],
        hold_reasons=["stale_price", "stale_price", "quorum_failed"],
        epoch_kinds=["baseline", "take_profit", "take_profit"],
    )
    assert m["fees_usd"] == pytest.approx(0.045)
    assert m["funding_usd"] == 0.5
    assert m["trades"] == 2
    assert m["turnover"] == pytest.approx(100 / 101)
    assert m["orders"] == 4
    assert m["orders_rejected"] == 1
    assert m["orders_unfilled"] == 1
    assert m["orders_by_status"] == {"CANCELED": 2, "FILLED": 1, "REJECTED": 1}
    assert m["holds"] == {"quorum_failed": 1, "stale_price": 2}
    assert m["epochs"] == {"baseline": 1, "take_profit": 2}
    assert m["exposure_mean"] == pytest.approx(0.25)


def test_bad_series_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="empty"):
        cagr([], [])
    with pytest.raises(ValueError, match="ascending"):
        max_drawdown_duration_s([10.0, 5.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="timestamps"):
        daily_returns([0.0], [1.0, 2.0])
