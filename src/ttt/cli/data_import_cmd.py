"""`3t data import PATH [--symbol S] [--timeframe TF] [--format F]` (services.md §12).

Register with `data_app.command("import")(data_import)`. Every file is reported on its own line; the exit
code is 2 when any file failed (bad input), after the good files were imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar, cast

import typer
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ttt.cli.context import CliState, console
from ttt.errors import ExitCode, TTTError

T = TypeVar("T")
FORMATS = ("auto", "feather", "csv", "parquet")


class ImportFailed(TTTError):
    """Some files were refused; the others were imported (exit code 2: bad input)."""

    exit_code = ExitCode.USAGE


class _WallClock:
    def now(self) -> float:
        return time.time()


def state_of(ctx: typer.Context) -> CliState:
    return ctx.obj if isinstance(ctx.obj, CliState) else CliState()


def with_migrated_engine(ctx: typer.Context, work: Callable[[Engine, object], T], *, process: str) -> T:
    """Settings, an engine at the schema head (upgraded first when `database.auto_migrate`), `work`."""
    from ttt.adapters.db.engine import make_engine, redacted
    from ttt.adapters.db.migrate import check_schema, upgrade
    from ttt.cli.db_cmd import DatabaseUnavailable
    from ttt.config import load_settings

    state = state_of(ctx)
    overrides = {"observability.log_level": state.log_level} if state.log_level else None
    settings = load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process=process)
    db = settings.config.database
    password = settings.secrets.database.password
    engine = make_engine(
        db.url,
        password=password.get_secret_value() if password is not None else None,
        pool_size=db.pool_size,
        pool_recycle_s=db.pool_recycle_s,
        echo=db.echo,
    )
    try:
        if settings.auto_migrate:
            upgrade(engine)
        check_schema(engine)
        return work(engine, settings)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnavailable(f"database error ({redacted(engine.url)}): {reason}") from None
    finally:
        engine.dispose()


def emit_unwrapped(state: CliState, data: object, render: Callable[[], Text]) -> None:
    """Like `CliState.emit`, but a long line (a file path plus its error) is never wrapped, so the report
    can be read by grep and by people alike."""
    if state.json:
        state.emit(data, render)
    else:
        console.print(render(), soft_wrap=True, highlight=False)


def _line(o: object) -> Text:
    from ttt.services.market_import import FileOutcome

    assert isinstance(o, FileOutcome)
    name = o.path.name
    if o.status == "imported":
        span = f"{o.as_dict()['first_open']} → {o.as_dict()['last_open']}"
        return Text(f"imported  {name}: {o.written} bars of {o.symbol} {o.timeframe} ({span})")
    if o.status == "funding":
        return Text(
            f"funding   {name}: {o.rows} rates validated, read from the file by replay (not imported)"
        )
    if o.status == "ignored":
        return Text(f"ignored   {name}: {o.message}")
    return Text(f"FAILED    {o.message}", style="red")


def data_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A bar file, or a directory of freqtrade-named files.")],
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Symbol for a single file, e.g. BTC/USDC:USDC.")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", help="Timeframe for a single file, e.g. 1m.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | feather | csv | parquet.")] = "auto",
) -> None:
    """Import bar files into market_data (one transaction per file; re-importing is harmless)."""
    from ttt.adapters.market.files import FileFormat, timeframe_ms
    from ttt.services.market_import import ImportReport, import_path

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: expected one of {', '.join(FORMATS)}", param_hint="--format")
    if timeframe is not None:
        timeframe_ms(timeframe)
    state = state_of(ctx)

    def work(engine: Engine, _settings: object) -> ImportReport:
        return import_path(
            engine, path, _WallClock(), symbol=symbol, timeframe=timeframe, fmt=cast(FileFormat, fmt)
        )

    report = with_migrated_engine(ctx, work, process="cli")
    data = {
        "files": [o.as_dict() for o in report.outcomes],
        "imported": len(report.imported),
        "failed": len(report.failed),
        "bars_written": report.bars_written,
    }

    def render() -> Text:
        lines = [_line(o) for o in report.outcomes]
        summary = f"{len(report.imported)} file(s) imported, {report.bars_written} bars written"
        if report.failed:
            summary += f"; {len(report.failed)} file(s) failed and wrote nothing"
        return Text("\n").join([*lines, Text(summary)])

    emit_unwrapped(state, data, render)
    if report.failed:
        names = ", ".join(o.path.name for o in report.failed)
        raise ImportFailed(f"{len(report.failed)} file(s) not imported: {names}")
