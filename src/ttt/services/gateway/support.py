"""Ports of the gateway that are not shared with other services: where P_g comes from, how alerts leave,
and a serialising wrapper for venues that are not thread-safe (the in-process paper engine)."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from ttt.domain.rounding import to_decimal
from ttt.ports import Cache, Clock
from ttt.telemetry.metrics import Metrics

log = logging.getLogger("ttt.gateway")


class PriceSource(Protocol):
    """The gateway price P_g of a symbol with its timestamp (epoch s), or None when there is none."""

    def latest(self, symbol: str) -> tuple[Decimal, float] | None: ...


def price_key(symbol: str) -> str:
    return f"price:{symbol}"


class CachePrices:
    """`ttt:price:{symbol}` as the feed writes it (services.md §5); a malformed record is no price."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def latest(self, symbol: str) -> tuple[Decimal, float] | None:
        raw = self.cache.get(price_key(symbol))
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            price, ts = float(doc["price"]), float(doc["ts"])
        except (ValueError, KeyError, TypeError):
            log.error("price record %s is malformed: %r", price_key(symbol), raw)
            return None
        if not (math.isfinite(price) and price > 0 and math.isfinite(ts)):
            log.error("price record %s is not a finite positive price: %r", price_key(symbol), raw)
            return None
        return to_decimal(price), ts


class PaperPrices:
    """The paper engine's own last price; it is current by construction, so its age is zero."""

    def __init__(self, paper: Any, clock: Clock) -> None:
        self.paper = paper
        self.clock = clock

    def latest(self, symbol: str) -> tuple[Decimal, float] | None:
        price = self.paper.price(symbol)
        return (Decimal(price), self.clock.now()) if price is not None else None


class FirstPrice:
    """The first source that has a price (the feed's cache, then the paper engine)."""

    def __init__(self, *sources: PriceSource) -> None:
        self.sources = sources

    def latest(self, symbol: str) -> tuple[Decimal, float] | None:
        for source in self.sources:
            found = source.latest(symbol)
            if found is not None:
                return found
        return None


class AlertSink(Protocol):
    def __call__(
        self,
        component: str,
        reason: str,
        severity: str,
        *,
        scope: str | None = None,
        detail: str | None = None,
        symbol: str | None = None,
        cycle_id: str | None = None,
        client_order_id: str | None = None,
    ) -> None: ...


class AuditAlertSink:
    """An alert (portfolio.md §0): a log record, the counter, and an `alert` audit row; log and audit are
    rate-limited per (component, reason, scope), the counter never is. Webhooks are the runtime's sink."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        metrics: Metrics | None,
        actor: str,
        min_interval_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.actor = actor
        self.min_interval_s = min_interval_s
        self._last: dict[tuple[str, str, str | None], float] = {}
        self._mutex = threading.Lock()

    def __call__(
        self,
        component: str,
        reason: str,
        severity: str,
        *,
        scope: str | None = None,
        detail: str | None = None,
        symbol: str | None = None,
        cycle_id: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        if self.metrics is not None:
            self.metrics.alerts_total.labels(component, reason, severity).inc()
        now = self.clock.now()
        key = (component, reason, scope)
        with self._mutex:
            last = self._last.get(key)
            if last is not None and now - last < self.min_interval_s:
                return
            self._last[key] = now
        level = logging.ERROR if severity == "critical" else logging.WARNING
        log.log(level, "alert %s/%s (%s) scope=%s: %s", component, reason, severity, scope, detail or "")
        from ttt.adapters.db.uow import UnitOfWork

        try:
            with UnitOfWork(self.engine) as uow:
                uow.audit.append(
                    ts=now,
                    kind="alert",
                    actor=self.actor,
                    message=f"{component}/{reason}: {detail or ''}".strip(),
                    severity=severity if severity in ("warning", "critical") else "warning",
                    payload={
                        "component": component,
                        "reason": reason,
                        "severity": severity,
                        "scope": scope,
                        "detail": detail,
                    },
                    symbol=symbol,
                    cycle_id=cycle_id,
                    client_order_id=client_order_id,
                )
        except Exception as exc:  # an alert that cannot be recorded is still logged and counted
            log.error("alert %s/%s could not be written to the audit log: %s", component, reason, exc)


class SerializedExchange:
    """Forward every call to `inner` under one mutex, for venues that are not thread-safe."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._mutex = threading.RLock()

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._mutex:
                return target(*args, **kwargs)

        return call


def noop_alert(*_args: Any, **_kwargs: Any) -> None:
    return None


SleepFn = Callable[[float], None]
