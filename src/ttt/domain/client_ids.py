"""Deterministic client order ids (portfolio.md §10, P4).

The id is a function of (cycle_id, symbol), so a retried or redelivered cycle re-derives the same id
and the gateway can submit each order to the exchange at most once. The fixed prefix marks an order as
ours, so cancellation never touches orders placed by anyone else.
"""

from __future__ import annotations

import hashlib
import re

DEFAULT_PREFIX = "74747401"
UNIT_SEPARATOR = "\x1f"

_PREFIX_RE = re.compile(r"^[0-9a-f]{8}$")
_CLOID_RE = re.compile(r"^0x[0-9a-f]{32}$")
CYCLE_ID_RE = re.compile(r"^[A-Za-z0-9:._-]{1,64}$")


def validate_prefix(prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"orders.client_id_prefix must be exactly 8 lower-case hex characters, got {prefix!r}"
        )
    return prefix


def is_valid_cycle_id(cycle_id: str) -> bool:
    return CYCLE_ID_RE.fullmatch(cycle_id) is not None


def client_order_id(cycle_id: str, symbol: str, prefix: str = DEFAULT_PREFIX) -> str:
    """`0x` + prefix + the first 24 hex characters of SHA-256(cycle_id ␟ symbol)."""
    validate_prefix(prefix)
    if not is_valid_cycle_id(cycle_id):
        raise ValueError(f"cycle id {cycle_id!r} does not match {CYCLE_ID_RE.pattern}")
    digest = hashlib.sha256(f"{cycle_id}{UNIT_SEPARATOR}{symbol}".encode()).hexdigest()
    return f"0x{prefix}{digest[:24]}"


def is_valid_client_order_id(cloid: str) -> bool:
    """The Hyperliquid cloid shape: `0x` and 32 lower-case hex characters."""
    return _CLOID_RE.fullmatch(cloid) is not None


def is_ours(cloid: str | None, prefix: str = DEFAULT_PREFIX) -> bool:
    """Ours iff the lower-cased cloid starts with `0x` + prefix; no cloid means foreign."""
    if not cloid:
        return False
    return cloid.lower().startswith(f"0x{prefix}")
