"""`3t config check | show | init` (services.md §11, §12)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ttt.cli.context import CliState, err_console
from ttt.config import PROCESSES, Settings, load_settings
from ttt.config.template import config_template, secrets_template
from ttt.errors import ExitCode

config_app = typer.Typer(
    name="config",
    help="Validate, show and create the configuration (config.yml and secrets.yml).",
    no_args_is_help=True,
)

ProcessOption = Annotated[
    str,
    typer.Option(
        "--process",
        help="Validate for this process kind (run, worker, beat, feed, gateway, observer, dashboard, "
        "sim-exchange, cli); auto = run in embedded mode, cli in distributed mode.",
    ),
]

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="config.yml path (overrides the global --config).")
]
SecretsOption = Annotated[
    Path | None, typer.Option("--secrets", help="secrets.yml path (overrides the global --secrets).")
]


def _state(ctx: typer.Context, config: Path | None = None, secrets: Path | None = None) -> CliState:
    """The global options, with this command's own --config/--secrets taking precedence."""
    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    return CliState(
        config_path=config if config is not None else state.config_path,
        secrets_path=secrets if secrets is not None else state.secrets_path,
        log_level=state.log_level,
        json=state.json,
    )


def _load(state: CliState, process: str) -> Settings:
    overrides: dict[str, Any] = {}
    if state.log_level is not None:
        overrides["observability.log_level"] = state.log_level
    kind = process
    if process == "auto":
        # The mode decides which process a plain check stands for, so peek at it through a first load.
        probe = load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process="cli")
        kind = "run" if probe.config.mode == "embedded" else "cli"
        if kind == "cli":
            return probe
    elif process not in PROCESSES:
        err_console.print(
            f"--process {process!r}: one of auto, {', '.join(PROCESSES)}", markup=False, highlight=False
        )
        raise typer.Exit(int(ExitCode.USAGE))
    return load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process=kind)


def _warn(settings: Settings) -> None:
    for warning in settings.warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def _print(state: CliState, settings: Settings) -> None:
    data = settings.redacted_dict()
    if state.json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    header = f"# sources: {', '.join(settings.sources) or 'none (built-in defaults)'}\n"
    header += f"# config hash: {settings.config_hash()}\n"
    typer.echo(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), nl=False)


@config_app.command("check")
def check(
    ctx: typer.Context,
    process: ProcessOption = "auto",
    config: ConfigOption = None,
    secrets: SecretsOption = None,
) -> None:
    """Validate the configuration and secrets; print the effective configuration; exit 2 on error."""
    state = _state(ctx, config, secrets)
    settings = _load(state, process)
    _warn(settings)
    _print(state, settings)
    err_console.print(
        f"configuration OK for process {settings.process} ({len(settings.warnings)} warning(s))",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@config_app.command("show")
def show(
    ctx: typer.Context,
    process: ProcessOption = "auto",
    config: ConfigOption = None,
    secrets: SecretsOption = None,
) -> None:
    """Print the effective configuration with every secret redacted."""
    state = _state(ctx, config, secrets)
    settings = _load(state, process)
    _warn(settings)
    _print(state, settings)


@config_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write config.yml and secrets.yml.")] = Path("."),
) -> None:
    """Write a commented config.yml (every key at its default) and a secrets.yml template."""
    targets = [(directory / "config.yml", config_template()), (directory / "secrets.yml", secrets_template())]
    existing = [str(path) for path, _ in targets if path.exists() or path.is_symlink()]
    if existing:
        err_console.print(
            f"3t config init: {' and '.join(existing)} already exist(s); refusing to overwrite",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(int(ExitCode.USAGE))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in targets:
            mode = 0o600 if path.name == "secrets.yml" else 0o644
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as exc:
        err_console.print(
            f"3t config init: cannot write {exc.filename or directory}: {exc.strerror or exc}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
    for path, _ in targets:
        typer.echo(f"wrote {path}")
