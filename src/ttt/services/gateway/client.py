"""The engine's side of the gateway (portfolio.md §11.7): an HTTP client for distributed mode, an
in-process client for embedded mode, and one mapping from the gateway's answer to the cycle outcome.

Both clients return the same `GatewayReply`, so the reconciliation code has one path for a decision
whatever the transport.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
from opentelemetry import trace
from opentelemetry.propagate import inject

from ttt.services.gateway.model import (
    GatewayError,
)

log = logging.getLogger("ttt.gateway.client")

Transport = Literal["ok", "timeout", "unreachable"]


@dataclass(frozen=True)
class GatewayReply:
    """`status`/`body` of the gateway's answer; `transport` says whether there was one at all.

    After a timeout `record` holds what a later GET returned (for the audit), or None.
    """

    status: int | None
    body: dict[str, Any] | None
    transport: Transport = "ok"
    record: dict[str, Any] | None = None

    @property
    def error_code(self) -> str | None:
        if self.body is None or not isinstance(self.body.get("error"), str):
            return None
        return str(self.body["error"])


class GatewayClient(Protocol):
    def submit(self, body: Mapping[str, Any]) -> GatewayReply: ...

    def get_order(self, client_order_id: str) -> GatewayReply: ...

    def cancel_open(self, symbols: Sequence[str]) -> GatewayReply: ...


def _decode(response: httpx.Response) -> dict[str, Any] | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class HttpGatewayClient:
    """POST once; one retry after 1 s on a connection error with no response (safe by idempotency);
    on a timeout no retry, but one GET of the record 5 s later."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpGatewayClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @staticmethod
    def _headers() -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        inject(headers)
        return headers

    def _post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        content = json.dumps(body, allow_nan=False, separators=(",", ":"))
        return self._http.post(path, content=content, headers=self._headers())

    def submit(self, body: Mapping[str, Any]) -> GatewayReply:
        cloid = str(body.get("client_order_id", ""))
        tracer = trace.get_tracer("ttt.gateway.client")
        with tracer.start_as_current_span("gateway.client.submit") as span:
            span.set_attribute("client_order_id", cloid)
            for attempt in (1, 2):
                try:
                    response = self._post("/v1/orders", body)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                    if attempt == 1:
                        log.warning("gateway connection failed (%s); retrying once in 1 s", exc)
                        self._sleep(1.0)
                        continue
                    return GatewayReply(None, None, "unreachable")
                except httpx.TimeoutException:
                    self._sleep(5.0)
                    return GatewayReply(None, None, "timeout", self._record_after_timeout(cloid))
                except httpx.TransportError as exc:
                    if attempt == 1:
                        log.warning("gateway transport error (%s); retrying once in 1 s", exc)
                        self._sleep(1.0)
                        continue
                    return GatewayReply(None, None, "unreachable")
                span.set_attribute("http.status_code", response.status_code)
                return GatewayReply(response.status_code, _decode(response))
        return GatewayReply(None, None, "unreachable")  # pragma: no cover - the loop always returns

    def _record_after_timeout(self, cloid: str) -> dict[str, Any] | None:
        try:
            reply = self.get_order(cloid)
        except httpx.HTTPError:
            return None
        return reply.body if reply.status == 200 else None

    def get_order(self, client_order_id: str) -> GatewayReply:
        try:
            response = self._http.get(f"/v1/orders/{client_order_id}", headers=self._headers())
        except httpx.TimeoutException:
            return GatewayReply(None, None, "timeout")
        except httpx.TransportError:
            return GatewayReply(None, None, "unreachable")
        return GatewayReply(response.status_code, _decode(response))

    def cancel_open(self, symbols: Sequence[str]) -> GatewayReply:
        try:
            response = self._post("/v1/cancel-open", {"symbols": list(symbols), "scope": "ours"})
        except httpx.TimeoutException:
            return GatewayReply(None, None, "timeout")
        except httpx.TransportError:
            return GatewayReply(None, None, "unreachable")
        return GatewayReply(response.status_code, _decode(response))


class InProcessGatewayClient:
    """Embedded mode: the same service calls, without the transport and its token check (§11 S1).

    The body goes through the same JSON encoding as on the wire, so a NaN or an unusual Python type is
    refused exactly as the HTTP parser would refuse it.
    """

    def __init__(self, service: Any) -> None:
        self.service = service

    def _call(self, fn: Callable[[], Any]) -> GatewayReply:
        try:
            answer = fn()
        except GatewayError as exc:
            return GatewayReply(exc.status, exc.body())
        except Exception as exc:
            log.exception("gateway internal error")
            return GatewayReply(
                500, {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}", "details": None}
            )
        return GatewayReply(answer.status, answer.body)

    def submit(self, body: Mapping[str, Any]) -> GatewayReply:
        try:
            wire = json.loads(json.dumps(dict(body), allow_nan=False))
        except (TypeError, ValueError) as exc:
            return GatewayReply(
                400, {"error": "malformed_json", "message": f"body is not valid JSON: {exc}", "details": None}
            )
        return self._call(lambda: self.service.create_order(wire))

    def get_order(self, client_order_id: str) -> GatewayReply:
        return self._call(lambda: self.service.get_order(client_order_id))

    def cancel_open(self, symbols: Sequence[str]) -> GatewayReply:
        return self._call(lambda: self.service.cancel_open(list(symbols), "ours"))
