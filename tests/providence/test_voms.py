"""The virtual book (providence.md §15): the §15.6 table row by row, operations and serialisation."""

from __future__ import annotations

import json

import pytest

from ttt.domain.voms import FEE_RATE, Voms, balance_of
from ttt.providence import reference as ref

# (action, value) → position_size, unrealized_pnl, account_balance, margin_used, as printed in §15.6.
TABLE_15_6 = [
    (("price", 100.0), ("fill", 10.0), (10.0, -0.8, 9999.2, 100.0)),
    (("price", 110.0), None, (10.0, 99.2, 10099.2, 100.0)),
    (("fill", 5.0), None, (15.0, 98.76, 10098.76, 155.0)),
    (("price", 95.0), None, (15.0, -126.24, 9873.76, 155.0)),
    (("fill", -8.0), None, (7.0, -126.848, 9873.152, 79.0)),
    (("price", 110.0), None, (7.0, -21.848, 9978.152, 79.0)),
    (("fill", -17.0), None, (-10.0, -23.344, 9976.656, 108.0)),
    (("price", 115.0), None, (-10.0, -73.344, 9926.656, 108.0)),
]


def _apply(v: Voms, action: tuple[str, float]) -> None:
    kind, value = action
    if kind == "price":
        v.set_price(value)
    else:
        v.add_fill(value)


def test_table_15_6_every_row() -> None:
    v = Voms(10_000.0, 10.0, 0.0004)
    assert v.metrics() is None
    for first, second, (size, upnl, balance, margin) in TABLE_15_6:
        _apply(v, first)
        if second is not None:
            _apply(v, second)
        m = v.metrics()
        assert m is not None
        # The printed values are the full reprs of the results.
        assert (m.position_size, m.unrealized_pnl, m.account_balance, m.margin_used) == (
            size,
            upnl,
            balance,
            margin,
        )


def test_metrics_dict_keys_and_sequential_sums() -> None:
    state = {
        "starting_balance": 1000.0,
        "leverage": 4.0,
        "fee_rate": 0.0004,
        "current_price": 3.0,
        "trades": [[0.1, 1e16], [0.3, -1e16], [0.7, 3.0]],
    }
    m = ref.voms_metrics(state)
    assert m is not None
    assert list(m) == [
        "position_size",
        "position_value",
        "unrealized_pnl",
        "account_balance",
        "margin_used",
        "current_price",
    ]
    # Hand-written left-to-right accumulation, fee per fill ((|p*q| * f) * 2).
    q = ((0.0 + 1e16) + -1e16) + 3.0
    e = ((0.0 + 0.1 * 1e16) + 0.3 * -1e16) + 0.7 * 3.0
    f = 0.0
    f = f + (abs(0.1 * 1e16) * 0.0004) * 2
    f = f + (abs(0.3 * -1e16) * 0.0004) * 2
    f = f + (abs(0.7 * 3.0) * 0.0004) * 2
    u = ((q * 3.0) - e) - f
    assert m["position_size"] == q
    assert m["position_value"] == e
    assert m["unrealized_pnl"] == u
    assert m["account_balance"] == 1000.0 + u
    assert m["margin_used"] == abs(e) / 4.0
    assert m["current_price"] == 3.0


def test_no_book_or_no_trades_gives_none_and_b0() -> None:
    assert ref.voms_metrics(None) is None
    empty = Voms(500.0, 2.0).to_state()
    assert ref.voms_metrics(empty) is None
    assert balance_of(None, 7000) == 7000.0
    assert balance_of(empty, 7000) == 7000.0


def test_operations_reject_bad_use() -> None:
    v = Voms(100.0, 1.0)
    with pytest.raises(ValueError, match="before a price"):
        v.add_fill(1.0)
    with pytest.raises(ValueError, match="negative"):
        v.set_price(-1.0)
    with pytest.raises(ValueError):
        Voms(0.0, 1.0)
    with pytest.raises(ValueError):
        Voms(10.0, 0.0)


def test_serialisation_round_trip_restores_all_five_fields() -> None:
    v = Voms(10_000.0, 10.0, 0.001)
    v.set_price(100.0)
    v.add_fill(2.5)
    v.set_price(101.0)
    state = v.to_state()
    assert state == {
        "starting_balance": 10_000.0,
        "leverage": 10.0,
        "fee_rate": 0.001,
        "current_price": 101.0,
        "trades": [[100.0, 2.5]],
    }
    back = Voms.from_state(json.loads(json.dumps(state)))
    assert back.to_state() == state
    assert back.metrics() == v.metrics()
    assert FEE_RATE == 0.0004 == ref.FEE_RATE


def test_restore_names_missing_fields() -> None:
    with pytest.raises(ValueError, match="fee_rate"):
        Voms.from_state({"starting_balance": 1.0, "leverage": 1.0, "current_price": 0.0, "trades": []})
