"""Helpers for tests that read the shared, never-copied market data and recorded fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("T3_SHARED_DATA", SHARED / "data"))
SHARED_FIXTURES = Path(os.environ.get("T3_SHARED_FIXTURES", SHARED / "fixtures"))


def require_shared_data(*relative: str) -> Path:
    """Path inside ../shared/data, or skip with a clear reason when the folder is absent."""
    path = SHARED_DATA.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"shared market data not present at {path} (tests read ../shared/data; never copied)")
    return path


def require_shared_fixture(*relative: str) -> Path:
    path = SHARED_FIXTURES.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"shared fixture not present at {path}")
    return path


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A FastAPI app under uvicorn in a thread on a free loopback port; `with` yields its base URL."""

    def __init__(self, app: object) -> None:
        import threading

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
