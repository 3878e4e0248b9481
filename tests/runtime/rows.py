"""Row builders for the portfolio tables that several runtime tests seed."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def reconciliation_log_row(cycle_id: str, symbol: str, created_at: datetime, **fields: Any) -> dict[str, Any]:
    """A `reconciliation_log` row of a no-action decision; `fields` override any column."""
    row: dict[str, Any] = {
        "cycle_id": cycle_id,
        "symbol": symbol,
        "desired_status": "value",
        "desired_reason": None,
        "desired": None,
        "desired_clamped": None,
        "actual": None,
        "quorum_status": "ok",
        "margin_used": None,
        "cap": None,
        "decision_row": None,
        "side": None,
        "size": None,
        "size_rounded": None,
        "price": None,
        "notional": None,
        "threshold": None,
        "gate": "n/a",
        "outcome": "no_action",
        "hold_reason": None,
        "client_order_id": None,
        "created_at": created_at,
    }
    row.update(fields)
    return row
