"""`3t worker` and `3t beat`: the distributed runtime's processes (services.md §1.3, §1.4, §12).

Each validates the configuration (exit 2), checks the schema revision where it uses the Store (exit 3 when
behind) and the cache Redis eviction policy (SV-07), writes the `config.loaded` audit row where it uses the
Store (§1.4 step 5), opens its metrics listener (worker 9101 with multiprocess aggregation over the prefork
pool, beat 9102; `observability.metrics_port` / `metrics_bind`) and only then starts. `3t feed` and
`3t dashboard` (feed_cmd, dashboard_cmd) reuse these steps.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from ttt.cli.context import CliState, err_console
from ttt.errors import ConfigError, TTTError

log = logging.getLogger("ttt.dist")


class StartError(TTTError):
    """A dependency (database, Redis) could not be reached at start; one line for the user, exit 1."""


def _settings(ctx: typer.Context, process: str, *, distributed_only: bool = True) -> Any:
    from ttt.config import load_settings
    from ttt.telemetry.logs import setup_logging

    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    overrides: dict[str, Any] = {}
    if state.log_level:
        overrides["observability.log_level"] = state.log_level
    settings = load_settings(
        state.config_path, state.secrets_path, cli_overrides=overrides or None, process=process
    )
    cfg = settings.config
    if distributed_only and cfg.mode != "distributed":
        raise ConfigError([f"mode: `3t {process}` runs in distributed mode only (mode is {cfg.mode!r})"])
    setup_logging(
        process=process,
        level=cfg.observability.log_level,
        fmt=settings.log_format,
        sampling_rate=cfg.observability.sampling_rate,
        secrets=settings.secret_values(),
    )
    for warning in settings.warnings:
        log.warning("config: %s", warning)
    # Prefork children and any process we start read the same files (celery_app.settings_from_env).
    for name, path in (("TTT_CONFIG", state.config_path), ("TTT_SECRETS", state.secrets_path)):
        if path is not None:
            os.environ[name] = str(Path(path).resolve())
    return settings


def _check_redis(settings: Any) -> None:
    from ttt.adapters.cache.policy import check_eviction_policy
    from ttt.adapters.cache.redis_cache import make_redis_client
    from ttt.errors import CacheUnavailable

    client = make_redis_client(settings.redis_url())
    try:
        warning = check_eviction_policy(client, settings.config.cache.allow_allkeys_eviction)
    except CacheUnavailable as exc:
        raise StartError(f"cache Redis unreachable: {exc}") from None
    finally:
        client.close()
    if warning:
        log.warning("%s", warning)


def _open_store(settings: Any) -> Any:
    """The Store's engine after the schema check (§1.4 step 3): exit 3 when behind, 1 when unusable.

    In S2 the schema is never upgraded here (`3t db upgrade` does that); a process configured for embedded
    mode (`3t dashboard` against the `3t run` database) follows `database.auto_migrate` like `3t run`.
    """
    from ttt.adapters.db.engine import make_engine, redacted
    from ttt.adapters.db.migrate import check_schema, upgrade

    cfg = settings.config
    engine = make_engine(
        settings.database_url(), pool_size=cfg.database.pool_size, pool_recycle_s=cfg.database.pool_recycle_s
    )
    try:
        if settings.auto_migrate and cfg.mode != "distributed":
            upgrade(engine)
        check_schema(engine)
    except TTTError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise StartError(f"database {redacted(engine.url)} unusable: {type(exc).__name__}: {exc}") from None
    return engine


def _check_schema(settings: Any) -> None:
    _open_store(settings).dispose()


def _config_loaded(engine: Any, settings: Any, process: str, market: Any = None) -> None:
    """§1.4 step 5: the `config.loaded` audit row; a database that refuses it is a start error."""
    from ttt.adapters.db.engine import redacted
    from ttt.runtime.startup import write_config_loaded

    try:
        write_config_loaded(engine, settings, process, market=market)
    except Exception as exc:
        raise StartError(
            f"database {redacted(engine.url)}: audit row config.loaded not written: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def worker(
    ctx: typer.Context,
    queues: Annotated[
        str, typer.Option("-Q", "--queues", help="Comma-separated: high_priority, low_priority.")
    ] = "high_priority,low_priority",
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Overrides celery.concurrency.")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", "-P", help="prefork | threads.")] = None,
) -> None:
    """Start a Celery worker for the given queues (S2)."""
    from ttt.runtime.celery_app import HIGH, LOW, configure_app

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in (HIGH, LOW)]
    if not wanted or unknown:
        raise ConfigError([f"-Q {queues!r}: queues are {HIGH} and {LOW}"])
    if concurrency is not None and concurrency < 1:
        raise ConfigError([f"--concurrency {concurrency}: must be ≥ 1"])
    if pool is not None and pool not in ("prefork", "threads"):
        raise ConfigError([f"--pool {pool!r}: prefork or threads"])
    settings = _settings(ctx, "worker")
    engine = _open_store(settings)
    try:
        _check_redis(settings)
        _config_loaded(engine, settings, "worker")
    finally:
        engine.dispose()
    celery = configure_app(settings)
    n = concurrency or settings.celery_concurrency()
    pool_name = pool or settings.config.celery.pool
    name = f"ttt-{'+'.join(wanted)}-{os.getpid()}@{socket.gethostname()}"
    # Metrics (§1.3): the pool children write multiprocess files, this process serves their aggregate.
    # The directory must exist before the pool forks and before any child builds its Metrics.
    from ttt.runtime import worker_metrics
    from ttt.runtime.metrics_server import MultiprocessDir, listen_for

    multiproc = MultiprocessDir()
    multiproc.enable()
    try:
        listener = listen_for(settings, multiproc.registry())
    except TTTError:
        multiproc.cleanup()
        raise
    worker_metrics.connect()
    where = f", metrics {listener.url}" if listener is not None else ""
    err_console.print(f"3t worker {name}: queues {', '.join(wanted)}, {pool_name} × {n}{where}", markup=False)
    w = celery.Worker(
        hostname=name,
        queues=wanted,
        concurrency=n,
        pool_cls=pool_name,
        loglevel=settings.config.observability.log_level,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )
    try:
        w.start()
    finally:
        if listener is not None:
            listener.close()
        multiproc.cleanup()
    code = int(w.exitcode or 0)
    if code:
        raise typer.Exit(code)


def beat(ctx: typer.Context) -> None:
    """Start the periodic scheduler (S2; one active, lock `beat`)."""
    from ttt.adapters.cache.locks import RedisLockManager
    from ttt.adapters.cache.redis_cache import make_redis_client
    from ttt.runtime.beat import BeatLoop
    from ttt.runtime.celery_app import PERIODIC, STARTUP_ONE_OFFS, configure_app, send
    from ttt.runtime.metrics_server import listen_for
    from ttt.telemetry.metrics import Metrics

    settings = _settings(ctx, "beat")
    _check_redis(settings)
    configure_app(settings)
    periods = settings.config.scheduler.periods
    metrics = Metrics.create()
    listener = listen_for(settings, metrics.registry)
    client = make_redis_client(settings.redis_url())
    loop = BeatLoop(
        RedisLockManager(client, settings.config.cache.prefix),
        [(name, float(getattr(periods, key))) for name, key in PERIODIC],
        send,
        startup=STARTUP_ONE_OFFS,
        metrics=metrics,
    )

    def _stop(signum: int, _frame: Any) -> None:
        log.info("beat: signal %d, stopping", signum)
        loop.stop_event.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    err_console.print(f"3t beat pid {os.getpid()}: waiting for lock 'beat'", markup=False)
    try:
        loop.run()
    finally:
        client.close()
        if listener is not None:
            listener.close()


def register(app: typer.Typer) -> None:
    """How the lead wires these into `3t` (kept out of ttt.cli.__init__ on purpose)."""
    app.command(name="worker")(worker)
    app.command(name="beat")(beat)


if __name__ == "__main__":  # `python -m ttt.cli.dist_cmd worker …` until the commands are registered
    import sys

    from ttt.cli import app as _app
    from ttt.cli import main as _main

    if not any(c.name in ("worker", "beat") for c in _app.registered_commands):
        register(_app)
    sys.exit(_main(sys.argv[1:]))
