"""`POST /exchange` of the simulator: signature, nonce and the action table of services.md §7.4.

Forbidden actions (builder-fee approval, referrer, dex abstraction, orders with a builder) are counted
the moment they arrive, before any check, because the end-to-end test asserts that none ever does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ttt.adapters.exchange.paper import fmt_decimal
from ttt.api.sim_exchange.signing import (
    USER_SIGNED,
    SignatureError,
    recover_l1_signer,
    recover_user_signer,
)
from ttt.api.sim_exchange.state import SimSettings, SimState
from ttt.domain.orders import OrderRequest, Side, TimeInForce

FORBIDDEN = ("approveBuilderFee", "setReferrer", "userDexAbstraction")
SUPPORTED = (
    "order",
    "cancel",
    "cancelByCloid",
    "updateLeverage",
    "updateIsolatedMargin",
    "scheduleCancel",
    "approveAgent",
    "noop",
    *FORBIDDEN,
)
ERR_TRIGGER = "Trigger orders are not supported by the simulator."
ERR_CANCEL_MISSING = "Order was never placed, already canceled, or filled."
ERR_FORBIDDEN = "forbidden action in simulator"
_CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")
_ADDRESS = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")

OK_DEFAULT: dict[str, Any] = {"status": "ok", "response": {"type": "default"}}


class BadRequest(Exception):
    """A body Hyperliquid could not deserialize: HTTP 422, plain text."""


def _err(text: str) -> dict[str, Any]:
    return {"status": "err", "response": text}


def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def _vault(body: Mapping[str, Any]) -> str | None:
    vault = body.get("vaultAddress")
    if vault is None:
        return None
    if not isinstance(vault, str) or not _ADDRESS.match(vault):
        raise BadRequest(f"Failed to deserialize the JSON body into the target type: vaultAddress: {vault!r}")
    return vault if vault.startswith("0x") else "0x" + vault


def handle_exchange(state: SimState, settings: SimSettings, body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest("Failed to deserialize the JSON body into the target type: expected an object")
    action = body.get("action")
    nonce = body.get("nonce")
    if not isinstance(action, Mapping) or not isinstance(action.get("type"), str):
        raise BadRequest("Failed to deserialize the JSON body into the target type: action.type missing")
    if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
        raise BadRequest(
            "Failed to deserialize the JSON body into the target type: nonce: expected an integer"
        )
    expires_after = body.get("expiresAfter")
    if expires_after is not None and (isinstance(expires_after, bool) or not isinstance(expires_after, int)):
        raise BadRequest("Failed to deserialize the JSON body into the target type: expiresAfter")
    vault = _vault(body)
    kind: str = action["type"]

    with state.lock:
        state.run_dead_man()
        state.actions[kind] += 1
        forbidden = kind in FORBIDDEN or (kind == "order" and "builder" in action)
        if forbidden:
            state.forbidden["order.builder" if kind == "order" else kind] += 1
            if kind == "order":
                state.counters["orders_with_builder"] += 1
        if kind not in SUPPORTED:
            return _err(f"Unsupported action {kind}")

        user_signed = kind in USER_SIGNED
        signer: str | None = None
        try:
            if user_signed:
                signer = recover_user_signer(action, body.get("signature"))
            else:
                signer = recover_l1_signer(
                    action,
                    body.get("signature"),
                    nonce=nonce,
                    vault_address=vault,
                    expires_after=expires_after,
                    mainnet=settings.mainnet,
                )
        except SignatureError as exc:
            if settings.verify_signatures:
                state.counters["rejected_signatures"] += 1
                return _err(f"Invalid signature: {exc}")

        if user_signed and settings.verify_signatures:
            chain = action.get("hyperliquidChain")
            if chain != settings.chain_name:
                return _err(f"Invalid hyperliquidChain {chain!r}: this simulator is {settings.chain_name}")

        wallet = state.wallet_of_signer(signer) if signer is not None else None
        if user_signed and signer is not None and not state.is_wallet(signer):
            wallet = None
        if wallet is None:
            if settings.verify_signatures:
                state.counters["rejected_signatures"] += 1
                return _err(f"User or API Wallet {signer} does not exist.")
            wallet = state.default_wallet
        if vault is not None:
            if not state.is_wallet(vault):
                return _err(f"Vault {vault.lower()} does not exist.")
            wallet = vault.lower()

        nonce_error = state.check_nonce(signer or wallet, nonce)
        if nonce_error is not None:
            return _err(nonce_error)
        if expires_after is not None and expires_after < state.wall_ms():
            return _err(f"Action expired at {expires_after}")
        state.requests_by_wallet[wallet] += 1

        if forbidden and settings.strict:
            return _err(ERR_FORBIDDEN)
        if kind in FORBIDDEN or kind == "noop":
            return dict(OK_DEFAULT)
        if kind == "order":
            return _orders(state, wallet, action)
        if kind in ("cancel", "cancelByCloid"):
            return _cancels(state, wallet, action, by_cloid=kind == "cancelByCloid")
        if kind == "updateLeverage":
            return _update_leverage(state, wallet, action)
        if kind == "updateIsolatedMargin":
            return _update_isolated_margin(state, wallet, action)
        if kind == "scheduleCancel":
            return _schedule_cancel(state, wallet, action)
        return _approve_agent(state, wallet, action)


def _decimal(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _one_order(state: SimState, wallet: str, wire: Any) -> Any:
    if not isinstance(wire, Mapping):
        return {"error": "Invalid order: expected an object."}
    product = state.product_by_asset(wire.get("a"))
    if product is None:
        return {"error": f"Invalid asset {wire.get('a')!r}."}
    order_type = wire.get("t")
    if not isinstance(order_type, Mapping):
        return {"error": "Invalid order type."}
    if "trigger" in order_type:
        return {"error": ERR_TRIGGER}
    limit = order_type.get("limit")
    tif = limit.get("tif") if isinstance(limit, Mapping) else None
    if tif not in ("Alo", "Ioc", "Gtc"):
        return {"error": f"Invalid TIF {tif!r}."}
    size = _decimal(wire.get("s"))
    if size is None:
        return {"error": "Order has invalid size."}
    price = _decimal(wire.get("p"))
    if price is None:
        return {"error": "Order has invalid price."}
    is_buy, reduce_only = wire.get("b"), wire.get("r", False)
    if not isinstance(is_buy, bool) or not isinstance(reduce_only, bool):
        return {"error": "Invalid order: b and r must be booleans."}
    cloid = wire.get("c")
    if cloid is not None and (not isinstance(cloid, str) or not _CLOID.match(cloid)):
        return {"error": f"Invalid cloid {cloid!r}."}
    side: Side = "buy" if is_buy else "sell"
    time_in_force: TimeInForce = tif
    result = state.engine.place_order(
        OrderRequest(product.symbol, side, size, price, time_in_force, reduce_only, cloid), wallet
    )
    extra = {"cloid": cloid.lower()} if cloid is not None else {}
    if result.status == "resting":
        return {"resting": {"oid": result.oid, **extra}}
    if result.status == "filled":
        assert result.avg_price is not None
        return {
            "filled": {
                "totalSz": fmt_decimal(result.filled_size),
                "avgPx": fmt_decimal(result.avg_price),
                "oid": result.oid,
                **extra,
            }
        }
    return {"error": result.error_text}


def _orders(state: SimState, wallet: str, action: Mapping[str, Any]) -> dict[str, Any]:
    orders = action.get("orders")
    grouping = action.get("grouping", "na")
    if not isinstance(orders, list):
        return _err("Invalid order action: orders must be a list.")
    if grouping not in ("na", "normalTpsl", "positionTpsl"):
        return _err(f"Invalid grouping {grouping!r}.")
    return _ok("order", [_one_order(state, wallet, o) for o in orders])


def _cancels(state: SimState, wallet: str, action: Mapping[str, Any], *, by_cloid: bool) -> dict[str, Any]:
    cancels = action.get("cancels")
    if not isinstance(cancels, list):
        return _err("Invalid cancel action: cancels must be a list.")
    statuses: list[Any] = []
    for c in cancels:
        if not isinstance(c, Mapping):
            statuses.append({"error": ERR_CANCEL_MISSING})
            continue
        product = state.product_by_asset(c.get("asset" if by_cloid else "a"))
        ref = c.get("cloid" if by_cloid else "o")
        if product is None:
            statuses.append({"error": ERR_CANCEL_MISSING})
            continue
        if by_cloid:
            if not isinstance(ref, str) or not _CLOID.match(ref):
                statuses.append({"error": ERR_CANCEL_MISSING})
                continue
            outcome = state.engine.cancel(product.symbol, cloids=[ref.lower()], wallet=wallet)
        else:
            if isinstance(ref, bool) or not isinstance(ref, int):
                statuses.append({"error": ERR_CANCEL_MISSING})
                continue
            outcome = state.engine.cancel(product.symbol, oids=[ref], wallet=wallet)
        text = next(iter(outcome.values()))
        statuses.append("success" if text == "success" else {"error": text})
    return _ok("cancel", statuses)


def _update_leverage(state: SimState, wallet: str, action: Mapping[str, Any]) -> dict[str, Any]:
    product = state.product_by_asset(action.get("asset"))
    leverage, is_cross = action.get("leverage"), action.get("isCross")
    if product is None:
        return _err(f"Invalid asset {action.get('asset')!r}.")
    if isinstance(leverage, bool) or not isinstance(leverage, int) or not isinstance(is_cross, bool):
        return _err("Invalid leverage update: leverage must be an integer and isCross a boolean.")
    if is_cross and product.margin_mode == "isolated_only":
        return _err("Cross margin is not allowed for this asset.")
    error = state.engine.set_isolated_leverage(product.symbol, leverage, wallet)
    return _err(error) if error is not None else dict(OK_DEFAULT)


def _update_isolated_margin(state: SimState, wallet: str, action: Mapping[str, Any]) -> dict[str, Any]:
    product = state.product_by_asset(action.get("asset"))
    ntli = action.get("ntli")
    if product is None:
        return _err(f"Invalid asset {action.get('asset')!r}.")
    if isinstance(ntli, bool) or not isinstance(ntli, int):
        return _err("Invalid margin update: ntli must be an integer (USD·10⁶).")
    key = (wallet, product.symbol)
    state.isolated_margin[key] = state.isolated_margin.get(key, Decimal(0)) + Decimal(ntli) / Decimal(10**6)
    return dict(OK_DEFAULT)


def _schedule_cancel(state: SimState, wallet: str, action: Mapping[str, Any]) -> dict[str, Any]:
    when = action.get("time")
    if when is None:
        state.scheduled_cancel.pop(wallet, None)
        return dict(OK_DEFAULT)
    if isinstance(when, bool) or not isinstance(when, int):
        return _err("Invalid scheduled cancel time.")
    if when < state.wall_ms() + 5000:
        return _err("Scheduled cancel time too early, must be at least 5 seconds from now.")
    state.scheduled_cancel[wallet] = when
    return dict(OK_DEFAULT)


def _approve_agent(state: SimState, wallet: str, action: Mapping[str, Any]) -> dict[str, Any]:
    agent = action.get("agentAddress")
    if not isinstance(agent, str) or not _ADDRESS.match(agent):
        return _err(f"Invalid agent address {agent!r}.")
    name = action.get("agentName") or ""
    state.approve_agent(wallet, agent if agent.startswith("0x") else "0x" + agent, str(name), None)
    return dict(OK_DEFAULT)
