"""Round trip of every table through its repository on SQLite, MariaDB and PostgreSQL.

Each value is written in one unit of work and read back in a fresh one, so what is compared came from
the database. Decimals sit at both ends of DECIMAL(38,18); timestamps carry microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ttt.adapters.db.models import (
    BalanceSnapshot,
    Epoch,
    OrderRecord,
    PaperLedgerEntry,
    PaperOrder,
    PaperPosition,
    PaperTrade,
    Position,
    ReconciliationCycle,
    TakeProfitState,
)
from ttt.adapters.db.repositories import StoredBar
from ttt.adapters.db.repositories.bars import stored_from_domain
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.orders import Bar

TINY = Decimal("0.000000000000000001")
HUGE = Decimal("12345678901234567890.123456789012345678")
NEG = Decimal("-98765432109876543210.000000000000000009")
TS = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
NESTED = {"dexes": ["", "xyz"], "detail": {"xyz": {"error": None, "retries": [1, 2.5]}, "ok": True}}


def _venue(engine: Engine) -> tuple[int, int, int]:
    with UnitOfWork(engine) as uow:
        ex = uow.venues.ensure_exchange("hyperliquid-testnet", "hyperliquid", TS, api_url="https://x")
        inst = uow.venues.ensure_instrument("BTC", TS, "Bitcoin")
        product = uow.venues.upsert_product(
            exchange_id=ex.id,
            instrument_id=inst.id,
            symbol="BTC/USDC:USDC",
            now=TS,
            metadata=NESTED,
            api_coin="BTC",
            asset_id=110003,
            product_type="PERP",
            margin_mode="cross",
            max_leverage=Decimal("40"),
            sz_decimals=5,
            lot_size=Decimal("0.00001"),
            max_price_decimals=1,
            min_notional=Decimal("10"),
        )
        return ex.id, inst.id, product.id


def test_venues_round_trip_and_unique_keys(engine: Engine) -> None:
    ex_id, inst_id, product_id = _venue(engine)
    with UnitOfWork(engine) as uow:
        ex = uow.venues.exchange_by_name("hyperliquid-testnet")
        assert ex is not None and (ex.id, ex.kind, ex.api_url, ex.ws_url, ex.created_at) == (
            ex_id,
            "hyperliquid",
            "https://x",
            None,
            TS,
        )
        assert uow.venues.ensure_exchange("hyperliquid-testnet", "hyperliquid", TS).id == ex_id
        assert [i.name for i in uow.venues.instruments()] == ["BTC"]
        p = uow.venues.product(ex_id, "BTC/USDC:USDC")
        assert p is not None and p.id == product_id and p.instrument_id == inst_id
        assert (p.max_leverage, p.lot_size, p.min_notional) == (Decimal(40), Decimal("0.00001"), Decimal(10))
        assert (p.asset_id, p.sz_decimals, p.max_price_decimals) == (110003, 5, 1)
        assert p.metadata_ == NESTED and p.refreshed_at == TS
        # A case variant is a different symbol on every backend (binary collation on MariaDB).
        uow.venues.upsert_product(
            exchange_id=ex_id,
            instrument_id=inst_id,
            symbol="btc/USDC:USDC",
            now=TS,
            metadata={},
            api_coin="btc",
            product_type="PERP",
            margin_mode="cross",
            max_leverage=HUGE,
            sz_decimals=0,
            lot_size=Decimal(1),
            max_price_decimals=6,
            min_notional=TINY,
        )
    later = TS + timedelta(hours=1)
    with UnitOfWork(engine) as uow:
        refreshed = uow.venues.upsert_product(
            exchange_id=ex_id,
            instrument_id=inst_id,
            symbol="BTC/USDC:USDC",
            now=later,
            metadata=[],
            max_leverage=Decimal(50),
        )
        assert refreshed.id == product_id
    with UnitOfWork(engine) as uow:
        products = uow.venues.products_by_symbol(ex_id)
        assert set(products) == {"BTC/USDC:USDC", "btc/USDC:USDC"}
        assert (
            products["btc/USDC:USDC"].max_leverage == HUGE and products["btc/USDC:USDC"].min_notional == TINY
        )
        assert (
            products["BTC/USDC:USDC"].max_leverage == 50 and products["BTC/USDC:USDC"].refreshed_at == later
        )
        assert products["BTC/USDC:USDC"].created_at == TS
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        from ttt.adapters.db.models import Exchange

        uow.session.add(Exchange(name="hyperliquid-testnet", kind="paper", created_at=TS))
        uow.session.flush()


def test_balance_snapshots_and_positions(engine: Engine) -> None:
    ex_id, _, product_id = _venue(engine)

    def snap(usable: bool, at: datetime) -> BalanceSnapshot:
        return BalanceSnapshot(
            exchange_id=ex_id,
            wallet="0x" + "ab" * 20,
            fetched_at=at,
            account_value=HUGE,
            cross_maintenance_margin_used=TINY,
            total_margin_used=Decimal("12.5"),
            withdrawable=None,
            usable=usable,
            partial=not usable,
            missing_dexes=["xyz"] if not usable else [],
            unmapped=[{"coin": "FOO", "szi": "1.5"}],
            off_grid=[],
            created_at=at,
        )

    with UnitOfWork(engine) as uow:
        first = uow.balances.add_snapshot(
            snap(True, TS),
            [
                Position(
                    product_id=product_id,
                    position_size=NEG,
                    entry_price=HUGE,
                    position_value=None,
                    unrealized_pnl=TINY,
                    margin_used=Decimal("-0.5"),
                    leverage={"type": "cross", "value": 20},
                )
            ],
        )
        second = uow.balances.add_snapshot(snap(True, TS + timedelta(seconds=15)))
        third = uow.balances.add_snapshot(snap(False, TS + timedelta(seconds=30)))
    assert first < second < third
    with UnitOfWork(engine) as uow:
        latest = uow.balances.latest_usable()
        assert latest is not None
        s, positions = latest
        assert s.id == second and positions == []
        assert uow.balances.latest_id() == third
        assert [x.id for x in uow.balances.usable_after(0)] == [first, second]
        got = uow.balances.get(first)
        assert got is not None
        assert (got.account_value, got.cross_maintenance_margin_used, got.withdrawable) == (HUGE, TINY, None)
        assert got.unmapped == [{"coin": "FOO", "szi": "1.5"}] and got.fetched_at == TS and got.usable is True
        (pos,) = uow.balances.positions(first)
        assert (pos.position_size, pos.entry_price, pos.unrealized_pnl, pos.margin_used) == (
            NEG,
            HUGE,
            TINY,
            Decimal("-0.5"),
        )
        assert pos.leverage == {"type": "cross", "value": 20}
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        uow.session.add_all(
            [Position(snapshot_id=second, product_id=product_id, position_size=Decimal(1)) for _ in range(2)]
        )
        uow.session.flush()
    with UnitOfWork(engine) as uow:
        assert uow.balances.delete_positions_before(TS + timedelta(seconds=1)) == 1
        assert uow.balances.delete_snapshots_before(TS + timedelta(seconds=20), keep=[first]) == 1
    with UnitOfWork(engine) as uow:
        assert [x.id for x in uow.balances.usable_after(0)] == [first]


def test_bars_upsert_range_and_retention(engine: Engine) -> None:
    def bar(ts: int, close: Decimal, final: bool = True) -> StoredBar:
        return StoredBar(
            "BTC/USDC:USDC", "1m", ts, HUGE, HUGE, TINY, close, Decimal("0.5"), "hyperliquid", final, TS
        )

    with UnitOfWork(engine) as uow:
        assert (
            uow.bars.upsert_bars(
                [bar(60_000 * i, Decimal(i)) for i in range(5)] + [bar(300_000, TINY, False)]
            )
            == 6
        )
        uow.bars.upsert_bars(
            stored_from_domain([Bar("ETH/USDC:USDC", "1h", 0, 1.5, 2.0, 1.0, 0.1, 10.0)], "replay", TS)
        )
    with UnitOfWork(engine) as uow:  # the forming bar becomes final; an existing bar is replaced
        uow.bars.upsert_bars([bar(300_000, NEG, True), bar(0, Decimal("7.25"))])
    with UnitOfWork(engine) as uow:
        rows = uow.bars.range("BTC/USDC:USDC", "1m", 60_000, 300_000)
        assert [r.ts_open for r in rows] == [60_000, 120_000, 180_000, 240_000, 300_000]
        assert (
            rows[-1].close == NEG
            and rows[-1].is_final is True
            and rows[0].high == HUGE
            and rows[0].low == TINY
        )
        assert rows[0].fetched_at == TS
        assert uow.bars.range("BTC/USDC:USDC", "1m", 0, 0)[0].close == Decimal("7.25")
        assert uow.bars.ohlc("ETH/USDC:USDC", "1h", 0, 0) == [(0, 1.5, 2.0, 1.0, 0.1)]
        assert uow.bars.latest_open("BTC/USDC:USDC", "1m") == 300_000
        assert sorted(uow.bars.timeframes()) == ["1h", "1m"]
        assert uow.bars.delete_before("1m", 180_000) == 3
        assert uow.bars.latest_open("ETH/USDC:USDC", "1h") == 0


def test_take_profit_state_and_epochs(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        assert uow.take_profit.get_state() is None
        uow.take_profit.put_state(
            TakeProfitState(
                baseline=None,
                baseline_set_at=None,
                init_samples=[{"snapshot_id": 1, "value": "100.5"}],
                window=[],
                cursor=2**40,
                cooldown_until=None,
                updated_at=TS,
            )
        )
    with UnitOfWork(engine) as uow:
        state = uow.take_profit.get_state()
        assert state is not None and state.baseline is None and state.cursor == 2**40
        state.baseline = HUGE
        state.baseline_set_at = TS
        state.window = [{"snapshot_id": 3, "fetched_at": "2026-01-02T03:04:05+00:00", "value": "1.5"}]
        state.cooldown_until = TS + timedelta(seconds=720)
        uow.take_profit.put_state(state)
        h1 = Epoch(
            kind="take_profit",
            height=1,
            triggered_at=TS,
            baseline_before=HUGE,
            value=TINY,
            gain=NEG,
            runs_flagged=12,
            forced_cycle_ids=["tp:1:1", "tp:1:2", "tp:1:3"],
            forced_due_at=["2026-01-02T03:04:05+00:00"] * 3,
            forced_state=["pending", "pending", "pending"],
        )
        e1 = uow.take_profit.add_epoch(h1)
        dd = uow.take_profit.add_epoch(
            Epoch(
                kind="drawdown_reset",
                height=None,
                triggered_at=TS + timedelta(minutes=30),
                baseline_before=Decimal(1),
                value=Decimal(2),
                gain=Decimal(3),
                runs_flagged=0,
                forced_cycle_ids=[],
                forced_due_at=[],
                forced_state=[],
            )
        )
    with UnitOfWork(engine) as uow:
        state = uow.take_profit.get_state()
        assert state is not None and (state.baseline, state.baseline_set_at) == (HUGE, TS)
        assert state.cooldown_until == TS + timedelta(seconds=720) and state.window[0]["value"] == "1.5"
        assert uow.take_profit.max_height() == 1
        assert [e.id for e in uow.take_profit.epochs()] == [dd, e1]
        epoch = uow.take_profit.epoch(e1)
        assert epoch is not None and (epoch.baseline_before, epoch.value, epoch.gain) == (HUGE, TINY, NEG)
        assert [e.id for e in uow.take_profit.with_pending_forced(TS)] == [e1]
        assert uow.take_profit.set_forced_state(e1, ["sent", "skipped", "sent"])
    with UnitOfWork(engine) as uow:
        assert uow.take_profit.with_pending_forced(TS) == []
        with pytest.raises(ValueError):
            uow.take_profit.set_forced_state(e1, ["done"])
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        h1_again = Epoch(**{k: v for k, v in h1.as_dict().items() if k != "id"})
        uow.take_profit.add_epoch(h1_again)


def test_reconciliation_cycles_and_log(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        assert uow.reconciliation.request_cycle("manual:1767225600000", "manual", TS) is True
        assert uow.reconciliation.request_cycle("manual:1767225600000", "manual", TS) is False
        uow.reconciliation.add_cycle(
            ReconciliationCycle(
                cycle_id="sched:20260102T030000Z",
                trigger="sched",
                scheduled_at=TS - timedelta(minutes=4),
                started_at=TS,
                outcome="running",
                lock_token="f" * 32,
                snapshot_id=7,
                symbols=2,
                orders_sent=0,
                holds=0,
            )
        )
        rows = [
            {
                "cycle_id": "sched:20260102T030000Z",
                "symbol": s,
                "desired_status": "value",
                "desired_reason": None,
                "desired": 0.123456789,
                "desired_clamped": 0.1,
                "actual": -0.5,
                "quorum_status": "ok",
                "margin_used": None,
                "cap": 1e-9,
                "decision_row": 4,
                "side": "buy",
                "size": 0.6,
                "size_rounded": TINY if s.startswith("B") else HUGE,
                "price": 100000.5,
                "notional": 60000.3,
                "threshold": 12.5,
                "gate": "pass",
                "outcome": "order_sent",
                "hold_reason": None,
                "client_order_id": "0x" + "7" * 32,
                "created_at": TS,
            }
            for s in ("BTC/USDC:USDC", "ETH/USDC:USDC")
        ]
        assert uow.reconciliation.add_log_rows(rows) == 2
    with UnitOfWork(engine) as uow:
        assert [c.cycle_id for c in uow.reconciliation.requested_cycles()] == ["manual:1767225600000"]
        assert uow.reconciliation.update_cycle(
            "sched:20260102T030000Z",
            outcome="completed",
            finished_at=TS + timedelta(seconds=3),
            orders_sent=2,
        )
        with pytest.raises(TypeError):
            uow.reconciliation.update_cycle("sched:20260102T030000Z", bogus=1)
    with UnitOfWork(engine) as uow:
        c = uow.reconciliation.cycle("sched:20260102T030000Z")
        assert c is not None and (c.outcome, c.orders_sent, c.lock_token, c.snapshot_id) == (
            "completed",
            2,
            "f" * 32,
            7,
        )
        assert c.finished_at == TS + timedelta(seconds=3) and c.started_at == TS
        latest = uow.reconciliation.latest_finished()
        assert latest is not None and latest.cycle_id == c.cycle_id
        log = uow.reconciliation.log_for_cycle(c.cycle_id)
        assert [r.symbol for r in log] == ["BTC/USDC:USDC", "ETH/USDC:USDC"]
        assert (log[0].size_rounded, log[1].size_rounded, log[0].cap, log[0].desired) == (
            TINY,
            HUGE,
            1e-9,
            0.123456789,
        )
        assert log[0].margin_used is None and log[0].created_at == TS
        assert len(uow.reconciliation.recent_cycles()) == 2
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        uow.reconciliation.add_cycle(
            ReconciliationCycle(
                cycle_id="manual:1767225600000",
                trigger="manual",
                scheduled_at=TS,
                outcome="requested",
                symbols=0,
                orders_sent=0,
                holds=0,
            )
        )
    with UnitOfWork(engine) as uow:
        assert uow.reconciliation.delete_before(TS - timedelta(minutes=1)) == 1
        assert uow.reconciliation.log_for_cycle("sched:20260102T030000Z") == []


def _order(product_id: int, cloid: str) -> OrderRecord:
    return OrderRecord(
        client_order_id=cloid,
        cycle_id="sched:20260102T030000Z",
        product_id=product_id,
        symbol="BTC/USDC:USDC",
        side="buy",
        size=Decimal("0.1427"),
        requested_size=Decimal("0.142705098305"),
        style="post_only",
        time_in_force="Alo",
        limit_price=HUGE,
        reference_price=None,
        decision_price=TINY,
        reduce_only=False,
        status="RECEIVED",
        exchange_order_id=None,
        filled_size=Decimal(0),
        avg_fill_price=None,
        fees_usd=Decimal(0),
        fingerprint="e" * 64,
        attempts=0,
        created_at=TS,
        updated_at=TS,
    )


def test_orders_and_fills(engine: Engine) -> None:
    ex_id, _, product_id = _venue(engine)
    cloid = "0x747474" + "01" * 13
    with UnitOfWork(engine) as uow:
        uow.orders.add(_order(product_id, cloid))
    later = TS + timedelta(seconds=1, microseconds=5)
    with UnitOfWork(engine) as uow:
        assert uow.orders.update(
            cloid,
            later,
            status="FILLED",
            filled_size=Decimal("0.1427"),
            avg_fill_price=NEG,
            exchange_order_id="5063830287",
            submitted_at=TS,
            closed_at=later,
        )
        with pytest.raises(TypeError):
            uow.orders.update(cloid, later, nonsense=1)
    with UnitOfWork(engine) as uow:
        o = uow.orders.by_client_order_id(cloid)
        assert o is not None and (
            o.status,
            o.filled_size,
            o.avg_fill_price,
            o.limit_price,
            o.decision_price,
        ) == (
            "FILLED",
            Decimal("0.1427"),
            NEG,
            HUGE,
            TINY,
        )
        assert (o.updated_at, o.closed_at, o.created_at, o.requested_size) == (
            later,
            later,
            TS,
            Decimal("0.142705098305"),
        )
        assert [x.client_order_id for x in uow.orders.list_orders(status=["FILLED", "RESTING"])] == [cloid]
        assert uow.orders.list_orders(status="RECEIVED") == []
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        uow.orders.add(_order(product_id, cloid))

    def fill(tid: str, size: Decimal) -> dict[str, object]:
        return {
            "exchange_id": ex_id,
            "trade_id": tid,
            "client_order_id": cloid,
            "exchange_order_id": "5063830287",
            "symbol": "BTC/USDC:USDC",
            "side": "buy",
            "price": HUGE,
            "size": size,
            "fee": TINY,
            "fee_token": "USDC",
            "liquidity": "maker",
            "closed_pnl": None,
            "exchange_time": TS,
            "ingested_at": later,
        }

    with UnitOfWork(engine) as uow:
        assert uow.fills.insert_new(
            [fill("1", Decimal("0.1")), fill("2", Decimal("0.0427")), fill("1", Decimal(9))]
        ) == ["1", "2"]
    with UnitOfWork(engine) as uow:
        assert uow.fills.insert_new([fill("2", Decimal(9)), fill("3", Decimal("0.5"))]) == ["3"]
    with UnitOfWork(engine) as uow:
        fills = uow.fills.for_client_order_id(cloid)
        assert [(f.trade_id, f.size) for f in fills] == [
            ("1", Decimal("0.1")),
            ("2", Decimal("0.0427")),
            ("3", Decimal("0.5")),
        ]
        assert (fills[0].price, fills[0].fee, fills[0].closed_pnl, fills[0].ingested_at) == (
            HUGE,
            TINY,
            None,
            later,
        )
        assert uow.fills.latest_exchange_time(ex_id) == TS
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        from ttt.adapters.db.models import FillRecord

        row = fill("3", Decimal(1))
        uow.session.add(FillRecord(**row))
        uow.session.flush()


def test_audit_log_is_append_and_tail(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        ids = [
            uow.audit.append(
                ts=TS + timedelta(microseconds=i),
                kind="cycle.start" if i == 0 else "reconcile.decision",
                actor="worker@host",
                message=f"m{i}",
                payload={"i": i, "quorum": NESTED},
                cycle_id="sched:x",
                symbol=None if i == 0 else "BTC/USDC:USDC",
                lock_token="a" * 32,
                severity="info" if i else "warning",
            )
            for i in range(5)
        ]
        uow.audit.append(ts=TS, kind="alert", actor="a@h", message="other", severity="critical")
    with UnitOfWork(engine) as uow:
        tail = uow.audit.tail(3, cycle_id="sched:x")
        assert [r.id for r in tail] == ids[2:]
        assert tail[0].payload == {"i": 2, "quorum": NESTED} and tail[0].ts == TS + timedelta(microseconds=2)
        assert [r.message for r in uow.audit.tail(10, kind="cycle.start")] == ["m0"]
        assert uow.audit.tail(10, kind="alert")[0].payload == {}
        with pytest.raises(ValueError, match="severity"):
            uow.audit.append(ts=TS, kind="x", actor="a", message="m", severity="fatal")
    assert not any(hasattr(uow.audit, name) for name in ("update", "delete", "remove"))
    with UnitOfWork(engine) as uow:
        assert uow.audit.delete_before(TS + timedelta(microseconds=1)) == 2  # retention only


def test_paper_tables(engine: Engine) -> None:
    wallet = "0x" + "cd" * 20
    with UnitOfWork(engine) as uow:
        uow.paper.put_account(wallet, HUGE, TS)
        uow.paper.put_position(
            PaperPosition(
                wallet=wallet,
                symbol="BTC/USDC:USDC",
                size=NEG,
                entry_price=HUGE,
                leverage=20,
                cum_funding=TINY,
                updated_at=TS,
            )
        )
        oid1 = uow.paper.add_order(
            PaperOrder(
                cloid="0x" + "1" * 32,
                wallet=wallet,
                symbol="BTC/USDC:USDC",
                side="buy",
                price=HUGE,
                size=Decimal(1),
                remaining=Decimal(1),
                tif="Alo",
                reduce_only=False,
                status="open",
                created_at=TS,
            )
        )
        oid2 = uow.paper.add_order(
            PaperOrder(
                cloid=None,
                wallet=wallet,
                symbol="ETH/USDC:USDC",
                side="sell",
                price=TINY,
                size=Decimal(2),
                remaining=Decimal(2),
                tif="Ioc",
                reduce_only=True,
                status="open",
                created_at=TS,
            )
        )
        oid3 = uow.paper.add_order(
            PaperOrder(
                cloid=None,
                wallet=wallet,
                symbol="ETH/USDC:USDC",
                side="sell",
                price=TINY,
                size=Decimal(2),
                remaining=Decimal(2),
                tif="Ioc",
                reduce_only=True,
                status="rejected",
                created_at=TS,
            )
        )
        tid = uow.paper.add_trade(
            PaperTrade(
                oid=oid1,
                wallet=wallet,
                symbol="BTC/USDC:USDC",
                side="buy",
                price=HUGE,
                size=Decimal("0.5"),
                fee=TINY,
                liquidity="maker",
                closed_pnl=NEG,
                ts=TS,
            )
        )
        uow.paper.add_ledger(
            PaperLedgerEntry(
                wallet=wallet, ts=TS, kind="funding", symbol="BTC/USDC:USDC", amount=Decimal(-10), ref="h1"
            )
        )
        uow.paper.add_ledger(
            PaperLedgerEntry(wallet=wallet, ts=TS, kind="fee", symbol=None, amount=TINY, ref=None)
        )
    assert oid1 < oid2 < oid3
    with UnitOfWork(engine) as uow:
        assert uow.paper.update_order(oid1, remaining=Decimal("0.5"))
        uow.paper.put_account(wallet, Decimal("99.5"), TS + timedelta(days=1))
        pos = uow.paper.position(wallet, "BTC/USDC:USDC")
        assert pos is not None
        pos.size = Decimal(0)
        uow.paper.put_position(pos)
    with UnitOfWork(engine) as uow:
        acct = uow.paper.account(wallet)
        assert acct is not None and (acct.cash, acct.created_at) == (Decimal("99.5"), TS)
        (pos,) = uow.paper.positions(wallet)
        assert (pos.size, pos.entry_price, pos.cum_funding, pos.leverage) == (Decimal(0), HUGE, TINY, 20)
        assert [o.oid for o in uow.paper.open_orders(wallet)] == [oid1, oid2]
        o1 = uow.paper.order_by_cloid(wallet, "0x" + "1" * 32)
        assert o1 is not None and (o1.oid, o1.remaining, o1.price, o1.reduce_only) == (
            oid1,
            Decimal("0.5"),
            HUGE,
            False,
        )
        (trade,) = uow.paper.trades(wallet, since=TS)
        assert (trade.tid, trade.price, trade.fee, trade.closed_pnl, trade.ts) == (tid, HUGE, TINY, NEG, TS)
        assert [(e.kind, e.amount) for e in uow.paper.ledger(wallet)] == [
            ("funding", Decimal(-10)),
            ("fee", TINY),
        ]
        assert [e.ref for e in uow.paper.ledger(wallet, kind="funding")] == ["h1"]
        with pytest.raises(ValueError):
            uow.paper.add_ledger(PaperLedgerEntry(wallet=wallet, ts=TS, kind="gift", amount=Decimal(1)))
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:
        uow.paper.add_order(
            PaperOrder(
                cloid="0x" + "1" * 32,
                wallet=wallet,
                symbol="BTC/USDC:USDC",
                side="buy",
                price=HUGE,
                size=Decimal(1),
                remaining=Decimal(1),
                tif="Alo",
                reduce_only=False,
                status="open",
                created_at=TS,
            )
        )


def test_control_requests(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        a = uow.control.add("orders.cancel_ours", {"symbol": None, "nested": NESTED}, TS)
        b = uow.control.add("take_profit.reset_baseline", {}, TS + timedelta(seconds=1))
    with UnitOfWork(engine) as uow:
        assert [r.id for r in uow.control.pending()] == [a, b]
        assert [r.id for r in uow.control.pending(["take_profit.reset_baseline"])] == [b]
        assert uow.control.pick(a, TS + timedelta(seconds=2)) is True
        assert uow.control.pick(a, TS + timedelta(seconds=3)) is False
        assert uow.control.finish(a, {"cancelled": ["0x1"], "errors": {}})
    with UnitOfWork(engine) as uow:
        r = uow.control.get(a)
        assert r is not None and r.payload == {"symbol": None, "nested": NESTED}
        assert (r.picked_at, r.result) == (TS + timedelta(seconds=2), {"cancelled": ["0x1"], "errors": {}})
        assert [x.id for x in uow.control.pending()] == [b]


def test_lock_rows_round_trip(engine: Engine) -> None:
    from tests.db.conftest import FakeClock
    from ttt.adapters.db.locks import DbLockManager

    clock = FakeClock(TS.timestamp())
    locks = DbLockManager(engine, clock)
    token = locks.acquire("gateway:order:0x" + "ab" * 16, 60)
    assert token is not None
    assert locks.holder("gateway:order:0x" + "ab" * 16) == (token, TS.timestamp() + 60)
    assert locks.holder("GATEWAY:order:0x" + "ab" * 16) is None  # names compare exactly
