"""Decision table, minimum notional and margin gate: portfolio.md §21.1, §21.2, §8 (pins DT-*)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttt.domain.decisions import cycle_hold, decide, increases_exposure, margin_gate
from ttt.domain.desired import select_price
from ttt.domain.quorum import Actual
from ttt.domain.results import Flat, Unknown, Value
from ttt.domain.symbol_plan import plan_symbol

REL = 1e-9

# (id, A, D, execute, side, size, row) with P = 100, T = 12.5 (§21.1)
REFERENCE_OUTCOMES = [
    ("DT_01", -2, -1, True, "buy", 1, 1),
    ("DT_02", -1, -2, True, "sell", 1, 2),
    ("DT_03", 1, 2, True, "buy", 1, 6),
    ("DT_04", 2, 1, True, "sell", 1, 7),
    ("DT_05", 0, 1, True, "buy", 1, 9),
    ("DT_06", 1, 0, True, "sell", 1, 10),
    ("DT_07", -1, 0, True, "buy", 1, 10),
    ("DT_08", 0, -1, True, "sell", 1, 9),
    ("DT_09", 1, 1, False, None, 0, 8),
    ("DT_10", 0, 0, False, None, 0, 11),
    ("DT_11", 1, 1.1, False, None, 0.1, 6),
    ("DT_12", 1, 1.125, True, "buy", 0.125, 6),
    ("DT_13", -0.1, 0.025, True, "buy", 0.125, 4),
    ("DT_14", -1, -1, False, None, 0, 3),
]


@pytest.mark.parametrize(
    ("a", "d", "execute", "side", "size", "row"),
    [case[1:] for case in REFERENCE_OUTCOMES],
    ids=[case[0] for case in REFERENCE_OUTCOMES],
)
def test_DT_01_to_14_reference_outcomes(
    a: float, d: float, execute: bool, side: str | None, size: float, row: int
) -> None:
    decision = decide(a, d, 100.0, 12.5)
    assert decision.execute is execute
    assert decision.side == side
    assert decision.size == pytest.approx(size, rel=REL, abs=1e-12)
    assert decision.row == row
    assert decision.size >= 0


def test_DT_11_below_threshold_keeps_size_for_audit() -> None:
    decision = decide(1, 1.1, 100.0, 12.5)
    assert decision.outcome == "below_threshold"
    assert decision.notional == pytest.approx(10.0, rel=1e-6)


def test_DT_12_exactly_threshold_passes() -> None:
    decision = decide(1, 1.125, 100.0, 12.5)
    assert decision.notional == 12.5
    assert decision.outcome == "execute"


@pytest.mark.parametrize("row_case", ["DT_09", "DT_10", "DT_14"])
def test_DT_09_10_14_no_action_outcome(row_case: str) -> None:
    a, d = {"DT_09": (1, 1), "DT_10": (0, 0), "DT_14": (-1, -1)}[row_case]
    assert decide(a, d, 100.0, 12.5).outcome == "no_action"


def test_DT_15_price_missing_holds_and_decide_is_not_called() -> None:
    price = select_price(None, None, now=1_000_000.0)
    assert isinstance(price, Unknown)
    assert price.reason == "price_unavailable"
    assert price.severity == "warning"
    plan = plan_symbol(
        Flat("no_qualifying_runs"),
        Value(Actual(1.0, 10.0)),
        price=None,
        cap=1000.0,
        cross_margin=0.0,
        balance=1000.0,
        lot=Decimal("0.0001"),
        cycle_id="sched:20260101T120000Z",
        symbol="BTC/USDC:USDC",
    )
    assert plan.outcome == "hold"
    assert plan.hold is not None and plan.hold.reason == "price_unavailable"
    assert plan.decision is None and plan.order is None
    with pytest.raises(ValueError, match="price"):
        decide(1.0, 0.0, math.nan, 12.5)


# (id, T, A, D, execute, side, size) with P = 118 000 (§21.2)
REFERENCE_UNIT_TESTS = [
    ("DT_20", 11, -0.0003, -0.0002, True, "buy", 0.0001),
    ("DT_21", 11, -0.0001, -0.0003, True, "sell", 0.0002),
    ("DT_22", 11, -0.0002, 0.0001, True, "buy", 0.0003),
    ("DT_23", 11, 0.0002, -0.0001, True, "sell", 0.0003),
    ("DT_24", 11, 0.0001, 0.0003, True, "buy", 0.0002),
    ("DT_25", 11, 0.0003, 0.0001, True, "sell", 0.0002),
    ("DT_26", 11, 0, 0.0005, True, "buy", 0.0005),
    ("DT_27", 11, 0, -0.0005, True, "sell", 0.0005),
    ("DT_28", 11, 0.0003, 0, True, "sell", 0.0003),
    ("DT_29", 11, -0.0003, 0, True, "buy", 0.0003),
    ("DT_30", 12.5, 0.0002, 0.0002, False, None, 0),
    ("DT_31", 12.5, 0.001, 0.00109, False, None, 0.00009),
]


@pytest.mark.parametrize(
    ("t", "a", "d", "execute", "side", "size"),
    [case[1:] for case in REFERENCE_UNIT_TESTS],
    ids=[case[0] for case in REFERENCE_UNIT_TESTS],
)
def test_DT_20_to_31_reference_unit_tests(
    t: float, a: float, d: float, execute: bool, side: str | None, size: float
) -> None:
    decision = decide(a, d, 118_000.0, t)
    assert (decision.execute, decision.side) == (execute, side)
    assert decision.size == pytest.approx(size, rel=REL, abs=1e-12)


def test_DT_31_notional_below_threshold() -> None:
    decision = decide(0.001, 0.00109, 118_000.0, 12.5)
    assert decision.outcome == "below_threshold"
    assert decision.notional == pytest.approx(10.62, rel=1e-6)


# --- margin gate (§8) ----------------------------------------------------------------------------------


def test_gate_blocks_increasing_trade_when_cross_margin_reaches_limit() -> None:
    gate = margin_gate(0.1, 0.2, cross_margin=5000.0, balance=10_000.0, max_margin_usage=0.5)
    assert gate.increasing and gate.blocked and gate.max_margin == 5000.0


def test_gate_passes_increasing_trade_below_limit() -> None:
    gate = margin_gate(0.1, 0.2, cross_margin=4999.99, balance=10_000.0, max_margin_usage=0.5)
    assert gate.increasing and not gate.blocked


def test_gate_bypassed_by_reducing_trade_and_small_flip() -> None:
    assert not margin_gate(0.2, 0.1, 1e9, 1.0, 0.5).blocked
    assert not margin_gate(0.2, -0.2, 1e9, 1.0, 0.5).blocked  # flip with |D| = |A|


def test_gate_blocks_whole_flip_when_it_increases() -> None:
    gate = margin_gate(0.1, -0.3, cross_margin=6000.0, balance=10_000.0, max_margin_usage=0.5)
    assert gate.blocked
    plan = plan_symbol(
        Value(-0.3),
        Value(Actual(0.1, 1.0)),
        price=100.0,
        cap=1e9,
        cross_margin=6000.0,
        balance=10_000.0,
        lot=Decimal("0.0001"),
        cycle_id="c1",
        symbol="BTC/USDC:USDC",
    )
    assert plan.outcome == "blocked_by_margin_gate" and plan.order is None


def test_increases_exposure_is_strict() -> None:
    assert increases_exposure(1.0, -1.5)
    assert not increases_exposure(1.0, -1.0)


# --- cycle-level holds (§1.2 C5) ---------------------------------------------------------------------------


def test_DS_10_missing_balance_holds_every_symbol() -> None:
    hold = cycle_hold(snapshot_age_s=None, balance_max_age_s=120, balance=None, cross_margin=None)
    assert hold is not None and hold.reason == "balance_unavailable" and hold.severity == "critical"


def test_CAP_03_caps_unavailable_holds_every_symbol() -> None:
    hold = cycle_hold(10.0, 120.0, balance=1000.0, cross_margin=10.0, caps_available=False)
    assert hold is not None and hold.reason == "margin_caps_unavailable" and hold.severity == "critical"


def test_cycle_hold_reasons_for_stale_invalid_and_missing_margin() -> None:
    stale = cycle_hold(121.0, 120.0, 1000.0, 1.0)
    assert stale is not None and stale.reason == "balance_unavailable"
    invalid = cycle_hold(1.0, 120.0, 0.0, 1.0)
    assert invalid is not None and invalid.reason == "balance_invalid"
    no_margin = cycle_hold(1.0, 120.0, 1000.0, None)
    assert no_margin is not None and no_margin.reason == "margin_unavailable"
    assert cycle_hold(120.0, 120.0, 1000.0, 0.0) is None


# --- properties -------------------------------------------------------------------------------------------

sizes = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
prices = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(a=sizes, d=sizes, p=prices, t=st.floats(min_value=0, max_value=1e4))
def test_decide_side_moves_actual_towards_desired(a: float, d: float, p: float, t: float) -> None:
    decision = decide(a, d, p, t)
    assert decision.size >= 0
    if decision.execute:
        assert decision.side in ("buy", "sell") and decision.size > 0
        signed = decision.size if decision.side == "buy" else -decision.size
        assert a + signed == pytest.approx(d if abs(d) > 1e-8 else 0.0, rel=1e-9, abs=1e-8 + 1e-9 * abs(a))
        assert decision.size * p >= t
    else:
        assert decision.side is None


reasons = st.sampled_from(
    ["quorum_no_sources", "quorum_disagreement", "providence_silent", "kelly_error", "margin_used_unknown"]
)
desired_any = st.one_of(
    sizes.map(lambda x: Value(x)),
    st.sampled_from(["no_qualifying_runs", "direction_forbidden", "zero_size"]).map(Flat),
)
actual_known = st.tuples(sizes, st.floats(min_value=0, max_value=1e6)).map(lambda t: Value(Actual(*t)))


@given(
    desired=st.one_of(reasons.map(Unknown), desired_any),
    actual=st.one_of(reasons.map(Unknown), actual_known),
    p=prices,
    cross=st.floats(min_value=0, max_value=1e6),
)
def test_unknown_desired_or_actual_never_produces_an_order(
    desired: Value[float] | Flat | Unknown, actual: Value[Actual] | Unknown, p: float, cross: float
) -> None:
    if not isinstance(desired, Unknown) and not isinstance(actual, Unknown):
        desired = Unknown("providence_silent")
    plan = plan_symbol(
        desired,
        actual,
        price=p,
        cap=1e6,
        cross_margin=cross,
        balance=1e6,
        lot=Decimal("0.0001"),
        cycle_id="sched:20260101T120000Z",
        symbol="BTC/USDC:USDC",
    )
    assert plan.outcome == "hold"
    assert plan.order is None and plan.decision is None
    expected = desired if isinstance(desired, Unknown) else actual
    assert plan.hold == expected
