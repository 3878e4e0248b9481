"""Cancellation policy (portfolio.md §12) and the CAN-* pins of §21.9, on the paper exchange."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from tests.gateway.conftest import T0, TOKEN, Harness, auth, order_body
from ttt.domain.orders import OrderRequest
from ttt.services.gateway.client import HttpGatewayClient, InProcessGatewayClient

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"


def place_ours(h: Harness, cycle_id: str, symbol: str = BTC, size: float = 0.001) -> str:
    answer = h.service.create_order(order_body(cycle_id=cycle_id, symbol=symbol, size=size))
    assert answer.status == 201 and answer.body["status"] == "RESTING", answer.body
    return str(answer.body["client_order_id"])


def place_direct(h: Harness, cloid: str | None, symbol: str = BTC, price: str = "99000") -> int:
    """An order placed on the account by someone else (or by us before a database loss)."""
    size = Decimal("0.001") if symbol == BTC else Decimal("0.01")
    result = h.paper.place_order(OrderRequest(symbol, "buy", size, Decimal(price), "Alo", cloid=cloid))
    assert result.status == "resting", result
    assert result.oid is not None
    return result.oid


def record_cancels(h: Harness) -> list[tuple[str, list[str], list[int]]]:
    calls: list[tuple[str, list[str], list[int]]] = []

    def capture(target: Any, symbol: str, cloids: Any = (), oids: Any = (), **k: Any) -> Any:
        calls.append((symbol, list(cloids), list(oids)))
        return target(symbol, cloids=cloids, oids=oids, **k)

    h.venue.hooks["cancel"] = capture
    return calls


def test_can01_only_our_orders_are_cancelled_foreign_counted(harness: Harness) -> None:
    o1 = place_ours(harness, "c-1")
    o2 = place_ours(harness, "c-2")
    place_direct(harness, "0xdeadbeef" + "1" * 24)  # o3: foreign prefix
    place_direct(harness, None)  # o4: no cloid
    calls = record_cancels(harness)
    answer = harness.service.cancel_open([BTC, ETH])
    assert answer.status == 200
    assert len(calls) == 1
    symbol, cloids, oids = calls[0]
    assert symbol == BTC and sorted(cloids) == sorted([o1, o2]) and oids == []
    btc, eth = answer.body["results"]
    assert sorted(btc.pop("cancelled")) == sorted([o1, o2])
    assert btc == {"symbol": BTC, "already_closed": [], "foreign_open": 2, "error": None}
    assert eth == {"symbol": ETH, "cancelled": [], "already_closed": [], "foreign_open": 0, "error": None}
    remaining = harness.paper.fetch_open_orders(BTC)
    assert len(remaining) == 2 and all(o.cloid != o1 and o.cloid != o2 for o in remaining)
    for cloid in (o1, o2):
        row = harness.row(cloid)
        assert row is not None and row.status == "CANCELED" and row.closed_at is not None
    assert harness.metrics.foreign_open_orders.labels(BTC)._value.get() == 2
    kinds = [a.kind for a in harness.audit() if a.kind.startswith("order.cancel")]
    assert kinds == ["order.cancel.request", "order.cancel.result"]


def test_can02_listing_failure_holds_that_symbol_only(harness: Harness) -> None:
    eth_order = place_ours(harness, "c-eth", symbol=ETH, size=0.01)

    def listing(target: Any, symbol: Any = None, *a: Any, **k: Any) -> Any:
        if symbol == BTC:
            raise ConnectionError("listing BTC failed")
        return target(symbol, *a, **k)

    harness.venue.hooks["fetch_open_orders"] = listing
    reply = InProcessGatewayClient(harness.service).cancel_open([BTC, ETH])
    assert reply.status == 200 and reply.body is not None
    btc, eth = reply.body["results"]
    assert btc["error"] is not None and "listing" in btc["error"]
    assert eth["error"] is None and eth["cancelled"] == [eth_order]


def test_can03_exchange_or_gateway_unreachable_is_an_answer_not_an_exception(harness: Harness) -> None:
    def down(*_a: Any, **_k: Any) -> Any:
        raise ConnectionError("exchange unreachable")

    harness.venue.hooks["fetch_open_orders"] = down
    reply = InProcessGatewayClient(harness.service).cancel_open([BTC, ETH])
    assert reply.status == 503 and reply.error_code == "exchange_unavailable"
    assert harness.venue.count("cancel") == 0
    # Nothing listens on this port: the HTTP client reports it unreachable, without raising.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with HttpGatewayClient(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2) as client:
        unreachable = client.cancel_open([BTC, ETH])
    assert unreachable.transport == "unreachable" and unreachable.status is None


def test_can04_no_open_orders_means_no_cancel_call(harness: Harness) -> None:
    answer = harness.service.cancel_open([BTC, ETH])
    assert answer.status == 200
    assert harness.venue.count("fetch_open_orders") == 2
    assert harness.venue.count("cancel") == 0
    assert all(r["cancelled"] == [] and r["error"] is None for r in answer.body["results"])


def test_can04_only_foreign_orders_means_no_cancel_call(harness: Harness) -> None:
    place_direct(harness, "0x00000000" + "2" * 24)
    answer = harness.service.cancel_open([BTC])
    assert harness.venue.count("cancel") == 0
    assert answer.body["results"][0]["foreign_open"] == 1


def test_can05_already_filled_is_resolved_with_its_fill_time(harness: Harness) -> None:
    o1 = place_ours(harness, "c-1")  # rests at 100 000
    stale_listing = harness.paper.fetch_open_orders(BTC)
    harness.clock.advance(42.0)
    t_fill = harness.clock.now()
    fills = harness.paper.on_price(BTC, 99_990.0)  # falls through the limit: filled at t_fill
    assert len(fills) == 1
    harness.clock.advance(5.0)
    harness.venue.hooks["fetch_open_orders"] = lambda _target, *a, **k: list(stale_listing)
    answer = harness.service.cancel_open([BTC])
    result = answer.body["results"][0]
    assert result["already_closed"] == [o1] and result["cancelled"] == [] and result["error"] is None
    row = harness.row(o1)
    assert row is not None and row.status == "FILLED"
    assert row.filled_size == Decimal("0.001") and row.avg_fill_price == Decimal("100000")
    assert row.closed_at == datetime.fromtimestamp(t_fill, UTC)
    assert t_fill == T0 + 42.0


def test_orphans_of_ours_are_cancelled_with_an_audit_row(harness: Harness) -> None:
    orphan = "0x74747401" + "3" * 24
    place_direct(harness, orphan)
    answer = harness.service.cancel_open([BTC])
    assert answer.body["results"][0]["cancelled"] == [orphan]
    rows = harness.audit(kind="order.cancel.orphan")
    assert len(rows) == 1 and rows[0].payload["cloid"] == orphan
    assert harness.paper.fetch_open_orders(BTC) == []


def test_cancel_open_validates_symbols_and_scope_over_http(harness: Harness) -> None:
    with harness.serve() as url:
        bad_symbol = httpx.post(f"{url}/v1/cancel-open", json={"symbols": ["X/USDC:USDC"]}, headers=auth())
        bad_scope = httpx.post(
            f"{url}/v1/cancel-open", json={"symbols": [BTC], "scope": "all"}, headers=auth()
        )
        extra = httpx.post(f"{url}/v1/cancel-open", json={"symbols": [BTC], "all": True}, headers=auth())
        ok = httpx.post(
            f"{url}/v1/cancel-open", json={"symbols": [BTC, ETH], "scope": "ours"}, headers=auth()
        )
    assert bad_symbol.status_code == 422 and bad_symbol.json()["details"]["fields"][0]["field"] == "symbols"
    assert bad_scope.status_code == 422
    assert extra.status_code == 422
    assert ok.status_code == 200 and [r["symbol"] for r in ok.json()["results"]] == [BTC, ETH]


def test_cancel_one_order_over_http(harness: Harness) -> None:
    cloid = place_ours(harness, "c-1")
    with harness.serve() as url:
        first = httpx.post(f"{url}/v1/orders/{cloid}/cancel", headers=auth())
        second = httpx.post(f"{url}/v1/orders/{cloid}/cancel", headers=auth())
        missing = httpx.post(f"{url}/v1/orders/0x74747401{'9' * 24}/cancel", headers=auth())
    assert first.status_code == 200 and first.json()["status"] == "CANCELED"
    assert second.status_code == 409 and second.json()["error"] == "not_open"
    assert missing.status_code == 404
    assert harness.paper.fetch_open_orders(BTC) == []
