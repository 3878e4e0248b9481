"""The order gateway's HTTP API (portfolio.md §11.1–§11.3, §11.8, §12).

The app is a thin transport over `GatewayService`: it authenticates, parses and maps errors to the §11.2
body; every decision is the service's, so embedded mode (no HTTP) behaves identically.

Order of checks on `/v1/*` (§11.3 step 1): authenticate (401) before anything else, then parse (400, 413,
415), then validate (422). The body is read by the route itself, not by FastAPI, so that `NaN`, oversize
bodies and wrong content types get the specified answers; the OpenAPI document still describes the body.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from opentelemetry.propagate import extract
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ttt.errors import ConfigError
from ttt.services.gateway.model import GatewayError, request_json_schema, validation_error
from ttt.services.gateway.service import Answer, GatewayService
from ttt.telemetry.metrics import Metrics, exposition

log = logging.getLogger("ttt.gateway.http")

MIN_TOKEN_LENGTH = 32
UNAUTHORIZED = {"error": "unauthorized", "message": "missing or invalid bearer token", "details": None}
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


CloidPath = Annotated[str, Path(pattern=r"^0x[0-9a-f]{32}$", description="client order id")]


class CancelOpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    symbols: list[str]
    scope: Literal["ours"] = "ours"


def _error(status: int, code: str, message: str, details: Any = None, headers: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message, "details": details}, status_code=status, headers=headers
    )


def _answer(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers or None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON: 415 unless application/json, 413 past `max_bytes`, 400 when malformed
    (including the `NaN` / `Infinity` literals Python's parser would otherwise accept)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise GatewayError(415, "unsupported_media_type", "the body must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise GatewayError(413, "body_too_large", f"the body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise GatewayError(413, "body_too_large", f"the body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise GatewayError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _field_name(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_gateway_app(
    service: GatewayService,
    *,
    token: str,
    max_body_bytes: int = 16384,
    metrics: Metrics | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The gateway app over one service. `token` is `secrets.gateway.token` (≥ 32 characters)."""
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError([f"secrets.gateway.token: must be at least {MIN_TOKEN_LENGTH} characters"])
    expected = f"Bearer {token}".encode()
    metrics = metrics if metrics is not None else service.metrics
    if registry is None and metrics is not None:
        registry = metrics.registry
    app = FastAPI(
        title="3T order gateway",
        version="1",
        description="Order gateway of 3T (portfolio.md §11). Every /v1 route needs a bearer token.",
    )
    app.state.service = service

    def authorized(header: str | None) -> bool:
        given = (header or "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, expected)

    def endpoint_label(request: Request) -> str:
        for route in app.router.routes:
            match, _ = route.matches(request.scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "other"))
        return "unmatched"

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if (path == "/v1" or path.startswith("/v1/")) and not authorized(
            request.headers.get("authorization")
        ):
            response: Response = JSONResponse(
                UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            if metrics is not None:
                metrics.gateway_requests_total.labels(endpoint_label(request), "401").inc()
            return response
        response = await call_next(request)
        if metrics is not None:
            metrics.gateway_requests_total.labels(endpoint_label(request), str(response.status_code)).inc()
        return response

    @app.exception_handler(GatewayError)
    async def on_gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.details, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_name(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()
        ]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
        return _error(422, "validation_failed", message, {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected gateway error")
        return _error(500, "internal_error", f"internal error: {type(exc).__name__}")

    order_schema = request_json_schema(service.policy)
    cancel_schema = CancelOpenBody.model_json_schema()
    cancel_schema["properties"]["symbols"]["items"] = {
        "type": "string",
        "enum": list(service.policy.universe),
    }
    cancel_schema["additionalProperties"] = False
    secured: dict[str, Any] = {"security": [{"bearerAuth": []}]}

    def json_body(schema: dict[str, Any]) -> dict[str, Any]:
        return {
            **secured,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        }

    @app.post("/v1/orders", openapi_extra=json_body(order_schema), status_code=201)
    async def create_order(request: Request) -> Response:
        body = await read_json(request, max_body_bytes)
        context = extract(dict(request.headers))
        answer = await run_in_threadpool(service.create_order, body, trace_context=context)
        return _answer(answer)

    @app.get("/v1/orders/{client_order_id}", openapi_extra=secured)
    async def get_order(client_order_id: CloidPath) -> Response:
        return _answer(await run_in_threadpool(service.get_order, client_order_id))

    @app.get("/v1/orders", openapi_extra=secured)
    async def list_orders(
        cycle_id: Annotated[str | None, Query(max_length=64)] = None,
        symbol: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
        since: Annotated[datetime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=32)] = None,
    ) -> Response:
        answer = await run_in_threadpool(
            lambda: service.list_orders(
                cycle_id=cycle_id, symbol=symbol, status=status, since=since, limit=limit, cursor=cursor
            )
        )
        return _answer(answer)

    @app.post("/v1/orders/{client_order_id}/cancel", openapi_extra=secured)
    async def cancel_order(client_order_id: CloidPath) -> Response:
        return _answer(await run_in_threadpool(service.cancel_order, client_order_id))

    @app.post("/v1/cancel-open", openapi_extra=json_body(cancel_schema))
    async def cancel_open(request: Request) -> Response:
        raw = await read_json(request, max_body_bytes)
        if not isinstance(raw, dict):
            raise validation_error([("body", "must be a JSON object")])
        try:
            body = CancelOpenBody.model_validate(raw)
        except ValidationError as exc:
            raise validation_error([(_field_name(e["loc"]), str(e["msg"])) for e in exc.errors()]) from None
        context = extract(dict(request.headers))
        answer = await run_in_threadpool(
            lambda: service.cancel_open(body.symbols, body.scope, trace_context=context)
        )
        return _answer(answer)

    @app.get("/v1/open-orders", openapi_extra=secured)
    async def open_orders(symbol: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        return _answer(await run_in_threadpool(service.open_orders, symbol))

    @app.get("/health")
    async def health() -> Response:
        return _answer(await run_in_threadpool(service.health))

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(body, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            doc.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"}
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
