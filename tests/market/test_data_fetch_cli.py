"""`3t data fetch` against a real local /info server: feather files pandas reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.market.hl_local import InfoServer, Recorded, Reply, candle_route, cassette_answer
from ttt.cli.data_cmd import data_app

SINCE = datetime(2023, 5, 20, tzinfo=UTC)
UNTIL = datetime(2023, 5, 20, 6, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture(scope="module")
def funding_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cassette_answer("test_get_funding_history-None.yaml", "fundingHistory")
    return rows


def make_route(funding_rows: list[dict[str, Any]]) -> Any:
    candles = candle_route()

    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        if body["type"] == "candleSnapshot":
            return candles(body, rec)
        if body["type"] == "fundingHistory":
            lo, hi = body["startTime"], body.get("endTime", 10**15)
            return 200, [r for r in funding_rows if lo <= r["time"] <= hi and r["coin"] == body["coin"]]
        return 422, f"unknown type {body['type']}"

    return route


def write_config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(f"exchange:\n  hyperliquid:\n    network: custom\n    base_url: {base_url}\n")
    return path


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(data_app, args, catch_exceptions=False)


def test_fetch_writes_freqtrade_feather_files(tmp_path: Path, funding_rows: list[dict[str, Any]]) -> None:
    out = tmp_path / "data"
    with InfoServer(make_route(funding_rows)) as server:
        result = invoke(
            [
                "fetch",
                "--symbols",
                "BTC/USDC:USDC",
                "--timeframes",
                "1m,4h",
                "--since",
                SINCE.isoformat(),
                "--until",
                "2023-05-20T06:00:00Z",
                "--out",
                str(out),
                "--config",
                str(write_config(tmp_path, server.url)),
            ]
        )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "BTC_USDC_USDC-1h-funding_rate.feather",
        "BTC_USDC_USDC-1m-futures.feather",
        "BTC_USDC_USDC-4h-futures.feather",
    ]

    bars = pd.read_feather(out / "BTC_USDC_USDC-1m-futures.feather")
    assert list(bars.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert str(bars["date"].dtype) == "datetime64[ns, UTC]"
    # 00:00 … 06:00 inclusive: 361 one-minute bars.
    assert len(bars) == 361
    assert bars["date"].iloc[0] == pd.Timestamp(SINCE)
    assert bars["date"].iloc[-1] == pd.Timestamp(UNTIL)
    k = ms(SINCE) // 60_000 + 100  # row 100, as the local server built it
    o = 100 + (k % 100_000) / 1000
    row = bars.iloc[100]
    assert row["open"] == pytest.approx(o, abs=1e-9)
    assert row["close"] == pytest.approx(o + 0.0005, abs=1e-9)
    assert row["high"] == pytest.approx(o + 0.0015, abs=1e-9)
    assert row["low"] == pytest.approx(o - 0.001, abs=1e-9)
    assert row["volume"] == k % 7 + 1.5

    four = pd.read_feather(out / "BTC_USDC_USDC-4h-futures.feather")
    assert list(four["date"]) == [pd.Timestamp(SINCE), pd.Timestamp(datetime(2023, 5, 20, 4, tzinfo=UTC))]

    funding = pd.read_feather(out / "BTC_USDC_USDC-1h-funding_rate.feather")
    expected = [r for r in funding_rows if ms(SINCE) <= r["time"] <= ms(UNTIL)]
    assert expected  # the recorded history covers the window
    assert list(funding.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert [int(d.value // 1_000_000) for d in funding["date"]] == [r["time"] for r in expected]
    assert list(funding["open"]) == [float(r["fundingRate"]) for r in expected]
    assert (funding[["high", "low", "close", "volume"]] == 0).all().all()


def test_fetch_output_is_readable_by_the_replay_loader(
    tmp_path: Path, funding_rows: list[dict[str, Any]]
) -> None:
    from ttt.adapters.market.files import load_file

    out = tmp_path / "d"
    with InfoServer(make_route(funding_rows)) as server:
        result = invoke(
            [
                "fetch",
                "--symbols",
                "ETH/USDC:USDC",
                "--since",
                "2023-05-20",
                "--until",
                "2023-05-20T01:00",
                "--out",
                str(out),
                "--no-funding",
                "--config",
                str(write_config(tmp_path, server.url)),
            ]
        )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["ETH_USDC_USDC-1m-futures.feather"]
    series = load_file(out / "ETH_USDC_USDC-1m-futures.feather")
    assert len(series) == 61


def test_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        data_app, ["fetch", "--symbols", "BTC/USDC:USDC", "--since", "yesterday", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--since" in result.output


def test_refused_request_fails_with_a_message(tmp_path: Path) -> None:
    def route(body: dict[str, Any], rec: Recorded) -> Reply:
        return 422, "Failed to deserialize the JSON body"

    with InfoServer(route) as server:
        config = write_config(tmp_path, server.url)
        result = CliRunner().invoke(
            data_app,
            [
                *("fetch", "--symbols", "BTC/USDC:USDC", "--since", "2023-05-20"),
                *("--until", "2023-05-20T00:10", "--out", str(tmp_path / "o"), "--config", str(config)),
            ],
        )
    assert result.exit_code == 1
    assert "data fetch failed" in result.output and "HTTP 422" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "o").exists()
