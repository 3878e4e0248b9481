"""The `3t` command line (services.md §12).

Sub-command groups live in sibling modules and are registered here; only commands that work are
registered. Errors meant for the user are printed as one message with the exit code of §12, never as a
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ttt.cli.context import CliState, console, err_console
from ttt.errors import ExitCode, TTTError

app = typer.Typer(
    name="3t",
    help="3T — Tactical Trend Trader: automated trend trading for Hyperliquid perpetuals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="TTT_CONFIG", help="config.yml path (default ./config.yml)."),
    ] = None,
    secrets: Annotated[
        Path | None,
        typer.Option("--secrets", envvar="TTT_SECRETS", help="secrets.yml path (default ./secrets.yml)."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="Overrides observability.log_level.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    ctx.obj = CliState(config_path=config, secrets_path=secrets, log_level=log_level, json=json_output)


@app.command()
def version(ctx: typer.Context) -> None:
    """Print the version, schema head and Python/ccxt versions."""
    import platform

    from ttt import __version__

    info: dict[str, str | None] = {"ttt": __version__, "python": platform.python_version()}
    try:
        import ccxt

        info["ccxt"] = str(ccxt.__version__)
    except ImportError:  # pragma: no cover - ccxt is a hard dependency
        info["ccxt"] = None
    try:
        from ttt.adapters.db.migrate import head_revision

        info["schema_head"] = head_revision()
    except ImportError:
        info["schema_head"] = None
    state: CliState = ctx.obj
    state.emit(info, lambda: "\n".join(f"{k}: {v}" for k, v in info.items()))


def _register() -> None:
    from ttt.cli.backtest_cmd import backtest
    from ttt.cli.config_cmd import config_app
    from ttt.cli.dashboard_cmd import dashboard
    from ttt.cli.data_cmd import data_app
    from ttt.cli.data_import_cmd import data_import
    from ttt.cli.db_cmd import db_app
    from ttt.cli.dist_cmd import register as register_dist
    from ttt.cli.feed_cmd import feed
    from ttt.cli.gateway_cmd import gateway
    from ttt.cli.orders_cmd import orders_app
    from ttt.cli.portfolio_cmd import register as register_portfolio
    from ttt.cli.products_cmd import products_app
    from ttt.cli.run_cmd import run as run_command
    from ttt.cli.runs_cmd import runs_app
    from ttt.cli.sim_exchange_cmd import sim_exchange

    app.add_typer(config_app, name="config")
    app.add_typer(db_app, name="db")
    data_app.command("import")(data_import)
    app.add_typer(data_app, name="data")
    app.add_typer(products_app, name="products")
    register_portfolio(app)
    register_dist(app)
    app.add_typer(orders_app, name="orders")
    app.add_typer(runs_app, name="runs")
    app.command(name="run")(run_command)
    app.command(name="gateway")(gateway)
    app.command(name="feed")(feed)
    app.command(name="dashboard")(dashboard)
    app.command(name="backtest")(backtest)
    app.command(name="sim-exchange")(sim_exchange)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `3t` console script."""
    try:
        rv = app(args=argv, prog_name="3t", standalone_mode=False)
    except TTTError as exc:
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted", markup=False)
        return 130
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: a message, never a traceback
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", ExitCode.USAGE))
        err_console.print(
            f"internal error: {type(exc).__name__}: {exc}", markup=False, highlight=False, soft_wrap=True
        )
        return int(ExitCode.INTERNAL)
    return rv if isinstance(rv, int) else 0


def _is_usage_error(exc: BaseException) -> bool:
    """Typer vendors its own click; accept either copy's ClickException (usage errors exit 2)."""
    import click

    classes: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        classes.append(TyperClickException)
    except ImportError:  # older typer uses click directly
        pass
    return isinstance(exc, tuple(classes))


def run() -> None:  # pragma: no cover - thin wrapper for the console script
    sys.exit(main())


__all__ = ["app", "console", "main", "run"]
