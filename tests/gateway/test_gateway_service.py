"""Service-level behaviour: resolver and fills loops, HIP-3 leverage, write-ahead, and the engine clients
of §11.7 with their outcome table."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.gateway.conftest import TOKEN, Harness, make_harness, order_body
from ttt.adapters.db.locks import DbLockManager
from ttt.domain.orders import ProductMeta
from ttt.errors import ExchangeUnavailable
from ttt.services.gateway.client import (
    GatewayReply,
    HttpGatewayClient,
    InProcessGatewayClient,
)
from ttt.services.gateway.loops import GatewayLoops
from ttt.services.gateway.model import GatewayError, error_code_for
from ttt.services.portfolio.gateway_bridge import answer_of
from ttt.services.portfolio.outcomes import SubmitOutcome
from ttt.services.portfolio.outcomes import submit_outcome as outcome_of_answer

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"


# --- resolver, RESTING refresh and fills (§11.6) -----


def test_resting_refresh_records_the_fill_and_fills_are_ingested_once(harness: Harness) -> None:
    svc = harness.service
    cloid = svc.create_order(order_body()).body["client_order_id"]
    harness.clock.advance(60)
    harness.paper.on_price(BTC, 99_999.0)  # below the 100 000 limit: the resting buy fills as maker
    assert svc.refresh_resting() == 1
    row = harness.row(cloid)
    assert row is not None and row.status == "FILLED" and row.filled_size == Decimal("0.001")
    (status,) = harness.audit(kind="order.status")
    assert status.payload["old"] == "RESTING" and status.payload["new"] == "FILLED"
    assert status.payload["source"] == "resolver"
    assert svc.sync_fills() == 1
    assert svc.sync_fills() == 0
    with_fill = harness.audit(kind="fill")
    assert len(with_fill) == 1 and with_fill[0].client_order_id == cloid
    # maker fee 0.00015 · 0.001 · 100 000 = 0.015 USD
    row = harness.row(cloid)
    assert row is not None and row.fees_usd == Decimal("0.015")
    from ttt.adapters.db.uow import UnitOfWork

    with UnitOfWork(harness.engine) as uow:
        (fill,) = uow.fills.for_client_order_id(cloid)
    assert fill.liquidity == "maker" and fill.price == Decimal("100000") and fill.size == Decimal("0.001")
    assert harness.metrics.fills_total.labels(BTC, "maker")._value.get() == 1


def test_foreign_fills_are_not_ingested(harness: Harness) -> None:
    from ttt.domain.orders import OrderRequest

    harness.paper.place_order(OrderRequest(BTC, "buy", Decimal("0.001"), Decimal("101000"), "Ioc"))
    assert len(harness.paper.fetch_fills(0)) == 1
    assert harness.service.sync_fills() == 0


def test_resolver_pass_needs_the_resolver_lock(harness: Harness) -> None:
    token = harness.locks.acquire("gateway:resolver", 30)
    assert token is not None
    assert harness.service.run_resolver_once() is False
    harness.locks.release("gateway:resolver", token)
    assert harness.service.run_resolver_once() is True


def test_loops_resolve_an_unknown_order_in_the_background(harness: Harness) -> None:
    def timeout_after_send(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        target(request, *a, **k)
        raise TimeoutError("read timed out")

    harness.venue.hooks["place_order"] = timeout_after_send
    answer = harness.service.create_order(order_body())
    assert answer.status == 202
    harness.clock.advance(1)
    loops = GatewayLoops(harness.service, tick_s=0.05)
    loops.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = harness.row(answer.body["client_order_id"])
            if row is not None and row.status == "RESTING":
                break
            time.sleep(0.05)
    finally:
        loops.stop()
    row = harness.row(answer.body["client_order_id"])
    assert row is not None and row.status == "RESTING"
    assert harness.locks.acquire("gateway:resolver", 30) is not None  # released on stop


# --- write-ahead (§17) -----


def test_no_audit_row_means_no_order(harness: Harness) -> None:
    """When the audit log cannot be written, the exchange is never called."""
    import sqlalchemy as sa

    with harness.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_log"))
    answer = InProcessGatewayClient(harness.service).submit(order_body())
    assert answer.status == 503 and answer.error_code == "db_unavailable"
    assert harness.paper_orders() == 0
    assert harness.rows() == []  # the record and its audit row are one transaction


# --- HIP-3 isolated leverage (§11.5) -----


def test_isolated_only_product_sets_leverage_once_and_refuses_on_failure(sqlite_url: str) -> None:
    products = {
        BTC: ProductMeta(BTC, sz_decimals=5, max_leverage=3, margin_mode="isolated_only"),
        ETH: ProductMeta(ETH, sz_decimals=4, max_leverage=25),
    }
    h = make_harness(sqlite_url, products=products)
    calls: list[tuple[str, int]] = []

    def leverage(target: Any, symbol: str, lev: int, *a: Any, **k: Any) -> Any:
        calls.append((symbol, lev))
        return target(symbol, lev, *a, **k)

    h.venue.hooks["set_isolated_leverage"] = leverage
    assert h.service.create_order(order_body(cycle_id="a")).status == 201
    assert h.service.create_order(order_body(cycle_id="b")).status == 201
    assert h.service.create_order(order_body(cycle_id="c", symbol=ETH, size=0.01)).status == 201
    assert calls == [(BTC, 3)]  # L* = int(5 / 1) = 5, capped at max_leverage 3; once per process
    fresh = h.new_service()
    h.venue.hooks["set_isolated_leverage"] = lambda *_a, **_k: "leverage refused"
    with pytest.raises(GatewayError) as err:
        fresh.create_order(order_body(cycle_id="d"))
    assert err.value.status == 503 and err.value.code == "leverage_setup_failed"
    h.engine.dispose()


# --- error phrases (§11.4) -----


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Post only order would have immediately matched, bbo was 1@2.", "post_only_would_cross"),
        ("Order could not immediately match against any resting orders.", "ioc_no_match"),
        ("Insufficient margin to place order.", "insufficient_margin"),
        ("Order must have minimum value of $10.", "below_exchange_minimum"),
        ("Reduce only order would increase position.", "reduce_only_violation"),
        ("Order has invalid size.", "invalid_size"),
        ("Order has zero size.", "invalid_size"),
        ("Price must be divisible by tick size.", "invalid_price"),
        ("Order price cannot be more than 80% away from the reference price", "invalid_price"),
        ("User or API Wallet 0x123 does not exist.", "exchange_rejected"),
        ("duplicate", "exchange_rejected"),
        (None, "exchange_rejected"),
    ],
)
def test_exchange_texts_map_to_codes(text: str | None, code: str) -> None:
    assert error_code_for(text) == code


# --- engine clients (§11.7) -----


def submit_outcome(reply: GatewayReply) -> SubmitOutcome:
    """The engine's reading of a client's reply: the bridge's translation, then the one §11.7 table."""
    return outcome_of_answer(answer_of(reply))


def _reply(status: int | None, body: dict[str, Any] | None = None, transport: str = "ok") -> GatewayReply:
    return GatewayReply(status, body, transport)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reply", "outcome", "alert", "severity"),
    [
        (_reply(201, {"status": "RESTING"}), "order_sent", None, None),
        (_reply(200, {"status": "FILLED", "replayed": True}), "order_sent", None, None),
        (_reply(201, {"status": "PARTIAL"}), "order_sent", None, None),
        (_reply(201, {"status": "REJECTED"}), "order_rejected", "order_rejected", "warning"),
        (_reply(200, {"status": "CANCELED", "replayed": True}), "order_not_sent", None, None),
        (_reply(200, {"status": "EXPIRED_UNKNOWN", "replayed": True}), "order_not_sent", None, None),
        (_reply(202, {"status": "SENT_UNKNOWN"}), "order_unknown", "gateway_timeout", "warning"),
        (_reply(None, None, "timeout"), "order_unknown", "gateway_timeout", "warning"),
        (_reply(503, {"error": "price_unavailable"}), "order_not_sent", "order_not_sent", "warning"),
        (_reply(409, {"error": "price_deviation"}), "order_not_sent", "order_not_sent", "warning"),
        (_reply(401, {"error": "unauthorized"}), "order_not_sent", "gateway_rejected_request", "critical"),
        (
            _reply(403, {"error": "mainnet_orders_disabled"}),
            "order_not_sent",
            "gateway_rejected_request",
            "critical",
        ),
        (
            _reply(409, {"error": "client_order_id_conflict"}),
            "order_not_sent",
            "gateway_rejected_request",
            "critical",
        ),
        (_reply(413, {"error": "body_too_large"}), "order_not_sent", "gateway_rejected_request", "critical"),
        (_reply(415, {"error": "x"}), "order_not_sent", "gateway_rejected_request", "critical"),
        (
            _reply(422, {"error": "validation_failed"}),
            "order_not_sent",
            "gateway_rejected_request",
            "critical",
        ),
        (_reply(None, None, "unreachable"), "order_not_sent", "gateway_unreachable", "critical"),
        (
            _reply(200, {"status": "NOT_SENT", "replayed": True}),
            "order_not_sent",
            "order_not_sent",
            "warning",
        ),
        (_reply(400, {"error": "malformed_json"}), "order_not_sent", "gateway_rejected_request", "critical"),
        (_reply(404, {"error": "not_found"}), "order_not_sent", "gateway_rejected_request", "critical"),
        (
            _reply(409, {"error": {"code": "price_deviation"}}),
            "order_not_sent",
            "order_not_sent",
            "warning",
        ),
        (_reply(500, {"error": "internal_error"}), "order_unknown", "internal_error", "critical"),
        (_reply(201, {"status": "SOMETHING_NEW"}), "order_unknown", "gateway_timeout", "warning"),
    ],
)
def test_outcome_table(reply: GatewayReply, outcome: str, alert: str | None, severity: str | None) -> None:
    got = submit_outcome(reply)
    assert (got.outcome, got.alert, got.severity) == (outcome, alert, severity)


def test_http_and_in_process_clients_give_the_same_answers(harness: Harness) -> None:
    bodies = [
        {**order_body(cycle_id="bad"), "side": "BUY"},
        {**order_body(cycle_id="bad2"), "size": "0.1", "symbol": "SOL/USDC:USDC"},
        order_body(cycle_id="ok"),
    ]
    in_process = InProcessGatewayClient(harness.service)
    with harness.serve() as url, HttpGatewayClient(url, TOKEN) as http:
        for body in bodies:
            remote = http.submit(body)
            local = in_process.submit(body)
            assert remote.status in (201, 422)
            if remote.status == 201:
                assert local.status == 200 and local.body is not None and local.body["replayed"] is True
                assert remote.body is not None
                assert {k: v for k, v in remote.body.items() if k not in ("replayed", "updated_at")} == {
                    k: v for k, v in local.body.items() if k not in ("replayed", "updated_at")
                }
            else:
                assert (local.status, local.body) == (remote.status, remote.body)
    assert harness.paper_orders() == 1
    nan = in_process.submit({**order_body(cycle_id="nan"), "size": float("nan")})
    assert nan.status == 400 and nan.error_code == "malformed_json"


def test_http_client_retries_once_on_connection_failure_then_gives_up() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    with HttpGatewayClient(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2, sleep=sleeps.append) as client:
        reply = client.submit(order_body())
    assert reply.transport == "unreachable" and sleeps == [1.0]
    assert submit_outcome(reply).alert == "gateway_unreachable"


def test_http_client_on_timeout_does_not_retry_and_reads_the_record(harness: Harness) -> None:
    import threading
    import time

    release = threading.Event()
    at_venue = threading.Event()

    def slow(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        at_venue.set()
        release.wait(10)
        return target(request, *a, **k)

    harness.venue.hooks["place_order"] = slow
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # The back-off is recorded, not slept; waiting for the venue call keeps a loaded
        # machine from reading the record before the gateway has written it.
        sleeps.append(seconds)
        at_venue.wait(10)

    body = order_body()
    with harness.serve() as url:
        with HttpGatewayClient(url, TOKEN, timeout_s=0.5, sleep=sleep) as client:
            reply = client.submit(body)
        release.set()
        time.sleep(0.3)
    assert reply.transport == "timeout" and sleeps == [5.0]
    assert reply.record is not None and reply.record["status"] == "SENT_UNKNOWN"
    assert submit_outcome(reply).outcome == "order_unknown"
    assert harness.paper_orders() == 1


def test_in_process_client_sends_traceable_json_only() -> None:
    class Boom:
        def create_order(self, body: Any) -> Any:
            raise RuntimeError("bug")

    reply = InProcessGatewayClient(Boom()).submit({"a": Decimal("1")})
    assert reply.status == 400  # a Decimal is not JSON: refused like on the wire
    reply = InProcessGatewayClient(Boom()).submit({"a": 1})
    assert reply.status == 500 and reply.error_code == "internal_error"
    assert submit_outcome(reply).outcome == "order_unknown"
    assert json.dumps(reply.body)


def test_db_lock_backend_works_for_order_locks(sqlite_url: str) -> None:
    from tests.gateway.conftest import FakeClock

    clock = FakeClock()
    from ttt.adapters.db.engine import make_engine

    engine = make_engine(sqlite_url)
    h = make_harness(sqlite_url, locks=DbLockManager(engine, clock), clock=clock)
    assert h.service.create_order(order_body()).status == 201
    assert h.service.create_order(order_body()).status == 200
    h.engine.dispose()
    engine.dispose()


# --- transport failures at submission (§11.3 step 5) ------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError("refused"), ExchangeUnavailable("circuit breaker open")],
    ids=["refused", "adapter-not-sent"],
)
def test_pre_send_failure_is_503_not_sent_and_a_replay_sends(harness: Harness, error: Exception) -> None:
    def refuse(_target: Any, _request: Any, *a: Any, **k: Any) -> Any:
        raise error

    harness.venue.hooks["place_order"] = refuse
    reply = InProcessGatewayClient(harness.service).submit(order_body())
    assert reply.status == 503 and reply.error_code == "exchange_unavailable"
    row = harness.row(order_body()["client_order_id"])
    assert row is not None and row.status == "NOT_SENT"
    harness.venue.hooks.clear()
    again = InProcessGatewayClient(harness.service).submit(order_body())
    assert again.status == 201 and again.body is not None and again.body["status"] == "RESTING"


@pytest.mark.parametrize(
    "error", [ConnectionResetError("reset"), TimeoutError("timeout"), RuntimeError("5xx")]
)
def test_ambiguous_failure_is_202_and_never_resent(harness: Harness, error: Exception) -> None:
    def ambiguous(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        target(request, *a, **k)
        raise error

    harness.venue.hooks["place_order"] = ambiguous
    client = InProcessGatewayClient(harness.service)
    first = client.submit(order_body())
    assert first.status == 202 and first.body is not None and first.body["status"] == "SENT_UNKNOWN"
    second = client.submit(order_body())  # the replay resolves by status instead of resending
    assert second.status == 200 and second.body is not None and second.body["status"] == "RESTING"
    assert harness.paper_orders() == 1


def test_result_that_cannot_be_stored_is_still_202(harness: Harness) -> None:
    import sqlalchemy as sa

    def send_then_lose_db(target: Any, request: Any, *a: Any, **k: Any) -> Any:
        result = target(request, *a, **k)
        with harness.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE audit_log"))
        return result

    harness.venue.hooks["place_order"] = send_then_lose_db
    reply = InProcessGatewayClient(harness.service).submit(order_body())
    assert reply.status == 202 and reply.body is not None and reply.body["status"] == "SENT_UNKNOWN"
    assert harness.paper_orders() == 1
