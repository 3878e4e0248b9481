"""Replay of real Hyperliquid 1m bars through both engines (providence.md §11–§13, §17.2).

Ticks every 5 s; the price follows the deterministic intra-bar path of services.md §6.4 (O→L→H→C when
C ≥ O, else O→H→L→C, linear over equal thirds); weight and volatility come from the reference functions over
the bars visible at the tick (open time + 60 s ≤ t), the weight frozen per clock minute (§11.5). Every run's
result at every tick, and every final state, must agree between `Population` and `reference.step`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.providence.test_population_parity import assert_same_state, compare_results
from tests.support import require_shared_data
from ttt.providence import reference as ref
from ttt.providence.population import Population


class BarReplay:
    """Tick inputs from finished 1m bars, as the replay source and dispatch (§18.2) would build them."""

    def __init__(self, path: Any) -> None:
        import pyarrow.feather as feather

        table = feather.read_table(path)
        self.open_t = table.column("date").to_numpy().astype("datetime64[s]").astype(np.int64).astype(float)
        self.o = table.column("open").to_numpy()
        self.h = table.column("high").to_numpy()
        self.l = table.column("low").to_numpy()
        self.c = table.column("close").to_numpy()
        self._vol: dict[tuple[int, int], float | None] = {}
        self._weight: dict[int, float] = {}

    def price(self, t: float) -> float | None:
        i = int(np.searchsorted(self.open_t, t, side="right")) - 1
        if i < 0 or self.open_t[i] + 60 <= t:
            return None  # no bar covers t: a gap emits no price
        o, h, lo, c = float(self.o[i]), float(self.h[i]), float(self.l[i]), float(self.c[i])
        waypoints = (o, lo, h, c) if c >= o else (o, h, lo, c)
        x = 3 * (t - float(self.open_t[i])) / 60
        seg = min(int(x), 2)
        return waypoints[seg] + (waypoints[seg + 1] - waypoints[seg]) * (x - seg)

    def visible(self, t: float, lookback_s: int) -> tuple[int, int]:
        """Index range of bars with open ≥ ⌊t⌋ - lookback and open + 60 ≤ t (no look-ahead, §13.2)."""
        lo = int(np.searchsorted(self.open_t, math.floor(t) - lookback_s, side="left"))
        hi = int(np.searchsorted(self.open_t, t - 60, side="right"))
        return lo, max(lo, hi)

    def volatility(self, t: float) -> float | None:
        key = self.visible(t, 86400)
        if key not in self._vol:
            lo, hi = key
            self._vol[key] = ref.volatility_from_bars(self.h[lo:hi].tolist(), self.l[lo:hi].tolist())
        return self._vol[key]

    def weight(self, t: float) -> float:
        """Computed at the minute's first tick with price and volatility, then frozen (§11.5)."""
        minute = math.floor(t / 60)
        if minute not in self._weight:
            lo, hi = self.visible(t, 1800)
            self._weight[minute] = ref.market_weight(self.c[lo:hi].tolist())
        return self._weight[minute]


def replay_params(seed: int, symbol: str, leverage: float, i: int) -> dict[str, Any]:
    """Default-range parameters; every tenth run gets a short max_duration or reversal time so exits occur."""
    p = ref.sample_params(seed, symbol, leverage)
    if i % 10 == 0:
        p["max_duration"] = 1800
    elif i % 10 == 1:
        p["max_direction_reversal"] = 120
    return p


def replay(
    file: str, leverage: float, seed: int, n_runs: int, n_ticks: int, start_bar: int
) -> dict[str, int]:
    bars = BarReplay(require_shared_data("hyperliquid", file))
    symbol = file.split("-")[0].replace("_", "/", 1).replace("_", ":", 1)
    rng = np.random.default_rng(seed)
    t0 = float(bars.open_t[start_bar])
    refs = {
        i: ref.new_state(replay_params(int(s), symbol, leverage, i), t0 - 1.0, 7000.0)
        for i, s in enumerate(rng.integers(0, 2**63, size=n_runs - n_runs // 4))
    }
    pop = Population.from_states(symbol, refs, {})
    tally = {"trades": 0, "completed": 0}
    for k in range(1, n_ticks + 1):
        t = t0 + 5.0 * k
        if k == n_ticks // 3:
            late = {
                n_runs + i: ref.new_state(replay_params(int(s), symbol, leverage, i), t - 1.0, 7000.0)
                for i, s in enumerate(rng.integers(0, 2**63, size=n_runs // 4))
            }
            pop.add_runs(late)
            refs.update(late)
        price = bars.price(t)
        vol = bars.volatility(t)
        w = bars.weight(t) if price is not None and vol is not None else 0.0
        got = pop.step(t, price, vol, w).as_step_results()
        assert set(got) == set(refs)
        for rid in list(refs):
            new, want = ref.step(refs[rid], t, price, vol, w)
            compare_results(rid, k, want, got[rid])
            tally["trades"] += want.trade != 0
            if want.status == "completed":
                assert_same_state(new, pop.remove_runs([rid])[rid], f"{file} run {rid} at tick {k}")
                tally["completed"] += 1
                del refs[rid]
            else:
                refs[rid] = new
    final = pop.to_states()
    assert set(final) == set(refs)
    for rid, st in final.items():
        assert_same_state(refs[rid], st, f"{file} run {rid} at the end")
    return tally


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "leverage", "start_bar"),
    [("BTC_USDC_USDC-1m-futures.feather", 40.0, 2000), ("HYPE_USDC_USDC-1m-futures.feather", 10.0, 3000)],
)
def test_population_replays_real_bars_like_the_reference(file: str, leverage: float, start_bar: int) -> None:
    tally = replay(file, leverage, seed=start_bar, n_runs=200, n_ticks=2000, start_bar=start_bar)
    assert tally["trades"] > 100, tally  # the replay must actually exercise the trading block
    assert tally["completed"] > 10, tally
