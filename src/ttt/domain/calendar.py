"""Trading calendars that gate reconciliation cycles (portfolio.md §15, P7).

Crypto perps trade around the clock, so `always_open` is the default; `reference_rest` reproduces the
reference's Vatican-time week with its holidays for operators who want the same rest periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CalendarName = Literal["always_open", "reference_rest"]


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    calendar: CalendarName = "always_open"
    timezone: str = "Europe/Vatican"
    fallback_timezone: str = "Europe/Rome"
    friday_close_hour: int = 23


def easter_sunday(year: int) -> date:
    """Anonymous Gregorian (Meeus/Jones/Butcher) computus, integer arithmetic only."""
    a = year % 19
    b = year // 100
    c = year % 100
    d = b // 4
    e = b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i = c // 4
    k = c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 (the algorithm's own name)
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = (h + l - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def good_friday(year: int) -> date:
    return easter_sunday(year) - timedelta(days=2)


def _load_zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def resolve_timezone(name: str, fallback: str) -> ZoneInfo:
    """The configured zone, else the fallback; both unknown is a configuration error."""
    zone = _load_zone(name) or _load_zone(fallback)
    if zone is None:
        raise ValueError(
            f"trading_hours.timezone {name!r} and trading_hours.fallback_timezone {fallback!r} "
            "are both unknown to the time-zone database"
        )
    return zone


def _as_utc(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"calendar needs an aware datetime, got naive {now.isoformat()}")
        return now
    return datetime.fromtimestamp(now, tz=UTC)


def reference_rest_open(local: datetime, friday_close_hour: int = 23) -> bool:
    """Open Monday 00:00 through Friday before the close hour, local time, outside the holidays."""
    day = local.date()
    if (day.month, day.day) in ((1, 1), (12, 25)):
        return False
    if day == good_friday(day.year):
        return False
    weekday = local.weekday()
    if weekday >= 5:
        return False
    return not (weekday == 4 and local.hour >= friday_close_hour)


def is_market_open(now: datetime | float, cfg: CalendarConfig = CalendarConfig()) -> bool:
    """The calendar gate C1 at the Clock instant `now` (an aware datetime or epoch seconds)."""
    instant = _as_utc(now)
    if cfg.calendar == "always_open":
        return True
    if cfg.calendar == "reference_rest":
        zone = resolve_timezone(cfg.timezone, cfg.fallback_timezone)
        return reference_rest_open(instant.astimezone(zone), cfg.friday_close_hour)
    raise ValueError(f"trading_hours.calendar {cfg.calendar!r} is not always_open or reference_rest")
