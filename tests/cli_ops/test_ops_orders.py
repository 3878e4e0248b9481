"""`3t orders list|show|cancel-ours` through `ttt.cli.main` on SQLite, with order records produced by a
real gateway over the database-backed paper engine (the same wiring `3t run` uses)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.cli_ops.conftest import Ops
from ttt.adapters.cache.memory import MemoryCache
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import PaperExchange
from ttt.adapters.exchange.paper_sql import AtomicPaperExchange, SqlPaperStore
from ttt.cli import main
from ttt.clock import WallClock
from ttt.config import load_settings
from ttt.domain.client_ids import client_order_id
from ttt.domain.orders import OrderRequest
from ttt.services.gateway.bootstrap import build_gateway, paper_config_from_settings
from ttt.services.gateway.service import GatewayService
from ttt.services.gateway.support import SerializedExchange

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"
FOREIGN = "0x" + "ab" * 16  # not our 74747401 prefix


@dataclass
class Venue:
    paper: PaperExchange
    service: GatewayService
    cache: MemoryCache
    clock: WallClock

    def set_price(self, symbol: str, price: float) -> None:
        self.paper.on_price(symbol, price)
        self.cache.set(
            f"price:{symbol}", json.dumps({"price": price, "ts": self.clock.now(), "source": "replay"})
        )

    def order(self, cycle_id: str, symbol: str, side: str = "buy", size: float = 0.001) -> str:
        body = {
            "client_order_id": client_order_id(cycle_id, symbol),
            "cycle_id": cycle_id,
            "symbol": symbol,
            "side": side,
            "size": size,
            "style": "post_only",
        }
        answer = self.service.create_order(body)
        assert answer.status == 201, answer.body
        return str(answer.body["client_order_id"])


def _venue(ops: Ops) -> Venue:
    settings = load_settings(ops.config, None, process="cli")
    clock = WallClock()
    store = SqlPaperStore(ops.engine, clock)
    paper = PaperExchange(paper_config_from_settings(settings), clock, store=store)
    cache = MemoryCache()
    bundle = build_gateway(
        settings,
        engine=ops.engine,
        cache=cache,
        locks=DbLockManager(ops.engine),
        clock=clock,
        exchange=SerializedExchange(AtomicPaperExchange(paper, store)),
    )
    v = Venue(paper, bundle.service, cache, clock)
    v.set_price(BTC, 100_000.0)
    v.set_price(ETH, 3_000.0)
    return v


def _open_cloids(ops: Ops) -> set[str | None]:
    """What the database-backed paper engine has open, read through a fresh store."""
    store = SqlPaperStore(ops.engine, WallClock())
    return {o.cloid for o in store.open_orders()}


def _run(capsys: pytest.CaptureFixture[str], ops: Ops, *args: str) -> tuple[int, str, str]:
    code = main(ops.argv(*args))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], ops: Ops, *args: str) -> Any:
    code, out, err = _run(capsys, ops, "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def venue(ops: Ops) -> Venue:
    return _venue(ops)


def test_list_filters_by_status_and_symbol(
    ops: Ops, venue: Venue, capsys: pytest.CaptureFixture[str]
) -> None:
    btc = venue.order("sched:20260101T120000Z", BTC)
    eth = venue.order("sched:20260101T120000Z", ETH, size=0.01)
    venue.set_price(BTC, 99_990.0)  # below the 100 000 post-only bid: the BTC buy fills as maker
    assert venue.service.refresh_resting() == 1  # only BTC changed

    rows = _json(capsys, ops, "orders", "list")
    assert [r["client_order_id"] for r in rows] == [eth, btc]  # newest first
    assert {r["client_order_id"]: r["status"] for r in rows} == {btc: "FILLED", eth: "RESTING"}

    assert [r["client_order_id"] for r in _json(capsys, ops, "orders", "list", "--status", "resting")] == [
        eth
    ]
    assert [r["client_order_id"] for r in _json(capsys, ops, "orders", "list", "--symbol", BTC)] == [btc]
    assert len(_json(capsys, ops, "orders", "list", "-n", "1")) == 1

    code, out, _ = _run(capsys, ops, "orders", "list", "--status", "FILLED")
    assert code == 0 and btc in out and eth not in out and "FILLED" in out

    code, _, err = _run(capsys, ops, "orders", "list", "--status", "DONE")
    assert code == 2 and "--status DONE" in err and "RESTING" in err and "Traceback" not in err


def test_list_on_an_empty_database_says_so(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ops, "orders", "list")
    assert code == 0 and "no orders" in out
    assert _json(capsys, ops, "orders", "list") == []


def test_show_has_record_audit_trail_and_fills(
    ops: Ops, venue: Venue, capsys: pytest.CaptureFixture[str]
) -> None:
    cloid = venue.order("sched:20260101T120000Z", BTC)
    venue.set_price(BTC, 99_990.0)
    venue.service.refresh_resting()
    assert venue.service.sync_fills() == 1

    data = _json(capsys, ops, "orders", "show", cloid)
    rec = data["record"]
    assert rec["client_order_id"] == cloid and rec["status"] == "FILLED" and rec["symbol"] == BTC
    assert rec["filled_size"] == 0.001 and rec["avg_fill_price"] == 100_000.0
    assert rec["fees_usd"] == pytest.approx(0.015)  # maker 0.00015 · 0.001 · 100 000
    kinds = [a["kind"] for a in data["audit"]]
    assert kinds[:3] == ["order.request", "order.submit", "order.result"] and "fill" in kinds
    (fill,) = data["fills"]
    assert fill["side"] == "buy" and fill["liquidity"] == "maker"
    assert Decimal(fill["price"]) == Decimal("100000") and Decimal(fill["size"]) == Decimal("0.001")
    assert Decimal(fill["fee"]) == Decimal("0.015")

    code, out, _ = _run(capsys, ops, "orders", "show", cloid.upper().replace("0X", "0x"))
    assert code == 0 and "status: FILLED" in out and "order.submit" in out and "fills (1)" in out


def test_show_unknown_or_malformed_id_exits_2(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    missing = client_order_id("sched:20260101T120000Z", BTC)
    code, _, err = _run(capsys, ops, "orders", "show", missing)
    assert code == 2 and f"no order with client_order_id {missing}" in err
    code, _, err = _run(capsys, ops, "orders", "show", "0x123")
    assert code == 2 and "32 hex" in err and "Traceback" not in err


def test_cancel_ours_in_process_leaves_foreign_orders(
    ops: Ops, venue: Venue, capsys: pytest.CaptureFixture[str]
) -> None:
    btc = venue.order("sched:20260101T120000Z", BTC)
    eth = venue.order("sched:20260101T120000Z", ETH, size=0.01)
    foreign = venue.paper.place_order(
        OrderRequest(BTC, "buy", Decimal("0.001"), Decimal("90000"), "Alo", cloid=FOREIGN)
    )
    assert foreign.status == "resting"
    assert _open_cloids(ops) == {btc, eth, FOREIGN}

    data = _json(capsys, ops, "orders", "cancel-ours", "--symbol", BTC)
    assert data["requested"] is False
    (result,) = data["results"]
    assert result == {
        "symbol": BTC,
        "cancelled": [btc],
        "already_closed": [],
        "foreign_open": 1,
        "error": None,
    }
    assert _open_cloids(ops) == {eth, FOREIGN}  # ETH was not asked for; the foreign order is never touched
    with UnitOfWork(ops.engine, read_only=True) as uow:
        row = uow.orders.by_client_order_id(btc)
        assert row is not None and row.status == "CANCELED"
        assert [a.kind for a in uow.audit.tail(50, kind="order.cancel.result")] == ["order.cancel.result"]

    code, out, _ = _run(capsys, ops, "orders", "cancel-ours")  # every universe symbol
    assert code == 0
    assert (
        "ETH/USDC:USDC: cancelled 1" in out
        and "BTC/USDC:USDC: cancelled 0" in out
        and "foreign open 1" in out
    )
    assert _open_cloids(ops) == {FOREIGN}


def test_cancel_ours_rejects_a_symbol_outside_the_universe(
    ops: Ops, venue: Venue, capsys: pytest.CaptureFixture[str]
) -> None:
    btc = venue.order("sched:20260101T120000Z", BTC)
    code, _, err = _run(capsys, ops, "orders", "cancel-ours", "--symbol", "DOGE/USDC:USDC")
    assert code == 2 and "DOGE/USDC:USDC is not in universe.symbols" in err
    assert _open_cloids(ops) == {btc}


def test_cancel_ours_with_a_running_instance_hands_over_a_control_request(
    ops: Ops, venue: Venue, capsys: pytest.CaptureFixture[str]
) -> None:
    from ttt.cli.orders_cmd import CONTROL_CANCEL_OURS
    from ttt.runtime import portfolio_wiring

    assert CONTROL_CANCEL_OURS == portfolio_wiring.CONTROL_CANCEL_OURS
    btc = venue.order("sched:20260101T120000Z", BTC)
    venue.paper.place_order(
        OrderRequest(BTC, "buy", Decimal("0.001"), Decimal("90000"), "Alo", cloid=FOREIGN)
    )
    locks = DbLockManager(ops.engine)
    token = locks.acquire("instance:embedded", 30)
    assert token is not None

    data = _json(capsys, ops, "orders", "cancel-ours", "--symbol", BTC)
    assert data["requested"] is True and data["symbols"] == [BTC]
    request_id = data["request_id"]
    assert _open_cloids(ops) == {btc, FOREIGN}  # this process did not act
    with UnitOfWork(ops.engine, read_only=True) as uow:
        req = uow.control.get(request_id)
        assert req is not None and req.kind == "orders.cancel_ours" and req.payload == {"symbols": [BTC]}
        assert req.picked_at is None

    code, out, _ = _run(capsys, ops, "orders", "cancel-ours")
    assert code == 0 and "requested from the running `3t run` (request #" in " ".join(out.split())

    # the running process picks both requests up through its control task
    side = _Side(venue.service)
    assert portfolio_wiring.pick_up_requests(side, ops.engine, venue.clock) == 2  # type: ignore[arg-type]
    with UnitOfWork(ops.engine, read_only=True) as uow:
        first = uow.control.get(request_id)
        assert first is not None and first.picked_at is not None
        assert first.result["ok"] is True
        assert first.result["results"] == [
            {"symbol": BTC, "cancelled": [btc], "already_closed": [], "foreign_open": 1, "error": None}
        ]
        second = uow.control.get(request_id + 1)
        assert second is not None and [r["symbol"] for r in second.result["results"]] == [BTC, ETH]
        assert uow.control.pending() == []
    assert _open_cloids(ops) == {FOREIGN}
    locks.release("instance:embedded", token)


def test_pick_up_refuses_a_malformed_cancel_payload(ops: Ops, venue: Venue) -> None:
    from ttt.runtime import portfolio_wiring

    btc = venue.order("sched:20260101T120000Z", BTC)
    with UnitOfWork(ops.engine) as uow:
        request_id = uow.control.add("orders.cancel_ours", {"symbols": "BTC/USDC:USDC"}, time.time())
    assert portfolio_wiring.pick_up_requests(_Side(venue.service), ops.engine, venue.clock) == 1  # type: ignore[arg-type]
    with UnitOfWork(ops.engine, read_only=True) as uow:
        req = uow.control.get(request_id)
        assert req is not None and req.result["ok"] is False and "list of symbols" in req.result["error"]
    assert _open_cloids(ops) == {btc}


class _Side:
    """The part of `PortfolioSide` the control task reaches for cancel requests: the running gateway."""

    def __init__(self, gateway: GatewayService) -> None:
        self.gateway = gateway
        self.cycles_run = 0
