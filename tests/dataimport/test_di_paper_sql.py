"""`SqlPaperStore`: the paper engine gives the same results over the database as in memory, on every
backend, and its state survives a new engine over the same database.

Each scenario asserts its hand-worked numbers (services.md §7.2, SV-16/17/18) for whichever store it runs
on, and returns a full transcript (results, fills, ledger, rendered account) that must be identical for
both stores.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ttt.adapters.db.models import PaperAccount, PaperLedgerEntry, PaperPosition
from ttt.adapters.exchange.paper import PaperConfig, PaperExchange
from ttt.adapters.exchange.paper_sql import SqlPaperStore, storable
from ttt.adapters.exchange.paper_store import InMemoryPaperStore, PaperStore
from ttt.adapters.market.replay import SimClock
from ttt.domain.orders import OrderRequest, Side, TimeInForce

HOUR = 3600
T_START = 100 * HOUR - 600
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
CLOID = "0x74747401" + "ab" * 12

Scenario = Callable[[PaperExchange, SimClock], list[Any]]


def order(
    side: Side, size: str, price: str, tif: TimeInForce = "Alo", *, symbol: str = BTC, **kw: Any
) -> OrderRequest:
    return OrderRequest(symbol, side, D(size), D(price), tif, **kw)


def build(
    store: PaperStore, clock: SimClock, *, balance: int = 10_000, rate: str | None = None
) -> PaperExchange:
    config = PaperConfig(initial_balance_usd=D(balance))
    funding = (lambda _s, _t: D(rate)) if rate is not None else None
    return PaperExchange(config, clock, store=store, funding_rate=funding)


def cash(ex: PaperExchange) -> D:
    value = ex.store.cash(ex.config.wallet)
    assert value is not None
    return value


def snapshot(ex: PaperExchange) -> list[Any]:
    wallet = ex.config.wallet
    return [
        ex.fetch_fills(0),
        ex.ledger(),
        ex.fetch_open_orders(),
        ex.store.positions(wallet),
        cash(ex),
        ex.fetch_account()[""],
    ]


# --- scenarios -----------------------------------------------------------------------------------------


def sv16(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    # bid = 99 990: a post-only buy there rests, then fills at the limit when P falls through it.
    placed = ex.place_order(order("buy", "0.001", "99990", cloid=CLOID))
    assert placed.status == "resting"
    assert ex.on_price(BTC, 99_990) == []
    (fill,) = ex.on_price(BTC, 99_989.5)
    assert (fill.price, fill.size, fill.liquidity, fill.cloid) == (D(99_990), D("0.001"), "maker", CLOID)
    assert fill.fee == D("0.0149985")  # 0.00015 · 0.001 · 99 990
    assert cash(ex) == D("9999.9850015")
    status = ex.order_status(cloid=CLOID)
    assert (status.status, status.filled_size, status.avg_price) == ("filled", D("0.001"), D(99_990))
    return [placed, fill, status, *snapshot(ex)]


def sv17(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    # taker buy = 100 010 · 1.0002 = 100 030.002
    rejected = ex.place_order(order("buy", "0.001", "100030", "Ioc", cloid=CLOID))
    assert rejected.error_text == "Order could not immediately match against any resting orders."
    status = ex.order_status(cloid=CLOID)
    assert (status.status, status.error_text) == ("rejected", rejected.error_text)
    filled = ex.place_order(order("buy", "0.001", "100031", "Ioc"))
    assert (filled.status, filled.avg_price) == ("filled", D("100030.002"))
    assert ex.fetch_fills(0)[-1].fee == D("0.0450135009")
    return [rejected, status, filled, *snapshot(ex)]


def sv18(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "1", "100031", "Ioc"))
    ex.on_price(BTC, D(100_000))
    before = cash(ex)
    clock.set(100 * HOUR - 1)
    ex.on_clock()
    assert cash(ex) == before
    clock.set(100 * HOUR)
    ex.on_clock()
    assert before - cash(ex) == D(10)  # 1 · 100 000 · 0.0001
    row = ex.ledger()[-1]
    assert (row.kind, row.symbol, row.amount, row.ref) == ("funding", BTC, D(-10), "hour:100")
    return snapshot(ex)


def flip(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "0.01", "99000"))
    ex.on_price(BTC, 98_990)  # 0.01 @ 99 000, fee 0.1485
    ex.place_order(order("buy", "0.03", "98000"))
    ex.on_price(BTC, 97_990)  # 0.03 @ 98 000, fee 0.441; entry 3930 / 0.04 = 98 250
    pos = ex.store.position(ex.config.wallet, BTC)
    assert pos is not None and pos.entry_price == D(98_250)
    ex.place_order(order("sell", "0.05", "99000"))
    (fill,) = ex.on_price(BTC, 99_010)  # close 0.04 (+30), open short 0.01 @ 99 000, fee 0.7425
    assert (fill.closed_pnl, fill.fee) == (D(30), D("0.7425"))
    pos = ex.store.position(ex.config.wallet, BTC)
    assert pos is not None and (pos.size, pos.entry_price) == (D("-0.01"), D(99_000))
    assert cash(ex) == D("10028.668")  # 10 000 + 30 − 1.332
    assert ex.fetch_account()[""]["marginSummary"]["accountValue"] == "10028.568"
    return snapshot(ex)


def funding_short(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("sell", "1", "99970", "Ioc"))
    before = cash(ex)
    clock.set(103 * HOUR + 5)  # boundaries 100, 101, 102, 103 at P = 100 000
    ex.on_clock()
    assert cash(ex) - before == D(40)
    assert [r.ref for r in ex.ledger() if r.kind == "funding"] == [f"hour:{h}" for h in range(100, 104)]
    return snapshot(ex)


def liquidation_and_leverage(ex: PaperExchange, clock: SimClock) -> list[Any]:
    ex.on_price(BTC, D(100_000))
    ex.on_price(ETH, D(3_000))
    assert ex.set_isolated_leverage(ETH, 5) is None
    ex.place_order(order("buy", "0.09", "99000"))
    ex.on_price(BTC, 98_990)
    resting = ex.place_order(order("sell", "0.01", "120000"))
    fills = ex.on_price(BTC, 89_000)  # account value 98.6635 < maintenance 100.125
    (liq,) = fills
    assert (liq.liquidation, liq.closed_pnl, liq.fee) == (True, D(-900), D("3.6045"))
    assert cash(ex) == D("95.059")
    assert ex.order_status(oid=resting.oid).status == "canceled"
    ex.place_order(order("buy", "0.01", "3001", "Ioc", symbol=ETH))
    lev = ex.fetch_account()[""]["assetPositions"][0]["position"]["leverage"]["value"]
    assert lev == 5
    return [fills, *snapshot(ex)]


SCENARIOS: dict[str, tuple[Scenario, dict[str, Any]]] = {
    "sv16": (sv16, {}),
    "sv17": (sv17, {}),
    "sv18": (sv18, {"balance": 200_000, "rate": "0.0001"}),
    "flip": (flip, {}),
    "funding_short": (funding_short, {"balance": 200_000, "rate": "0.0001"}),
    "liquidation": (liquidation_and_leverage, {"balance": 1_000}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_sql_store_gives_the_in_memory_results(name: str, engine: Engine) -> None:
    scenario, kwargs = SCENARIOS[name]
    clock_mem = SimClock(T_START)
    expected = scenario(build(InMemoryPaperStore(), clock_mem, **kwargs), clock_mem)
    clock_sql = SimClock(T_START)
    store = SqlPaperStore(engine, clock_sql)
    got = scenario(build(store, clock_sql, **kwargs), clock_sql)
    assert got == expected


def test_events_inside_atomic_give_the_same_results(lite: Engine) -> None:
    clock_mem = SimClock(T_START)
    expected = flip(build(InMemoryPaperStore(), clock_mem), clock_mem)
    clock = SimClock(T_START)
    store = SqlPaperStore(lite, clock)
    with store.atomic():
        got = flip(build(store, clock), clock)
    assert got == expected


def test_atomic_rolls_back_every_write_of_a_failed_event(lite: Engine) -> None:
    clock = SimClock(T_START)
    store = SqlPaperStore(lite, clock)
    ex = build(store, clock)
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "0.001", "100031", "Ioc"))
    before = snapshot(ex)
    with pytest.raises(RuntimeError, match="crash"), store.atomic():
        ex.place_order(order("buy", "0.002", "100031", "Ioc"))
        assert len(ex.fetch_fills(0)) == 2  # visible inside the transaction
        raise RuntimeError("crash after the fill, before the commit")
    assert snapshot(ex) == before


def _restart_script(first: PaperExchange, clock: SimClock, second: Callable[[], PaperExchange]) -> list[Any]:
    """Resting order, position and funding cursor across a restart (prices are events, not state: the
    new engine hears the price again from the source)."""
    ex = first
    ex.on_price(BTC, D(100_000))
    ex.on_price(ETH, D(3_000))
    assert ex.set_isolated_leverage(BTC, 20) is None
    ex.place_order(order("buy", "0.5", "100031", "Ioc"))
    resting = ex.place_order(order("sell", "2", "3010", cloid=CLOID, symbol=ETH))
    clock.set(100 * HOUR + 10)
    ex.on_clock()  # hour 100: the long pays 0.5 · 100 000 · 0.0002 = 10
    ex = second()
    ex.on_price(BTC, D(100_000))
    ex.on_price(ETH, D(3_000))
    assert [o.oid for o in ex.fetch_open_orders()] == [resting.oid]
    dup = ex.place_order(order("sell", "2", "3010", cloid=CLOID, symbol=ETH))
    assert dup.error_text == "Duplicate cloid."
    (fill,) = ex.on_price(ETH, 3_011)
    assert (fill.cloid, fill.price, fill.oid) == (CLOID, D(3_010), resting.oid)
    clock.set(101 * HOUR)
    ex.on_clock()  # hour 101 only: 10 for BTC; the ETH short 2 · 3 011 · 0.0002 = 1.2044 is received
    funding = [(r.symbol, r.amount, r.ref) for r in ex.ledger() if r.kind == "funding"]
    assert funding == [
        (BTC, D(-10), "hour:100"),
        (BTC, D(-10), "hour:101"),
        (ETH, D("1.2044"), "hour:101"),
    ]
    account = ex.fetch_account()[""]
    btc = next(p["position"] for p in account["assetPositions"] if p["position"]["coin"] == "BTC")
    assert btc["leverage"]["value"] == 20 and btc["cumFunding"]["allTime"] == "20.0"
    nxt = ex.place_order(order("buy", "0.001", "99000"))
    assert nxt.oid is not None and resting.oid is not None and nxt.oid > resting.oid
    return [fill, nxt, *snapshot(ex)]


def test_state_survives_a_new_engine_over_the_same_database(engine: Engine) -> None:
    kwargs: dict[str, Any] = {"balance": 100_000, "rate": "0.0002"}
    clock_mem = SimClock(T_START)
    mem = build(InMemoryPaperStore(), clock_mem, **kwargs)
    expected = _restart_script(mem, clock_mem, lambda: mem)

    clock = SimClock(T_START)
    first = build(SqlPaperStore(engine, clock), clock, **kwargs)
    got = _restart_script(first, clock, lambda: build(SqlPaperStore(engine, clock), clock, **kwargs))
    assert got == expected


def test_restart_after_crash_mid_hour_does_not_settle_an_hour_twice(lite: Engine) -> None:
    clock = SimClock(100 * HOUR + 100)
    ex = build(SqlPaperStore(lite, clock), clock, rate="0.0001")
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    clock.set(101 * HOUR + 5)
    ex.on_clock()
    clock.set(101 * HOUR + 50)
    again = build(SqlPaperStore(lite, clock), clock, rate="0.0001")
    again.on_price(BTC, D(100_000))
    again.on_clock()
    refs = [r.ref for r in again.ledger() if r.kind == "funding"]
    assert refs == ["hour:101"]


def test_rows_are_readable_by_other_tools(lite: Engine) -> None:
    """The table columns hold what their names say: entry price, cum funding, leverage, cash = Σ ledger."""
    clock = SimClock(T_START)
    ex = build(SqlPaperStore(lite, clock), clock, rate="0.0001")
    ex.on_price(BTC, D(100_000))
    assert ex.set_isolated_leverage(BTC, 20) is None
    ex.place_order(order("buy", "0.01", "99000"))
    ex.on_price(BTC, 98_000)
    ex.place_order(order("buy", "0.02", "97000"))
    ex.on_price(BTC, 96_000)
    clock.set(100 * HOUR)
    ex.on_clock()
    with lite.connect() as conn:
        pos = conn.execute(sa.select(PaperPosition.__table__)).one()
        # entry (0.01·99 000 + 0.02·97 000) / 0.03 = 97 666.66… (rounded down at 18 decimals)
        assert pos.leverage == 20
        assert D(pos.entry_price) == D("97666.666666666666666666")
        assert D(pos.cost_basis) == D(2930)
        assert D(pos.cum_funding) == D("0.288")  # 0.03 · 96 000 · 0.0001
        ledger = [D(r.amount) for r in conn.execute(sa.select(PaperLedgerEntry.__table__))]
        account = conn.execute(sa.select(PaperAccount.__table__)).one()
        assert D(account.cash) == sum(ledger, D(0))
        assert account.funding_hour == 100


def test_values_beyond_18_decimals_are_floored_and_cash_still_equals_the_ledger(lite: Engine) -> None:
    assert storable(D("1.0000000000000000019")) == D("1.000000000000000001")
    assert storable(D("-1.0000000000000000011")) == D("-1.000000000000000002")
    assert storable(D("2.5")) == D("2.5")
    clock = SimClock(T_START)
    ex = build(SqlPaperStore(lite, clock), clock, rate="0.0000123456789")
    ex.on_price(BTC, D("100000.123"))
    ex.place_order(order("buy", "0.00123", "101000", "Ioc"))
    clock.set(102 * HOUR)
    ex.on_clock()
    amounts = [r.amount for r in ex.ledger()]
    assert any(a.as_tuple().exponent == -18 for a in amounts)  # the fee was rounded
    assert cash(ex) == sum(amounts, D(0))


def test_store_reads_do_not_take_the_sqlite_write_lock(lite: Engine) -> None:
    """A dashboard or CLI reading paper state must not queue behind (or block) the engine's writes."""
    clock = SimClock(T_START)
    store = SqlPaperStore(lite, clock)
    ex = build(store, clock)
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "0.001", "99000"))
    with lite.connect() as writer, writer.begin():  # BEGIN IMMEDIATE: holds the write lock
        writer.execute(sa.text("UPDATE paper_accounts SET created_at = created_at"))
        assert [o.price for o in store.open_orders()] == [D(99_000)]
        assert store.cash(ex.config.wallet) is not None


def test_store_state_round_trips_through_a_new_store(engine: Engine) -> None:
    clock = SimClock(T_START)
    store = SqlPaperStore(engine, clock)
    assert store.funding_hour() is None
    store.set_funding_hour(99)  # no account yet: nothing to persist it on
    assert store.funding_hour() == 99
    store.set_cash("0xabc", D(5))
    store.set_leverage("0xabc", ETH, 7)
    assert store.position("0xabc", ETH) is None and store.leverage("0xabc", ETH) == 7
    store.set_funding_hour(100)
    assert [store.next_oid(), store.next_oid(), store.next_tid()] == [1, 2, 1]

    again = SqlPaperStore(engine, clock)
    assert again.funding_hour() == 100
    assert again.cash("0xabc") == D(5) and again.wallets() == ["0xabc"]
    assert again.leverage("0xabc", ETH) == 7 and again.leverage("0xabc", BTC) is None
    assert again.positions("0xabc") == []
    assert again.next_oid() == 1  # nothing was stored under oids 1 and 2
    assert SqlPaperStore(engine, clock).funding_hour() == 100


def test_restart_across_a_due_funding_hour_settles_it_once(lite: Engine) -> None:
    clock = SimClock(T_START)
    ex = build(SqlPaperStore(lite, clock), clock, rate="0.0001")
    ex.on_price(BTC, D(100_000))
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    clock.set(100 * HOUR + 30)  # the engine was down across the hour boundary
    again = build(SqlPaperStore(lite, clock), clock, rate="0.0001")
    again.on_price(BTC, D(100_000))
    assert [r.ref for r in again.ledger() if r.kind == "funding"] == ["hour:100"]
