"""The dashboard's single-page UI (services.md §9): the shell at `/` with the market banner, the vendored
assets and their auth, the JS's routes and endpoints against the app's, and every page rendered by the
real app.js (in node, over a minimal DOM) against a real dashboard server on SQLite. Expected texts are
worked out by hand from the seeded rows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.runtime.test_dashboard_panels import (
    BASE,
    BTC,
    CLOID_A,
    NOW,
    _audit,
    _cycle,
    _epoch,
    _fill,
    _insert,
    _log,
    _order,
    _panels,
    _run,
    _snapshot,
    _venue,
)
from tests.support import Served
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import (
    AuditEntry,
    BalanceSnapshot,
    Epoch,
    FillRecord,
    OrderRecord,
    ReconciliationCycle,
    ReconciliationLog,
    Run,
)
from ttt.api.dashboard import SESSION_COOKIE, create_dashboard_app, session_value
from ttt.services.dashboard_read import DashboardQueries

UI = Path(__file__).resolve().parents[2] / "src" / "ttt" / "api" / "dashboard_ui"
APP_JS = UI / "app.js"
HARNESS = Path(__file__).with_name("dashboard_ui_harness.js")
NODE = shutil.which("node") or "/usr/bin/node"
TOKEN = "ui-token-" + "Kp4x" * 8
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS_SYMBOL = "<img src=x onerror=alert(1)>"
XSS_MESSAGE = "</td><script>alert(2)</script>"
SYNTHETIC = {"source": "synthetic", "reason": "forced", "exchange": "paper"}
PAGES = ("overview", "population", "runs", "positions", "orders", "equity", "epochs", "cycles", "system")


def _node() -> str:
    if not Path(NODE).exists():
        pytest.skip("node is not installed")
    return NODE


def _bare_app(token: str | None = TOKEN, **kw: Any) -> FastAPI:
    return create_dashboard_app(CollectorRegistry(), lambda: {"market": SYNTHETIC}, dict, token=token, **kw)


# --- the shell and the assets ---------------------------------------------------------------------------


def test_index_is_the_spa_with_the_banner_and_refresh_period() -> None:
    client = TestClient(_bare_app(refresh_s=7.5))
    page = client.get("/", headers=AUTH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    body = page.text
    assert "MARKET DATA: SYNTHETIC (forced) · exchange paper" in body
    assert 'id="banner"' in body and "background:#b00020" in body  # simulated prices: warning colours
    assert '<script src="/ui/app.js"></script>' in body and 'href="/ui/app.css"' in body
    assert 'data-refresh-s="7.5"' in body
    assert 'id="view"' in body and 'id="nav"' in body
    assert "{{" not in body  # every placeholder filled
    # no CDN: every script and stylesheet comes from this server
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", body)


def test_banner_is_green_for_live_data_and_escaped() -> None:
    live = {"source": "hyperliquid", "reason": "api_answered", "exchange": "hyperliquid-mainnet"}
    client = TestClient(create_dashboard_app(CollectorRegistry(), dict, dict, market=lambda: live))
    body = client.get("/").text
    assert "MARKET DATA: HYPERLIQUID (api_answered) · exchange hyperliquid-mainnet" in body
    assert "background:#1b5e20" in body
    hostile = {"source": "<b>x", "reason": "<script>", "exchange": "paper"}
    client = TestClient(create_dashboard_app(CollectorRegistry(), dict, dict, market=lambda: hostile))
    body = client.get("/").text
    assert "<script>" not in body.split('<script src="/ui/app.js">')[0]
    assert "&lt;script&gt;" in body and "MARKET DATA: &lt;B&gt;X" in body


def test_refresh_period_defaults() -> None:
    assert 'data-refresh-s="5"' in TestClient(_bare_app(token=None)).get("/").text


def test_assets_served_with_content_types_and_protected() -> None:
    client = TestClient(_bare_app())
    session = TestClient(_bare_app(), cookies={SESSION_COOKIE: session_value(TOKEN)})
    for path, kind, source in (
        ("/ui/app.js", "text/javascript", APP_JS),
        ("/ui/app.css", "text/css", UI / "app.css"),
    ):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized", path
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.get(path, headers=AUTH)
        assert ok.status_code == 200, path
        assert ok.headers["content-type"].split(";")[0] == kind
        assert ok.content == source.read_bytes()
        assert session.get(path).status_code == 200
    # only the fixed assets: nothing else of the package directory, no path from the request
    for path in ("/ui/index.html", "/ui/../dashboard.py", "/ui/", "/ui/app.js.map"):
        assert client.get(path, headers=AUTH).status_code == 404, path


def test_assets_are_package_data() -> None:
    """The wheel carries only what `[tool.setuptools.package-data]` names: every UI file must match."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ttt"]
    files = sorted(p.relative_to(root / "src" / "ttt").as_posix() for p in UI.iterdir() if p.is_file())
    assert files == ["api/dashboard_ui/app.css", "api/dashboard_ui/app.js", "api/dashboard_ui/index.html"]
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_browser_without_session_is_sent_to_login() -> None:
    client = TestClient(_bare_app())
    answer = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get("/").status_code == 401
    logged_in = TestClient(_bare_app(), cookies={SESSION_COOKIE: session_value(TOKEN)}).get("/")
    assert logged_in.status_code == 200 and "MARKET DATA" in logged_in.text


def test_open_dashboard_serves_assets_without_token() -> None:
    client = TestClient(_bare_app(token=None))
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/ui/app.css").status_code == 200


# --- the JS against the app -----------------------------------------------------------------------------


def _full_app(
    engine: Engine,
    overview: Callable[[], dict[str, Any]] = lambda: {"market": SYNTHETIC},
    health: Callable[[], dict[str, Any]] = dict,
    **kw: Any,
) -> FastAPI:
    return create_dashboard_app(
        CollectorRegistry(),
        overview,
        health,
        queries=DashboardQueries(engine),
        panels=_panels(engine),
        **kw,
    )


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_api_path_in_the_js_is_a_route(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        app = _full_app(engine)
    finally:
        engine.dispose()
    routes = {_template(r.path) for r in app.routes if getattr(r, "path", "").startswith("/api/")}
    source = APP_JS.read_text()
    used = {_template(p) for p in re.findall(r"""['"`](/api/[^'"`?]*)""", source)}
    assert len(used) >= 14
    assert used <= routes, used - routes
    # and every endpoint of §9 has a place in the UI
    assert routes <= used, routes - used


def _node_eval(script: str) -> Any:
    out = subprocess.run(
        [_node(), "-e", script, str(APP_JS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_node_check_passes() -> None:
    out = subprocess.run([_node(), "--check", str(APP_JS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([_node(), "--check", str(HARNESS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_route_table_has_the_nine_pages() -> None:
    pages = _node_eval(
        "const m = require(process.argv[1]);"
        "process.stdout.write(JSON.stringify(Object.entries(m.PAGES).map("
        "([k, v]) => [k, v.title, typeof v.render])))"
    )
    assert [p[0] for p in pages] == list(PAGES)
    assert [p[1] for p in pages] == [p.capitalize() for p in PAGES]
    assert all(kind == "function" for _, _, kind in pages)


def test_js_never_writes_markup() -> None:
    """All data goes in through text nodes and setAttribute: no HTML-parsing sink anywhere."""
    source = APP_JS.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    assert "credentials: 'same-origin'" in source


def test_order_status_filter_matches_the_gateway() -> None:
    from ttt.services.gateway.model import STATUSES

    assert _node_eval(
        "process.stdout.write(JSON.stringify(require(process.argv[1]).ORDER_STATUSES))"
    ) == list(STATUSES)


def test_pure_helpers() -> None:
    got = _node_eval(
        """
const m = require(process.argv[1]);
process.stdout.write(JSON.stringify({
  num: [m.fmtNum(1234567.891, 2), m.fmtNum('-0.001', 2), m.fmtNum('50000.5', 1), m.fmtNum(null),
        m.fmtNum('n/a')],
  pct: [m.fmtPct(0.0123), m.fmtPct('-0.25', 1), m.fmtPct(undefined)],
  age: [m.fmtAge(42), m.fmtAge(750), m.fmtAge(5400), m.fmtAge(172800), m.fmtAge(null)],
  time: [m.fmtTime('2024-01-31T12:00:00.123456+00:00'), m.fmtTime(1700000000), m.fmtTime(null)],
  dir: [m.fmtDirection(1), m.fmtDirection(-1), m.fmtDirection(0), m.fmtDirection(null)],
  state: [m.runState({end_time: 'x', exit_run: true}), m.runState({end_time: null, exit_run: true}),
          m.runState({end_time: null, exit_run: false})],
  route: [m.parseRoute('#/runs/123?state=active&symbol=BTC%2FUSDC%3AUSDC'), m.parseRoute(''),
          m.parseRoute('#/orders/0xab%3Cc')],
  hash: m.routeHash('orders', '0x<a>', {status: 'FILLED', cursor: '', symbol: 'A B'}),
  api: [m.apiPath('run', {run_id: '1/2'}, {limit: 5}), m.apiPath('fills', null, {symbol: 'BTC/USDC:USDC'})],
  path: m.linePath(m.scalePoints([0, 1, 2], [10, 20, 10], 100, 50)),
  flat: m.scalePoints([0, 1], [3, 3], 10, 10),
  peak: m.runningMax([1, 3, 2, 5, 4]),
  fees: m.feeTotals([{fee: '0.02', fee_token: 'USDC'}, {fee: 0.03, fee_token: 'USDC'}, {fee: null}]),
  banner: [m.bannerInfo({source: 'replay', reason: 'forced', exchange: 'paper'}), m.bannerInfo(null),
           m.bannerInfo({source: 'hyperliquid', reason: 'api_answered', exchange: 'hyperliquid-mainnet'})],
}));
"""
    )
    assert got["num"] == ["1,234,567.89", "0.00", "50,000.5", "—", "n/a"]
    assert got["pct"] == ["1.23 %", "-25.0 %", "—"]
    assert got["age"] == ["42 s", "12.5 min", "1.5 h", "2.0 d", "—"]
    assert got["time"] == ["2024-01-31 12:00:00", "2023-11-14 22:13:20", "—"]
    assert got["dir"] == ["long", "short", "flat", "—"]
    assert got["state"] == ["ended", "flagged", "active"]
    assert got["route"] == [
        {"page": "runs", "id": "123", "params": {"state": "active", "symbol": "BTC/USDC:USDC"}},
        {"page": "overview", "id": None, "params": {}},
        {"page": "orders", "id": "0xab<c", "params": {}},
    ]
    assert got["hash"] == "#/orders/0x%3Ca%3E?status=FILLED&symbol=A%20B"
    assert got["api"] == ["/api/v1/runs/1%2F2?limit=5", "/api/v1/fills?symbol=BTC%2FUSDC%3AUSDC"]
    # x: 0, 50, 100; y: 10 → bottom (50), 20 → top (0)
    assert got["path"] == "M0,50L50,0L100,50"
    assert got["flat"] == [[0, 5], [10, 5]]
    assert got["peak"] == [1, 3, 3, 5, 5]
    assert got["fees"] == {"USDC": 0.05}
    assert got["banner"] == [
        {"text": "MARKET DATA: REPLAY (forced) · exchange paper", "simulated": True},
        {"text": "MARKET DATA: UNKNOWN (unknown) · exchange unknown", "simulated": True},
        {
            "text": "MARKET DATA: HYPERLIQUID (api_answered) · exchange hyperliquid-mainnet",
            "simulated": False,
        },
    ]


# --- every page rendered by app.js against a real server ------------------------------------------------


@pytest.fixture
def seeded(sqlite_url: str) -> Iterator[Engine]:
    """50 BTC runs (id 1 heightened into epoch 1) and one active short run with a hostile symbol (id 51);
    one filled order with a fill and a hostile audit message; cycle sched:2 with its BTC decision; three
    account snapshots 100 → 120 → 90; a take-profit epoch at height 1."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    ex, product = _venue(engine)
    runs = [_run(BTC, +1, 1.0, height=1, exit_run=True)] + [_run(BTC, +1, 1.0) for _ in range(49)]
    hostile = _run(XSS_SYMBOL, -1, -3.0)
    hostile["ann_params"] = {"pe_window": 42}
    _insert(engine, Run, [*runs, hostile])
    _insert(engine, ReconciliationCycle, [_cycle("sched:2", 600)])
    _insert(
        engine,
        ReconciliationLog,
        [
            _log(
                "sched:2",
                BTC,
                desired=0.5,
                actual=0.1,
                cap=1000.0,
                decision_row=3,
                side="buy",
                size=0.3,
                outcome="order_sent",
                client_order_id=CLOID_A,
            )
        ],
    )
    payload = {
        "desired": {"kind": "value", "value": 0.5, "breakdown": {"n": 49, "sum_dir": 49}},
        "quorum": {
            "sources": [{"source": "embedded", "size": 0.1, "as_of": NOW, "age_s": 1.5}],
            "dissent": [],
        },
    }
    _insert(
        engine,
        AuditEntry,
        [
            _audit("reconcile.decision", "decision", 605, cycle_id="sched:2", symbol=BTC, payload=payload),
            _audit("order.status", XSS_MESSAGE, 606, client_order_id=CLOID_A, cycle_id="sched:2"),
            {
                **_audit("alert.raised", "observer stale", 0, severity="warning"),
                "ts": datetime.fromtimestamp(time.time() - 60, UTC),
            },
        ],
    )
    _insert(engine, OrderRecord, [_order(product, CLOID_A, "9001", 0)])
    _insert(engine, FillRecord, [_fill(ex, "t1", BTC, 3, CLOID_A)])
    _insert(
        engine,
        BalanceSnapshot,
        [_snapshot(ex, BASE, "100"), _snapshot(ex, BASE + 60, "120"), _snapshot(ex, BASE + 120, "90")],
    )
    _insert(engine, Epoch, [_epoch("take_profit", 1, BASE + 60)])
    yield engine
    engine.dispose()


def _overview_doc(queries: DashboardQueries) -> dict[str, Any]:
    return {
        "market": {"source": "hyperliquid", "reason": "api_answered", "exchange": "paper"},
        "account": queries.account(),
        "take_profit": {"enabled": True, "baseline": "100", "gain": None, "threshold": 0.1},
        "last_cycle": queries.last_cycle(),
        "alerts": queries.alerts(),
        "heartbeats": [
            {"component": "feed", "instance": "h1", "age_s": 3.2, "version": "0.1.0", "detail": {}}
        ],
    }


def _health_doc() -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "mode": "embedded",
        "config_sha256": "c0ffee",
        "market": SYNTHETIC,
        "database": {"available": True, "status": "ok"},
        "cache": {"available": False, "error": "no cache configured"},
        "heartbeats": [],
    }


def _drive(base: str, cookie: str, routes: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [_node(), str(HARNESS), str(APP_JS), base, cookie, json.dumps(routes)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _text(page: dict[str, Any]) -> str:
    return " | ".join(page["texts"])


def _hrefs(page: dict[str, Any]) -> list[str]:
    return [v for tag, name, v in page["attributes"] if tag == "A" and name == "href"]


def test_every_page_renders_from_the_real_api(seeded: Engine) -> None:
    queries = DashboardQueries(seeded)
    app = _full_app(seeded, lambda: _overview_doc(queries), _health_doc, token=TOKEN, refresh_s=7)
    routes = [
        "#/overview",
        "#/population",
        "#/runs",
        "#/runs/51",
        "#/positions",
        "#/orders",
        f"#/orders/{CLOID_A}",
        "#/equity",
        "#/epochs",
        "#/cycles",
        "#/cycles/sched%3A2",
        "#/system",
        "#/runs/999",
        "#/nowhere",
    ]
    cookie = f"{SESSION_COOKIE}={session_value(TOKEN)}"
    with Served(app) as base:
        result = _drive(base, cookie, routes)
        first_page = result["pages"][2]
        next_links = [h for h in _hrefs(first_page) if "cursor=" in h]
        assert len(next_links) == 1
        second = _drive(base, cookie, [next_links[0]])["pages"][0]
        anonymous = _drive(base, "", ["#/runs"])["pages"][0]

    pages = {p["hash"]: p for p in result["pages"]}
    for page in result["pages"]:
        # nothing from the data became an element: only the tags the renderers build
        assert not {"SCRIPT", "IMG", "IFRAME", "STYLE", "OBJECT"} & set(page["tags"]), page["hash"]
        assert all(not name.startswith("on") for _, name, _ in page["attributes"]), page["hash"]
        assert all(h.startswith("#/") or h == "/login" for h in _hrefs(page)), page["hash"]
        assert all(r.startswith("/api/v1/") for r in page["requests"])
        assert page["nav"] == [p.capitalize() for p in PAGES]

    overview = _text(pages["#/overview"])
    assert "90.00 USD" in overview  # newest usable snapshot
    assert "1.11 %" in overview  # margin ratio: cross margin 1 / value 90
    assert "sched:2" in overview and "order_sent" not in overview  # last cycle is the cycle row
    assert "observer stale" in overview and "warning" in overview
    assert "feed" in overview and "3 s" in overview
    assert "10.00 %" in overview  # take-profit threshold
    assert pages["#/overview"]["requests"] == ["/api/v1/overview", "/api/v1/equity"]
    assert "3 points" in overview  # the sparkline's series

    population = _text(pages["#/population"])
    assert XSS_SYMBOL in population and BTC in population
    assert "49.00" in population  # open PnL of 49 active BTC runs at 1.0 each
    # live_pnl −3 and 49 × 1.0 → 20 bins of 0.2 over [−3, 1]: first and last bins
    assert "-3.00 … -2.80: 1 runs" in population and "0.80 … 1.00: 49 runs" in population

    # newest first, 50 a page: ids 51..2, then id 1; cells: id, symbol, state, height, live PnL, direction
    runs = _text(first_page)
    assert f"51 | {XSS_SYMBOL} | active | — | -3.0000 | short" in runs
    assert f"2 | {BTC} | active | — | 1.0000 | long" in runs
    run_links = [h for h in _hrefs(first_page) if re.fullmatch(r"#/runs/\d+", h)]
    assert run_links == [f"#/runs/{i}" for i in range(51, 1, -1)]
    assert f"1 | {BTC} | flagged | 1 | 1.0000 | long" in _text(second)
    assert [h for h in _hrefs(second) if re.fullmatch(r"#/runs/\d+", h)] == ["#/runs/1"]
    assert not [h for h in _hrefs(second) if "cursor=" in h] and "No more rows." in _text(second)

    run = _text(pages["#/runs/51"])
    assert "Run 51" in run and XSS_SYMBOL in run and "pe_window" in run and "42" in run and "short" in run
    assert "-3.0000" in run

    positions = _text(pages["#/positions"])
    assert "sched:2" in positions and BTC in positions and "embedded" in positions
    assert "0.500000" in positions and "0.100000" in positions and "order_sent" in positions
    assert "2 s" in positions  # age_s 1.5 rounds to 2 s

    orders = _text(pages["#/orders"])
    assert CLOID_A in orders and "FILLED" in orders and "0.0600" in orders
    assert "Fees on this page: 0.020000 USDC" in orders
    assert pages["#/orders"]["requests"] == ["/api/v1/orders?limit=50", "/api/v1/fills?limit=50"]

    order = _text(pages[f"#/orders/{CLOID_A}"])
    assert XSS_MESSAGE in order and "50,000.5000" in order and "Fees: 0.020000 USDC" in order

    equity = _text(pages["#/equity"])
    assert "-25.00 %" in equity  # 90 after a peak of 120
    assert "100.00 / 90.00" in equity and "h1" in equity

    epochs = _text(pages["#/epochs"])
    assert "take_profit" in epochs and "10.00 %" in epochs and "110.00" in epochs
    assert f"{BTC}: | 1.0000" in epochs  # run 1 carries height 1 with live_pnl 1.0

    cycle = _text(pages["#/cycles/sched%3A2"])
    assert "Cycle sched:2" in cycle and "order_sent" in cycle and XSS_MESSAGE in cycle
    assert "#/orders?cycle_id=sched%3A2" in _hrefs(pages["#/cycles/sched%3A2"])
    assert "sched:2" in _text(pages["#/cycles"])

    system = _text(pages["#/system"])
    assert "c0ffee" in system and "embedded" in system and "no cache configured" in system

    assert "404" in _text(pages["#/runs/999"]) and "run 999 does not exist" in _text(pages["#/runs/999"])
    assert "Unknown page" in _text(pages["#/nowhere"])

    assert "Not logged in" in _text(anonymous) and _hrefs(anonymous) == ["/login"]

    live = result["live"]
    assert live["sources"] == ["/api/v1/events"]
    assert set(live["listens"]) >= {"price", "balance", "order", "alert", "cycle", "error"}
    assert live["statusOpen"] == "live"
    # two events → one pending refresh (the first timer cleared), which reloads the current page
    assert [t["cleared"] for t in live["timersAfterEvents"]] == [True, False]
    assert live["refreshRequests"] and live["refreshRequests"][0].startswith("/api/v1/")
    # a stream error closes it and polls every dashboard.refresh_s (7 s here, from the page)
    assert live["closed"] and live["intervals"] == [7000]
    assert live["statusAfterError"].startswith("polling every 7 s")
    # the overview's market refreshes the banner, by the server's rule (live data: not a warning)
    assert live["banner"] == "MARKET DATA: HYPERLIQUID (api_answered) · exchange paper"
    assert live["bannerBackground"] == "#1b5e20"
