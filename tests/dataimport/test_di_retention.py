"""`ttt.market_data.retention` (services.md §4.3): exactly the bars opened before the cutoff go."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy.engine import Engine

from tests.dataimport.di_support import FixedClock
from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.db.repositories.bars import StoredBar
from ttt.adapters.db.uow import UnitOfWork
from ttt.services.locking import LockBusy
from ttt.services.market_retention import (
    RETENTION_LOCK,
    market_data_retention,
    prune_market_data,
    retention_days_for,
)

NOW_S = 1_767_225_600.5  # 2026-01-01T00:00:00.5Z
NOW_MS = 1_767_225_600_500
DAY_MS = 86_400_000
SETTINGS = {"1m": 7, "5m": 0, "default": 400}


def _bar(symbol: str, tf: str, ts_open: int) -> StoredBar:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return StoredBar(symbol, tf, ts_open, D(1), D(2), D("0.5"), D("1.5"), D(3), "replay", True, at)


def _opens(engine: Engine) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    with UnitOfWork(engine, read_only=True) as uow:
        for sym in ("BTC/USDC:USDC", "ETH/USDC:USDC"):
            for tf in ("1m", "5m", "1h", "4h"):
                got = [b.ts_open for b in uow.bars.range(sym, tf, -(2**62), 2**62)]
                if got:
                    out[(sym, tf)] = got
    return out


def test_retention_deletes_exactly_the_bars_before_each_cutoff(engine: Engine) -> None:
    cut_1m = NOW_MS - 7 * DAY_MS  # hand: 1 766 620 800 500
    cut_default = NOW_MS - 400 * DAY_MS
    assert cut_1m == 1_766_620_800_500
    around_1m = [cut_1m - 60_000, cut_1m - 1, cut_1m, cut_1m + 1, NOW_MS]
    around_default = [cut_default - 1, cut_default, cut_default + 14_400_000]
    ancient = [0, 60_000, cut_1m - 365 * DAY_MS]
    bars = [
        *(_bar("BTC/USDC:USDC", "1m", t) for t in around_1m),
        *(_bar("ETH/USDC:USDC", "1m", t) for t in around_1m),
        *(_bar("BTC/USDC:USDC", "4h", t) for t in around_default),
        *(_bar("BTC/USDC:USDC", "1h", t) for t in around_default),
        *(_bar("BTC/USDC:USDC", "5m", t) for t in ancient),  # 0 days: kept forever
    ]
    with UnitOfWork(engine) as uow:
        uow.bars.upsert_bars(bars)

    result = prune_market_data(engine, SETTINGS, FixedClock(NOW_S))
    assert result.cutoffs == {"1m": cut_1m, "1h": cut_default, "4h": cut_default}
    assert result.deleted == {"1m": 4, "1h": 1, "4h": 1}
    kept_1m = [cut_1m, cut_1m + 1, NOW_MS]
    assert _opens(engine) == {
        ("BTC/USDC:USDC", "1m"): kept_1m,
        ("ETH/USDC:USDC", "1m"): kept_1m,
        ("BTC/USDC:USDC", "4h"): around_default[1:],
        ("BTC/USDC:USDC", "1h"): around_default[1:],
        ("BTC/USDC:USDC", "5m"): ancient,
    }
    again = prune_market_data(engine, SETTINGS, FixedClock(NOW_S))
    assert again.total == 0


def test_the_task_takes_its_lock_and_skips_when_it_is_held(lite: Engine) -> None:
    with UnitOfWork(lite) as uow:
        uow.bars.upsert_bars([_bar("BTC/USDC:USDC", "1m", 0)])
    locks = MemoryLockManager()
    token = locks.acquire(RETENTION_LOCK, 60)
    assert token is not None
    with pytest.raises(LockBusy):
        market_data_retention(lite, locks, FixedClock(NOW_S), SETTINGS)
    assert _opens(lite) == {("BTC/USDC:USDC", "1m"): [0]}
    assert locks.release(RETENTION_LOCK, token)
    assert market_data_retention(lite, locks, FixedClock(NOW_S), SETTINGS).deleted == {"1m": 1}
    assert locks.acquire(RETENTION_LOCK, 60) is not None  # released after the run


def test_retention_days_lookup() -> None:
    assert retention_days_for(SETTINGS, "1m") == 7
    assert retention_days_for(SETTINGS, "4h") == 400
    assert retention_days_for({"1m": 7}, "1d") == 400  # the spec default when even `default` is absent
    with pytest.raises(ValueError, match=r"market_data\.retention_days\.1m"):
        retention_days_for({"1m": -1}, "1m")
