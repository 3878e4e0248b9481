"""Shared fixtures: fresh databases on the real servers, a private Redis namespace, shared data paths.

Server URLs come from T3_TEST_* variables (not TTT_*, which the configuration loader owns); the defaults
match the machine and `.ci/run`, which creates the users these URLs name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("T3_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("T3_TEST_MARIADB_URL", "mysql+pymysql://ttt:ttt@127.0.0.1:3306/")
REDIS_URL = os.environ.get("T3_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _fresh_name() -> str:
    return f"ttt_t{uuid.uuid4().hex[:12]}"


def _server_database(admin_url: str, backend: str) -> Iterator[str]:
    """Create an empty database on a real server, yield its URL, drop it afterwards."""
    name = _fresh_name()
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        else:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = sa.engine.make_url(admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ttt.sqlite'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _server_database(PG_ADMIN_URL, "postgresql")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _server_database(MARIADB_ADMIN_URL, "mariadb")


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each of the three supported backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ttt.sqlite'}"
    elif request.param == "mariadb":
        yield from _server_database(MARIADB_ADMIN_URL, "mariadb")
    else:
        yield from _server_database(PG_ADMIN_URL, "postgresql")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A private key prefix on the real Redis; every key under it is deleted afterwards."""
    import redis

    prefix = f"ttt-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
