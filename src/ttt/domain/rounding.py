"""Lot and price grids in exact decimal arithmetic (portfolio.md §0 Numbers, §9).

Strategy values are binary64; anything that goes to the exchange or into a table is a Decimal made from
the float's shortest round-trip text, so 0.1 is `0.1` and not 0.1000000000000000055….
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

Side = Literal["buy", "sell"]

ON_GRID_TOLERANCE = 1e-6
DEFAULT_MIN_NOTIONAL = Decimal(10)
_ONE = Decimal(1)


def to_decimal(x: float | int | Decimal | str) -> Decimal:
    """Exact decimal of a number; floats go through their shortest round-trip text."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"not a finite number: {x!r}")
        return Decimal(repr(x))
    d = Decimal(x)
    if not d.is_finite():
        raise ValueError(f"not a finite number: {x!r}")
    return d


def lot_size(sz_decimals: int) -> Decimal:
    """lot = 10^(−sz_decimals)."""
    if sz_decimals < 0:
        raise ValueError(f"sz_decimals must be >= 0, got {sz_decimals}")
    return _ONE.scaleb(-sz_decimals)


def round_half_away(x: Decimal) -> Decimal:
    """Round to an integer, ties away from zero (Decimal's ROUND_HALF_UP is exactly that)."""
    return x.quantize(_ONE, rounding=ROUND_HALF_UP)


def _div(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return a / b


def size_in_lots(size: float | Decimal, lot: Decimal) -> int:
    """round_half_away(decimal(size) / lot) as an integer count of lots (sign kept)."""
    if lot <= 0:
        raise ValueError(f"lot must be > 0, got {lot}")
    return int(round_half_away(_div(to_decimal(size), lot)))


def round_to_lot(size: float | Decimal, lot: Decimal) -> Decimal:
    """§9.2: size_lots · lot with half-away-from-zero rounding."""
    return size_in_lots(size, lot) * lot


def on_grid(size: float, lot: float | Decimal) -> bool:
    """|size/lot − round(size/lot)| ≤ 10⁻⁶, the §0 definition, in binary64."""
    q = size / float(lot)
    return abs(q - round(q)) <= ON_GRID_TOLERANCE


@dataclass(frozen=True, slots=True)
class OrderSize:
    """Outcome of §9.2: an order size, or why no order is sent."""

    outcome: Literal["ok", "rounded_to_zero", "below_exchange_minimum"]
    size: Decimal
    lots: int
    notional: Decimal


def order_size(
    delta: float, lot: Decimal, price: float | Decimal, min_notional: Decimal = DEFAULT_MIN_NOTIONAL
) -> OrderSize:
    """Round the unrounded trade magnitude δ (> 0) to the lot and apply the exchange minimum.

    The §7 threshold is not re-evaluated after rounding (reference order of operations).
    """
    if not delta >= 0:
        raise ValueError(f"trade magnitude must be >= 0, got {delta!r}")
    lots = size_in_lots(delta, lot)
    size = lots * lot
    notional = size * to_decimal(price)
    if lots == 0:
        return OrderSize("rounded_to_zero", size, lots, notional)
    if notional < min_notional:
        return OrderSize("below_exchange_minimum", size, lots, notional)
    return OrderSize("ok", size, lots, notional)


def max_price_decimals(sz_decimals: int) -> int:
    return 6 - sz_decimals


def is_valid_price(x: Decimal, sz_decimals: int) -> bool:
    """§9.3: an integer, or ≤ 5 significant figures and ≤ (6 − sz_decimals) decimals."""
    if not x.is_finite() or x <= 0:
        return False
    if x == x.to_integral_value():
        return True
    digits = x.normalize().as_tuple()
    exponent = digits.exponent
    assert isinstance(exponent, int)
    decimals = max(-exponent, 0)
    significant = len(digits.digits)
    return significant <= 5 and decimals <= max_price_decimals(sz_decimals)


def _price_quantum(x: Decimal, sz_decimals: int) -> Decimal:
    """The valid-price step at x's order of magnitude (1 once only integers are valid)."""
    magnitude = x.adjusted()
    decimals = min(max_price_decimals(sz_decimals), 4 - magnitude)
    return _ONE.scaleb(-max(decimals, 0))


def round_price(x: Decimal, side: Side, sz_decimals: int) -> Decimal:
    """Passive rounding (L10): a buy to the largest valid price ≤ x, a sell to the smallest ≥ x."""
    if not x.is_finite() or x <= 0:
        raise ValueError(f"price must be a finite number > 0, got {x}")
    if is_valid_price(x, sz_decimals):
        return x
    q = _price_quantum(x, sz_decimals)
    mode = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    with localcontext() as ctx:
        ctx.prec = 60
        rounded = (x / q).to_integral_value(rounding=mode) * q
    if rounded <= 0:
        raise ValueError(f"no valid {side} price at or below {x} for sz_decimals {sz_decimals}")
    return rounded


def ioc_limit_price(reference: Decimal, side: Side, slippage_bps: Decimal | int, sz_decimals: int) -> Decimal:
    """§11.5 IOC limit: P·(1 ± s) with s = bps/10⁴ in decimal arithmetic, rounded towards P."""
    s = to_decimal(slippage_bps) / Decimal(10_000)
    raw = reference * (1 + s) if side == "buy" else reference * (1 - s)
    return round_price(raw, side, sz_decimals)
