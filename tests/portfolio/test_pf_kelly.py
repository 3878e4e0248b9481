"""Kelly sizing and cohort metrics: portfolio.md §21.3 (pins K-*)."""

from __future__ import annotations

import pytest

from ttt.domain.desired import Aggregate, DesiredConfig, KellyInputs, Population, desired_position
from ttt.domain.kelly import (
    current_cohort_samples,
    historical_cohort_samples,
    kelly_metrics,
    kelly_size,
)
from ttt.domain.results import Flat, Unknown, Value
from ttt.domain.run_records import RunRecord

# (id, K_c, K_h, expected S) with S_base = 100 and τ = 0.5
SIZING = [
    ("K_01", 0.0, 0.2, 150.0),
    ("K_02", 0.0, -0.2, 150.0),
    ("K_03", -0.1, 0.2, 2.0),
    ("K_04", 0.1, -0.2, 150.0),
    ("K_05", 0.1, 0.2, 50.0),
    ("K_06", 0.3, 0.2, 150.0),
    ("K_07", -0.04, -0.08, 150.0),
    ("K_08", -0.079, -0.04, 2.5),
    ("K_09", -0.081, -0.04, 2.0),
    ("K_10", -0.2, -0.1, 0.0),
    ("K_11", 0.2, 0.0, 100.0),
    ("K_12", None, None, 25.0),
    ("K_13", 0.3, 0.0, 100.0),
    ("K_14", -0.04, -0.08, 150.0),
    ("K_15", -0.12, -0.08, 50.0),
    ("K_16", -0.02, -0.08, 150.0),
    ("K_17", -0.24, -0.08, 2.0),
    ("K_18", 0.1, None, 25.0),
]


@pytest.mark.parametrize(("k_c", "k_h", "expected"), [c[1:] for c in SIZING], ids=[c[0] for c in SIZING])
def test_K_01_to_18_sizing(k_c: float | None, k_h: float | None, expected: float) -> None:
    assert kelly_size(100.0, k_c, k_h, 0.5, 0.25).size == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_K_06_binary64_value_of_the_capped_boost() -> None:
    # 1 − 0.3/0.2 is −0.4999999999999998 in binary64, so the flip lands just under τ and is not capped.
    assert kelly_size(100.0, 0.3, 0.2).size == 149.99999999999997


def test_K_08_not_floored_and_K_09_floored() -> None:
    assert kelly_size(100.0, -0.079, -0.04).performance == pytest.approx(-0.975, rel=1e-9)
    assert kelly_size(100.0, -0.081, -0.04).performance == -0.98


def test_K_10_zero_size_makes_desired_flat() -> None:
    outcome = desired_position(
        Population(3, 1000.0),
        Aggregate(n=3, sum_dir=2, sum_pnl=5.0),
        balance=100_000.0,
        kelly=KellyInputs(-0.2, -0.1),
        price=Value(100.0),
        now=1000.0,
        cfg=DesiredConfig(risk_pos_percentage=0.001),
    )
    assert outcome.result == Flat("zero_size")
    assert outcome.breakdown.size_usd == 0.0


def test_K_12_and_K_18_probation_rule() -> None:
    assert kelly_size(100.0, None, None).rule == "probation"
    assert kelly_size(100.0, 0.1, None).rule == "probation"


def test_K_20_two_rows_is_none() -> None:
    assert kelly_metrics([1.0, -1.0]) is None


def test_K_21_metrics_hand_calculated() -> None:
    rows = [5, 3, 4, 6, 2.5, 1.5, -2, -1.5, -2.5, -1, -3, -2.2]
    metrics = kelly_metrics(rows)
    assert metrics is not None
    # W̄ = 22/6, L̄ = 12.2/6, R = 22/12.2, K = 0.5 − 0.5/R
    assert metrics.win_rate == 0.5
    assert metrics.payoff_ratio == pytest.approx(1.8032786885, rel=1e-9)
    assert metrics.kelly == pytest.approx(0.2227272727, rel=1e-9)


def test_K_22_no_losses_is_none() -> None:
    assert kelly_metrics([1.0] * 10) is None


def test_K_23_zero_and_null_excluded_from_n() -> None:
    nine = [1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -2.0, -3.0, -4.0]
    assert kelly_metrics([*nine, 0.0, None, 0.0]) is None  # would be n = 12 if counted
    ten = [*nine, -5.0]
    with_noise = kelly_metrics([*ten, 0.0, None])
    assert with_noise is not None
    assert with_noise.win_rate == 0.5  # 5 of 10, not 5 of 12


def test_K_24_historical_gate_keeps_only_positive_heights() -> None:
    s = "BTC/USDC:USDC"
    runs = [
        RunRecord(s, 1, 4.0, 0.0, exit_run=True, height=1),
        RunRecord(s, 1, 1.0, 0.0, exit_run=True, height=1),
        RunRecord(s, -1, -4.0, 0.0, exit_run=True, height=2),
        RunRecord(s, -1, 1.0, 0.0, exit_run=True, height=2),
        RunRecord("ETH/USDC:USDC", 1, 100.0, 0.0, exit_run=True, height=2),
        RunRecord(s, 1, 7.0, 0.0),  # current cohort, never historical
    ]
    assert historical_cohort_samples(runs, s) == [4.0, 1.0]
    assert current_cohort_samples(runs, s) == [7.0]


def test_K_25_quote_in_symbol_is_plain_data() -> None:
    # The SQL binding half of K-25 belongs to the service layer; the pure filter treats it as data.
    symbol = "BTC'/USDC:USDC"
    runs = [RunRecord("BTC/USDC:USDC", 1, 1.0, 0.0)]
    assert kelly_metrics(current_cohort_samples(runs, symbol)) is None


def test_K_26_kelly_error_holds_the_symbol() -> None:
    outcome = desired_position(
        Population(3, 1000.0),
        Aggregate(n=3, sum_dir=2, sum_pnl=5.0),
        balance=100_000.0,
        kelly=Unknown("kelly_error"),
        price=Value(100.0),
        now=1000.0,
        cfg=DesiredConfig(),
    )
    assert outcome.result == Unknown("kelly_error")
    assert isinstance(outcome.result, Unknown) and outcome.result.severity == "warning"
