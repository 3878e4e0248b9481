"""`3t data import`: the shared real files into market_data on every backend, idempotent upserts, gaps,
naming, and one transaction per file (a malformed file leaves the table exactly as it was)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest
from sqlalchemy.engine import Engine

from tests.dataimport.di_support import FixedClock, market_count, market_rows, raw_market_rows
from tests.support import SHARED_DATA, require_shared_data
from ttt.adapters.db.uow import UnitOfWork
from ttt.errors import DataError
from ttt.services.market_import import import_file, import_path

T0 = 1_752_000_000_000  # 2025-07-08T18:40:00Z, a whole minute
MIN = 60_000
HEADER = "timestamp,open,high,low,close,volume"


def _rows(n: int, start: int = T0, step: int = MIN, base: float = 100.0) -> list[str]:
    return [
        f"{start + i * step},{base + i},{base + i + 2},{base + i - 1},{base + i + 1},{10 + i}"
        for i in range(n)
    ]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def seed_table(engine: Engine, tmp_path: Path) -> list[tuple[object, ...]]:
    """Good bars already present, so 'unchanged' means something."""
    good = write_csv(tmp_path / "BTC_USDC_USDC-1m-futures.csv", [HEADER, *_rows(5)])
    assert import_file(engine, good, FixedClock()).status == "imported"
    rows = market_rows(engine)
    assert len(rows) == 5
    return rows


# --- the shared real data ------------------------------------------------------------------------------


def _file_rows(path: Path) -> int:
    return int(feather.read_table(str(path)).num_rows)


def test_every_shared_file_imports_on_sqlite_and_reimport_is_idempotent(lite: Engine) -> None:
    root = require_shared_data()
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    assert folders, f"no data folders under {SHARED_DATA}"
    files = sorted(f for d in folders for f in d.iterdir() if f.suffix == ".feather")
    first = [import_path(lite, d, FixedClock()) for d in folders]
    outcomes = {o.path.name: o for r in first for o in r.outcomes}
    assert sorted(outcomes) == sorted(f.name for f in files)
    expected_total = 0
    for f in files:
        o = outcomes[f.name]
        if f.name.endswith("-futures.feather"):
            assert o.status == "imported", o.message
            assert o.rows == o.written == _file_rows(f)
            assert market_count(lite, o.symbol, o.timeframe) == _file_rows(f), f.name
            expected_total += _file_rows(f)
        elif "-funding_rate." in f.name:
            assert o.status == "funding" and o.rows == _file_rows(f)
        else:
            assert "-mark." in f.name and o.status == "ignored"
    before = raw_market_rows(lite)
    assert len(before) == expected_total

    again = [import_path(lite, d, FixedClock(1_800_000_000.0)) for d in folders]
    assert all(r.ok for r in again)
    # Everything but fetched_at (the time of the import) is unchanged.
    assert raw_market_rows(lite) == before


def test_a_real_file_imports_exactly_on_every_backend(engine: Engine) -> None:
    path = require_shared_data("hyperliquid", "BTC_USDC_USDC-1m-futures.feather")
    table = feather.read_table(str(path))
    report = import_path(engine, path, FixedClock())
    (o,) = report.outcomes
    assert (o.status, o.symbol, o.timeframe, o.rows) == ("imported", "BTC/USDC:USDC", "1m", table.num_rows)
    assert market_count(engine, "BTC/USDC:USDC", "1m") == table.num_rows
    dates = table.column("date").cast(pa.int64()).to_pylist()  # ns since the epoch
    opens_ms = [d // 1_000_000 for d in dates]
    for i in (0, 1, table.num_rows // 2, table.num_rows - 1):
        with UnitOfWork(engine, read_only=True) as uow:
            (bar,) = uow.bars.range("BTC/USDC:USDC", "1m", opens_ms[i], opens_ms[i])
        want = [D(repr(table.column(c)[i].as_py())) for c in ("open", "high", "low", "close", "volume")]
        assert [bar.open, bar.high, bar.low, bar.close, bar.volume] == want
        assert (bar.source, bar.is_final) == ("replay", True)
    before = market_rows(engine)
    assert import_path(engine, path, FixedClock()).ok
    assert market_rows(engine) == before


# --- upserts, gaps, names --------------------------------------------------------------------------------


def test_gaps_stay_gaps_and_duplicates_are_upserted(lite: Engine, tmp_path: Path) -> None:
    name = "ETH_USDC_USDC-1m-futures.csv"
    (tmp_path / "a").mkdir()
    gap = [f"{T0},10,12,9,11,1", f"{T0 + MIN},11,13,10,12,2", f"{T0 + 5 * MIN},12,14,11,13,3"]
    first = write_csv(tmp_path / "a" / name, [HEADER, *gap])  # three minutes missing
    assert import_file(lite, first, FixedClock()).written == 3
    with UnitOfWork(lite, read_only=True) as uow:
        opens = [b.ts_open for b in uow.bars.range("ETH/USDC:USDC", "1m", 0, 2**62)]
    assert opens == [T0, T0 + MIN, T0 + 5 * MIN]

    (tmp_path / "b").mkdir()
    second = write_csv(
        tmp_path / "b" / name, [HEADER, f"{T0 + MIN},11,13,10,12.5,7", f"{T0 + 6 * MIN},13,15,12,14,4"]
    )
    assert import_file(lite, second, FixedClock()).written == 2
    with UnitOfWork(lite, read_only=True) as uow:
        bars = uow.bars.range("ETH/USDC:USDC", "1m", 0, 2**62)
    assert [b.ts_open for b in bars] == [T0, T0 + MIN, T0 + 5 * MIN, T0 + 6 * MIN]
    assert (bars[1].close, bars[1].volume) == (D("12.5"), D(7))


def test_explicit_symbol_and_timeframe_for_a_file_without_a_freqtrade_name(
    lite: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "export.csv", [HEADER, *_rows(3, step=3_600_000)])
    refused = import_file(lite, path, FixedClock())
    assert refused.status == "failed" and "export.csv" in (refused.message or "")
    assert "does not follow" in (refused.message or "")
    ok = import_file(lite, path, FixedClock(), symbol="SOL/USDC:USDC", timeframe="1h")
    assert (ok.status, ok.written) == ("imported", 3)
    assert market_count(lite, "SOL/USDC:USDC", "1h") == 3


def test_flags_override_the_file_name(lite: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "BTC_USDC_USDC-1m-futures.csv", [HEADER, *_rows(2)])
    o = import_file(lite, path, FixedClock(), symbol="HYPE/USDC:USDC")
    assert (o.symbol, o.timeframe) == ("HYPE/USDC:USDC", "1m")
    assert market_count(lite, "HYPE/USDC:USDC", "1m") == 2 and market_count(lite, "BTC/USDC:USDC") == 0


def test_directory_flags_are_refused_and_empty_directories_named(lite: Engine, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="single file"):
        import_path(lite, tmp_path, FixedClock(), symbol="BTC/USDC:USDC")
    with pytest.raises(DataError, match="no bar files"):
        import_path(lite, tmp_path, FixedClock())
    with pytest.raises(DataError, match="no such file"):
        import_path(lite, tmp_path / "missing", FixedClock())


def test_directory_format_filter(lite: Engine, tmp_path: Path) -> None:
    write_csv(tmp_path / "BTC_USDC_USDC-1m-futures.csv", [HEADER, *_rows(2)])
    (tmp_path / "notes.txt").write_text("not data")
    feather.write_feather(
        pa.table(
            {
                "date": pa.array([T0], pa.timestamp("ms", tz="UTC")),
                **{c: [1.0] for c in ["open", "high", "low", "close", "volume"]},
            }
        ),
        str(tmp_path / "ETH_USDC_USDC-1m-futures.feather"),
    )
    report = import_path(lite, tmp_path, FixedClock(), fmt="csv")
    assert [o.path.name for o in report.outcomes] == ["BTC_USDC_USDC-1m-futures.csv"]
    report = import_path(lite, tmp_path, FixedClock())
    assert [o.path.name for o in report.outcomes] == [
        "BTC_USDC_USDC-1m-futures.csv",
        "ETH_USDC_USDC-1m-futures.feather",
    ]
    assert report.ok and report.bars_written == 3


def test_a_bad_file_in_a_directory_fails_alone(lite: Engine, tmp_path: Path) -> None:
    write_csv(tmp_path / "AAA_USDC_USDC-1m-futures.csv", [HEADER, *_rows(3)])
    write_csv(tmp_path / "BBB_USDC_USDC-1m-futures.csv", [HEADER, *_rows(3), f"{T0 + 3 * MIN},1,2,3,1,1"])
    write_csv(tmp_path / "CCC_USDC_USDC-1m-futures.csv", [HEADER, *_rows(4)])
    report = import_path(lite, tmp_path, FixedClock())
    assert [(o.path.name[:3], o.status) for o in report.outcomes] == [
        ("AAA", "imported"),
        ("BBB", "failed"),
        ("CCC", "imported"),
    ]
    (bad,) = report.failed
    assert "BBB_USDC_USDC-1m-futures.csv: row 4: high 2.0 < low 3.0" in (bad.message or "")
    assert market_count(lite, "AAA/USDC:USDC") == 3
    assert market_count(lite, "BBB/USDC:USDC") == 0
    assert market_count(lite, "CCC/USDC:USDC") == 4


# --- malformed files: the error names file, row and problem; the table is unchanged --------------------

BROKEN_CSV: dict[str, tuple[list[str], str]] = {
    "missing_column": (
        ["timestamp,open,high,low,close", f"{T0},1,2,1,1"],
        "header: missing column(s) volume",
    ),
    "non_numeric": (
        [HEADER, *_rows(2), f"{T0 + 2 * MIN},1,2,1,abc,1"],
        "row 3: non-numeric value 'abc' in column 'close'",
    ),
    "missing_value": ([HEADER, *_rows(1), f"{T0 + MIN},,2,1,1,1"], "row 2: missing value in column 'open'"),
    "bad_timestamp": ([HEADER, *_rows(3), "yesterday,1,2,1,1,1"], "row 4: invalid timestamp 'yesterday'"),
    "duplicate_timestamp": ([HEADER, *_rows(2), f"{T0 + MIN},1,2,1,1,1"], "row 3: duplicate timestamp"),
    "unsorted": ([HEADER, *_rows(2), f"{T0 - MIN},1,2,1,1,1"], "row 3: timestamp"),
    "high_below_low": ([HEADER, *_rows(1), f"{T0 + MIN},1,1,2,1,1"], "row 2: high 1.0 < low 2.0"),
    "close_outside": ([HEADER, f"{T0},10,12,9,13,1"], "row 1: close 13.0 outside [low 9.0, high 12.0]"),
    "negative_volume": ([HEADER, *_rows(2), f"{T0 + 2 * MIN},1,2,1,1,-5"], "row 3: negative volume -5.0"),
    "zero_price": ([HEADER, f"{T0},0,2,0,1,1"], "row 1: prices must be > 0"),
    "not_finite": (
        [HEADER, *_rows(1), f"{T0 + MIN},1,inf,1,1,1"],
        "row 2: non-finite value inf in column 'high'",
    ),
    "field_count": ([HEADER, *_rows(1), f"{T0 + MIN},1,2,1"], "row 2: 4 fields, the header has 6"),
    "no_rows": ([HEADER], "no data rows"),
    "too_large_for_decimal": (
        [HEADER, *_rows(2), f"{T0 + 2 * MIN},1e25,1e25,1e25,1e25,1"],
        "row 3: open 1e+25 does not fit",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CSV))
def test_broken_csv_is_refused_with_file_row_and_problem(case: str, lite: Engine, tmp_path: Path) -> None:
    before = seed_table(lite, tmp_path)
    lines, problem = BROKEN_CSV[case]
    (tmp_path / "in").mkdir()
    path = write_csv(tmp_path / "in" / "BTC_USDC_USDC-1m-futures.csv", lines)
    outcome = import_file(lite, path, FixedClock(1_800_000_000.0))
    assert outcome.status == "failed" and outcome.written == 0
    assert outcome.message is not None and outcome.message.startswith(f"{path}: ")
    assert problem in outcome.message
    assert market_rows(lite) == before


def _feather_table(n: int) -> dict[str, object]:
    return {
        "date": pa.array([T0 + i * MIN for i in range(n)], pa.timestamp("ms", tz="UTC")),
        "open": [100.0] * n,
        "high": [101.0] * n,
        "low": [99.0] * n,
        "close": [100.5] * n,
        "volume": [1.0] * n,
    }


def test_broken_feather_files(lite: Engine, tmp_path: Path) -> None:
    before = seed_table(lite, tmp_path)
    out = tmp_path / "in"
    out.mkdir()
    corrupt = out / "BTC_USDC_USDC-1m-futures.feather"
    corrupt.write_bytes(b"ARROW1\x00\x00 definitely not arrow")
    o = import_file(lite, corrupt, FixedClock())
    assert o.status == "failed" and f"{corrupt}: not a readable feather file" in (o.message or "")

    cols = _feather_table(4)
    cols["high"] = pa.array([101.0, None, 101.0, 101.0], pa.float64())
    feather.write_feather(pa.table(cols), str(corrupt))
    o = import_file(lite, corrupt, FixedClock())
    assert f"{corrupt}: row 2: missing value in column 'high'" in (o.message or "")

    cols = _feather_table(3)
    cols["date"] = pa.array([T0, T0 + MIN, T0 + MIN], pa.timestamp("ms", tz="UTC"))
    feather.write_feather(pa.table(cols), str(corrupt))
    o = import_file(lite, corrupt, FixedClock())
    assert f"{corrupt}: row 3: duplicate timestamp" in (o.message or "")
    assert market_rows(lite) == before


def test_a_failure_late_in_a_file_rolls_back_the_chunks_already_written(
    engine: Engine, tmp_path: Path
) -> None:
    """Chunks of 10 rows: rows 1–40 are written inside the transaction before row 47 is refused."""
    before = seed_table(engine, tmp_path)
    lines = [HEADER, *_rows(46, start=T0 + 100 * MIN), f"{T0 + 146 * MIN},1e21,1e21,1e21,1e21,1"]
    (tmp_path / "late").mkdir()
    path = write_csv(tmp_path / "late" / "BTC_USDC_USDC-1m-futures.csv", lines)
    outcome = import_file(engine, path, FixedClock(), chunk_rows=10)
    assert outcome.status == "failed"
    assert f"{path}: row 47: open 1e+21 does not fit" in (outcome.message or "")
    assert market_rows(engine) == before


def test_funding_and_mark_files_are_not_bars(lite: Engine, tmp_path: Path) -> None:
    funding = write_csv(tmp_path / "BTC_USDC_USDC-1h-funding_rate.csv", [HEADER, f"{T0},0.0000125,0,0,0,0"])
    o = import_file(lite, funding, FixedClock())
    assert (o.status, o.rows) == ("funding", 1) and "replay" in (o.message or "")
    broken = write_csv(tmp_path / "ETH_USDC_USDC-1h-funding_rate.csv", [HEADER, f"{T0},x,0,0,0,0"])
    o = import_file(lite, broken, FixedClock())
    assert o.status == "failed" and "row 1: non-numeric value 'x'" in (o.message or "")
    mark = write_csv(tmp_path / "BTC_USDC_USDC-8h-mark.csv", [HEADER, *_rows(2)])
    assert import_file(lite, mark, FixedClock()).status == "ignored"
    assert market_count(lite) == 0
