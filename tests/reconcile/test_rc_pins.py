"""portfolio.md §21 service-layer pins: CY-01..06, LK-03, DS-10, DS-16/17, K-24, K-25 (queries on every
backend). DS-08, DS-15, CAP-03 and K-26 are the failure-matrix tests F13, F14, F10 and F15."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.reconcile.paper_gateway import PaperGateway
from tests.reconcile.rc_support import (
    BTC,
    ETH,
    NOW,
    WALLET,
    add_runs,
    add_snapshot,
    alert_reasons,
    build_scenario,
    make_settings,
    seed_products,
    set_price,
    static_observer,
)
from ttt.adapters.db.engine import make_engine
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.migrate import upgrade
from ttt.adapters.db.models import BalanceSnapshot, Position
from ttt.adapters.db.repositories.portfolio_extra import PortfolioQueries
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import DEFAULT_PRODUCTS, PaperConfig, PaperExchange
from ttt.domain.client_ids import client_order_id
from ttt.domain.desired import DesiredConfig
from ttt.domain.kelly import kelly_metrics
from ttt.services.portfolio.ports import OrderSubmission
from ttt.services.portfolio.reconcile import ReconcileService

SOL = "SOL/USDC:USDC"


def _cy01_scenario(engine: Engine, holding: dict[str, tuple[str, str | None]]):  # type: ignore[no-untyped-def]
    """B 100 000, C 100, μ 0.01, ρ 0.001: with Σdir 4 and probation D = 4·25/100 000 = 0.001."""
    settings = make_settings(
        universe=(BTC,),
        desired=DesiredConfig(risk_pos_percentage=0.001),
        order_style="post_only",
    )
    settings = replace(settings, plan=replace(settings.plan, max_margin_usage=0.01))
    sc = build_scenario(engine, eth_dirs=(), holding={}, settings=settings)
    add_snapshot(engine, NOW - 4, holding, account_value="100000", cross="100")
    sc.observers[:] = [static_observer("O1", NOW - 3, holding), static_observer("O2", NOW - 3, holding)]
    return sc


def test_CY_01_full_cycle_one_post(engine: Engine) -> None:
    sc = _cy01_scenario(engine, {BTC: ("0.0005", "50")})
    result = sc.service().run_cycle("sched:20260101T120000Z")
    btc = result.record(BTC)
    assert btc.outcome == "order_sent"
    assert btc.plan is not None and btc.plan.decision is not None and btc.plan.gate is not None
    assert (btc.plan.actual, btc.plan.desired, btc.plan.decision.row) == (0.0005, 0.001, 6)
    assert (
        btc.plan.gate.cross_margin == 100 and btc.plan.gate.max_margin == 1000 and not btc.plan.gate.blocked
    )
    [order] = sc.gateway.submissions
    assert (order.symbol, order.side, order.size, order.cycle_id) == (
        BTC,
        "buy",
        0.0005,
        "sched:20260101T120000Z",
    )
    assert order.client_order_id == client_order_id("sched:20260101T120000Z", BTC)


def test_CY_02_quorum_unknown_holds_with_alert(engine: Engine) -> None:
    sc = _cy01_scenario(engine, {BTC: ("0.0005", "50")})
    sc.observers[:] = [
        static_observer("O1", NOW - 3, {BTC: ("0.0007", "50")}),
        static_observer("O2", NOW - 3, {BTC: ("0.0009", "50")}),
    ]
    result = sc.service().run_cycle("sched:20260101T120000Z")
    btc = result.record(BTC)
    assert (btc.outcome, btc.hold_reason) == ("hold", "quorum_disagreement")
    assert btc.plan is not None and btc.plan.decision is None  # no decision
    assert [o.fetches for o in sc.observers] == [1, 1]  # evaluated once per cycle (L2)
    assert sc.gateway.submissions == []
    assert "quorum_disagreement" in alert_reasons(engine)


def test_CY_03_order_body(engine: Engine) -> None:
    sc = _cy01_scenario(engine, {})
    sc.service().run_cycle("sched:20260101T120000Z")
    [order] = sc.gateway.submissions
    assert order.body() == {
        "client_order_id": client_order_id("sched:20260101T120000Z", BTC),
        "cycle_id": "sched:20260101T120000Z",
        "symbol": "BTC/USDC:USDC",
        "side": "buy",
        "size": 0.001,
        "style": "post_only",
        "decision_price": 100_000.0,
    }
    assert OrderSubmission("0x", "c", BTC, "sell", 1.0, 2.0).body()["decision_price"] == 2.0


def test_CY_04_completed_id_is_a_duplicate(engine: Engine) -> None:
    sc = build_scenario(engine)
    svc = sc.service()
    assert svc.run_cycle("sched:X").outcome == "completed"
    sc.gateway.cancel_calls.clear()
    token = DbLockManager(engine, sc.clock).acquire("reconcile", 600)  # a duplicate takes no lock at all
    assert token is not None
    assert svc.run_cycle("sched:X").outcome == "duplicate"
    assert sc.gateway.cancel_calls == [] and sc.gateway.submissions == []


def test_CY_05_rerun_after_crash_replays_the_same_cloid(engine: Engine) -> None:
    sc = _cy01_scenario(engine, {})
    paper = PaperExchange(PaperConfig(wallet=WALLET), sc.clock)
    paper.on_price(BTC, 100_000)
    gateway = PaperGateway(paper, engine, sc.clock)
    svc = ReconcileService(
        engine, sc.locks, sc.clock, gateway, sc.alerts, sc.settings, observers=sc.observers, cache=sc.cache
    )
    cycle = "sched:20260101T120000Z"
    assert svc.run_cycle(cycle).record(BTC).outcome == "order_sent"
    with UnitOfWork(engine) as uow:  # the process died after sending, before finishing the cycle
        uow.reconciliation.update_cycle(cycle, outcome="running", finished_at=None)
    again = svc.run_cycle(cycle)
    cloid = client_order_id(cycle, BTC)
    assert again.outcome == "completed"
    btc = again.record(BTC)
    assert btc.client_order_id == cloid and btc.answer is not None
    assert btc.answer.status_code == 200 and (btc.answer.body or {}).get("replayed") is True
    assert gateway.exchange_submissions == [cloid]  # one exchange submission in total
    assert len([o for o in paper.store.open_orders() if o.cloid == cloid]) <= 1


def test_CY_06_LK_03_lock_lost_after_symbol_one_of_three(engine: Engine) -> None:
    seed_products(engine, NOW - 3600, [DEFAULT_PRODUCTS[SOL]])
    holding = {BTC: ("0.001", "10"), ETH: ("0.05", "10"), SOL: ("1.0", "10")}
    sc = build_scenario(
        engine, btc_dirs=(1,) * 8, holding=holding, settings=make_settings(universe=(BTC, ETH, SOL))
    )
    sc.observers[:] = [static_observer("O1", NOW - 3, holding), static_observer("O2", NOW - 3, holding)]
    add_runs(engine, SOL, (1,), 1.0, NOW - 30)
    set_price(sc.cache, SOL, 100.0, NOW - 1)
    stolen: list[str] = []

    def steal(_order: object) -> None:
        sc.clock.advance(601)
        token = DbLockManager(engine, sc.clock).acquire("reconcile", 600)
        assert token is not None
        stolen.append(token)

    sc.gateway.on_submit = steal
    result = sc.service().run_cycle("sched:20260101T120000Z")
    outcomes = [(r.symbol, r.outcome, r.hold_reason) for r in result.records]
    assert outcomes == [(BTC, "order_sent", None), (ETH, "hold", "lock_lost"), (SOL, "hold", "lock_lost")]
    assert DbLockManager(engine, sc.clock).extend("reconcile", result.lock_token or "", 600) is False
    assert DbLockManager(engine, sc.clock).release("reconcile", stolen[0]) is True  # the thief still holds it
    assert "cycle_lock_lost" in alert_reasons(engine)


def test_DS_10_no_snapshot_holds_everything(engine: Engine) -> None:
    sc = build_scenario(engine, btc_dirs=(1,) * 8)
    with engine.begin() as conn:
        conn.execute(sa.delete(Position))
        conn.execute(sa.delete(BalanceSnapshot))
    result = sc.service().run_cycle("sched:20260101T120000Z")
    assert {(r.outcome, r.hold_reason) for r in result.records} == {("hold", "balance_unavailable")}
    assert sc.gateway.submissions == []


# --- the SQL of portfolio_extra on every backend -------------------------------------------------------


@pytest.fixture
def any_engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=2)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_DS_16_DS_17_K_24_K_25_queries(any_engine: Engine) -> None:
    e = any_engine
    add_runs(e, BTC, (1,), 1.0, NOW - 599)
    add_runs(e, BTC, (1,), 1.0, NOW - 601)  # DS-16: too old for the selection
    add_runs(e, BTC, (1,), 0.2, NOW - 10)  # DS-17: live_pnl exactly θ is excluded
    add_runs(e, BTC, (0,), 5.0, NOW - 10)  # no simulated position
    add_runs(e, BTC, (-1,), 0.5, NOW - 10, exit_run=True)  # flagged
    for h, pnls in ((1, [3.0, 2.0]), (2, [-2.0, -1.0])):  # K-24: h1 sum +5, h2 sum −3
        for p in pnls:
            add_runs(e, BTC, (1,), p, NOW - 10, height=h, exit_run=True)
    with UnitOfWork(e, read_only=True) as uow:
        q = PortfolioQueries(uow.session)
        agg = q.aggregate(BTC, NOW, 0.2, 600)
        assert (agg.n, agg.sum_dir, agg.sum_pnl) == (1, 1, 1.0)
        n, newest = q.liveness(BTC)
        assert n == 4 and newest == pytest.approx(NOW - 10)
        assert sorted(q.kelly_current(BTC)) == [0.2, 1.0, 1.0, 5.0]
        assert sorted(q.kelly_historical(BTC)) == [2.0, 3.0]
        quoted = "BTC'/USDC:USDC"  # K-25: bound, never concatenated
        assert q.kelly_current(quoted) == [] and q.kelly_historical(quoted) == []
        assert kelly_metrics(q.kelly_current(quoted)) is None
        assert q.aggregate(quoted, NOW, 0.2, 600).n == 0 and q.liveness(quoted) == (0, None)
        assert q.newest_bar(quoted) is None and q.fence_inputs(quoted, NOW - 600) == ([], [])
