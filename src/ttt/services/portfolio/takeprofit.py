"""Take-profit and drawdown-reset evaluation, task `ttt.portfolio.take_profit` (portfolio.md §14, P8).

Restart safety comes from the database, not from memory: the cursor, window, baseline and cooldown are
one row written in the same transaction as any epoch it causes, so an interrupted run either happened
entirely or not at all, and the next run resumes from the committed cursor. Forced cycles are sent after
that commit and marked `sent` afterwards; a crash in between re-sends the same cycle id, which the cycle
de-duplicates (§1.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ttt.adapters.db.models import Epoch
from ttt.adapters.db.models import TakeProfitState as StateRow
from ttt.adapters.db.repositories.portfolio_extra import PortfolioQueries
from ttt.adapters.db.types import as_utc
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.quorum import median
from ttt.domain.takeprofit import (
    BalanceRow,
    EpochTrigger,
    ForcedCycle,
    Reading,
    TakeProfitConfig,
    TakeProfitState,
    baseline_from_readings,
    dispatch_forced,
    evaluate,
    forced_cycles,
    gain,
    next_height,
)
from ttt.errors import PreconditionError
from ttt.ports import Clock, LockManager
from ttt.services.locking import run_locked
from ttt.services.portfolio.alerts import AlertSink
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

TAKE_PROFIT_LOCK = "take_profit"
TAKE_PROFIT_LOCK_TTL_S = 60
COMPONENT = "take_profit"
BATCH = 1000
_Q18 = Decimal("1e-18")

Enqueue = Callable[[str, str], None]
"""enqueue(cycle_id, trigger): hand a forced reconciliation to the task runner."""


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x))).quantize(_Q18, rounding=ROUND_HALF_EVEN)


def _reading_json(r: Reading) -> dict[str, Any]:
    return {"snapshot_id": r.snapshot_id, "fetched_at": r.fetched_at, "value": r.value}


def _reading(doc: Any) -> Reading:
    return Reading(int(doc["snapshot_id"]), float(doc["fetched_at"]), float(doc["value"]))


def state_from_row(row: StateRow | None) -> TakeProfitState:
    if row is None:
        return TakeProfitState()
    return TakeProfitState(
        baseline=None if row.baseline is None else float(row.baseline),
        baseline_set_at=None if row.baseline_set_at is None else row.baseline_set_at.timestamp(),
        init_samples=tuple(_reading(d) for d in (row.init_samples or [])),
        window=tuple(_reading(d) for d in (row.window or [])),
        cursor=int(row.cursor),
        cooldown_until=None if row.cooldown_until is None else row.cooldown_until.timestamp(),
    )


def row_from_state(state: TakeProfitState, now: float) -> StateRow:
    return StateRow(
        id=1,
        baseline=None if state.baseline is None else _dec(state.baseline),
        baseline_set_at=None if state.baseline_set_at is None else as_utc(state.baseline_set_at),
        init_samples=[_reading_json(r) for r in state.init_samples],
        window=[_reading_json(r) for r in state.window],
        cursor=state.cursor,
        cooldown_until=None if state.cooldown_until is None else as_utc(state.cooldown_until),
        updated_at=as_utc(now),
    )


@dataclass
class TakeProfitReport:
    processed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    baselines: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    forced_sent: list[str] = field(default_factory=list)
    forced_skipped: list[str] = field(default_factory=list)
    error: str | None = None


class TakeProfitService:
    def __init__(
        self,
        engine: Engine,
        locks: LockManager,
        clock: Clock,
        alerts: AlertSink,
        cfg: TakeProfitConfig,
        enqueue: Enqueue,
        *,
        metrics: Metrics | None = None,
        actor: str = "take_profit",
        queries: Callable[[Session], PortfolioQueries] = PortfolioQueries,
    ) -> None:
        self._engine = engine
        self._locks = locks
        self._clock = clock
        self._alerts = alerts
        self.cfg = cfg
        self._enqueue = enqueue
        self._metrics = metrics
        self._actor = actor
        self._queries = queries

    def run(self) -> TakeProfitReport:
        """The scheduled task under lock `take_profit`; raises LockBusy when another run holds it."""
        return run_locked(
            self._locks, TAKE_PROFIT_LOCK, TAKE_PROFIT_LOCK_TTL_S, lambda _t: self.run_unlocked()
        )

    def run_unlocked(self) -> TakeProfitReport:
        report = self.evaluate()
        self.dispatch(report)
        return report

    # --- §14.3 ---------------------------------------------------------------------------------------

    def evaluate(self) -> TakeProfitReport:
        report = TakeProfitReport()
        while True:
            now = self._clock.now()
            trigger: EpochTrigger | None = None
            try:
                with UnitOfWork(self._engine) as uow:
                    state = state_from_row(uow.take_profit.get_state())
                    if not self.cfg.enabled:
                        newest = uow.balances.latest_id() or 0
                        uow.take_profit.put_state(
                            row_from_state(replace(state, cursor=max(state.cursor, newest)), now)
                        )
                        return report
                    snaps = uow.balances.usable_after(state.cursor, BATCH)
                    rows = [
                        BalanceRow(s.id, s.fetched_at.timestamp(), float(s.account_value), s.usable)
                        for s in snaps
                    ]
                    ev = evaluate(state, rows, now, self.cfg)
                    for b in ev.baselines:
                        uow.audit.append(
                            ts=now,
                            kind="baseline.set",
                            actor=self._actor,
                            message=f"take-profit baseline set to {b.value}",
                            payload={"baseline": b.value, "samples": [_reading_json(r) for r in b.samples]},
                        )
                    trigger = ev.epoch
                    epoch_id = self._apply_epoch(uow, trigger, now) if trigger is not None else None
                    uow.take_profit.put_state(row_from_state(ev.state, now))
            except SQLAlchemyError as exc:
                report.error = f"{type(exc).__name__}: {exc}"
                if trigger is not None:
                    self._alerts.alert(
                        COMPONENT, "epoch_failed", "critical", message=f"epoch rolled back: {report.error}"
                    )
                else:
                    log.error("take-profit evaluation not persisted: %s", exc)
                return report
            processed = len(rows) - len(ev.remaining)
            report.processed += processed
            for reason, n in ev.skipped.items():
                report.skipped[reason] = report.skipped.get(reason, 0) + n
                if self._metrics is not None and reason in ("stale", "invalid"):
                    self._metrics.take_profit_readings_skipped_total.labels(reason).inc(n)
            report.baselines.extend(b.value for b in ev.baselines)
            self._gain_gauge(ev.state)
            if trigger is not None and epoch_id is not None:
                report.epochs.append(epoch_id)
                if self._metrics is not None:
                    self._metrics.epochs_total.labels(trigger.kind).inc()
                continue
            if len(rows) < BATCH:
                return report

    def _gain_gauge(self, state: TakeProfitState) -> None:
        if self._metrics is None or state.baseline is None or len(state.window) < self.cfg.median_window:
            return
        self._metrics.take_profit_gain_ratio.set(
            gain(median([r.value for r in state.window]), state.baseline)
        )

    def _apply_epoch(self, uow: UnitOfWork, trigger: EpochTrigger, now: float) -> int:
        """§14.4, inside the caller's transaction: flag runs, insert the epoch, append its audit row."""
        q = self._queries(uow.session)
        if trigger.kind == "take_profit":
            height: int | None = next_height(q.max_run_height(), q.max_epoch_height())
            assert height is not None
            flagged = uow.runs.flag_take_profit(height, now)
        else:
            height = None
            flagged = uow.runs.flag_drawdown_reset(now)
        n = len(self.cfg.forced_cycle_delays_s)
        epoch = Epoch(
            kind=trigger.kind,
            height=height,
            triggered_at=as_utc(now),
            baseline_before=_dec(trigger.baseline_before),
            value=_dec(trigger.value),
            gain=_dec(trigger.gain),
            runs_flagged=flagged,
            forced_cycle_ids=[""] * n,
            forced_due_at=[None] * n,
            forced_state=["pending"] * n,
        )
        epoch_id = uow.take_profit.add_epoch(epoch)
        cycles = forced_cycles(trigger.kind, now, self.cfg.forced_cycle_delays_s, height, epoch_id)
        epoch.forced_cycle_ids = [c.cycle_id for c in cycles]
        epoch.forced_due_at = [as_utc(c.due_at).isoformat() for c in cycles]
        uow.session.flush()
        uow.audit.append(
            ts=now,
            kind=f"epoch.{trigger.kind}",
            actor=self._actor,
            message=f"{trigger.kind} epoch {epoch_id}" + (f" height {height}" if height is not None else ""),
            payload={
                "baseline_before": trigger.baseline_before,
                "value": trigger.value,
                "gain": trigger.gain,
                "window": [_reading_json(r) for r in trigger.window],
                "height": height,
                "runs_flagged": flagged,
                "forced_cycle_ids": [c.cycle_id for c in cycles],
                "epoch_id": epoch_id,
            },
            severity="warning",
        )
        return epoch_id

    # --- §14.5 ---------------------------------------------------------------------------------------

    def dispatch(self, report: TakeProfitReport | None = None) -> TakeProfitReport:
        report = report if report is not None else TakeProfitReport()
        now = self._clock.now()
        try:
            with UnitOfWork(self._engine, read_only=True) as uow:
                pending = [
                    (e.id, list(e.forced_cycle_ids), list(e.forced_due_at), list(e.forced_state))
                    for e in self._queries(uow.session).pending_epochs()
                ]
        except SQLAlchemyError as exc:
            log.error("forced cycles not dispatched: %s", exc)
            return report
        for epoch_id, ids, due, states in pending:
            cycles = [
                ForcedCycle(cid, datetime.fromisoformat(d).timestamp(), st)  # type: ignore[arg-type]
                for cid, d, st in zip(ids, due, states, strict=True)
            ]
            for cycle, action in dispatch_forced(cycles, now, self.cfg.forced_cycle_max_lateness_s):
                index = ids.index(cycle.cycle_id)
                if action == "send":
                    try:
                        self._enqueue(cycle.cycle_id, cycle.cycle_id.split(":", 1)[0])
                    except Exception as exc:
                        log.error("forced cycle %s not enqueued (retried next run): %s", cycle.cycle_id, exc)
                        continue
                    states[index] = "sent"
                    report.forced_sent.append(cycle.cycle_id)
                else:
                    states[index] = "skipped"
                    report.forced_skipped.append(cycle.cycle_id)
                try:
                    with UnitOfWork(self._engine) as uow:
                        uow.take_profit.set_forced_state(epoch_id, states)
                except SQLAlchemyError as exc:
                    log.error("forced cycle state of epoch %s not saved: %s", epoch_id, exc)
                if action == "skip":
                    self._alerts.alert(
                        COMPONENT,
                        "forced_cycle_late",
                        "warning",
                        scope=cycle.cycle_id,
                        cycle_id=cycle.cycle_id,
                        message=f"forced cycle {cycle.cycle_id} {now - cycle.due_at:.0f} s overdue; skipped",
                    )
        return report

    # --- §14.6 manual operations ---------------------------------------------------------------------

    def reset_baseline(self) -> int:
        """`3t take-profit reset-baseline`: β ← median of the last k fresh readings; an unflagging epoch."""

        def work(_token: str) -> int:
            now = self._clock.now()
            with UnitOfWork(self._engine) as uow:
                recent = self._queries(uow.session).recent_usable(self.cfg.median_window)
                readings = [Reading(s.id, s.fetched_at.timestamp(), float(s.account_value)) for s in recent]
                beta = baseline_from_readings(readings, now, self.cfg)
                if beta is None:
                    raise PreconditionError(
                        f"take-profit baseline not reset: fewer than {self.cfg.median_window} readings "
                        f"younger than {self.cfg.max_reading_age_s:.0f} s"
                    )
                state = state_from_row(uow.take_profit.get_state())
                before = state.baseline if state.baseline is not None else beta
                epoch_id = uow.take_profit.add_epoch(
                    Epoch(
                        kind="baseline_reset",
                        height=None,
                        triggered_at=as_utc(now),
                        baseline_before=_dec(before),
                        value=_dec(beta),
                        gain=_dec(gain(beta, before)),
                        runs_flagged=0,
                        forced_cycle_ids=[],
                        forced_due_at=[],
                        forced_state=[],
                    )
                )
                uow.take_profit.put_state(
                    row_from_state(replace(state, baseline=beta, baseline_set_at=now, init_samples=()), now)
                )
                uow.audit.append(
                    ts=now,
                    kind="epoch.baseline_reset",
                    actor=self._actor,
                    message=f"baseline reset from {state.baseline} to {beta}",
                    payload={
                        "baseline_before": state.baseline,
                        "value": beta,
                        "window": [_reading_json(r) for r in readings],
                        "epoch_id": epoch_id,
                        "runs_flagged": 0,
                    },
                    severity="warning",
                )
                return epoch_id

        return run_locked(self._locks, TAKE_PROFIT_LOCK, TAKE_PROFIT_LOCK_TTL_S, work)

    def status(self) -> dict[str, Any]:
        with UnitOfWork(self._engine, read_only=True) as uow:
            state = state_from_row(uow.take_profit.get_state())
        now = self._clock.now()
        g = None
        if state.baseline is not None and len(state.window) >= self.cfg.median_window:
            g = gain(median([r.value for r in state.window]), state.baseline)
        return {
            "enabled": self.cfg.enabled,
            "baseline": state.baseline,
            "baseline_set_at": state.baseline_set_at,
            "init_samples": len(state.init_samples),
            "window": [r.value for r in state.window],
            "gain": g,
            "threshold": self.cfg.threshold,
            "drawdown_threshold": -self.cfg.threshold / self.cfg.reward_multiple,
            "cursor": state.cursor,
            "cooldown_until": state.cooldown_until,
            "in_cooldown": state.cooldown_until is not None and now < state.cooldown_until,
        }
