"""The alert sink (portfolio.md §0): log + `ttt_alerts_total` + audit row + optional webhook.

Every call counts, so Prometheus sees the true rate; the noisy parts (log record, audit row, webhook,
event stream) are rate-limited per (component, reason, scope) so a failure that repeats every few
seconds cannot flood the audit log or the operator's phone. An alert must never take the caller down:
a failing audit write or webhook is logged and swallowed, because the caller is usually already
handling a failure and must go on holding.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.engine import Engine

from ttt.ports import Cache, Clock
from ttt.telemetry.metrics import Metrics

log = logging.getLogger("ttt.alerts")

AlertSeverity = Literal["warning", "critical"]
EVENTS_STREAM = "stream:events"


@dataclass(frozen=True)
class Alert:
    ts: float
    component: str
    reason: str
    severity: AlertSeverity
    scope: str | None = None
    message: str = ""
    cycle_id: str | None = None
    symbol: str | None = None
    lock_token: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "reason": self.reason,
            "severity": self.severity,
            "scope": self.scope,
            "detail": dict(self.detail),
        }


AuditWriter = Callable[[Alert], None]
WebhookPost = Callable[[str, dict[str, Any], str | None], None]


def db_audit_writer(engine: Engine, actor: str) -> AuditWriter:
    """Appends the `alert` audit row in its own short transaction (never inside the caller's)."""

    def write(alert: Alert) -> None:
        from ttt.adapters.db.uow import UnitOfWork

        with UnitOfWork(engine) as uow:
            uow.audit.append(
                ts=alert.ts,
                kind="alert",
                actor=actor,
                message=alert.message or alert.reason,
                payload=alert.payload(),
                severity=alert.severity,
                cycle_id=alert.cycle_id,
                symbol=alert.symbol,
                lock_token=alert.lock_token,
            )

    return write


def threaded_webhook_post(timeout_s: float = 5.0) -> WebhookPost:
    """POSTs from a daemon thread so a slow receiver never delays a cycle."""

    def post(url: str, body: dict[str, Any], token: str | None) -> None:
        def send() -> None:
            import httpx

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                response = httpx.post(url, json=body, headers=headers, timeout=timeout_s)
                if response.status_code >= 300:
                    log.warning("alert webhook answered HTTP %s", response.status_code)
            except httpx.HTTPError as exc:
                log.warning("alert webhook failed: %s", exc)

        threading.Thread(target=send, name="ttt-alert-webhook", daemon=True).start()

    return post


class AlertSink:
    def __init__(
        self,
        clock: Clock,
        metrics: Metrics | None = None,
        *,
        audit: AuditWriter | None = None,
        min_interval_s: float = 300.0,
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        webhook_post: WebhookPost | None = None,
        cache: Cache | None = None,
        events_maxlen: int = 10000,
        history: int = 1000,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._audit = audit
        self._min_interval_s = min_interval_s
        self._webhook_url = webhook_url
        self._webhook_token = webhook_token
        self._webhook_post = webhook_post if webhook_post is not None else threaded_webhook_post()
        self._cache = cache
        self._events_maxlen = events_maxlen
        self._last: dict[tuple[str, str, str | None], float] = {}
        self._mutex = threading.Lock()
        self.recent: deque[tuple[Alert, bool]] = deque(maxlen=history)

    def alert(
        self,
        component: str,
        reason: str,
        severity: AlertSeverity,
        *,
        scope: str | None = None,
        message: str = "",
        cycle_id: str | None = None,
        symbol: str | None = None,
        lock_token: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """Raise one alert; returns whether it was emitted in full (False: rate-limited, counted only)."""
        if severity not in ("warning", "critical"):
            raise ValueError(f"alert severity must be warning or critical, got {severity!r}")
        now = self._clock.now()
        alert = Alert(
            now,
            component,
            reason,
            severity,
            scope if scope is not None else symbol,
            message,
            cycle_id,
            symbol,
            lock_token,
            dict(detail or {}),
        )
        if self._metrics is not None:
            self._metrics.alerts_total.labels(component, reason, severity).inc()
        key = (component, reason, alert.scope)
        with self._mutex:
            last = self._last.get(key)
            emit = last is None or now - last >= self._min_interval_s
            if emit:
                self._last[key] = now
            self.recent.append((alert, emit))
        if emit:
            self._emit(alert)
        return emit

    def publish(
        self,
        kind: str,
        severity: str,
        *,
        component: str,
        reason: str = "",
        symbol: str | None = None,
        cycle_id: str | None = None,
        ts: float | None = None,
        message: str = "",
    ) -> None:
        """One entry of `ttt:stream:events` (services.md §5), the dashboard's live feed of alerts and
        audited events such as cycle starts and ends. Best effort: the stream is a view, the audit log is
        the record, so a cache failure is logged and never reaches the caller."""
        if self._cache is None:
            return
        try:
            self._cache.xadd(
                EVENTS_STREAM,
                {
                    "kind": kind,
                    "severity": severity,
                    "component": component,
                    "reason": reason,
                    "symbol": symbol or "",
                    "cycle_id": cycle_id or "",
                    "ts": self._clock.now() if ts is None else ts,
                    "message": message,
                },
                self._events_maxlen,
            )
        except Exception as exc:
            log.warning("event %s/%s: event stream not written: %s", kind, reason, exc)

    def _emit(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        log.log(
            level,
            "alert %s/%s%s: %s",
            alert.component,
            alert.reason,
            f" [{alert.scope}]" if alert.scope else "",
            alert.message or alert.reason,
            extra={"component": alert.component, "cycle_id": alert.cycle_id, "symbol": alert.symbol},
        )
        if self._audit is not None:
            try:
                self._audit(alert)
            except Exception as exc:  # the caller is already handling a failure; never add another
                log.error("alert %s: audit row not written: %s", alert.reason, exc)
        stamp = datetime.fromtimestamp(alert.ts, UTC).isoformat()
        self.publish(
            "alert",
            alert.severity,
            component=alert.component,
            reason=alert.reason,
            symbol=alert.symbol,
            cycle_id=alert.cycle_id,
            ts=alert.ts,
            message=alert.message,
        )
        if self._webhook_url:
            body = {
                "ts": stamp,
                "component": alert.component,
                "reason": alert.reason,
                "severity": alert.severity,
                "symbol": alert.symbol,
                "cycle_id": alert.cycle_id,
                "message": alert.message or alert.reason,
            }
            try:
                self._webhook_post(self._webhook_url, body, self._webhook_token)
            except Exception as exc:
                log.warning("alert webhook not sent: %s", exc)

    def reasons(self) -> list[str]:
        """Reasons of the recent alerts, oldest first (diagnostics and `3t` output)."""
        return [a.reason for a, _ in self.recent]
