"""Account snapshot validation and derived values: portfolio.md §2.2, §2.3, §21.12 (pins ING-*)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import yaml

from tests.support import require_shared_fixture
from ttt.domain.balances import AccountSnapshot, Product, RejectedSnapshot, validate_account

PRODUCTS = [
    Product("BTC/USDC:USDC", "BTC", 5),
    Product("ETH/USDC:USDC", "ETH", 4),
    Product("XYZ-CL/USDC:USDC", None, 2),
]


def _fixture_state() -> dict[str, Any]:
    path = require_shared_fixture("hyperliquid-sdk-cassettes", "test_get_user_state.yaml")
    cassette = yaml.safe_load(path.read_text())
    body: dict[str, Any] = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    return body


def _state(
    account_value: object = "1000.0",
    margin: object = "10.0",
    positions: list[dict[str, Any]] | None = None,
    cross: object = "5.0",
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "marginSummary": {"accountValue": account_value, "totalMarginUsed": margin},
        "assetPositions": [{"type": "oneWay", "position": p} for p in (positions or [])],
        "withdrawable": "900.0",
    }
    if cross is not None:
        state["crossMaintenanceMarginUsed"] = cross
    return state


def _ok(result: AccountSnapshot | RejectedSnapshot) -> AccountSnapshot:
    assert isinstance(result, AccountSnapshot), result
    return result


def _rejected(result: AccountSnapshot | RejectedSnapshot, fragment: str) -> None:
    assert isinstance(result, RejectedSnapshot), result
    assert any(fragment in p for p in result.problems), result.problems


def test_ING_01_recorded_btc_position() -> None:
    snap = _ok(validate_account({"": _fixture_state()}, [""], PRODUCTS))
    btc = [p for p in snap.positions if p.symbol == "BTC/USDC:USDC"]
    assert len(btc) == 1
    assert btc[0].size == Decimal("-0.00785")
    assert btc[0].margin_used == Decimal("10.582271")
    assert btc[0].entry_price == Decimal("26951.0")
    assert btc[0].leverage == Decimal(20)
    assert snap.account_value == Decimal("1182.312496")
    assert snap.withdrawable == Decimal("1010.57173")
    assert snap.usable and not snap.partial


def test_ING_02_unmapped_position_is_not_stored_and_alerts() -> None:
    snap = _ok(validate_account({"": _fixture_state()}, [""], PRODUCTS))
    assert "ATOM" in snap.unmapped and "ATOM" in snap.unmapped_nonzero
    assert all(p.coin != "ATOM" for p in snap.positions)
    assert {p.symbol for p in snap.positions} == {"BTC/USDC:USDC", "ETH/USDC:USDC"}


def test_ING_03_nan_account_value_rejected() -> None:
    _rejected(validate_account({"": _state(account_value="NaN")}, [""], PRODUCTS), "accountValue")


def test_ING_04_failed_hip3_dex_is_partial_and_unusable() -> None:
    snap = _ok(validate_account({"": _state(), "xyz": None}, ["", "xyz"], PRODUCTS))
    assert snap.partial and not snap.usable
    assert snap.missing_dexes == ("xyz",)


def test_derived_values_over_dexes() -> None:
    main = _state("100.0", "10.0", [{"coin": "BTC", "szi": "0.001", "marginUsed": "2.0"}], cross="3.0")
    xyz = _state("50.5", "7.5", [{"coin": "xyz:CL", "szi": "1.25", "marginUsed": "7.5"}], cross="99")
    snap = _ok(validate_account({"": main, "xyz": xyz}, ["", "xyz"], PRODUCTS))
    assert snap.account_value == Decimal("150.5")
    assert snap.cross_maintenance_margin_used == Decimal("10.5")  # 3.0 main + 7.5 HIP-3 total margin
    assert snap.total_margin_used == Decimal("17.5")
    assert snap.withdrawable == Decimal("900.0")
    cl = [p for p in snap.positions if p.symbol == "XYZ-CL/USDC:USDC"]
    assert cl and cl[0].dex == "xyz" and cl[0].size == Decimal("1.25")


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        (_state(account_value="-1"), "accountValue"),
        (_state(account_value=None), "accountValue"),
        (_state(margin="-0.1"), "totalMarginUsed"),
        (_state(margin="inf"), "totalMarginUsed"),
        (_state(cross="-1"), "crossMaintenanceMarginUsed"),
        (_state(positions=[{"coin": "", "szi": "1"}]), "coin"),
        (_state(positions=[{"coin": "BTC", "szi": "x"}]), "szi"),
        (_state(positions=[{"coin": "BTC", "szi": "0.001", "marginUsed": "NaN"}]), "marginUsed"),
        (_state(positions=[{"coin": "BTC", "szi": "0.001", "entryPx": "Infinity"}]), "entryPx"),
        (_state(account_value="0", positions=[{"coin": "BTC", "szi": "0.001"}]), "account value is 0"),
    ],
    ids=[
        "V2_negative",
        "V2_missing",
        "V3_negative",
        "V3_inf",
        "V3_cross",
        "V4_coin",
        "V4_szi",
        "V4_margin",
        "V4_entry",
        "V8",
    ],
)
def test_validation_rejects(state: dict[str, Any], fragment: str) -> None:
    _rejected(validate_account({"": state}, [""], PRODUCTS), fragment)


def test_V5_duplicate_coin_across_dexes_rejected() -> None:
    pos = [{"coin": "BTC", "szi": "0.001"}]
    result = validate_account(
        {"": _state(positions=pos), "xyz": _state(positions=pos)}, ["", "xyz"], PRODUCTS
    )
    _rejected(result, "appears in both")


def test_V7_off_grid_position_is_stored_and_listed() -> None:
    snap = _ok(validate_account({"": _state(positions=[{"coin": "ETH", "szi": "0.12345"}])}, [""], PRODUCTS))
    assert snap.off_grid == ("ETH/USDC:USDC",)
    assert snap.positions[0].size == Decimal("0.12345")


def test_V8_zero_account_with_only_zero_positions_is_fine_and_null_entry_allowed() -> None:
    state = _state("0.0", "0.0", [{"coin": "BTC", "szi": "0.0", "entryPx": None, "liquidationPx": "NaN"}])
    snap = _ok(validate_account({"": state}, [""], PRODUCTS))
    assert snap.positions == () and snap.account_value == 0


def test_missing_cross_maintenance_margin_is_stored_as_unknown() -> None:
    snap = _ok(validate_account({"": _state(cross=None)}, [""], PRODUCTS))
    assert snap.cross_maintenance_margin_used is None
