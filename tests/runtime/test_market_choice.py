"""Market source resolution and announcement (services.md §6; SV-21, SV-22, SV-23)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, require_shared_data
from ttt.runtime.market import probe_all_mids, resolve_market


class CountingInfo:
    """A local /info server that answers allMids and counts every request."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, object]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(json.loads(body or b"{}"))
                payload = json.dumps({"BTC": "100000.0"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_probe_answers_and_fails_fast() -> None:
    server = CountingInfo()
    try:
        assert probe_all_mids(server.url + "/info", [], None) is True
        assert server.requests == [{"type": "allMids"}]
    finally:
        server.close()
    started = time.monotonic()
    assert probe_all_mids(f"http://127.0.0.1:{free_port()}/info", [], None, timeout_s=5) is False
    assert time.monotonic() - started < 5.5


def test_resolution_rules() -> None:
    def never() -> bool:
        raise AssertionError("no probe may be sent")

    assert resolve_market("replay", "auto", "paper", never).reason == "forced"
    assert resolve_market(None, "synthetic", "paper", never).reason == "configured"
    live = resolve_market(None, "auto", "hyperliquid", never)  # SV-23: live orders never on synthetic prices
    assert (live.source, live.reason) == ("hyperliquid", "live_exchange")
    assert resolve_market(None, "auto", "paper", lambda: True).reason == "api_answered"
    fallback = resolve_market(None, "auto", "paper", lambda: False)
    assert (fallback.source, fallback.reason) == ("synthetic", "api_unreachable")
    assert "did not answer within 5 s" in fallback.banner()


def _run(tmp_path: Path, config: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    (tmp_path / "config.yml").write_text(
        f'database:\n  url: "sqlite:///{tmp_path / "ttt.sqlite"}"\ndashboard:\n  port: {port}\n' + config
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ttt.cli import run; run()",
            "--config",
            "config.yml",
            "run",
            "--no-status",
            *args,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, port


def _overview(proc: subprocess.Popen[str], port: int) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/overview", timeout=2).json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("overview never answered")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


@pytest.mark.slow
def test_sv21_unreachable_api_falls_back_to_synthetic_loudly(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proc, port = _run(tmp_path, f"exchange:\n  hyperliquid:\n    network: custom\n    base_url: {dead}\n")
    try:
        overview = _overview(proc, port)
    finally:
        out = _stop(proc)
    assert overview["market"] == {"source": "synthetic", "reason": "api_unreachable", "exchange": "paper"}
    assert "MARKET DATA: SYNTHETIC (Hyperliquid API did not answer within 5 s)" in out


@pytest.mark.slow
def test_sv22_forced_replay_sends_no_probe(tmp_path: Path) -> None:
    data = require_shared_data("hyperliquid")
    server = CountingInfo()
    try:
        proc, port = _run(
            tmp_path,
            f"exchange:\n  hyperliquid:\n    network: custom\n    base_url: {server.url}\n"
            "market_data:\n  replay:\n    speed: 0\n",
            "--market",
            f"replay:{data}",
        )
        try:
            overview = _overview(proc, port)
        finally:
            out = _stop(proc)
    finally:
        server.close()
    assert overview["market"] == {"source": "replay", "reason": "forced", "exchange": "paper"}
    assert server.requests == []
    assert "MARKET DATA: REPLAY" in out


@pytest.mark.slow
def test_auto_chooses_live_data_when_the_api_answers_and_trades_on_it(tmp_path: Path) -> None:
    """The live path end to end against a local Hyperliquid-compatible server: probe, polling feed, bar
    fetch on boundaries, Providence stepping on live prices, paper fills on the feed's prices."""
    sim_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    sim = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ttt.cli import run; run()",
            "sim-exchange",
            "--port",
            str(sim_port),
            "--source",
            "synthetic",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.post(
                    f"http://127.0.0.1:{sim_port}/info", json={"type": "allMids"}, timeout=2
                ).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and sim.poll() is None, "sim-exchange did not start"
            time.sleep(0.2)
        proc, port = _run(
            tmp_path,
            f'exchange:\n  hyperliquid:\n    network: custom\n    base_url: "http://127.0.0.1:{sim_port}"\n'
            "market_data:\n  price:\n    mode: polling\n",
        )
        try:
            overview = _overview(proc, port)
            deadline = time.monotonic() + 60
            while overview["shard_steps"] < 4 and time.monotonic() < deadline:  # type: ignore[operator]
                time.sleep(0.5)
                overview = httpx.get(f"http://127.0.0.1:{port}/api/v1/overview", timeout=2).json()
        finally:
            out = _stop(proc)
    finally:
        sim.send_signal(signal.SIGINT)
        sim.communicate(timeout=30)
    assert overview["market"] == {"source": "hyperliquid", "reason": "api_answered", "exchange": "paper"}
    assert overview["shard_steps"] >= 4  # type: ignore[operator]
    assert "MARKET DATA: HYPERLIQUID (Hyperliquid API answered)" in out
    with sqlite3.connect(tmp_path / "ttt.sqlite") as conn:
        bars = conn.execute("select count(*) from market_data where source = 'hyperliquid'").fetchone()[0]
        stepped = conn.execute("select max(iteration_count) from runs").fetchone()[0]
    assert bars > 1000  # the backfill window of 1m bars, fetched page by page
    assert stepped >= 1
