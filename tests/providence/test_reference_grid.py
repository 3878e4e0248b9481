"""The §7 decision grid of providence.md, every cell, through constructed states."""

from __future__ import annotations

import pytest

from ttt.providence import reference as ref

from .reference_support import NOW, base_params, make_state, unit_size

# Columns: (ac>0, APR>0) (ac>0, APR=0) (ac>0, APR<0) (ac≤0, APR>0) (ac≤0, APR=0) (ac≤0, APR<0).
# "-" not approved, "." approved without a trade, "+1"/"-1" a trade (the spec's —, ·, ±1).
GRID = {
    (1, "buy"): ["+1", "+1", ".", "-", "-", "-"],
    (1, "sell"): ["-", "-", "-", ".", "-1", "-1"],
    (0, "buy"): ["+1", "+1", ".", "+1", "+1", "."],
    (0, "sell"): ["-1", "-1", ".", "-1", "-1", "."],
    (-1, "buy"): ["-", "-", "-", ".", "+1", "+1"],
    (-1, "sell"): ["-1", "-1", ".", "-", "-", "-"],
}
# Price and previous rolling mean A giving each column: P = 110/100/90 → APR > 0 / = 0 / < 0;
# A = 1 → ac = (3.6524 − 1)/1 > 0; A = −1 → ac = −(0 + 1)/−1 = 1 > 0; A = −10 → ac = −(−3.6524 + 10)/−10 > 0;
# A = 0 → ac = 0.
COLUMNS = [(110.0, 1.0), (100.0, -1.0), (90.0, -10.0), (110.0, 0.0), (100.0, 0.0), (90.0, 0.0)]
CELLS = [(sign, side, col) for (sign, side) in GRID for col in range(6)]


def _weight(side: str, swing: bool) -> float:
    buy_before_flip = (side == "buy") != swing
    return 0.5 if buy_before_flip else -0.5


@pytest.mark.parametrize("swing", [False, True])
@pytest.mark.parametrize(("sign", "side", "col"), CELLS)
def test_grid_cell_trade(sign: int, side: str, col: int, swing: bool) -> None:
    price, apr_last = COLUMNS[col]
    pos = 3 * sign
    w = _weight(side, swing)
    state = make_state(pos=pos, apr_last=apr_last, prior_weight=w, system_swing=swing)
    s, r = ref.step(state, NOW, price, 0.5, w)
    assert (r.status, r.reason, r.entropy) == ("continue", None, 0.0)
    assert r.apr is not None
    assert (r.apr > 0, r.apr == 0, r.apr < 0) == (col % 3 == 0, col % 3 == 1, col % 3 == 2)
    assert (s["apr_change"] > 0) == (col < 3)
    cell = GRID[(sign, side)][col]
    trades = s["voms_state"]["trades"]
    if cell in ("+1", "-1"):
        delta = int(cell)
        assert r.trade == unit_size(price) * delta
        assert s["position_direction"] == r.position_direction == pos + delta
        assert trades == [[100.0, 1.0], [price, unit_size(price) * delta]]
    else:
        assert r.trade == 0.0
        assert s["position_direction"] == pos
        assert trades == [[100.0, 1.0]]
    assert s["voms_state"]["current_price"] == price


ADD_ROWS = [(1, "buy"), (-1, "sell")]


@pytest.mark.parametrize(("sign", "side", "col"), [(g, d, c) for (g, d) in ADD_ROWS for c in range(6)])
def test_grid_add_rows_approval_shows_through_the_margin_check(sign: int, side: str, col: int) -> None:
    """With max_cross_margin_ratio = 0 every approved add returns margin_limit; unapproved ones do not."""
    price, apr_last = COLUMNS[col]
    w = _weight(side, False)
    state = make_state(pos=3 * sign, apr_last=apr_last, prior_weight=w, max_cross_margin_ratio=0.0)
    _, r = ref.step(state, NOW, price, 0.5, w)
    approved = GRID[(sign, side)][col] != "-"
    assert (r.status, r.reason) == (("continue", "margin_limit") if approved else ("continue", None))


@pytest.mark.parametrize(("side", "col"), [(d, c) for d in ("buy", "sell") for c in range(6)])
def test_grid_flat_rows_are_always_approved_and_take_the_reversal_exit_first(side: str, col: int) -> None:
    price, apr_last = COLUMNS[col]
    w = _weight(side, False)
    state = make_state(pos=0, apr_last=apr_last, prior_weight=w, max_direction_reversal=NOW - 1)
    s, r = ref.step(state, NOW, price, 0.5, w)
    assert (r.status, r.reason, r.trade, r.entropy) == ("completed", "reversal", 0.0, 0.0)
    assert s["voms_state"]["trades"] == [[100.0, 1.0]]
    assert s["voms_state"]["current_price"] == price


def test_zero_weight_sells_and_swing_turns_it_into_a_buy() -> None:
    for swing, delta in ((False, -1), (True, 1)):
        state = make_state(pos=0, prior_weight=0.0, system_swing=swing)
        s, r = ref.step(state, NOW, 100.0, 0.5, 0.0)
        assert r.entropy == 0.0
        assert s["position_direction"] == delta
        assert r.trade == unit_size(100.0) * delta


def test_grid_parameters_are_inert_elsewhere() -> None:
    """The constructed states must not trip S3/S12 or the margin check by accident."""
    p = base_params()
    assert p["max_duration"] > NOW and p["max_direction_reversal"] > NOW
    assert p["max_cross_margin_ratio"] == 1.0
