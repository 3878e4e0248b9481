"""The exchange observer (portfolio.md §13.1) and the quorum sources that read observer documents (§6.3).

The observer polls `clearinghouseState` per wallet and dex and publishes one document. A wallet with any
failed dex is left out rather than published without that dex: a missing position must never be read as
"flat" by a consumer (the reference published partial wallets). When nothing succeeds the previous
document stays, and its ageing timestamp makes consumers treat it as stale.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from ttt.domain.quorum import (
    MAX_DOCUMENT_BYTES,
    ObserverDocument,
    Unavailable,
    parse_observer_document,
    parse_observer_response,
)
from ttt.ports import Clock, LockManager
from ttt.services.portfolio.alerts import AlertSink
from ttt.services.portfolio.ingestion import is_rate_limited
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

SCHEMA = "3t-observer/1"
COMPONENT = "observer"

InfoFetch = Callable[[str, str], Mapping[str, Any]]
"""(wallet, dex) → the verbatim `clearinghouseState` answer; raises on failure."""


def iso_utc(t: float) -> str:
    """ISO-8601 with microseconds and offset `+00:00` (§13.1)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def _dec(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d


def _text(d: Decimal) -> str:
    return format(d, "f")


def aggregate_wallet(per_dex: Sequence[tuple[str, Mapping[str, Any]]], fetched_ms: int) -> dict[str, Any]:
    """The reference aggregation: main state plus each HIP-3 dex's account value, margin used and
    positions; `crossMaintenanceMarginUsed` stays the main dex's value."""
    if not per_dex or per_dex[0][0] != "":
        raise ValueError("the main dex answer must come first")
    main = copy.deepcopy(dict(per_dex[0][1]))
    summary = dict(main.get("marginSummary") or {})
    value = _dec(summary.get("accountValue", "0"))
    used = _dec(summary.get("totalMarginUsed", "0"))
    positions = list(main.get("assetPositions") or [])
    for _dex, state in per_dex[1:]:
        dex_summary = state.get("marginSummary") or {}
        value += _dec(dex_summary.get("accountValue", "0"))
        used += _dec(dex_summary.get("totalMarginUsed", "0"))
        positions.extend(copy.deepcopy(list(state.get("assetPositions") or [])))
    summary["accountValue"] = _text(value)
    summary["totalMarginUsed"] = _text(used)
    main["marginSummary"] = summary
    main["assetPositions"] = positions
    if not isinstance(main.get("time"), int | float) or isinstance(main.get("time"), bool):
        main["time"] = fetched_ms
    return main


def empty_document(observer_id: str, timestamp: float, dexes: Sequence[str]) -> dict[str, Any]:
    return {
        "observer_id": observer_id,
        "timestamp": iso_utc(timestamp),
        "positions": {},
        "dexes": list(dexes),
        "schema": SCHEMA,
    }


@dataclass
class PollReport:
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_polled: list[str] = field(default_factory=list)
    rate_limited: bool = False
    published: bool = False


class ObserverPoller:
    """Holds the current document; `poll_once` is one §13.1 cycle."""

    def __init__(
        self,
        fetch: InfoFetch,
        wallets: Sequence[str],
        clock: Clock,
        *,
        observer_id: str = "local-observer-1",
        dexes: Sequence[str] = (),
        alerts: AlertSink | None = None,
        metrics: Metrics | None = None,
        persist_path: str | Path | None = None,
    ) -> None:
        self._fetch = fetch
        self.wallets = [w.lower() for w in wallets]
        self._clock = clock
        self.observer_id = observer_id
        self.dexes = [d for d in dexes if d]
        self._alerts = alerts
        self._metrics = metrics
        self._persist = Path(persist_path) if persist_path is not None else None
        self._mutex = threading.Lock()
        self.last_success: float | None = None
        self.backoff_intervals = 0
        loaded = self._load()
        self._document = (
            loaded if loaded is not None else empty_document(observer_id, clock.now(), self.dexes)
        )

    def _load(self) -> dict[str, Any] | None:
        if self._persist is None or not self._persist.exists():
            return None
        try:
            data = json.loads(self._persist.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("observer document %s not loaded: %s", self._persist, exc)
            return None
        if isinstance(parse_observer_document(data), Unavailable):
            log.warning("observer document %s ignored: not a valid observer document", self._persist)
            return None
        return dict(data)

    def _save(self, document: Mapping[str, Any]) -> None:
        if self._persist is None:
            return
        self._persist.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".3T-observer.", dir=self._persist.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh)
            os.replace(tmp, self._persist)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def document(self) -> dict[str, Any]:
        with self._mutex:
            return copy.deepcopy(self._document)

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.observer_polls_total.labels(result).inc()

    def poll_once(self) -> PollReport:
        report = PollReport()
        states: dict[str, dict[str, Any]] = {}
        now = self._clock.now()
        for index, wallet in enumerate(self.wallets):
            per_dex: list[tuple[str, Mapping[str, Any]]] = []
            error: str | None = None
            for dex in ["", *self.dexes]:
                try:
                    per_dex.append((dex, self._fetch(wallet, dex)))
                except Exception as exc:
                    if is_rate_limited(exc):
                        report.rate_limited = True
                    error = f"dex {dex or 'main'}: {type(exc).__name__}: {exc}"
                    break
            if error is None:
                try:
                    states[wallet] = aggregate_wallet(per_dex, round(self._clock.now() * 1000))
                except (ValueError, TypeError, AttributeError) as exc:
                    error = f"malformed answer: {exc}"
            if error is None:
                report.succeeded.append(wallet)
                self._count("ok")
            else:
                report.failed.append(wallet)
                self._count("error")
                if self._alerts is not None:
                    self._alerts.alert(
                        COMPONENT,
                        "observer_poll_failed",
                        "warning",
                        scope=wallet,
                        message=f"{wallet}: {error}",
                    )
            if report.rate_limited:
                report.not_polled = self.wallets[index + 1 :]
                self.backoff_intervals = 1
                break
        if states:
            document = {
                "observer_id": self.observer_id,
                "timestamp": iso_utc(now),
                "positions": states,
                "dexes": list(self.dexes),
                "schema": SCHEMA,
            }
            with self._mutex:
                self._document = document
                self.last_success = now
            report.published = True
            try:
                self._save(document)
            except OSError as exc:
                log.warning("observer document not persisted to %s: %s", self._persist, exc)
        return report

    def run(
        self,
        stop: threading.Event,
        interval_s: float,
        *,
        locks: LockManager | None = None,
    ) -> None:
        """The poll loop of `3t observer` (wall-clock intervals), under lock `observer:poll:<id>`."""
        name = f"observer:poll:{self.observer_id}"
        while not stop.is_set():
            if self.backoff_intervals:
                self.backoff_intervals -= 1
            else:
                token = locks.acquire(name, 2 * interval_s) if locks is not None else "local"
                if token is None:
                    log.info("observer poll skipped: lock %s is held", name)
                else:
                    try:
                        self.poll_once()
                    except Exception:
                        log.exception("observer poll failed")
                    finally:
                        if locks is not None:
                            locks.release(name, token)
            stop.wait(interval_s)


def hyperliquid_info_fetch(post_info: Callable[[Mapping[str, Any]], Any]) -> InfoFetch:
    """Raw `/info` clearinghouseState requests over the observer's own client session (§6.1)."""

    def fetch(wallet: str, dex: str) -> Mapping[str, Any]:
        body: dict[str, Any] = {"type": "clearinghouseState", "user": wallet}
        if dex:
            body["dex"] = dex
        answer = post_info(body)
        if not isinstance(answer, Mapping):
            raise ValueError(f"clearinghouseState for {wallet} dex {dex or 'main'} is not an object")
        return answer

    return fetch


# --- quorum sources (consumer side, §6.3) ------------------------------------------------------------


class EmbeddedObserverSource:
    """E: the in-process observer's current document, read without HTTP."""

    def __init__(self, poller: ObserverPoller, name: str = "embedded") -> None:
        self.name = name
        self._poller = poller

    def fetch(self) -> ObserverDocument | Unavailable:
        return parse_observer_document(self._poller.document)


class HttpObserverSource:
    """O_i: one GET of a remote `/3T-observer.json` per cycle, with a timeout and a 5 MiB limit."""

    def __init__(
        self, name: str, url: str, timeout_s: float = 5.0, client: httpx.Client | None = None
    ) -> None:
        self.name = name
        self.url = url
        self._timeout = timeout_s
        self._client = client

    def fetch(self) -> ObserverDocument | Unavailable:
        client = self._client or httpx.Client(timeout=self._timeout)
        try:
            with client.stream("GET", self.url, timeout=self._timeout) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOCUMENT_BYTES:
                        return Unavailable("transport", f"response larger than {MAX_DOCUMENT_BYTES} bytes")
                    chunks.append(chunk)
                return parse_observer_response(response.status_code, b"".join(chunks))
        except httpx.HTTPError as exc:
            return parse_observer_response(None, None, f"{type(exc).__name__}: {exc}")
        finally:
            if self._client is None:
                client.close()
