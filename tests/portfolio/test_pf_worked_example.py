"""portfolio.md §21.8: the reference's worked example end to end through the pure rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ttt.domain.caps import margin_caps, max_margin
from ttt.domain.decisions import cycle_hold
from ttt.domain.desired import (
    Aggregate,
    DesiredConfig,
    DesiredOutcome,
    KellyInputs,
    Population,
    desired_position,
)
from ttt.domain.quorum import LocalPosition, LocalSnapshot, Reading, local_reading, quorum
from ttt.domain.results import Value
from ttt.domain.rounding import lot_size
from ttt.domain.symbol_plan import PlanConfig, SymbolPlan, plan_symbol

NOW = 1_767_268_800.0  # 2026-01-01T12:00:00Z
CYCLE = "sched:20260101T120000Z"
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
B = 10_000.0
C = 300.0


def _run(threshold: float) -> tuple[SymbolPlan, DesiredOutcome, dict[str, float]]:
    cfg = DesiredConfig(risk_pos_percentage=0.0016180339887)
    desired = desired_position(
        Population(3, NOW - 20),
        Aggregate(n=3, sum_dir=3, sum_pnl=4.5),
        balance=B,
        kelly=KellyInputs(0.10, 0.20),
        price=Value(100.0),
        now=NOW,
        cfg=cfg,
    )
    assert cycle_hold(snapshot_age_s=10.0, balance_max_age_s=120.0, balance=B, cross_margin=C) is None
    caps = margin_caps([BTC, ETH], {BTC: 40, ETH: 10}, max_margin(B, 0.5))
    lot = lot_size(4)
    local = local_reading(LocalSnapshot(NOW - 10, {BTC: LocalPosition(0.10, 50.0)}), BTC, "", NOW)
    actual = quorum([("L", local), ("O1", Reading(0.10, 50.0, NOW - 3))], 2, lot).result
    plan = plan_symbol(
        desired.result,
        actual,
        price=100.0,
        cap=caps[BTC],
        cross_margin=C,
        balance=B,
        lot=lot,
        cycle_id=CYCLE,
        symbol=BTC,
        cfg=PlanConfig(minimum_trade_threshold_usd=threshold, max_margin_usage=0.5),
    )
    return plan, desired, caps


def test_worked_example_intermediate_values() -> None:
    _, desired, caps = _run(12.5)
    bd = desired.breakdown
    assert bd.s_base == pytest.approx(16.180339887, rel=1e-9)
    assert bd.performance == -0.5
    assert bd.size_usd == pytest.approx(8.0901699435, rel=1e-9)
    assert isinstance(desired.result, Value)
    assert desired.result.value == pytest.approx(0.242705098305, rel=1e-9)
    assert caps == {BTC: pytest.approx(4000.0, rel=1e-9), ETH: pytest.approx(1000.0, rel=1e-9)}


def test_worked_example_order() -> None:
    plan, _, _ = _run(12.5)
    assert plan.outcome == "order"
    assert plan.actual == pytest.approx(0.10, rel=1e-12) and plan.margin_used == 50.0
    assert plan.desired == plan.desired_before_clamp  # m = 50 < 4000: no clamp
    assert plan.decision is not None and plan.decision.row == 6
    assert plan.decision.size == pytest.approx(0.142705098305, rel=1e-9)
    assert plan.decision.notional == pytest.approx(14.2705098305, rel=1e-9)
    assert plan.gate is not None and plan.gate.increasing and not plan.gate.blocked
    assert plan.gate.max_margin == 5000.0 and plan.gate.cross_margin == 300.0
    assert plan.order is not None
    assert plan.order.side == "buy"
    assert plan.order.size == Decimal("0.1427")
    assert plan.order.client_order_id == "0x74747401ac68f1dd3b9b15bea5c75641"  # §10 vector for this cycle
    assert plan.order.decision_price == 100.0


def test_worked_example_below_threshold_at_T_20() -> None:
    plan, _, _ = _run(20.0)
    assert plan.outcome == "below_threshold"
    assert plan.order is None and plan.gate is None
