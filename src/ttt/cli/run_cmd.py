"""`3t run`: everything in one process (S1), paper trading by default, no server needed."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ttt.cli.context import CliState, console, err_console
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
    table.add_row("runs created", str(snapshot["runs_created"]))
    table.add_row("runs ended", ", ".join(f"{k} {v}" for k, v in sorted(snapshot["ends"].items())) or "–")
    for name, result in sorted(snapshot["tasks"].items()):
        table.add_row(name.removeprefix("ttt."), result)
    if snapshot.get("last_error"):
        table.add_row("last error", f"[red]{snapshot['last_error']}[/red]")
    head = Panel(
        f"MARKET DATA: {market['source'].upper()} ({market['reason']}) · exchange {market['exchange']}",
        style=banner_style,
    )
    return Group(head, table)


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
    from ttt.runtime.embedded import EmbeddedRuntime, status_snapshot
    from ttt.runtime.market import info_url, probe_all_mids, resolve_market
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

    app = create_dashboard_app(runtime.metrics.registry, overview, overview)
    server = BackgroundServer(app, cfg.dashboard.bind, cfg.dashboard.port)

    def _stop(signum: int, _frame: Any) -> None:
        if runtime.stop_event.is_set():
            os._exit(130)  # second signal: exit at once (§1.4)
        log.info("signal %d: shutting down", signum)
        runtime.stop_event.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
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
        console.print_json(data=overview())
