"""portfolio.md §18, the failure matrix: every row injects its failure and asserts hold + alert, and that no
order towards flat is ever sent (P1).

The base scenario holds BTC 0.001 and ETH 0.05 and the runs want exactly that, so a failure that were
mistaken for "no position wanted" would show up as a sell towards flat. Rows F31–F36 live in the
ingestion, observer and take-profit test modules (named by row there).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tests.reconcile.rc_support import (
    BTC,
    ETH,
    NOW,
    Scenario,
    StaticObserver,
    add_snapshot,
    alert_reasons,
    audit_rows,
    build_scenario,
    counter,
    make_settings,
    sqlite_trigger,
    static_observer,
)
from ttt.adapters.cache.locks import RedisLockManager
from ttt.adapters.cache.redis_cache import make_redis_client
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.repositories.portfolio_extra import PortfolioQueries, RunAggregate
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.calendar import CalendarConfig
from ttt.domain.quorum import Unavailable
from ttt.services.portfolio.alerts import AlertSink, db_audit_writer
from ttt.services.portfolio.ports import CancelResult, GatewayUnavailable, SubmitAnswer
from ttt.services.portfolio.reconcile import CycleResult, ReconcileService
from ttt.telemetry.metrics import Metrics

CYCLE = "sched:20260101T120000Z"


def _outcomes(result: CycleResult) -> dict[str, tuple[str, str | None]]:
    return {r.symbol: (r.outcome, r.hold_reason) for r in result.records}


def _assert_held(result: CycleResult, symbols: Sequence[str], reason: str) -> None:
    got = _outcomes(result)
    for s in symbols:
        assert got[s] == ("hold", reason), got


def _assert_no_flat_order(sc: Scenario) -> None:
    """No order at all in these scenarios; in particular none towards flat."""
    assert sc.gateway.submissions == []


def _alerted(sc: Scenario, reason: str, severity: str) -> None:
    assert sc.alert_count(reason) >= 1, f"no {reason} alert counted"
    rows = [r for r in audit_rows(sc.engine, "alert") if r.payload["reason"] == reason]
    assert rows, f"no audit row for alert {reason}"
    assert rows[0].payload["severity"] == severity


def _hold_counted(sc: Scenario, symbol: str, reason: str) -> None:
    assert counter(sc.metrics, "ttt_reconciliation_holds_total", symbol=symbol, reason=reason) >= 1


def _wants_order(engine: Engine) -> Scenario:
    """BTC runs vote 8 (D = 0.002) while the account holds 0.001: a healthy cycle buys 0.001."""
    return build_scenario(engine, btc_dirs=(1,) * 8)


def test_base_scenario_is_quiet(engine: Engine) -> None:
    sc = build_scenario(engine)
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result) == {BTC: ("no_action", None), ETH: ("no_action", None)}
    assert alert_reasons(engine) == []


def test_F01_market_closed(engine: Engine) -> None:
    sc = build_scenario(engine, settings=make_settings(calendar=CalendarConfig("reference_rest")))
    result = sc.service().run_cycle(CYCLE)  # 2026-01-01 is a holiday of the reference calendar
    assert result.outcome == "market_closed"
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []
    with UnitOfWork(engine, read_only=True) as uow:
        row = uow.reconciliation.cycle(CYCLE)
        assert row is not None and row.outcome == "market_closed" and row.lock_token is None
        assert uow.reconciliation.log_for_cycle(CYCLE) == []
    assert alert_reasons(engine) == []  # info only
    assert sc.service().run_cycle(CYCLE).outcome == "duplicate"


def test_F02_lock_busy(engine: Engine) -> None:
    sc = build_scenario(engine)
    other = DbLockManager(engine, sc.clock).acquire("reconcile", 600)
    assert other is not None
    svc = sc.service()
    first = svc.run_cycle("sched:20260101T120000Z")
    assert first.outcome == "busy" and first.retry_after_s is None
    assert sc.alert_count("cycle_lock_contention") == 0
    second = svc.run_cycle("sched:20260101T121000Z")
    assert second.outcome == "busy"
    _alerted(sc, "cycle_lock_contention", "warning")
    forced = svc.run_cycle("tp:1:1")
    manual = svc.run_cycle("manual:1767268800000")
    assert forced.outcome == manual.outcome == "busy"
    assert forced.retry_after_s == manual.retry_after_s == 30.0
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []
    with UnitOfWork(engine, read_only=True) as uow:
        assert uow.reconciliation.recent_cycles() == []


def test_F03_lock_lost_holds_remaining_symbols(engine: Engine) -> None:
    sc = _wants_order(engine)

    def steal(_order: object) -> None:
        sc.clock.advance(601)  # our TTL expires while the order is being sent ...
        assert DbLockManager(engine, sc.clock).acquire("reconcile", 600) is not None  # ... and is taken

    sc.gateway.on_submit = steal
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result)[BTC][0] == "order_sent"
    _assert_held(result, [ETH], "lock_lost")
    _alerted(sc, "cycle_lock_lost", "critical")
    _hold_counted(sc, ETH, "lock_lost")
    assert len(sc.gateway.submissions) == 1


def test_F04_cycle_record_write_fails(engine: Engine) -> None:
    sc = _wants_order(engine)
    sqlite_trigger(engine, "no_cycle_start", "audit_log", "NEW.kind = 'cycle.start'")
    result = sc.service().run_cycle(CYCLE)
    assert result.outcome == "held"
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []
    _alerted(sc, "audit_unavailable", "critical")
    assert DbLockManager(engine, sc.clock).acquire("reconcile", 600) is not None  # lock was released


def test_F04_write_ahead_record_fails_no_order(engine: Engine) -> None:
    sc = _wants_order(engine)
    sqlite_trigger(engine, "no_btc_log", "reconciliation_log", f"NEW.symbol = '{BTC}'")
    result = sc.service().run_cycle(CYCLE)
    assert result.outcome == "completed"
    assert _outcomes(result)[BTC] == ("hold", "audit_unavailable")
    assert sc.gateway.submissions == []  # no record means no order
    _alerted(sc, "audit_unavailable", "critical")


def test_F05_gateway_unreachable_for_cancel(engine: Engine) -> None:
    sc = _wants_order(engine)

    def down(_symbols: Sequence[str]) -> list[CancelResult]:
        raise GatewayUnavailable("connection refused")

    sc.gateway.cancel = down
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "cancel_unavailable")
    _assert_no_flat_order(sc)
    _alerted(sc, "cancel_unavailable", "critical")
    _hold_counted(sc, BTC, "cancel_unavailable")


def test_F06_cancel_fails_for_one_symbol(engine: Engine) -> None:
    sc = _wants_order(engine)
    sc.gateway.cancel = lambda symbols: [
        CancelResult(BTC, error="frontendOpenOrders failed"),
        CancelResult(ETH),
    ]
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "cancel_failed")
    assert _outcomes(result)[ETH] == ("no_action", None)
    _assert_no_flat_order(sc)
    _alerted(sc, "cancel_failed", "warning")


def test_F07_no_fresh_snapshot(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.clock.advance(116)  # snapshot taken at NOW − 5 is now 121 s old (max 120)
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "balance_unavailable")
    _assert_no_flat_order(sc)
    _alerted(sc, "balance_unavailable", "critical")


def test_F08_balance_not_positive(engine: Engine) -> None:
    sc = build_scenario(engine)
    add_snapshot(engine, NOW - 2, {}, account_value="0", cross="0")
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "balance_invalid")
    _assert_no_flat_order(sc)
    _alerted(sc, "balance_invalid", "critical")


class _NoCrossMargin(ReconcileService):
    """The schema forbids a NULL cross margin, so the read is altered at the service seam instead."""

    def _snapshot(self, uow: UnitOfWork):  # type: ignore[no-untyped-def]
        snap = super()._snapshot(uow)
        assert snap is not None
        from dataclasses import replace

        return replace(snap, cross=None)


def test_F09_cross_margin_missing(engine: Engine) -> None:
    sc = build_scenario(engine)
    svc = _NoCrossMargin(
        sc.engine, sc.locks, sc.clock, sc.gateway, sc.alerts, sc.settings,
        observers=sc.observers, cache=sc.cache, metrics=sc.metrics,
    )  # fmt: skip
    result = svc.run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "margin_unavailable")
    _assert_no_flat_order(sc)
    _alerted(sc, "margin_unavailable", "critical")


def test_F10_CAP_03_caps_query_fails(engine: Engine) -> None:
    sc = _wants_order(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE products RENAME TO products_gone")
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "margin_caps_unavailable")
    assert all(r.plan is None for r in result.records)  # no decision
    _assert_no_flat_order(sc)
    _alerted(sc, "margin_caps_unavailable", "critical")


def test_F11_product_metadata_missing(engine: Engine) -> None:
    sol = "SOL/USDC:USDC"
    sc = build_scenario(engine, settings=make_settings(universe=(BTC, ETH, sol)))
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [sol], "instrument_metadata_missing")
    assert _outcomes(result)[BTC] == ("no_action", None)
    _alerted(sc, "instrument_metadata_missing", "warning")


def test_F12_DS_15_price_missing(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.cache.delete(f"price:{BTC}")
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "price_unavailable")
    assert _outcomes(result)[ETH] == ("no_action", None)
    _assert_no_flat_order(sc)
    _alerted(sc, "price_unavailable", "warning")


def test_F12_price_missing_for_a_flat_desire_still_holds(engine: Engine) -> None:
    """DT-15: decide is never called without a price, even when the desire is flat."""
    sc = build_scenario(engine, btc_dirs=())
    sc.cache.delete(f"price:{BTC}")
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result)[BTC] == ("hold", "price_unavailable")
    assert result.record(BTC).plan is not None and result.record(BTC).plan.decision is None  # type: ignore[union-attr]
    _assert_no_flat_order(sc)


def test_F13_DS_08_providence_silent(engine: Engine) -> None:
    sc = build_scenario(engine, btc_dirs=())
    from tests.reconcile.rc_support import add_runs

    add_runs(engine, BTC, (1, 1, 1, 1), 1.0, NOW - 601)
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "providence_silent")
    assert result.record(BTC).desired is not None
    _assert_no_flat_order(sc)  # the reference flattened here
    _alerted(sc, "providence_silent", "critical")


def test_F14_desired_state_query_fails(engine: Engine) -> None:
    sc = build_scenario(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE runs RENAME TO runs_gone")
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "desired_state_error")
    _assert_no_flat_order(sc)
    _alerted(sc, "desired_state_error", "critical")


class _AggregateFails(PortfolioQueries):
    def aggregate(
        self, symbol: str, now: float, live_pnl_threshold: float, freshness_s: float
    ) -> RunAggregate:
        raise sa.exc.OperationalError("SELECT …", {}, Exception("injected aggregate failure"))


def test_F14_DS_15_aggregate_query_raises(engine: Engine) -> None:
    sc = build_scenario(engine)
    result = sc.service(queries=_AggregateFails).run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "desired_state_error")
    _assert_no_flat_order(sc)


class _KellyFails(PortfolioQueries):
    def kelly_current(self, symbol: str) -> list[float]:
        raise sa.exc.OperationalError("SELECT …", {}, Exception("injected Kelly failure"))


def test_F15_K_26_kelly_query_fails(engine: Engine) -> None:
    sc = build_scenario(engine)
    result = sc.service(queries=_KellyFails).run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "kelly_error")
    _assert_no_flat_order(sc)  # the reference sized at S_base here
    _alerted(sc, "kelly_error", "warning")


def test_F16_Q_07_local_source_stale_quorum_still_passes(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.clock.advance(57)  # snapshot 62 s old: local unavailable (60), balance still usable (120)
    sc.observers[:] = [
        static_observer("O1", sc.clock.now() - 3, {BTC: ("0.001", "10"), ETH: ("0.05", "10")}),
        static_observer("O2", sc.clock.now() - 3, {BTC: ("0.001", "10"), ETH: ("0.05", "10")}),
    ]
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result) == {BTC: ("no_action", None), ETH: ("no_action", None)}
    _alerted(sc, "quorum_source_unavailable", "warning")
    assert counter(sc.metrics, "ttt_quorum_source_errors_total", source="local", reason="stale") == 2


def test_F17_Q_22_observer_unavailable_is_skipped(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.observers[0] = StaticObserver("O1", Unavailable("transport", "timed out"))
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result) == {BTC: ("no_action", None), ETH: ("no_action", None)}
    assert sc.observers[1].fetches == 1  # the failing first observer did not stop the search
    _alerted(sc, "quorum_source_unavailable", "warning")
    assert counter(sc.metrics, "ttt_quorum_source_errors_total", source="O1", reason="transport") == 2


def test_F18_Q_01_no_readings(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.clock.advance(57)
    sc.observers[:] = [
        StaticObserver("O1", Unavailable("transport")),
        StaticObserver("O2", Unavailable("http_status")),
    ]
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "quorum_no_sources")
    _assert_no_flat_order(sc)
    _alerted(sc, "quorum_no_sources", "critical")


def test_F19_Q_02_fewer_than_k_agreeing(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.observers[:] = [
        StaticObserver("O1", Unavailable("transport")),
        StaticObserver("O2", Unavailable("transport")),
    ]
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC, ETH], "quorum_insufficient")
    _assert_no_flat_order(sc)
    _alerted(sc, "quorum_insufficient", "warning")


def test_F20_Q_06_disagreement(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.observers[:] = [
        static_observer("O1", NOW - 3, {BTC: ("0.002", "10"), ETH: ("0.05", "10")}),
        static_observer("O2", NOW - 3, {BTC: ("0.003", "10"), ETH: ("0.05", "10")}),
    ]
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "quorum_disagreement")
    assert _outcomes(result)[ETH] == ("no_action", None)
    _assert_no_flat_order(sc)
    _alerted(sc, "quorum_disagreement", "critical")


def test_F20_Q_10_conflict_with_k_1(engine: Engine) -> None:
    sc = build_scenario(engine, settings=make_settings(quorum_k=1))
    sc.observers[:] = [static_observer("O1", NOW - 3, {BTC: ("0.002", "10"), ETH: ("0.05", "10")})]
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "quorum_conflict")
    _assert_no_flat_order(sc)
    _alerted(sc, "quorum_conflict", "critical")


def test_F21_Q_05_dissent_proceeds(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.observers[1] = static_observer("O2", NOW - 3, {BTC: ("0.002", "10"), ETH: ("0.05", "10")})
    result = sc.service().run_cycle(CYCLE)
    assert _outcomes(result) == {BTC: ("no_action", None), ETH: ("no_action", None)}
    assert result.record(BTC).quorum is not None and result.record(BTC).quorum.dissent == ("O2",)  # type: ignore[union-attr]
    assert counter(sc.metrics, "ttt_quorum_dissent_total", source="O2") == 1
    _alerted(sc, "quorum_dissent", "warning")


def test_F22_Q_20_margin_used_unknown(engine: Engine) -> None:
    holding = {BTC: ("0.001", None), ETH: ("0.05", "10")}
    sc = build_scenario(engine, holding=holding)
    result = sc.service().run_cycle(CYCLE)
    _assert_held(result, [BTC], "margin_used_unknown")
    _assert_no_flat_order(sc)
    _alerted(sc, "margin_used_unknown", "warning")


def test_F23_exception_in_symbol_pipeline(engine: Engine) -> None:
    sc = build_scenario(engine)
    sc.observers[0] = StaticObserver("O1", "not a document")  # type: ignore[arg-type]
    result = sc.service().run_cycle(CYCLE)
    assert result.outcome == "completed"
    _assert_held(result, [BTC, ETH], "internal_error")
    _assert_no_flat_order(sc)
    _alerted(sc, "internal_error", "critical")


class _FenceExplodes(PortfolioQueries):
    def fence_inputs(self, symbol: str, since: float):  # type: ignore[no-untyped-def]
        raise RuntimeError("injected bug")


def test_F24_exception_at_cycle_level(engine: Engine) -> None:
    sc = _wants_order(engine)
    result = sc.service(queries=_FenceExplodes).run_cycle(CYCLE)
    assert result.outcome == "failed" and "injected bug" in (result.error or "")
    _assert_no_flat_order(sc)
    _alerted(sc, "internal_error", "critical")
    with UnitOfWork(engine, read_only=True) as uow:
        row = uow.reconciliation.cycle(CYCLE)
        assert row is not None and row.outcome == "failed"
    assert DbLockManager(engine, sc.clock).acquire("reconcile", 600) is not None


def _order_answer(engine: Engine, answer: SubmitAnswer) -> tuple[Scenario, CycleResult]:
    sc = _wants_order(engine)
    sc.gateway.answer = lambda order: answer
    result = sc.service().run_cycle(CYCLE)
    assert len(sc.gateway.submissions) == 1
    order = sc.gateway.submissions[0]
    assert (order.symbol, order.side, order.size) == (BTC, "buy", 0.001)  # never towards flat
    return sc, result


def test_F25_gateway_unreachable(engine: Engine) -> None:
    sc, result = _order_answer(engine, SubmitAnswer("unreachable"))
    assert _outcomes(result)[BTC] == ("order_not_sent", None)
    _alerted(sc, "gateway_unreachable", "critical")


@pytest.mark.parametrize(
    "answer", [SubmitAnswer("timeout"), SubmitAnswer("response", 202, {"status": "SENT_UNKNOWN"})]
)
def test_F26_gateway_timeout_or_202(engine: Engine, answer: SubmitAnswer) -> None:
    sc, result = _order_answer(engine, answer)
    assert _outcomes(result)[BTC] == ("order_unknown", None)
    _alerted(sc, "gateway_timeout", "warning")
    with UnitOfWork(engine, read_only=True) as uow:
        [btc] = [r for r in uow.reconciliation.log_for_cycle(CYCLE) if r.symbol == BTC]
        assert (
            btc.outcome == "order_unknown"
            and btc.client_order_id == sc.gateway.submissions[0].client_order_id
        )


@pytest.mark.parametrize(
    ("code", "error"),
    [(401, "unauthorized"), (403, "mainnet_orders_disabled"), (409, "client_order_id_conflict"),
     (413, "payload_too_large"), (415, "unsupported_media_type"), (422, "validation_error")],
)  # fmt: skip
def test_F27_gateway_rejects_request(engine: Engine, code: int, error: str) -> None:
    sc, result = _order_answer(engine, SubmitAnswer("response", code, {"error": error, "message": "x"}))
    assert _outcomes(result)[BTC] == ("order_not_sent", None)
    _alerted(sc, "gateway_rejected_request", "critical")


@pytest.mark.parametrize(("code", "error"), [(503, "price_unavailable"), (409, "price_deviation")])
def test_F28_gateway_not_sent(engine: Engine, code: int, error: str) -> None:
    sc, result = _order_answer(engine, SubmitAnswer("response", code, {"error": error, "message": "x"}))
    assert _outcomes(result)[BTC] == ("order_not_sent", None)
    _alerted(sc, "order_not_sent", "warning")


def test_F29_exchange_rejects_critical_after_three_cycles(engine: Engine) -> None:
    sc = _wants_order(engine)
    sc.gateway.answer = lambda order: SubmitAnswer(
        "response", 201, {"status": "REJECTED", "error": {"code": "post_only_would_cross", "message": "x"}}
    )
    svc = sc.service()
    severities = []
    for i in range(3):
        result = svc.run_cycle(f"manual:{1767268800000 + i}")
        assert _outcomes(result)[BTC] == ("order_rejected", None)
        severities.append([sev for reason, sev, _ in result.alerts if reason == "order_rejected"])
        sc.clock.advance(10)
    assert severities == [["warning"], ["warning"], ["critical"]]
    assert sc.alert_count("order_rejected") == 3


def test_F30_expired_unknown_replay_is_not_sent_and_rederived(engine: Engine) -> None:
    """The EXPIRED_UNKNOWN alert (order_status_unknown) is the gateway resolver's; the engine records the
    replayed closed order as not sent and places nothing else."""
    sc, result = _order_answer(
        engine, SubmitAnswer("response", 200, {"status": "EXPIRED_UNKNOWN", "replayed": True})
    )
    assert _outcomes(result)[BTC] == ("order_not_sent", None)
    assert result.alerts == [] and alert_reasons(sc.engine) == []


def test_F37_cache_unavailable(engine: Engine) -> None:
    locks = RedisLockManager(make_redis_client("redis://127.0.0.1:1/15"))
    sc = build_scenario(engine, locks=locks)
    result = sc.service().run_cycle(CYCLE)
    assert result.outcome == "held"
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []
    _alerted(sc, "cache_unavailable", "critical")


def test_F38_database_unavailable(engine: Engine) -> None:
    sc = build_scenario(engine)
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    metrics = Metrics.create(CollectorRegistry())
    alerts = AlertSink(sc.clock, metrics, audit=db_audit_writer(dead, "test"))  # its audit write fails too
    svc = ReconcileService(dead, sc.locks, sc.clock, sc.gateway, alerts, sc.settings, observers=sc.observers)
    result = svc.run_cycle(CYCLE)
    assert result.outcome == "held"
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []
    assert (
        counter(
            metrics, "ttt_alerts_total", component="reconcile", reason="db_unavailable", severity="critical"
        )
        == 1
    )
    dead.dispose()


def test_F39_mainnet_orders_disabled(engine: Engine) -> None:
    sc, result = _order_answer(
        engine, SubmitAnswer("response", 403, {"error": "mainnet_orders_disabled", "message": "disabled"})
    )
    assert _outcomes(result)[BTC] == ("order_not_sent", None)
    _alerted(sc, "gateway_rejected_request", "critical")


def test_F40_invalid_configuration(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ttt.config import load_settings
    from ttt.errors import ConfigError, ExitCode

    cfg = tmp_path / "config.yml"
    cfg.write_text("portfolio:\n  quorum:\n    k: 4\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, None, environ={}, process="worker")
    assert info.value.exit_code == ExitCode.USAGE
    assert "portfolio.quorum.k" in str(info.value)
    sc = build_scenario(engine)
    with pytest.raises(ValueError, match=r"portfolio\.quorum\.k"):  # k = 2 with the local source only
        ReconcileService(sc.engine, sc.locks, sc.clock, sc.gateway, sc.alerts, sc.settings, observers=[])
