"""The gateway's vocabulary: request validation, statuses, error codes and the order record
(portfolio.md §11.2–§11.4).

Validation lives here, not in the HTTP layer, so the in-process client of embedded mode gets exactly the
same 422s as a remote caller (§11 S1: only the transport and its token check differ).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttt.domain.client_ids import CYCLE_ID_RE, is_ours, is_valid_client_order_id
from ttt.domain.orders import TimeInForce
from ttt.domain.rounding import round_to_lot, to_decimal

# --- statuses (§11.4) -----

RECEIVED = "RECEIVED"
NOT_SENT = "NOT_SENT"
SENT_UNKNOWN = "SENT_UNKNOWN"
RESTING = "RESTING"
FILLED = "FILLED"
PARTIAL = "PARTIAL"
CANCELED = "CANCELED"
REJECTED = "REJECTED"
EXPIRED_UNKNOWN = "EXPIRED_UNKNOWN"

STATUSES = (RECEIVED, NOT_SENT, SENT_UNKNOWN, RESTING, FILLED, PARTIAL, CANCELED, REJECTED, EXPIRED_UNKNOWN)
TERMINAL = frozenset({FILLED, PARTIAL, CANCELED, REJECTED, EXPIRED_UNKNOWN})
NOTHING_SENT = frozenset({RECEIVED, NOT_SENT})

STYLE_TIF: dict[str, TimeInForce] = {"post_only": "Alo", "ioc": "Ioc"}

# Exchange text → error code (§11.4); the first matching phrase wins, anything else is exchange_rejected.
_ERROR_PHRASES: tuple[tuple[str, str], ...] = (
    ("post only order would have immediately matched", "post_only_would_cross"),
    ("order could not immediately match", "ioc_no_match"),
    ("insufficient margin", "insufficient_margin"),
    ("minimum value of $10", "below_exchange_minimum"),
    ("reduce only order would increase position", "reduce_only_violation"),
    ("invalid size", "invalid_size"),
    ("zero size", "invalid_size"),
    ("divisible by tick size", "invalid_price"),
    ("80% away from the reference price", "invalid_price"),
)


def error_code_for(text: str | None) -> str:
    """Map an exchange error text to a §11.4 code; no text is ever taken as success."""
    lowered = (text or "").lower()
    for phrase, code in _ERROR_PHRASES:
        if phrase.lower() in lowered:
            return code
    return "exchange_rejected"


# --- errors (§11.2) -----


class GatewayError(Exception):
    """A refusal with its HTTP status and §11.2 body; `record` is attached when a row exists."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details) if details is not None else None
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


def validation_error(fields: Sequence[tuple[str, str]]) -> GatewayError:
    return GatewayError(
        422,
        "validation_failed",
        "; ".join(f"{f}: {m}" for f, m in fields) or "invalid request",
        details={"fields": [{"field": f, "message": m} for f, m in fields]},
    )


class PreSendError(Exception):
    """Raised by a venue adapter when it knows the request never left (connection refused, DNS): the
    gateway may mark the order NOT_SENT. Any other exception from `place_order` is ambiguous."""


# --- the create request (§11.3) -----

MAX_NUMBER = 1e15
MIN_DECISION_PRICE = 1e-12


class CreateOrderBody(BaseModel):
    """Static rules of the create request; rules that need configuration are checked in `validate_create`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    client_order_id: str = Field(pattern=r"^0x[0-9a-f]{32}$")
    cycle_id: str = Field(pattern=CYCLE_ID_RE.pattern, min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=64)
    side: Literal["buy", "sell"]
    size: float = Field(gt=0, le=MAX_NUMBER)
    style: Literal["post_only", "ioc"] | None = None
    max_slippage_bps: float | None = Field(default=None, gt=0)
    reduce_only: bool = False
    decision_price: float | None = Field(default=None, ge=MIN_DECISION_PRICE, le=MAX_NUMBER)


_FIELD_MESSAGES = {
    "client_order_id": "must match ^0x[0-9a-f]{32}$",
    "cycle_id": "must match " + CYCLE_ID_RE.pattern,
    "symbol": "must be a symbol of universe.symbols",
    "side": "must be exactly buy or sell",
    "size": f"must be a finite number > 0 (at most {MAX_NUMBER:g})",
    "style": "must be post_only or ioc",
    "max_slippage_bps": "must be a number > 0",
    "reduce_only": "must be a boolean",
    "decision_price": f"must be a finite number > 0 (between {MIN_DECISION_PRICE:g} and {MAX_NUMBER:g})",
}


@dataclass(frozen=True)
class ProductInfo:
    """What the gateway needs of a `products` row."""

    product_id: int
    symbol: str
    sz_decimals: int
    max_leverage: int
    margin_mode: str
    api_coin: str
    min_notional: Decimal
    asset_id: int | None = None

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.sz_decimals)

    @property
    def isolated_only(self) -> bool:
        return self.margin_mode in ("isolated", "isolated_only")


@dataclass(frozen=True)
class OrderPolicy:
    """Configuration the validation needs (orders.*, universe.symbols)."""

    universe: tuple[str, ...]
    prefix: str = "74747401"
    default_style: str = "post_only"
    ioc_slippage_bps: float = 50.0
    ioc_slippage_limit_bps: float = 500.0


@dataclass(frozen=True)
class ValidOrder:
    """A create request that passed every rule, with the derived values the gateway stores."""

    client_order_id: str
    cycle_id: str
    symbol: str
    side: Literal["buy", "sell"]
    requested_size: Decimal
    size: Decimal
    style: str
    max_slippage_bps: Decimal | None
    reduce_only: bool
    decision_price: Decimal | None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def tif(self) -> TimeInForce:
        return STYLE_TIF[self.style]

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the identifying fields (§11.3 step 3)."""
        doc = {
            "cycle_id": self.cycle_id,
            "symbol": self.symbol,
            "side": self.side,
            "size": plain(self.size),
            "style": self.style,
            "max_slippage_bps": plain(self.max_slippage_bps) if self.max_slippage_bps is not None else None,
            "reduce_only": self.reduce_only,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plain(value: Decimal) -> str:
    """Fixed-point text without trailing zeros (`0.1427`, `100`)."""
    text = format(value.normalize(), "f")
    return text


def quantize_18(value: Decimal) -> Decimal:
    """Fit a derived decimal into the DECIMAL(38,18) columns without changing its meaning."""
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(Decimal("1e-18"), rounding=ROUND_HALF_EVEN)


def validate_create(
    body: Any, policy: OrderPolicy, products: Mapping[str, ProductInfo] | None = None
) -> ValidOrder:
    """Every §11.3 field rule; raises a 422 GatewayError listing each failing field.

    `products` supplies the lot of a symbol; when a universe symbol has no product row the size rule that
    needs it is skipped here and the caller refuses the order as `instrument_metadata_missing`.
    """
    if not isinstance(body, dict):
        raise validation_error([("body", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    parsed: CreateOrderBody | None = None
    try:
        parsed = CreateOrderBody.model_validate(body)
    except ValidationError as exc:
        seen: set[str] = set()
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "body"
            if name in seen:
                continue
            seen.add(name)
            if err["type"] == "extra_forbidden":
                problems.append((name, "unknown field"))
            elif err["type"] == "missing":
                problems.append((name, "is required"))
            else:
                problems.append((name, _FIELD_MESSAGES.get(name, str(err["msg"]))))
    failed = {p[0] for p in problems}
    cloid = body.get("client_order_id")
    if (
        "client_order_id" not in failed
        and isinstance(cloid, str)
        and is_valid_client_order_id(cloid)
        and not is_ours(cloid, policy.prefix)
    ):
        problems.append(("client_order_id", f"must start with 0x{policy.prefix} (orders.client_id_prefix)"))
    symbol = body.get("symbol")
    if "symbol" not in failed and isinstance(symbol, str) and symbol not in policy.universe:
        problems.append(("symbol", f"{symbol!r} is not in universe.symbols ({', '.join(policy.universe)})"))
    style_raw = body.get("style")
    style = style_raw if isinstance(style_raw, str) and style_raw in STYLE_TIF else policy.default_style
    slippage = body.get("max_slippage_bps")
    if "max_slippage_bps" not in failed and slippage is not None:
        if style != "ioc":
            problems.append(("max_slippage_bps", "only allowed with style ioc"))
        elif isinstance(slippage, int | float) and slippage > policy.ioc_slippage_limit_bps:
            problems.append(
                (
                    "max_slippage_bps",
                    f"must be > 0 and ≤ {policy.ioc_slippage_limit_bps:g} "
                    "(orders.ioc_max_slippage_bps_limit)",
                )
            )
    size_value: Decimal | None = None
    product = (products or {}).get(symbol) if isinstance(symbol, str) else None
    raw: Any = body.get("size")
    number = isinstance(raw, int | float) and not isinstance(raw, bool)
    if number and "size" not in failed and product is not None:
        size_value = round_to_lot(float(raw), product.lot)
        if size_value < product.lot:
            problems.append(("size", f"rounds to 0 lots (lot {plain(product.lot)})"))
    if problems or parsed is None:
        raise validation_error(problems)
    requested = to_decimal(parsed.size)
    effective_slippage: Decimal | None = None
    if style == "ioc":
        effective_slippage = to_decimal(
            parsed.max_slippage_bps if parsed.max_slippage_bps is not None else policy.ioc_slippage_bps
        )
    return ValidOrder(
        client_order_id=parsed.client_order_id,
        cycle_id=parsed.cycle_id,
        symbol=parsed.symbol,
        side=parsed.side,
        requested_size=requested,
        size=size_value if size_value is not None else requested,
        style=style,
        max_slippage_bps=effective_slippage,
        reduce_only=parsed.reduce_only,
        decision_price=to_decimal(parsed.decision_price) if parsed.decision_price is not None else None,
        body=dict(body),
    )


def request_json_schema(policy: OrderPolicy) -> dict[str, Any]:
    """The create body's JSON schema with this deployment's prefix and universe (for OpenAPI)."""
    schema = CreateOrderBody.model_json_schema()
    props = schema["properties"]
    props["client_order_id"]["pattern"] = f"^0x{policy.prefix}[0-9a-f]{{24}}$"
    props["symbol"] = {"type": "string", "enum": list(policy.universe), "title": "Symbol"}
    props["max_slippage_bps"] = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": policy.ioc_slippage_limit_bps},
            {"type": "null"},
        ],
        "default": None,
        "title": "Max Slippage Bps",
    }
    schema["additionalProperties"] = False
    return schema


# --- the order record (§11.3 response) -----


def _num(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value is not None else None


def render_record(row: Any, *, replayed: bool = False) -> dict[str, Any]:
    """The order record of a stored `order_execution_log` row."""
    error = None
    if row.error_code:
        error = {"code": row.error_code, "message": row.error_message}
    return {
        "client_order_id": row.client_order_id,
        "cycle_id": row.cycle_id,
        "symbol": row.symbol,
        "side": row.side,
        "size": _num(row.size),
        "requested_size": _num(row.requested_size),
        "style": row.style,
        "time_in_force": row.time_in_force,
        "limit_price": _num(row.limit_price),
        "reference_price": _num(row.reference_price),
        "decision_price": _num(row.decision_price),
        "reduce_only": bool(row.reduce_only),
        "status": row.status,
        "exchange_order_id": row.exchange_order_id,
        "filled_size": _num(row.filled_size) or 0.0,
        "avg_fill_price": _num(row.avg_fill_price),
        "fees_usd": _num(row.fees_usd) or 0.0,
        "error": error,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "replayed": replayed,
    }


def json_safe(value: Any) -> Any:
    """Audit payloads: decimals as exact text, datetimes as ISO, containers recursively."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
