"""Portable column types (services.md §4.1): one Python value, the right storage on each backend.

| logical | Python                  | SQLite                        | MariaDB        | PostgreSQL     |
|---------|-------------------------|-------------------------------|----------------|----------------|
| ts      | aware UTC `datetime`    | ISO-8601 text, `+00:00`       | DATETIME(6)    | TIMESTAMPTZ    |
| dec     | `Decimal`               | text                          | DECIMAL(38,18) | NUMERIC(38,18) |
| dbl     | `float`                 | REAL                          | DOUBLE         | DOUBLE PREC.   |
| json    | JSON value              | text                          | JSON           | JSONB          |

JSON always travels as text on the wire (cast to JSONB on the way in and to text on the way out on
PostgreSQL), so every backend parses it the same way and `JsonText` columns can skip the parse entirely.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import TypeEngine, UserDefinedType

DEC_PRECISION = 38
DEC_SCALE = 18
_MAX_INT_DIGITS = DEC_PRECISION - DEC_SCALE


# --- ts ----------------------------------------------------------------------------------------------


def utc_from_epoch(seconds: float) -> datetime:
    """A Clock reading (epoch seconds) as the aware UTC datetime every `ts` column takes."""
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp must be finite, got {seconds!r}")
    return datetime.fromtimestamp(seconds, UTC)


def as_utc(value: datetime | float | int) -> datetime:
    """Accept a Clock reading or an aware datetime; a naive datetime is refused rather than guessed."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given for a UTC timestamp column")
        return value.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a datetime or epoch seconds, got {type(value).__name__}")
    return utc_from_epoch(float(value))


def format_sqlite_ts(value: datetime) -> str:
    """Fixed width with microseconds, so text order is time order on SQLite."""
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}+00:00"
    )


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """`ts`: written by the application from the Clock, never by a server default."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True, precision=6))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"timestamp column needs a datetime, got {type(value).__name__}: {value!r}")
        v = as_utc(value)
        if dialect.name == "sqlite":
            return format_sqlite_ts(v)
        if dialect.name in ("mysql", "mariadb"):
            return v.replace(tzinfo=None)
        return v

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        raise TypeError(f"unexpected timestamp value from the database: {value!r}")


# --- dec ---------------------------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal:
    """Exact decimal from Decimal, int, numeric text or float (via its shortest repr); bools refused."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a decimal amount")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    else:
        raise TypeError(f"decimal column needs a Decimal, got {type(value).__name__}: {value!r}")
    if not d.is_finite():
        raise ValueError(f"decimal value must be finite, got {value!r}")
    return d


def canonical_decimal_text(value: Any) -> str:
    """Fixed-point text without exponent or trailing zeros; refuses what DECIMAL(38,18) cannot hold.

    Done on strings, never through Decimal arithmetic: the default context has 28 digits, which would
    silently round a 38-digit amount.
    """
    d = to_decimal(value)
    text = format(d, "f")
    negative = text.startswith("-")
    int_part, _, frac = text.lstrip("-").partition(".")
    frac = frac.rstrip("0")
    int_part = int_part.lstrip("0")
    if len(frac) > DEC_SCALE:
        raise ValueError(f"decimal {text} has more than {DEC_SCALE} fractional digits")
    if len(int_part) > _MAX_INT_DIGITS:
        raise ValueError(f"decimal {text} has more than {_MAX_INT_DIGITS} integer digits")
    body = (int_part or "0") + (f".{frac}" if frac else "")
    if negative and body != "0":
        body = "-" + body
    return body


class ExactDecimal(sa.types.TypeDecorator[Decimal]):
    """`dec`: exact on every backend; never compared or summed inside SQL (text on SQLite)."""

    impl = sa.Numeric(DEC_PRECISION, DEC_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(DEC_PRECISION, DEC_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        text = canonical_decimal_text(value)
        if dialect.name == "postgresql":
            return Decimal(text)
        # Text for MariaDB too: a Decimal rendered as `1E-18` would be read there as a DOUBLE literal.
        return text

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(canonical_decimal_text(value if isinstance(value, Decimal | str) else str(value)))


# --- dbl ---------------------------------------------------------------------------------------------


def Double() -> TypeEngine[float]:
    """`dbl`: IEEE double on every backend (REAL on SQLite)."""
    return sa.Double().with_variant(sa.REAL(), "sqlite")


def BigId() -> TypeEngine[int]:
    """64-bit id; INTEGER on SQLite so that it is the rowid and autoincrements."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# --- json --------------------------------------------------------------------------------------------


class _DDLOnly(UserDefinedType[Any]):
    """A column type name with no value processing, so our own text serialisation reaches the driver."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


class _json_in(FunctionElement[Any]):
    """Bound JSON text; cast to JSONB on PostgreSQL, taken as is elsewhere."""

    name = "json_in"
    inherit_cache = True


class _json_out(FunctionElement[Any]):
    """A JSON column read as text; PostgreSQL would otherwise hand back parsed objects."""

    name = "json_out"
    inherit_cache = True

    def __init__(self, column: Any, type_: TypeEngine[Any]) -> None:
        super().__init__(column)
        self.type = type_  # results still go through the column's own type


@compiles(_json_in)
def _json_in_default(element: _json_in, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(_json_in, "postgresql")
def _json_in_pg(element: _json_in, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS JSONB)"


@compiles(_json_out)
def _json_out_default(element: _json_out, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(_json_out, "postgresql")
def _json_out_pg(element: _json_out, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS TEXT)"


def dump_json(value: Any) -> str:
    """Compact JSON; NaN and infinities are refused (JSONB and MariaDB's JSON check would reject them
    anyway, and SQLite must not accept what the others refuse)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:
        raise ValueError(f"value cannot be stored as JSON ({exc}): NaN/Infinity are not JSON") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_strict_json(text: str) -> None:
    """Raise ValueError unless `text` is strict JSON (no NaN/Infinity), as JSONB would require."""
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ValueError(f"value cannot be stored as JSON: {exc}") from None


class _JsonBase(sa.types.TypeDecorator[Any]):
    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return _DDLOnly("JSONB")
        if dialect.name in ("mysql", "mariadb"):
            return _DDLOnly("JSON")
        return dialect.type_descriptor(sa.Text())

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return _json_in(bindvalue)

    def column_expression(self, column: Any) -> ColumnElement[Any]:
        return _json_out(column, self)


class JsonType(_JsonBase):
    """`json` holding any JSON value (Python None is SQL NULL)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value) if isinstance(value, str | bytes) else value


class JsonText(_JsonBase):
    """`json` whose Python side is the JSON text itself (the run-state hot path serialises once)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"JSON text column needs a str of JSON, got {type(value).__name__}")
        if "NaN" in value or "Infinity" in value:
            check_strict_json(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.decode()
        return value if isinstance(value, str) else dump_json(value)
