"""Start-up steps every Store-using process shares (services.md §1.4).

Step 5: after the schema check (and, in `3t run` / `3t feed`, after the market source is resolved) the
process writes the audit row `config.loaded`. It records which configuration is running (its SHA-256,
never a value, so no secret can reach the audit log), the version, the mode and, where known, the market
source and the reason it was chosen (§6).
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ttt.config import Settings
    from ttt.runtime.market import MarketChoice

CONFIG_LOADED = "config.loaded"


def actor_name(process: str) -> str:
    """`<process>@<host>:<pid>`: which instance wrote a row (several workers share a host)."""
    return f"{process}@{socket.gethostname()}:{os.getpid()}"


def config_loaded_payload(
    settings: Settings, process: str, market: MarketChoice | None = None
) -> dict[str, Any]:
    from ttt import __version__

    payload: dict[str, Any] = {
        "config_sha256": settings.config_hash(),
        "version": __version__,
        "mode": settings.config.mode,
        "process": process,
    }
    if market is not None:
        payload["market_source"] = market.source
        payload["market_reason"] = market.reason
    return payload


def write_config_loaded(
    engine: Engine,
    settings: Settings,
    process: str,
    *,
    market: MarketChoice | None = None,
    now: float | None = None,
) -> int:
    """Append the `config.loaded` row in its own transaction; returns its id."""
    import sqlalchemy as sa

    from ttt.adapters.db.repositories.audit import AuditRepository

    mode = settings.config.mode
    message = market.banner() if market is not None else f"3t {process} started ({mode} mode)"
    with sa.orm.Session(engine) as session, session.begin():
        return AuditRepository(session).append(
            ts=time.time() if now is None else now,
            kind=CONFIG_LOADED,
            actor=actor_name(process),
            severity="info",
            message=message,
            payload=config_loaded_payload(settings, process, market),
        )
