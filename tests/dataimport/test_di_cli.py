"""`3t data import` and `3t products sync` through `ttt.cli.main` (registered here for the test only; the
lead registers them in `ttt.cli`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dataimport.di_support import market_count
from tests.support import require_shared_data
from ttt.adapters.db.engine import make_engine
from ttt.cli import app, main
from ttt.cli.data_cmd import data_app
from ttt.cli.data_import_cmd import data_import
from ttt.cli.products_cmd import products_app

T0 = 1_752_000_000_000
HEADER = "timestamp,open,high,low,close,volume"


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(data_app, "registered_commands", list(data_app.registered_commands))
    monkeypatch.setattr(app, "registered_groups", list(app.registered_groups))
    data_app.command("import")(data_import)
    app.add_typer(products_app, name="products")
    yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def options(tmp_path: Path, extra: str = "") -> tuple[list[str], str]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    cfg = tmp_path / "config.yml"
    cfg.write_text(f'database:\n  url: "{url}"\n{extra}', encoding="utf-8")
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("{}\n", encoding="utf-8")
    return ["--config", str(cfg), "--secrets", str(secrets)], url


def test_data_import_directory_reports_each_file_and_exits_2_on_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts, url = options(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    good = [HEADER, *(f"{T0 + i * 60_000},10,12,9,11,1" for i in range(3))]
    (data / "BTC_USDC_USDC-1m-futures.csv").write_text("\n".join(good) + "\n")
    bad = [HEADER, f"{T0},10,12,9,11,1", f"{T0 + 60_000},10,12,9,[11],1"]
    (data / "ETH_USDC_USDC-1m-futures.csv").write_text("\n".join(bad) + "\n")
    code, out, err = run(capsys, *opts, "data", "import", str(data))
    assert code == 2, err
    assert "imported  BTC_USDC_USDC-1m-futures.csv: 3 bars of BTC/USDC:USDC 1m" in out
    assert "FAILED" in out and "ETH_USDC_USDC-1m-futures.csv: row 2: non-numeric value '[11]'" in out
    assert "1 file(s) imported, 3 bars written; 1 file(s) failed" in " ".join(out.split())
    assert "1 file(s) not imported: ETH_USDC_USDC-1m-futures.csv" in err and "Traceback" not in err
    engine = make_engine(url)
    try:
        assert market_count(engine, "BTC/USDC:USDC") == 3 and market_count(engine, "ETH/USDC:USDC") == 0
    finally:
        engine.dispose()

    code, out, _ = run(capsys, *opts, "--json", "data", "import", str(data / "BTC_USDC_USDC-1m-futures.csv"))
    doc = json.loads(out)
    assert code == 0 and (doc["imported"], doc["failed"], doc["bars_written"]) == (1, 0, 3)
    assert doc["files"][0]["first_open"] == "2025-07-08T18:40:00+00:00"


def test_data_import_real_file_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = require_shared_data("hyperliquid", "SOL_USDC_USDC-1h-futures.feather")
    opts, url = options(tmp_path)
    code, out, err = run(
        capsys,
        *opts,
        "--json",
        "data",
        "import",
        str(path),
        "--symbol",
        "SOLX/USDC:USDC",
        "--format",
        "feather",
    )
    assert code == 0, err
    doc = json.loads(out)["files"][0]
    assert (doc["symbol"], doc["timeframe"], doc["status"]) == ("SOLX/USDC:USDC", "1h", "imported")
    engine = make_engine(url)
    try:
        assert market_count(engine, "SOLX/USDC:USDC", "1h") == doc["rows"] > 7000
    finally:
        engine.dispose()


def test_data_import_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opts, _ = options(tmp_path)
    code, _, err = run(capsys, *opts, "data", "import", str(tmp_path), "--format", "xlsx")
    assert code == 2 and "--format" in err
    code, _, err = run(capsys, *opts, "data", "import", str(tmp_path), "--timeframe", "1x")
    assert code == 2 and "timeframe '1x'" in err
    code, _, err = run(capsys, *opts, "data", "import", str(tmp_path / "nope.feather"))
    assert code == 2 and "nope.feather: no such file or directory" in err


def test_schema_behind_without_auto_migrate_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts, _ = options(tmp_path, "  auto_migrate: false\n")
    code, _, err = run(capsys, *opts, "products", "sync")
    assert code == 3 and "3t db upgrade" in err


def test_products_sync_paper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = "exchange:\n  paper:\n    products:\n      BTC/USDC:USDC: {sz_decimals: 5, max_leverage: 40}\n"
    opts, url = options(tmp_path, extra)
    code, out, err = run(capsys, *opts, "products", "sync")
    assert code == 0, err
    assert "paper: 4 product(s) created, 0 refreshed" in out
    code, out, _ = run(capsys, *opts, "--json", "products", "sync")
    assert code == 0 and json.loads(out)["updated"] == [
        "BTC/USDC:USDC",
        "ETH/USDC:USDC",
        "HYPE/USDC:USDC",
        "SOL/USDC:USDC",
    ]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name, kind FROM exchanges")).all()
            assert [tuple(r) for r in names] == [("paper", "paper")]
            assert conn.execute(sa.text("SELECT count(*) FROM products")).scalar_one() == 4
    finally:
        engine.dispose()
