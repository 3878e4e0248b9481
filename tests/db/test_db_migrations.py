"""Schema migrations: upgrade from empty, idempotence, the start-up check, and SV-19."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ttt.adapters.db import migrate
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.models import metadata
from ttt.errors import ExitCode, SchemaBehindError

SPEC_TABLES = {
    "exchanges",
    "instruments",
    "products",
    "balance_history",
    "positions",
    "market_data",
    "runs",
    "providence_apex_burned",
    "take_profit_state",
    "epochs",
    "reconciliation_cycles",
    "reconciliation_log",
    "order_execution_log",
    "fills",
    "audit_log",
    "paper_accounts",
    "paper_positions",
    "paper_orders",
    "paper_trades",
    "paper_ledger",
    "locks",
    "control_requests",
}


def test_upgrade_from_empty_is_idempotent_and_reaches_head(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.current_revision(engine) is None
        with pytest.raises(SchemaBehindError) as err:
            migrate.check_schema(engine)
        assert err.value.exit_code == ExitCode.SCHEMA_BEHIND
        assert "3t db upgrade" in str(err.value)

        before, after = migrate.upgrade(engine)
        assert (before, after) == (None, migrate.head_revision())
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.check_schema(engine) == migrate.head_revision()

        assert migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())
        tables = set(sa.inspect(engine).get_table_names())
        assert tables == SPEC_TABLES | {"alembic_version"}
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    """The hand-frozen migration and the models describe the same tables, columns and indexes."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
            if conn.dialect.name == "mysql" and conn.dialect.is_mariadb:
                # SQLAlchemy's reflection does not parse the `/*M!100301 COMPRESSED*/` of 0004 and reads
                # the column as nullable: the server's own catalogue answers for it instead.
                diffs = [d for d in diffs if not _is_run_state_nullable_misread(d)]
                nullable = conn.exec_driver_sql(
                    "SELECT is_nullable FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = 'runs' AND column_name = 'run_state'"
                ).scalar_one()
                assert nullable == "NO"
            assert diffs == []
    finally:
        engine.dispose()


def _is_run_state_nullable_misread(diff: object) -> bool:
    return (
        isinstance(diff, list)
        and len(diff) == 1
        and diff[0][0] == "modify_nullable"
        and diff[0][2:4] == ("runs", "run_state")
        and diff[0][5:7] == (True, False)
    )


def test_unknown_revision_is_reported_as_schema_error(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaBehindError, match="unknown to this version"):
            migrate.check_schema(engine)
    finally:
        engine.dispose()


def test_sv19_migration_files_contain_no_drop() -> None:
    files = [p for p in migrate.MIGRATIONS_DIR.rglob("*") if p.is_file() and p.suffix in {".py", ".mako"}]
    assert any(p.name.startswith("0001") for p in files)
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in ("drop_table", "drop_column", "DROP"):
            if pattern in text:
                offenders.append(f"{path.name}: {pattern}")
        if re.search(r"\bdrop\b", text, flags=re.IGNORECASE):
            offenders.append(f"{path.name}: drop")
    assert offenders == []


def test_sqlite_file_gets_wal_pragmas_and_parent_directory(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "ttt.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert db.exists()
    finally:
        engine.dispose()


def test_password_from_secrets_is_merged_only_when_url_has_none() -> None:
    from ttt.adapters.db.engine import resolve_url

    assert resolve_url("mysql+pymysql://ttt@db/ttt", "s3cret").password == "s3cret"
    assert resolve_url("mysql+pymysql://ttt:given@db/ttt", "s3cret").password == "given"
    assert resolve_url("postgresql+psycopg://u@h/d", None).password is None


def test_sqlite_readers_do_not_wait_for_an_open_writer(sqlite_url: str) -> None:
    """Writing transactions begin IMMEDIATE; read-only ones begin DEFERRED and read beside them (WAL)."""
    from ttt.adapters.db.uow import UnitOfWork

    engine = make_engine(sqlite_url)
    try:
        migrate.upgrade(engine)
        with UnitOfWork(engine) as writer:
            writer.control.add("x", {}, 1_767_225_600.0)
            assert writer.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            with UnitOfWork(engine, read_only=True) as reader:
                assert reader.control.pending() == []  # sees the last committed state, at once
            assert migrate.current_revision(engine) == migrate.head_revision()
        with UnitOfWork(engine, read_only=True) as reader:
            assert [r.kind for r in reader.control.pending()] == ["x"]
    finally:
        engine.dispose()
