"""`3t backtest`: replay a data set through the full engine and write the report (services.md §10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ttt.cli.context import CliState, console
from ttt.errors import ConfigError


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _text(summary: dict[str, Any], out: Path) -> str:
    metrics = summary["metrics"]
    keys = ("total_return", "max_drawdown", "sharpe", "fees_usd", "trades")
    lines = [f"backtest written to {out}"]
    for name, m in metrics.items():
        cells = ", ".join(f"{k} {m.get(k)}" for k in keys if k in m)
        lines.append(f"  {name}: {cells or m.get('error', '')}")
    return "\n".join(lines)


def backtest(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Replay file or directory (freqtrade naming).")],
    symbols: Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols.")] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="ISO start (UTC); default first common bar.")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO end (UTC); default last common bar.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="config.yml for this backtest.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Run seed (default backtest.seed).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default backtests/<UTC>).")
    ] = None,
    baselines: Annotated[
        str | None, typer.Option("--baselines", help="Comma-separated: buy_and_hold,random_vote.")
    ] = None,
    tick_s: Annotated[float | None, typer.Option("--tick-s", help="Replay tick (s).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json | text")] = "text",
) -> None:
    """Replay a data set through the full engine and write a report (§10)."""
    from ttt.services.backtest.runner import BacktestRequest, run_backtest
    from ttt.telemetry.logs import setup_logging

    state: CliState | None = ctx.obj if isinstance(ctx.obj, CliState) else None
    if fmt not in ("json", "text"):
        raise ConfigError([f"--format {fmt!r}: expected json or text"])
    setup_logging(process="backtest", level=(state.log_level if state and state.log_level else "WARNING"))
    request = BacktestRequest(
        data=data,
        out=out,
        symbols=_split(symbols),
        start=start,
        end=end,
        config=config if config is not None else (state.config_path if state else None),
        secrets=state.secrets_path if state else None,
        seed=seed,
        baselines=_split(baselines),
        tick_s=tick_s,
    )
    result = run_backtest(request)
    if fmt == "json" or (state is not None and state.json):
        console.print_json(json.dumps({"out": str(result.out), **result.summary}))
    else:
        console.print(_text(result.summary, result.out), markup=False, highlight=False)
