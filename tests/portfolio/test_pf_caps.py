"""Margin caps and the clamp: portfolio.md §21.5 (pins CAP-*)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ttt.domain.caps import clamp, margin_caps, max_margin
from ttt.domain.quorum import Actual
from ttt.domain.results import Value
from ttt.domain.symbol_plan import PlanConfig, SymbolPlan, plan_symbol


def test_CAP_01_equal_leverage() -> None:
    assert margin_caps(["BTC", "ETH"], {"BTC": 50, "ETH": 50}, 1000.0) == {"BTC": 500.0, "ETH": 500.0}


def test_CAP_02_leverage_weighting() -> None:
    caps = margin_caps(["BTC", "HYPE"], {"BTC": 50, "HYPE": 5}, 1100.0)
    assert caps == {"BTC": pytest.approx(1000.0, rel=1e-9), "HYPE": pytest.approx(100.0, rel=1e-9)}


def test_CAP_04_empty_universe() -> None:
    assert margin_caps([], {}, 1000.0) == {}


def test_CAP_05_null_and_missing_leverage_count_as_one() -> None:
    caps = margin_caps(["A", "B"], {"A": None, "B": 10}, 1100.0)
    assert caps == {"A": pytest.approx(100.0, rel=1e-9), "B": pytest.approx(1000.0, rel=1e-9)}
    assert margin_caps(["A", "B"], {"B": 10}, 1100.0) == caps
    assert margin_caps(["A", "B"], {"A": 0, "B": 10}, 1100.0) == caps


def _plan(d: float, a: float, m: float, cap: float, chi: float, price: float, lot: str) -> SymbolPlan:
    return plan_symbol(
        Value(d),
        Value(Actual(a, m)),
        price=price,
        cap=cap,
        cross_margin=0.0,
        balance=10_000.0,
        lot=Decimal(lot),
        cycle_id="sched:20260101T120000Z",
        symbol="BTC/USDC:USDC",
        cfg=PlanConfig(margin_cap_multiplier=chi, max_margin_usage=0.10),
    )


def test_CAP_06_clamp_scales_desired() -> None:
    assert max_margin(2500.0, 0.10) == 250.0
    assert clamp(100.0, 500.0, 250.0, 1.0) == 50.0
    plan = _plan(100.0, 80.0, 500.0, 250.0, 1.0, price=1.0, lot="1")
    assert plan.desired == 50.0
    assert plan.decision is not None
    assert plan.decision.side == "sell" and plan.decision.size == 30.0
    assert plan.order is not None and plan.order.size == Decimal(30)


def test_CAP_07_multiplier_lifts_the_cap() -> None:
    plan = _plan(100.0, 80.0, 500.0, 250.0, 10.0, price=1.0, lot="1")
    assert plan.desired == 100.0
    assert plan.order is not None and plan.order.side == "buy"
    assert plan.order.size == Decimal(20)


def test_CAP_08_margin_below_cap_keeps_desired() -> None:
    plan = _plan(0.001, 0.0005, 200.0, 500.0, 1.0, price=100_000.0, lot="0.00001")
    assert plan.desired == 0.001
    assert plan.order is not None and plan.order.side == "buy"
    assert plan.order.size == Decimal("0.0005")


def test_CAP_09_no_clamp_when_flat() -> None:
    assert clamp(1e6, 0.0, 1.0, 1.0) == 1e6
