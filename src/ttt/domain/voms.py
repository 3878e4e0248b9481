"""The virtual book of a run (providence.md §15).

Sums are sequential in fill order (§1.3) so that a vectorised engine keeping running sums with
`fill_terms` gets the very same bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FEE_RATE: float = 0.0004


def fill_terms(price: float, size: float, fee_rate: float) -> tuple[float, float, float]:
    """One fill's contribution to (position_size, entry_value, total_fees), exactly as §15.3 writes them."""
    value = price * size
    return size, value, (abs(value) * fee_rate) * 2


@dataclass(frozen=True)
class VomsMetrics:
    position_size: float
    position_value: float
    total_fees: float
    unrealized_pnl: float
    account_balance: float
    margin_used: float
    current_price: float

    def as_dict(self) -> dict[str, float]:
        return {
            "position_size": self.position_size,
            "position_value": self.position_value,
            "unrealized_pnl": self.unrealized_pnl,
            "account_balance": self.account_balance,
            "margin_used": self.margin_used,
            "current_price": self.current_price,
        }


class Voms:
    """Paper book: fills at the current price, balance and margin derived on demand."""

    def __init__(self, starting_balance: float, leverage: float, fee_rate: float = FEE_RATE) -> None:
        if not (math.isfinite(starting_balance) and starting_balance > 0):
            raise ValueError(f"VOMS starting_balance must be > 0, got {starting_balance!r}")
        if not (math.isfinite(leverage) and leverage > 0):
            raise ValueError(f"VOMS leverage must be > 0, got {leverage!r}")
        self.starting_balance = starting_balance
        self.leverage = leverage
        self.fee_rate = fee_rate
        self.current_price = 0.0
        self.trades: list[list[float]] = []

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Voms:
        """Restore all five fields (§15.4); a missing field is a corrupt state, reported by name."""
        missing = [
            k
            for k in ("starting_balance", "leverage", "fee_rate", "current_price", "trades")
            if k not in state
        ]
        if missing:
            raise ValueError(f"voms_state lacks {', '.join(missing)}")
        voms = cls(state["starting_balance"], state["leverage"], state["fee_rate"])
        voms.current_price = state["current_price"]
        trades = []
        for i, fill in enumerate(state["trades"]):
            if len(fill) != 2:
                raise ValueError(f"voms_state trade {i} is not a [price, size] pair: {fill!r}")
            trades.append([fill[0], fill[1]])
        voms.trades = trades
        return voms

    def to_state(self) -> dict[str, Any]:
        return {
            "starting_balance": self.starting_balance,
            "leverage": self.leverage,
            "fee_rate": self.fee_rate,
            "current_price": self.current_price,
            "trades": [[p, q] for p, q in self.trades],
        }

    def set_price(self, price: float) -> None:
        if price < 0:
            raise ValueError(f"VOMS price must not be negative, got {price!r}")
        self.current_price = price

    def add_fill(self, size: float) -> None:
        """Fill `size` (signed base units) at the current price, which must have been set."""
        if self.current_price == 0.0:
            raise ValueError("VOMS cannot fill before a price is set")
        self.trades.append([self.current_price, size])

    def metrics(self) -> VomsMetrics | None:
        if not self.trades:
            return None
        q_sum = 0.0
        e_sum = 0.0
        f_sum = 0.0
        for p, q in self.trades:
            dq, de, df = fill_terms(p, q, self.fee_rate)
            q_sum = q_sum + dq
            e_sum = e_sum + de
            f_sum = f_sum + df
        price = self.current_price
        upnl = ((q_sum * price) - e_sum) - f_sum
        return VomsMetrics(
            position_size=q_sum,
            position_value=e_sum,
            total_fees=f_sum,
            unrealized_pnl=upnl,
            account_balance=self.starting_balance + upnl,
            margin_used=abs(e_sum) / self.leverage,
            current_price=price,
        )


def voms_metrics(voms_state: Mapping[str, Any] | None) -> dict[str, float] | None:
    """§15.3 metrics of a serialised book; None when there is no book or it holds no trades."""
    if not voms_state:
        return None
    m = Voms.from_state(voms_state).metrics()
    return None if m is None else m.as_dict()


def balance_of(voms_state: Mapping[str, Any] | None, start_balance: float) -> float:
    """Account balance of a serialised book, or B0 when it is null or empty (§5.1)."""
    m = voms_metrics(voms_state)
    return float(start_balance) if m is None else float(m["account_balance"])
