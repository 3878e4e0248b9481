"""Steps 4–10 of the per-symbol pipeline (portfolio.md §1.3) as one pure function.

The service does the reading, the write-ahead record and the POST; everything that decides *whether*
and *what* to send lives here, so "an Unknown never becomes an order" is a property of this function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from ttt.domain.caps import clamp
from ttt.domain.client_ids import DEFAULT_PREFIX, client_order_id
from ttt.domain.decisions import EPSILON, Decision, GateResult, Side, decide, margin_gate
from ttt.domain.quorum import Actual
from ttt.domain.results import Flat, Unknown, Value
from ttt.domain.rounding import DEFAULT_MIN_NOTIONAL, OrderSize, order_size

PlanOutcome = Literal[
    "hold",
    "no_action",
    "below_threshold",
    "blocked_by_margin_gate",
    "rounded_to_zero",
    "below_exchange_minimum",
    "order",
]


@dataclass(frozen=True, slots=True)
class PlanConfig:
    minimum_trade_threshold_usd: float = 12.5
    margin_cap_multiplier: float = 1.0
    max_margin_usage: float = 0.5
    client_id_prefix: str = DEFAULT_PREFIX


@dataclass(frozen=True, slots=True)
class OrderIntent:
    client_order_id: str
    side: Side
    size: Decimal
    requested_size: float
    decision_price: float


@dataclass(frozen=True, slots=True)
class SymbolPlan:
    outcome: PlanOutcome
    hold: Unknown | None = None
    actual: float | None = None
    margin_used: float | None = None
    desired_before_clamp: float | None = None
    desired: float | None = None
    decision: Decision | None = None
    gate: GateResult | None = None
    sizing: OrderSize | None = None
    order: OrderIntent | None = None


def plan_symbol(
    desired: Value[float] | Flat | Unknown,
    actual: Value[Actual] | Unknown,
    price: float | None,
    cap: float,
    cross_margin: float,
    balance: float,
    lot: Decimal,
    cycle_id: str,
    symbol: str,
    cfg: PlanConfig = PlanConfig(),
    min_notional: Decimal = DEFAULT_MIN_NOTIONAL,
) -> SymbolPlan:
    """Hold on the first unknown (desired before actual); otherwise clamp, decide, gate, size, name."""
    if isinstance(desired, Unknown):
        return SymbolPlan("hold", hold=desired)
    if isinstance(actual, Unknown):
        return SymbolPlan("hold", hold=actual)
    if price is None:
        return SymbolPlan("hold", hold=Unknown("price_unavailable", "no cycle price for the decision"))
    a, m = actual.value.size, actual.value.margin_used
    d0 = desired.value if isinstance(desired, Value) else 0.0
    d = clamp(d0, m, cap, cfg.margin_cap_multiplier) if abs(d0) > EPSILON else d0
    decision = decide(a, d, price, cfg.minimum_trade_threshold_usd)
    plan = SymbolPlan(
        decision.outcome if decision.outcome != "execute" else "order",
        actual=a,
        margin_used=m,
        desired_before_clamp=d0,
        desired=d,
        decision=decision,
    )
    if not decision.execute:
        return plan
    gate = margin_gate(a, d, cross_margin, balance, cfg.max_margin_usage)
    if gate.blocked:
        return replace(plan, outcome="blocked_by_margin_gate", gate=gate)
    sizing = order_size(decision.size, lot, price, min_notional)
    if sizing.outcome != "ok":
        return replace(plan, outcome=sizing.outcome, gate=gate, sizing=sizing)
    assert decision.side is not None
    order = OrderIntent(
        client_order_id=client_order_id(cycle_id, symbol, cfg.client_id_prefix),
        side=decision.side,
        size=sizing.size,
        requested_size=decision.size,
        decision_price=price,
    )
    return replace(plan, gate=gate, sizing=sizing, order=order)
