"""`3t data import PATH`: bar files into `market_data` (services.md §4.2, §6.4, §12).

Each bar file is validated completely (`ttt.adapters.market.files`) and then written in ONE transaction:
a malformed file writes nothing, and a later bad file in a directory does not undo the earlier good ones.
Bars are upserted on (symbol, timeframe, ts_open), so importing the same file twice changes nothing, and
missing bars stay missing: a gap is never filled with invented prices.

Funding files are validated but not copied into the database: the paper engine reads funding through the
replay source from the files themselves (`market_data.replay.path`, services.md §6.6), which keeps one
source of truth for replays and backtests. Mark-price candles are ignored, as in replay (§6.4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ttt.adapters.db.engine import redacted
from ttt.adapters.db.repositories.bars import StoredBar
from ttt.adapters.db.types import DEC_PRECISION, DEC_SCALE
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.market.files import (
    VALUE_COLUMNS,
    BarSeries,
    FileFormat,
    load_bars,
    load_funding,
    parse_file_name,
)
from ttt.errors import DataError
from ttt.ports import Clock

IMPORT_SOURCE = "replay"
DEFAULT_CHUNK_ROWS = 2000
_QUANTUM = Decimal(1).scaleb(-DEC_SCALE)
_KNOWN_EXTENSIONS = (".feather", ".arrow", ".ipc", ".csv", ".parquet", ".pq")
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "feather": (".feather", ".arrow", ".ipc"),
    "csv": (".csv",),
    "parquet": (".parquet", ".pq"),
}

Status = Literal["imported", "failed", "funding", "ignored"]


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file. `rows` is the number of data rows read, `written` the bars upserted."""

    path: Path
    status: Status
    symbol: str | None = None
    timeframe: str | None = None
    rows: int = 0
    written: int = 0
    first_open_ms: int | None = None
    last_open_ms: int | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "status": self.status,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "rows": self.rows,
            "written": self.written,
            "first_open": _iso(self.first_open_ms),
            "last_open": _iso(self.last_open_ms),
            "message": self.message,
        }


@dataclass(frozen=True)
class ImportReport:
    outcomes: tuple[FileOutcome, ...]

    @property
    def imported(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "imported"]

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def bars_written(self) -> int:
        return sum(o.written for o in self.outcomes)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _exact(path: Path, row: int, column: str, value: float) -> Decimal:
    """The float as the decimal of its shortest text, at most 18 decimals (DECIMAL(38,18)).

    Digits beyond 1e-18 are float noise for any market price or volume, so they are rounded away; a
    value that does not fit the column at all is an error naming the row, like any other bad value.
    """
    d = Decimal(repr(value))
    if d.as_tuple().exponent < -DEC_SCALE:  # type: ignore[operator]
        d = d.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
        if d == 0 and column != "volume":
            raise DataError(f"{path}: row {row}: {column} {value!r} rounds to 0 at 18 decimals")
    if d and d.adjusted() >= DEC_PRECISION - DEC_SCALE:
        raise DataError(f"{path}: row {row}: {column} {value!r} does not fit the database's DECIMAL(38,18)")
    return d


def _stored_chunks(
    path: Path, series: BarSeries, fetched_at: datetime, chunk_rows: int
) -> Iterator[list[StoredBar]]:
    """Converted lazily, chunk by chunk: a value refused late in the file aborts a transaction that has
    already written earlier chunks, which the rollback must then undo."""
    columns = [getattr(series, name).tolist() for name in VALUE_COLUMNS]
    opens = series.ts_ms.tolist()
    for start in range(0, len(opens), chunk_rows):
        chunk: list[StoredBar] = []
        for i in range(start, min(start + chunk_rows, len(opens))):
            o, h, lo, c, v = (
                _exact(path, i + 1, name, col[i]) for name, col in zip(VALUE_COLUMNS, columns, strict=True)
            )
            chunk.append(
                StoredBar(
                    series.symbol,
                    series.timeframe,
                    int(opens[i]),
                    o,
                    h,
                    lo,
                    c,
                    v,
                    IMPORT_SOURCE,
                    True,
                    fetched_at,
                )
            )
        yield chunk


def _check_identity(path: Path, symbol: str, timeframe: str) -> None:
    if not symbol.strip() or len(symbol) > 64:
        raise DataError(f"{path}: symbol {symbol!r} must be 1–64 characters (market_data.symbol)")
    if len(timeframe) > 8:
        raise DataError(f"{path}: timeframe {timeframe!r} is longer than 8 characters")


def import_file(
    engine: Engine,
    path: str | Path,
    clock: Clock,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    fmt: FileFormat = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FileOutcome:
    """Import one file; never raises for a bad file or a database error, the outcome says what failed."""
    path = Path(path)
    name = parse_file_name(path)
    if symbol is None and timeframe is None and name is not None and name.kind != "futures":
        return _non_bar_file(path, name.kind, fmt)
    try:
        series = load_bars(path, symbol=symbol, timeframe=timeframe, fmt=fmt, source=IMPORT_SOURCE)
        _check_identity(path, series.symbol, series.timeframe)
        fetched_at = datetime.fromtimestamp(clock.now(), UTC)
        written = 0
        with UnitOfWork(engine) as uow:
            for chunk in _stored_chunks(path, series, fetched_at, chunk_rows):
                written += uow.bars.upsert_bars(chunk)
    except DataError as exc:
        return FileOutcome(path, "failed", symbol=symbol, timeframe=timeframe, message=str(exc))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        message = (
            f"{path}: database error ({redacted(engine.url)}): {reason}; nothing of this file was written"
        )
        return FileOutcome(path, "failed", symbol=symbol, timeframe=timeframe, message=message)
    return FileOutcome(
        path,
        "imported",
        symbol=series.symbol,
        timeframe=series.timeframe,
        rows=len(series),
        written=written,
        first_open_ms=int(series.ts_ms[0]),
        last_open_ms=int(series.ts_ms[-1]),
    )


def _non_bar_file(path: Path, kind: str, fmt: FileFormat) -> FileOutcome:
    name = parse_file_name(path)
    assert name is not None
    if kind == "mark":
        return FileOutcome(
            path,
            "ignored",
            symbol=name.symbol,
            timeframe=name.timeframe,
            message="mark-price candles are not trade bars; ignored as in replay (services.md §6.4)",
        )
    try:
        series = load_funding(path, fmt=fmt)
    except DataError as exc:
        return FileOutcome(path, "failed", symbol=name.symbol, timeframe=name.timeframe, message=str(exc))
    return FileOutcome(
        path,
        "funding",
        symbol=name.symbol,
        timeframe=name.timeframe,
        rows=len(series),
        first_open_ms=int(series.ts_ms[0]),
        last_open_ms=int(series.ts_ms[-1]),
        message="funding rates validated; the paper engine reads them from this file through the replay "
        "source (market_data.replay.path), not from the database",
    )


def _directory_files(root: Path, fmt: FileFormat) -> list[Path]:
    wanted = _KNOWN_EXTENSIONS if fmt == "auto" else _FORMAT_EXTENSIONS[fmt]
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in wanted)


def import_path(
    engine: Engine,
    path: str | Path,
    clock: Clock,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    fmt: FileFormat = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ImportReport:
    """One file, or every bar/funding/mark file of a directory (not recursive), each on its own.

    `symbol` and `timeframe` override the file name and therefore only make sense for a single file.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be ≥ 1, got {chunk_rows}")
    if root.is_dir():
        if symbol is not None or timeframe is not None:
            raise DataError(
                f"{root}: --symbol and --timeframe apply to a single file; a directory takes both from "
                "each file's name"
            )
        files: Sequence[Path] = _directory_files(root, fmt)
        if not files:
            raise DataError(f"{root}: no bar files (.feather, .csv, .parquet) in this directory")
    else:
        files = [root]
    outcomes = tuple(
        import_file(engine, f, clock, symbol=symbol, timeframe=timeframe, fmt=fmt, chunk_rows=chunk_rows)
        for f in files
    )
    return ImportReport(outcomes)


__all__ = [
    "IMPORT_SOURCE",
    "FileOutcome",
    "ImportReport",
    "import_file",
    "import_path",
]
