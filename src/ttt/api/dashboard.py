"""The dashboard HTTP server: health, `/metrics`, the single-page UI and the read-only JSON API
(services.md §9), for `3t dashboard` (S2) and the embedded server of `3t run` (S1).

* **UI.** `/` is the page shell with the market banner rendered in; `/ui/app.js` and `/ui/app.css`
  (package data in `dashboard_ui/`, read once at start) draw the pages from the JSON API in the browser.
  Only these fixed assets are served, never a path taken from the request.

* **Auth.** With a token (`secrets.dashboard.token`) every path except `/health` and `/metrics` needs
  `Authorization: Bearer <token>` or the session cookie that `/login` sets. The cookie holds an HMAC
  of the token, never the token, so no response ever carries the secret; comparisons are constant-time.
  A refused request gets 401 with a JSON message.
* **Market banner.** The index page and `/api/v1/overview` name the market source and why it was chosen,
  styled as a warning for simulated prices, so they are never mistaken for live ones.
* **Errors.** A bad query parameter is a 400 naming it; an unknown run, cycle or order is a 404; both JSON.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import os
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from prometheus_client import CollectorRegistry

from ttt.telemetry.metrics import exposition

if TYPE_CHECKING:
    from ttt.services.dashboard_events import DashboardEvents
    from ttt.services.dashboard_panels import DashboardPanels

PUBLIC_PATHS = frozenset({"/health", "/metrics", "/login"})
DEFAULT_REFRESH_S = 5.0
UI_ASSETS = {
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
}
SESSION_COOKIE = "ttt_dashboard_session"
MAX_LOGIN_BODY = 4096
ENDPOINTS = (
    ("/api/v1/overview", "market, account, take-profit, last cycle, alerts (24 h), heartbeats"),
    ("/api/v1/health", "heartbeats, config hash, version, mode, market source"),
    ("/api/v1/runs", "runs: symbol, state=active|ended|flagged|heightened, height, limit ≤ 500, cursor"),
    ("/api/v1/runs/{id}", "one run with parameters and a state summary"),
    ("/api/v1/cycles", "reconciliation cycles: limit, cursor"),
    ("/api/v1/cycles/{cycle_id}", "one cycle with its per-symbol decisions and audit rows"),
    ("/api/v1/orders", "gateway order records: status, symbol, cycle_id, limit, cursor"),
    ("/api/v1/epochs", "epochs with per-symbol PnL of each height: limit, cursor"),
    ("/api/v1/population", "active runs per symbol, qualifying runs and Σdir, live_pnl histogram: symbol"),
    ("/api/v1/positions", "desired, quorum actual, cap and decision per symbol of the latest cycle"),
    ("/api/v1/orders/{client_order_id}", "one order record with its audit trail and fills"),
    ("/api/v1/fills", "fills, newest first: symbol, since, limit, cursor"),
    ("/api/v1/equity", "account value over time and epochs: from, to, step (≤ 2000 points by default)"),
    ("/api/v1/events", "Server-Sent Events: price, balance, order, alert, cycle; Last-Event-ID resumes"),
    ("/metrics", "Prometheus exposition"),
)


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, useless for the bearer header."""
    return hmac.new(token.encode(), b"3t-dashboard-session", hashlib.sha256).hexdigest()


def _error(status: int, error: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def banner_html(market: dict[str, Any] | None) -> str:
    market = market or {}
    source = str(market.get("source") or "unknown")
    reason = str(market.get("reason") or "unknown")
    exchange = str(market.get("exchange") or "unknown")
    simulated = source in ("synthetic", "replay", "unknown")
    style = "background:#b00020;color:#fff" if simulated else "background:#1b5e20;color:#fff"
    text = f"MARKET DATA: {source.upper()} ({reason}) · exchange {exchange}"
    return (
        f'<div id="banner" class="banner" style="{style};padding:8px;font-weight:bold">'
        f"{html.escape(text)}</div>"
    )


def ui_asset(name: str) -> bytes:
    """One file of the packaged UI (package data, so it is in the wheel and the editable install)."""
    return resources.files("ttt.api").joinpath("dashboard_ui", name).read_bytes()


@functools.cache
def _shell() -> str:
    return ui_asset("index.html").decode()


def index_html(market: dict[str, Any] | None, refresh_s: float = DEFAULT_REFRESH_S) -> str:
    """The UI shell with the banner rendered in, so it shows before any script runs; the endpoint list
    is the page for a browser without JavaScript."""
    rows = "".join(
        f"<li><code>{html.escape(path)}</code> — {html.escape(what)}</li>" for path, what in ENDPOINTS
    )
    page = _shell()
    return (
        page.replace("{{banner}}", banner_html(market))
        .replace("{{refresh_s}}", html.escape(f"{refresh_s:g}"))
        .replace("{{endpoints}}", rows)
    )


LOGIN_FORM = (
    "<!doctype html><html><head><meta charset='utf-8'><title>3T dashboard login</title></head><body>"
    "<h1>3T dashboard</h1>{message}<form method='post' action='/login'>"
    "<label>Token <input type='password' name='token' autocomplete='current-password'></label> "
    "<button type='submit'>Log in</button></form></body></html>"
)


def create_dashboard_app(
    registry: CollectorRegistry,
    overview: Callable[[], dict[str, Any]],
    health: Callable[[], dict[str, Any]],
    *,
    token: str | None = None,
    queries: Any = None,
    market: Callable[[], dict[str, Any] | None] | None = None,
    secure_cookie: bool = False,
    public_health: Callable[[], dict[str, Any]] | None = None,
    panels: DashboardPanels | None = None,
    events: DashboardEvents | None = None,
    refresh_s: float | None = None,
) -> FastAPI:
    """`queries` (a `DashboardQueries`) adds the list and detail endpoints, `panels` (a
    `DashboardPanels`) the population, positions, fills, equity and order-detail ones; `events` (over
    the process's cache) feeds `/api/v1/events`, which answers 503 without it so clients poll; `market`
    feeds the banner; `public_health` answers the unauthenticated `/health` (default: `health`);
    `refresh_s` (`dashboard.refresh_s`, default the events' own) is the page's polling period."""
    from ttt.services.dashboard_read import BadRequest, NotFound

    page_refresh_s: float = refresh_s if refresh_s is not None else DEFAULT_REFRESH_S
    if refresh_s is None and events is not None:
        page_refresh_s = events.refresh_s
    # read now, so a broken install fails at start rather than on the first page view
    assets = {path: (ui_asset(name), media_type) for path, (name, media_type) in UI_ASSETS.items()}
    _shell()

    app = FastAPI(title="3T dashboard", version="1", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token and request.url.path not in PUBLIC_PATHS and not _authorized(request, token):
            if request.url.path == "/" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return _error(401, "unauthorized", "this dashboard needs Authorization: Bearer <token> or /login")
        return await call_next(request)

    @app.exception_handler(BadRequest)
    async def _bad(_request: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(NotFound)
    async def _missing(_request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.get("/health")
    def _health() -> dict[str, Any]:
        return public_health() if public_health is not None else health()

    @app.get("/metrics")
    def _metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(content=body, media_type=content_type)

    @app.get("/", response_class=HTMLResponse)
    def _index() -> str:
        return index_html(market() if market is not None else overview().get("market"), page_refresh_s)

    def _asset_route(path: str, body: bytes, media_type: str) -> None:
        @app.get(path, include_in_schema=False)
        def _asset() -> Response:
            return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    for path, (body, media_type) in assets.items():
        _asset_route(path, body, media_type)

    @app.get("/login", response_class=HTMLResponse)
    def _login_form() -> str:
        return LOGIN_FORM.format(message="" if token else "<p>This dashboard has no token set.</p>")

    @app.post("/login")
    async def _login(request: Request) -> Response:
        if not token:
            return RedirectResponse("/", status_code=303)
        body = await request.body()
        if len(body) > MAX_LOGIN_BODY:
            return _error(413, "too_large", "login form too large")
        given = (parse_qs(body.decode(errors="replace")).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), token.encode()):
            page = LOGIN_FORM.format(message="<p>Wrong token.</p>")
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, session_value(token), httponly=True, samesite="strict", secure=secure_cookie
        )
        return response

    @app.get("/api/v1/overview")
    def _overview() -> dict[str, Any]:
        return overview()

    @app.get("/api/v1/health")
    def _api_health() -> dict[str, Any]:
        return health()

    @app.get("/api/v1/events")
    async def _events(request: Request) -> Response:
        if events is None:
            return _error(
                503,
                "unavailable",
                "no live event stream: this process shares no cache with the writers "
                "(cache.backend memory outside 3t run); poll the JSON endpoints",
            )
        body = events.stream(request.headers.get("last-event-id"), request.is_disconnected)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    if queries is not None:

        @app.get("/api/v1/runs")
        def _runs(request: Request) -> dict[str, Any]:
            return dict(queries.runs(request.query_params))

        @app.get("/api/v1/runs/{run_id}")
        def _run(run_id: str) -> dict[str, Any]:
            return dict(queries.run(run_id))

        @app.get("/api/v1/cycles")
        def _cycles(request: Request) -> dict[str, Any]:
            return dict(queries.cycles(request.query_params))

        @app.get("/api/v1/cycles/{cycle_id}")
        def _cycle(cycle_id: str) -> dict[str, Any]:
            return dict(queries.cycle(cycle_id))

        @app.get("/api/v1/orders")
        def _orders(request: Request) -> dict[str, Any]:
            return dict(queries.orders(request.query_params))

        @app.get("/api/v1/epochs")
        def _epochs(request: Request) -> dict[str, Any]:
            return dict(queries.epochs(request.query_params))

    if panels is not None:

        @app.get("/api/v1/population")
        def _population(request: Request) -> dict[str, Any]:
            return dict(panels.population(request.query_params))

        @app.get("/api/v1/positions")
        def _positions() -> dict[str, Any]:
            return dict(panels.positions())

        @app.get("/api/v1/orders/{client_order_id}")
        def _order(client_order_id: str) -> dict[str, Any]:
            return dict(panels.order(client_order_id))

        @app.get("/api/v1/fills")
        def _fills(request: Request) -> dict[str, Any]:
            return dict(panels.fills(request.query_params))

        @app.get("/api/v1/equity")
        def _equity(request: Request) -> dict[str, Any]:
            return dict(panels.equity(request.query_params))

    return app


class ForegroundServer(uvicorn.Server):
    """uvicorn in the main thread with the shutdown of services.md §1.4: the first SIGINT/SIGTERM stops
    serving and the process exits 0 (plain uvicorn re-raises the signal after shutdown, so the exit
    status would say "killed"); a second signal exits at once. `on_stop` runs when stopping begins: open
    event streams never end by themselves, and uvicorn waits for every open response."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:
            os._exit(130)
        self.should_exit = True
        if self._on_stop is not None:
            self._on_stop()


GRACEFUL_SHUTDOWN_S = 5


def serve_foreground(
    app: FastAPI, host: str, port: int, log_level: str, on_stop: Callable[[], None] | None = None
) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    ForegroundServer(config, on_stop).run()


class BackgroundServer:
    """uvicorn in a daemon thread, stopped cleanly on shutdown (`on_stop` first, as in the foreground)."""

    def __init__(self, app: FastAPI, host: str, port: int, on_stop: Callable[[], None] | None = None) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"http-{port}", daemon=True)
        self._on_stop = on_stop

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._on_stop is not None:
            self._on_stop()
        self.server.should_exit = True
        self.thread.join(timeout_s)
