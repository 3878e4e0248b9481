"""`3t db upgrade` and `3t db current` through `ttt.cli.main` with a temporary configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ttt.adapters.db.migrate import head_revision


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from ttt.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def _config(tmp_path: Path, url: str, password: str | None = None) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "config.yml"
    cfg.write_text(f'database:\n  url: "{url}"\n', encoding="utf-8")
    sec = tmp_path / "secrets.yml"
    sec.write_text(f"database:\n  password: {json.dumps(password)}\n", encoding="utf-8")
    return ["--config", str(cfg), "--secrets", str(sec)]


def test_db_current_then_upgrade_then_current(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = _config(tmp_path, db_url)
    code, out, err = _run(capsys, *opts, "db", "current")
    assert (code, err) == (0, "")
    assert "revision: none" in out and f"head: {head_revision()}" in out and "behind" in out

    code, out, _ = _run(capsys, *opts, "db", "upgrade")
    assert code == 0 and f"schema upgraded from empty to {head_revision()}" in out

    code, out, _ = _run(capsys, *opts, "db", "upgrade")
    assert code == 0 and f"schema already at head {head_revision()}" in out

    code, out, _ = _run(capsys, *opts, "--json", "db", "current")
    assert code == 0
    assert json.loads(out) == {"revision": head_revision(), "head": head_revision(), "up_to_date": True}


def test_password_comes_from_secrets_when_url_has_none(
    mariadb_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sa.engine.make_url(mariadb_url)
    password = url.password
    assert password
    bare = f"{url.drivername}://{url.username}@{url.host}:{url.port}/{url.database}"
    code, _, err = _run(capsys, *_config(tmp_path / "none", bare), "db", "current")
    assert code == 1 and "database error" in err and "using password: NO" in err
    code, out, err = _run(capsys, *_config(tmp_path / "with", bare, password), "--json", "db", "upgrade")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"from": None, "to": head_revision(), "head": head_revision()}


def test_unreachable_database_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opts = _config(tmp_path, "postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    code, out, err = _run(capsys, *opts, "db", "current")
    assert code == 1 and out == ""
    assert err.startswith("database error (postgresql+psycopg://nobody:***@127.0.0.1:1/none)")
    assert "Traceback" not in err
