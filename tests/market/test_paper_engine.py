"""Paper exchange (services.md §7.2): SV-16/17/18, validation texts, fills, flips, fees, funding,
liquidation, cancels, status and the clearinghouseState shape. Expected numbers are worked by hand in
the comments."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D
from typing import Any

import pytest
import yaml

from tests.support import require_shared_fixture
from ttt.adapters.exchange.paper import PaperConfig, PaperExchange, paper_products
from ttt.adapters.market.replay import SimClock
from ttt.domain.orders import OrderRequest, ProductMeta, Side, TimeInForce
from ttt.errors import ConfigError

HOUR = 3600
T_START = 100 * HOUR - 600  # ten minutes before a whole hour
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
CLOID = "0x74747401" + "ab" * 12


def make(
    balance: int = 10_000, rule: str = "through", rate: str | None = None
) -> tuple[PaperExchange, SimClock]:
    clock = SimClock(T_START)
    config = PaperConfig(initial_balance_usd=D(balance), maker_fill_rule=rule)  # type: ignore[arg-type]
    funding = (lambda _s, _t: D(rate)) if rate is not None else None
    ex = PaperExchange(config, clock, funding_rate=funding)
    ex.on_price(BTC, D(100_000))
    ex.on_price(ETH, D(3_000))
    return ex, clock


def order(
    side: Side, size: str, price: str, tif: TimeInForce = "Alo", *, symbol: str = BTC, **kw: Any
) -> OrderRequest:
    return OrderRequest(symbol, side, D(size), D(price), tif, **kw)


def cash(ex: PaperExchange) -> D:
    value = ex.store.cash(ex.config.wallet)
    assert value is not None
    return value


def test_sv16_post_only_buy_at_bid_rests_then_fills_through_at_limit() -> None:
    ex, _ = make()
    # P = 100 000, h = 1 bp: bid = 99 990, ask = 100 010.
    result = ex.place_order(order("buy", "0.001", "99990", cloid=CLOID))
    assert result.status == "resting" and result.oid is not None
    assert ex.on_price(BTC, 99_995) == []
    assert ex.on_price(BTC, 99_990) == []  # `through`: touching is not enough
    (fill,) = ex.on_price(BTC, 99_989.5)
    assert (fill.price, fill.size, fill.liquidity, fill.cloid) == (D(99_990), D("0.001"), "maker", CLOID)
    assert fill.fee == D("0.0149985")  # 0.00015 · 0.001 · 99 990
    assert cash(ex) == D("9999.9850015")
    assert ex.order_status(cloid=CLOID).status == "filled"
    assert ex.fetch_open_orders() == []


def test_touch_rule_fills_at_equal_price() -> None:
    ex, _ = make(rule="touch")
    ex.place_order(order("sell", "0.001", "100010"))
    (fill,) = ex.on_price(BTC, 100_010)
    assert fill.price == D(100_010) and fill.side == "sell"


def test_sv17_ioc_below_taker_price_is_rejected_with_exact_text() -> None:
    ex, _ = make()
    # taker buy = ask · (1 + 2 bp) = 100 010 · 1.0002 = 100 030.002
    rejected = ex.place_order(order("buy", "0.001", "100030", "Ioc"))
    assert rejected.status == "error"
    assert rejected.error_text == "Order could not immediately match against any resting orders."
    filled = ex.place_order(order("buy", "0.001", "100031", "Ioc"))
    assert (filled.status, filled.filled_size, filled.avg_price) == ("filled", D("0.001"), D("100030.002"))
    assert ex.fetch_fills(0)[-1].fee == D("0.0450135009")  # 0.00045 · 100.030002
    # taker sell = bid · (1 − 2 bp) = 99 990 · 0.9998 = 99 970.002
    assert ex.place_order(order("sell", "0.001", "99971", "Ioc")).status == "error"
    assert ex.place_order(order("sell", "0.001", "99970", "Ioc")).avg_price == D("99970.002")


def test_sv18_hourly_funding_long_pays_rate_times_notional() -> None:
    ex, clock = make(balance=200_000, rate="0.0001")
    ex.place_order(order("buy", "1", "100031", "Ioc"))
    before = cash(ex)
    clock.set(100 * HOUR - 1)
    ex.on_clock()
    assert cash(ex) == before
    clock.set(100 * HOUR)
    ex.on_clock()
    assert before - cash(ex) == D(10)  # 1 · 100 000 · 0.0001
    row = ex.ledger()[-1]
    assert (row.kind, row.symbol, row.amount, row.ref) == ("funding", BTC, D(-10), "hour:100")
    state = ex.fetch_account()[""]
    assert D(state["assetPositions"][0]["position"]["cumFunding"]["allTime"]) == D(10)


def test_short_receives_funding_and_skipped_hours_are_all_settled() -> None:
    ex, clock = make(balance=200_000, rate="0.0001")
    ex.place_order(order("sell", "1", "99970", "Ioc"))
    before = cash(ex)
    clock.set(103 * HOUR + 5)  # boundaries 100, 101, 102, 103
    ex.on_clock()
    assert cash(ex) - before == D(40)
    assert [r.ref for r in ex.ledger() if r.kind == "funding"] == [f"hour:{h}" for h in range(100, 104)]


def test_post_only_cross_text_names_the_bbo() -> None:
    ex, _ = make()
    text = "Post only order would have immediately matched, bbo was 99990.0@100010.0."
    assert ex.place_order(order("buy", "0.001", "100010")).error_text == text
    assert ex.place_order(order("sell", "0.001", "99990")).error_text == text
    assert ex.place_order(order("buy", "0.001", "100009")).status == "resting"


@pytest.mark.parametrize(
    ("request_", "text"),
    [
        (order("buy", "0", "99000"), "Order has invalid size."),
        (order("buy", "-0.001", "99000"), "Order has invalid size."),
        (order("buy", "0.000001", "99000"), "Order has invalid size."),  # BTC lot 0.00001
        (order("buy", "0.000001", "99000.5"), "Order has invalid size."),  # size is checked first
        (order("buy", "0.001", "99000.5"), "Price must be divisible by tick size."),  # 6 significant figures
        (order("buy", "0.1", "2999.95", symbol=ETH), "Price must be divisible by tick size."),
        (order("buy", "0.001", "99000", reduce_only=True), "Reduce only order would increase position."),
        (order("buy", "0.00009", "99000"), "Order must have minimum value of $10."),  # 8.91 USD
        (order("buy", "1.1", "99000"), "Insufficient margin to place order."),  # 1.1·100 000/10 > 10 000
    ],
)
def test_validation_texts(request_: OrderRequest, text: str) -> None:
    ex, _ = make()
    result = ex.place_order(request_)
    assert (result.status, result.error_text) == ("error", text)


def test_margin_boundary_and_valid_eth_price() -> None:
    ex, _ = make()
    assert ex.place_order(order("buy", "0.1", "2999.9", symbol=ETH)).status == "resting"
    ex2, _ = make()
    assert ex2.place_order(order("buy", "1", "99000")).status == "resting"  # IM = 10 000 = account value


def test_duplicate_cloid_is_last_and_rejected_orders_keep_their_cloid() -> None:
    ex, _ = make()
    assert ex.place_order(order("buy", "0.001", "99000", cloid=CLOID)).status == "resting"
    assert ex.place_order(order("buy", "0.001", "99000", cloid=CLOID)).error_text == "Duplicate cloid."
    assert ex.place_order(order("buy", "0", "99000", cloid=CLOID)).error_text == "Order has invalid size."
    other = "0x74747401" + "cd" * 12
    assert ex.place_order(order("buy", "0.001", "100020", cloid=other)).status == "error"  # crosses
    assert ex.order_status(cloid=other).status == "rejected"
    assert ex.place_order(order("buy", "0.001", "99000", cloid=other)).error_text == "Duplicate cloid."


def test_reduce_only_rules() -> None:
    ex, _ = make()
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    assert ex.place_order(order("buy", "0.001", "100031", "Ioc", reduce_only=True)).error_text == (
        "Reduce only order would increase position."
    )
    assert ex.place_order(order("sell", "0.02", "99000", "Ioc", reduce_only=True)).error_text == (
        "Reduce only order would increase position."
    )
    # Reduce-only is exempt from the $10 minimum: 0.00005 · 99 000 = 4.95.
    assert ex.place_order(order("sell", "0.00005", "99000", "Ioc", reduce_only=True)).status == "filled"


def test_resting_reduce_only_is_canceled_when_it_would_no_longer_reduce() -> None:
    ex, _ = make()
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    resting = ex.place_order(order("sell", "0.01", "101000", reduce_only=True))
    ex.place_order(order("sell", "0.01", "99970", "Ioc"))  # flat now
    assert ex.on_price(BTC, 101_500) == []
    assert ex.order_status(oid=resting.oid).status == "canceled"


def test_weighted_entry_flip_realised_pnl_and_fees() -> None:
    ex, _ = make()
    ex.place_order(order("buy", "0.01", "99000"))
    ex.on_price(BTC, 98_990)  # fill 0.01 @ 99 000, fee 0.1485
    ex.place_order(order("buy", "0.03", "98000"))
    ex.on_price(BTC, 97_990)  # fill 0.03 @ 98 000, fee 0.441
    pos = ex.store.position(ex.config.wallet, BTC)
    assert pos is not None and pos.size == D("0.04") and pos.entry_price == D(98_250)  # 3930 / 0.04
    ex.place_order(order("sell", "0.05", "99000"))
    (flip,) = ex.on_price(BTC, 99_010)  # close 0.04 (+30), open short 0.01 @ 99 000, fee 0.7425
    assert flip.closed_pnl == D(30) and flip.fee == D("0.7425")
    pos = ex.store.position(ex.config.wallet, BTC)
    assert pos is not None and pos.size == D("-0.01") and pos.entry_price == D(99_000)
    assert cash(ex) == D("10028.668")  # 10 000 + 30 − 1.332
    assert [(r.kind, r.amount) for r in ex.ledger()] == [
        ("deposit", D(10_000)),
        ("fee", D("-0.1485")),
        ("fee", D("-0.441")),
        ("realized_pnl", D(30)),
        ("fee", D("-0.7425")),
    ]
    state = ex.fetch_account()[""]
    # unrealised −0.01 · (99 010 − 99 000) = −0.1
    assert state["marginSummary"]["accountValue"] == "10028.568"
    position = state["assetPositions"][0]["position"]
    assert (position["szi"], position["entryPx"], position["unrealizedPnl"]) == ("-0.01", "99000.0", "-0.1")
    assert position["positionValue"] == "990.1" and position["marginUsed"] == "99.01"
    assert state["crossMaintenanceMarginUsed"] == "12.37625"  # 990.1 / 80
    assert state["withdrawable"] == "9929.558"  # 10 028.568 − 99.01


def test_partial_reduce_keeps_entry() -> None:
    ex, _ = make()
    ex.place_order(order("buy", "0.04", "98000"))
    ex.on_price(BTC, 97_000)
    ex.place_order(order("sell", "0.01", "99000"))
    (fill,) = ex.on_price(BTC, 99_500)
    assert fill.closed_pnl == D(10)  # (99 000 − 98 000) · 0.01
    pos = ex.store.position(ex.config.wallet, BTC)
    assert pos is not None and pos.size == D("0.03") and pos.entry_price == D(98_000)


def test_liquidation_closes_everything_at_p_with_taker_fee() -> None:
    ex, _ = make(balance=1_000)
    ex.place_order(order("buy", "0.09", "99000"))
    ex.on_price(BTC, 98_990)  # long 0.09 @ 99 000, fee 1.3365, cash 998.6635
    resting = ex.place_order(order("sell", "0.01", "120000"))
    assert ex.on_price(BTC, 90_000) == []  # AV 188.6635 ≥ MM 0.09·90 000/80 = 101.25
    fills = ex.on_price(BTC, 89_000)  # AV 98.6635 < MM 100.125
    assert len(fills) == 1
    liq = fills[0]
    assert (liq.side, liq.size, liq.price, liq.liquidity, liq.liquidation) == (
        "sell",
        D("0.09"),
        D(89_000),
        "taker",
        True,
    )
    assert liq.fee == D("3.6045") and liq.closed_pnl == D(-900)
    assert cash(ex) == D("95.059")  # 998.6635 − 900 − 3.6045
    assert ex.store.positions(ex.config.wallet) == []
    assert ex.order_status(oid=resting.oid).status == "canceled"
    assert ("liquidation", D(-900)) in [(r.kind, r.amount) for r in ex.ledger()]


def test_cancel_by_oid_and_cloid_and_open_orders() -> None:
    ex, _ = make()
    a = ex.place_order(order("buy", "0.001", "99000", cloid=CLOID))
    b = ex.place_order(order("buy", "0.001", "98000"))
    c = ex.place_order(order("sell", "0.01", "3100", symbol=ETH))
    assert [o.oid for o in ex.fetch_open_orders()] == [a.oid, b.oid, c.oid]
    assert [o.oid for o in ex.fetch_open_orders(ETH)] == [c.oid]
    missing = "Order was never placed, already canceled, or filled."
    assert ex.cancel(BTC, cloids=[CLOID], oids=[b.oid, 999]) == {  # type: ignore[list-item]
        CLOID: "success",
        str(b.oid): "success",
        "999": missing,
    }
    assert ex.cancel(BTC, oids=[c.oid]) == {str(c.oid): missing}  # type: ignore[list-item]
    assert ex.cancel(BTC, cloids=[CLOID]) == {CLOID: missing}
    assert [o.oid for o in ex.fetch_open_orders()] == [c.oid]
    assert ex.order_status(cloid=CLOID).status == "canceled"
    assert ex.order_status(oid=12345).status == "unknown"
    assert ex.order_status(cloid="0x" + "0" * 32).status == "unknown"


def test_fills_ledger_has_unique_trade_ids_and_since_filter() -> None:
    ex, clock = make()
    ex.place_order(order("buy", "0.001", "100031", "Ioc"))
    clock.set(T_START + 60)
    ex.place_order(order("sell", "0.001", "99970", "Ioc"))
    fills = ex.fetch_fills(0)
    assert [f.tid for f in fills] == [1, 2]
    assert [f.tid for f in ex.fetch_fills((T_START + 60) * 1000)] == [2]


def test_same_events_same_fills() -> None:
    def script() -> list[Any]:
        ex, clock = make(rate="0.00003")
        ex.place_order(order("buy", "0.01", "99500"))
        ex.place_order(order("sell", "0.2", "3010", "Gtc", symbol=ETH))
        for k, p in enumerate([99_600, 99_400, 99_700, 101_000, 98_000]):
            clock.set(T_START + 300 * k)
            ex.on_price(BTC, p)
            ex.on_price(ETH, 3_000 + k * 5)
        return [*ex.fetch_fills(0), *ex.ledger(), ex.fetch_account()]

    assert script() == script()


def test_clearinghouse_state_has_hyperliquids_shape() -> None:
    cassette = require_shared_fixture("hyperliquid-sdk-cassettes", "test_get_user_state.yaml")
    recorded = json.loads(
        yaml.safe_load(cassette.read_text())["interactions"][0]["response"]["body"]["string"]
    )
    ex, _ = make()
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    ex.place_order(order("sell", "0.5", "2999", "Ioc", symbol=ETH))
    ours = ex.fetch_account(ex.config.wallet, [""])[""]
    assert set(recorded) <= set(ours)
    assert "crossMaintenanceMarginUsed" in ours
    for key in ("marginSummary", "crossMarginSummary"):
        assert set(ours[key]) == set(recorded[key])
        assert all(isinstance(v, str) and D(v).is_finite() for v in ours[key].values())
    assert isinstance(ours["withdrawable"], str)
    assert len(ours["assetPositions"]) == 2
    want = recorded["assetPositions"][0]
    for entry in ours["assetPositions"]:
        assert set(entry) == set(want) and entry["type"] == "oneWay"
        pos, ref = entry["position"], want["position"]
        assert set(ref) <= set(pos)
        for name, value in ref.items():
            if isinstance(value, str):
                assert isinstance(pos[name], str) or (name == "liquidationPx" and pos[name] is None)
        assert set(pos["leverage"]) == set(ref["leverage"]) and isinstance(pos["leverage"]["value"], int)
        assert len(pos["maxTradeSzs"]) == 2 and all(isinstance(x, str) for x in pos["maxTradeSzs"])
    coins = [e["position"]["coin"] for e in ours["assetPositions"]]
    assert coins == ["BTC", "ETH"]
    # Σ maintenance: BTC 0.01·100 000/80 = 12.5; ETH 0.5·3 000/50 = 30.
    assert D(ours["crossMaintenanceMarginUsed"]) == D("42.5")


def test_products_and_adapter_reads() -> None:
    products = paper_products(
        [BTC, "XYZ-CL/USDC:USDC"], {"XYZ-CL/USDC:USDC": ProductMeta("XYZ-CL/USDC:USDC", 2, 10)}
    )
    assert products["XYZ-CL/USDC:USDC"].api_coin == "xyz:CL" and products[BTC].sz_decimals == 5
    with pytest.raises(ConfigError, match="DOGE/USDC:USDC"):
        paper_products([BTC, "DOGE/USDC:USDC"])
    ex, _ = make(rate="0.0001")
    assert ex.fetch_mids() == {"BTC": D(100_000), "ETH": D(3_000)}
    assert ex.fetch_funding()["BTC"] == D("0.0001")
    assert {p.symbol for p in ex.load_products()} >= {BTC, ETH}
    assert ex.place_order(order("buy", "1", "30", symbol="SOL/USDC:USDC")).error_text == (
        "No reference price for SOL/USDC:USDC."
    )
    assert ex.set_isolated_leverage(BTC, 41) is not None
    assert ex.set_isolated_leverage(BTC, 20) is None
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    assert ex.fetch_account()[""]["assetPositions"][0]["position"]["leverage"]["value"] == 20


def test_implements_the_ports() -> None:
    from ttt.ports import Clock, ExchangeAdapter

    ex, clock = make()
    assert isinstance(ex, ExchangeAdapter) and isinstance(clock, Clock)


def test_hip3_position_renders_on_its_dex_and_values_add_up() -> None:
    xyz = "XYZ-CL/USDC:USDC"
    products = paper_products([BTC, xyz], {xyz: ProductMeta(xyz, sz_decimals=2, max_leverage=10)})
    clock = SimClock(T_START)
    ex = PaperExchange(PaperConfig(products=products), clock)
    ex.on_price(BTC, 100_000)
    ex.on_price(xyz, 70)
    ex.place_order(order("buy", "0.01", "100031", "Ioc"))
    # taker sell = bid · (1 − 2 bp) = 69.993 · 0.9998 = 69.9790014
    assert ex.place_order(order("sell", "10", "69", "Ioc", symbol=xyz)).avg_price == D("69.9790014")
    ex.on_price(xyz, 69)
    states = ex.fetch_account(dexes=["", "xyz"])
    main, dex = states[""], states["xyz"]
    assert [p["position"]["coin"] for p in main["assetPositions"]] == ["BTC"]
    assert [p["position"]["coin"] for p in dex["assetPositions"]] == ["xyz:CL"]
    # the dex holds its margin (10 · 69 / 10 = 69) plus its unrealised PnL as collateral
    assert dex["assetPositions"][0]["position"]["unrealizedPnl"] == "9.790014"  # 10 · (69.9790014 − 69)
    assert D(dex["marginSummary"]["accountValue"]) == D("78.790014")
    total = D(main["marginSummary"]["accountValue"]) + D(dex["marginSummary"]["accountValue"])
    assert total == ex.account_value().quantize(
        D("0.000001"), rounding=ROUND_HALF_EVEN
    )  # six-decimal rendering per dex


def test_a_restarted_engine_never_liquidates_before_it_knows_every_held_price() -> None:
    ex, clock = make(balance=2_000)
    ex.place_order(order("buy", "0.1", "100100", "Ioc"))
    ex.place_order(order("sell", "1", "2990", "Ioc", symbol=ETH))
    restarted = PaperExchange(ex.config, clock, store=ex.store)  # same account, no prices yet
    assert restarted.on_price(BTC, D(100_000)) == []  # ETH's price is unknown: hold, no liquidation
    assert [p.symbol for p in restarted.store.positions(ex.config.wallet)] == [BTC, ETH]
    assert restarted.on_price(ETH, D(3_000)) == []
