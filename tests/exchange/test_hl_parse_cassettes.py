"""The response parser over every recorded real Hyperliquid answer, and the simulator's shapes against them.

Expected values are the recorded strings themselves: a parsed decimal must equal `Decimal(raw)` and a
count must equal the number of recorded elements, so nothing is dropped or rounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import require_shared_fixture
from ttt.adapters.exchange import hl_parse
from ttt.adapters.exchange.hl_parse import HyperliquidShapeError
from ttt.adapters.exchange.paper import PaperConfig
from ttt.adapters.market.synthetic import SyntheticSource
from ttt.api.sim_exchange.info import handle_info
from ttt.api.sim_exchange.state import SimState
from ttt.domain.orders import OrderRequest

CASSETTE_NAMES = [
    "test_delegator_history.yaml",
    "test_extra_agents.yaml",
    "test_get_all_mids.yaml",
    "test_get_candles_snapshot.yaml",
    "test_get_frontend_open_orders.yaml",
    "test_get_funding_history-1684811870000.yaml",
    "test_get_funding_history-None.yaml",
    "test_get_info.yaml",
    "test_get_l2_snapshot.yaml",
    "test_get_open_orders.yaml",
    "test_get_user_fills.yaml",
    "test_get_user_fills_by_time.yaml",
    "test_get_user_state.yaml",
    "test_historical_orders.yaml",
    "test_portfolio.yaml",
    "test_user_funding_history_with_end_time.yaml",
    "test_user_funding_history_without_end_time.yaml",
    "test_user_non_funding_ledger_updates_with_end_time.yaml",
    "test_user_non_funding_ledger_updates_without_end_time.yaml",
    "test_user_rate_limit.yaml",
    "test_user_role.yaml",
    "test_user_twap_slice_fills.yaml",
    "test_user_vault_equities.yaml",
]
# request types the adapter never sends (ledger, staking, vault and portfolio views)
NOT_READ = {
    "delegatorHistory",
    "portfolio",
    "userNonFundingLedgerUpdates",
    "userTwapSliceFills",
    "userVaultEquities",
    "userRateLimit",
    "l2Book",
}


def _interactions(name: str) -> Iterator[tuple[dict[str, Any], Any]]:
    path = require_shared_fixture("hyperliquid-sdk-cassettes", name)
    for item in yaml.safe_load(path.read_text())["interactions"]:
        yield json.loads(item["request"]["body"]), json.loads(item["response"]["body"]["string"])


def _recorded(kind: str) -> Any:
    for name in CASSETTE_NAMES:
        for request, response in _interactions(name):
            if request["type"] == kind:
                return response
    raise AssertionError(f"no cassette for {kind}")


def _check(kind: str, request: dict[str, Any], raw: Any) -> None:
    if kind in ("meta",):
        products = hl_parse.parse_meta(raw)
        assert len(products) == len(raw["universe"])
        for p, r in zip(products, raw["universe"], strict=True):
            assert (p.api_coin, p.sz_decimals, p.max_leverage) == (
                r["name"],
                r["szDecimals"],
                r["maxLeverage"],
            )
            assert p.symbol == f"{r['name']}/USDC:USDC"
    elif kind == "allMids":
        mids = hl_parse.parse_all_mids(raw)
        assert mids == {c: Decimal(v) for c, v in raw.items()}
    elif kind == "candleSnapshot":
        bars = hl_parse.parse_candles(raw, "KPEPE/USDC:USDC", now_ms=raw[-1]["T"])
        assert len(bars) == len(raw)
        for b, r in zip(bars, sorted(raw, key=lambda c: c["t"]), strict=True):
            assert (b.ts_open, b.timeframe) == (r["t"], r["i"])
            assert (b.open, b.high, b.low, b.close, b.volume) == tuple(float(r[k]) for k in "ohlcv")
        assert [b.is_final for b in bars][-1] is False and all(b.is_final for b in bars[:-1])
    elif kind in ("openOrders", "frontendOpenOrders"):
        orders = hl_parse.parse_open_orders(raw, kind=kind)
        assert len(orders) == len(raw)
        for o, r in zip(orders, raw, strict=True):
            assert (o.oid, o.price, o.size, o.timestamp) == (
                r["oid"],
                Decimal(r["limitPx"]),
                Decimal(r["sz"]),
                r["timestamp"],
            )
            assert o.side == {"B": "buy", "A": "sell"}[r["side"]]
            assert o.reduce_only == r.get("reduceOnly", False)
    elif kind == "fundingHistory":
        rates = hl_parse.parse_funding_history(raw)
        assert [(x.coin, x.time_ms, x.rate, x.premium) for x in rates] == [
            (r["coin"], r["time"], Decimal(r["fundingRate"]), Decimal(r["premium"])) for r in raw
        ]
    elif kind in ("userFills", "userFillsByTime"):
        fills = hl_parse.parse_fills(raw, kind=kind)
        assert len(fills) == len(raw) and len({f.tid for f in fills}) == len(raw)
        for f, r in zip(fills, raw, strict=True):
            assert (f.price, f.size, f.fee, f.closed_pnl) == tuple(
                Decimal(r[k]) for k in ("px", "sz", "fee", "closedPnl")
            )
            assert (f.oid, f.ts_ms, f.liquidity) == (
                r["oid"],
                r["time"],
                "taker" if r["crossed"] else "maker",
            )
            assert f.symbol == f"{r['coin']}/USDC:USDC"
    elif kind == "clearinghouseState":
        products = hl_parse.parse_meta(_recorded("meta"))
        snapshot = hl_parse.parse_account({"": raw}, products)
        assert snapshot.account_value == Decimal(raw["marginSummary"]["accountValue"])
        assert snapshot.total_margin_used == Decimal(raw["marginSummary"]["totalMarginUsed"])
        assert snapshot.withdrawable == Decimal(raw["withdrawable"])
        assert len(snapshot.positions) == len(raw["assetPositions"])
        for row, entry in zip(snapshot.positions, raw["assetPositions"], strict=True):
            p = entry["position"]
            assert (row.coin, row.size, row.entry_price) == (
                p["coin"],
                Decimal(p["szi"]),
                Decimal(p["entryPx"]),
            )
            assert (row.position_value, row.unrealized_pnl, row.margin_used) == (
                Decimal(p["positionValue"]),
                Decimal(p["unrealizedPnl"]),
                Decimal(p["marginUsed"]),
            )
            assert row.leverage == Decimal(p["leverage"]["value"])
    elif kind == "userFunding":
        payments = hl_parse.parse_user_funding(raw)
        assert [(x.coin, x.time_ms, x.usdc, x.szi, x.rate, x.hash) for x in payments] == [
            (
                r["delta"]["coin"],
                r["time"],
                Decimal(r["delta"]["usdc"]),
                Decimal(r["delta"]["szi"]),
                Decimal(r["delta"]["fundingRate"]),
                r["hash"],
            )
            for r in raw
        ]
    elif kind == "historicalOrders":
        for entry in raw:
            status = hl_parse.parse_order_status({"status": "order", "order": entry})
            assert status.oid == entry["order"]["oid"]
            expected = entry["status"]
            assert status.status == (
                "filled"
                if expected == "filled"
                else "open"
                if expected == "open"
                else "rejected"
                if expected.endswith("Rejected")
                else "canceled"
            )
    elif kind == "userRole":
        assert hl_parse.parse_user_role(raw) == (raw["role"], None)
    elif kind == "extraAgents":
        assert hl_parse.parse_extra_agents(raw) == [a["address"].lower() for a in raw]
    else:
        assert kind in NOT_READ, f"no parser check for {kind}"


@pytest.mark.parametrize("name", CASSETTE_NAMES)
def test_parser_reads_every_recorded_answer_without_loss(name: str) -> None:
    seen = 0
    for request, response in _interactions(name):
        _check(request["type"], request, response)
        seen += 1
    assert seen >= 1


def test_every_cassette_is_covered() -> None:
    folder = require_shared_fixture("hyperliquid-sdk-cassettes")
    assert sorted(p.name for p in Path(folder).glob("*.yaml")) == sorted(CASSETTE_NAMES)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: hl_parse.parse_fills([{"coin": "BTC"}]), "userFills[0]: missing key"),
        (lambda: hl_parse.parse_fills({"not": "a list"}), "userFills: expected a list"),
        (lambda: hl_parse.parse_all_mids({"BTC": "abc"}), "allMids.BTC: 'abc' is not a decimal"),
        (lambda: hl_parse.parse_place_status("success"), "unexpected order status"),
        (lambda: hl_parse.parse_place_status({"waiting": {}}), "unexpected order status"),
        (lambda: hl_parse.order_state("filledMaybe"), "unknown order status 'filledMaybe'"),
        (lambda: hl_parse.parse_order_status({"status": "weird"}), "status must be 'order' or 'unknownOid'"),
        (lambda: hl_parse.check_clearinghouse_state({"assetPositions": []}), "missing key 'marginSummary'"),
        (
            lambda: hl_parse.parse_candles(
                [{"t": 1, "T": 2, "i": "1m", "o": "1", "h": "1", "l": "1", "c": None, "v": "0"}], "X"
            ),
            "candleSnapshot[0].c",
        ),
        (
            lambda: hl_parse.parse_exchange_response({"status": "maybe"}, "order"),
            "status must be 'ok' or 'err'",
        ),
    ],
)
def test_unexpected_shapes_are_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(
        HyperliquidShapeError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        call()


def test_error_phrase_table() -> None:
    table = {
        "Post only order would have immediately matched, bbo was 1@2.": "post_only_would_cross",
        "Order could not immediately match against any resting orders. asset=0": "ioc_no_match",
        "Insufficient margin to place order. asset=4": "insufficient_margin",
        "Order must have minimum value of $10.": "below_exchange_minimum",
        "Reduce only order would increase position.": "reduce_only_violation",
        "Order has invalid size.": "invalid_size",
        "Order has zero size.": "invalid_size",
        "Price must be divisible by tick size. asset=0": "invalid_price",
        "Order price cannot be more than 80% away from the reference price": "invalid_price",
        "Duplicate cloid.": "exchange_rejected",
        "User or API Wallet 0xabc does not exist.": "exchange_rejected",
        "": "exchange_rejected",
    }
    assert {t: hl_parse.error_code(t) for t in table} == table


# --- the simulator's answers have the recorded key sets ---------------------------------------------

WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
# keys the simulator adds to 2023 recordings, each one listed in services.md §7.4 (newer API fields)
EXTRAS: dict[str, set[str]] = {
    "clearinghouseState": {"crossMaintenanceMarginUsed", "time"},
    "position": {"cumFunding", "maxLeverage"},
    "frontendOpenOrders": {"cloid"},
    "userFills": {"tid", "feeToken", "cloid"},
    "meta.universe": set(),
    "l2Book": set(),
}


@pytest.fixture(scope="module")
def busy_sim() -> SimState:
    """A simulator with a position, a resting order, fills and two funding payments."""
    start = 1_700_000_000.0
    symbols = list(PaperConfig().products)
    state = SimState(
        wallets={WALLET: Decimal(10_000)},
        source_factory=lambda: SyntheticSource(symbols, start_s=start, tick_s=60.0, warmup_bars=120),
        start_s=start,
    )
    eng = state.engine
    btc = eng.price("BTC/USDC:USDC")
    assert btc is not None
    eng.place_order(
        OrderRequest(
            "BTC/USDC:USDC", "buy", Decimal("0.01"), (btc * 2).quantize(1), "Ioc", cloid="0x" + "a" * 32
        ),
        WALLET,
    )
    eng.place_order(
        OrderRequest("ETH/USDC:USDC", "buy", Decimal("0.1"), Decimal(1000), "Alo", cloid="0x" + "b" * 32),
        WALLET,
    )
    state.approve_agent(WALLET, "0x" + "c" * 40, "bot", None)
    state.advance(2 * 3600)
    return state


def _keys_match(name: str, recorded: dict[str, Any], simulated: dict[str, Any]) -> None:
    missing = set(recorded) - set(simulated)
    extra = set(simulated) - set(recorded) - EXTRAS.get(name, set())
    assert not missing, f"{name}: simulator lacks {sorted(missing)}"
    assert not extra, f"{name}: simulator adds undocumented {sorted(extra)}"


def test_sim_user_state_has_the_recorded_shape(busy_sim: SimState) -> None:
    real = _recorded("clearinghouseState")
    sim = handle_info(busy_sim, {"type": "clearinghouseState", "user": WALLET})
    _keys_match("clearinghouseState", real, sim)
    _keys_match("marginSummary", real["marginSummary"], sim["marginSummary"])
    _keys_match("assetPosition", real["assetPositions"][0], sim["assetPositions"][0])
    _keys_match("position", real["assetPositions"][0]["position"], sim["assetPositions"][0]["position"])
    _keys_match(
        "leverage",
        real["assetPositions"][0]["position"]["leverage"],
        sim["assetPositions"][0]["position"]["leverage"],
    )


def test_sim_lists_have_the_recorded_shapes(busy_sim: SimState) -> None:
    user = {"user": WALLET}
    cases = [
        ("openOrders", {"type": "openOrders", **user}),
        ("frontendOpenOrders", {"type": "frontendOpenOrders", **user}),
        ("userFills", {"type": "userFills", **user}),
        ("userFills", {"type": "userFillsByTime", "startTime": 0, **user}),
        ("fundingHistory", {"type": "fundingHistory", "coin": "BTC", "startTime": 1_699_990_000_000}),
        (
            "candleSnapshot",
            {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1h", "startTime": 0}},
        ),
        ("extraAgents", {"type": "extraAgents", **user}),
    ]
    for name, body in cases:
        sim = handle_info(busy_sim, body)
        assert sim, f"{body['type']}: empty answer, nothing to compare"
        real_kind = "userFillsByTime" if body["type"] == "userFillsByTime" else body["type"]
        real = _recorded(real_kind)
        real_first = next(r for r in real if r.get("orderType", "Limit") == "Limit")
        _keys_match(name, real_first, sim[0])
    funding_real = _recorded("userFunding")[0]
    funding_sim = handle_info(busy_sim, {"type": "userFunding", "startTime": 0, **user})
    assert len(funding_sim) == 2
    _keys_match("userFunding", funding_real, funding_sim[0])
    _keys_match("userFunding.delta", funding_real["delta"], funding_sim[0]["delta"])


def test_sim_objects_have_the_recorded_shapes(busy_sim: SimState) -> None:
    real_meta = _recorded("meta")
    sim_meta = handle_info(busy_sim, {"type": "meta"})
    _keys_match("meta", real_meta, sim_meta)
    _keys_match("meta.universe", real_meta["universe"][0], sim_meta["universe"][0])
    book_real, book_sim = _recorded("l2Book"), handle_info(busy_sim, {"type": "l2Book", "coin": "BTC"})
    _keys_match("l2Book", book_real, book_sim)
    _keys_match("l2Book.level", book_real["levels"][0][0], book_sim["levels"][0][0])
    assert len(book_sim["levels"][0]) == len(book_sim["levels"][1]) == 5
    _keys_match(
        "userRateLimit",
        _recorded("userRateLimit"),
        handle_info(busy_sim, {"type": "userRateLimit", "user": WALLET}),
    )
    _keys_match(
        "userRole", _recorded("userRole"), handle_info(busy_sim, {"type": "userRole", "user": WALLET})
    )
    mids = handle_info(busy_sim, {"type": "allMids"})
    assert all(isinstance(v, str) and Decimal(v) > 0 for v in mids.values())
    historical = _recorded("historicalOrders")[0]
    status = handle_info(busy_sim, {"type": "orderStatus", "user": WALLET, "oid": "0x" + "b" * 32})
    _keys_match("orderStatus.order", historical, status["order"])
    _keys_match("orderStatus.order.order", historical["order"], status["order"]["order"])
    ctx = handle_info(busy_sim, {"type": "metaAndAssetCtxs"})[1][0]
    assert set(ctx) == {
        "dayNtlVlm",
        "funding",
        "impactPxs",
        "markPx",
        "midPx",
        "openInterest",
        "oraclePx",
        "premium",
        "prevDayPx",
    }


def test_sim_answers_parse_into_domain_types(busy_sim: SimState) -> None:
    fills = hl_parse.parse_fills(handle_info(busy_sim, {"type": "userFills", "user": WALLET}))
    assert [(f.symbol, f.side, f.size, f.cloid) for f in fills] == [
        ("BTC/USDC:USDC", "buy", Decimal("0.01"), "0x" + "a" * 32)
    ]
    payments = hl_parse.parse_user_funding(
        handle_info(busy_sim, {"type": "userFunding", "user": WALLET, "startTime": 0})
    )
    assert [p.szi for p in payments] == [Decimal("0.01")] * 2
    assert [p.rate for p in payments] == [Decimal("0.0000125")] * 2
    ledger = [e.amount for e in busy_sim.engine.ledger(WALLET) if e.kind == "funding"]
    assert [p.usdc for p in payments] == ledger
    products = hl_parse.parse_meta(handle_info(busy_sim, {"type": "meta"}))
    snap = hl_parse.parse_account(
        {"": handle_info(busy_sim, {"type": "clearinghouseState", "user": WALLET})}, products
    )
    assert [(r.symbol, r.size) for r in snap.positions] == [("BTC/USDC:USDC", Decimal("0.01"))]
    candles = hl_parse.parse_candles(
        handle_info(
            busy_sim, {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1h", "startTime": 0}}
        ),
        "BTC/USDC:USDC",
    )
    assert [c.ts_open % 3_600_000 for c in candles] == [0] * len(candles)
