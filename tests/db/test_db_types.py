"""Portable column types (services.md §4.1) through the real backends and as pure conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from ttt.adapters.db.types import (
    ExactDecimal,
    JsonText,
    JsonType,
    UtcDateTime,
    as_utc,
    canonical_decimal_text,
    format_sqlite_ts,
)

TINY = Decimal("0.000000000000000001")
HUGE = Decimal("12345678901234567890.123456789012345678")
NEG_HUGE = Decimal("-12345678901234567890.123456789012345678")  # not -HUGE: unary minus rounds to 28 digits


def test_canonical_decimal_text_is_exact_beyond_the_default_context() -> None:
    assert canonical_decimal_text(HUGE) == "12345678901234567890.123456789012345678"
    assert canonical_decimal_text(NEG_HUGE) == "-12345678901234567890.123456789012345678"
    assert canonical_decimal_text(TINY) == "0.000000000000000001"
    assert canonical_decimal_text(Decimal("1E+3")) == "1000"
    assert canonical_decimal_text(Decimal("1.500")) == "1.5"
    assert canonical_decimal_text(Decimal("-0.000")) == "0"
    assert canonical_decimal_text(0.1) == "0.1"


@pytest.mark.parametrize(
    "bad",
    [Decimal("0.0000000000000000001"), Decimal("123456789012345678901"), Decimal("NaN"), Decimal("Infinity")],
)
def test_decimals_that_do_not_fit_are_refused_not_rounded(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        canonical_decimal_text(bad)


def test_bool_is_not_a_decimal() -> None:
    with pytest.raises(TypeError):
        canonical_decimal_text(True)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        as_utc(datetime(2026, 1, 1))


def test_sqlite_timestamp_text_is_fixed_width_so_text_order_is_time_order() -> None:
    a = datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC)
    b = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert format_sqlite_ts(a) == "2026-01-01T00:00:00.000000+00:00"
    assert format_sqlite_ts(a) < format_sqlite_ts(b)


_meta = sa.MetaData()
_probe = sa.Table(
    "type_probe",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", UtcDateTime(), nullable=True),
    sa.Column("dec", ExactDecimal(), nullable=True),
    sa.Column("js", JsonType(), nullable=True),
    sa.Column("jt", JsonText(), nullable=True),
    mysql_charset="utf8mb4",
)


def _roundtrip(engine: Engine, **values: object) -> sa.Row[tuple[object, ...]]:
    _meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(_probe))
        conn.execute(sa.insert(_probe).values(id=1, **values))
    with engine.connect() as conn:
        return conn.execute(sa.select(_probe).where(_probe.c.id == 1)).one()


def test_timestamps_are_aware_utc_with_microseconds(engine: Engine) -> None:
    local = datetime(2026, 3, 4, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    row = _roundtrip(engine, ts=local)
    assert row.ts == local
    assert row.ts.tzinfo is UTC or row.ts.utcoffset() == timedelta(0)
    assert row.ts.hour == 5 and row.ts.microsecond == 123456


@pytest.mark.parametrize("value", [TINY, HUGE, NEG_HUGE, Decimal("0"), Decimal("100")])
def test_decimals_round_trip_exactly(engine: Engine, value: Decimal) -> None:
    row = _roundtrip(engine, dec=value)
    assert isinstance(row.dec, Decimal)
    assert row.dec == value
    assert str(row.dec) == str(Decimal(canonical_decimal_text(value)))


def test_too_precise_decimal_is_an_error_on_every_backend(engine: Engine) -> None:
    with pytest.raises(StatementError, match="fractional digits"):
        _roundtrip(engine, dec=Decimal("0.0000000000000000001"))


def test_json_nested_round_trip(engine: Engine) -> None:
    doc = {"a": [1, 2.5, {"b": None, "c": "ü → ∞"}], "d": {"e": True, "f": []}, "g": -3}
    row = _roundtrip(engine, js=doc, jt='{"x": [1, 2, {"y": 0.30000000000000004}]}')
    assert row.js == doc
    import json

    assert json.loads(row.jt) == {"x": [1, 2, {"y": 0.30000000000000004}]}


def test_nan_is_refused_as_json_on_every_backend(engine: Engine) -> None:
    with pytest.raises(StatementError, match="JSON"):
        _roundtrip(engine, js={"x": float("nan")})
    with pytest.raises(StatementError, match="JSON"):
        _roundtrip(engine, jt='{"x": NaN}')
