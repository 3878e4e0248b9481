"""The gateway's background loops (portfolio.md §11.6): unknown-outcome resolution on its schedule,
RESTING refresh every `resolver_period_s`, fills every `fills_period_s`, all under `gateway:resolver`.

The lock is held across passes and extended every 10 s; when an extension fails the holder stops
mutating at once and competes for the lock again (§16.2), so one deployment runs one resolver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ttt.services.gateway.service import (
    RESOLVER_EXTEND_S,
    RESOLVER_LOCK,
    RESOLVER_LOCK_TTL_S,
    GatewayService,
)

log = logging.getLogger("ttt.gateway")


class GatewayLoops:
    def __init__(
        self,
        service: GatewayService,
        *,
        tick_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.tick_s = tick_s
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: str | None = None
        self._extended_at = 0.0
        self._next_resting = 0.0
        self._next_fills = 0.0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gateway-resolver", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._release()

    def _release(self) -> None:
        if self._token is not None:
            try:
                self.service.locks.release(RESOLVER_LOCK, self._token)
            except Exception as exc:
                log.warning("releasing %s failed: %s", RESOLVER_LOCK, exc)
            self._token = None

    def _held(self) -> bool:
        """Hold the resolver lock, extending it every 10 s; False when it is someone else's."""
        locks = self.service.locks
        now = self._monotonic()
        try:
            if self._token is None:
                self._token = locks.acquire(RESOLVER_LOCK, RESOLVER_LOCK_TTL_S)
                self._extended_at = now
            elif now - self._extended_at >= RESOLVER_EXTEND_S:
                if locks.extend(RESOLVER_LOCK, self._token, RESOLVER_LOCK_TTL_S):
                    self._extended_at = now
                else:
                    log.warning("lost %s; stopping resolver work until it is re-acquired", RESOLVER_LOCK)
                    self._token = None
        except Exception as exc:
            log.warning("lock service error on %s: %s", RESOLVER_LOCK, exc)
            self._token = None
        return self._token is not None

    def run_pass(self) -> None:
        """One tick: resolve due unknowns; refresh and ingest fills when their periods have passed."""
        if not self._held():
            return
        svc = self.service
        now = self._monotonic()
        svc.resolve_unknown(still_held=self._held)
        if now >= self._next_resting and self._held():
            svc.refresh_resting(still_held=self._held)
            self._next_resting = now + svc.config.resolver_period_s
        if now >= self._next_fills and self._held():
            svc.sync_fills()
            self._next_fills = now + svc.config.fills_period_s

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except Exception as exc:  # a failed pass is retried on the next tick, never fatal
                log.error("gateway resolver pass failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(self.tick_s)
