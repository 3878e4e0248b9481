"""Values whose default depends on the deployment mode or the process (the `null = …` keys of §11.2)."""

from __future__ import annotations

import os

from ttt.config.models import Config

PROCESSES: tuple[str, ...] = (
    "run",
    "worker",
    "beat",
    "feed",
    "gateway",
    "observer",
    "dashboard",
    "sim-exchange",
    "cli",
)

DISTRIBUTED_GATEWAY_URL = "http://127.0.0.1:8002"
# services.md §1.3: processes without their own HTTP server expose metrics on these ports.
_METRICS_PORTS: dict[str, int] = {"worker": 9101, "beat": 9102, "feed": 9103}


def embedded(config: Config) -> bool:
    return config.mode == "embedded"


def auto_migrate(config: Config) -> bool:
    value = config.database.auto_migrate
    return embedded(config) if value is None else value


def cache_backend(config: Config) -> str:
    value = config.cache.backend
    if value is None:
        return "memory" if embedded(config) else "redis"
    return value


def log_format(config: Config) -> str:
    value = config.observability.log_format
    if value is None:
        return "text" if embedded(config) else "json"
    return value


def embedded_observer(config: Config) -> bool:
    value = config.portfolio.quorum.embedded_observer
    return embedded(config) if value is None else value


def gateway_url(config: Config) -> str:
    value = config.portfolio.gateway.url
    if value is None:
        return "embedded" if embedded(config) else DISTRIBUTED_GATEWAY_URL
    return value


def observer_hip3_dexes(config: Config) -> list[str]:
    value = config.observer.hip3_dexes
    return list(config.exchange.hyperliquid.hip3_dexes if value is None else value)


def _cpus(cpu_count: int | None) -> int:
    return cpu_count if cpu_count is not None else (os.cpu_count() or 1)


def embedded_workers(config: Config, cpu_count: int | None = None) -> int:
    """`embedded.workers`; 0 means the CPU count, and never fewer than two threads (§1.2)."""
    value = config.embedded.workers
    return max(2, _cpus(cpu_count)) if value == 0 else value


def celery_concurrency(config: Config, cpu_count: int | None = None) -> int:
    value = config.celery.concurrency
    return _cpus(cpu_count) if value == 0 else value


def quorum_sources(config: Config) -> int:
    """n of the k-of-n quorum: the local snapshot, each remote observer, and the embedded observer."""
    return 1 + len(config.portfolio.quorum.observers) + (1 if embedded_observer(config) else 0)


def price_mode(config: Config) -> str:
    """`market_data.price.mode` with `auto` resolved (§6.3).

    A custom network without a websocket URL cannot stream, so `auto` polls there rather than failing.
    """
    mode = config.market_data.price.mode
    if mode != "auto":
        return mode
    hl = config.exchange.hyperliquid
    if hl.proxies or (hl.network == "custom" and hl.ws_url is None):
        return "polling"
    return "websocket"


def metrics_port(config: Config, process: str) -> int | None:
    """The Prometheus port of a process; None when it serves /metrics on its own HTTP server."""
    if config.observability.metrics_port is not None:
        return config.observability.metrics_port
    return _METRICS_PORTS.get(process)


def hosts_gateway(process: str) -> bool:
    """Processes that run the order gateway service and so hold the signing key."""
    return process in ("run", "gateway")


def serves_gateway_http(config: Config, process: str) -> bool:
    return process == "gateway" or (process == "run" and config.embedded.serve_gateway_http)
