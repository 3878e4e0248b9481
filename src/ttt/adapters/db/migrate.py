"""Schema revisions: `3t db upgrade`, `3t db current`, and the start-up check (services.md §1.4 step 3).

Alembic is configured in code, so an installed 3T needs no alembic.ini and no working-directory layout.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from ttt.adapters.db.engine import read_only
from ttt.errors import SchemaBehindError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = "ttt_schema_migration"
_MIGRATION_LOCK_WAIT_S = 120


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision this version of 3T knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, None for an empty database."""
    with read_only(engine).connect() as conn:
        return _revision(conn)


def _serialise_migrations(conn: Connection) -> None:
    """Two processes starting together must not both create the tables (SQLite is serialised already by
    BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": _MIGRATION_LOCK})
    elif conn.dialect.name in ("mysql", "mariadb"):
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :wait)"),
            {"name": _MIGRATION_LOCK, "wait": _MIGRATION_LOCK_WAIT_S},
        ).scalar()
        if got != 1:
            raise RuntimeError(f"another process has been migrating the schema for {_MIGRATION_LOCK_WAIT_S}s")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply pending migrations; returns (revision before, revision after). Idempotent."""
    cfg = alembic_config()
    with engine.begin() as conn:
        _serialise_migrations(conn)
        try:
            before = _revision(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            after = _revision(conn)
        finally:
            if conn.dialect.name in ("mysql", "mariadb"):
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": _MIGRATION_LOCK})
    return before, after


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def check_schema(engine: Engine) -> str:
    """Raise SchemaBehindError (exit code 3) unless the database is exactly at this code's head."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is None:
        raise SchemaBehindError(f"database schema is empty (head is {head}); run `3t db upgrade`")
    if current not in known:
        raise SchemaBehindError(
            f"database schema revision {current} is unknown to this version of 3T (head {head}); "
            "the database was migrated by a newer release"
        )
    raise SchemaBehindError(f"database schema revision {current} is behind head {head}; run `3t db upgrade`")
