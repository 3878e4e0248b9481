"""Client order ids and cycle ids: portfolio.md §10, §1.1, §21.7 (pins CID-*)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttt.domain.client_ids import client_order_id, is_ours, is_valid_client_order_id, validate_prefix
from ttt.domain.cycle_ids import (
    drawdown_cycle_ids,
    manual_cycle_id,
    scheduled_cycle_id,
    startup_cycle_id,
    take_profit_cycle_ids,
)


@pytest.mark.parametrize(
    ("cycle_id", "symbol", "cloid"),
    [
        ("sched:20260101T120000Z", "BTC/USDC:USDC", "0x74747401ac68f1dd3b9b15bea5c75641"),
        ("sched:20260101T120000Z", "ETH/USDC:USDC", "0x74747401def1032c8d70af0baedb4cc3"),
        ("tp:7:2", "XYZ-CL/USDC:USDC", "0x74747401666023944b3d1ad477cd2c49"),
        ("manual:1764000000000", "BTC/USDC:USDC", "0x747474018fe348f863d3cd207d409121"),
    ],
    ids=["CID_01", "CID_02", "CID_03", "CID_04"],
)
def test_CID_01_to_04_vectors(cycle_id: str, symbol: str, cloid: str) -> None:
    assert client_order_id(cycle_id, symbol, "74747401") == cloid


cycle_ids = st.from_regex(r"[A-Za-z0-9:._-]{1,64}", fullmatch=True)
symbols = st.text(min_size=1, max_size=40)
prefixes = st.from_regex(r"[0-9a-f]{8}", fullmatch=True)


@given(cycle_id=cycle_ids, symbol=symbols, prefix=prefixes)
def test_CID_05_shape_determinism_and_ownership(cycle_id: str, symbol: str, prefix: str) -> None:
    cloid = client_order_id(cycle_id, symbol, prefix)
    assert len(cloid) == 34
    assert re.fullmatch(r"0x[0-9a-f]{32}", cloid)
    assert is_valid_client_order_id(cloid)
    assert cloid == client_order_id(cycle_id, symbol, prefix)
    assert cloid.startswith("0x" + prefix) and is_ours(cloid, prefix)
    assert is_ours(cloid.upper().replace("0X", "0x"), prefix)


def test_CID_06_ownership() -> None:
    assert is_ours("0x74747401ac68f1dd3b9b15bea5c75641")
    assert not is_ours("0x12345678ac68f1dd3b9b15bea5c75641")
    assert not is_ours(None)
    assert not is_ours("")


def test_invalid_prefix_and_cycle_id_rejected() -> None:
    with pytest.raises(ValueError, match="client_id_prefix"):
        validate_prefix("7474740G")
    with pytest.raises(ValueError, match="client_id_prefix"):
        client_order_id("c", "BTC/USDC:USDC", "747474")
    with pytest.raises(ValueError, match="cycle id"):
        client_order_id("bad id with spaces", "BTC/USDC:USDC")
    with pytest.raises(ValueError, match="cycle id"):
        client_order_id("x" * 65, "BTC/USDC:USDC")


def test_cycle_ids() -> None:
    now = datetime(2026, 1, 1, 12, 9, 59, 900000, tzinfo=UTC).timestamp()
    assert scheduled_cycle_id(now, 600) == "sched:20260101T120000Z"
    assert startup_cycle_id(now) == "startup:20260101T120959Z"
    assert manual_cycle_id(1764000000.0) == "manual:1764000000000"
    assert take_profit_cycle_ids(7) == ["tp:7:1", "tp:7:2", "tp:7:3"]
    assert drawdown_cycle_ids(12) == ["dd:12:1", "dd:12:2", "dd:12:3"]
