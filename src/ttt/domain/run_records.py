"""The fields of a `runs` row that the portfolio side reads, as a plain value.

The services query these columns; the pure rules below (desired state, Kelly cohorts, epoch flagging)
are written over this record so the same rules can be checked without a database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunRecord:
    symbol: str
    position_direction: int
    live_pnl: float | None
    update_time: float
    exit_run: bool = False
    height: int | None = None
    end_time: float | None = None

    @property
    def active(self) -> bool:
        """Active as defined once for the whole product (providence.md §3.4)."""
        return self.end_time is None and not self.exit_run
