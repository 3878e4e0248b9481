"""Engine construction for the three supported backends (services.md §1.2, §4.1, §11.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

SQLITE_BUSY_TIMEOUT_MS = 5000
_SQLITE_READ_ONLY = "ttt_sqlite_read_only"


def resolve_url(url: str | URL, password: str | None = None) -> URL:
    """The configured URL with the secrets password merged in when the URL carries none."""
    parsed = make_url(url) if isinstance(url, str) else url
    if password and parsed.password is None and not parsed.get_backend_name().startswith("sqlite"):
        parsed = parsed.set(password=password)
    return parsed


def redacted(url: str | URL) -> str:
    """The URL as it may appear in messages and logs."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _install_sqlite_pragmas(engine: Engine) -> None:
    """WAL, busy timeout, synchronous=NORMAL, foreign keys; and transactions that really are ones.

    The stdlib driver starts transactions lazily and only before DML, which breaks SAVEPOINT and lets a
    read-then-write sequence interleave with another writer. Driver autocommit plus an explicit
    `BEGIN IMMEDIATE` gives each transaction the write lock up front, waiting up to busy_timeout for it
    (see `read_only` for transactions that only read). Consequence: on SQLite, do not hold a writing
    transaction open while waiting for another connection to write (e.g. a DB lock call inside a unit of
    work); the second waits busy_timeout and then fails.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        deferred = connection.get_execution_options().get(_SQLITE_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def read_only(engine: Engine) -> Engine:
    """The same pool, for transactions that only read.

    On SQLite they begin DEFERRED and so never take the write lock (WAL readers do not block writers);
    every other transaction begins IMMEDIATE. A write inside such a transaction still works but may fail
    with "database is locked" if another connection wrote meanwhile. No effect on the other backends.
    """
    return engine.execution_options(**{_SQLITE_READ_ONLY: True})


def make_engine(
    url: str | URL,
    *,
    password: str | None = None,
    pool_size: int = 10,
    pool_recycle_s: float = 1800,
    echo: bool = False,
) -> Engine:
    """An engine configured for 3T: SQLite per §1.2, MariaDB and PostgreSQL with pooled connections."""
    resolved = resolve_url(url, password)
    backend = resolved.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_file(resolved)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"echo": echo, "connect_args": {"check_same_thread": False}}
        if path is not None:
            kwargs.update(pool_size=pool_size, pool_recycle=int(pool_recycle_s))
        engine = sa.create_engine(resolved, **kwargs)
        _install_sqlite_pragmas(engine)
        return engine
    kwargs = {
        "echo": echo,
        "pool_size": pool_size,
        "pool_recycle": int(pool_recycle_s),
        "pool_pre_ping": True,
    }
    if backend in ("mysql", "mariadb"):
        # The same visibility rules as PostgreSQL's default; REPEATABLE READ would pin stale snapshots.
        kwargs["isolation_level"] = "READ COMMITTED"
        if "charset" not in resolved.query:
            resolved = resolved.update_query_dict({"charset": "utf8mb4"})
    return sa.create_engine(resolved, **kwargs)
