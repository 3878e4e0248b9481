"""The §11.7 outcome table: what a gateway answer means for the cycle, and which alert it raises.

One pure function, so the reconciliation engine and the tests of both gateway clients read the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ttt.services.portfolio.alerts import AlertSeverity
from ttt.services.portfolio.ports import SubmitAnswer

AnswerOutcome = Literal["order_sent", "order_rejected", "order_not_sent", "order_unknown"]

SENT_STATUSES = frozenset({"RESTING", "FILLED", "PARTIAL"})
CLOSED_STATUSES = frozenset({"CANCELED", "EXPIRED_UNKNOWN"})


@dataclass(frozen=True)
class SubmitOutcome:
    """`alert` is None when the answer needs none; a rejection's severity may rise with its streak."""

    outcome: AnswerOutcome
    alert: str | None = None
    severity: AlertSeverity | None = None
    message: str = ""


def submit_outcome(answer: SubmitAnswer) -> SubmitOutcome:
    if answer.transport == "unreachable":
        return SubmitOutcome("order_not_sent", "gateway_unreachable", "critical", "gateway unreachable")
    code, status, error = answer.status_code, answer.record_status, answer.error_code
    if answer.transport == "timeout" or code == 202:
        return SubmitOutcome("order_unknown", "gateway_timeout", "warning", "order outcome unknown")
    if code in (200, 201):
        if status in SENT_STATUSES:
            return SubmitOutcome("order_sent")
        if status == "REJECTED":
            return SubmitOutcome(
                "order_rejected", "order_rejected", "warning", f"exchange rejected the order: {error}"
            )
        if status in CLOSED_STATUSES:
            return SubmitOutcome("order_not_sent")
        if status == "NOT_SENT":
            return SubmitOutcome("order_not_sent", "order_not_sent", "warning", "order not sent")
        return SubmitOutcome("order_unknown", "gateway_timeout", "warning", f"order status {status}")
    if code == 503 or (code == 409 and error == "price_deviation"):
        return SubmitOutcome(
            "order_not_sent", "order_not_sent", "warning", f"gateway refused: {code} {error}"
        )
    if code is not None and 400 <= code < 500:
        return SubmitOutcome(
            "order_not_sent",
            "gateway_rejected_request",
            "critical",
            f"gateway rejected the request: {code} {error}",
        )
    if code is not None and code >= 500:
        # The failure may have happened after the order left: unknown, and loudly.
        return SubmitOutcome("order_unknown", "internal_error", "critical", f"gateway failed: {code} {error}")
    return SubmitOutcome("order_unknown", "gateway_timeout", "warning", f"gateway answered {code}")
