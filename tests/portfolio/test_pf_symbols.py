"""Symbols and coins: portfolio.md §21.10 (pins SYM-*)."""

from __future__ import annotations

from decimal import Decimal

from ttt.domain.balances import AccountSnapshot, Product, validate_account
from ttt.domain.symbols import api_coin, base, coin_dex, coins_match, map_coin


def test_SYM_01_bases() -> None:
    assert [base(s) for s in ("BTC/USDC:USDC", "BCH/USDC:USDC", "ENA/USDC:USDC", "BTC")] == [
        "BTC",
        "BCH",
        "ENA",
        "BTC",
    ]


def test_SYM_02_case_is_kept() -> None:
    assert base("kPEPE/USDC:USDC") == "kPEPE"
    assert base("KPEPE/USDC:USDC") == "KPEPE"


def test_SYM_03_product_api_coin_wins() -> None:
    assert api_coin("BTC/USDC:USDC", "BTC") == "BTC"
    assert api_coin("KPEPE/USDC:USDC", "kPEPE") == "kPEPE"


def test_SYM_04_hip3_derivation_and_case_insensitive_match() -> None:
    coin = api_coin("XYZ-CL/USDC:USDC", None)
    assert coin == "xyz:CL"
    assert coin_dex(coin) == "xyz"
    assert coins_match(coin, "XYZ:CL")
    assert map_coin("XYZ:CL", {"XYZ-CL/USDC:USDC": coin}) == "XYZ-CL/USDC:USDC"


def test_SYM_05_unknown_symbol_uses_its_base() -> None:
    assert api_coin("UNKNOWN/USDC:USDC", None) == "UNKNOWN"
    assert coin_dex("UNKNOWN") == ""


def test_SYM_06_account_coin_without_product_is_unmapped() -> None:
    assert map_coin("ATOM", {"BTC/USDC:USDC": "BTC"}) is None
    state = {
        "marginSummary": {"accountValue": "100", "totalMarginUsed": "1"},
        "crossMaintenanceMarginUsed": "0.5",
        "assetPositions": [{"position": {"coin": "ATOM", "szi": "-0.45", "marginUsed": "0.243"}}],
    }
    snap = validate_account({"": state}, [""], [Product("BTC/USDC:USDC", "BTC", 5)])
    assert isinstance(snap, AccountSnapshot)
    assert snap.unmapped == ("ATOM",)
    assert snap.positions == ()
    assert snap.account_value == Decimal(100)


def test_exact_match_beats_case_insensitive_and_ambiguity_is_unmapped() -> None:
    products = {"kPEPE/USDC:USDC": "kPEPE", "KPEPE/USDC:USDC": "KPEPE"}
    assert map_coin("kPEPE", products) == "kPEPE/USDC:USDC"
    assert map_coin("Kpepe", products) is None
    assert map_coin("kpepe", {"kPEPE/USDC:USDC": "kPEPE"}) == "kPEPE/USDC:USDC"
