"""Desired position per symbol: portfolio.md §21.4 (pins DS-*)."""

from __future__ import annotations

import pytest

from ttt.domain.desired import (
    Aggregate,
    Bar,
    DesiredConfig,
    KellyInputs,
    LivePrice,
    Population,
    aggregate_runs,
    desired_position,
    newest_bar,
    runs_population,
    select_price,
    select_runs,
)
from ttt.domain.results import Flat, Result, Unknown, Value
from ttt.domain.run_records import RunRecord

NOW = 1_767_268_800.0
BTC = "BTC/USDC:USDC"


def _desired(
    agg: Aggregate,
    cfg: DesiredConfig | None = None,
    price: float = 118_000.0,
    population: Population | None = None,
) -> Result[float]:
    return desired_position(
        population or Population(max(agg.n, 1), NOW - 10),
        agg,
        balance=100_000.0,
        kelly=KellyInputs(0.1, 0.0),  # K_h = 0: S = S_base
        price=Value(price),
        now=NOW,
        cfg=cfg or DesiredConfig(risk_pos_percentage=0.0025),
    ).result


def test_DS_01_sizing_formula() -> None:
    outcome = desired_position(
        Population(5, NOW - 10),
        Aggregate(n=5, sum_dir=2, sum_pnl=100.0),
        balance=100_000.0,
        kelly=KellyInputs(0.1, 0.0),
        price=Value(118_000.0),
        now=NOW,
        cfg=DesiredConfig(risk_pos_percentage=0.0025),
    )
    assert isinstance(outcome.result, Value)
    assert outcome.breakdown.size_usd == 250.0  # Kelly returns 250
    assert outcome.result.value == pytest.approx(2 * 250 / 118_000, rel=1e-9)
    assert round(outcome.result.value, 6) == 0.004237
    bd = outcome.breakdown
    assert (bd.n, bd.sum_dir, bd.sum_pnl, bd.balance, bd.s_base, bd.price) == (
        5,
        2,
        100.0,
        100_000.0,
        250.0,
        118_000.0,
    )


def test_DS_02_no_selected_rows_is_flat() -> None:
    assert _desired(aggregate_runs([])) == Flat("no_qualifying_runs")


def test_DS_03_short_forbidden() -> None:
    cfg = DesiredConfig(risk_pos_percentage=0.0025, can_go_short=False)
    assert _desired(Aggregate(3, -2, 10.0), cfg) == Flat("direction_forbidden")


def test_DS_04_long_forbidden() -> None:
    cfg = DesiredConfig(risk_pos_percentage=0.0025, can_go_long=False)
    assert _desired(Aggregate(3, 2, 10.0), cfg) == Flat("direction_forbidden")


def test_DS_05_invert_applies_before_permission() -> None:
    cfg = DesiredConfig(risk_pos_percentage=0.0025, invert_decisions=True, can_go_short=False)
    result = _desired(Aggregate(3, -2, 10.0), cfg)
    assert isinstance(result, Value) and result.value > 0


def test_DS_06_non_positive_pnl_sum_is_flat() -> None:
    runs = [RunRecord(BTC, 1, -0.5, NOW - 5), RunRecord(BTC, 1, 0.2, NOW - 5)]
    agg = aggregate_runs(select_runs(runs, BTC, NOW, live_pnl_threshold=-1.0, run_freshness_s=600))
    assert agg.n == 2 and agg.sum_pnl <= 0
    assert _desired(agg) == Flat("no_qualifying_runs")


def test_DS_07_zero_direction_sum_is_flat() -> None:
    assert _desired(Aggregate(2, 0, 10.0)) == Flat("no_qualifying_runs")


def test_DS_08_silent_providence_is_unknown() -> None:
    runs = [RunRecord(BTC, 1, 5.0, NOW - 601), RunRecord(BTC, 1, 5.0, NOW - 700)]
    population = runs_population(runs, BTC)
    result = _desired(Aggregate(0, 0, 0.0), population=population)
    assert isinstance(result, Unknown)
    assert result.reason == "providence_silent" and result.severity == "critical"


def test_DS_08_boundary_600_s_is_not_silent() -> None:
    population = runs_population([RunRecord(BTC, 1, 5.0, NOW - 600)], BTC)
    assert _desired(Aggregate(0, 0, 0.0), population=population) == Flat("no_qualifying_runs")


def test_DS_09_no_active_runs_is_flat() -> None:
    ended = [RunRecord(BTC, 1, 5.0, NOW - 9999, end_time=NOW - 9999)]
    population = runs_population(ended, BTC)
    assert population.n_active == 0
    assert _desired(Aggregate(0, 0, 0.0), population=population) == Flat("no_qualifying_runs")


def test_DS_11_fresh_1m_close() -> None:
    assert select_price(Bar("1m", NOW - 30, 118_000.0), None, NOW) == Value(118_000.0)


def test_DS_12_stale_bar_falls_back_to_live_price() -> None:
    price = select_price(Bar("1m", NOW - 181, 118_000.0), LivePrice(118_100.0, NOW - 5), NOW)
    assert price == Value(118_100.0)


def test_DS_13_both_stale_is_unknown() -> None:
    price = select_price(Bar("1m", NOW - 181, 118_000.0), LivePrice(118_100.0, NOW - 61), NOW)
    assert isinstance(price, Unknown) and price.reason == "price_unavailable"
    result = desired_position(
        Population(1, NOW),
        Aggregate(1, 1, 1.0),
        100_000.0,
        KellyInputs(None, None),
        price,
        NOW,
        DesiredConfig(),
    ).result
    assert isinstance(result, Unknown) and result.reason == "price_unavailable"


def test_DS_14_newer_4h_bar_is_ignored() -> None:
    bars = [Bar("1m", NOW - 60, 118_000.0), Bar("4h", NOW - 10, 99_999.0), Bar("1m", NOW - 120, 1.0)]
    bar = newest_bar(bars)
    assert bar == Bar("1m", NOW - 60, 118_000.0)
    assert select_price(bar, None, NOW) == Value(118_000.0)


def test_DS_15_aggregate_error_is_unknown() -> None:
    result = desired_position(
        Population(1, NOW),
        Unknown("desired_state_error"),
        100_000.0,
        KellyInputs(None, None),
        Value(1.0),
        NOW,
        DesiredConfig(),
    ).result
    assert isinstance(result, Unknown)
    assert result.reason == "desired_state_error" and result.severity == "critical"


def test_DS_16_freshness_window() -> None:
    runs = [RunRecord(BTC, 1, 1.0, NOW - 599), RunRecord(BTC, -1, 2.0, NOW - 601)]
    selected = select_runs(runs, BTC, NOW, 0.2, 600)
    assert selected == [runs[0]]


def test_DS_17_threshold_is_strict() -> None:
    runs = [RunRecord(BTC, 1, 0.2, NOW - 1), RunRecord(BTC, 1, 0.2000001, NOW - 1)]
    assert select_runs(runs, BTC, NOW, 0.2, 600) == [runs[1]]


def test_selection_applies_every_filter() -> None:
    keep = RunRecord(BTC, 1, 1.0, NOW - 1)
    runs = [
        keep,
        RunRecord(BTC, 1, 1.0, NOW - 1, exit_run=True),
        RunRecord(BTC, 1, 1.0, NOW - 1, height=3),
        RunRecord(BTC, 1, 1.0, NOW - 1, end_time=NOW - 2),
        RunRecord(BTC, 0, 1.0, NOW - 1),
        RunRecord("ETH/USDC:USDC", 1, 1.0, NOW - 1),
        RunRecord(BTC, 1, None, NOW - 1),
    ]
    assert select_runs(runs, BTC, NOW, 0.2, 600) == [keep]
