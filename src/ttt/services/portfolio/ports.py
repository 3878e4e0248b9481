"""What the reconciliation cycle needs from the gateway and from observers (portfolio.md §11, §12, §6.3).

The engine never talks to the exchange for orders; it talks to the gateway through `OrderGateway`, whose
implementations are the HTTP client (S2) and the in-process client (S1). Their transport differences are
folded into `SubmitAnswer` so the cycle maps every answer with one table (§11.7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ttt.domain.quorum import ObserverDocument, Unavailable

Transport = Literal["response", "timeout", "unreachable"]


class GatewayUnavailable(Exception):
    """The gateway could not be reached at all (cancel-open: every symbol holds `cancel_unavailable`)."""


@dataclass(frozen=True)
class OrderSubmission:
    """The body of `POST /v1/orders` (§11.3), as the engine sends it."""

    client_order_id: str
    cycle_id: str
    symbol: str
    side: Literal["buy", "sell"]
    size: float
    decision_price: float
    style: str | None = None
    reduce_only: bool = False

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "client_order_id": self.client_order_id,
            "cycle_id": self.cycle_id,
            "symbol": self.symbol,
            "side": self.side,
            "size": self.size,
        }
        if self.style is not None:
            out["style"] = self.style
        out["decision_price"] = self.decision_price
        if self.reduce_only:
            out["reduce_only"] = True
        return out


@dataclass(frozen=True)
class SubmitAnswer:
    """`response`: the gateway answered with `status_code` and `body` (the order record or an error body).
    `timeout`: no answer within the timeout (the engine does not retry, §11.7). `unreachable`: the
    connection failed twice (after the client's one retry)."""

    transport: Transport
    status_code: int | None = None
    body: Mapping[str, Any] | None = None

    @property
    def record_status(self) -> str | None:
        value = (self.body or {}).get("status")
        return value if isinstance(value, str) else None

    @property
    def error_code(self) -> str | None:
        value = (self.body or {}).get("error")
        if isinstance(value, dict):
            code = value.get("code")
            return code if isinstance(code, str) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class CancelResult:
    """One symbol of `POST /v1/cancel-open` (§12)."""

    symbol: str
    cancelled: Sequence[str] = ()
    already_closed: Sequence[str] = ()
    foreign_open: int = 0
    error: str | None = None


@dataclass(frozen=True)
class OpenOrderView:
    symbol: str
    oid: int
    cloid: str | None
    side: str
    price: float
    size: float
    ours: bool


@runtime_checkable
class OrderGateway(Protocol):
    def submit(self, order: OrderSubmission) -> SubmitAnswer:
        """POST the order once (with the client's single retry on a connection error)."""
        ...

    def cancel_open(self, symbols: Sequence[str]) -> list[CancelResult]:
        """Cancel our resting orders on these symbols; raises GatewayUnavailable when nothing could be
        asked at all."""
        ...


@runtime_checkable
class ObserverSource(Protocol):
    """One quorum source: the embedded observer (read in-process) or one remote URL (one GET per cycle)."""

    name: str

    def fetch(self) -> ObserverDocument | Unavailable: ...


@dataclass
class CycleRequest:
    """What a trigger hands to the cycle (portfolio.md §1.1)."""

    cycle_id: str
    trigger: str
    scheduled_at: float | None = None
    symbols: Sequence[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
