"""`3t dashboard` as a real process (services.md §8.1, §9) on PostgreSQL and the real Redis: token auth,
bad parameters, unknown rows, the DB-derived gauges from the `metrics:db` document, and that the token is
never part of any answer."""

from __future__ import annotations

import json
import signal
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import redis
import sqlalchemy as sa

from tests.distributed import dist_harness as h
from tests.runtime import s2_support as s
from tests.support import free_port

TOKEN = "dashboard-token-" + "k7Qx" * 8
BTC = "BTC/USDC:USDC"


def test_dashboard_serves_auth_api_and_db_gauges(
    tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    port = free_port()
    cfg, sec = s.s2_config(
        tmp_path,
        db_url=pg_url,
        redis_url=redis_url,
        prefix=redis_prefix,
        extra={"dashboard.port": port},
        secrets_extra={"dashboard": {"token": TOKEN}},
    )
    h.prepare_database(pg_url, cfg, sec)
    # the document collect_metrics writes (telemetry/metrics.py, services/ops/collect_metrics.py)
    doc = {
        "ts": time.time(),
        "gauges": {
            "ttt_providence_active_runs": [{"labels": {"symbol": BTC}, "value": 7}],
            "ttt_providence_height": [{"labels": {}, "value": 3}],
        },
        "errors": {},
    }
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}metrics:db", json.dumps(doc), ex=120)
    client.close()
    proc = h.start("dashboard", tmp_path, cfg, sec, "dashboard")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers: list[tuple[int, dict[str, str], bytes]] = []

    def call(
        path: str, headers: dict[str, str] | None = None, data: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        answer = s.get(base + path, headers, data)
        answers.append(answer)
        return answer

    try:
        s.wait_until(lambda: _up(base), 60, "dashboard listening", [proc])
        status, _, body = call("/health")
        assert status == 200 and json.loads(body) == {"status": "ok"}

        status, headers, body = call("/api/v1/overview")
        assert status == 401 and "message" in json.loads(body)
        assert headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer"
        assert call("/api/v1/overview", {"Authorization": "Bearer wrong"})[0] == 401
        assert call("/api/v1/runs")[0] == 401

        status, _, body = call("/api/v1/overview", auth)
        assert status == 200, body
        overview = json.loads(body)
        assert overview["market"]["exchange"] == "hyperliquid-custom"
        assert overview["account"]["available"] is True and overview["account"]["value"] is None
        assert overview["last_cycle"] == {"cycle_id": None}
        assert overview["alerts"] == []
        assert overview["take_profit"]["threshold"] == 1.0
        assert overview["take_profit"]["drawdown_threshold"] == -0.2

        status, _, body = call("/api/v1/health", auth)
        health = json.loads(body)
        assert status == 200 and health["mode"] == "distributed" and health["database"]["status"] == "ok"
        assert health["cache"]["status"] == "ok" and len(health["config_sha256"]) == 64

        for bad in ("limit=501", "limit=0", "limit=abc", "cursor=%21%21", "state=sleeping", "height=x"):
            status, headers, body = call(f"/api/v1/runs?{bad}", auth)
            assert status == 400, bad
            assert headers.get("content-type", headers.get("Content-Type", "")).startswith("application/json")
            assert json.loads(body)["message"]
        status, _, body = call("/api/v1/runs?limit=500", auth)
        assert status == 200 and json.loads(body) == {"runs": [], "next_cursor": None}
        status, _, body = call("/api/v1/runs/987654", auth)
        assert status == 404 and "987654" in json.loads(body)["message"]
        assert call("/api/v1/cycles/nope", auth)[0] == 404
        for path in ("/api/v1/cycles", "/api/v1/orders?status=FILLED", "/api/v1/epochs"):
            assert call(path, auth)[0] == 200, path
        status, _, body = call("/api/v1/population", auth)
        assert status == 200 and json.loads(body) == {
            "symbols": [],
            "pnl_histogram": {"edges": [], "counts": []},
        }
        assert json.loads(call("/api/v1/positions", auth)[2]) == {"cycle_id": None, "symbols": []}
        for path in ("/api/v1/fills", "/api/v1/equity"):
            assert call(path, auth)[0] == 200, path
        assert call("/api/v1/orders/0xnone", auth)[0] == 404
        assert call("/api/v1/population")[0] == 401

        status, _, body = call("/metrics")
        text = body.decode()
        assert status == 200
        assert s.sample(text, "ttt_providence_active_runs", symbol=BTC) == 7.0
        assert s.sample(text, "ttt_providence_height") == 3.0

        status, headers, _ = call("/login", data=f"token={TOKEN}".encode())
        assert status == 303
        cookie = (headers.get("set-cookie") or headers.get("Set-Cookie") or "").split(";")[0]
        assert cookie.startswith("ttt_dashboard_session=")
        assert call("/api/v1/overview", {"Cookie": cookie})[0] == 200
        assert call("/api/v1/overview", {"Cookie": "ttt_dashboard_session=forged"})[0] == 401
        assert call("/login", data=b"token=wrong")[0] == 401
        status, _, body = call("/", auth)
        assert status == 200 and b"MARKET DATA" in body

        # An open event stream (a browser tab) must not hold the shutdown: one SIGTERM, a prompt exit 0.
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream.sendall(
            f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        assert b"retry:" in stream.recv(4096) or b"retry:" in stream.recv(4096)
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(15)
        assert "graceful shutdown exceeded" not in proc.text(), "the event stream held the shutdown"
        stream.close()
    finally:
        proc.stop(signal.SIGTERM, timeout=30)
    assert proc.popen.returncode == 0, proc.text()[-3000:]
    for _status, headers, body in answers:
        assert TOKEN.encode() not in body
        assert all(TOKEN not in v for v in headers.values())
    assert TOKEN not in proc.text()
    rows = [r for r in s.audit_rows(pg_url, "config.loaded") if r["actor"].startswith("dashboard@")]
    assert len(rows) == 1 and rows[0]["payload"]["mode"] == "distributed"
    assert TOKEN not in json.dumps(rows)


def _up(base: str) -> bool:
    try:
        return s.get(base + "/health")[0] == 200
    except OSError:
        return False


def test_keyset_pages_of_epochs_and_runs_state_filter(sqlite_url: str) -> None:
    """Pages follow the newest-first order without gaps or repeats; in-process over SQLite."""
    from ttt.adapters.db.engine import make_engine
    from ttt.adapters.db.migrate import upgrade
    from ttt.adapters.db.models import Epoch
    from ttt.adapters.db.repositories.take_profit import TakeProfitRepository
    from ttt.services.dashboard_read import BadRequest, DashboardQueries

    engine = make_engine(sqlite_url)
    upgrade(engine)
    with sa.orm.Session(engine) as session, session.begin():
        repo = TakeProfitRepository(session)
        for i in range(1, 6):
            repo.add_epoch(
                Epoch(
                    kind="take_profit",
                    height=i,
                    triggered_at=datetime(2024, 1, i, tzinfo=UTC),
                    baseline_before=Decimal("100"),
                    value=Decimal("200"),
                    gain=Decimal("1"),
                    runs_flagged=0,
                    forced_cycle_ids=[],
                    forced_due_at=[],
                    forced_state=[],
                )
            )
    queries = DashboardQueries(engine)
    heights: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = queries.epochs(params)
        heights += [e["height"] for e in page["epochs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert heights == [5, 4, 3, 2, 1] and pages == 3
    try:
        queries.epochs({"cursor": cursor or "eyJ4IjoxfQ"})
    except BadRequest as exc:
        assert "cursor" in str(exc)
    else:
        raise AssertionError("a foreign cursor must be refused")
    engine.dispose()
