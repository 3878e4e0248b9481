"""`3t data fetch` (services.md §12): Hyperliquid OHLCV and funding into freqtrade-style feather files.

Only closed bars are written: the files feed replay and backtests, where a half-formed last bar would
be read as final. Hyperliquid keeps a limited history per interval, so when the exchange starts later
than `--since` the command says so instead of pretending the file covers the range.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ttt.adapters.market.freqtrade_out import write_funding, write_ohlcv
from ttt.adapters.market.hyperliquid_http import HyperliquidError, HyperliquidInfoClient, interval_ms
from ttt.cli.context import CliState, err_console
from ttt.config import load_settings
from ttt.domain.symbols import derive_api_coin
from ttt.errors import ExitCode, TTTError

data_app = typer.Typer(
    name="data",
    help="Market data: download from Hyperliquid into freqtrade files; import bar files into the store.",
    no_args_is_help=True,
)


@data_app.callback()
def _data() -> None:
    """Market data files."""


def _parse_time(text: str, option: str) -> int:
    """ISO-8601 (a date alone is midnight; no zone means UTC) → epoch ms."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 date or time", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _split(text: str, option: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise typer.BadParameter("expected a comma-separated, non-empty list", param_hint=option)
    return list(dict.fromkeys(items))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@data_app.command("fetch")
def fetch(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated symbols, e.g. BTC/USDC:USDC.")],
    since: Annotated[str, typer.Option("--since", help="Start, ISO-8601 (UTC when no zone is given).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the feather files.")],
    timeframes: Annotated[str, typer.Option("--timeframes", help="Comma-separated, e.g. 1m,4h.")] = "1m",
    until: Annotated[str | None, typer.Option("--until", help="End, ISO-8601; default now.")] = None,
    funding: Annotated[bool, typer.Option("--funding/--no-funding", help="Also write funding rates.")] = True,
    config: Annotated[
        Path | None, typer.Option("--config", help="config.yml (overrides the global one).")
    ] = None,
    secrets: Annotated[
        Path | None, typer.Option("--secrets", help="secrets.yml (overrides the global one).")
    ] = None,
) -> None:
    """Download OHLCV (and funding) for each symbol and timeframe into DIR."""
    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    symbol_list = _split(symbols, "--symbols")
    for symbol in symbol_list:
        if "/" not in symbol:
            raise typer.BadParameter(f"{symbol!r}: expected BASE/QUOTE:SETTLE", param_hint="--symbols")
    tf_list = _split(timeframes, "--timeframes")
    for tf in tf_list:
        try:
            interval_ms(tf)
        except HyperliquidError as exc:
            raise typer.BadParameter(str(exc), param_hint="--timeframes") from None
    now_ms = int(time.time() * 1000)
    since_ms = _parse_time(since, "--since")
    until_ms = _parse_time(until, "--until") if until is not None else now_ms
    if until_ms < since_ms:
        raise typer.BadParameter("--until is before --since", param_hint="--until")

    try:
        settings = load_settings(
            config if config is not None else state.config_path,
            secrets if secrets is not None else state.secrets_path,
            process="cli",
        )
    except TTTError as exc:
        err_console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(int(exc.exit_code)) from None

    written: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        client = HyperliquidInfoClient.from_settings(settings.config.exchange.hyperliquid)
    except HyperliquidError as exc:
        err_console.print(f"data fetch: {exc}", markup=False, highlight=False)
        raise typer.Exit(int(ExitCode.USAGE)) from None
    with client:
        try:
            for symbol in symbol_list:
                coin = derive_api_coin(symbol)
                for tf in tf_list:
                    step = interval_ms(tf)
                    candles = [
                        c
                        for c in client.candle_snapshot(coin, tf, since_ms, until_ms)
                        if c.ts_open + step <= now_ms
                    ]
                    if not candles:
                        notes.append(f"{symbol} {tf}: the exchange returned no closed bars in the range")
                        continue
                    if candles[0].ts_open > since_ms - since_ms % step:
                        notes.append(
                            f"{symbol} {tf}: bars start at {_iso(candles[0].ts_open)}, after --since "
                            f"{_iso(since_ms)} (the exchange keeps a limited history per interval)"
                        )
                    path = write_ohlcv(out, symbol, tf, candles)
                    written.append(
                        {"symbol": symbol, "timeframe": tf, "rows": len(candles), "path": str(path)}
                    )
                if funding:
                    rates = client.funding_history(coin, since_ms, until_ms)
                    if not rates:
                        notes.append(f"{symbol}: the exchange returned no funding rates in the range")
                        continue
                    path = write_funding(out, symbol, rates)
                    written.append(
                        {"symbol": symbol, "timeframe": "funding", "rows": len(rates), "path": str(path)}
                    )
        except HyperliquidError as exc:
            for note in notes:
                err_console.print(f"note: {note}", markup=False, highlight=False)
            err_console.print(f"data fetch failed: {exc}", markup=False, highlight=False)
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    for note in notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    state.emit(
        {"files": written, "notes": notes},
        lambda: "\n".join(f"{w['path']}: {w['rows']} rows" for w in written) or "no files written",
    )


__all__ = ["data_app"]
