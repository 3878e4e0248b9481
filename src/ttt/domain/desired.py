"""Desired position per symbol (portfolio.md §3).

The steps are separate functions so the service can feed them from SQL aggregates, while
`runs_population` and `aggregate_runs` give the same answers over plain run records. Any failure to
determine an input is `Unknown` (held), never zero (P1); only a successful population read can be
`Flat`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from ttt.domain.kelly import kelly_size
from ttt.domain.results import Flat, Result, Unknown, Value
from ttt.domain.run_records import RunRecord

EPSILON = 1e-8


@dataclass(frozen=True, slots=True)
class DesiredConfig:
    live_pnl_threshold: float = 0.2
    run_freshness_s: float = 600.0
    providence_max_silence_s: float = 600.0
    risk_pos_percentage: float = 0.000003
    kelly_threshold: float = 0.5
    kelly_probationary_multiplier: float = 0.25
    invert_decisions: bool = False
    can_go_long: bool = True
    can_go_short: bool = True


@dataclass(frozen=True, slots=True)
class Population:
    """Liveness inputs: count of active runs and the newest update_time among them."""

    n_active: int
    newest_update: float | None


@dataclass(frozen=True, slots=True)
class Aggregate:
    n: int
    sum_dir: int
    sum_pnl: float

    @property
    def qualifies(self) -> bool:
        return self.n >= 1 and self.sum_pnl > 0 and abs(self.sum_dir) >= 1


@dataclass(frozen=True, slots=True)
class KellyInputs:
    k_current: float | None
    k_historical: float | None


@dataclass(frozen=True, slots=True)
class Bar:
    timeframe: str
    open_time: float
    close: float


@dataclass(frozen=True, slots=True)
class LivePrice:
    price: float
    timestamp: float


@dataclass(slots=True)
class Breakdown:
    """Everything the audit record needs to recompute D by hand (§3.4, §17)."""

    n: int | None = None
    sum_dir: int | None = None
    sum_pnl: float | None = None
    balance: float | None = None
    rho: float | None = None
    s_base: float | None = None
    k_current: float | None = None
    k_historical: float | None = None
    kelly_rule: str | None = None
    performance: float | None = None
    size_usd: float | None = None
    price: float | None = None
    desired: float | None = None
    transforms: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DesiredOutcome:
    result: Result[float]
    breakdown: Breakdown


PopulationInput: TypeAlias = Population | Unknown
AggregateInput: TypeAlias = Aggregate | Unknown
KellyInput: TypeAlias = KellyInputs | Unknown
PriceInput: TypeAlias = Value[float] | Unknown


def runs_population(runs: Iterable[RunRecord], symbol: str) -> Population:
    active = [r for r in runs if r.symbol == symbol and r.active]
    newest = max((r.update_time for r in active), default=None)
    return Population(n_active=len(active), newest_update=newest)


def liveness(population: Population, now: float, max_silence_s: float) -> Unknown | None:
    """P1: active runs that stopped updating mean Providence is stalled, not that nothing qualifies."""
    if population.n_active >= 1 and population.newest_update is not None:
        silence = now - population.newest_update
        if silence > max_silence_s:
            return Unknown("providence_silent", f"newest active run updated {silence:.0f} s ago")
    return None


def select_runs(
    runs: Iterable[RunRecord], symbol: str, now: float, live_pnl_threshold: float, run_freshness_s: float
) -> list[RunRecord]:
    """The §3.2 filters, all of them, in one place."""
    oldest = now - run_freshness_s
    return [
        r
        for r in runs
        if not r.exit_run
        and r.height is None
        and r.end_time is None
        and r.live_pnl is not None
        and r.live_pnl > live_pnl_threshold
        and r.position_direction != 0
        and r.symbol == symbol
        and r.update_time >= oldest
    ]


def aggregate_runs(selected: Iterable[RunRecord]) -> Aggregate:
    n = 0
    sum_dir = 0
    sum_pnl = 0.0
    for r in selected:
        n += 1
        sum_dir += r.position_direction
        sum_pnl += r.live_pnl if r.live_pnl is not None else 0.0
    return Aggregate(n=n, sum_dir=sum_dir, sum_pnl=sum_pnl)


def effective_sign(sum_dir: int, invert: bool) -> int:
    sign = (sum_dir > 0) - (sum_dir < 0)
    return -sign if invert else sign


def direction_permission(sum_dir: int, cfg: DesiredConfig) -> Flat | None:
    """§3.3, decided before sizing: the Kelly size is never negative, so sign(D) is known now."""
    sign = effective_sign(sum_dir, cfg.invert_decisions)
    if sign > 0 and not cfg.can_go_long:
        return Flat("direction_forbidden")
    if sign < 0 and not cfg.can_go_short:
        return Flat("direction_forbidden")
    return None


def newest_bar(bars: Iterable[Bar], timeframe: str = "1m") -> Bar | None:
    """The newest bar of one timeframe; bars of other timeframes never stand in for it (L3)."""
    candidates = [b for b in bars if b.timeframe == timeframe]
    return max(candidates, key=lambda b: b.open_time, default=None)


def _usable_price(x: float) -> bool:
    return x == x and x not in (float("inf"), float("-inf")) and x > 0


def select_price(
    bar_1m: Bar | None,
    live: LivePrice | None,
    now: float,
    price_max_age_s: float = 180.0,
    live_max_age_s: float = 60.0,
) -> PriceInput:
    """P(s) of §3.4 step 4: a fresh 1m close, else a fresh live price, else Unknown."""
    if bar_1m is not None and bar_1m.open_time >= now - price_max_age_s and _usable_price(bar_1m.close):
        return Value(bar_1m.close)
    if live is not None and now - live.timestamp <= live_max_age_s and _usable_price(live.price):
        return Value(live.price)
    return Unknown("price_unavailable", "no 1m close and no live price within their age limits")


def desired_position(
    population: PopulationInput,
    aggregate: AggregateInput,
    balance: float,
    kelly: KellyInput,
    price: PriceInput,
    now: float,
    cfg: DesiredConfig,
) -> DesiredOutcome:
    """§3 in its normative order; `balance` is the cycle balance, already known to be > 0 (C5)."""
    bd = Breakdown()
    if isinstance(population, Unknown):
        return DesiredOutcome(population, bd)
    silent = liveness(population, now, cfg.providence_max_silence_s)
    if silent is not None:
        return DesiredOutcome(silent, bd)
    if isinstance(aggregate, Unknown):
        return DesiredOutcome(aggregate, bd)
    bd.n, bd.sum_dir, bd.sum_pnl = aggregate.n, aggregate.sum_dir, aggregate.sum_pnl
    if not aggregate.qualifies:
        return DesiredOutcome(Flat("no_qualifying_runs"), bd)
    if cfg.invert_decisions:
        bd.transforms.append("invert_decisions")
    forbidden = direction_permission(aggregate.sum_dir, cfg)
    if forbidden is not None:
        return DesiredOutcome(forbidden, bd)
    if not (balance > 0):
        raise ValueError(f"balance must be > 0 for sizing, got {balance!r}; the cycle holds at C5")
    s_base = balance * cfg.risk_pos_percentage
    bd.balance, bd.rho, bd.s_base = balance, cfg.risk_pos_percentage, s_base
    if isinstance(kelly, Unknown):
        return DesiredOutcome(kelly, bd)
    sizing = kelly_size(
        s_base, kelly.k_current, kelly.k_historical, cfg.kelly_threshold, cfg.kelly_probationary_multiplier
    )
    bd.k_current, bd.k_historical = kelly.k_current, kelly.k_historical
    bd.kelly_rule, bd.performance, bd.size_usd = sizing.rule, sizing.performance, sizing.size
    if isinstance(price, Unknown):
        return DesiredOutcome(price, bd)
    p = price.value
    bd.price = p
    d = aggregate.sum_dir * sizing.size / p
    if cfg.invert_decisions:
        d = -d
    bd.desired = d
    if abs(d) <= EPSILON:
        return DesiredOutcome(Flat("zero_size"), bd)
    return DesiredOutcome(Value(d), bd)
