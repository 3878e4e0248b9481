"""`3t gateway`: serve the order gateway over HTTP (portfolio.md §11, services.md §12)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ttt.cli.context import CliState, err_console
from ttt.errors import ConfigError, TTTError

log = logging.getLogger("ttt.gateway")


class GatewayStartError(TTTError):
    """The gateway could not start (database, cache); one line for the user, exit code 1."""


def gateway(
    ctx: typer.Context,
    bind: Annotated[str | None, typer.Option("--bind", help="Overrides gateway.bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Overrides gateway.port.")] = None,
) -> None:
    """Start the order gateway HTTP server."""
    import uvicorn

    from ttt.adapters.cache.factory import make_cache, make_lock_manager
    from ttt.adapters.db.engine import make_engine, redacted
    from ttt.adapters.db.migrate import check_schema, upgrade
    from ttt.api.gateway import MIN_TOKEN_LENGTH, create_gateway_app
    from ttt.config import load_settings
    from ttt.runtime.startup import write_config_loaded
    from ttt.services.gateway.bootstrap import WallClock, build_gateway
    from ttt.telemetry.metrics import Metrics

    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    overrides: dict[str, object] = {}
    if state.log_level:
        overrides["observability.log_level"] = state.log_level
    if bind is not None:
        overrides["gateway.bind"] = bind
    if port is not None:
        overrides["gateway.port"] = port
    settings = load_settings(
        state.config_path, state.secrets_path, cli_overrides=overrides or None, process="gateway"
    )
    cfg = settings.config
    secret = settings.secrets.gateway.token
    token = secret.get_secret_value() if secret is not None else ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError([f"secrets.gateway.token: must be at least {MIN_TOKEN_LENGTH} characters"])
    db = cfg.database
    password = settings.secrets.database.password
    engine = make_engine(
        db.url,
        password=password.get_secret_value() if password is not None else None,
        pool_size=db.pool_size,
        pool_recycle_s=db.pool_recycle_s,
    )
    clock = WallClock()
    try:
        if settings.auto_migrate:
            upgrade(engine)
        check_schema(engine)
        write_config_loaded(engine, settings, "gateway")  # §1.4 step 5
        redis_password = settings.secrets.redis.password
        cache = make_cache(
            settings.cache_backend,
            cfg.cache.redis_url,
            cfg.cache.prefix,
            redis_password.get_secret_value() if redis_password is not None else None,
        )
        lock_backend = "redis" if settings.cache_backend == "redis" else "db"
        locks = make_lock_manager(
            lock_backend,
            cfg.cache.redis_url,
            cfg.cache.prefix,
            redis_password.get_secret_value() if redis_password is not None else None,
            engine=engine,
            clock=clock,
        )
        metrics = Metrics.create()
        bundle = build_gateway(
            settings, engine=engine, cache=cache, locks=locks, clock=clock, metrics=metrics
        )
    except TTTError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise GatewayStartError(
            f"gateway start failed ({redacted(engine.url)}): {type(exc).__name__}: {exc}"
        ) from None
    app = create_gateway_app(
        bundle.service, token=token, max_body_bytes=cfg.gateway.max_body_bytes, metrics=metrics
    )
    bundle.loops.start()
    err_console.print(f"3t gateway listening on http://{cfg.gateway.bind}:{cfg.gateway.port}", markup=False)
    try:
        uvicorn.run(
            app,
            host=cfg.gateway.bind,
            port=cfg.gateway.port,
            log_level=cfg.observability.log_level.lower(),
            access_log=False,
        )
    finally:
        bundle.loops.stop()
        engine.dispose()
