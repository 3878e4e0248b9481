"""`3t dashboard`: the web dashboard, JSON API and DB-derived metrics (services.md §1.3, §8.1, §9).

Distributed mode is its home, but it reads any configured database: pointed at the configuration of a
`3t run` it shows that SQLite file (on another port than the embedded server). Start-up follows §1.4:
configuration (exit 2), logging, the Store's schema check (exit 3), the cache Redis check when the cache
is Redis, the `config.loaded` audit row, then the server on `dashboard.bind`:`dashboard.port`
(127.0.0.1:8080). `/metrics` exports this process's registry plus the DB-derived gauges that
`ttt.ops.collect_metrics` stores in the cache, so each of those series exists exactly once.
"""

from __future__ import annotations

import logging
import socket
from typing import Annotated, Any

import typer

from ttt.cli.context import err_console
from ttt.errors import TTTError

log = logging.getLogger("ttt.dashboard")


class DashboardStartError(TTTError):
    """The dashboard could not listen; one line for the user, exit 1."""


def _port_free(host: str, port: int) -> str | None:
    """None when host:port can be bound; otherwise the reason (uvicorn would only log and exit)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return str(exc)
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def dashboard(
    ctx: typer.Context,
    bind: Annotated[str | None, typer.Option("--bind", help="Overrides dashboard.bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Overrides dashboard.port.")] = None,
) -> None:
    """Start the web dashboard, JSON API and DB-derived metrics."""
    from ttt.adapters.cache.redis_cache import RedisCache, make_redis_client
    from ttt.api.dashboard import create_dashboard_app, serve_foreground
    from ttt.cli.dist_cmd import _check_redis, _config_loaded, _open_store, _settings
    from ttt.runtime.dashboard_service import DashboardDocuments, read_heartbeats
    from ttt.services.dashboard_events import DashboardEvents
    from ttt.services.dashboard_panels import DashboardPanels
    from ttt.services.dashboard_read import DashboardQueries
    from ttt.telemetry.metrics import DB_GAUGES_KEY, DbGaugeCollector, Metrics

    settings = _settings(ctx, "dashboard", distributed_only=False)
    cfg = settings.config
    host = bind if bind is not None else cfg.dashboard.bind
    listen_port = port if port is not None else cfg.dashboard.port
    if not 0 < listen_port < 65536:
        from ttt.errors import ConfigError

        raise ConfigError([f"--port {listen_port}: must be between 1 and 65535"])
    engine = _open_store(settings)
    client: Any = None
    try:
        if settings.cache_backend == "redis":
            _check_redis(settings)
            client = make_redis_client(settings.redis_url())
        _config_loaded(engine, settings, "dashboard")
    except BaseException:
        engine.dispose()
        if client is not None:
            client.close()
        raise

    metrics = Metrics.create()
    prefix = cfg.cache.prefix
    heartbeats = None
    cache_ping = None
    events = None
    if client is not None:
        redis_client = client

        def load_db_gauges() -> bytes | None:
            raw: bytes | None = redis_client.get(f"{prefix}{DB_GAUGES_KEY}")
            return raw

        metrics.registry.register(DbGaugeCollector(load_db_gauges))

        def heartbeats() -> list[dict[str, Any]]:
            return read_heartbeats(redis_client, prefix)

        cache_ping = redis_client.ping
        events = DashboardEvents(RedisCache(redis_client, prefix), refresh_s=cfg.dashboard.refresh_s)
    queries = DashboardQueries(engine)
    docs = DashboardDocuments(settings, queries, heartbeats=heartbeats, cache_ping=cache_ping)
    secret = settings.secrets.dashboard.token
    token = secret.get_secret_value() if secret is not None else None
    if not token:
        log.warning(
            "secrets.dashboard.token is not set: the dashboard API is open to anyone who can reach it"
        )
    app = create_dashboard_app(
        metrics.registry,
        docs.overview,
        docs.health,
        token=token,
        queries=queries,
        market=docs.market,
        public_health=lambda: {"status": "ok"},
        panels=DashboardPanels(engine, cfg.portfolio),
        events=events,
        refresh_s=cfg.dashboard.refresh_s,
    )
    problem = _port_free(host, listen_port)
    if problem is not None:
        engine.dispose()
        if client is not None:
            client.close()
        raise DashboardStartError(
            f"dashboard: cannot listen on {host}:{listen_port} ({problem}); set dashboard.port / "
            "dashboard.bind (or --port / --bind)"
        )
    err_console.print(f"3t dashboard listening on http://{host}:{listen_port}", markup=False)
    try:
        serve_foreground(
            app, host, listen_port, cfg.observability.log_level.lower(), events.close if events else None
        )
    finally:
        engine.dispose()
        if client is not None:
            client.close()
