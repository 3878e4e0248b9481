"""Take-profit and drawdown-reset rules over balance readings (portfolio.md §14.3–§14.5, P8).

The evaluation is a pure step over a persisted state and a batch of balance rows. It stops right after
an epoch so the service can commit the epoch together with the state that caused it (one transaction
per epoch) and then continue with the remaining rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from ttt.domain.cycle_ids import drawdown_cycle_ids, take_profit_cycle_ids
from ttt.domain.quorum import median
from ttt.domain.run_records import RunRecord

EpochKind = Literal["take_profit", "drawdown_reset"]


@dataclass(frozen=True, slots=True)
class TakeProfitConfig:
    enabled: bool = True
    threshold: float = 1.0
    reward_multiple: float = 5.0
    median_window: int = 5
    max_reading_age_s: float = 300.0
    cooldown_s: float = 720.0
    forced_cycle_delays_s: tuple[float, ...] = (0.0, 120.0, 360.0)
    forced_cycle_max_lateness_s: float = 600.0

    def __post_init__(self) -> None:
        problems = []
        if not self.threshold > 0:
            problems.append(f"take_profit.threshold must be > 0, got {self.threshold}")
        if not self.reward_multiple > 0:
            problems.append(f"take_profit.reward_multiple must be > 0, got {self.reward_multiple}")
        if self.median_window < 1 or self.median_window % 2 == 0:
            problems.append(f"take_profit.median_window must be odd and >= 1, got {self.median_window}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Reading:
    snapshot_id: int
    fetched_at: float
    value: float


@dataclass(frozen=True, slots=True)
class BalanceRow:
    id: int
    fetched_at: float
    account_value: float
    usable: bool = True


@dataclass(frozen=True, slots=True)
class TakeProfitState:
    baseline: float | None = None
    baseline_set_at: float | None = None
    init_samples: tuple[Reading, ...] = ()
    window: tuple[Reading, ...] = ()
    cursor: int = 0
    cooldown_until: float | None = None


@dataclass(frozen=True, slots=True)
class BaselineSet:
    value: float
    at: float
    samples: tuple[Reading, ...]


@dataclass(frozen=True, slots=True)
class EpochTrigger:
    kind: EpochKind
    value: float
    gain: float
    baseline_before: float
    window: tuple[Reading, ...]
    snapshot_id: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: TakeProfitState
    baselines: tuple[BaselineSet, ...] = ()
    epoch: EpochTrigger | None = None
    remaining: tuple[BalanceRow, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)


def gain(value: float, baseline: float) -> float:
    """g = (V − β)/β."""
    return (value - baseline) / baseline


def classify(g: float, cfg: TakeProfitConfig) -> EpochKind | None:
    """≥ τ for take-profit; strictly below −τ/r for a drawdown reset (the reference's comparisons)."""
    if g >= cfg.threshold:
        return "take_profit"
    if g < -cfg.threshold / cfg.reward_multiple:
        return "drawdown_reset"
    return None


def evaluate(
    state: TakeProfitState,
    rows: Sequence[BalanceRow],
    now: float,
    cfg: TakeProfitConfig,
    newest_snapshot_id: int | None = None,
) -> Evaluation:
    """§14.3 steps 1–2 over rows with id > cursor, in id order; stops after the first epoch."""
    if not cfg.enabled:
        ids = [state.cursor, *(r.id for r in rows)]
        if newest_snapshot_id is not None:
            ids.append(newest_snapshot_id)
        newest = max(ids)
        return Evaluation(replace(state, cursor=newest))
    skipped: dict[str, int] = {}
    baselines: list[BaselineSet] = []
    st = state
    last_id = state.cursor
    for index, row in enumerate(rows):
        if row.id <= last_id:
            raise ValueError(f"balance rows must have increasing ids above cursor {last_id}, got {row.id}")
        last_id = row.id
        st = replace(st, cursor=row.id)
        if not row.usable:
            skipped["unusable"] = skipped.get("unusable", 0) + 1
            continue
        if now - row.fetched_at > cfg.max_reading_age_s:
            skipped["stale"] = skipped.get("stale", 0) + 1
            continue
        if not row.account_value > 0:
            skipped["invalid"] = skipped.get("invalid", 0) + 1
            continue
        reading = Reading(row.id, row.fetched_at, row.account_value)
        window = tuple(
            r
            for r in (*st.window, reading)[-cfg.median_window :]
            if reading.fetched_at - r.fetched_at <= cfg.max_reading_age_s
        )
        st = replace(st, window=window)
        if st.baseline is None:
            samples = tuple(
                r
                for r in (*st.init_samples, reading)
                if reading.fetched_at - r.fetched_at <= cfg.max_reading_age_s
            )
            if len(samples) >= cfg.median_window:
                beta = median([r.value for r in samples])
                baselines.append(BaselineSet(beta, now, samples))
                st = replace(st, baseline=beta, baseline_set_at=now, init_samples=())
            else:
                st = replace(st, init_samples=samples)
            continue
        if st.cooldown_until is not None and now < st.cooldown_until:
            continue
        if len(st.window) < cfg.median_window:
            continue
        v = median([r.value for r in st.window])
        g = gain(v, st.baseline)
        kind = classify(g, cfg)
        if kind is None:
            continue
        trigger = EpochTrigger(kind, v, g, st.baseline, st.window, row.id)
        st = replace(st, baseline=v, baseline_set_at=now, window=(), cooldown_until=now + cfg.cooldown_s)
        return Evaluation(st, tuple(baselines), trigger, tuple(rows[index + 1 :]), skipped)
    return Evaluation(st, tuple(baselines), None, (), skipped)


def next_height(max_run_height: int | None, max_epoch_height: int | None) -> int:
    """h = max(MAX(runs.height), MAX(epochs.height), 0) + 1: heights are never reused."""
    return max(max_run_height or 0, max_epoch_height or 0, 0) + 1


def flag_runs(
    runs: Iterable[RunRecord], kind: EpochKind, height: int | None, now: float
) -> tuple[list[RunRecord], int]:
    """The epoch's UPDATE on plain records: take-profit heights the unflagged cohort, drawdown exits it."""
    out: list[RunRecord] = []
    flagged = 0
    for r in runs:
        if kind == "take_profit" and not r.exit_run and r.height is None:
            out.append(replace(r, height=height, exit_run=True, update_time=now))
            flagged += 1
        elif kind == "drawdown_reset" and r.height is None:
            out.append(replace(r, exit_run=True, update_time=now))
            flagged += 1
        else:
            out.append(r)
    return out, flagged


@dataclass(frozen=True, slots=True)
class ForcedCycle:
    cycle_id: str
    due_at: float
    state: Literal["pending", "sent", "skipped"] = "pending"


def forced_cycles(
    kind: EpochKind, triggered_at: float, delays_s: Sequence[float], height: int | None, epoch_id: int | None
) -> tuple[ForcedCycle, ...]:
    """The epoch's forced reconciliation ids and due times (`tp:<h>:i` or `dd:<epoch_id>:i`)."""
    if kind == "take_profit":
        if height is None:
            raise ValueError("a take-profit epoch needs its height")
        ids = take_profit_cycle_ids(height, len(delays_s))
    else:
        if epoch_id is None:
            raise ValueError("a drawdown reset needs its epoch id")
        ids = drawdown_cycle_ids(epoch_id, len(delays_s))
    return tuple(ForcedCycle(cid, triggered_at + delay) for cid, delay in zip(ids, delays_s, strict=True))


def dispatch_forced(
    cycles: Sequence[ForcedCycle], now: float, max_lateness_s: float
) -> list[tuple[ForcedCycle, Literal["send", "skip"]]]:
    """§14.5: due pending cycles are sent, or skipped when overdue by more than the lateness bound."""
    actions: list[tuple[ForcedCycle, Literal["send", "skip"]]] = []
    for c in cycles:
        if c.state != "pending" or c.due_at > now:
            continue
        actions.append((c, "send" if now - c.due_at <= max_lateness_s else "skip"))
    return actions


def baseline_from_readings(readings: Sequence[Reading], now: float, cfg: TakeProfitConfig) -> float | None:
    """β for `3t take-profit reset-baseline`: the median of the last k fresh readings, if there are k."""
    fresh = [r for r in readings if now - r.fetched_at <= cfg.max_reading_age_s][-cfg.median_window :]
    if len(fresh) < cfg.median_window:
        return None
    return median([r.value for r in fresh])
