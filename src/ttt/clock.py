"""The wall clock: the Clock of live processes (replay, backtests and tests inject simulated ones)."""

from __future__ import annotations

import time


class WallClock:
    def now(self) -> float:
        return time.time()
