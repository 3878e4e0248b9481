"""FastAPI application of `3t sim-exchange` (services.md §7.4): `/info`, `/exchange`, `/ws`, test API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send

from ttt.api.sim_exchange.actions import BadRequest, handle_exchange
from ttt.api.sim_exchange.info import InfoError, handle_info, info_weight
from ttt.api.sim_exchange.state import Fault, RateLimiter, SimSettings, SimState
from ttt.api.sim_exchange.ws import add_websocket

_LOOPBACK = ("127.", "::1", "localhost", "testclient")


class DroppedResponse(Response):
    """Headers promising a body that never comes, then the connection closes: what a client sees when the
    server executed the action and the connection died before the answer arrived."""

    def __init__(self) -> None:
        super().__init__(content=b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )


def _json(payload: Any) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"Failed to deserialize the JSON body: {exc}") from exc


def create_app(engine_state: SimState, settings: SimSettings | None = None) -> FastAPI:
    """The simulator over `engine_state`; the `/_sim` test API exists only with `settings.test_api`."""
    cfg = settings or SimSettings()
    state = engine_state
    limiter = RateLimiter(cfg.rate_limit_per_min)
    app = FastAPI(title="3t sim-exchange", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = state
    app.state.settings = cfg

    def client_of(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    async def apply_fault(fault: Fault | None) -> Response | None:
        if fault is None or fault.mode == "drop_after_commit":
            return None
        if fault.mode == "429":
            return PlainTextResponse("Too many requests (simulated fault)", status_code=429)
        if fault.mode == "500":
            return PlainTextResponse("Internal server error (simulated fault)", status_code=500)
        await asyncio.sleep(fault.seconds if fault.seconds is not None else cfg.timeout_fault_s)
        return PlainTextResponse("Gateway timeout (simulated fault)", status_code=504)

    def admitted(request: Request, weight: int) -> bool:
        with state.lock:
            ok = limiter.admit(client_of(request), weight, state.wall.now())
            if not ok:
                state.counters["rate_limited"] += 1
            return ok

    @app.post("/info")
    async def info(request: Request) -> Response:
        fault = state.take_fault("info")
        early = await apply_fault(fault)
        if early is not None:
            return early
        try:
            body = await _body(request)
        except BadRequest as exc:
            return PlainTextResponse(str(exc), status_code=422)
        kind = body.get("type") if isinstance(body, dict) else None
        if not admitted(request, info_weight(kind)):
            return PlainTextResponse("Too many requests", status_code=429)
        state.counters["info_requests"] += 1
        try:
            payload = handle_info(state, body)
        except InfoError as exc:
            return PlainTextResponse(str(exc), status_code=422)
        if fault is not None:
            return DroppedResponse()
        return _json(payload)

    @app.post("/exchange")
    async def exchange(request: Request) -> Response:
        fault = state.take_fault("exchange")
        early = await apply_fault(fault)
        if early is not None:
            return early
        if not admitted(request, 1):
            return PlainTextResponse("Too many requests", status_code=429)
        state.counters["exchange_requests"] += 1
        try:
            payload = handle_exchange(state, cfg, await _body(request))
        except BadRequest as exc:
            return PlainTextResponse(str(exc), status_code=422)
        if fault is not None:
            return DroppedResponse()
        return _json(payload)

    add_websocket(app, state)
    if cfg.test_api:
        _add_test_api(app, state)
    return app


def _add_test_api(app: FastAPI, state: SimState) -> None:
    def local(request: Request) -> bool:
        host = request.client.host if request.client is not None else ""
        return host.startswith(_LOOPBACK)

    def refused() -> Response:
        return JSONResponse(
            {"error": "forbidden", "message": "the test API answers loopback clients only"}, 403
        )

    def bad(message: str) -> Response:
        return JSONResponse({"error": "invalid_request", "message": message}, 422)

    @app.get("/_sim/state")
    async def sim_state(request: Request) -> Response:
        if not local(request):
            return refused()
        return _json(state.snapshot())

    @app.post("/_sim/price")
    async def sim_price(request: Request) -> Response:
        if not local(request):
            return refused()
        try:
            body = await _body(request)
            coin, px = body["coin"], body["px"]
            if isinstance(px, bool) or not isinstance(px, int | float | str):
                raise ValueError("px must be a number or a decimal string")
            state.set_price(str(coin), px)
        except KeyError as exc:
            return bad(f"unknown coin or missing field: {exc}")
        except (BadRequest, TypeError, ValueError, ArithmeticError) as exc:
            return bad(str(exc))
        return _json({"status": "ok", "time_ms": state.sim_ms()})

    @app.post("/_sim/advance")
    async def sim_advance(request: Request) -> Response:
        if not local(request):
            return refused()
        try:
            body = await _body(request)
            seconds = body["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("seconds must be a number")
            state.advance(float(seconds))
        except (BadRequest, KeyError, TypeError, ValueError) as exc:
            return bad(f"advance: {exc}")
        return _json({"status": "ok", "time_ms": state.sim_ms()})

    @app.post("/_sim/fault")
    async def sim_fault(request: Request) -> Response:
        if not local(request):
            return refused()
        try:
            body = await _body(request)
            count = body.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int):
                raise ValueError("count must be an integer")
            seconds = body.get("seconds")
            state.add_fault(
                str(body["endpoint"]), str(body["mode"]), count, None if seconds is None else float(seconds)
            )
        except (BadRequest, KeyError, TypeError, ValueError) as exc:
            return bad(f"fault: {exc}")
        return _json({"status": "ok"})

    @app.post("/_sim/reset")
    async def sim_reset(request: Request) -> Response:
        if not local(request):
            return refused()
        state.reset()
        return _json({"status": "ok"})
