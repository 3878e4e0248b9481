"""`POST /info` of the simulator: Hyperliquid's response shapes over the paper engine (services.md §7.4).

Numbers are decimal strings exactly where Hyperliquid uses strings (prices, sizes, money) and JSON
integers where it uses integers (oids, times, leverage), so client parsers see what they would see live.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ttt.adapters.exchange.paper import fmt_decimal
from ttt.adapters.exchange.paper_store import PaperOrder
from ttt.adapters.market.files import timeframe_ms
from ttt.api.sim_exchange.state import SimState
from ttt.domain.orders import Fill, ProductMeta
from ttt.domain.rounding import round_price
from ttt.errors import DataError

MAX_FILLS = 2000
MAX_CANDLES = 5000
MAX_FUNDING_ROWS = 500
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")

# request weights of services.md §7.4
_LIGHT = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "exchangeStatus"}


def info_weight(kind: object) -> int:
    return 2 if kind in _LIGHT else 20


class InfoError(Exception):
    """A request Hyperliquid would refuse to deserialize: HTTP 422 with this plain text."""


def _user(body: Mapping[str, Any]) -> str:
    user = body.get("user")
    if not isinstance(user, str) or not _ADDRESS.match(user):
        raise InfoError(
            f"Failed to deserialize the JSON body into the target type: user: invalid address {user!r}"
        )
    return user.lower()


def _int_field(body: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InfoError(
            f"Failed to deserialize the JSON body into the target type: {key}: expected an integer"
        )
    return value


def _dex(body: Mapping[str, Any]) -> str:
    dex = body.get("dex") or ""
    if not isinstance(dex, str):
        raise InfoError("Failed to deserialize the JSON body into the target type: dex: expected a string")
    return dex


def _side(side: str) -> str:
    return "B" if side == "buy" else "A"


def _tx_hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


# --- market ----------------------------------------------------------------------------------------


def _universe_entry(p: ProductMeta) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": p.api_coin, "szDecimals": p.sz_decimals, "maxLeverage": p.max_leverage}
    if p.margin_mode == "isolated_only":
        entry["onlyIsolated"] = True
    return entry


def meta(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"universe": [_universe_entry(p) for p in state.universe(_dex(body))]}


def _asset_ctx(state: SimState, p: ProductMeta) -> dict[str, Any]:
    px = state.engine.price(p.symbol)
    if px is None:
        return {
            "dayNtlVlm": "0.0",
            "funding": fmt_decimal(state.funding_rate(p.symbol, state.clock.now())),
            "impactPxs": None,
            "markPx": "0.0",
            "midPx": None,
            "openInterest": "0.0",
            "oraclePx": "0.0",
            "premium": None,
            "prevDayPx": "0.0",
        }
    bid, ask = state.engine.quotes(p.symbol)
    open_interest = sum(
        (
            abs(pos.size)
            for w in state.store.wallets()
            for pos in state.store.positions(w)
            if pos.symbol == p.symbol
        ),
        Decimal(0),
    )
    return {
        "dayNtlVlm": "0.0",
        "funding": fmt_decimal(state.funding_rate(p.symbol, state.clock.now())),
        "impactPxs": [
            fmt_decimal(round_price(bid, "buy", p.sz_decimals)),
            fmt_decimal(round_price(ask, "sell", p.sz_decimals)),
        ],
        "markPx": fmt_decimal(px),
        "midPx": fmt_decimal(px),
        "openInterest": fmt_decimal(open_interest),
        "oraclePx": fmt_decimal(px),
        "premium": "0.0",
        "prevDayPx": fmt_decimal(_price_day_ago(state, p) or px),
    }


def _price_day_ago(state: SimState, p: ProductMeta) -> Decimal | None:
    if state.source is None or p.symbol not in state.source.symbols:
        return None
    bars = state.source.visible_bars(p.symbol)
    cutoff = state.sim_ms() - 86_400_000
    for i in range(len(bars)):
        if int(bars.ts_ms[i]) >= cutoff:
            return Decimal(repr(float(bars.open[i])))
    return None


def meta_and_asset_ctxs(state: SimState, body: Mapping[str, Any]) -> list[Any]:
    products = state.universe(_dex(body))
    return [{"universe": [_universe_entry(p) for p in products]}, [_asset_ctx(state, p) for p in products]]


_USDC_TOKEN = {
    "name": "USDC",
    "szDecimals": 8,
    "weiDecimals": 8,
    "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
    "isCanonical": True,
    "evmContract": None,
    "fullName": None,
}


def spot_meta(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"universe": [], "tokens": [dict(_USDC_TOKEN)]}


def spot_meta_and_asset_ctxs(state: SimState, body: Mapping[str, Any]) -> list[Any]:
    return [spot_meta(state, body), []]


def perp_dexs(state: SimState, body: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = [None]
    for dex in state.dexes():
        out.append(
            {
                "name": dex,
                "fullName": f"{dex} (simulated)",
                "deployer": "0x0000000000000000000000000000000000000000",
                "oracleUpdater": None,
                "feeRecipient": None,
                "assetToStreamingOiCap": [],
            }
        )
    return out


def all_mids(state: SimState, body: Mapping[str, Any]) -> dict[str, str]:
    return state.mids().get(_dex(body), {})


def l2_book(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    coin = body.get("coin")
    product = state.product_by_coin(coin) if isinstance(coin, str) else None
    if product is None:
        raise InfoError(
            f"Failed to deserialize the JSON body into the target type: coin: unknown coin {coin!r}"
        )
    bid, ask = state.engine.quotes(product.symbol)
    step = Decimal("0.0001")
    lot = product.lot_size
    levels: list[list[dict[str, Any]]] = [[], []]
    for k in range(5):
        for side, ref, sign in ((0, bid, -1), (1, ask, 1)):
            raw = ref * (1 + sign * step * k)
            px = round_price(raw, "buy" if side == 0 else "sell", product.sz_decimals)
            size = max(lot, (Decimal(1000) / px / lot).to_integral_value() * lot)
            levels[side].append({"px": fmt_decimal(px), "sz": fmt_decimal(size), "n": 1})
    return {"coin": product.api_coin, "levels": levels, "time": state.sim_ms()}


def candle_snapshot(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    req = body.get("req")
    if not isinstance(req, Mapping):
        raise InfoError("Failed to deserialize the JSON body into the target type: missing field `req`")
    coin, interval = req.get("coin"), req.get("interval")
    start = _int_field(req, "startTime")
    end = _int_field(req, "endTime", required=False)
    product = state.product_by_coin(coin) if isinstance(coin, str) else None
    if product is None:
        raise InfoError(
            f"Failed to deserialize the JSON body into the target type: coin: unknown coin {coin!r}"
        )
    try:
        tf = timeframe_ms(str(interval))
    except DataError as exc:
        raise InfoError(f"Failed to deserialize the JSON body into the target type: interval: {exc}") from exc
    source = state.source
    if source is None or product.symbol not in source.symbols:
        return []
    bars = source.visible_bars(product.symbol)
    base_ms = bars.tf_ms
    if tf % base_ms != 0:
        raise InfoError(f"interval {interval} is not a multiple of the simulator's {bars.timeframe} bars")
    rows: list[tuple[int, float, float, float, float, float]] = [
        (
            int(bars.ts_ms[i]),
            float(bars.open[i]),
            float(bars.high[i]),
            float(bars.low[i]),
            float(bars.close[i]),
            float(bars.volume[i]),
        )
        for i in range(len(bars))
    ]
    forming = source.forming_bar(product.symbol)
    if forming is not None and (not rows or forming.ts_open > rows[-1][0]):
        rows.append((forming.ts_open, forming.open, forming.high, forming.low, forming.close, forming.volume))
    assert start is not None
    upper = end if end is not None else state.sim_ms()
    grouped: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
    for row in rows:
        t0 = row[0] - row[0] % tf
        if t0 + tf <= start or t0 > upper:
            continue
        grouped.setdefault(t0, []).append(row)
    out = []
    for t0 in sorted(grouped)[-MAX_CANDLES:]:
        part = grouped[t0]
        out.append(
            {
                "t": t0,
                "T": t0 + tf - 1,
                "s": product.api_coin,
                "i": str(interval),
                "o": _num(part[0][1]),
                "c": _num(part[-1][4]),
                "h": _num(max(r[2] for r in part)),
                "l": _num(min(r[3] for r in part)),
                "v": _num(sum(r[5] for r in part)),
                "n": len(part),
            }
        )
    return out


def _num(x: float) -> str:
    return fmt_decimal(Decimal(repr(x)))


def funding_history(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    coin = body.get("coin")
    product = state.product_by_coin(coin) if isinstance(coin, str) else None
    if product is None:
        raise InfoError(
            f"Failed to deserialize the JSON body into the target type: coin: unknown coin {coin!r}"
        )
    start = _int_field(body, "startTime")
    end = _int_field(body, "endTime", required=False)
    assert start is not None
    upper = min(end if end is not None else state.sim_ms(), state.sim_ms())
    first_hour = -(-start // 3_600_000)
    out: list[dict[str, Any]] = []
    hour = first_hour
    while hour * 3_600_000 <= upper and len(out) < MAX_FUNDING_ROWS:
        out.append(
            {
                "coin": product.api_coin,
                "fundingRate": fmt_decimal(state.funding_rate(product.symbol, hour * 3600.0)),
                "premium": "0.0",
                "time": hour * 3_600_000,
            }
        )
        hour += 1
    return out


def exchange_status(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"specialStatuses": None, "time": state.sim_ms()}


# --- account --------------------------------------------------------------------------------------


def _empty_state(state: SimState) -> dict[str, Any]:
    summary = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
    return {
        "marginSummary": summary,
        "crossMarginSummary": dict(summary),
        "crossMaintenanceMarginUsed": "0.0",
        "withdrawable": "0.0",
        "assetPositions": [],
        "time": state.sim_ms(),
    }


def clearinghouse_state(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    user, dex = _user(body), _dex(body)
    if not state.has_account(user):
        return _empty_state(state)
    return state.engine.clearinghouse_state(user, dex)


def spot_clearinghouse_state(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    _user(body)
    return {"balances": []}


def _basic_order(state: SimState, o: PaperOrder) -> dict[str, Any]:
    return {
        "coin": state.products[o.symbol].api_coin,
        "limitPx": fmt_decimal(o.price),
        "oid": o.oid,
        "side": _side(o.side),
        "sz": fmt_decimal(o.remaining),
        "timestamp": o.created_ms,
    }


def _frontend_order(state: SimState, o: PaperOrder) -> dict[str, Any]:
    return {
        **_basic_order(state, o),
        "cloid": o.cloid,
        "origSz": fmt_decimal(o.size),
        "orderType": "Limit",
        "tif": o.tif,
        "reduceOnly": o.reduce_only,
        "isTrigger": False,
        "triggerPx": "0.0",
        "triggerCondition": "N/A",
        "isPositionTpsl": False,
        "children": [],
    }


def _open_orders_of(state: SimState, body: Mapping[str, Any]) -> list[PaperOrder]:
    user, dex = _user(body), _dex(body)
    return [
        o
        for o in state.store.open_orders(wallet=user)
        if (
            state.products[o.symbol].api_coin.split(":", 1)[0]
            if ":" in state.products[o.symbol].api_coin
            else ""
        )
        == dex
    ]


def open_orders(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_basic_order(state, o) for o in reversed(_open_orders_of(state, body))]


def frontend_open_orders(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_frontend_order(state, o) for o in reversed(_open_orders_of(state, body))]


def order_status(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    user = _user(body)
    ref = body.get("oid")
    order: PaperOrder | None
    if isinstance(ref, str) and _CLOID.match(ref):
        order = state.store.order_by_cloid(user, ref.lower())
    elif isinstance(ref, int) and not isinstance(ref, bool):
        order = state.store.order_by_oid(user, ref)
    else:
        raise InfoError(
            "Failed to deserialize the JSON body into the target type: oid: expected an integer or a cloid"
        )
    if order is None:
        return {"status": "unknownOid"}
    return {
        "status": "order",
        "order": {
            "order": _frontend_order(state, order),
            "status": order.status,
            "statusTimestamp": order.closed_ms if order.closed_ms is not None else order.created_ms,
        },
    }


def _fill_rows(state: SimState, wallet: str) -> list[dict[str, Any]]:
    """Every fill of the wallet, oldest first, with the start position and direction Hyperliquid shows;
    positions only change through fills, so the running sum of signed fill sizes is the position."""
    running: dict[str, Decimal] = {}
    rows = []
    fills: list[Fill] = state.store.trades(wallet, 0)
    for f in fills:
        coin = state.products[f.symbol].api_coin
        start = running.get(coin, Decimal(0))
        signed = f.size if f.side == "buy" else -f.size
        end = start + signed
        running[coin] = end
        row: dict[str, Any] = {
            "coin": coin,
            "px": fmt_decimal(f.price),
            "sz": fmt_decimal(f.size),
            "side": _side(f.side),
            "time": f.ts_ms,
            "startPosition": fmt_decimal(start),
            "dir": _direction(start, end),
            "closedPnl": fmt_decimal(f.closed_pnl),
            "hash": _tx_hash(wallet, f.tid),
            "oid": f.oid,
            "crossed": f.liquidity == "taker",
            "fee": fmt_decimal(f.fee),
            "tid": f.tid,
            "feeToken": f.fee_token,
        }
        if f.cloid is not None:
            row["cloid"] = f.cloid
        rows.append(row)
    return rows


def _direction(start: Decimal, end: Decimal) -> str:
    if start >= 0 and end >= 0:
        return "Open Long" if end > start else "Close Long"
    if start <= 0 and end <= 0:
        return "Open Short" if end < start else "Close Short"
    return "Long > Short" if start > 0 else "Short > Long"


def user_fills(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    wallet = _user(body)
    return list(reversed(_fill_rows(state, wallet)))[:MAX_FILLS]


def user_fills_by_time(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    wallet = _user(body)
    start = _int_field(body, "startTime")
    end = _int_field(body, "endTime", required=False)
    assert start is not None
    rows = [r for r in _fill_rows(state, wallet) if r["time"] >= start and (end is None or r["time"] <= end)]
    return list(reversed(rows))[:MAX_FILLS]


def user_funding(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    wallet = _user(body)
    start = _int_field(body, "startTime")
    end = _int_field(body, "endTime", required=False)
    assert start is not None
    out = []
    for ev in state.store.funding_events:
        if ev.wallet != wallet or ev.time_ms < start or (end is not None and ev.time_ms > end):
            continue
        out.append(
            {
                "time": ev.time_ms,
                "hash": _tx_hash(wallet, "funding", ev.coin, ev.time_ms),
                "delta": {
                    "type": "funding",
                    "coin": ev.coin,
                    "usdc": fmt_decimal(ev.usdc),
                    "szi": fmt_decimal(ev.szi),
                    "fundingRate": fmt_decimal(ev.rate),
                    "nSamples": None,
                },
            }
        )
    return out[:MAX_FILLS]


def user_fees(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    _user(body)
    cfg = state.engine.config
    return {
        "dailyUserVlm": [],
        "feeSchedule": {"cross": fmt_decimal(cfg.taker_fee), "add": fmt_decimal(cfg.maker_fee), "tiers": {}},
        "userCrossRate": fmt_decimal(cfg.taker_fee),
        "userAddRate": fmt_decimal(cfg.maker_fee),
        "activeReferralDiscount": "0.0",
    }


def user_rate_limit(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    wallet = _user(body)
    volume = sum((f.price * f.size for f in state.store.trades(wallet, 0)), Decimal(0))
    return {
        "cumVlm": fmt_decimal(volume),
        "nRequestsUsed": state.requests_by_wallet[wallet],
        "nRequestsCap": 10_000 + int(volume),
    }


def user_role(state: SimState, body: Mapping[str, Any]) -> dict[str, Any]:
    address = _user(body)
    if state.is_wallet(address) or state.has_account(address):
        return {"role": "user"}
    agent = state.agents.get(address)
    if agent is not None:
        return {"role": "agent", "data": {"user": agent.wallet}}
    return {"role": "missing"}


def extra_agents(state: SimState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    wallet = _user(body)
    return [
        {"name": a.name, "address": address, "validUntil": a.valid_until}
        for address, a in state.agents.items()
        if a.wallet == wallet
    ]


def user_abstraction(state: SimState, body: Mapping[str, Any]) -> str:
    _user(body)
    return "default"


HANDLERS: dict[str, Callable[[SimState, Mapping[str, Any]], Any]] = {
    "meta": meta,
    "metaAndAssetCtxs": meta_and_asset_ctxs,
    "spotMeta": spot_meta,
    "spotMetaAndAssetCtxs": spot_meta_and_asset_ctxs,
    "perpDexs": perp_dexs,
    "allMids": all_mids,
    "clearinghouseState": clearinghouse_state,
    "spotClearinghouseState": spot_clearinghouse_state,
    "openOrders": open_orders,
    "frontendOpenOrders": frontend_open_orders,
    "orderStatus": order_status,
    "userFills": user_fills,
    "userFillsByTime": user_fills_by_time,
    "userFunding": user_funding,
    "fundingHistory": funding_history,
    "candleSnapshot": candle_snapshot,
    "l2Book": l2_book,
    "userFees": user_fees,
    "exchangeStatus": exchange_status,
    "userRateLimit": user_rate_limit,
    # not in the §7.4 table, but the adapter's credential check and ccxt's start-up ask for them
    "userRole": user_role,
    "extraAgents": extra_agents,
    "userAbstraction": user_abstraction,
}


def handle_info(state: SimState, body: Any) -> Any:
    """The answer for one /info body; raises InfoError for what Hyperliquid answers with 422."""
    if not isinstance(body, Mapping):
        raise InfoError("Failed to deserialize the JSON body into the target type: expected an object")
    kind = body.get("type")
    handler = HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        raise InfoError(f"Failed to deserialize the JSON body into the target type: unknown variant `{kind}`")
    with state.lock:
        state.run_dead_man()
        return handler(state, body)
