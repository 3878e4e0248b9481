"""Replay source: hand-checked intra-bar path, no look-ahead, gaps, warm-up, funding, reproducibility."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tests.support import require_shared_data
from ttt.adapters.market.files import BarSeries, FundingSeries, discover
from ttt.adapters.market.replay import ReplaySource, path_value
from ttt.errors import DataError

T0 = 1_700_000_040  # a minute boundary (1_700_000_040 = 28_333_334 · 60)
SYM = "BTC/USDC:USDC"


def series(rows: Sequence[tuple[int, float, float, float, float]], symbol: str = SYM) -> BarSeries:
    """Rows of (minute offset from T0, O, H, L, C)."""
    arr = np.array(rows, dtype=np.float64)
    return BarSeries(
        symbol,
        "1m",
        ((T0 + arr[:, 0].astype(np.int64) * 60) * 1000).astype(np.int64),
        arr[:, 1].copy(),
        arr[:, 2].copy(),
        arr[:, 3].copy(),
        arr[:, 4].copy(),
        np.full(len(rows), 6.0),
    )


def test_up_bar_waypoints_by_hand() -> None:
    # C ≥ O: O → L → H → C over thirds: 0 s 100, 20 s 95, 40 s 110, 60 s 105.
    src = ReplaySource(
        {SYM: series([(0, 100, 110, 95, 105), (1, 105, 105, 105, 105)])}, tick_s=5, warmup_bars=0
    )
    expected = {0: 100.0, 10: 97.5, 20: 95.0, 30: 102.5, 40: 110.0, 50: 107.5, 55: 106.25}
    for offset, price in expected.items():
        src.advance_to(T0 + offset)
        assert src.price(SYM) == pytest.approx(price, abs=1e-12)
    assert path_value(100, 110, 95, 105, 1.0) == 105.0


def test_down_bar_waypoints_by_hand() -> None:
    # C < O: O → H → L → C: 0 s 100, 20 s 104, 40 s 90, 60 s 92.
    src = ReplaySource({SYM: series([(0, 100, 104, 90, 92), (1, 92, 92, 92, 92)])}, tick_s=5, warmup_bars=0)
    expected = {0: 100.0, 10: 102.0, 20: 104.0, 30: 97.0, 40: 90.0, 50: 91.0}
    for offset, price in expected.items():
        src.advance_to(T0 + offset)
        assert src.price(SYM) == pytest.approx(price, abs=1e-12)
    src.advance_to(T0 + 60)
    assert src.price(SYM) == 92.0  # the next bar's open


def test_forming_bar_uses_path_extremes_so_far() -> None:
    src = ReplaySource({SYM: series([(0, 100, 110, 95, 105), (1, 105, 106, 104, 105)])}, warmup_bars=0)
    src.advance_to(T0 + 30)
    bar = src.forming_bar(SYM)
    assert bar is not None and not bar.is_final
    assert (bar.ts_open, bar.open, bar.high, bar.low, bar.close) == (T0 * 1000, 100.0, 102.5, 95.0, 102.5)
    assert bar.volume == pytest.approx(3.0)  # half of 6 by the half-way point
    src.advance_to(T0 + 45)
    bar = src.forming_bar(SYM)
    assert bar is not None and (bar.high, bar.low) == (110.0, 95.0)
    assert len(src.visible_bars(SYM)) == 0  # still forming: not visible as a completed bar
    src.advance_to(T0 + 60)
    assert len(src.visible_bars(SYM)) == 1


def test_no_bar_is_visible_before_it_closes() -> None:
    rows = [(i, 100 + i, 101 + i, 99 + i, 100.5 + i) for i in range(30)]
    src = ReplaySource({SYM: series(rows)}, tick_s=5, warmup_bars=0)
    seen = 0
    for t, _ in src.run():
        visible = src.visible_bars(SYM)
        assert np.all(visible.ts_ms + 60_000 <= t * 1000)
        nxt = len(visible)
        if nxt < 30:
            assert (T0 + rows[nxt][0] * 60 + 60) * 1000 > t * 1000  # the next bar is not complete yet
        seen = max(seen, len(visible))
    assert seen == 30


def test_gap_emits_no_prices() -> None:
    rows = [(0, 100, 101, 99, 100), (1, 100, 101, 99, 100), (4, 200, 201, 199, 200)]
    src = ReplaySource({SYM: series(rows)}, tick_s=5, warmup_bars=0)
    published = {round(t - T0): [e.price for e in events] for t, events in src.run()}
    assert all(published[s] == [] for s in range(120, 240, 5))
    assert all(len(published[s]) == 1 for s in range(0, 120, 5))
    assert published[240] == [200.0]
    assert src.end_s == T0 + 300


def test_same_inputs_give_identical_prices() -> None:
    data = discover(require_shared_data("hyperliquid"))

    def prices() -> list[tuple[float, str, float]]:
        src = ReplaySource(data.bars, data.funding, tick_s=5, warmup_bars=10)
        out: list[tuple[float, str, float]] = []
        for k, (t, events) in enumerate(src.run()):
            out.extend((t, e.symbol, e.price) for e in events)
            if k > 3000:
                break
        return out

    first, second = prices(), prices()
    assert first == second and len(first) > 8000


def test_defaults_start_at_first_common_bar_and_warm_up() -> None:
    a = series([(i, 100, 101, 99, 100) for i in range(0, 20)], "A/USDC:USDC")
    b = series([(i, 10, 11, 9, 10) for i in range(5, 25)], "B/USDC:USDC")
    src = ReplaySource({"A/USDC:USDC": a, "B/USDC:USDC": b}, warmup_bars=3)
    assert src.start_s == T0 + 5 * 60  # B's first bar
    assert src.end_s == T0 + 20 * 60  # end of A's last bar
    warm = src.warmup("A/USDC:USDC")
    np.testing.assert_array_equal(warm.ts_ms, [(T0 + m * 60) * 1000 for m in (2, 3, 4)])
    assert len(src.warmup("B/USDC:USDC")) == 0
    late = ReplaySource({"A/USDC:USDC": a}, start_s=T0 + 600, warmup_bars=4)
    assert len(late.warmup("A/USDC:USDC")) == 4
    assert late.visible_bars("A/USDC:USDC").ts_ms[0] == (T0 + 6 * 60) * 1000


def test_start_after_end_is_an_error() -> None:
    a = series([(0, 100, 101, 99, 100)], "A/USDC:USDC")
    b = series([(5, 100, 101, 99, 100)], "B/USDC:USDC")
    with pytest.raises(DataError, match="share no common period"):
        ReplaySource({"A/USDC:USDC": a, "B/USDC:USDC": b})


def test_funding_from_file_else_default() -> None:
    hour = 3_600_000
    base = (T0 // 3600) * 3600 * 1000
    funding = FundingSeries(SYM, hour, np.array([base + 48, base + hour + 7]), np.array([0.0001, -0.0002]))
    bars = series([(i, 100, 101, 99, 100) for i in range(0, 180)])
    src = ReplaySource({SYM: bars}, {SYM: funding}, default_funding_hourly=0.0000125, warmup_bars=0)
    assert src.funding_hourly(SYM) == 0.0001
    src.advance_to(base / 1000 + 3600 + 1)
    assert src.funding_hourly(SYM) == -0.0002
    other = ReplaySource({SYM: bars}, default_funding_hourly=0.0000125)
    assert other.funding_hourly(SYM) == 0.0000125
