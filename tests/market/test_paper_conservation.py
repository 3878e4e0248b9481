"""Property: the paper account reconciles exactly, in Decimal, after any sequence of orders, price moves,
cancels and hours passing (including liquidations).

What is conserved, checked after every step:
  cash           = deposits − fees − funding + realised PnL                 (= Σ ledger amounts)
  account value  = deposits − fees − funding + realised PnL + unrealised PnL
  account value  = deposits − fees − funding + Σ fills (−signed size · price) + Σ net size · P
where fees are recomputed from each fill (size · price · maker/taker rate), net size is the signed sum of
the fills (and must equal the engine's position), unrealised PnL is size · P − cost basis, and the
account value is the engine's exact one (`clearinghouseState` renders it at Hyperliquid's six decimals).
The last line is the mark-to-market identity and does not use the engine's entry prices at all.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, localcontext
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ttt.adapters.exchange.paper import PaperConfig, PaperExchange
from ttt.adapters.market.replay import SimClock
from ttt.domain.orders import OrderRequest

BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
LOT = {BTC: D("0.001"), ETH: D("0.01")}  # multiples of the product lots (0.00001, 0.0001)

price_move = st.tuples(st.just("price"), st.sampled_from([BTC, ETH]), st.integers(-900, 900))
new_order = st.tuples(
    st.just("order"),
    st.sampled_from([BTC, ETH]),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 250),
    st.sampled_from(["Alo", "Ioc", "Gtc"]),
    st.integers(-40, 80),
    st.sampled_from([False, False, False, True]),
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 5))
time_passes = st.tuples(st.just("time"), st.integers(1, 5400))
actions = st.lists(
    st.one_of(new_order, price_move, new_order, price_move, cancel, time_passes), min_size=8, max_size=60
)


def rate(symbol: str, at_s: float) -> D:
    hour = int(at_s // 3600)
    return D((hour * 7 + len(symbol)) % 9 - 4) * D("0.00001")


def check(ex: PaperExchange, config: PaperConfig) -> None:
    wallet = config.wallet
    fills = ex.fetch_fills(0)
    ledger = ex.ledger()
    deposits = sum((r.amount for r in ledger if r.kind == "deposit"), D(0))
    funding = -sum((r.amount for r in ledger if r.kind == "funding"), D(0))
    fees = D(0)
    for f in fills:
        fee_rate = config.maker_fee if f.liquidity == "maker" else config.taker_fee
        assert f.fee == f.size * f.price * fee_rate
        fees += f.fee
    realised = sum((f.closed_pnl for f in fills), D(0))
    cash_flows = sum((-(f.size if f.side == "buy" else -f.size) * f.price for f in fills), D(0))
    net: dict[str, D] = {}
    for f in fills:
        net[f.symbol] = net.get(f.symbol, D(0)) + (f.size if f.side == "buy" else -f.size)
    positions = {p.symbol: p for p in ex.store.positions(wallet)}
    assert {s: n for s, n in net.items() if n != 0} == {s: p.size for s, p in positions.items()}
    prices = {s: ex.price(s) for s in net}
    unrealised = sum((p.size * prices[s] - p.cost for s, p in positions.items()), D(0))  # type: ignore[operator]
    marked = sum((n * prices[s] for s, n in net.items()), D(0))  # type: ignore[operator]
    cash = ex.store.cash(wallet)
    assert cash == sum((r.amount for r in ledger), D(0))
    assert cash == deposits - fees - funding + realised
    account_value = ex.account_value(wallet)
    rendered = D(ex.fetch_account()[""]["marginSummary"]["accountValue"])
    assert rendered == account_value.quantize(
        D("0.000001"), rounding=ROUND_HALF_EVEN
    )  # Hyperliquid's six-decimal USD rendering
    assert account_value == deposits - fees - funding + realised + unrealised
    assert account_value == deposits - fees - funding + cash_flows + marked


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
@example(  # a leveraged long, a flip, funding hours, then a crash that liquidates
    [
        ("order", BTC, "buy", 190, "Ioc", 10, False),
        ("order", BTC, "sell", 10, "Alo", 50, False),
        ("price", BTC, 60),
        ("order", BTC, "sell", 20, "Gtc", -10, False),
        ("time", 5400),
        ("order", ETH, "sell", 10, "Alo", 20, False),
        ("price", ETH, 30),
        ("price", BTC, -900),
        ("price", BTC, -900),
    ]
)
def test_account_value_reconciles_exactly(steps: list[tuple[Any, ...]]) -> None:
    clock = SimClock(1_000 * 3600 - 1_800)
    config = PaperConfig(initial_balance_usd=D(2_000))
    ex = PaperExchange(config, clock, funding_rate=rate)
    prices = {BTC: D(100_000), ETH: D(3_000)}
    with localcontext() as ctx:
        ctx.prec = 60
        for symbol, p in prices.items():
            ex.on_price(symbol, p)
        check(ex, config)
        for step in steps:
            kind = step[0]
            if kind == "price":
                _, symbol, bps = step
                prices[symbol] = max(D(1), (prices[symbol] * (1 + D(bps) / 10_000)).to_integral_value())
                ex.on_price(symbol, prices[symbol])
            elif kind == "order":
                _, symbol, side, lots, tif, offset_bps, reduce_only = step
                limit = max(D(1), (prices[symbol] * (1 + D(offset_bps) / 10_000)).to_integral_value())
                request = OrderRequest(symbol, side, lots * LOT[symbol], limit, tif, reduce_only)
                result = ex.place_order(request)
                assert result.status in ("resting", "filled", "error")
            elif kind == "cancel":
                open_orders = ex.fetch_open_orders()
                if open_orders:
                    target = open_orders[step[1] % len(open_orders)]
                    assert ex.cancel(target.symbol, oids=[target.oid]) == {str(target.oid): "success"}
            else:
                clock.set(clock.now() + step[1])
                ex.on_clock()
            check(ex, config)
