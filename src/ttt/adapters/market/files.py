"""Bar and funding files (freqtrade feather, CSV, Parquet) into validated columnar series.

A file either loads completely or raises `DataError` naming the file, the 1-based data row and the problem:
a half-loaded history would silently bias volatility and replay (services.md §6.4).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ttt.domain.orders import Bar
from ttt.errors import DataError

FileFormat = Literal["auto", "feather", "csv", "parquet"]
FileKind = Literal["futures", "funding_rate", "mark"]

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
TIME_COLUMNS = ("date", "timestamp")
EPOCH_MS_THRESHOLD = 1e11

_EXTENSIONS: dict[str, FileFormat] = {
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_NAME_RE = re.compile(
    r"^(?P<base>[^_]+)_(?P<quote>[^_]+)(?:_(?P<settle>[^_]+))?"
    r"-(?P<tf>\d+[smhdwM])-(?P<kind>futures|funding_rate|mark)$"
)
_TF_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def timeframe_ms(timeframe: str) -> int:
    """`1m` → 60 000. Months are not fixed-length, so they are refused."""
    match = re.fullmatch(r"(\d+)([smhdw])", timeframe)
    if not match or int(match.group(1)) <= 0:
        raise DataError(f"timeframe {timeframe!r}: expected a positive count and one of s, m, h, d, w")
    return int(match.group(1)) * _TF_UNITS_MS[match.group(2)]


@dataclass(frozen=True)
class FileName:
    symbol: str
    timeframe: str
    kind: FileKind


def parse_file_name(path: str | Path) -> FileName | None:
    """freqtrade naming: `BTC_USDC_USDC-1m-futures.feather` → (`BTC/USDC:USDC`, `1m`, futures)."""
    stem = Path(path).name
    for ext in sorted(_EXTENSIONS, key=len, reverse=True):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    match = _NAME_RE.match(stem)
    if not match:
        return None
    symbol = f"{match['base']}/{match['quote']}"
    if match["settle"]:
        symbol += f":{match['settle']}"
    kind: FileKind = match["kind"]  # type: ignore[assignment]
    return FileName(symbol=symbol, timeframe=match["tf"], kind=kind)


@dataclass(frozen=True, eq=False)
class BarSeries:
    """Columnar OHLCV, ascending unique `ts_ms` (bar open, epoch ms)."""

    symbol: str
    timeframe: str
    ts_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    source: str = ""

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @property
    def tf_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    def bar(self, i: int, *, is_final: bool = True) -> Bar:
        return Bar(
            symbol=self.symbol,
            timeframe=self.timeframe,
            ts_open=int(self.ts_ms[i]),
            open=float(self.open[i]),
            high=float(self.high[i]),
            low=float(self.low[i]),
            close=float(self.close[i]),
            volume=float(self.volume[i]),
            is_final=is_final,
        )

    def slice(self, start: int, stop: int) -> BarSeries:
        return BarSeries(
            self.symbol,
            self.timeframe,
            self.ts_ms[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            self.source,
        )

    def bars(self) -> Iterator[Bar]:
        for i in range(len(self)):
            yield self.bar(i)


@dataclass(frozen=True, eq=False)
class FundingSeries:
    """Funding rates per settlement (`rate` per `interval_ms`), ascending `ts_ms`."""

    symbol: str
    interval_ms: int
    ts_ms: IntArray
    rate: FloatArray
    source: str = ""
    hours: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", self.interval_ms / 3_600_000)

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def hourly_rate_at(self, t_ms: int) -> float | None:
        """Rate per hour in force at `t_ms`: the last settlement at or before the hour containing
        `t_ms`, divided by the interval in hours (8-hourly files are spread over their 8 hours). None
        before the first row."""
        hour_ms = (t_ms // 3_600_000) * 3_600_000
        floors = (self.ts_ms // 3_600_000) * 3_600_000
        i = int(np.searchsorted(floors, hour_ms, side="right")) - 1
        if i < 0:
            return None
        return float(self.rate[i]) / self.hours


# --- reading -----------------------------------------------------------------------------------------


def _format_of(path: Path, fmt: FileFormat) -> FileFormat:
    if fmt != "auto":
        return fmt
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise DataError(f"{path}: cannot tell the format from the extension {path.suffix!r}")
    return found


def _read_table(path: Path, fmt: FileFormat) -> pa.Table:
    try:
        if fmt == "feather":
            import pyarrow.feather as feather

            return feather.read_table(str(path))
        import pyarrow.parquet as parquet

        return parquet.read_table(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable {fmt} file ({exc})") from None


def _header_problem(path: Path, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Map required logical columns to the file's names (case-insensitive, trimmed)."""
    lowered: dict[str, str] = {}
    for name in names:
        key = str(name).strip().lower()
        if key in lowered:
            raise DataError(f"{path}: header: column {key!r} appears twice")
        lowered[key] = str(name)
    time_col = next((lowered[c] for c in TIME_COLUMNS if c in lowered), None)
    missing = [c for c in VALUE_COLUMNS if c not in lowered]
    if time_col is None:
        missing.insert(0, "date (or timestamp)")
    if missing:
        raise DataError(
            f"{path}: header: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, names)) or 'none'}"
        )
    assert time_col is not None
    return time_col, {c: lowered[c] for c in VALUE_COLUMNS}


def _parse_time_text(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _epoch_to_ms(number)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _epoch_to_ms(value: float) -> int | None:
    if not math.isfinite(value):
        return None
    return round(value if abs(value) > EPOCH_MS_THRESHOLD else value * 1000)


def _arrow_times(path: Path, column: pa.ChunkedArray, name: str) -> IntArray:
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    typ = col.type
    if col.null_count:
        row = next(i for i, v in enumerate(col.is_null().to_pylist()) if v) + 1
        raise DataError(f"{path}: row {row}: missing timestamp in column {name!r}")
    if pa.types.is_timestamp(typ) or pa.types.is_date64(typ):
        unit = typ.unit if pa.types.is_timestamp(typ) else "ms"
        raw: IntArray = np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit]
        return raw * 1000 if per_ms is None else raw // per_ms
    if pa.types.is_date32(typ):
        days: IntArray = np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        return days * 86_400_000
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        out = np.empty(values.shape[0], dtype=np.int64)
        for i, v in enumerate(values.tolist()):
            ms = _epoch_to_ms(v)
            if ms is None:
                raise DataError(f"{path}: row {i + 1}: invalid timestamp {v!r} in column {name!r}")
            out[i] = ms
        return out
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _text_times(path, [str(v) for v in col.to_pylist()], name)
    raise DataError(f"{path}: header: column {name!r} has type {typ}, expected a timestamp")


def _text_times(path: Path, values: Sequence[str], name: str) -> IntArray:
    out = np.empty(len(values), dtype=np.int64)
    for i, text in enumerate(values):
        ms = _parse_time_text(text)
        if ms is None:
            raise DataError(f"{path}: row {i + 1}: invalid timestamp {text!r} in column {name!r}")
        out[i] = ms
    return out


def _arrow_numbers(path: Path, column: pa.ChunkedArray, name: str) -> FloatArray:
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if col.null_count:
        row = next(i for i, v in enumerate(col.is_null().to_pylist()) if v) + 1
        raise DataError(f"{path}: row {row}: missing value in column {name!r}")
    typ = col.type
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _text_numbers(path, [str(v) for v in col.to_pylist()], name)
    raise DataError(f"{path}: header: column {name!r} has type {typ}, expected numbers")


def _text_numbers(path: Path, values: Sequence[str], name: str) -> FloatArray:
    out = np.empty(len(values), dtype=np.float64)
    for i, text in enumerate(values):
        try:
            out[i] = float(text.strip())
        except ValueError:
            problem = "missing value" if not text.strip() else f"non-numeric value {text.strip()!r}"
            raise DataError(f"{path}: row {i + 1}: {problem} in column {name!r}") from None
    return out


def _read_csv(path: Path) -> tuple[IntArray, dict[str, FloatArray]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    with handle:
        try:
            rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: header: the file is empty")
    header = rows[0]
    time_col, value_cols = _header_problem(path, header)
    index = {name: header.index(name) for name in [time_col, *value_cols.values()]}
    width = len(header)
    body = rows[1:]
    while body and not any(cell.strip() for cell in body[-1]):
        body.pop()
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"{path}: row {i + 1}: {len(row)} fields, the header has {width}")
    ts = _text_times(path, [row[index[time_col]] for row in body], time_col)
    values = {
        logical: _text_numbers(path, [row[index[actual]] for row in body], actual)
        for logical, actual in value_cols.items()
    }
    return ts, values


def _read_columns(path: Path, fmt: FileFormat) -> tuple[IntArray, dict[str, FloatArray]]:
    fmt = _format_of(path, fmt)
    if fmt == "csv":
        return _read_csv(path)
    table = _read_table(path, fmt)
    time_col, value_cols = _header_problem(path, table.column_names)
    ts = _arrow_times(path, table.column(time_col), time_col)
    values = {name: _arrow_numbers(path, table.column(actual), actual) for name, actual in value_cols.items()}
    return ts, values


# --- validation ----------------------------------------------------------------------------------------


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _fmt(value: Any) -> str:
    return repr(float(value))


def _check_order(path: Path, ts: IntArray) -> None:
    if ts.shape[0] < 2:
        return
    step = np.diff(ts)
    bad = _first(step <= 0)
    if bad is None:
        return
    row = bad + 2
    when = datetime.fromtimestamp(int(ts[bad + 1]) / 1000, UTC).isoformat()
    if step[bad] == 0:
        raise DataError(f"{path}: row {row}: duplicate timestamp {when} (same as row {row - 1})")
    raise DataError(f"{path}: row {row}: timestamp {when} is before row {row - 1} (rows must be sorted)")


def _check_finite(path: Path, values: dict[str, FloatArray], columns: Sequence[str]) -> None:
    problems: list[tuple[int, str]] = []
    for name in columns:
        bad = _first(~np.isfinite(values[name]))
        if bad is not None:
            problems.append((bad, f"non-finite value {_fmt(values[name][bad])} in column {name!r}"))
    if problems:
        row, text = min(problems)
        raise DataError(f"{path}: row {row + 1}: {text}")


def _check_bars(path: Path, values: dict[str, FloatArray]) -> None:
    o, h, lo, c, v = (values[k] for k in VALUE_COLUMNS)
    checks: list[tuple[npt.NDArray[np.bool_], Any]] = [
        (np.minimum.reduce([o, h, lo, c]) <= 0, lambda i: "prices must be > 0"),
        (v < 0, lambda i: f"negative volume {_fmt(v[i])}"),
        (h < lo, lambda i: f"high {_fmt(h[i])} < low {_fmt(lo[i])}"),
        ((o < lo) | (o > h), lambda i: f"open {_fmt(o[i])} outside [low {_fmt(lo[i])}, high {_fmt(h[i])}]"),
        ((c < lo) | (c > h), lambda i: f"close {_fmt(c[i])} outside [low {_fmt(lo[i])}, high {_fmt(h[i])}]"),
    ]
    problems = [(i, describe) for mask, describe in checks if (i := _first(mask)) is not None]
    if problems:
        row = min(i for i, _ in problems)
        describe = next(d for i, d in problems if i == row)
        raise DataError(f"{path}: row {row + 1}: {describe(row)}")


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    fmt: FileFormat = "auto",
    source: str = "replay",
) -> BarSeries:
    """Bars (or mark-price candles) from one file. Symbol and timeframe come from the freqtrade file name
    unless given."""
    path = Path(path)
    symbol, timeframe = _identity(path, symbol, timeframe)
    timeframe_ms(timeframe)
    ts, values = _read_columns(path, fmt)
    if ts.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    _check_finite(path, values, VALUE_COLUMNS)
    _check_bars(path, values)
    _check_order(path, ts)
    return BarSeries(
        symbol,
        timeframe,
        np.ascontiguousarray(ts, dtype=np.int64),
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
        source=source,
    )


def load_funding(
    path: str | Path, *, symbol: str | None = None, interval: str | None = None, fmt: FileFormat = "auto"
) -> FundingSeries:
    """Funding rates from a freqtrade `…-<tf>-funding_rate` file: the rate is in `open` (freqtrade's
    convention); the other price columns are zero and therefore not checked as OHLC."""
    path = Path(path)
    symbol, interval = _identity(path, symbol, interval)
    ts, values = _read_columns(path, fmt)
    if ts.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    _check_finite(path, values, ("open",))
    _check_order(path, ts)
    rate = np.ascontiguousarray(values["open"])
    return FundingSeries(symbol, timeframe_ms(interval), np.ascontiguousarray(ts), rate)


def load_file(path: str | Path, *, fmt: FileFormat = "auto") -> BarSeries | FundingSeries:
    """Any freqtrade-named file: bars and mark candles as `BarSeries`, funding as `FundingSeries`."""
    name = parse_file_name(path)
    if name is None:
        raise DataError(f"{path}: the name does not follow <BASE>_<QUOTE>_<SETTLE>-<tf>-<kind>.<ext>")
    if name.kind == "funding_rate":
        return load_funding(path, fmt=fmt)
    return load_bars(path, fmt=fmt, source="mark" if name.kind == "mark" else "replay")


def _identity(path: Path, symbol: str | None, timeframe: str | None) -> tuple[str, str]:
    if symbol is not None and timeframe is not None:
        return symbol, timeframe
    name = parse_file_name(path)
    if name is None:
        raise DataError(
            f"{path}: symbol and timeframe not given and the name does not follow "
            "<BASE>_<QUOTE>_<SETTLE>-<tf>-<kind>.<ext>"
        )
    return symbol or name.symbol, timeframe or name.timeframe


@dataclass(frozen=True)
class DataSet:
    """What a replay directory holds: bars of one timeframe and funding, each by symbol."""

    bars: dict[str, BarSeries]
    funding: dict[str, FundingSeries]


def discover(
    path: str | Path, *, timeframe: str = "1m", fmt: FileFormat = "auto", symbols: Sequence[str] | None = None
) -> DataSet:
    """Load `<…>-<timeframe>-futures` bars and `<…>-funding_rate` files from a directory (or one file).
    Mark files are ignored (services.md §6.4). Two funding files for one symbol prefer the hourly one."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: replay path does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.is_file())
    bars: dict[str, BarSeries] = {}
    funding: dict[str, FundingSeries] = {}
    for file in files:
        if fmt != "auto" and _EXTENSIONS.get(file.suffix.lower()) != fmt:
            continue
        if file.suffix.lower() not in _EXTENSIONS:
            continue
        name = parse_file_name(file)
        if name is None or (symbols is not None and name.symbol not in symbols):
            continue
        if name.kind == "futures" and name.timeframe == timeframe:
            if name.symbol in bars:
                raise DataError(f"{file}: a second {timeframe} bar file for {name.symbol}")
            bars[name.symbol] = load_bars(file, fmt=fmt)
        elif name.kind == "funding_rate":
            series = load_funding(file, fmt=fmt)
            current = funding.get(name.symbol)
            if current is None or series.interval_ms < current.interval_ms:
                funding[name.symbol] = series
    if not bars:
        raise DataError(f"{root}: no <BASE>_<QUOTE>_<SETTLE>-{timeframe}-futures.<ext> file")
    if symbols is not None:
        missing = [s for s in symbols if s not in bars]
        if missing:
            raise DataError(f"{root}: no {timeframe} bar file for {', '.join(missing)}")
    return DataSet(bars, funding)
