"""Bar/funding file loading: every shared file loads; each malformed case names file, row and problem."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as parquet
import pytest

from tests.support import require_shared_data
from ttt.adapters.market.files import (
    BarSeries,
    FundingSeries,
    discover,
    load_bars,
    load_file,
    load_funding,
    parse_file_name,
    timeframe_ms,
)
from ttt.errors import DataError

SHARED_FILES = [
    ("binance", f"{c}_USDT_USDT-{k}.feather")
    for c in ("BTC", "ETH", "SOL")
    for k in ("1m-futures", "8h-funding_rate")
] + [
    ("hyperliquid", f"{c}_USDC_USDC-{k}.feather")
    for c in ("BTC", "ETH", "SOL", "HYPE")
    for k in ("1m-futures", "5m-futures", "1h-futures", "1h-funding_rate", "8h-mark")
]


@pytest.mark.parametrize(("folder", "name"), SHARED_FILES, ids=[n for _, n in SHARED_FILES])
def test_every_shared_file_loads(folder: str, name: str) -> None:
    path = require_shared_data(folder, name)
    table = feather.read_table(path)  # the independent reading
    loaded = load_file(path)
    assert len(loaded) == table.num_rows
    first_ms = table.column("date")[0].as_py().timestamp() * 1000
    assert int(loaded.ts_ms[0]) == round(first_ms)
    if "funding_rate" in name:
        assert isinstance(loaded, FundingSeries)
        np.testing.assert_array_equal(loaded.rate, table.column("open").to_numpy())
        assert loaded.interval_ms == (8 if "8h" in name else 1) * 3_600_000
    else:
        assert isinstance(loaded, BarSeries)
        np.testing.assert_array_equal(loaded.close, table.column("close").to_numpy())
        np.testing.assert_array_equal(loaded.volume, table.column("volume").to_numpy())
        base = name.split("_")[0]
        assert loaded.symbol == f"{base}/{name.split('_')[1]}:{name.split('_')[2].split('-')[0]}"


def test_discover_hyperliquid_directory() -> None:
    root = require_shared_data("hyperliquid")
    data = discover(root)
    assert sorted(data.bars) == ["BTC/USDC:USDC", "ETH/USDC:USDC", "HYPE/USDC:USDC", "SOL/USDC:USDC"]
    assert all(b.timeframe == "1m" for b in data.bars.values())
    assert sorted(data.funding) == sorted(data.bars)


def test_file_name_parsing() -> None:
    name = parse_file_name("/x/BTC_USDC_USDC-1m-futures.feather")
    assert name is not None and (name.symbol, name.timeframe, name.kind) == ("BTC/USDC:USDC", "1m", "futures")
    name = parse_file_name("ETH_USDC_USDC-1h-funding_rate.parquet")
    assert name is not None and (name.symbol, name.timeframe, name.kind) == (
        "ETH/USDC:USDC",
        "1h",
        "funding_rate",
    )
    name = parse_file_name("SOL_USDC-5m-futures.csv")
    assert name is not None and name.symbol == "SOL/USDC"
    assert parse_file_name("prices.csv") is None
    assert timeframe_ms("1m") == 60_000 and timeframe_ms("4h") == 14_400_000


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [
    "timestamp,open,high,low,close,volume",
    "1700000000,100,110,95,105,1",
    "1700000060,105,106,100,101,2",
    "1700000120,101,103,99,102,3",
]


def test_csv_epoch_seconds_ms_and_iso_agree(tmp_path: Path) -> None:
    secs = load_bars(_write_csv(tmp_path / "a.csv", GOOD), symbol="BTC/USDC:USDC", timeframe="1m")
    ms_lines = [GOOD[0]] + [f"{int(r.split(',')[0]) * 1000},{r.split(',', 1)[1]}" for r in GOOD[1:]]
    ms = load_bars(_write_csv(tmp_path / "b.csv", ms_lines), symbol="BTC/USDC:USDC", timeframe="1m")
    iso_lines = ["date,open,high,low,close,volume"] + [
        f"{datetime.fromtimestamp(int(r.split(',')[0]), UTC):%Y-%m-%dT%H:%M:%SZ},{r.split(',', 1)[1]}"
        for r in GOOD[1:]
    ]
    iso = load_bars(_write_csv(tmp_path / "c.csv", iso_lines), symbol="BTC/USDC:USDC", timeframe="1m")
    expected = np.array([1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000])
    for series in (secs, ms, iso):
        np.testing.assert_array_equal(series.ts_ms, expected)
        np.testing.assert_array_equal(series.high, [110.0, 106.0, 103.0])
        np.testing.assert_array_equal(series.volume, [1.0, 2.0, 3.0])


def test_symbol_and_timeframe_from_name(tmp_path: Path) -> None:
    series = load_bars(_write_csv(tmp_path / "HYPE_USDC_USDC-1m-futures.csv", GOOD))
    assert (series.symbol, series.timeframe, len(series)) == ("HYPE/USDC:USDC", "1m", 3)


def test_parquet_round_trip(tmp_path: Path) -> None:
    table = pa.table(
        {
            "date": pa.array([1_700_000_000_000, 1_700_000_060_000], type=pa.timestamp("ms", tz="UTC")),
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [0.5, 1.5],
            "close": [1.5, 2.5],
            "volume": [10.0, 20.0],
        }
    )
    path = tmp_path / "ETH_USDC_USDC-1m-futures.parquet"
    parquet.write_table(table, path)
    series = load_bars(path)
    assert series.symbol == "ETH/USDC:USDC"
    np.testing.assert_array_equal(series.ts_ms, [1_700_000_000_000, 1_700_000_060_000])
    np.testing.assert_array_equal(series.close, [1.5, 2.5])


def test_funding_8h_rate_is_spread_per_hour(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "BTC_USDT_USDT-8h-funding_rate.csv",
        ["date,open,high,low,close,volume", "1700006400,0.0008,0,0,0,0", "1700035200,-0.0016,0,0,0,0"],
    )
    series = load_funding(path)
    assert series.hourly_rate_at(1_700_006_400_000 - 1) is None
    assert series.hourly_rate_at(1_700_006_400_000 + 3_600_000 * 7) == pytest.approx(0.0001)
    assert series.hourly_rate_at(1_700_035_200_000) == pytest.approx(-0.0002)


BROKEN: list[tuple[str, list[str], int | None, str]] = [
    (
        "missing_column",
        ["timestamp,open,high,low,volume", "1700000000,1,2,0.5,1"],
        None,
        "header: missing column(s) close",
    ),
    ("no_time_column", ["when,open,high,low,close,volume", "1,1,2,0.5,1,1"], None, "date (or timestamp)"),
    (
        "non_numeric",
        [*GOOD[:2], "1700000060,abc,106,100,101,2"],
        2,
        "non-numeric value 'abc' in column 'open'",
    ),
    ("non_finite", [*GOOD[:3], "1700000120,101,inf,99,102,3"], 3, "non-finite value inf in column 'high'"),
    ("nan_price", [*GOOD[:2], "1700000060,105,106,100,nan,2"], 2, "non-finite value nan in column 'close'"),
    ("high_below_low", [*GOOD[:2], "1700000060,105,99,100,101,2"], 2, "high 99.0 < low 100.0"),
    (
        "open_outside",
        [*GOOD[:2], "1700000060,107,106,100,101,2"],
        2,
        "open 107.0 outside [low 100.0, high 106.0]",
    ),
    (
        "close_outside",
        [*GOOD[:2], "1700000060,105,106,100,99,2"],
        2,
        "close 99.0 outside [low 100.0, high 106.0]",
    ),
    ("unsorted", [GOOD[0], GOOD[1], GOOD[3], GOOD[2]], 3, "is before row 2 (rows must be sorted)"),
    (
        "duplicate",
        [GOOD[0], GOOD[1], GOOD[2], GOOD[2].replace("105,106", "105,107")],
        3,
        "duplicate timestamp",
    ),
    ("bad_timestamp", [*GOOD[:2], "yesterday,105,106,100,101,2"], 2, "invalid timestamp 'yesterday'"),
    ("short_row", [*GOOD[:2], "1700000060,105,106"], 2, "3 fields, the header has 6"),
    ("missing_value", [*GOOD[:2], "1700000060,105,,100,101,2"], 2, "missing value in column 'high'"),
    ("non_positive", [*GOOD[:2], "1700000060,0,0,0,0,2"], 2, "prices must be > 0"),
]


@pytest.mark.parametrize(("case", "lines", "row", "problem"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_csv_names_file_row_and_problem(
    tmp_path: Path, case: str, lines: list[str], row: int | None, problem: str
) -> None:
    path = _write_csv(tmp_path / f"{case}.csv", lines)
    with pytest.raises(DataError) as info:
        load_bars(path, symbol="BTC/USDC:USDC", timeframe="1m")
    message = str(info.value)
    assert message.startswith(str(path))
    if row is not None:
        assert f": row {row}: " in message
    assert problem in message


def test_broken_feather_names_row(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDC_USDC-1m-futures.feather"
    feather.write_feather(
        pa.table(
            {
                "date": pa.array([0, 60_000, 120_000], type=pa.timestamp("ms", tz="UTC")),
                "open": [1.0, 1.0, 1.0],
                "high": [2.0, 2.0, 0.5],
                "low": [0.5, 0.5, 0.9],
                "close": [1.0, 1.0, 1.0],
                "volume": [1.0, 1.0, 1.0],
            }
        ),
        path,
    )
    with pytest.raises(DataError, match=r"BTC_USDC_USDC-1m-futures\.feather: row 3: high 0\.5 < low 0\.9"):
        load_bars(path)


def test_null_in_parquet_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    parquet.write_table(
        pa.table(
            {
                "date": pa.array([0, 60_000], type=pa.timestamp("ms", tz="UTC")),
                "open": [1.0, None],
                "high": [2.0, 2.0],
                "low": [0.5, 0.5],
                "close": [1.0, 1.0],
                "volume": [1.0, 1.0],
            }
        ),
        path,
    )
    with pytest.raises(DataError, match=r"x\.parquet: row 2: missing value in column 'open'"):
        load_bars(path, symbol="X/USDC:USDC", timeframe="1m")


def test_not_a_feather_file(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "BTC_USDC_USDC-1m-futures.feather", GOOD)
    with pytest.raises(DataError, match="not a readable feather file"):
        load_bars(path)


def test_missing_file_and_unnamed_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_bars(tmp_path / "BTC_USDC_USDC-1m-futures.csv")
    with pytest.raises(DataError, match="symbol and timeframe not given"):
        load_bars(_write_csv(tmp_path / "prices.csv", GOOD))
