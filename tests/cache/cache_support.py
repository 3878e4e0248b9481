"""Helpers for the cache tests: a hand-driven clock and a private, throw-away redis-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis


class FakeMonotonic:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def private_redis_server(workdir: Path, *extra_args: str) -> Iterator[str]:
    """Start our own redis-server (never touching the shared one) and yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH; SV-07 needs a private server with its own policy")
    port = free_port()
    args = [
        binary,
        "--save",
        "",
        "--appendonly",
        "no",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
        *extra_args,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                log = workdir / "redis.log"
                out = log.read_text(errors="replace") if log.exists() else "(no log)"
                pytest.fail(f"private redis-server exited with {proc.returncode}: {out[-2000:]}")
            try:
                probe = redis.Redis.from_url(url, socket_connect_timeout=1)
                try:
                    probe.ping()
                except redis.AuthenticationError:
                    pass
                finally:
                    probe.close()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"private redis-server on port {port} did not start within 15 s")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
