"""`3t run`: everything in one process (S1), paper trading by default, no server needed."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ttt.cli.context import CliState, console, err_console
from ttt.cli.signals import stop_on_signals
from ttt.errors import ConfigError

log = logging.getLogger("ttt.run")

MARKETS = ("hyperliquid", "synthetic")


def _market_overrides(market: str | None) -> tuple[str | None, dict[str, Any]]:
    if market is None:
        return None, {}
    if market.startswith("replay:"):
        path = market.split(":", 1)[1]
        if not path:
            raise ConfigError(["--market replay:PATH needs a path"])
        return "replay", {"market_data.source": "replay", "market_data.replay.path": path}
    if market in MARKETS:
        return market, {"market_data.source": market}
    raise ConfigError([f"--market {market!r}: expected hyperliquid, synthetic or replay:PATH"])


UNKNOWN = "[bold yellow]unknown[/bold yellow]"
NONE = "—"


def _num(value: Any) -> str:
    """A size or price as given (exact decimal text stays exact); None is a dash, never 0."""
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _money(value: Any) -> str:
    if value is None:
        return UNKNOWN
    try:
        return f"{Decimal(str(value)):,.2f}"
    except InvalidOperation:
        return str(value)


def _fee(value: Any) -> str:
    try:
        return f"{Decimal(str(value)):,.4f}"
    except InvalidOperation:
        return str(value)


def _pct(value: Any) -> str:
    return NONE if value is None else f"{float(value) * 100:+.2f}%"


def _when(value: Any, fmt: str = "%m-%d %H:%M:%S") -> str:
    """ISO-8601 UTC text → `MM-DD HH:MM:SS` (simulated runs span days, so the date is kept)."""
    if not value:
        return NONE
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).strftime(fmt)
    except ValueError:
        return str(value)


def _with_reason(text: str, reason: Any) -> str:
    return f"{text}\n[dim]{escape(str(reason))}[/dim]" if reason else text


def _unavailable(title: str, panel: dict[str, Any]) -> Panel:
    return Panel(
        f"[yellow]unavailable[/yellow]: {escape(str(panel.get('error') or 'not read'))}",
        title=title,
        title_align="left",
    )


def _desired_cell(d: dict[str, Any]) -> str:
    if d["status"] == "unknown":
        return _with_reason(UNKNOWN, d.get("reason"))
    value = d["clamped"] if d.get("clamped") is not None else d.get("value")
    if value is None:
        return _with_reason(UNKNOWN, d.get("reason") or d["status"])
    text = _num(value)
    if d["status"] == "flat":
        return _with_reason(f"{text} flat", d.get("reason"))
    if d.get("value") is not None and d.get("clamped") is not None and d["value"] != d["clamped"]:
        return _with_reason(text, f"clamped from {_num(d['value'])}")
    return text


def _actual_cell(a: dict[str, Any], status: str) -> str:
    if a["status"] != "ok" or a.get("value") is None:
        reason = a.get("reason")
        return _with_reason(UNKNOWN, None if reason and str(reason) in status else reason)
    return _num(a["value"])


def _status_text(row: dict[str, Any]) -> str:
    """ok, `hold: reason`, or `unknown: reason` (why A is not known)."""
    status = str(row["status"])
    if status == "unknown":
        return f"unknown: {row['actual'].get('reason') or 'no reading'}"
    return status


def _status_cell(text: str) -> str:
    if text == "ok":
        return "[green]ok[/green]"
    if text.startswith("hold"):
        return f"[yellow]{escape(text)}[/yellow]"
    return f"[bold yellow]{escape(text)}[/bold yellow]"


def _decision_cell(decision: dict[str, Any] | None) -> str:
    if decision is None:
        return NONE
    text = escape(str(decision["outcome"]))
    if decision.get("side"):
        text += f" {decision['side']} {_num(decision.get('size'))}"
    return text


def _positions_view(panel: dict[str, Any], last_cycle: dict[str, Any]) -> Any:
    title = "Desired vs actual"
    if last_cycle.get("available") and last_cycle.get("cycle_id"):
        title += (
            f" · last cycle {last_cycle['cycle_id']} {last_cycle.get('outcome', '?')}"
            f" {_when(last_cycle.get('finished_at'))}"
        )
    if not panel.get("available"):
        return _unavailable(title, panel)
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True
    )
    table.add_column("Symbol", no_wrap=True)
    # fixed widths fit 100 columns: reasons wrap inside their cells, a hold reason keeps its line
    table.add_column("Desired D", justify="right", overflow="fold", width=13)
    table.add_column("Actual A", justify="right", overflow="fold", width=10)
    table.add_column("Status", overflow="fold", width=25)
    table.add_column("Last decision", overflow="fold", width=18)
    table.add_column("At", no_wrap=True, width=8)
    for row in panel["symbols"]:
        decision = row.get("decision")
        status = _status_text(row)
        table.add_row(
            escape(row["symbol"]),
            _desired_cell(row["desired"]),
            _actual_cell(row["actual"], status),
            _status_cell(status),
            _decision_cell(decision),
            _when(decision.get("at"), "%H:%M:%S") if decision else NONE,
        )
    return table


def _orders_view(panel: dict[str, Any]) -> Any:
    if not panel.get("available"):
        return _unavailable("Orders", panel)
    counts = " · ".join(f"{k} {v}" for k, v in panel["counts"].items()) or "none"
    table = Table(title=f"Orders: {counts}", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for name in ("Time", "Symbol", "Side", "Size", "Status", "Client order id"):
        table.add_column(name, overflow="fold")
    for o in panel["recent"]:
        size = _num(o["size"])
        if o.get("filled_size") not in (None, "0") and o["filled_size"] != o["size"]:
            size += f" (filled {_num(o['filled_size'])})"
        table.add_row(
            _when(o["created_at"]),
            escape(o["symbol"]),
            o["side"],
            size,
            o["status"],
            o["client_order_id"],
        )
    return table


def _equity_view(snapshot: dict[str, Any]) -> Any:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    account = snapshot["account"]
    if account.get("available"):
        value = _money(account["value"])
        if account["value"] is not None:
            value += f"  (snapshot {_when(account['snapshot_at'])})"
        grid.add_row("account value", value)
        if account.get("newest_unusable_at"):
            grid.add_row(
                "", f"[yellow]newer snapshot unusable ({_when(account['newest_unusable_at'])})[/yellow]"
            )
    else:
        grid.add_row("account value", f"[yellow]unavailable[/yellow]: {escape(str(account.get('error')))}")
    tp = snapshot.get("take_profit")
    if tp is not None:
        if tp.get("available"):
            line = (
                f"baseline {_money(tp.get('baseline')) if tp.get('baseline') is not None else NONE}"
                f" · gain {_pct(tp.get('gain'))} · take at {_pct(tp.get('threshold'))}"
                f" · reset below {_pct(tp.get('drawdown_threshold'))}"
            )
            if tp.get("in_cooldown"):
                line += f" · cooldown until {_when(tp.get('cooldown_until'))}"
            grid.add_row("take-profit", line)
        else:
            grid.add_row("take-profit", f"[yellow]unavailable[/yellow]: {escape(str(tp.get('error')))}")
    fills = snapshot["fills"]
    if fills.get("available"):
        hours = float(fills["window_s"]) / 3600
        fees = ", ".join(f"{_fee(v)} {k}" for k, v in fills["fees"].items()) or "0"
        more = "+" if fills.get("truncated") else ""
        grid.add_row(f"fills {hours:g}h", f"{fills['count']}{more} · fees {fees}")
    else:
        grid.add_row("fills", f"[yellow]unavailable[/yellow]: {escape(str(fills.get('error')))}")
    return Panel(grid, title="Equity", title_align="left")


def _runs_line(runs: dict[str, Any]) -> str:
    if not runs.get("available"):
        return f"[yellow]unavailable[/yellow]: {escape(str(runs.get('error')))}"
    by = runs["by_state"]
    per_symbol = ", ".join(f"{k} {v}" for k, v in runs["active_by_symbol"].items())
    line = " · ".join(f"{k} {by[k]}" for k in ("active", "flagged", "ended", "heightened"))
    return line + (f"  ({per_symbol})" if per_symbol else "")


def _status_view(snapshot: dict[str, Any]) -> Group:
    market = snapshot["market"]
    banner_style = "bold white on red" if market["source"] in ("synthetic", "replay") else "bold green"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    sim = snapshot.get("sim_time")
    if sim is not None:
        table.add_row("simulated time", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sim)))
    table.add_row("ticks", str(snapshot["ticks"]))
    table.add_row("shard steps", str(snapshot["shard_steps"]))
    if "runs" in snapshot:
        table.add_row("runs", _runs_line(snapshot["runs"]))
    table.add_row("runs created", str(snapshot["runs_created"]))
    table.add_row("runs ended", ", ".join(f"{k} {v}" for k, v in sorted(snapshot["ends"].items())) or "–")
    # tasks that last ran fine share one line; any other result gets its own, in red
    tasks = snapshot["tasks"]
    fine = sorted(n.removeprefix("ttt.") for n, r in tasks.items() if r == "ok")
    if fine:
        table.add_row("tasks ok", ", ".join(fine))
    for name, result in sorted(tasks.items()):
        if result != "ok":
            table.add_row(name.removeprefix("ttt."), f"[red]{escape(str(result))}[/red]")
    if snapshot.get("last_error"):
        table.add_row("last error", f"[red]{escape(snapshot['last_error'])}[/red]")
    if snapshot.get("status_error"):
        table.add_row("status", f"[yellow]unavailable[/yellow]: {escape(snapshot['status_error'])}")
    head = Panel(
        f"MARKET DATA: {market['source'].upper()} ({market['reason']}) · exchange {market['exchange']}",
        style=banner_style,
    )
    parts: list[Any] = [head, table]
    if "positions" in snapshot:
        parts.append(_positions_view(snapshot["positions"], snapshot.get("last_cycle") or {}))
    if "orders" in snapshot:
        parts.append(_orders_view(snapshot["orders"]))
    if "account" in snapshot and "fills" in snapshot:
        parts.append(_equity_view(snapshot))
    return Group(*parts)


def run(
    ctx: typer.Context,
    market: Annotated[
        str | None, typer.Option("--market", help="hyperliquid | synthetic | replay:PATH (default: auto).")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option("--speed", help="Simulated time runs X times faster than wall time (synthetic/replay)."),
    ] = None,
    status: Annotated[bool, typer.Option("--status/--no-status", help="Live terminal status.")] = True,
) -> None:
    """Run everything in one process (S1): scheduler, Providence, feed, paper exchange, dashboard."""
    from ttt.api.dashboard import BackgroundServer, create_dashboard_app
    from ttt.config import load_settings
    from ttt.runtime.dashboard_service import exchange_name
    from ttt.runtime.embedded import EmbeddedRuntime, status_snapshot
    from ttt.runtime.market import info_url, probe_all_mids, resolve_market
    from ttt.services.dashboard_events import DashboardEvents
    from ttt.services.dashboard_panels import DashboardPanels
    from ttt.services.dashboard_read import DashboardQueries
    from ttt.telemetry.logs import setup_logging

    state: CliState = ctx.obj
    forced, overrides = _market_overrides(market)
    if state.log_level:
        overrides["observability.log_level"] = state.log_level
    if speed is not None and speed < 0:
        raise ConfigError([f"--speed {speed}: must be ≥ 0"])
    settings = load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process="run")
    cfg = settings.config
    setup_logging(
        process="run",
        level=cfg.observability.log_level,
        fmt=settings.log_format,
        sampling_rate=cfg.observability.sampling_rate,
        secrets=settings.secret_values(),
    )
    for warning in settings.warnings:
        log.warning("config: %s", warning)
    hl = cfg.exchange.hyperliquid
    choice = resolve_market(
        forced,
        cfg.market_data.source,
        cfg.exchange.kind,
        lambda: probe_all_mids(info_url(hl.network, hl.base_url), hl.proxies, hl.origin),
    )
    banner = choice.banner()
    err_console.print(
        Panel(banner, style="bold white on red" if choice.source != "hyperliquid" else "bold green")
    )
    (log.info if choice.source == "hyperliquid" else log.warning)("%s (reason: %s)", banner, choice.reason)
    runtime = EmbeddedRuntime(
        settings, choice, speed=speed, replay_path=overrides.get("market_data.replay.path")
    )

    def overview() -> dict[str, Any]:
        return status_snapshot(runtime)

    secret = settings.secrets.dashboard.token
    token = secret.get_secret_value() if secret is not None else None
    market_doc = {"source": choice.source, "reason": choice.reason, "exchange": exchange_name(cfg)}
    events = DashboardEvents(runtime.cache, refresh_s=cfg.dashboard.refresh_s)
    app = create_dashboard_app(
        runtime.metrics.registry,
        overview,
        overview,
        token=token or None,
        queries=DashboardQueries(runtime.engine),
        market=lambda: market_doc,
        public_health=lambda: {"status": "ok"},
        panels=DashboardPanels(runtime.engine, cfg.portfolio),
        events=events,
    )
    server = BackgroundServer(app, cfg.dashboard.bind, cfg.dashboard.port, on_stop=events.close)

    stop_on_signals(runtime.stop_event, log, "run")
    runtime.start()
    server.start()
    live_status = status and sys.stderr.isatty() and not state.json
    try:
        if live_status:
            with Live(_status_view(overview()), console=err_console, refresh_per_second=2) as live:
                runtime.run_forever(on_tick=lambda: live.update(_status_view(overview())))
        else:
            runtime.run_forever()
    finally:
        runtime.shutdown()
        server.stop()
    if state.json:
        console.print_json(data=status_snapshot(runtime, fresh=True))
