"""The Prometheus listener of processes without an HTTP server of their own (services.md §1.3, §8).

`3t worker` (9101), `3t beat` (9102) and `3t feed` (9103) serve `/metrics` on `observability.metrics_port`,
bound to `observability.metrics_bind` (127.0.0.1 unless configured). A port that is already taken is a
start error with one line naming the address and the key to change, never a traceback.

Prefork workers use Prometheus multiprocess mode: each pool child writes its samples into memory-mapped
files under `PROMETHEUS_MULTIPROC_DIR`, and the parent's listener aggregates them at every scrape. The
directory is made fresh per worker process (a stale one from an earlier run would resurrect old counts)
and removed at exit.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from ttt.errors import TTTError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsListenError(TTTError):
    """The metrics port could not be bound; one line for the user, exit code 1."""


@dataclass
class MetricsListener:
    """A running `/metrics` HTTP listener; `close()` stops it."""

    host: str
    port: int
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        try:
            self._server.shutdown()
            self._server.server_close()
        except Exception as exc:  # a failing close must not mask the process's own exit status
            log.warning("metrics listener close: %s", exc)
        self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsListener:
    """Start the listener in a daemon thread; a bind failure raises `MetricsListenError`."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsListenError(
            f"metrics listener: cannot bind {host}:{port} ({exc.strerror or exc}); set "
            "observability.metrics_port (and observability.metrics_bind) to a free address"
        ) from None
    actual = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", host, actual)
    return MetricsListener(host, actual, server, thread)


def listen_for(settings: Any, registry: CollectorRegistry) -> MetricsListener | None:
    """The process's listener per configuration; None when the process has no metrics port."""
    port = settings.metrics_port
    if port is None:
        return None
    return serve_metrics(registry, settings.config.observability.metrics_bind, int(port))


class MultiprocessDir:
    """A fresh multiprocess directory for one worker and its pool children.

    `enable()` must run before the pool forks: it exports the variable the children inherit and points
    prometheus_client's value class at the files (the class is chosen when prometheus_client is imported,
    which may already have happened in this process). When the variable is already set (the compose file
    mounts a tmpfs there) the fresh directory is made inside it.
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self._previous: str | None = None

    def enable(self) -> str:
        self._previous = os.environ.get(MULTIPROC_ENV)
        base = self._previous if self._previous and os.path.isdir(self._previous) else None
        self.path = tempfile.mkdtemp(prefix=f"ttt-metrics-{os.getpid()}-", dir=base)
        os.environ[MULTIPROC_ENV] = self.path
        _refresh_value_class()
        return self.path

    def registry(self) -> CollectorRegistry:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.path)  # type: ignore[no-untyped-call]
        return registry

    def cleanup(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self._previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous
        _refresh_value_class()


def mark_process_dead(pid: int) -> None:
    """Drop a finished pool child's live-gauge files (counters and histograms keep their totals)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        except Exception as exc:
            log.debug("mark_process_dead(%d): %s", pid, exc)


def _refresh_value_class() -> None:
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
