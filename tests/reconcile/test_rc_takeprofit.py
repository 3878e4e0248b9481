"""portfolio.md §14 take-profit over the database: TPS-01..10 persistence, F33–F35, restart safety."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.reconcile.rc_support import (
    BTC,
    NOW,
    WALLET,
    FakeClock,
    add_runs,
    alert_reasons,
    audit_rows,
    counter,
    drop_trigger,
    seed_products,
    sqlite_trigger,
)
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.models import BalanceSnapshot, Epoch, Run
from ttt.adapters.db.types import as_utc
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.takeprofit import TakeProfitConfig
from ttt.errors import PreconditionError
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.takeprofit import TakeProfitService
from ttt.telemetry.metrics import Metrics


@dataclass
class Enqueued:
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, cycle_id: str, trigger: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.calls.append((cycle_id, trigger))


@dataclass
class TP:
    engine: Engine
    clock: FakeClock
    metrics: Metrics
    enqueue: Enqueued
    cfg: TakeProfitConfig

    def service(self) -> TakeProfitService:
        """A fresh service object each time: nothing survives in memory between runs."""
        alerts = AlertSink(self.clock, self.metrics, audit=db_audit_writer(self.engine, "test"))
        return TakeProfitService(
            self.engine,
            DbLockManager(self.engine, self.clock),
            self.clock,
            alerts,
            self.cfg,
            self.enqueue,
            metrics=self.metrics,
        )

    def readings(self, values: Sequence[float], *, step_s: float = 10.0, age_s: float | None = None) -> None:
        """Snapshots with these account values, the last one `step_s` before now (or all `age_s` old)."""
        with UnitOfWork(self.engine) as uow:
            venue = uow.venues.ensure_exchange("paper", "paper", self.clock.now())
            n = len(values)
            for i, v in enumerate(values):
                at = self.clock.now() - (age_s if age_s is not None else (n - i) * step_s)
                uow.session.add(
                    BalanceSnapshot(
                        exchange_id=venue.id,
                        wallet=WALLET,
                        fetched_at=as_utc(at),
                        account_value=Decimal(repr(v)),
                        cross_maintenance_margin_used=Decimal(0),
                        total_margin_used=Decimal(0),
                        usable=True,
                        partial=False,
                        missing_dexes=[],
                        unmapped=[],
                        off_grid=[],
                        created_at=as_utc(at),
                    )
                )

    def state(self) -> dict[str, object]:
        return self.service().status()

    def epochs(self) -> list[Epoch]:
        with UnitOfWork(self.engine, read_only=True) as uow:
            return list(reversed(uow.take_profit.epochs()))


@pytest.fixture
def tp(engine: Engine) -> TP:
    seed_products(engine, NOW - 3600)
    return TP(engine, FakeClock(NOW), Metrics.create(CollectorRegistry()), Enqueued(), TakeProfitConfig())


def _baseline(tp: TP, value: float = 100.0, advance_s: float = 60.0) -> None:
    tp.readings([value] * 5)
    tp.service().run()
    assert tp.state()["baseline"] == value
    tp.clock.advance(advance_s)


def _runs(engine: Engine) -> list[tuple[int | None, bool, bool]]:
    with UnitOfWork(engine, read_only=True) as uow:
        rows = uow.session.execute(sa.select(Run.height, Run.exit_run, Run.end_time).order_by(Run.id)).all()
    return [(h, bool(x), e is not None) for h, x, e in rows]


def test_TPS_01_baseline_persisted_from_fresh_readings(tp: TP) -> None:
    tp.readings([100, 101, 99, 1000, 100])
    report = tp.service().run()
    assert report.baselines == [100.0] and report.epochs == []
    st = tp.state()
    assert st["baseline"] == 100.0 and st["init_samples"] == 0
    assert [r.payload["baseline"] for r in audit_rows(tp.engine, "baseline.set")] == [100.0]


def test_TPS_02_single_outlier_does_not_fire(tp: TP) -> None:
    _baseline(tp)
    tp.readings([150, 160, 300, 170, 180])
    report = tp.service().run()
    assert report.epochs == [] and tp.epochs() == []
    assert counter(tp.metrics, "ttt_take_profit_gain_ratio") == pytest.approx(0.7)


def test_TPS_03_TPS_10_take_profit_epoch(tp: TP) -> None:
    add_runs(tp.engine, BTC, (1, -1), 1.0, NOW - 10)  # active, unheighted
    add_runs(tp.engine, BTC, (1,), 1.0, NOW - 10, height=2, exit_run=True)  # an older cohort
    ended = add_runs(tp.engine, BTC, (1,), 1.0, NOW - 10)
    with tp.engine.begin() as conn:  # ended but not yet purged: captured too (reference)
        conn.execute(sa.update(Run).where(Run.id == ended[0]).values(end_time=as_utc(NOW - 5)))
    with UnitOfWork(tp.engine) as uow:  # TPS-10: epochs already used heights 1..3
        for h in (1, 2, 3):
            old = {"baseline_before": Decimal(1), "value": Decimal(2), "gain": Decimal(1), "runs_flagged": 0}
            none: dict[str, list[str]] = {"forced_cycle_ids": [], "forced_due_at": [], "forced_state": []}
            uow.session.add(
                Epoch(kind="take_profit", height=h, triggered_at=as_utc(NOW - 9000), **old, **none)
            )
    _baseline(tp, advance_s=400)  # the baseline readings leave the window (older than 300 s)
    tp.readings([200, 201, 199, 205, 210])
    report = tp.service().run()
    [epoch] = [e for e in tp.epochs() if e.id in report.epochs]
    assert epoch.kind == "take_profit" and epoch.height == 4
    assert epoch.value == Decimal(201) and epoch.gain == Decimal("1.01") and epoch.runs_flagged == 3
    assert epoch.forced_cycle_ids == ["tp:4:1", "tp:4:2", "tp:4:3"]
    due = [as_utc(NOW + 400 + d).isoformat() for d in (0, 120, 360)]
    assert epoch.forced_due_at == due
    assert _runs(tp.engine) == [(4, True, False), (4, True, False), (2, True, False), (4, True, True)]
    st = tp.state()
    assert st["baseline"] == 201.0 and st["window"] == [] and st["cooldown_until"] == NOW + 400 + 720
    assert tp.enqueue.calls == [("tp:4:1", "tp")]  # due now; the others later
    assert tp.epochs()[-1].forced_state == ["sent", "pending", "pending"]
    [row] = audit_rows(tp.engine, "epoch.take_profit")
    assert row.payload["height"] == 4 and row.payload["runs_flagged"] == 3
    assert counter(tp.metrics, "ttt_epochs_total", kind="take_profit") == 1
    tp.clock.advance(120)
    tp.service().run()
    assert tp.enqueue.calls == [("tp:4:1", "tp"), ("tp:4:2", "tp")]


def test_TPS_04_gain_exactly_threshold_fires(tp: TP) -> None:
    _baseline(tp)
    tp.readings([200, 200, 200, 200, 200])
    assert len(tp.service().run().epochs) == 1


def test_TPS_05_drawdown_boundary_and_reset(tp: TP) -> None:
    add_runs(tp.engine, BTC, (1, 1), 1.0, NOW - 10)
    add_runs(tp.engine, BTC, (1,), 1.0, NOW - 10, height=1, exit_run=True)
    _baseline(tp)
    tp.readings([80.0] * 5)
    assert tp.service().run().epochs == []  # g = −0.2 is not < −0.2
    tp.clock.advance(60)
    tp.readings([79.99] * 5)
    report = tp.service().run()
    [epoch] = tp.epochs()
    assert epoch.id == report.epochs[0] and epoch.kind == "drawdown_reset" and epoch.height is None
    assert epoch.forced_cycle_ids == [f"dd:{epoch.id}:1", f"dd:{epoch.id}:2", f"dd:{epoch.id}:3"]
    assert _runs(tp.engine) == [(None, True, False), (None, True, False), (1, True, False)]
    assert tp.enqueue.calls == [(f"dd:{epoch.id}:1", "dd")]


def test_TPS_06_F34_restart_never_evaluates_old_readings(tp: TP) -> None:
    _baseline(tp)
    cursor_before = tp.state()["cursor"]
    tp.readings([1000.0] * 490, age_s=301)
    report = tp.service().run()
    assert report.epochs == [] and report.skipped == {"stale": 490}
    assert tp.state()["cursor"] == cursor_before + 490  # type: ignore[operator]
    assert counter(tp.metrics, "ttt_take_profit_readings_skipped_total", reason="stale") == 490


def test_TPS_07_crash_before_forced_cycle_resends_same_id(tp: TP) -> None:
    _baseline(tp)
    tp.readings([300.0] * 5)
    tp.enqueue.fail = True  # the process "dies" between the epoch commit and the enqueue
    first = tp.service().run()
    assert len(first.epochs) == 1 and first.forced_sent == []
    assert tp.epochs()[0].forced_state == ["pending", "pending", "pending"]
    tp.enqueue.fail = False
    tp.clock.advance(5)
    second = tp.service().run()  # restart: a new service object, state from the database only
    assert second.epochs == [] and len(tp.epochs()) == 1
    assert tp.enqueue.calls == [("tp:1:1", "tp")]


def test_TPS_08_no_second_epoch_during_cooldown(tp: TP) -> None:
    _baseline(tp)
    tp.readings([300.0] * 5)
    assert len(tp.service().run().epochs) == 1
    tp.clock.advance(100)
    tp.readings([900.0] * 5)
    assert tp.service().run().epochs == []
    assert len(tp.epochs()) == 1


def test_TPS_09_disabled_only_advances_cursor(tp: TP) -> None:
    tp.cfg = TakeProfitConfig(enabled=False)
    tp.readings([100.0, 1000.0, 5000.0])
    tp.service().run()
    st = tp.state()
    assert st["cursor"] == 3 and st["baseline"] is None and tp.epochs() == []


def test_F33_epoch_transaction_fails_rolls_back_and_retries_once(tp: TP) -> None:
    add_runs(tp.engine, BTC, (1, 1), 1.0, NOW - 10)
    _baseline(tp)
    cursor = tp.state()["cursor"]
    tp.readings([300.0] * 5)
    sqlite_trigger(tp.engine, "no_flag", "runs", event="UPDATE")
    report = tp.service().run()
    assert report.epochs == [] and report.error is not None
    assert tp.epochs() == [] and tp.state()["cursor"] == cursor  # cursor rolled back with the epoch
    assert _runs(tp.engine) == [(None, False, False), (None, False, False)]
    assert "epoch_failed" in alert_reasons(tp.engine)
    assert counter(tp.metrics, "ttt_alerts_total", component="take_profit", reason="epoch_failed",
                   severity="critical") == 1  # fmt: skip
    drop_trigger(tp.engine, "no_flag")
    tp.clock.advance(5)
    again = tp.service().run()  # the same readings are evaluated again: exactly one epoch
    assert len(again.epochs) == 1 and len(tp.epochs()) == 1
    tp.clock.advance(5)
    assert tp.service().run().epochs == [] and len(tp.epochs()) == 1


def test_F35_overdue_forced_cycles_are_skipped(tp: TP) -> None:
    _baseline(tp)
    tp.readings([300.0] * 5)
    tp.enqueue.fail = True
    tp.service().run()
    tp.enqueue.fail = False
    tp.clock.advance(900)  # due +0/+120/+360; lateness bound 600
    report = tp.service().run()
    assert report.forced_skipped == ["tp:1:1", "tp:1:2"] and report.forced_sent == ["tp:1:3"]
    assert tp.epochs()[0].forced_state == ["skipped", "skipped", "sent"]
    assert "forced_cycle_late" in alert_reasons(tp.engine)


def test_reset_baseline_and_lock(tp: TP) -> None:
    with pytest.raises(PreconditionError):
        tp.service().reset_baseline()
    tp.readings([120, 130, 110, 125, 115])
    epoch_id = tp.service().reset_baseline()
    [epoch] = tp.epochs()
    assert epoch.id == epoch_id and epoch.kind == "baseline_reset" and epoch.runs_flagged == 0
    assert epoch.value == Decimal(120) and tp.state()["baseline"] == 120.0
    assert len(audit_rows(tp.engine, "epoch.baseline_reset")) == 1
    token = DbLockManager(tp.engine, tp.clock).acquire("take_profit", 60)
    assert token is not None
    from ttt.services.locking import LockBusy

    with pytest.raises(LockBusy):
        tp.service().run()
