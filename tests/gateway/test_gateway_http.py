"""GW-01…GW-18 (portfolio.md §21.11) over real HTTP: uvicorn on 127.0.0.1, the paper exchange as the venue,
SQLite migrated by `migrate.upgrade`."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import TOKEN, Harness, auth, order_body
from ttt.domain.client_ids import client_order_id

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"


def post(url: str, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    h = {"Content-Type": "application/json", **(headers if headers is not None else auth())}
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return httpx.post(f"{url}/v1/orders", content=content, headers=h, timeout=30, **kw)


def fields_of(response: httpx.Response) -> list[str]:
    details = response.json()["details"]
    return [f["field"] for f in details["fields"]]


def assert_nothing_recorded(h: Harness) -> None:
    assert h.rows() == []
    assert h.audit() == []
    assert h.paper_orders() == 0


# --- GW-01: authentication -----


def test_gw01_missing_or_wrong_token_is_401_and_records_nothing(harness: Harness) -> None:
    with harness.serve() as url:
        cases = [
            {},
            {"Authorization": "Bearer wrong-token-wrong-token-wrong-token"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ]
        for headers in cases:
            r = post(url, order_body(), headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert r.headers["content-type"].startswith("application/json")
            assert r.json() == {
                "error": "unauthorized",
                "message": "missing or invalid bearer token",
                "details": None,
            }
        # Auth comes before parsing: a malformed body without a token is still 401.
        assert post(url, "{not json", headers={}).status_code == 401
        for path in ("/v1/orders", "/v1/open-orders", f"/v1/orders/{order_body()['client_order_id']}"):
            assert httpx.get(f"{url}{path}").status_code == 401
        r = httpx.post(f"{url}/v1/cancel-open", json={"symbols": [BTC], "scope": "ours"})
        assert r.status_code == 401
        health = httpx.get(f"{url}/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
    assert_nothing_recorded(harness)
    assert harness.venue.count("cancel") == 0


# --- GW-02 … GW-07: validation -----


@pytest.mark.parametrize(
    ("name", "changes", "field"),
    [
        ("GW-02 symbol not in universe", {"symbol": "SOL/USDC:USDC"}, "symbol"),
        ("GW-02 unknown symbol", {"symbol": "UNKNOWN/USDC:USDC"}, "symbol"),
        ("GW-03 side BUY", {"side": "BUY"}, "side"),
        ("GW-04 size 0", {"size": 0}, "size"),
        ("GW-04 size -1", {"size": -1}, "size"),
        ("GW-04 size as string", {"size": "0.1"}, "size"),
        ("GW-04 size boolean", {"size": True}, "size"),
        ("size huge", {"size": 1e300}, "size"),
        ("size overflowing to infinity", {"size": "1e400"}, "size"),
        ("size rounds to zero lots", {"size": 0.000004}, "size"),
        ("GW-06 unknown field type", {"type": "market"}, "type"),
        ("GW-07 foreign prefix", {"client_order_id": "0xdeadbeef" + "0" * 24}, "client_order_id"),
        ("GW-07 wrong length", {"client_order_id": "0x74747401" + "0" * 23}, "client_order_id"),
        ("GW-07 upper case", {"client_order_id": "0x74747401" + "A" * 24}, "client_order_id"),
        ("cycle id with a space", {"cycle_id": "sched 1"}, "cycle_id"),
        ("style market", {"style": "market"}, "style"),
        ("slippage on post_only", {"max_slippage_bps": 10}, "max_slippage_bps"),
        ("slippage over the limit", {"style": "ioc", "max_slippage_bps": 501}, "max_slippage_bps"),
        ("slippage zero", {"style": "ioc", "max_slippage_bps": 0}, "max_slippage_bps"),
        ("reduce_only as text", {"reduce_only": "false"}, "reduce_only"),
        ("decision price negative", {"decision_price": -1}, "decision_price"),
    ],
)
def test_gw02_to_gw07_bad_fields_are_422_naming_the_field(
    harness: Harness, name: str, changes: dict[str, Any], field: str
) -> None:
    body = {**order_body(), **changes}
    text = json.dumps(body)
    if changes.get("size") == "1e400":
        text = text.replace('"1e400"', "1e400")
    with harness.serve() as url:
        r = post(url, text)
    assert r.status_code == 422, (name, r.text)
    doc = r.json()
    assert doc["error"] == "validation_failed"
    assert field in fields_of(r), (name, doc)
    assert all(f["message"] for f in doc["details"]["fields"])
    assert_nothing_recorded(harness)


def test_missing_required_fields_are_listed(harness: Harness) -> None:
    with harness.serve() as url:
        r = post(url, {})
    assert r.status_code == 422
    assert set(fields_of(r)) == {"client_order_id", "cycle_id", "symbol", "side", "size"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_gw05_nan_literal_is_400_malformed_json(harness: Harness, literal: str) -> None:
    text = json.dumps(order_body()).replace('"size": 0.001', f'"size": {literal}')
    assert literal in text
    with harness.serve() as url:
        r = post(url, text)
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_json"
    assert r.json()["message"]
    assert_nothing_recorded(harness)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_json"),
        (b"\xff\xfe{", "application/json", 400, "malformed_json"),
        ("[" * 20000 + "]" * 20000, "application/json", 413, "body_too_large"),
        ('{"a": "' + "x" * 17000 + '"}', "application/json", 413, "body_too_large"),
        (json.dumps(order_body()), "text/plain", 415, "unsupported_media_type"),
        (json.dumps(order_body()), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("[1, 2]", "application/json", 422, "validation_failed"),
        ('"text"', "application/json", 422, "validation_failed"),
    ],
)
def test_unparseable_bodies_get_4xx_with_a_message(
    harness: Harness, content: Any, content_type: str, status: int, code: str
) -> None:
    with harness.serve() as url:
        r = httpx.post(
            f"{url}/v1/orders", content=content, headers={**auth(), "Content-Type": content_type}, timeout=30
        )
    assert r.status_code == status
    assert r.json()["error"] == code
    assert r.json()["message"]
    assert_nothing_recorded(harness)


def test_deeply_nested_body_within_the_size_limit_is_400(harness: Harness) -> None:
    text = "[" * 8000 + "]" * 8000
    with harness.serve() as url:
        r = post(url, text)
    assert r.status_code in (400, 422)
    assert r.json()["message"]
    assert_nothing_recorded(harness)


# --- GW-08 … GW-10: create and idempotent replay -----


def test_gw08_valid_post_only_order_rests_with_one_submission(harness: Harness) -> None:
    body = order_body(decision_price=100_000.0)
    with harness.serve() as url:
        r = post(url, body)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["status"] == "RESTING"
    assert rec["exchange_order_id"] is not None and rec["exchange_order_id"].isdigit()
    assert rec["replayed"] is False
    assert rec["client_order_id"] == "0x74747401ac68f1dd3b9b15bea5c75641"
    assert rec["size"] == 0.001 and rec["requested_size"] == 0.001
    assert rec["time_in_force"] == "Alo" and rec["style"] == "post_only"
    assert rec["limit_price"] == 100_000.0 and rec["reference_price"] == 100_000.0
    assert rec["decision_price"] == 100_000.0
    assert rec["error"] is None and rec["filled_size"] == 0.0 and rec["avg_fill_price"] is None
    assert rec["created_at"].endswith("+00:00")
    assert harness.paper_orders() == 1
    assert len(harness.paper.fetch_open_orders(BTC)) == 1
    kinds = [a.kind for a in harness.audit(cloid=rec["client_order_id"])]
    assert kinds == ["order.request", "order.submit", "order.result"]
    stream = [fields for _, fields in harness.cache.xrange("stream:orders")]
    assert [f["status"] for f in stream] == ["RECEIVED", "RESTING"]
    assert all(f["client_order_id"] == rec["client_order_id"] for f in stream)


def test_gw08_size_is_rounded_half_away_from_zero_to_the_lot(harness: Harness) -> None:
    # BTC lot 0.00001: 0.001234 → 123.4 lots → 123 → 0.00123; 0.001235 → 123.5 → 124 → 0.00124.
    with harness.serve() as url:
        a = post(url, order_body(cycle_id="c-1", size=0.001234))
        b = post(url, order_body(cycle_id="c-2", size=0.001235))
    assert a.json()["size"] == 0.00123 and a.json()["requested_size"] == 0.001234
    assert b.json()["size"] == 0.00124


def test_gw09_same_request_again_is_200_replayed_and_sent_once(harness: Harness) -> None:
    body = order_body()
    with harness.serve() as url:
        first = post(url, body)
        second = post(url, body)
        third = post(url, body)
    assert first.status_code == 201
    for r in (second, third):
        assert r.status_code == 200
        assert r.json()["replayed"] is True
        assert r.json()["status"] == "RESTING"
        assert r.json()["exchange_order_id"] == first.json()["exchange_order_id"]
    assert harness.paper_orders() == 1
    assert harness.metrics.gateway_replays_total._value.get() == 2


def test_gw10_same_cloid_different_size_is_409_conflict(harness: Harness) -> None:
    with harness.serve() as url:
        assert post(url, order_body()).status_code == 201
        r = post(url, order_body(size=0.002))
        r2 = post(url, order_body(side="sell"))
    assert r.status_code == 409 and r.json()["error"] == "client_order_id_conflict"
    assert r2.status_code == 409 and r2.json()["error"] == "client_order_id_conflict"
    assert harness.paper_orders() == 1


def test_fingerprint_uses_the_rounded_size(harness: Harness) -> None:
    # 0.0010001 and 0.001 round to the same 100 lots: the same order, so a replay, not a conflict.
    with harness.serve() as url:
        assert post(url, order_body()).status_code == 201
        r = post(url, order_body(size=0.0010001))
    assert r.status_code == 200 and r.json()["replayed"] is True


# --- GW-11: stale price -----


def test_gw11_stale_price_is_503_not_sent_then_a_replay_sends(harness: Harness) -> None:
    harness.set_price(BTC, 100_000.0, age_s=11)
    body = order_body()
    with harness.serve() as url:
        r = post(url, body)
        assert r.status_code == 503
        assert r.json()["error"] == "price_unavailable"
        assert r.headers["Retry-After"] == "5"
        row = harness.row(body["client_order_id"])
        assert row is not None and row.status == "NOT_SENT" and row.error_code == "price_unavailable"
        assert harness.paper_orders() == 0
        not_sent = harness.audit(kind="order.not_sent")
        assert len(not_sent) == 1 and not_sent[0].payload["price_age_s"] == 11.0
        harness.set_price(BTC, 100_000.0, age_s=10)  # exactly at the bound is still fresh
        again = post(url, body)
    assert again.status_code == 201 and again.json()["status"] == "RESTING"
    assert harness.paper_orders() == 1
    row = harness.row(body["client_order_id"])
    assert row is not None and row.attempts == 1 and row.error_code is None


def test_missing_price_is_503(harness: Harness) -> None:
    harness.cache.delete(f"price:{ETH}")
    with harness.serve() as url:
        r = post(url, order_body(symbol=ETH, size=0.01))
    assert r.status_code == 503 and r.json()["error"] == "price_unavailable"
    assert harness.paper_orders() == 0


# --- GW-12 / GW-13: unknown outcomes -----


def test_gw12_exchange_timeout_is_202_then_resolved_to_resting(harness: Harness) -> None:
    def timeout_after_send(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        target(request, *a, **k)
        raise TimeoutError("read timed out")

    harness.venue.hooks["place_order"] = timeout_after_send
    body = order_body()
    with harness.serve() as url:
        r = post(url, body)
        assert r.status_code == 202
        assert r.json()["status"] == "SENT_UNKNOWN"
        harness.clock.advance(1.0)
        assert harness.service.resolve_unknown() == 1
        got = httpx.get(f"{url}/v1/orders/{body['client_order_id']}", headers=auth())
    assert got.json()["status"] == "RESTING"
    assert harness.venue.count("order_status") == 1
    assert harness.paper_orders() == 1
    statuses = harness.audit(kind="order.status")
    assert [(a.payload["old"], a.payload["new"], a.payload["source"]) for a in statuses] == [
        ("SENT_UNKNOWN", "RESTING", "resolver")
    ]


def test_gw13_never_acknowledged_expires_after_grace_with_alert(harness: Harness) -> None:
    def lost(_target: Any, _request: Any, *a: Any, **k: Any) -> Any:
        raise TimeoutError("read timed out")

    harness.venue.hooks["place_order"] = lost
    body = order_body()
    with harness.serve() as url:
        assert post(url, body).status_code == 202
    svc = harness.service
    cloid = body["client_order_id"]
    # Passes at these times after submission; queries are due at 1, 2, 4, 8, 15 and at the 30 s grace.
    elapsed = 0.0
    for t in (0.5, 1, 1.5, 2, 4, 8, 15, 29.9):
        harness.clock.advance(t - elapsed)
        elapsed = t
        svc.resolve_unknown()
        row = harness.row(cloid)
        assert row is not None and row.status == "SENT_UNKNOWN"
    assert harness.venue.count("order_status") == 5
    harness.clock.advance(30 - elapsed)
    svc.resolve_unknown()
    row = harness.row(cloid)
    assert row is not None and row.status == "EXPIRED_UNKNOWN" and row.closed_at is not None
    assert harness.venue.count("order_status") == 6
    alerts = harness.audit(kind="alert")
    assert len(alerts) == 1 and alerts[0].payload["reason"] == "order_status_unknown"
    assert alerts[0].severity == "warning" and alerts[0].client_order_id == cloid
    value = harness.metrics.alerts_total.labels("gateway", "order_status_unknown", "warning")._value.get()
    assert value == 1
    assert harness.paper_orders() == 1  # never re-sent


# --- GW-14 … GW-16: exchange rejection and pre-send refusals -----


def test_gw14_crossing_post_only_is_201_rejected_and_never_retried(harness: Harness) -> None:
    # The gateway price is above the paper ask (100 000·1.0001 = 100 010): a post-only buy there crosses.
    harness.set_price(BTC, 100_100.0, paper=False)
    body = order_body()
    with harness.serve() as url:
        r = post(url, body)
        again = post(url, body)
    assert r.status_code == 201
    assert r.json()["status"] == "REJECTED"
    assert r.json()["error"]["code"] == "post_only_would_cross"
    assert "Post only order would have immediately matched" in r.json()["error"]["message"]
    assert again.status_code == 200 and again.json()["status"] == "REJECTED"
    assert harness.paper_orders() == 1


def test_gw15_mainnet_with_orders_disabled_is_403_and_nothing_sent(harness: Harness) -> None:
    svc = harness.new_service(mainnet=True, allow_mainnet_orders=False)
    with harness.serve(svc) as url:
        r = post(url, order_body())
    assert r.status_code == 403 and r.json()["error"] == "mainnet_orders_disabled"
    assert harness.paper_orders() == 0
    row = harness.row(order_body()["client_order_id"])
    assert row is not None and row.status == "NOT_SENT"


def test_gw16_decision_price_deviation_over_five_percent_is_409(harness: Harness) -> None:
    harness.set_price(ETH, 106.0)
    with harness.serve() as url:
        r = post(url, order_body(symbol=ETH, size=0.1, decision_price=100.0))
        # |105 − 100| / 100 = 0.05 is not > 0.05: allowed.
        harness.set_price(ETH, 105.0)
        ok = post(url, order_body(cycle_id="c-2", symbol=ETH, size=0.1, decision_price=100.0))
    assert r.status_code == 409 and r.json()["error"] == "price_deviation"
    assert ok.status_code == 201, ok.text
    assert harness.paper_orders() == 1


def test_notional_cap_and_exchange_minimum_are_422(harness: Harness) -> None:
    svc = harness.new_service(max_order_notional_usd=50.0)
    with harness.serve(svc) as url:
        capped = post(url, order_body())  # 0.001 · 100 000 = 100 USD > 50
        small = post(url, order_body(cycle_id="c-small", size=0.00009))  # 9 USD < 10
    assert capped.status_code == 422 and capped.json()["error"] == "notional_too_large"
    assert small.status_code == 422 and small.json()["error"] == "below_exchange_minimum"
    assert harness.paper_orders() == 0
    assert {r.status for r in harness.rows()} == {"NOT_SENT"}


# --- GW-17: concurrency -----


def test_gw17_two_concurrent_identical_requests_submit_once(harness: Harness) -> None:
    def slow(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        time.sleep(0.4)
        return target(request, *a, **k)

    harness.venue.hooks["place_order"] = slow
    body = order_body()
    answers: list[httpx.Response] = []
    with harness.serve() as url:
        barrier = threading.Barrier(2)

        def call() -> None:
            barrier.wait()
            answers.append(post(url, body))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sorted(r.status_code for r in answers) == [200, 201]
    assert all(r.json()["client_order_id"] == body["client_order_id"] for r in answers)
    assert all(r.json()["status"] == "RESTING" for r in answers)
    assert harness.paper_orders() == 1


def test_gw17_lock_held_past_the_wait_answers_202_with_the_record(harness: Harness) -> None:
    body = order_body()
    svc = harness.new_service(duplicate_wait_s=0.2)
    with harness.serve(svc) as url:
        assert post(url, body).status_code == 201
        token = harness.locks.acquire(f"gateway:order:{body['client_order_id']}", 60)
        assert token is not None
        busy = post(url, body)
        conflict = post(url, order_body(size=0.002))
    assert busy.status_code == 202 and busy.json()["status"] == "RESTING"
    assert conflict.status_code == 409
    assert harness.paper_orders() == 1


# --- GW-18: the wire action -----


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | set().union(*(_keys(v) for v in doc.values()))
    if isinstance(doc, list):
        return set().union(*(_keys(v) for v in doc)) if doc else set()
    return set()


@pytest.mark.parametrize(("style", "tif"), [("post_only", "Alo"), ("ioc", "Ioc")])
def test_gw18_submitted_action_has_cloid_no_builder_and_the_tif(
    harness: Harness, style: str, tif: str
) -> None:
    seen: list[Any] = []

    def capture(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        seen.append(request)
        return target(request, *a, **k)

    harness.venue.hooks["place_order"] = capture
    body = order_body(style=style)
    with harness.serve() as url:
        r = post(url, body)
    assert r.status_code == 201
    submit = harness.audit(kind="order.submit")
    assert len(submit) == 1
    action = submit[0].payload["action"]
    assert action["type"] == "order"
    (wire,) = action["orders"]
    assert wire["c"] == body["client_order_id"]
    assert wire["t"] == {"limit": {"tif": tif}}
    assert "builder" not in _keys(submit[0].payload)
    assert len(seen) == 1 and seen[0].cloid == body["client_order_id"] and seen[0].tif == tif


# --- IOC style (§11.5) -----


def test_ioc_limit_is_the_price_plus_slippage_and_fills(harness: Harness) -> None:
    with harness.serve() as url:
        buy = post(url, order_body(cycle_id="c-buy", style="ioc"))
        sell = post(url, order_body(cycle_id="c-sell", style="ioc", side="sell", max_slippage_bps=20))
    # buy: 100 000 · (1 + 50/10⁴) = 100 500; sell: 100 000 · (1 − 20/10⁴) = 99 800
    assert buy.json()["limit_price"] == 100_500.0 and buy.json()["time_in_force"] == "Ioc"
    assert sell.json()["limit_price"] == 99_800.0
    # paper taker buy = 100 000 · 1.0001 · 1.0002 = 100 030.002 (services.md §7.2)
    assert buy.json()["status"] == "FILLED" and buy.json()["avg_fill_price"] == 100_030.002
    assert buy.json()["filled_size"] == 0.001


def test_ioc_below_the_taker_price_is_rejected_ioc_no_match(harness: Harness) -> None:
    # limit 100 000 · 1.0002 = 100 020 < taker 100 030.002: no immediate match.
    with harness.serve() as url:
        r = post(url, order_body(style="ioc", max_slippage_bps=2))
    assert r.status_code == 201
    assert r.json()["status"] == "REJECTED" and r.json()["error"]["code"] == "ioc_no_match"


# --- reads and the other endpoints (§11.8) -----


def test_get_list_open_orders_health_and_metrics(harness: Harness) -> None:
    with harness.serve() as url:
        ids = []
        for i in range(3):
            r = post(url, order_body(cycle_id=f"c-{i}"))
            ids.append(r.json()["client_order_id"])
        eth = post(url, order_body(cycle_id="c-eth", symbol=ETH, size=0.01))
        assert eth.status_code == 201
        page1 = httpx.get(f"{url}/v1/orders", params={"symbol": BTC, "limit": 2}, headers=auth()).json()
        assert [o["client_order_id"] for o in page1["orders"]] == [ids[2], ids[1]]
        page2 = httpx.get(
            f"{url}/v1/orders",
            params={"symbol": BTC, "limit": 2, "cursor": page1["next_cursor"]},
            headers=auth(),
        ).json()
        assert [o["client_order_id"] for o in page2["orders"]] == [ids[0]]
        assert page2["next_cursor"] is None
        by_cycle = httpx.get(f"{url}/v1/orders", params={"cycle_id": "c-eth"}, headers=auth()).json()
        assert [o["symbol"] for o in by_cycle["orders"]] == [ETH]
        for bad in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"status": "OPEN"}, {"cursor": "abc"}):
            r = httpx.get(f"{url}/v1/orders", params=bad, headers=auth())
            assert r.status_code == 422, bad
            assert r.json()["error"] == "validation_failed" and r.json()["details"]["fields"]
        one = httpx.get(f"{url}/v1/orders/{ids[0]}", headers=auth())
        assert one.status_code == 200 and one.json()["client_order_id"] == ids[0]
        missing = httpx.get(f"{url}/v1/orders/0x74747401{'0' * 24}", headers=auth())
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        malformed = httpx.get(f"{url}/v1/orders/xyz", headers=auth())
        assert malformed.status_code == 422
        open_btc = httpx.get(f"{url}/v1/open-orders", params={"symbol": BTC}, headers=auth()).json()
        assert len(open_btc["orders"]) == 3 and all(o["ours"] for o in open_btc["orders"])
        assert httpx.get(f"{url}/v1/open-orders", params={"symbol": "X"}, headers=auth()).status_code == 422
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["db"] == "ok" and health["circuit"] == "closed"
        metrics = httpx.get(f"{url}/metrics").text
        assert "ttt_gateway_requests_total" in metrics
        assert (
            'ttt_gateway_orders_total{side="buy",status="RESTING",style="post_only",symbol="BTC/USDC:USDC"}'
            in (metrics)
        )
        assert ids[0] not in metrics  # no order data without auth


def test_unknown_route_and_method_use_the_error_body(harness: Harness) -> None:
    with harness.serve() as url:
        r = httpx.get(f"{url}/v1/nothing", headers=auth())
        m = httpx.delete(f"{url}/v1/orders", headers=auth())
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert m.status_code == 405 and m.json()["error"] == "method_not_allowed"
    assert m.headers["content-type"].startswith("application/json")


def test_database_down_is_503_and_nothing_is_sent(harness: Harness) -> None:
    from ttt.adapters.db.engine import make_engine

    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    svc = harness.new_service()
    svc.engine = dead
    svc._products = harness.service.products()  # metadata cached before the outage
    svc._exchange_id = harness.service.exchange_id()
    with harness.serve(svc) as url:
        r = post(url, order_body())
        health = httpx.get(f"{url}/health")
    assert r.status_code == 503 and r.json()["error"] == "db_unavailable"
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert harness.paper_orders() == 0
    dead.dispose()


def test_config_from_settings_reads_the_gateway_keys(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ttt.config import load_settings
    from ttt.services.gateway.service import GatewayConfig

    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={}, process="cli")
    config = GatewayConfig.from_settings(settings)
    assert config.policy.universe == (BTC, ETH)
    assert config.policy.prefix == "74747401"
    assert config.max_price_age_s == 10 and config.max_price_deviation == 0.05
    assert config.unknown_resolve_schedule_s == (1, 2, 4, 8, 15) and config.unknown_grace_s == 30
    assert config.isolated_leverage == 5  # int(5.0 / 1.0)
    assert config.mainnet is False
    assert replace(config, mainnet=True).mainnet


def test_reference_cloid_vector(harness: Harness) -> None:
    assert client_order_id("sched:20260101T120000Z", BTC) == "0x74747401ac68f1dd3b9b15bea5c75641"
