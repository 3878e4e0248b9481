"""The simulator's tape: each price event becomes one synthetic trade, and each batch of events is handed
to the `/ws` subscribers (services.md §6.3, §7.4).

The simulator has no order flow of its own, so a price event *is* its last trade: side `B` when the price
rose, `A` when it fell (unchanged keeps the previous side), size one lot of the product, time on the
simulated clock (the clock that moves the market, as candles and fills use). `tid` and `hash` are a
SHA-256 of (coin, time, event number, price): unique within a process because the event number only
grows, and identical when the same events are replayed in the same order, so a client can dedupe on
either.

Listeners are called on the thread that moved the price (the real-time driver, or an HTTP handler for
`/_sim/price`) while it holds the state's lock; they must only hand the batch over, never block.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ttt.adapters.exchange.paper import fmt_decimal

log = logging.getLogger(__name__)

SYNTHETIC_USER = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class SimTrade:
    coin: str
    side: Literal["B", "A"]
    px: str
    sz: str
    time: int
    hash: str
    tid: int

    def wire(self) -> dict[str, Any]:
        """The Hyperliquid `WsTrade` shape."""
        return {
            "coin": self.coin,
            "side": self.side,
            "px": self.px,
            "sz": self.sz,
            "time": self.time,
            "hash": self.hash,
            "tid": self.tid,
            "users": [SYNTHETIC_USER, SYNTHETIC_USER],
        }


@dataclass(frozen=True)
class PriceBatch:
    """The trades of one price update (one source tick, or one `/_sim/price`) and the mids after it, by
    dex ("" is the main dex), exactly as `/info` `allMids` renders them."""

    seq: int
    trades: tuple[SimTrade, ...]
    mids: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


Listener = Callable[[PriceBatch], None]


class PriceTape:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._events = 0
        self._side: dict[str, Literal["B", "A"]] = {}
        self.seq = 0

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def trade(self, coin: str, old: Decimal | None, new: Decimal, lot: Decimal, time_ms: int) -> SimTrade:
        self._events += 1
        side: Literal["B", "A"] = self._side.get(coin, "B")
        if old is not None and new != old:
            side = "B" if new > old else "A"
        self._side[coin] = side
        px = fmt_decimal(new)
        digest = hashlib.sha256(f"{coin}:{time_ms}:{self._events}:{px}".encode()).hexdigest()
        return SimTrade(coin, side, px, fmt_decimal(lot), time_ms, "0x" + digest, int(digest[:12], 16))

    def publish(self, trades: tuple[SimTrade, ...], mids: Mapping[str, Mapping[str, str]]) -> None:
        self.seq += 1
        batch = PriceBatch(self.seq, trades, mids)
        for listener in list(self._listeners):
            try:
                listener(batch)
            except Exception as exc:  # a closed connection must never stop the market
                log.warning("price listener dropped: %s", exc)
                self.remove_listener(listener)
