"""What `3t dashboard` serves (services.md §9): the overview and health documents built from the database
and the cache, and the `/metrics` registry with the DB-derived gauges (§8.1).

Each panel is read on its own and a failure becomes `{"available": false, "error": …}` for that panel
only: one broken query never blanks the page, and a panel that could not be read is never shown as zero.
The documents carry no configuration values and no secrets — only the configuration's hash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ttt.services.dashboard_read import DashboardQueries
from ttt.services.portfolio.read_model import guarded

log = logging.getLogger(__name__)

HEARTBEATS_MAX = 200


def exchange_name(cfg: Any) -> str:
    if cfg.exchange.kind == "paper":
        return "paper"
    return f"hyperliquid-{cfg.exchange.hyperliquid.network}"


def read_heartbeats(client: Any, prefix: str, limit: int = HEARTBEATS_MAX) -> list[dict[str, Any]]:
    """Every live `hb:{component}:{instance}` key (§5): component, instance, age and detail."""
    now = time.time()
    out: list[dict[str, Any]] = []
    for raw_key in client.scan_iter(match=f"{prefix}hb:*", count=500):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        _, _, rest = key[len(prefix) :].partition(":")
        component, _, instance = rest.partition(":")
        raw = client.get(raw_key)
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
            ts = float(doc["ts"])
        except (ValueError, KeyError, TypeError):
            out.append({"component": component, "instance": instance, "error": "malformed heartbeat"})
            continue
        out.append(
            {
                "component": component,
                "instance": instance,
                "ts": ts,
                "age_s": max(0.0, now - ts),
                "version": doc.get("version"),
                "detail": doc.get("detail"),
            }
        )
        if len(out) >= limit:
            break
    return sorted(out, key=lambda h: (h["component"], h["instance"]))


class DashboardDocuments:
    """Builds `/api/v1/overview` and `/api/v1/health` for one dashboard process."""

    def __init__(
        self,
        settings: Any,
        queries: DashboardQueries,
        *,
        heartbeats: Callable[[], list[dict[str, Any]]] | None = None,
        cache_ping: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.config
        self.queries = queries
        self._heartbeats = heartbeats
        self._cache_ping = cache_ping

    def heartbeats(self) -> list[dict[str, Any]]:
        if self._heartbeats is None:
            return []
        try:
            return self._heartbeats()
        except Exception as exc:
            log.warning("heartbeats unavailable: %s", exc)
            return []

    def market(self, heartbeats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The source the active feed announces; else the newest `config.loaded` row that names one."""
        exchange = exchange_name(self.cfg)
        beats = self.heartbeats() if heartbeats is None else heartbeats
        feeds = [
            h
            for h in beats
            if h.get("component") == "feed" and isinstance(h.get("detail"), dict) and h["detail"].get("state")
        ]
        running = [h for h in feeds if h["detail"].get("state") == "running"] or feeds
        try:
            found = self.queries.market_from_audit()
        except Exception as exc:
            log.warning("market source unavailable: %s", exc)
            found = None
        if running:
            source = running[0]["detail"].get("market_source")
            reason = found["reason"] if found is not None and found["source"] == source else "feed_heartbeat"
            return {"source": source, "reason": reason, "exchange": exchange}
        if found is None:
            return {"source": None, "reason": "unknown", "exchange": exchange}
        return {"source": found["source"], "reason": found["reason"], "exchange": exchange}

    def overview(self) -> dict[str, Any]:
        beats = self.heartbeats()
        alerts = guarded("alerts", lambda: {"items": self.queries.alerts()})
        last = guarded("last_cycle", lambda: {"cycle": self.queries.last_cycle()})
        return {
            "market": self.market(beats),
            "account": guarded("account", self.queries.account),
            "take_profit": guarded("take_profit", lambda: self.queries.take_profit(self.cfg.take_profit)),
            "last_cycle": (last.get("cycle") or {"cycle_id": None}) if last["available"] else last,
            "alerts": alerts.get("items", []) if alerts["available"] else alerts,
            "heartbeats": beats,
        }

    def health(self) -> dict[str, Any]:
        from ttt import __version__

        beats = self.heartbeats()

        def db_read() -> dict[str, Any]:
            self.queries.ping()
            return {"status": "ok"}

        db = guarded("database", db_read)
        cache: dict[str, Any] = {"available": False, "error": "no cache configured"}
        if self._cache_ping is not None:
            cache = guarded("cache", lambda: {"status": "ok" if self._cache_ping() else "down"})  # type: ignore[misc]
        return {
            "version": __version__,
            "mode": self.cfg.mode,
            "config_sha256": self.settings.config_hash(),
            "market": self.market(beats),
            "database": db,
            "cache": cache,
            "heartbeats": beats,
        }
