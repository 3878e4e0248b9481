"""The observer HTTP API (portfolio.md §13.2): unauthenticated, read-only, compatible with the reference's
`3T-observer.json`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from ttt.ports import Clock
from ttt.services.portfolio.observer import ObserverPoller, iso_utc
from ttt.telemetry.metrics import exposition


def health(poller: ObserverPoller, clock: Clock, poll_interval_s: float) -> dict[str, Any]:
    """`stale` (still HTTP 200) when the last success is older than three intervals, or when there has
    been none yet: a document nobody refreshed is not evidence of anything."""
    last = poller.last_success
    age = None if last is None else clock.now() - last
    stale = age is None or age > 3 * poll_interval_s
    return {
        "status": "stale" if stale else "ok",
        "observer_id": poller.observer_id,
        "last_success": None if last is None else iso_utc(last),
        "age_s": age,
    }


def create_app(
    poller: ObserverPoller,
    clock: Clock,
    *,
    poll_interval_s: float = 30.0,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    app = FastAPI(title="3T observer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/3T-observer.json")
    def document() -> JSONResponse:
        return JSONResponse(poller.document)

    @app.get("/v1/snapshot")
    def snapshot() -> JSONResponse:
        return JSONResponse(poller.document)

    @app.get("/health")
    def health_endpoint() -> JSONResponse:
        return JSONResponse(health(poller, clock, poll_interval_s))

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(content=body, media_type=content_type)

    return app
