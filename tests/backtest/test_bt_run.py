"""`3t backtest` end to end on real Hyperliquid data (SV-14) and its exit codes for bad input."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import require_shared_data
from ttt.cli import app, main

SYMBOLS = "BTC/USDC:USDC,ETH/USDC:USDC"
DETERMINISTIC = ("summary.json", "equity.csv", "orders.csv", "fills.csv", "cycles.csv", "epochs.csv")


def _register() -> None:
    """The lead registers the command in ttt.cli; until then the test adds it to the app once."""
    if not any(c.name == "backtest" for c in app.registered_commands):
        from ttt.cli.backtest_cmd import backtest

        app.command(name="backtest")(backtest)


def _backtest(*args: str) -> int:
    _register()
    return main(["backtest", *args])


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


# a small population and a 60 s reconcile period, so that a 12-minute window trades (seed 1: orders at
# 12:06 and 12:07); 24 h of warm-up bars come from the same files
SMALL = (
    "providence:\n  desired_run_count: 40\n"
    "scheduler:\n  periods:\n    reconcile: 60\n"
    "portfolio:\n  live_pnl_threshold: 0.0\n  risk_pos_percentage: 0.01\n"
)


def test_sv14_same_data_and_seed_twice_gives_byte_identical_outputs(tmp_path: Path) -> None:
    data = require_shared_data("hyperliquid", "BTC_USDC_USDC-1m-futures.feather").parent
    require_shared_data("hyperliquid", "ETH_USDC_USDC-1m-futures.feather")
    config = _config(tmp_path, SMALL)
    outs = [tmp_path / "first", tmp_path / "second"]
    for out in outs:
        code = _backtest(
            "--data", str(data), "--symbols", SYMBOLS, "--start", "2025-07-22T12:00:00Z",
            "--end", "2025-07-22T12:12:00Z", "--config", str(config), "--seed", "1", "--out", str(out),
            "--format", "json",
        )  # fmt: skip
        assert code == 0
    for name in (*DETERMINISTIC, "runs.parquet", "report.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name

    summary = json.loads((outs[0] / "summary.json").read_text())
    inputs = summary["inputs"]
    assert inputs["seed"] == 1
    assert inputs["period"] == {"start": "2025-07-22T12:00:00Z", "end": "2025-07-22T12:12:00Z"}
    bars = {f["file"]: f["sha256"] for f in inputs["files"]}
    btc = data / "BTC_USDC_USDC-1m-futures.feather"
    assert bars[btc.name] == hashlib.sha256(btc.read_bytes()).hexdigest()
    assert set(summary["metrics"]) == {"strategy", "buy_and_hold", "random_vote"}
    strategy = summary["metrics"]["strategy"]
    assert strategy["orders"] >= 1 and strategy["trades"] >= 1  # the window really trades
    assert strategy["fees_usd"] > 0

    with (outs[0] / "equity.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["ts", "account_value", "cash", "gross_exposure_usd", "net_exposure_usd"]
    stamps = [datetime.fromisoformat(r["ts"]).timestamp() for r in rows]
    assert len(rows) == 13 and all(b - a == 60 for a, b in itertools.pairwise(stamps))
    assert rows[0]["account_value"] == "10000.000000"  # the paper account's initial balance
    assert float(rows[-1]["account_value"]) == pytest.approx(strategy["end_equity"], abs=1e-6)

    # wall-clock facts live only in run_info.json; nothing of today's date in the deterministic files
    info = json.loads((outs[0] / "run_info.json").read_text())
    assert info["duration_s"] > 0 and info["host"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for name in DETERMINISTIC:
        assert today not in (outs[0] / name).read_text(), name
    report = (outs[0] / "report.md").read_text()
    assert "| total_return |" in report and "buy_and_hold" in report


def test_missing_data_path_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert _backtest("--data", str(missing), "--out", str(tmp_path / "o")) == 2
    assert str(missing) in capsys.readouterr().err


def test_data_without_the_symbols_exits_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    (empty / "SOL_USDC_USDC-1m-futures.csv").write_text("timestamp,open,high,low,close,volume\n")
    config = _config(tmp_path, "")
    code = _backtest("--data", str(empty), "--config", str(config), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "futures" in capsys.readouterr().err


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "portfolio:\n  quorum:\n    kk: 1\n")
    code = _backtest("--data", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "portfolio.quorum.kk" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--start", "yesterday"), "--start"),
        (("--baselines", "buy_and_hold,coin_flip"), "coin_flip"),
        (("--tick-s", "0"), "--tick-s"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], named: str
) -> None:
    config = _config(tmp_path, "")
    code = _backtest("--data", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "o"), *args)
    assert code == 2
    assert named in capsys.readouterr().err


def test_a_used_output_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    config = _config(tmp_path, "")
    assert _backtest("--data", str(tmp_path), "--config", str(config), "--out", str(out)) == 2
    assert "fresh directory" in capsys.readouterr().err
