"""Hyperliquid JSON → domain types, for every response the adapter reads (services.md §7.3).

Each parser checks the shape it relies on and raises `HyperliquidShapeError` naming the request type,
the element and the key, so a changed API shows up as one clear message instead of a KeyError deep in a
service. Decimal strings stay exact (`Decimal`), and no text is ever taken as success: an order status
that is neither `resting`, `filled` nor `error` is an error of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ttt.domain.balances import AccountSnapshot, Product, RejectedSnapshot, validate_account
from ttt.domain.orders import (
    Bar,
    Fill,
    OpenOrder,
    OrderState,
    OrderStatus,
    PlaceResult,
    ProductMeta,
    Side,
)
from ttt.errors import TTTError

QUOTE = "USDC"


class HyperliquidShapeError(TTTError):
    """A Hyperliquid answer that does not have the shape the parser relies on."""


# --- error phrases (portfolio.md §11.4) -------------------------------------------------------------

ERROR_PHRASES: tuple[tuple[str, str], ...] = (
    ("Post only order would have immediately matched", "post_only_would_cross"),
    ("Order could not immediately match", "ioc_no_match"),
    ("Insufficient margin", "insufficient_margin"),
    ("minimum value of $10", "below_exchange_minimum"),
    ("Reduce only order would increase position", "reduce_only_violation"),
    ("invalid size", "invalid_size"),
    ("zero size", "invalid_size"),
    ("divisible by tick size", "invalid_price"),
    ("80% away from the reference price", "invalid_price"),
)


def error_code(text: str | None) -> str:
    """The gateway's code for an exchange error text; anything unmatched is `exchange_rejected`."""
    if text:
        for phrase, code in ERROR_PHRASES:
            if phrase in text:
                return code
    return "exchange_rejected"


# --- small helpers ----------------------------------------------------------------------------------


def _where(kind: str, path: str) -> str:
    return f"{kind}{path}"


def dec(value: Any, kind: str, path: str) -> Decimal:
    """A finite decimal from a Hyperliquid decimal string (or JSON number)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise HyperliquidShapeError(f"{_where(kind, path)}: expected a decimal string, got {value!r}")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise HyperliquidShapeError(f"{_where(kind, path)}: {value!r} is not a decimal") from None
    if not d.is_finite():
        raise HyperliquidShapeError(f"{_where(kind, path)}: {value!r} is not finite")
    return d


def opt_dec(value: Any, kind: str, path: str) -> Decimal | None:
    return None if value is None else dec(value, kind, path)


def integer(value: Any, kind: str, path: str) -> int:
    if isinstance(value, bool):
        raise HyperliquidShapeError(f"{_where(kind, path)}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise HyperliquidShapeError(f"{_where(kind, path)}: expected an integer, got {value!r}")


def obj(value: Any, kind: str, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise HyperliquidShapeError(f"{_where(kind, path)}: expected an object, got {type(value).__name__}")
    return value


def arr(value: Any, kind: str, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise HyperliquidShapeError(f"{_where(kind, path)}: expected a list, got {type(value).__name__}")
    return value


def field(o: Mapping[str, Any], key: str, kind: str, path: str) -> Any:
    if key not in o:
        raise HyperliquidShapeError(f"{_where(kind, path)}: missing key {key!r}")
    return o[key]


def text(value: Any, kind: str, path: str) -> str:
    if not isinstance(value, str):
        raise HyperliquidShapeError(f"{_where(kind, path)}: expected a string, got {value!r}")
    return value


def side_of(value: Any, kind: str, path: str) -> Side:
    if value == "B":
        return "buy"
    if value == "A":
        return "sell"
    raise HyperliquidShapeError(f"{_where(kind, path)}: side must be 'B' or 'A', got {value!r}")


def symbol_for_coin(coin: str, products: Mapping[str, str] | None = None) -> str:
    """The CCXT symbol of an exchange coin: the product whose api coin it is, else the derived name
    (`BTC` → `BTC/USDC:USDC`, `xyz:CL` → `XYZ-CL/USDC:USDC`)."""
    if products:
        for symbol, api_coin in products.items():
            if api_coin == coin:
                return symbol
    if ":" in coin:
        dex, rest = coin.split(":", 1)
        return f"{dex.upper()}-{rest}/{QUOTE}:{QUOTE}"
    return f"{coin}/{QUOTE}:{QUOTE}"


# --- market metadata ------------------------------------------------------------------------------


def parse_meta(meta: Any, dex: str = "", kind: str = "meta") -> list[ProductMeta]:
    """Products of one dex; asset ids follow the universe order (HIP-3 dex k: 100000 + k·10000 + i, with
    `dex_index` supplied by the caller through `parse_meta_for_dex`)."""
    return parse_meta_for_dex(meta, dex, 0, kind)


def parse_meta_for_dex(meta: Any, dex: str, dex_index: int, kind: str = "meta") -> list[ProductMeta]:
    universe = arr(field(obj(meta, kind, ""), "universe", kind, ""), kind, ".universe")
    out = []
    for i, raw in enumerate(universe):
        where = f".universe[{i}]"
        entry = obj(raw, kind, where)
        coin = text(field(entry, "name", kind, where), kind, where + ".name")
        isolated = entry.get("onlyIsolated") is True
        hip3 = ":" in coin
        out.append(
            ProductMeta(
                symbol=symbol_for_coin(coin),
                sz_decimals=integer(field(entry, "szDecimals", kind, where), kind, where + ".szDecimals"),
                max_leverage=integer(field(entry, "maxLeverage", kind, where), kind, where + ".maxLeverage"),
                margin_mode="isolated_only" if isolated or hip3 else "cross",
                api_coin=coin,
                asset_id=i if dex == "" else 100_000 + dex_index * 10_000 + i,
                product_type="HIP3_PERP" if hip3 else "PERP",
            )
        )
    return out


def parse_meta_and_ctxs(
    response: Any, dex: str = "", dex_index: int = 0
) -> tuple[list[ProductMeta], dict[str, Decimal]]:
    """(products, {coin: hourly funding rate}) from `metaAndAssetCtxs`."""
    kind = "metaAndAssetCtxs"
    pair = arr(response, kind, "")
    if len(pair) != 2:
        raise HyperliquidShapeError(f"{kind}: expected [meta, contexts], got {len(pair)} elements")
    products = parse_meta_for_dex(pair[0], dex, dex_index, kind)
    ctxs = arr(pair[1], kind, "[1]")
    if len(ctxs) != len(products):
        raise HyperliquidShapeError(f"{kind}: {len(products)} products but {len(ctxs)} asset contexts")
    funding = {
        p.api_coin: dec(
            field(obj(c, kind, f"[1][{i}]"), "funding", kind, f"[1][{i}]"), kind, f"[1][{i}].funding"
        )
        for i, (p, c) in enumerate(zip(products, ctxs, strict=True))
    }
    return products, funding


def parse_all_mids(response: Any) -> dict[str, Decimal]:
    mids = obj(response, "allMids", "")
    return {str(coin): dec(px, "allMids", f".{coin}") for coin, px in mids.items()}


# --- account --------------------------------------------------------------------------------------


_STATE_KEYS = ("marginSummary", "crossMarginSummary", "assetPositions", "withdrawable")


def check_clearinghouse_state(state: Any, dex: str = "") -> Mapping[str, Any]:
    """The raw state after a shape check; the ingestion keeps it verbatim (portfolio.md §2)."""
    kind = "clearinghouseState" + (f"[{dex}]" if dex else "")
    o = obj(state, kind, "")
    for key in _STATE_KEYS:
        field(o, key, kind, "")
    for key in ("accountValue", "totalMarginUsed", "totalNtlPos", "totalRawUsd"):
        dec(
            field(obj(o["marginSummary"], kind, ".marginSummary"), key, kind, ".marginSummary"),
            kind,
            f".marginSummary.{key}",
        )
    for i, entry in enumerate(arr(o["assetPositions"], kind, ".assetPositions")):
        pos = obj(
            field(obj(entry, kind, f".assetPositions[{i}]"), "position", kind, f".assetPositions[{i}]"),
            kind,
            f".assetPositions[{i}].position",
        )
        text(
            field(pos, "coin", kind, f".assetPositions[{i}].position"),
            kind,
            f".assetPositions[{i}].position.coin",
        )
        dec(
            field(pos, "szi", kind, f".assetPositions[{i}].position"),
            kind,
            f".assetPositions[{i}].position.szi",
        )
    return o


def parse_account(
    states: Mapping[str, Any], products: Sequence[ProductMeta], requested: Sequence[str] | None = None
) -> AccountSnapshot:
    """Positions and balances of the per-dex states through the snapshot rules of portfolio.md §2.2."""
    for dex, state in states.items():
        if state is not None:
            check_clearinghouse_state(state, dex)
    rows = [Product(p.symbol, p.api_coin, p.sz_decimals) for p in products]
    result = validate_account(states, list(requested if requested is not None else states), rows)
    if isinstance(result, RejectedSnapshot):
        raise HyperliquidShapeError("clearinghouseState rejected: " + "; ".join(result.problems))
    return result


# --- orders ---------------------------------------------------------------------------------------


def parse_open_orders(
    response: Any, products: Mapping[str, str] | None = None, kind: str = "frontendOpenOrders"
) -> list[OpenOrder]:
    out = []
    for i, raw in enumerate(arr(response, kind, "")):
        where = f"[{i}]"
        o = obj(raw, kind, where)
        coin = text(field(o, "coin", kind, where), kind, where + ".coin")
        cloid = o.get("cloid")
        out.append(
            OpenOrder(
                oid=integer(field(o, "oid", kind, where), kind, where + ".oid"),
                cloid=cloid.lower() if isinstance(cloid, str) else None,
                symbol=symbol_for_coin(coin, products),
                side=side_of(field(o, "side", kind, where), kind, where + ".side"),
                price=dec(field(o, "limitPx", kind, where), kind, where + ".limitPx"),
                size=dec(field(o, "sz", kind, where), kind, where + ".sz"),
                reduce_only=o.get("reduceOnly") is True,
                timestamp=integer(field(o, "timestamp", kind, where), kind, where + ".timestamp"),
            )
        )
    return out


_CANCELED = {
    "canceled",
    "marginCanceled",
    "vaultWithdrawalCanceled",
    "openInterestCapCanceled",
    "selfTradeCanceled",
    "reduceOnlyCanceled",
    "siblingFilledCanceled",
    "delistedCanceled",
    "liquidatedCanceled",
    "scheduledCancel",
    "outcomeSettledCanceled",
}


def order_state(status: str) -> OrderState:
    """Hyperliquid's order status word → ours; an unknown word is a shape error, never success."""
    if status in ("open", "triggered"):
        return "open"
    if status == "filled":
        return "filled"
    if status in _CANCELED:
        return "canceled"
    if status == "rejected" or status.endswith("Rejected"):
        return "rejected"
    raise HyperliquidShapeError(f"orderStatus: unknown order status {status!r}")


def parse_order_status(response: Any, products: Mapping[str, str] | None = None) -> OrderStatus:
    kind = "orderStatus"
    o = obj(response, kind, "")
    status = field(o, "status", kind, "")
    if status == "unknownOid":
        return OrderStatus("unknown")
    if status != "order":
        raise HyperliquidShapeError(f"{kind}: status must be 'order' or 'unknownOid', got {status!r}")
    wrapper = obj(field(o, "order", kind, ""), kind, ".order")
    order = obj(field(wrapper, "order", kind, ".order"), kind, ".order.order")
    state = order_state(text(field(wrapper, "status", kind, ".order"), kind, ".order.status"))
    orig = dec(field(order, "origSz", kind, ".order.order"), kind, ".order.order.origSz")
    remaining = dec(field(order, "sz", kind, ".order.order"), kind, ".order.order.sz")
    cloid = order.get("cloid")
    coin = text(field(order, "coin", kind, ".order.order"), kind, ".order.order.coin")
    return OrderStatus(
        state,
        oid=integer(field(order, "oid", kind, ".order.order"), kind, ".order.order.oid"),
        cloid=cloid.lower() if isinstance(cloid, str) else None,
        symbol=symbol_for_coin(coin, products),
        filled_size=orig - remaining if state != "rejected" else Decimal(0),
    )


def parse_place_status(status: Any, where: str = "order") -> PlaceResult:
    """One entry of `response.data.statuses` of an order action."""
    if isinstance(status, Mapping):
        if "error" in status:
            return PlaceResult("error", error_text=text(status["error"], where, ".error"))
        if "resting" in status:
            resting = obj(status["resting"], where, ".resting")
            return PlaceResult(
                "resting", oid=integer(field(resting, "oid", where, ".resting"), where, ".resting.oid")
            )
        if "filled" in status:
            filled = obj(status["filled"], where, ".filled")
            return PlaceResult(
                "filled",
                oid=integer(field(filled, "oid", where, ".filled"), where, ".filled.oid"),
                filled_size=dec(field(filled, "totalSz", where, ".filled"), where, ".filled.totalSz"),
                avg_price=dec(field(filled, "avgPx", where, ".filled"), where, ".filled.avgPx"),
            )
    raise HyperliquidShapeError(f"{where}: unexpected order status {status!r}")


def parse_exchange_response(response: Any, kind: str) -> list[Any]:
    """`statuses` of an ok answer; a top-level error is returned as one `{"error": text}` status so that
    every order of the batch is rejected with the exchange's words."""
    o = obj(response, kind, "")
    status = field(o, "status", kind, "")
    if status == "err":
        return [{"error": str(o.get("response"))}]
    if status != "ok":
        raise HyperliquidShapeError(f"{kind}: status must be 'ok' or 'err', got {status!r}")
    inner = obj(field(o, "response", kind, ""), kind, ".response")
    data = obj(field(inner, "data", kind, ".response"), kind, ".response.data")
    return arr(field(data, "statuses", kind, ".response.data"), kind, ".response.data.statuses")


def parse_cancel_status(status: Any) -> str:
    """`success` or the error text."""
    if status == "success":
        return "success"
    if isinstance(status, Mapping) and isinstance(status.get("error"), str):
        return str(status["error"])
    raise HyperliquidShapeError(f"cancel: unexpected status {status!r}")


# --- fills, candles, funding -----------------------------------------------------------------------


def _derived_tid(f: Mapping[str, Any]) -> int:
    """Older answers carry no `tid`: a stable 63-bit id from the fields that identify the fill."""
    key = "|".join(str(f.get(k)) for k in ("hash", "oid", "time", "px", "sz", "startPosition", "side"))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def parse_fills(
    response: Any, products: Mapping[str, str] | None = None, kind: str = "userFills"
) -> list[Fill]:
    out = []
    for i, raw in enumerate(arr(response, kind, "")):
        where = f"[{i}]"
        f = obj(raw, kind, where)
        coin = text(field(f, "coin", kind, where), kind, where + ".coin")
        crossed = field(f, "crossed", kind, where)
        if not isinstance(crossed, bool):
            raise HyperliquidShapeError(f"{kind}{where}.crossed: expected a boolean, got {crossed!r}")
        cloid = f.get("cloid")
        tid = f.get("tid")
        out.append(
            Fill(
                tid=integer(tid, kind, where + ".tid") if tid is not None else _derived_tid(f),
                oid=integer(field(f, "oid", kind, where), kind, where + ".oid"),
                cloid=cloid.lower() if isinstance(cloid, str) else None,
                symbol=symbol_for_coin(coin, products),
                side=side_of(field(f, "side", kind, where), kind, where + ".side"),
                price=dec(field(f, "px", kind, where), kind, where + ".px"),
                size=dec(field(f, "sz", kind, where), kind, where + ".sz"),
                fee=dec(field(f, "fee", kind, where), kind, where + ".fee"),
                liquidity="taker" if crossed else "maker",
                closed_pnl=dec(field(f, "closedPnl", kind, where), kind, where + ".closedPnl"),
                ts_ms=integer(field(f, "time", kind, where), kind, where + ".time"),
                fee_token=str(f.get("feeToken") or QUOTE),
                liquidation=f.get("liquidation") is not None,
            )
        )
    return out


def parse_candles(response: Any, symbol: str, now_ms: int | None = None) -> list[Bar]:
    """Bars in ascending open time; a bar is final once its close time `T` has passed `now_ms`."""
    kind = "candleSnapshot"
    out = []
    for i, raw in enumerate(arr(response, kind, "")):
        where = f"[{i}]"
        c = obj(raw, kind, where)
        close_ms = integer(field(c, "T", kind, where), kind, where + ".T")
        out.append(
            Bar(
                symbol=symbol,
                timeframe=text(field(c, "i", kind, where), kind, where + ".i"),
                ts_open=integer(field(c, "t", kind, where), kind, where + ".t"),
                open=float(dec(field(c, "o", kind, where), kind, where + ".o")),
                high=float(dec(field(c, "h", kind, where), kind, where + ".h")),
                low=float(dec(field(c, "l", kind, where), kind, where + ".l")),
                close=float(dec(field(c, "c", kind, where), kind, where + ".c")),
                volume=float(dec(field(c, "v", kind, where), kind, where + ".v")),
                is_final=now_ms is None or close_ms < now_ms,
            )
        )
    out.sort(key=lambda b: b.ts_open)
    return out


@dataclass(frozen=True)
class FundingRate:
    coin: str
    time_ms: int
    rate: Decimal
    premium: Decimal | None


@dataclass(frozen=True)
class FundingPayment:
    coin: str
    time_ms: int
    usdc: Decimal
    szi: Decimal
    rate: Decimal
    hash: str


def parse_funding_history(response: Any) -> list[FundingRate]:
    kind = "fundingHistory"
    out = []
    for i, raw in enumerate(arr(response, kind, "")):
        where = f"[{i}]"
        r = obj(raw, kind, where)
        out.append(
            FundingRate(
                coin=text(field(r, "coin", kind, where), kind, where + ".coin"),
                time_ms=integer(field(r, "time", kind, where), kind, where + ".time"),
                rate=dec(field(r, "fundingRate", kind, where), kind, where + ".fundingRate"),
                premium=opt_dec(r.get("premium"), kind, where + ".premium"),
            )
        )
    return out


def parse_user_funding(response: Any) -> list[FundingPayment]:
    kind = "userFunding"
    out = []
    for i, raw in enumerate(arr(response, kind, "")):
        where = f"[{i}]"
        r = obj(raw, kind, where)
        delta = obj(field(r, "delta", kind, where), kind, where + ".delta")
        if delta.get("type") != "funding":
            raise HyperliquidShapeError(
                f"{kind}{where}.delta.type: expected 'funding', got {delta.get('type')!r}"
            )
        out.append(
            FundingPayment(
                coin=text(field(delta, "coin", kind, where + ".delta"), kind, where + ".delta.coin"),
                time_ms=integer(field(r, "time", kind, where), kind, where + ".time"),
                usdc=dec(field(delta, "usdc", kind, where + ".delta"), kind, where + ".delta.usdc"),
                szi=dec(field(delta, "szi", kind, where + ".delta"), kind, where + ".delta.szi"),
                rate=dec(
                    field(delta, "fundingRate", kind, where + ".delta"), kind, where + ".delta.fundingRate"
                ),
                hash=text(field(r, "hash", kind, where), kind, where + ".hash"),
            )
        )
    return out


# --- identities -----------------------------------------------------------------------------------


def parse_user_role(response: Any) -> tuple[str, str | None]:
    """(role, master wallet for an agent)."""
    o = obj(response, "userRole", "")
    role = text(field(o, "role", "userRole", ""), "userRole", ".role")
    data = o.get("data")
    user = data.get("user") if isinstance(data, Mapping) else None
    return role, user.lower() if isinstance(user, str) else None


def parse_extra_agents(response: Any) -> list[str]:
    return [
        text(
            field(obj(a, "extraAgents", f"[{i}]"), "address", "extraAgents", f"[{i}]"),
            "extraAgents",
            f"[{i}].address",
        ).lower()
        for i, a in enumerate(arr(response, "extraAgents", ""))
    ]


__all__ = [
    "ERROR_PHRASES",
    "FundingPayment",
    "FundingRate",
    "HyperliquidShapeError",
    "check_clearinghouse_state",
    "error_code",
    "order_state",
    "parse_account",
    "parse_all_mids",
    "parse_cancel_status",
    "parse_candles",
    "parse_exchange_response",
    "parse_extra_agents",
    "parse_fills",
    "parse_funding_history",
    "parse_meta",
    "parse_meta_and_ctxs",
    "parse_meta_for_dex",
    "parse_open_orders",
    "parse_order_status",
    "parse_place_status",
    "parse_user_funding",
    "parse_user_role",
    "symbol_for_coin",
]
