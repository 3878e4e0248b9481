"""The population, positions, fills, equity and order-detail panels of the dashboard (services.md §9):
SQL on all three databases with rows inserted into the real tables, and the HTTP behaviour (shapes, 400,
404, auth) in-process with FastAPI's TestClient over SQLite. Every expected number is counted by hand
from the seeded rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.runtime.rows import reconciliation_log_row
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import (
    AuditEntry,
    BalanceSnapshot,
    Epoch,
    Exchange,
    FillRecord,
    Instrument,
    OrderRecord,
    Product,
    ReconciliationCycle,
    ReconciliationLog,
    Run,
    table_of,
)
from ttt.config.models import Portfolio
from ttt.services.dashboard_panels import DashboardPanels
from ttt.services.dashboard_read import BadRequest, NotFound

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"
SOL = "SOL/USDC:USDC"
NOW = 1_700_000_000.0
T0 = datetime.fromtimestamp(NOW, UTC)
TOKEN = "panel-token-" + "Zq9w" * 8
CLOID_A = "0x" + "a" * 32
CLOID_B = "0x" + "b" * 32


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _panels(engine: Engine) -> DashboardPanels:
    return DashboardPanels(engine, Portfolio(live_pnl_threshold=0.2, run_freshness_s=600))


def _insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(table_of(model)), rows)


def _venue(engine: Engine) -> tuple[int, int]:
    """(exchange id, BTC product id)."""
    _insert(engine, Exchange, [{"name": "paper", "kind": "paper", "created_at": T0}])
    _insert(engine, Instrument, [{"name": "BTC", "created_at": T0}])
    with engine.connect() as conn:
        ex = conn.execute(sa.select(table_of(Exchange).c.id)).scalar_one()
        inst = conn.execute(sa.select(table_of(Instrument).c.id)).scalar_one()
    _insert(
        engine,
        Product,
        [
            {
                "instrument_id": inst,
                "exchange_id": ex,
                "symbol": BTC,
                "api_coin": "BTC",
                "asset_id": 0,
                "product_type": "PERP",
                "margin_mode": "cross",
                "max_leverage": Decimal("40"),
                "sz_decimals": 5,
                "lot_size": Decimal("0.00001"),
                "max_price_decimals": 1,
                "min_notional": Decimal("10"),
                "metadata": {},
                "refreshed_at": T0,
                "created_at": T0,
            }
        ],
    )
    with engine.connect() as conn:
        product = conn.execute(sa.select(table_of(Product).c.id)).scalar_one()
    return int(ex), int(product)


# --- population ----------------------------------------------------------------------------------------


def _run(
    symbol: str,
    direction: int,
    pnl: float | None,
    *,
    age_s: float = 10.0,
    ended: bool = False,
    exit_run: bool = False,
    height: int | None = None,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "shard": 0,
        "seed": 1,
        "start_time": _at(-3600),
        "end_time": _at(-5) if ended else None,
        "end_reason": "max_duration" if ended else None,
        "start_balance": 1000.0,
        "end_balance": None,
        "max_duration": 86400,
        "position_direction": direction,
        "live_pnl": pnl,
        "exit_run": exit_run,
        "height": height,
        "iteration_count": 1,
        "update_time": _at(-age_s),
        "host": "test",
        "ann_params": {},
        "run_state": "{}",
    }


def test_population_counts_qualifying_and_histogram(engine: Engine) -> None:
    _insert(
        engine,
        Run,
        [
            _run(BTC, +2, 10.0),  # qualifies
            _run(BTC, +1, 0.125),  # live_pnl below the 0.2 threshold
            _run(BTC, +3, 1.0, age_s=700),  # older than run_freshness_s
            _run(BTC, -1, 2.0),  # qualifies
            _run(BTC, -2, None),  # no live_pnl yet
            _run(BTC, 0, 3.0),  # flat
            _run(BTC, +1, 4.0, height=1),  # heighted: active but excluded from the vote
            _run(BTC, +5, 100.0, ended=True),  # not active
            _run(BTC, +5, 100.0, exit_run=True),  # flagged: not active
            _run(ETH, -1, -10.0),
            _run(SOL, +1, 50.0, ended=True),
        ],
    )
    panels = _panels(engine)
    out = panels.population({}, now=NOW)
    assert [s["symbol"] for s in out["symbols"]] == [BTC, ETH]
    btc, eth = out["symbols"]
    assert btc == {
        "symbol": BTC,
        "active": 7,
        "long": 4,
        "short": 2,
        "flat": 1,
        "open_pnl": 20.125,  # 10 + 0.125 + 1 + 2 + 3 + 4
        "qualifying": 2,
        "sum_direction": 1,  # +2 − 1
    }
    assert eth == {
        "symbol": ETH,
        "active": 1,
        "long": 0,
        "short": 1,
        "flat": 0,
        "open_pnl": -10.0,
        "qualifying": 0,
        "sum_direction": 0,
    }
    # live_pnl of active runs: −10, 0.125, 1, 2, 3, 4, 10 → 20 bins of width 1 over [−10, 10]
    hist = out["pnl_histogram"]
    assert hist["edges"] == [float(e) for e in range(-10, 11)]
    expected = [0] * 20
    for index in (0, 10, 11, 12, 13, 14, 19):
        expected[index] = 1
    assert hist["counts"] == expected

    eth_only = panels.population({"symbol": ETH}, now=NOW)
    assert [s["symbol"] for s in eth_only["symbols"]] == [ETH]
    assert eth_only["pnl_histogram"] == {"edges": [-10.0, -10.0], "counts": [1]}
    empty = panels.population({"symbol": "DOGE/USDC:USDC"}, now=NOW)
    assert empty["symbols"] == [
        {
            "symbol": "DOGE/USDC:USDC",
            "active": 0,
            "long": 0,
            "short": 0,
            "flat": 0,
            "open_pnl": None,
            "qualifying": 0,
            "sum_direction": 0,
        }
    ]
    assert empty["pnl_histogram"] == {"edges": [], "counts": []}
    # the freshness window moves with the clock: 600 s later the fresh runs are stale too
    later = panels.population({"symbol": BTC}, now=NOW + 600)["symbols"][0]
    assert (later["qualifying"], later["sum_direction"]) == (0, 0)


# --- fills ---------------------------------------------------------------------------------------------


def _fill(
    exchange_id: int, tid: str, symbol: str, at: float, cloid: str | None, oid: str = "9001"
) -> dict[str, Any]:
    return {
        "exchange_id": exchange_id,
        "trade_id": tid,
        "client_order_id": cloid,
        "exchange_order_id": oid,
        "symbol": symbol,
        "side": "buy",
        "price": Decimal("50000.5"),
        "size": Decimal("0.001"),
        "fee": Decimal("0.02"),
        "fee_token": "USDC",
        "liquidity": "taker",
        "closed_pnl": None,
        "exchange_time": _at(at),
        "ingested_at": _at(at + 1),
    }


def test_fills_pages_newest_first_with_since_and_symbol(engine: Engine) -> None:
    ex, _ = _venue(engine)
    _insert(
        engine,
        FillRecord,
        [
            # ingested out of exchange-time order, so id order alone would differ
            _fill(ex, "t2", BTC, 20, CLOID_A),
            _fill(ex, "t5", ETH, 40, None),
            _fill(ex, "t1", BTC, 10, CLOID_A),
            _fill(ex, "t3", BTC, 30, CLOID_A),  # same exchange time as t4: id breaks the tie
            _fill(ex, "t4", BTC, 30, CLOID_A),
        ],
    )
    panels = _panels(engine)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = panels.fills({"limit": "2", **({"cursor": cursor} if cursor else {})})
        seen += [f["trade_id"] for f in page["fills"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["t5", "t4", "t3", "t2", "t1"] and pages == 3

    first = panels.fills({"limit": "1"})["fills"][0]
    assert first["symbol"] == ETH and first["client_order_id"] is None
    assert first["price"] == "50000.5" and first["size"] == "0.001" and first["closed_pnl"] is None
    assert datetime.fromisoformat(first["exchange_time"]) == _at(40)

    btc = panels.fills({"symbol": BTC, "since": str(NOW + 20)})
    assert [f["trade_id"] for f in btc["fills"]] == ["t4", "t3", "t2"] and btc["next_cursor"] is None
    iso = panels.fills({"since": _at(30).isoformat().replace("+00:00", "Z")})
    assert [f["trade_id"] for f in iso["fills"]] == ["t5", "t4", "t3"]
    for bad in ({"since": "yesterday"}, {"since": "nan"}, {"cursor": "!!"}, {"limit": "0"}):
        with pytest.raises(BadRequest):
            panels.fills(bad)


# --- equity --------------------------------------------------------------------------------------------

BASE = 1_700_000_040.0  # a multiple of 60, so 60 s buckets start at BASE


def _snapshot(exchange_id: int, at: float, value: str, usable: bool = True) -> dict[str, Any]:
    return {
        "exchange_id": exchange_id,
        "wallet": "0x" + "1" * 40,
        "fetched_at": datetime.fromtimestamp(at, UTC),
        "account_value": Decimal(value),
        "cross_maintenance_margin_used": Decimal("1"),
        "total_margin_used": Decimal("2"),
        "withdrawable": None,
        "usable": usable,
        "partial": not usable,
        "missing_dexes": [],
        "unmapped": [],
        "off_grid": [],
        "created_at": datetime.fromtimestamp(at, UTC),
    }


def _epoch(kind: str, height: int | None, at: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "height": height,
        "triggered_at": datetime.fromtimestamp(at, UTC),
        "baseline_before": Decimal("100"),
        "value": Decimal("110"),
        "gain": Decimal("0.1"),
        "runs_flagged": 3,
        "forced_cycle_ids": [],
        "forced_due_at": [],
        "forced_state": [],
    }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def test_equity_points_step_range_and_epochs(engine: Engine) -> None:
    ex, _ = _venue(engine)
    _insert(
        engine,
        BalanceSnapshot,
        [
            _snapshot(ex, BASE + 0, "100"),
            _snapshot(ex, BASE + 10, "101"),
            _snapshot(ex, BASE + 20, "102.5"),
            _snapshot(ex, BASE + 30, "1", usable=False),  # partial: never plotted
            _snapshot(ex, BASE + 65, "103"),
            _snapshot(ex, BASE + 70, "104"),
            _snapshot(ex, BASE + 130, "105"),
        ],
    )
    _insert(engine, Epoch, [_epoch("take_profit", 1, BASE + 15), _epoch("baseline_reset", None, BASE + 200)])
    panels = _panels(engine)
    every = panels.equity({})
    assert every["points"] == [
        [_iso(BASE + 0), "100"],
        [_iso(BASE + 10), "101"],
        [_iso(BASE + 20), "102.5"],
        [_iso(BASE + 65), "103"],
        [_iso(BASE + 70), "104"],
        [_iso(BASE + 130), "105"],
    ]
    assert every["epochs"] == [
        {"ts": _iso(BASE + 15), "kind": "take_profit", "height": 1},
        {"ts": _iso(BASE + 200), "kind": "baseline_reset", "height": None},
    ]
    # 60 s buckets [0, 60), [60, 120), [120, 180): the last value of each
    assert panels.equity({"step": "60"})["points"] == [
        [_iso(BASE + 20), "102.5"],
        [_iso(BASE + 70), "104"],
        [_iso(BASE + 130), "105"],
    ]
    ranged = panels.equity({"from": _iso(BASE + 10), "to": str(BASE + 70)})
    assert [p[1] for p in ranged["points"]] == ["101", "102.5", "103", "104"]
    assert ranged["epochs"] == [{"ts": _iso(BASE + 15), "kind": "take_profit", "height": 1}]
    for bad in (
        {"from": "soon"},
        {"to": "2024-13-45"},
        {"step": "0"},
        {"step": "-5"},
        {"step": "inf"},
        {"step": "x"},
        {"from": str(BASE + 100), "to": str(BASE)},
    ):
        with pytest.raises(BadRequest):
            panels.equity(bad)


def test_equity_automatic_downsampling_stays_under_2000_points(engine: Engine) -> None:
    ex, _ = _venue(engine)
    start = 1_700_000_000.0  # even: 2 s buckets pair offsets (0, 1), (2, 3), …
    _insert(engine, BalanceSnapshot, [_snapshot(ex, start + i, str(i)) for i in range(2100)])
    points = _panels(engine).equity({})["points"]
    # span 2099 s > 2000 points: width ⌈2099 / 1998⌉ = 2 s, the odd offset closes each bucket
    assert len(points) == 1050
    assert points == [[_iso(start + i), str(i)] for i in range(1, 2100, 2)]


# --- positions -----------------------------------------------------------------------------------------


def _cycle(cycle_id: str, at: float, outcome: str = "completed") -> dict[str, Any]:
    return {
        "cycle_id": cycle_id,
        "trigger": "sched",
        "scheduled_at": _at(at),
        "started_at": _at(at),
        "finished_at": _at(at + 5),
        "outcome": outcome,
        "lock_token": None,
        "snapshot_id": None,
        "symbols": 2,
        "orders_sent": 1,
        "holds": 0,
        "error": None,
    }


def _log(cycle_id: str, symbol: str, **fields: Any) -> dict[str, Any]:
    return reconciliation_log_row(cycle_id, symbol, T0, **{"threshold": 12.5, **fields})


def _audit(kind: str, message: str, at: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts": _at(at),
        "kind": kind,
        "actor": "test@host",
        "cycle_id": None,
        "symbol": None,
        "client_order_id": None,
        "lock_token": None,
        "severity": "info",
        "message": message,
        "payload": {},
    }
    row.update(fields)
    return row


def test_positions_map_the_latest_cycle_rows(engine: Engine) -> None:
    panels = _panels(engine)
    assert panels.positions() == {"cycle_id": None, "symbols": []}
    _insert(engine, ReconciliationCycle, [_cycle("sched:1", 0), _cycle("sched:2", 600)])
    _insert(
        engine,
        ReconciliationLog,
        [
            _log("sched:1", BTC, desired=9.0, outcome="order_sent"),
            _log(
                "sched:2",
                BTC,
                desired=0.5,
                desired_clamped=0.4,
                actual=0.1,
                margin_used=250.0,
                cap=1000.0,
                decision_row=3,
                side="buy",
                size=0.3,
                outcome="order_sent",
                client_order_id=CLOID_A,
            ),
            _log(
                "sched:2",
                ETH,
                desired_status="unknown",
                desired_reason="price_unavailable",
                quorum_status="no_quorum",
                outcome="hold",
                hold_reason="price_unavailable",
            ),
        ],
    )
    # a newer cycle that failed before writing per-symbol rows is not "the latest with rows"
    _insert(engine, ReconciliationCycle, [_cycle("sched:3", 1200, outcome="failed")])
    breakdown = {"n": 2, "sum_dir": 1, "sum_pnl": 12.0, "price": 50000.0, "desired": 0.5, "transforms": []}
    payload = {
        "desired": {"kind": "value", "value": 0.5, "reason": None, "breakdown": breakdown},
        "quorum": {
            "k": 2,
            "sources": [
                {
                    "source": "local",
                    "size": 0.1,
                    "margin_used": 250.0,
                    "as_of": NOW + 590,
                    "age_s": 10.0,
                    "canonical": 0.1,
                },
                {
                    "source": "observer:a",
                    "size": 0.2,
                    "margin_used": 251.0,
                    "as_of": NOW + 580,
                    "age_s": 20.0,
                    "canonical": 0.2,
                },
                {"source": "observer:b", "unavailable": "stale", "detail": "older than 120 s"},
            ],
            "members": ["local"],
            "dissent": ["observer:a"],
        },
    }
    _insert(
        engine,
        AuditEntry,
        [
            _audit(
                "reconcile.decision", "BTC: order_sent", 600, cycle_id="sched:2", symbol=BTC, payload=payload
            ),
            _audit(
                "reconcile.decision",
                "BTC: old",
                0,
                cycle_id="sched:1",
                symbol=BTC,
                payload={"desired": {"breakdown": {"n": 99}}},
            ),
        ],
    )
    out = panels.positions()
    assert out["cycle_id"] == "sched:2"
    assert [s["symbol"] for s in out["symbols"]] == [BTC, ETH]
    btc, eth = out["symbols"]
    assert btc == {
        "symbol": BTC,
        "desired": {"status": "value", "value": 0.5, "reason": None, "breakdown": breakdown},
        "actual": {
            "status": "ok",
            "value": 0.1,
            "reason": None,
            "sources": [
                {
                    "name": "local",
                    "status": "ok",
                    "size": 0.1,
                    "margin_used": 250.0,
                    "as_of": _iso(NOW + 590),
                    "age_s": 10.0,
                    "reason": None,
                },
                {
                    "name": "observer:a",
                    "status": "dissent",
                    "size": 0.2,
                    "margin_used": 251.0,
                    "as_of": _iso(NOW + 580),
                    "age_s": 20.0,
                    "reason": None,
                },
                {
                    "name": "observer:b",
                    "status": "unavailable",
                    "size": None,
                    "margin_used": None,
                    "as_of": None,
                    "age_s": None,
                    "reason": "stale",
                },
            ],
        },
        "cap": 1000.0,
        "margin_used": 250.0,
        "decision": {"row": 3, "side": "buy", "size": 0.3, "outcome": "order_sent"},
    }
    # nothing stored beyond the log row: null, never zero
    assert eth == {
        "symbol": ETH,
        "desired": {"status": "unknown", "value": None, "reason": "price_unavailable", "breakdown": None},
        "actual": {"status": "unknown", "value": None, "reason": "no_quorum", "sources": None},
        "cap": None,
        "margin_used": None,
        "decision": {"row": None, "side": None, "size": None, "outcome": "hold"},
    }


# --- order detail --------------------------------------------------------------------------------------


def _order(product_id: int, cloid: str, oid: str | None, at: float) -> dict[str, Any]:
    return {
        "client_order_id": cloid,
        "cycle_id": "sched:2",
        "product_id": product_id,
        "symbol": BTC,
        "side": "buy",
        "size": Decimal("0.003"),
        "requested_size": Decimal("0.003"),
        "style": "ioc",
        "time_in_force": "Ioc",
        "limit_price": Decimal("50100"),
        "reference_price": Decimal("50000"),
        "decision_price": Decimal("50000"),
        "reduce_only": False,
        "status": "FILLED",
        "exchange_order_id": oid,
        "filled_size": Decimal("0.003"),
        "avg_fill_price": Decimal("50000.5"),
        "fees_usd": Decimal("0.06"),
        "error_code": None,
        "error_message": None,
        "fingerprint": "f" * 64,
        "attempts": 0,
        "created_at": _at(at),
        "updated_at": _at(at + 2),
        "submitted_at": _at(at + 1),
        "closed_at": _at(at + 2),
    }


def test_order_detail_with_audit_trail_and_fills(engine: Engine) -> None:
    ex, product = _venue(engine)
    _insert(engine, OrderRecord, [_order(product, CLOID_A, "9001", 0), _order(product, CLOID_B, "9002", 5)])
    _insert(
        engine,
        AuditEntry,
        [
            _audit("order.submitted", "submitted", 1, client_order_id=CLOID_A),
            _audit("order.submitted", "other order", 6, client_order_id=CLOID_B),
            _audit("order.filled", "filled", 2, client_order_id=CLOID_A),
        ],
    )
    _insert(
        engine,
        FillRecord,
        [
            _fill(ex, "t2", BTC, 3, CLOID_A),
            _fill(ex, "t1", BTC, 2, None, oid="9001"),  # no cloid reported, our oid
            _fill(ex, "t3", BTC, 7, CLOID_B, oid="9002"),
            _fill(ex, "t4", ETH, 1, None, oid="9001"),  # same oid on another symbol: not ours
        ],
    )
    panels = _panels(engine)
    out = panels.order(CLOID_A)
    assert out["client_order_id"] == CLOID_A and out["status"] == "FILLED"
    assert out["filled_size"] == "0.003" and out["avg_fill_price"] == "50000.5"
    assert [a["message"] for a in out["audit"]] == ["submitted", "filled"]
    assert [f["trade_id"] for f in out["fills"]] == ["t1", "t2"]
    with pytest.raises(NotFound, match="0xnope"):
        panels.order("0xnope")


# --- HTTP ----------------------------------------------------------------------------------------------


def test_http_shapes_errors_and_auth(sqlite_engine: Engine) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from ttt.api.dashboard import create_dashboard_app
    from ttt.services.dashboard_read import DashboardQueries

    ex, product = _venue(sqlite_engine)
    _insert(sqlite_engine, OrderRecord, [_order(product, CLOID_A, "9001", 0)])
    _insert(sqlite_engine, FillRecord, [_fill(ex, "t1", BTC, 3, CLOID_A)])
    _insert(sqlite_engine, Run, [_run(BTC, +1, 1.0)])
    app = create_dashboard_app(
        CollectorRegistry(),
        lambda: {},
        lambda: {},
        token=TOKEN,
        queries=DashboardQueries(sqlite_engine),
        panels=_panels(sqlite_engine),
    )
    client = TestClient(app)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    paths = (
        "/api/v1/population",
        "/api/v1/positions",
        "/api/v1/fills",
        "/api/v1/equity",
        f"/api/v1/orders/{CLOID_A}",
    )
    for path in paths:
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json()["message"], path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401

    population = client.get("/api/v1/population", headers=auth)
    assert population.status_code == 200
    body = population.json()
    assert set(body) == {"symbols", "pnl_histogram"} and set(body["pnl_histogram"]) == {"edges", "counts"}
    assert set(body["symbols"][0]) == {
        "symbol",
        "active",
        "long",
        "short",
        "flat",
        "open_pnl",
        "qualifying",
        "sum_direction",
    }
    assert body["symbols"][0]["active"] == 1 and body["pnl_histogram"] == {"edges": [1.0, 1.0], "counts": [1]}
    assert client.get("/api/v1/positions", headers=auth).json() == {"cycle_id": None, "symbols": []}
    fills = client.get("/api/v1/fills", headers=auth).json()
    assert set(fills) == {"fills", "next_cursor"} and [f["trade_id"] for f in fills["fills"]] == ["t1"]
    assert client.get("/api/v1/equity", headers=auth).json() == {"points": [], "epochs": []}
    order = client.get(f"/api/v1/orders/{CLOID_A}", headers=auth).json()
    assert order["client_order_id"] == CLOID_A and order["audit"] == []
    assert [f["trade_id"] for f in order["fills"]] == ["t1"]
    # the list route still answers beside the detail route
    assert [o["client_order_id"] for o in client.get("/api/v1/orders", headers=auth).json()["orders"]] == [
        CLOID_A
    ]
    # "+" of an ISO offset arrives as a space when the client does not escape it
    spaced = client.get("/api/v1/fills?since=" + _iso(NOW).replace("+", "%20"), headers=auth)
    assert spaced.status_code == 200 and [f["trade_id"] for f in spaced.json()["fills"]] == ["t1"]

    for bad in (
        "/api/v1/fills?since=last-tuesday",
        "/api/v1/fills?limit=501",
        "/api/v1/fills?cursor=%21%21",
        "/api/v1/equity?from=x",
        "/api/v1/equity?to=2024-02-30",
        "/api/v1/equity?step=0",
        "/api/v1/equity?from=200&to=100",
    ):
        answer = client.get(bad, headers=auth)
        assert answer.status_code == 400, bad
        assert answer.headers["content-type"].startswith("application/json")
        message = answer.json()["message"]
        assert message and "Traceback" not in message
    missing = client.get("/api/v1/orders/0xunknown", headers=auth)
    assert missing.status_code == 404 and "0xunknown" in missing.json()["message"]
    assert TOKEN not in json.dumps([population.json(), fills, order])


def test_cycle_pages_follow_ties_without_gaps_or_repeats(engine: Engine) -> None:
    """Cycles sharing a scheduled_at are ordered by id; the cursor carries the time as ISO text."""
    from sqlalchemy.orm import Session

    from ttt.adapters.db.models import ReconciliationCycle
    from ttt.services.dashboard_read import DashboardQueries

    at = [datetime(2026, 11, 24, 12, 0, 0, us, tzinfo=UTC) for us in (1, 1, 2, 999_999, 999_999)]
    with Session(engine) as session, session.begin():
        for k, when in enumerate(at):
            session.add(
                ReconciliationCycle(
                    cycle_id=f"c{k}",
                    trigger="sched",
                    scheduled_at=when,
                    outcome="completed",
                    symbols=0,
                    orders_sent=0,
                    holds=0,
                )
            )
    queries = DashboardQueries(engine)
    seen: list[str] = []
    cursor = None
    while True:
        page = queries.cycles({"limit": "2", **({"cursor": cursor} if cursor else {})})
        seen += [c["cycle_id"] for c in page["cycles"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["c4", "c3", "c2", "c1", "c0"]
