"""The reconciliation engine's `OrderGateway` over the gateway's client (HTTP or in-process).

One code path for a decision: embedded mode calls the same gateway service in-process that a distributed
deployment reaches over HTTP; this bridge only translates the answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttt.services.gateway.client import GatewayClient, GatewayReply
from ttt.services.portfolio.ports import (
    CancelResult,
    GatewayUnavailable,
    OrderSubmission,
    SubmitAnswer,
)

_TRANSPORT = {"ok": "response", "timeout": "timeout", "unreachable": "unreachable"}


def answer_of(reply: GatewayReply) -> SubmitAnswer:
    """After a timeout the body is the record a later GET returned, if any."""
    body = reply.body if reply.body is not None else reply.record
    return SubmitAnswer(_TRANSPORT[reply.transport], reply.status, body)  # type: ignore[arg-type]


class GatewayBridge:
    def __init__(self, client: GatewayClient) -> None:
        self._client = client

    def submit(self, order: OrderSubmission) -> SubmitAnswer:
        return answer_of(self._client.submit(order.body()))

    def cancel_open(self, symbols: Sequence[str]) -> list[CancelResult]:
        reply = self._client.cancel_open(symbols)
        if reply.transport != "ok" or reply.status != 200 or reply.body is None:
            raise GatewayUnavailable(f"cancel-open: transport {reply.transport}, status {reply.status}")
        return [
            CancelResult(
                symbol=str(r["symbol"]),
                cancelled=tuple(r.get("cancelled") or ()),
                already_closed=tuple(r.get("already_closed") or ()),
                foreign_open=int(r.get("foreign_open") or 0),
                error=r.get("error"),
            )
            for r in reply.body.get("results", [])
        ]
