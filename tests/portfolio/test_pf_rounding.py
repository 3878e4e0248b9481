"""Lot rounding, exchange minimum and price grids: portfolio.md §21.7 (pins R-*)."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ttt.domain.rounding import (
    ioc_limit_price,
    is_valid_price,
    lot_size,
    order_size,
    round_price,
    round_to_lot,
    to_decimal,
)


@pytest.mark.parametrize(
    ("delta", "lot", "expected"),
    [
        (0.142705098305, "0.0001", "0.1427"),
        (0.00005, "0.0001", "0.0001"),
        (0.000049999, "0.0001", "0"),
        (2.5, "1", "3"),
        (0.000125, "0.00001", "0.00013"),
    ],
    ids=["R_01", "R_02", "R_03", "R_04", "R_05"],
)
def test_R_01_to_05_lot_rounding(delta: float, lot: str, expected: str) -> None:
    assert round_to_lot(delta, Decimal(lot)) == Decimal(expected)


def test_R_03_rounded_to_zero_outcome() -> None:
    assert order_size(0.000049999, Decimal("0.0001"), 100_000.0).outcome == "rounded_to_zero"


def test_R_06_below_exchange_minimum() -> None:
    sized = order_size(0.09, Decimal("0.01"), 100.0, Decimal(10))
    assert sized.outcome == "below_exchange_minimum"
    assert sized.size == Decimal("0.09") and sized.notional == Decimal("9")
    assert order_size(0.1, Decimal("0.01"), 100.0, Decimal(10)).outcome == "ok"


@pytest.mark.parametrize(
    ("sz_decimals", "price", "buy", "sell"),
    [
        (5, "118234.56", "118234", "118235"),
        (4, "3456.789", "3456.7", "3456.8"),
        (2, "187.12345", "187.12", "187.13"),
        (0, "0.0123456", "0.012345", "0.012346"),
    ],
    ids=["R_07", "R_08", "R_09", "R_10"],
)
def test_R_07_to_10_passive_price_rounding(sz_decimals: int, price: str, buy: str, sell: str) -> None:
    assert round_price(Decimal(price), "buy", sz_decimals) == Decimal(buy)
    assert round_price(Decimal(price), "sell", sz_decimals) == Decimal(sell)


def test_R_11_ioc_limit_in_decimal_arithmetic() -> None:
    assert 100000 * (1 + 50 / 10_000) != 100500  # the float product the pin warns about
    assert ioc_limit_price(Decimal(100000), "buy", 50, 5) == Decimal(100500)
    assert ioc_limit_price(Decimal(100000), "sell", 50, 5) == Decimal(99500)


def test_shortest_round_trip_decimal() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert lot_size(4) == Decimal("0.0001")
    with pytest.raises(ValueError):
        to_decimal(float("nan"))


def test_liquidation_of_on_grid_size_is_exact() -> None:
    assert round_to_lot(0.00785, lot_size(5)) == Decimal("0.00785")


# --- properties -------------------------------------------------------------------------------------------


@given(
    delta=st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False),
    sz=st.integers(min_value=0, max_value=8),
)
def test_lot_rounding_lands_on_grid_within_half_a_lot(delta: float, sz: int) -> None:
    lot = lot_size(sz)
    size = round_to_lot(delta, lot)
    assert size % lot == 0
    assert size >= 0
    # Half away from zero: never more than half a lot beyond the request (R-02 shows it may exceed δ).
    assert abs(size - Decimal(repr(delta))) <= lot / 2


@given(lots=st.integers(min_value=0, max_value=10**9), sz=st.integers(min_value=0, max_value=8))
def test_on_grid_request_is_kept_exactly(lots: int, sz: int) -> None:
    lot = lot_size(sz)
    request = float(lots * lot)
    assert round_to_lot(request, lot) == Decimal(repr(request))


def _valid_by_text(x: Decimal, sz: int) -> bool:
    """Independent reading of §9.3 from the printed digits."""
    text = format(x.normalize(), "f")
    if "." not in text:
        return True
    whole, frac = text.split(".")
    digits = (whole.lstrip("0") + frac).lstrip("0")
    return len(digits) <= 5 and len(frac) <= 6 - sz


def _oracle(x: Decimal, side: str, sz: int) -> Decimal:
    """Best valid price by brute force over truncations to 0..6 decimals."""
    mode = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    candidates = [x.quantize(Decimal(1).scaleb(-d), rounding=mode) for d in range(7)]
    valid = [c for c in candidates if c > 0 and _valid_by_text(c, sz)]
    return max(valid) if side == "buy" else min(valid)


prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(500000), places=8, allow_nan=False)


@given(x=prices, sz=st.integers(min_value=0, max_value=5), side=st.sampled_from(["buy", "sell"]))
def test_price_rounding_is_passive_valid_and_tight(x: Decimal, sz: int, side: str) -> None:
    assume(x >= Decimal(1).scaleb(sz - 6))  # below the smallest tick no buy price exists
    rounded = round_price(x, side, sz)  # type: ignore[arg-type]
    assert is_valid_price(rounded, sz) and _valid_by_text(rounded, sz)
    assert rounded <= x if side == "buy" else rounded >= x
    assert rounded == _oracle(x, side, sz)


def test_valid_price_examples() -> None:
    assert is_valid_price(Decimal("123456"), 5)
    assert is_valid_price(Decimal("1234.5"), 1)
    assert not is_valid_price(Decimal("1234.56"), 1)
    assert not is_valid_price(Decimal("0.0000001"), 0)
    with pytest.raises(ValueError, match="no valid buy price"):
        round_price(Decimal("0.001"), "buy", 4)
    assert re.fullmatch(r"\d+", format(round_price(Decimal("99999.5"), "sell", 5), "f"))
