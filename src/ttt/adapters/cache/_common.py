"""Argument checks and encodings shared by the memory and Redis caches, so both reject and encode alike."""

from __future__ import annotations

import math
from collections.abc import Mapping

DEFAULT_PREFIX = "ttt:"


def encode_value(value: bytes | str, key: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"cache value for key {key!r} must be bytes or str, got {type(value).__name__}")


def ttl_ms(ttl_s: float | None, what: str) -> int | None:
    """Milliseconds for PX; a TTL that is not a positive finite number is a caller bug, not "forever"."""
    if ttl_s is None:
        return None
    bad_type = isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float)
    if bad_type or not math.isfinite(ttl_s) or ttl_s <= 0:
        raise ValueError(f"ttl_s for {what} must be a positive number of seconds or None, got {ttl_s!r}")
    return max(1, round(ttl_s * 1000))


def encode_fields(stream: str, fields: Mapping[str, str | int | float]) -> dict[str, str]:
    """Field values as the text Redis would store (repr for numbers, as redis-py sends them)."""
    if not fields:
        raise ValueError(f"stream {stream!r}: an entry needs at least one field")
    out: dict[str, str] = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"stream {stream!r}: field names must be non-empty str, got {name!r}")
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(
                f"stream {stream!r}: field {name!r} must be str, int or float, got {type(value).__name__}"
            )
        else:
            out[name] = repr(value)
    return out


def check_maxlen(stream: str, maxlen: int) -> None:
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise ValueError(f"stream {stream!r}: maxlen must be an int >= 1, got {maxlen!r}")


def check_count(count: int | None) -> None:
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"stream count must be None or an int >= 0, got {count!r}")


def check_lock_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"lock name must be a non-empty str, got {name!r}")


def lock_ttl_ms(name: str, ttl_s: float) -> int:
    ms = ttl_ms(ttl_s, f"lock {name!r}")
    if ms is None:
        raise ValueError(f"lock {name!r}: ttl_s is required")
    return ms
