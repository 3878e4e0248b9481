"""`3t db upgrade` and `3t db current` (services.md §12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ttt.cli.context import CliState
from ttt.errors import TTTError

T = TypeVar("T")

db_app = typer.Typer(
    name="db",
    help="Database schema: apply and inspect the (additive-only) migrations.",
    no_args_is_help=True,
)


class DatabaseUnavailable(TTTError):
    """The database could not be reached or refused the statement (exit code 1, one line, no traceback)."""


def _with_engine(ctx: typer.Context, work: Callable[[Engine], T]) -> T:
    from ttt.adapters.db.engine import make_engine, redacted
    from ttt.config import load_settings

    state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    overrides = {"observability.log_level": state.log_level} if state.log_level else None
    settings = load_settings(state.config_path, state.secrets_path, cli_overrides=overrides, process="cli")
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
        return work(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnavailable(f"database error ({redacted(engine.url)}): {reason}") from None
    finally:
        engine.dispose()


def _state(ctx: typer.Context) -> CliState:
    return ctx.obj if isinstance(ctx.obj, CliState) else CliState()


@db_app.command("upgrade")
def upgrade_cmd(ctx: typer.Context) -> None:
    """Apply pending Alembic migrations (additive only); safe to run again."""
    from ttt.adapters.db.migrate import head_revision, upgrade

    before, after = _with_engine(ctx, upgrade)
    data = {"from": before, "to": after, "head": head_revision()}

    def render() -> str:
        if before == after:
            return f"schema already at head {after}"
        return f"schema upgraded from {before or 'empty'} to {after}"

    _state(ctx).emit(data, render)


@db_app.command("current")
def current_cmd(ctx: typer.Context) -> None:
    """Print the database's schema revision and this version's head (exit 0 even when behind)."""
    from ttt.adapters.db.migrate import current_revision, head_revision

    revision = _with_engine(ctx, current_revision)
    head = head_revision()
    data = {"revision": revision, "head": head, "up_to_date": revision == head}

    def render() -> str:
        note = "" if revision == head else "  (behind: run `3t db upgrade`)"
        return f"revision: {revision or 'none'}\nhead: {head}{note}"

    _state(ctx).emit(data, render)
