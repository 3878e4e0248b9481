"""`3t sim-exchange`: a local Hyperliquid-compatible HTTP and websocket server over the paper engine
(services.md §7.4)."""

from __future__ import annotations

from ttt.api.sim_exchange.app import create_app
from ttt.api.sim_exchange.state import SimSettings, SimState

__all__ = ["SimSettings", "SimState", "create_app"]
