"""The live status of `3t run`: the database panels of `status_snapshot` and their Rich rendering.

Rows are written through the repositories into a migrated SQLite file; the expected values are the ones
written here, so a panel that mis-reads a column, picks an older decision or turns "unknown" into 0 fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import Engine

from tests.runtime.rows import reconciliation_log_row
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import BalanceSnapshot, OrderRecord, ReconciliationCycle, Run, table_of
from ttt.adapters.db.uow import UnitOfWork
from ttt.cli.run_cmd import _status_view
from ttt.ports import NewRun
from ttt.runtime.embedded import RuntimeStatus, status_snapshot
from ttt.runtime.market import MarketChoice
from ttt.services.portfolio.read_model import ThrottledStatus, portfolio_status

NOW = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
BTC, ETH, SOL, DOGE = "BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC", "DOGE/USDC:USDC"
UNIVERSE = [BTC, ETH, SOL, DOGE]
OLD_CYCLE, NEW_CYCLE = "sched:20260304T114000Z", "sched:20260304T115000Z"
TP_STATUS = {
    "enabled": True,
    "baseline": 10_000.0,
    "baseline_set_at": (NOW - timedelta(days=1)).timestamp(),
    "window": [10_100.0, 10_150.0],
    "gain": 0.0125,
    "threshold": 0.05,
    "drawdown_threshold": -0.025,
    "cooldown_until": None,
    "in_cooldown": False,
}


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _venue(engine: Engine) -> tuple[int, int]:
    with UnitOfWork(engine) as uow:
        ex = uow.venues.ensure_exchange("paper", "paper", NOW)
        inst = uow.venues.ensure_instrument("BTC", NOW)
        product = uow.venues.upsert_product(
            exchange_id=ex.id,
            instrument_id=inst.id,
            symbol=BTC,
            now=NOW,
            metadata={},
            api_coin="BTC",
            asset_id=0,
            product_type="PERP",
            margin_mode="cross",
            max_leverage=Decimal("40"),
            sz_decimals=5,
            lot_size=Decimal("0.00001"),
            max_price_decimals=1,
            min_notional=Decimal("10"),
        )
        return ex.id, product.id


def _log_row(cycle_id: str, symbol: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return reconciliation_log_row(cycle_id, symbol, at, **{"price": 100_000.0, "threshold": 10.0, **fields})


def _cycle(cycle_id: str, at: datetime) -> ReconciliationCycle:
    return ReconciliationCycle(
        cycle_id=cycle_id,
        trigger="sched",
        scheduled_at=at,
        started_at=at,
        finished_at=at + timedelta(seconds=2),
        outcome="completed",
        symbols=4,
        orders_sent=1,
        holds=1,
    )


def _fill_cycles(engine: Engine) -> None:
    old, new = NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
    with UnitOfWork(engine) as uow:
        uow.reconciliation.add_cycle(_cycle(OLD_CYCLE, old))
        uow.reconciliation.add_cycle(_cycle(NEW_CYCLE, new))
        uow.reconciliation.add_log_rows(
            [
                # the older cycle knew ETH's actual; the newer one did not: the newer must win
                _log_row(OLD_CYCLE, ETH, old, desired=1.5, desired_clamped=1.5, actual=1.5),
                _log_row(OLD_CYCLE, BTC, old, desired=0.9, desired_clamped=0.9, actual=0.9),
                _log_row(
                    NEW_CYCLE,
                    BTC,
                    new,
                    desired=0.25,
                    desired_clamped=0.2,
                    actual=-0.1,
                    decision_row=4,
                    side="buy",
                    size=0.3,
                    size_rounded=Decimal("0.30000"),
                    outcome="order_sent",
                    client_order_id="0x" + "a" * 32,
                ),
                _log_row(
                    NEW_CYCLE,
                    ETH,
                    new,
                    desired=1.0,
                    desired_clamped=1.0,
                    actual=None,
                    quorum_status="quorum_insufficient",
                    outcome="hold",
                    hold_reason="quorum_insufficient",
                ),
                _log_row(
                    NEW_CYCLE,
                    SOL,
                    new,
                    desired_status="flat",
                    desired_reason="no_qualifying_runs",
                    desired=0.0,
                    desired_clamped=0.0,
                    actual=0.0,
                ),
            ]
        )


def _order(product_id: int, n: int, status: str) -> OrderRecord:
    at = NOW - timedelta(minutes=30 - n)
    return OrderRecord(
        client_order_id=f"0x{n:032x}",
        cycle_id=NEW_CYCLE,
        product_id=product_id,
        symbol=BTC,
        side="buy" if n % 2 else "sell",
        size=Decimal(f"0.{n}"),
        requested_size=Decimal(f"0.{n}"),
        style="post_only",
        time_in_force="Alo",
        limit_price=Decimal("100000"),
        reference_price=None,
        decision_price=Decimal("100000"),
        reduce_only=False,
        status=status,
        exchange_order_id=None,
        filled_size=Decimal(f"0.{n}") if status == "FILLED" else Decimal(0),
        avg_fill_price=None,
        fees_usd=Decimal(0),
        fingerprint="e" * 64,
        attempts=1,
        created_at=at,
        updated_at=at,
    )


ORDER_STATUSES = ["FILLED", "CANCELED", "FILLED", "RESTING", "FILLED", "REJECTED"]


def _fill_orders_fills_balances(engine: Engine) -> None:
    exchange_id, product_id = _venue(engine)
    with UnitOfWork(engine) as uow:
        for n, status in enumerate(ORDER_STATUSES, start=1):
            uow.orders.add(_order(product_id, n, status))
        uow.fills.insert_new(
            [
                {
                    "exchange_id": exchange_id,
                    "trade_id": tid,
                    "client_order_id": None,
                    "exchange_order_id": "1",
                    "symbol": BTC,
                    "side": "buy",
                    "price": Decimal("100000"),
                    "size": Decimal("0.1"),
                    "fee": fee,
                    "fee_token": "USDC",
                    "liquidity": "maker",
                    "closed_pnl": None,
                    "exchange_time": at,
                    "ingested_at": at,
                }
                for tid, fee, at in (
                    ("t1", Decimal("0.5"), NOW - timedelta(hours=1)),
                    ("t2", Decimal("0.25"), NOW - timedelta(hours=23)),
                    ("t3", Decimal("7"), NOW - timedelta(hours=25)),  # outside the 24 h window
                )
            ]
        )

        def snap(value: str, usable: bool, at: datetime) -> BalanceSnapshot:
            return BalanceSnapshot(
                exchange_id=exchange_id,
                wallet="0x" + "ab" * 20,
                fetched_at=at,
                account_value=Decimal(value),
                cross_maintenance_margin_used=Decimal("12.5"),
                total_margin_used=Decimal("250"),
                withdrawable=None,
                usable=usable,
                partial=not usable,
                missing_dexes=[],
                unmapped=[],
                off_grid=[],
                created_at=at,
            )

        uow.balances.add_snapshot(snap("10123.456", True, NOW - timedelta(minutes=2)))
        uow.balances.add_snapshot(snap("0", False, NOW - timedelta(minutes=1)))  # unusable: not the value


def _fill_runs(engine: Engine) -> None:
    def new(symbol: str) -> NewRun:
        return NewRun(
            symbol=symbol,
            shard=0,
            seed=1,
            start_time=NOW.timestamp(),
            start_balance=1000.0,
            max_duration=3600,
            host="test",
            ann_params={},
            run_state={},
        )

    with UnitOfWork(engine) as uow:
        btc = uow.runs.insert_many([new(BTC) for _ in range(5)])
        eth = uow.runs.insert_many([new(ETH) for _ in range(3)])
        assert uow.runs.flag_exit(btc[0], NOW)
        runs = table_of(Run)
        uow.session.execute(sa.update(runs).where(runs.c.id == eth[0]).values(end_time=NOW))
        assert uow.runs.flag_exit(eth[1], NOW)
        uow.session.execute(sa.update(runs).where(runs.c.id == eth[1]).values(height=1))


def _fill(engine: Engine) -> Engine:
    _fill_cycles(engine)
    _fill_orders_fills_balances(engine)
    _fill_runs(engine)
    return engine


@pytest.fixture
def filled(engine: Engine) -> Engine:
    return _fill(engine)


@pytest.fixture
def filled_any(db_url: str) -> Iterator[Engine]:
    """The same rows on SQLite, MariaDB and PostgreSQL: the queries must read alike on all three."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield _fill(eng)
    eng.dispose()


def _status(engine: Engine, take_profit: Any = lambda: TP_STATUS) -> dict[str, Any]:
    return portfolio_status(engine, UNIVERSE, NOW.timestamp(), take_profit=take_profit)


def test_positions_show_each_symbols_newest_decision(filled_any: Engine) -> None:
    status = _status(filled_any)
    positions = status["positions"]
    assert positions["available"] is True and positions["cycle_id"] == NEW_CYCLE
    by = {r["symbol"]: r for r in positions["symbols"]}
    assert list(by) == UNIVERSE

    btc = by[BTC]
    assert btc["desired"] == {"status": "value", "value": 0.25, "clamped": 0.2, "reason": None}
    assert btc["actual"] == {"status": "ok", "value": -0.1, "reason": None}
    assert btc["status"] == "ok" and btc["cycle_id"] == NEW_CYCLE
    decision = btc["decision"]
    assert (decision["outcome"], decision["side"], decision["size"], decision["row"]) == (
        "order_sent",
        "buy",
        "0.3",
        4,
    )
    assert decision["client_order_id"] == "0x" + "a" * 32
    assert decision["at"] == (NOW - timedelta(minutes=10)).isoformat()

    eth = by[ETH]  # the newer cycle could not establish A: unknown, not the older 1.5 and not 0
    assert eth["actual"] == {"status": "unknown", "value": None, "reason": "quorum_insufficient"}
    assert eth["status"] == "hold: quorum_insufficient"
    assert eth["decision"]["outcome"] == "hold"

    sol = by[SOL]  # a known flat is a real 0
    assert sol["desired"] == {"status": "flat", "value": 0.0, "clamped": 0.0, "reason": "no_qualifying_runs"}
    assert sol["actual"] == {"status": "ok", "value": 0.0, "reason": None}

    doge = by[DOGE]  # never decided: unknown
    assert doge["desired"]["value"] is None and doge["actual"]["value"] is None
    assert doge["status"] == "unknown" and doge["decision"] is None

    last = status["last_cycle"]
    assert last["available"] and (last["cycle_id"], last["outcome"], last["orders_sent"], last["holds"]) == (
        NEW_CYCLE,
        "completed",
        1,
        1,
    )


def test_last_cycle_is_the_newest_finished_cycle_even_without_decisions(filled: Engine) -> None:
    """A cycle that failed before any decision writes no log row; its `cycle.end` audit row still makes
    it the last cycle, while the positions keep the newest decisions."""
    failed_at = NOW - timedelta(minutes=5)
    with UnitOfWork(filled) as uow:
        failed = _cycle("sched:20260304T115500Z", failed_at)
        failed.outcome, failed.orders_sent, failed.holds, failed.error = "failed", 0, 0, "RuntimeError: boom"
        uow.reconciliation.add_cycle(failed)
        for cycle_id, at in ((NEW_CYCLE, NOW - timedelta(minutes=10)), (failed.cycle_id, failed_at)):
            uow.audit.append(ts=at, kind="cycle.end", actor="test", message="end", cycle_id=cycle_id)
    status = _status(filled)
    last = status["last_cycle"]
    assert (last["cycle_id"], last["outcome"], last["error"]) == (
        "sched:20260304T115500Z",
        "failed",
        "RuntimeError: boom",
    )
    assert status["positions"]["cycle_id"] == NEW_CYCLE


def test_orders_account_fills_runs_and_take_profit(filled_any: Engine) -> None:
    status = _status(filled_any)
    orders = status["orders"]
    assert orders["available"] is True
    assert orders["counts"] == {"RESTING": 1, "FILLED": 3, "CANCELED": 1, "REJECTED": 1}
    assert list(orders["counts"]) == ["RESTING", "FILLED", "CANCELED", "REJECTED"]  # lifecycle order
    assert orders["total"] == len(ORDER_STATUSES)
    assert [o["client_order_id"] for o in orders["recent"]] == [f"0x{n:032x}" for n in (6, 5, 4, 3, 2)]
    assert (orders["recent"][0]["status"], orders["recent"][0]["size"], orders["recent"][0]["side"]) == (
        "REJECTED",
        "0.6",
        "sell",
    )

    account = status["account"]
    assert account["available"] is True
    assert (account["value"], account["margin_cross"], account["margin_total"]) == (
        "10123.456",
        "12.5",
        "250",
    )
    assert account["snapshot_at"] == (NOW - timedelta(minutes=2)).isoformat()
    assert account["newest_unusable_at"] == (NOW - timedelta(minutes=1)).isoformat()

    fills = status["fills"]
    assert (fills["count"], fills["fees"], fills["truncated"]) == (2, {"USDC": "0.75"}, False)

    runs = status["runs"]
    assert runs["by_state"] == {"active": 5, "flagged": 2, "ended": 1, "heightened": 1}
    assert runs["active_by_symbol"] == {BTC: 4, ETH: 1}

    tp = status["take_profit"]
    assert tp["available"] is True and (tp["baseline"], tp["gain"], tp["threshold"]) == (
        10_000.0,
        0.0125,
        0.05,
    )
    assert tp["baseline_set_at"] == (NOW - timedelta(days=1)).isoformat() and "window" not in tp
    json.dumps(status)  # the whole status is plain JSON (the final `--json` summary and /api/v1/overview)


def test_empty_database_is_unknown_not_zero(engine: Engine) -> None:
    status = _status(engine, take_profit=None)
    assert "take_profit" not in status
    assert all(
        r["status"] == "unknown" and r["actual"]["value"] is None for r in status["positions"]["symbols"]
    )
    assert status["last_cycle"] == {"available": True, "cycle_id": None}
    assert status["account"]["value"] is None  # no snapshot yet: unknown, never 0
    assert status["orders"]["counts"] == {} and status["fills"]["count"] == 0


def test_dropped_table_makes_only_its_panel_unavailable(filled: Engine) -> None:
    with filled.begin() as conn:
        conn.execute(sa.text("DROP TABLE order_execution_log"))

    def broken_take_profit() -> dict[str, Any]:
        raise RuntimeError("take-profit state unreadable")

    status = _status(filled, take_profit=broken_take_profit)
    assert status["orders"]["available"] is False
    assert "order_execution_log" in status["orders"]["error"]
    assert status["take_profit"] == {
        "available": False,
        "error": "RuntimeError: take-profit state unreadable",
    }
    assert status["positions"]["available"] is True and status["account"]["value"] == "10123.456"


def test_unreachable_database_makes_every_panel_unavailable(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'ttt.sqlite'}")
    status = _status(engine)
    for name in ("runs", "positions", "last_cycle", "orders", "account", "fills"):
        assert status[name]["available"] is False, name
        assert "OperationalError" in status[name]["error"], name
    assert status["take_profit"]["available"] is True  # its own source still answered
    engine.dispose()


def test_throttled_status_rereads_only_when_due_or_fresh() -> None:
    calls: list[int] = []

    def read() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return {"n": len(calls)}

    throttled = ThrottledStatus(read, min_interval_s=3600)
    assert throttled.get() == {"n": 1}
    assert throttled.get() == {"n": 1} and len(calls) == 1  # cached within the interval
    assert throttled.get(fresh=True) == {"n": 2}
    assert throttled.get(fresh=True) == {"status_error": "RuntimeError: boom"}  # never raises


def _snapshot(engine: Engine) -> dict[str, Any]:
    rt = SimpleNamespace(
        status=RuntimeStatus(
            started_at=NOW.timestamp(),
            market=MarketChoice("synthetic", "forced"),
            sim_time=NOW.timestamp(),
            ticks=42,
            shard_steps=7,
            runs_created=8,
            ends={"max_duration": 2},
            tasks={"ttt.portfolio.reconcile": "ok"},
        ),
        status_panels=ThrottledStatus(lambda: _status(engine)),
    )
    return status_snapshot(rt, fresh=True)  # type: ignore[arg-type]


def test_status_snapshot_merges_counters_and_panels(filled: Engine) -> None:
    snap = _snapshot(filled)
    assert (snap["ticks"], snap["shard_steps"], snap["runs_created"]) == (42, 7, 8)
    assert snap["positions"]["cycle_id"] == NEW_CYCLE and snap["orders"]["total"] == 6
    assert snap["runs"]["by_state"]["active"] == 5
    json.dumps(snap)


def _render(snapshot: dict[str, Any]) -> str:
    console = Console(record=True, width=100, color_system=None)
    console.print(_status_view(snapshot))
    return console.export_text()


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def test_status_view_renders_symbols_orders_and_equity(filled: Engine) -> None:
    text = _render(_snapshot(filled))
    assert max(len(line) for line in text.splitlines()) <= 100
    btc = _line(text, BTC)
    assert "0.2" in btc and "-0.1" in btc and "ok" in btc and "order_sent buy 0.3" in btc
    eth = _line(text, ETH)
    assert "unknown" in eth and "hold: quorum_insufficient" in eth and " 0 " not in eth
    sol = _line(text, SOL)
    assert "0 flat" in sol
    doge = _line(text, DOGE)
    assert doge.count("unknown") >= 2 and " 0 " not in doge
    assert f"last cycle {NEW_CYCLE} completed" in text
    assert "Orders: RESTING 1 · FILLED 3 · CANCELED 1 · REJECTED 1" in text
    assert "REJECTED" in next(line for line in text.splitlines() if "0x" + "0" * 31 + "6" in line)
    assert "10,123.46" in text and "fills 24h" in text and "fees 0.7500 USDC" in text
    assert "gain +1.25%" in text and "take at +5.00%" in text
    assert "active 5 · flagged 2 · ended 1 · heightened 1" in text
    assert "newer snapshot unusable" in text
    assert "tasks ok" in text and "portfolio.reconcile" in text and "error" not in text


def test_status_view_shows_unavailable_panels(filled: Engine) -> None:
    with filled.begin() as conn:
        conn.execute(sa.text("DROP TABLE order_execution_log"))
    snap = _snapshot(filled)
    snap["tasks"]["ttt.gateway.resolver"] = "error"
    text = _render(snap)
    assert _line(text, "gateway.resolver").split() == ["gateway.resolver", "error"]
    assert "unavailable" in next(line for line in text.splitlines() if "order_execution_log" in line)
    assert BTC in text  # the other panels still render
