"""Hyperliquid's signing conventions, recomputed server-side so the simulator can recover who signed.

The cryptography (keccak, EIP-712 encoding, ECDSA recovery) is eth-account's; this module only knows how
Hyperliquid turns an action into the message that was signed: L1 actions hash msgpack(action) with the
nonce, vault and expiry into a "phantom agent", user-signed actions sign their own fields as typed data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_AGENT_TYPES = [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}]

# action type -> (EIP-712 primary type, fields in signing order)
USER_SIGNED: dict[str, tuple[str, list[dict[str, str]]]] = {
    "approveAgent": (
        "HyperliquidTransaction:ApproveAgent",
        [
            {"name": "hyperliquidChain", "type": "string"},
            {"name": "agentAddress", "type": "address"},
            {"name": "agentName", "type": "string"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
    "approveBuilderFee": (
        "HyperliquidTransaction:ApproveBuilderFee",
        [
            {"name": "hyperliquidChain", "type": "string"},
            {"name": "maxFeeRate", "type": "string"},
            {"name": "builder", "type": "address"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
    "userDexAbstraction": (
        "HyperliquidTransaction:UserDexAbstraction",
        [
            {"name": "hyperliquidChain", "type": "string"},
            {"name": "user", "type": "address"},
            {"name": "enabled", "type": "bool"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
}

# fields a user-signed action may omit from the wire because they were signed with a default
_SIGNED_DEFAULTS: dict[str, dict[str, Any]] = {"approveAgent": {"agentName": ""}}


class SignatureError(ValueError):
    """The signature cannot be read at all (as opposed to one that recovers to an unknown address)."""


def _address_bytes(address: str) -> bytes:
    text = address[2:] if address.lower().startswith("0x") else address
    raw = bytes.fromhex(text)
    if len(raw) != 20:
        raise SignatureError(f"vault address {address!r} is not 20 bytes")
    return raw


def action_hash(action: Any, vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    """keccak(msgpack(action) ‖ nonce(8, BE) ‖ vault flag[‖ vault] ‖ [0 ‖ expiresAfter(8, BE)])."""
    data = msgpack.packb(action)
    data += nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + _address_bytes(vault_address)
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return bytes(keccak(data))


def _vrs(signature: Any) -> tuple[int, int, int]:
    if not isinstance(signature, Mapping):
        raise SignatureError("signature must be an object with r, s and v")
    try:
        r, s, v = signature["r"], signature["s"], signature["v"]
        r_int = int(r, 16) if isinstance(r, str) else int(r)
        s_int = int(s, 16) if isinstance(s, str) else int(s)
        v_int = int(v, 16) if isinstance(v, str) and v.startswith("0x") else int(v)
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureError(f"unreadable signature: {exc}") from exc
    return v_int, r_int, s_int


def _recover(typed: dict[str, Any], signature: Any) -> str:
    v, r, s = _vrs(signature)
    try:
        address = Account.recover_message(encode_typed_data(full_message=typed), vrs=(v, r, s))
    except Exception as exc:  # eth-keys raises several types for impossible (r, s, v)
        raise SignatureError(f"signature does not recover: {exc}") from exc
    return str(address).lower()


def recover_l1_signer(
    action: Any,
    signature: Any,
    *,
    nonce: int,
    vault_address: str | None,
    expires_after: int | None,
    mainnet: bool,
) -> str:
    """Address that signed an L1 action (lower case)."""
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    typed = {
        "domain": {"name": "Exchange", "version": "1", "chainId": 1337, "verifyingContract": ZERO_ADDRESS},
        "types": {"Agent": _AGENT_TYPES, "EIP712Domain": _DOMAIN_TYPES},
        "primaryType": "Agent",
        "message": {"source": "a" if mainnet else "b", "connectionId": connection_id},
    }
    return _recover(typed, signature)


def recover_user_signer(action: Mapping[str, Any], signature: Any) -> str:
    """Address that signed a user-signed action, over domain HyperliquidSignTransaction on the action's
    own `signatureChainId`."""
    kind = action.get("type")
    if kind not in USER_SIGNED:
        raise SignatureError(f"{kind!r} is not a user-signed action")
    primary, fields = USER_SIGNED[str(kind)]
    try:
        chain_id = int(str(action["signatureChainId"]), 16)
    except (KeyError, ValueError) as exc:
        raise SignatureError("user-signed action without a valid signatureChainId") from exc
    defaults = _SIGNED_DEFAULTS.get(str(kind), {})
    message: dict[str, Any] = {}
    for f in fields:
        name = f["name"]
        if name in action:
            message[name] = action[name]
        elif name in defaults:
            message[name] = defaults[name]
        else:
            raise SignatureError(f"{kind} action is missing the signed field {name!r}")
    typed = {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": ZERO_ADDRESS,
        },
        "types": {primary: fields, "EIP712Domain": _DOMAIN_TYPES},
        "primaryType": primary,
        "message": message,
    }
    return _recover(typed, signature)
