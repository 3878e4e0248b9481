"""Helpers for the real-process tests of `3t feed`, `3t dashboard` and the metrics listeners."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tests.distributed import dist_harness as h
from tests.market.hl_local import InfoServer, Recorded, Reply


class Mids:
    """A fake Hyperliquid `/info` that answers allMids with whatever the test sets."""

    def __init__(self, mids: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._mids = dict(mids)
        self.server = InfoServer(self.route)

    def set(self, mids: dict[str, str]) -> None:
        with self._lock:
            self._mids = dict(mids)

    def route(self, body: dict[str, Any], rec: Recorded) -> Reply:
        if body.get("type") == "allMids":
            with self._lock:
                return 200, dict(self._mids)
        return 400, {"error": f"unexpected request {body!r}"}


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A local port some other listener holds, for the "port in use" answers."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield int(taken.getsockname()[1])


def s2_config(
    directory: Path,
    *,
    db_url: str,
    redis_url: str,
    prefix: str,
    info_url: str = "http://127.0.0.1:9",
    metrics_port: int | None = None,
    extra: dict[str, Any] | None = None,
    secrets_extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """The distributed harness's config, pointed at a custom (local) Hyperliquid and polling prices."""
    cfg, sec = h.write_config(
        directory,
        db_url=db_url,
        redis_url=redis_url,
        prefix=prefix,
        broker_url=h.BROKER_URL,
        runs=1,
        shard_size=1,
    )
    data = yaml.safe_load(cfg.read_text())
    data["exchange"] = {"kind": "hyperliquid", "hyperliquid": {"network": "custom", "base_url": info_url}}
    data["market_data"] = {"source": "hyperliquid", "price": {"mode": "polling", "poll_interval_s": 0.2}}
    if metrics_port is not None:
        data["observability"]["metrics_port"] = metrics_port
    for key, value in (extra or {}).items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg.write_text(yaml.safe_dump(data))
    if secrets_extra:
        sdata = yaml.safe_load(sec.read_text())
        sdata.update(secrets_extra)
        sec.write_text(yaml.safe_dump(sdata))
    return cfg, sec


def get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one real HTTP request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def scrape(port: int) -> str | None:
    try:
        status, _, body = get(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return None
    return body.decode() if status == 200 else None


def listening(port: int) -> bool:
    """The listener answers (a worker's aggregate is empty until a pool child recorded something)."""
    return scrape(port) is not None


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one exposition sample with exactly these labels (any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        head, _, value = line.rpartition(" ")
        found: dict[str, str] = {}
        if "{" in head:
            for part in head[head.index("{") + 1 : head.rindex("}")].split(","):
                if part:
                    k, _, v = part.partition("=")
                    found[k] = v.strip('"')
        if head.split("{")[0] == name and found == labels:
            return float(value)
    return None


def audit_rows(db_url: str, kind: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT actor, message, payload FROM audit_log WHERE kind = :k ORDER BY id"),
                {"k": kind},
            ).all()
    finally:
        engine.dispose()
    out = []
    for actor, message, payload in rows:
        out.append(
            {
                "actor": actor,
                "message": message,
                "payload": payload if isinstance(payload, dict) else json.loads(payload),
            }
        )
    return out


def wait_until(predicate: Any, timeout: float, what: str, procs: Any = ()) -> Any:
    return h.wait_for(predicate, timeout, what, procs, poll=0.2)


def now() -> float:
    return time.time()
