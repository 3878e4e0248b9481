"""Killing the gateway mid-request: the venue commits the order, then the connection drops. After a restart
the resolver learns the outcome from `order_status`; the order is never sent twice (L9, SV-13 shape)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.gateway.conftest import FakeClock, auth, drop_after_commit, make_harness, order_body
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager

BTC = "BTC/USDC:USDC"


def post(url: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/orders",
        content=json.dumps(body),
        headers={**auth(), "Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(("style", "final"), [("post_only", "RESTING"), ("ioc", "FILLED")])
def test_restart_after_drop_after_commit_resolves_by_status_without_resending(
    sqlite_url: str, style: str, final: str
) -> None:
    clock = FakeClock()
    lock_engine = make_engine(sqlite_url)
    h = make_harness(sqlite_url, locks=DbLockManager(lock_engine, clock), clock=clock)
    h.venue.hooks["place_order"] = drop_after_commit
    body = order_body(style=style)
    cloid = body["client_order_id"]

    with h.serve() as url:
        first = post(url, body)
    assert first.status_code == 202 and first.json()["status"] == "SENT_UNKNOWN"
    assert h.paper_orders() == 1
    # A killed process cannot release its per-order lock: it stays until its 60 s TTL runs out.
    dead_holder = h.locks.acquire(f"gateway:order:{cloid}", 60)
    assert dead_holder is not None

    # Restart: a new service and server over the same database and the same venue.
    h.venue.hooks.clear()
    restarted = h.new_service()
    with h.serve(restarted) as url:
        clock.advance(2)
        assert restarted.run_resolver_once() is True
        row = h.row(cloid)
        assert row is not None and row.status == "SENT_UNKNOWN"  # the dead request still holds the cloid
        clock.advance(60)
        h.set_price(BTC, 100_000.0, paper=False)
        assert restarted.run_resolver_once() is True
        row = h.row(cloid)
        assert row is not None and row.status == final
        replay = post(url, body)
    assert replay.status_code == 200
    assert replay.json()["replayed"] is True and replay.json()["status"] == final
    assert h.paper_orders() == 1  # one exchange submission in total
    paper_orders = [o for o in h.paper.store.open_orders() if o.cloid == cloid]
    position = h.paper.store.position(h.paper.config.wallet, BTC)
    if final == "RESTING":
        assert len(paper_orders) == 1 and position is None
    else:
        assert paper_orders == []
        assert position is not None and position.size == Decimal("0.001")  # no duplicate position
    statuses = [(a.payload["old"], a.payload["new"]) for a in h.audit(kind="order.status", cloid=cloid)]
    assert statuses == [("SENT_UNKNOWN", final)]
    h.engine.dispose()
    lock_engine.dispose()
