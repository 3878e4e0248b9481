"""The embedded dashboard HTTP server: health, `/metrics` and the read-only JSON overview (services.md §9).

The market banner is part of every answer so simulated prices are never mistaken for live ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry

from ttt.telemetry.metrics import exposition


def create_dashboard_app(
    registry: CollectorRegistry, overview: Callable[[], dict[str, Any]], health: Callable[[], dict[str, Any]]
) -> FastAPI:
    app = FastAPI(title="3T dashboard", version="1", docs_url=None, redoc_url=None)

    @app.get("/health")
    def _health() -> dict[str, Any]:
        return health()

    @app.get("/metrics")
    def _metrics() -> Response:
        body, content_type = exposition(registry)
        return Response(content=body, media_type=content_type)

    @app.get("/api/v1/overview")
    def _overview() -> dict[str, Any]:
        return overview()

    @app.get("/api/v1/health")
    def _api_health() -> dict[str, Any]:
        return health()

    return app


class BackgroundServer:
    """uvicorn in a daemon thread, stopped cleanly on shutdown."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"http-{port}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
