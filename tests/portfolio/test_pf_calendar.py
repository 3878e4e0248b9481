"""Trading calendars: portfolio.md §21.13 (pins CAL-*) and the Easter vectors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from dateutil.easter import EASTER_WESTERN, easter  # type: ignore[import-untyped]

from ttt.domain.calendar import (
    CalendarConfig,
    easter_sunday,
    good_friday,
    is_market_open,
    resolve_timezone,
)

REST = CalendarConfig(calendar="reference_rest")


def test_CAL_01_always_open() -> None:
    for instant in ("2026-04-03T10:00:00+00:00", "2026-04-11T10:00:00+00:00", "2026-12-25T09:00:00+00:00"):
        assert is_market_open(datetime.fromisoformat(instant), CalendarConfig())
    assert is_market_open(0.0)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-04-02T10:00:00Z", True),
        ("2026-04-03T10:00:00Z", False),
        ("2026-04-10T20:59:59Z", True),
        ("2026-04-10T21:00:00Z", False),
        ("2026-03-27T21:59:59Z", True),
        ("2026-03-27T22:00:00Z", False),
        ("2026-04-11T10:00:00Z", False),
        ("2026-04-12T21:59:59Z", False),
        ("2026-04-12T22:00:00Z", True),
        ("2026-01-01T10:00:00Z", False),
        ("2026-12-25T09:00:00Z", False),
        ("2026-12-24T22:30:00Z", True),
    ],
    ids=[f"CAL_{i:02d}" for i in range(2, 14)],
)
def test_CAL_02_to_13_reference_rest(instant: str, expected: bool) -> None:
    moment = datetime.fromisoformat(instant)
    assert is_market_open(moment, REST) is expected
    assert is_market_open(moment.timestamp(), REST) is expected


EASTER_VECTORS = [
    (1818, "03-22", "03-20"),
    (1943, "04-25", "04-23"),
    (2000, "04-23", "04-21"),
    (2008, "03-23", "03-21"),
    (2011, "04-24", "04-22"),
    (2019, "04-21", "04-19"),
    (2024, "03-31", "03-29"),
    (2025, "04-20", "04-18"),
    (2026, "04-05", "04-03"),
    (2027, "03-28", "03-26"),
    (2028, "04-16", "04-14"),
    (2038, "04-25", "04-23"),
    (2285, "03-22", "03-20"),
]


@pytest.mark.parametrize(
    ("year", "sunday", "friday"), EASTER_VECTORS, ids=[str(v[0]) for v in EASTER_VECTORS]
)
def test_easter_vectors(year: int, sunday: str, friday: str) -> None:
    assert easter_sunday(year) == date.fromisoformat(f"{year}-{sunday}")
    assert good_friday(year) == date.fromisoformat(f"{year}-{friday}")


def test_easter_agrees_with_dateutil_for_every_year_1583_to_4099() -> None:
    mismatches = [y for y in range(1583, 4100) if easter_sunday(y) != easter(y, EASTER_WESTERN)]
    assert mismatches == []


def test_timezone_fallback_and_error() -> None:
    assert resolve_timezone("Not/AZone", "Europe/Rome").key == "Europe/Rome"
    with pytest.raises(ValueError, match=r"trading_hours\.timezone"):
        resolve_timezone("Not/AZone", "Also/Not")


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_market_open(datetime(2026, 1, 2, 10, 0), REST)


def test_friday_close_hour_is_configurable() -> None:
    friday_2130_local = datetime(2026, 4, 10, 19, 30, tzinfo=UTC)  # 21:30 CEST
    assert is_market_open(friday_2130_local, REST)
    early = CalendarConfig(calendar="reference_rest", friday_close_hour=21)
    assert not is_market_open(friday_2130_local, early)
