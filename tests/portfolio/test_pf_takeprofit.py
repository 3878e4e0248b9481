"""Take-profit, drawdown reset and epochs: the pure rules of portfolio.md §21.12 (pins TPS-*)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ttt.domain.run_records import RunRecord
from ttt.domain.takeprofit import (
    BalanceRow,
    EpochTrigger,
    Evaluation,
    ForcedCycle,
    TakeProfitConfig,
    TakeProfitState,
    baseline_from_readings,
    dispatch_forced,
    evaluate,
    flag_runs,
    forced_cycles,
    next_height,
)

NOW = 1_767_268_800.0
CFG = TakeProfitConfig()


def rows(
    values: Sequence[float], start_id: int = 1, age_s: float = 60.0, step_s: float = 15.0
) -> list[BalanceRow]:
    """Readings spaced `step_s` apart, the last one `age_s` before NOW minus nothing."""
    n = len(values)
    return [BalanceRow(start_id + i, NOW - age_s - (n - 1 - i) * step_s, v) for i, v in enumerate(values)]


def with_baseline(beta: float, cursor: int = 0) -> TakeProfitState:
    return TakeProfitState(baseline=beta, baseline_set_at=NOW - 3600, cursor=cursor)


def test_TPS_01_baseline_is_median_of_first_readings() -> None:
    result = evaluate(TakeProfitState(), rows([100, 101, 99, 1000, 100]), NOW, CFG)
    assert result.state.baseline == 100
    assert result.state.init_samples == ()
    assert len(result.baselines) == 1 and result.baselines[0].value == 100
    assert result.epoch is None and result.state.cursor == 5


def test_TPS_01_baseline_waits_for_k_samples() -> None:
    result = evaluate(TakeProfitState(), rows([100, 101, 99, 1000]), NOW, CFG)
    assert result.state.baseline is None and len(result.state.init_samples) == 4


def test_TPS_02_outlier_alone_does_not_fire() -> None:
    result = evaluate(with_baseline(100), rows([150, 160, 300, 170, 180]), NOW, CFG)
    assert result.epoch is None
    assert [r.value for r in result.state.window] == [150, 160, 300, 170, 180]
    assert result.state.baseline == 100


def _fire(values: Sequence[float], beta: float = 100) -> tuple[Evaluation, EpochTrigger]:
    result = evaluate(with_baseline(beta), rows(values), NOW, CFG)
    assert result.epoch is not None
    return result, result.epoch


def test_TPS_03_take_profit() -> None:
    result, epoch = _fire([200, 201, 199, 205, 210])
    assert epoch.kind == "take_profit"
    assert epoch.value == 201 and epoch.gain == pytest.approx(1.01, rel=1e-12)
    assert epoch.baseline_before == 100
    assert result.state.baseline == 201 and result.state.window == ()
    assert result.state.cooldown_until == NOW + 720
    height = next_height(max_run_height=6, max_epoch_height=None)
    assert height == 7
    runs = [
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5),
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5, end_time=NOW - 100),  # ended, not purged
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5, exit_run=True),
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5, exit_run=True, height=6),
    ]
    flagged_runs, count = flag_runs(runs, "take_profit", height, NOW)
    assert count == 2
    assert [(r.height, r.exit_run) for r in flagged_runs] == [(7, True), (7, True), (None, True), (6, True)]
    cycles = forced_cycles("take_profit", NOW, CFG.forced_cycle_delays_s, height, None)
    assert [(c.cycle_id, c.due_at - NOW) for c in cycles] == [("tp:7:1", 0), ("tp:7:2", 120), ("tp:7:3", 360)]


def test_TPS_03_rows_after_the_epoch_are_returned_unprocessed() -> None:
    batch = rows([200, 201, 199, 205, 210, 220, 230])
    result = evaluate(with_baseline(100), batch, NOW, CFG)
    assert result.epoch is not None and result.epoch.snapshot_id == 5
    assert result.state.cursor == 5
    assert [r.id for r in result.remaining] == [6, 7]


def test_TPS_04_gain_exactly_threshold_fires() -> None:
    _, epoch = _fire([200, 200, 200, 200, 200])
    assert epoch.gain == 1.0 and epoch.kind == "take_profit"


def test_TPS_05_drawdown_boundary_is_strict() -> None:
    result = evaluate(with_baseline(100), rows([80, 80, 80, 80, 80]), NOW, CFG)
    assert result.epoch is None
    result, epoch = _fire([79.99, 79.99, 79.99, 79.99, 79.99])
    assert epoch.kind == "drawdown_reset"
    runs = [
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5),
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5, end_time=NOW - 50),
        RunRecord("BTC/USDC:USDC", 1, 1.0, NOW - 5, exit_run=True, height=3),
    ]
    flagged_runs, count = flag_runs(runs, "drawdown_reset", None, NOW)
    assert count == 2
    assert [(r.height, r.exit_run) for r in flagged_runs] == [(None, True), (None, True), (3, True)]
    cycles = forced_cycles("drawdown_reset", NOW, CFG.forced_cycle_delays_s, None, 42)
    assert [c.cycle_id for c in cycles] == ["dd:42:1", "dd:42:2", "dd:42:3"]


def test_TPS_06_restart_never_evaluates_old_readings() -> None:
    old = [BalanceRow(i, NOW - 301 - (500 - i), 1000.0) for i in range(11, 501)]
    result = evaluate(with_baseline(100, cursor=10), old, NOW, CFG)
    assert result.epoch is None
    assert result.state.cursor == 500
    assert result.skipped == {"stale": 490}
    assert result.state.window == ()


def test_TPS_07_pending_forced_cycle_is_sent_with_its_id_after_restart() -> None:
    cycles = forced_cycles("take_profit", NOW - 30, CFG.forced_cycle_delays_s, 7, None)
    actions = dispatch_forced(cycles, NOW, CFG.forced_cycle_max_lateness_s)
    assert [(c.cycle_id, action) for c, action in actions] == [("tp:7:1", "send")]
    again = dispatch_forced(cycles, NOW, CFG.forced_cycle_max_lateness_s)
    assert [c.cycle_id for c, _ in again] == ["tp:7:1"]  # same id until its state is persisted as sent


def test_forced_cycle_overdue_is_skipped_and_sent_ones_ignored() -> None:
    cycles = (
        ForcedCycle("tp:1:1", NOW - 601),
        ForcedCycle("tp:1:2", NOW - 600),
        ForcedCycle("tp:1:3", NOW - 10, "sent"),
    )
    actions = dispatch_forced(cycles, NOW, 600)
    assert [(c.cycle_id, a) for c, a in actions] == [("tp:1:1", "skip"), ("tp:1:2", "send")]


def test_TPS_08_no_second_epoch_during_cooldown() -> None:
    first = evaluate(with_baseline(100), rows([200, 201, 199, 205, 210]), NOW, CFG)
    assert first.epoch is not None
    later = NOW + 300
    more = [BalanceRow(6 + i, later - 60 + i * 10, 900.0) for i in range(6)]
    second = evaluate(first.state, more, later, CFG)
    assert second.epoch is None
    assert second.state.cursor == 11
    after = NOW + 721
    last = [BalanceRow(20 + i, after - 50 + i * 10, 900.0) for i in range(5)]
    third = evaluate(second.state, last, after, CFG)
    assert third.epoch is not None and third.epoch.baseline_before == 201


def test_TPS_09_disabled_only_advances_the_cursor() -> None:
    cfg = TakeProfitConfig(enabled=False)
    result = evaluate(
        with_baseline(100, cursor=3), rows([1000] * 5, start_id=4), NOW, cfg, newest_snapshot_id=12
    )
    assert result.epoch is None and result.state.cursor == 12
    assert result.state.window == () and result.state.baseline == 100


def test_TPS_10_next_height() -> None:
    assert next_height(2, 3) == 4
    assert next_height(None, None) == 1


def test_invalid_rows_and_window_age() -> None:
    batch = [BalanceRow(1, NOW - 10, 0.0), BalanceRow(2, NOW - 10, 5.0, usable=False)]
    result = evaluate(with_baseline(100), batch, NOW, CFG)
    assert result.skipped == {"invalid": 1, "unusable": 1} and result.state.cursor == 2
    first = [BalanceRow(3 + i, NOW - 40 + i * 10, 300.0) for i in range(4)]
    part = evaluate(with_baseline(100, cursor=2), first, NOW, CFG)
    assert part.epoch is None and len(part.state.window) == 4
    later = NOW + 270
    kept = evaluate(part.state, [BalanceRow(7, later - 10, 300.0)], later, CFG)
    assert kept.epoch is not None  # the oldest window entry is 300 s older than the new reading
    later = NOW + 271
    dropped = evaluate(part.state, [BalanceRow(7, later - 10, 300.0)], later, CFG)
    assert dropped.epoch is None and len(dropped.state.window) == 4  # 301 s: the oldest dropped


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="median_window"):
        TakeProfitConfig(median_window=4)
    with pytest.raises(ValueError, match="threshold"):
        TakeProfitConfig(threshold=0)


def test_rows_must_follow_the_cursor() -> None:
    with pytest.raises(ValueError, match="increasing"):
        evaluate(with_baseline(100, cursor=5), [BalanceRow(5, NOW, 100.0)], NOW, CFG)


def test_manual_baseline_reset() -> None:
    from ttt.domain.takeprofit import Reading

    readings = [Reading(i, NOW - 50 + i, v) for i, v in enumerate([1, 500, 120, 110, 130, 90, 100])]
    assert baseline_from_readings(readings, NOW, CFG) == 110
    assert baseline_from_readings(readings[:3], NOW, CFG) is None
