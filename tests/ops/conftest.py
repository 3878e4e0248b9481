"""Fixtures for the housekeeping services: a migrated database on each backend and row builders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ttt.adapters.db import models as m
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0


class FixedClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=3)
    upgrade(eng)
    yield eng
    eng.dispose()


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def insert(engine: Engine, model: type[m.Base], rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(m.table_of(model)), rows)


def venue(engine: Engine) -> tuple[int, int]:
    """One exchange and one product; returns (exchange_id, product_id)."""
    insert(engine, m.Exchange, [{"id": 1, "name": "paper", "kind": "paper", "created_at": at(NOW)}])
    insert(engine, m.Instrument, [{"id": 1, "name": "BTC", "created_at": at(NOW)}])
    insert(
        engine,
        m.Product,
        [
            {
                "id": 1,
                "instrument_id": 1,
                "exchange_id": 1,
                "symbol": "BTC/USDC:USDC",
                "api_coin": "BTC",
                "product_type": "PERP",
                "margin_mode": "cross",
                "max_leverage": Decimal(40),
                "sz_decimals": 5,
                "lot_size": Decimal("0.00001"),
                "max_price_decimals": 1,
                "min_notional": Decimal(10),
                "metadata": {},
                "refreshed_at": at(NOW),
                "created_at": at(NOW),
            }
        ],
    )
    return 1, 1


def snapshot(sid: int, fetched: float, *, usable: bool = True, value: str = "1000") -> dict[str, Any]:
    return {
        "id": sid,
        "exchange_id": 1,
        "wallet": "0x" + "0" * 40,
        "fetched_at": at(fetched),
        "account_value": Decimal(value),
        "cross_maintenance_margin_used": Decimal("12.5"),
        "total_margin_used": Decimal("50.25"),
        "withdrawable": None,
        "usable": usable,
        "partial": not usable,
        "missing_dexes": [],
        "unmapped": [],
        "off_grid": [],
        "created_at": at(fetched),
    }


def position(pid: int, sid: int) -> dict[str, Any]:
    return {"id": pid, "snapshot_id": sid, "product_id": 1, "position_size": Decimal("0.1"), "leverage": None}


def cycle(
    cid: str, scheduled: float, outcome: str = "completed", snapshot_id: int | None = None
) -> dict[str, Any]:
    return {
        "cycle_id": cid,
        "trigger": cid.split(":")[0],
        "scheduled_at": at(scheduled),
        "started_at": at(scheduled),
        "finished_at": at(scheduled) if outcome not in ("requested", "running") else None,
        "outcome": outcome,
        "snapshot_id": snapshot_id,
        "symbols": 1,
        "orders_sent": 0,
        "holds": 0,
    }


def log_row(lid: int, cid: str, created: float) -> dict[str, Any]:
    return {
        "id": lid,
        "cycle_id": cid,
        "symbol": "BTC/USDC:USDC",
        "desired_status": "value",
        "quorum_status": "ok",
        "gate": "n/a",
        "outcome": "no_action",
        "created_at": at(created),
    }


def order(oid: int, created: float, status: str) -> dict[str, Any]:
    return {
        "id": oid,
        "client_order_id": f"0x{oid:032x}",
        "cycle_id": "sched:x",
        "product_id": 1,
        "symbol": "BTC/USDC:USDC",
        "side": "buy",
        "size": Decimal("0.1"),
        "requested_size": Decimal("0.1"),
        "style": "post_only",
        "time_in_force": "Alo",
        "reduce_only": False,
        "status": status,
        "filled_size": Decimal(0),
        "fees_usd": Decimal(0),
        "fingerprint": "f" * 64,
        "attempts": 0,
        "created_at": at(created),
        "updated_at": at(created),
    }


def fill(fid: int, when: float) -> dict[str, Any]:
    return {
        "id": fid,
        "exchange_id": 1,
        "trade_id": str(fid),
        "exchange_order_id": str(fid),
        "symbol": "BTC/USDC:USDC",
        "side": "buy",
        "price": Decimal(100),
        "size": Decimal(1),
        "fee": Decimal("0.01"),
        "fee_token": "USDC",
        "liquidity": "maker",
        "exchange_time": at(when),
        "ingested_at": at(when),
    }


def audit(aid: int, when: float) -> dict[str, Any]:
    return {
        "id": aid,
        "ts": at(when),
        "kind": "test",
        "actor": "test",
        "severity": "info",
        "message": "m",
        "payload": {},
    }


def run(rid: int, symbol: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": rid,
        "symbol": symbol,
        "shard": 0,
        "seed": rid,
        "start_time": at(NOW - 3600),
        "end_time": None,
        "start_balance": 7000.0,
        "max_duration": 3600,
        "position_direction": 0,
        "live_pnl": None,
        "exit_run": False,
        "height": None,
        "iteration_count": 0,
        "update_time": at(NOW - 60),
        "host": "test",
        "ann_params": {},
        "run_state": "{}",
    }
    row.update(kw)
    return row
