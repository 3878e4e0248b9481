"""Domain order types: the price grid rule of portfolio.md §9.3 and derived product fields."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from ttt.domain.orders import ProductMeta, api_coin_for, is_valid_price


@pytest.mark.parametrize(
    ("price", "sz_decimals", "valid"),
    [
        ("118234", 5, True),  # an integer is always valid
        ("118235", 5, True),
        ("118234.5", 5, False),  # 7 significant figures
        ("3456.7", 4, True),
        ("3456.78", 4, False),  # 6 significant figures
        ("187.12", 2, True),
        ("187.123", 2, False),
        ("0.012345", 0, True),  # 5 significant figures, 6 decimals
        ("0.0123456", 0, False),
        ("0.12", 5, False),  # 2 decimals > 6 − 5
        ("0.1", 5, True),
        ("0", 5, False),
        ("-100", 5, False),
        ("NaN", 5, False),
        ("100500", 5, True),  # R-11 limits
        ("99500", 5, True),
    ],
)
def test_price_validity(price: str, sz_decimals: int, valid: bool) -> None:
    assert is_valid_price(D(price), sz_decimals) is valid


def test_product_derived_fields() -> None:
    btc = ProductMeta("BTC/USDC:USDC", sz_decimals=5, max_leverage=40)
    assert btc.lot_size == D("0.00001") and btc.max_price_decimals == 1 and btc.api_coin == "BTC"
    assert api_coin_for("XYZ-CL/USDC:USDC") == "xyz:CL"
    assert api_coin_for("kPEPE/USDC:USDC") == "kPEPE"
