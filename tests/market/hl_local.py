"""Local stand-ins for Hyperliquid used by the market-data tests: a real HTTP server answering `/info`
and a real websocket server speaking the subscription protocol, both on 127.0.0.1 and a free port.

Answers come from the recorded SDK cassettes and OpenAPI examples in ../shared/fixtures (never copied);
the servers record every request so tests assert on what the client actually sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.support import require_shared_fixture

# -- recorded answers -----------------------------------------------------------------------------------


def cassette(name: str) -> list[tuple[dict[str, Any], Any]]:
    """(request body, response JSON) of each interaction of one SDK cassette."""
    path = require_shared_fixture("hyperliquid-sdk-cassettes", name)
    doc = yaml.safe_load(path.read_text())
    return [
        (json.loads(i["request"]["body"]), json.loads(i["response"]["body"]["string"]))
        for i in doc["interactions"]
    ]


def cassette_answer(name: str, request_type: str) -> Any:
    for body, answer in cassette(name):
        if body.get("type") == request_type:
            return answer
    raise LookupError(f"{name} has no {request_type} interaction")


def openapi_example(name: str) -> Any:
    path = require_shared_fixture("hyperliquid-openapi", "info", name)
    doc = yaml.safe_load(path.read_text())
    response = doc["paths"]["/info"]["post"]["responses"]["200"]
    return response["content"]["application/json"]["schema"].get("example") or response["content"][
        "application/json"
    ].get("example")


# -- HTTP -------------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Reply = tuple[int, Any]  # (status, JSON document or str for a plain-text body)
Route = Callable[[dict[str, Any], "Recorded"], Reply]


class InfoServer:
    """`POST .../info` dispatched by `route(body, recorded)`; any path ending in /info is accepted so a
    URL-prefix proxy (`/proxy/https://api.hyperliquid.xyz/info`) reaches the same handler."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                rec = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, {})
                try:
                    rec.body = json.loads(raw)
                except ValueError:
                    rec.body = {"_raw": raw.decode(errors="replace")}
                with server._lock:
                    server.requests.append(rec)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, doc = (
                        (404, "not found") if not self.path.endswith("/info") else server.route(rec.body, rec)
                    )
                finally:
                    with server._lock:
                        server.in_flight -= 1
                data = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(doc, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def bodies(self, request_type: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if request_type is None or r.body.get("type") == request_type]

    def __enter__(self) -> InfoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def free_port() -> int:
    """A port nothing listens on (bound then released), for connection-refused cases."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- synthetic candles -----------------------------------------------------------------------------------


def synthetic_candle(coin: str, interval: str, t: int, step: int) -> dict[str, Any]:
    """Bar k (k = t/step) opens at 100 + k/1000 and closes 0.0005 higher: values a test can recompute."""
    k = t // step
    o = 100 + (k % 100_000) / 1000
    c = o + 0.0005
    return {
        "t": t,
        "T": t + step - 1,
        "s": coin,
        "i": interval,
        "o": f"{o:.4f}",
        "c": f"{c:.4f}",
        "h": f"{c + 0.001:.4f}",
        "l": f"{o - 0.001:.4f}",
        "v": f"{k % 7 + 1}.5",
        "n": 3,
    }


STEP_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "4h": 14_400_000}


def candle_route(*, limit: int = 5000, newest_ms: int | None = None) -> Route:
    """candleSnapshot over a synthetic history: every bar overlapping [startTime, endTime] up to
    `newest_ms`, truncated to the first `limit` bars as the real API caps an answer."""

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        req = body["req"]
        step_ms = STEP_MS[req["interval"]]
        start, end = int(req["startTime"]), int(req["endTime"])
        if newest_ms is not None:
            end = min(end, newest_ms)
        first = start - start % step_ms
        bars = [
            synthetic_candle(req["coin"], req["interval"], t, step_ms) for t in range(first, end + 1, step_ms)
        ]
        return 200, bars[:limit]

    return route


# -- websocket -------------------------------------------------------------------------------------------


@dataclass
class WsConnection:
    index: int
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    pings: int = 0
    closed_by_server: bool = False


class WsServer:
    """Hyperliquid's `/ws`: `subscribe` answered with `subscriptionResponse`, `ping` with `pong`.

    `plans[i]` scripts connection i once its `expect_subs` subscriptions arrived: ("send", data) sends a
    trades message, ("close",) closes the connection, ("hold",) keeps it open and silent (pongs only).
    Connections beyond the plans hold.
    """

    def __init__(self, plans: list[list[tuple[Any, ...]]], expect_subs: int = 1) -> None:
        self.plans = plans
        self.expect_subs = expect_subs
        self.connections: list[WsConnection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = serve(self._handler, "127.0.0.1", 0, ping_interval=None, compression=None)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/ws"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, ws: ServerConnection, conn: WsConnection, raw: str | bytes) -> None:
        msg = json.loads(raw)
        if msg.get("method") == "subscribe":
            conn.subscriptions.append(msg["subscription"])
            ws.send(json.dumps({"channel": "subscriptionResponse", "data": msg}))
        elif msg.get("method") == "ping":
            conn.pings += 1
            ws.send(json.dumps({"channel": "pong"}))

    def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            conn = WsConnection(len(self.connections))
            self.connections.append(conn)
        plan = self.plans[conn.index] if conn.index < len(self.plans) else [("hold",)]
        try:
            deadline = time.monotonic() + 5
            while len(conn.subscriptions) < self.expect_subs and time.monotonic() < deadline:
                try:
                    self._answer(ws, conn, ws.recv(timeout=0.1))
                except TimeoutError:
                    continue
            for action in plan:
                if action[0] == "send":
                    ws.send(json.dumps({"channel": "trades", "data": action[1]}))
                elif action[0] == "close":
                    conn.closed_by_server = True
                    ws.close()
                    return
                elif action[0] == "hold":
                    while not self._stopping.is_set():
                        try:
                            self._answer(ws, conn, ws.recv(timeout=0.1))
                        except TimeoutError:
                            continue
        except ConnectionClosed:
            return

    def wait_connections(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.connections) >= n:
                return True
            time.sleep(0.02)
        return False

    def __enter__(self) -> WsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._thread.join(5)


# -- clocks and waiting ----------------------------------------------------------------------------------


class WallClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A Clock and a monotonic source the test moves by hand (MemoryCache TTLs follow it)."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll a condition; used only to wait for threads, never to assert on durations."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@contextmanager
def running(feed: Any) -> Iterator[Any]:
    feed.start()
    try:
        yield feed
    finally:
        feed.stop()
