"""The portfolio commands of `3t` (services.md §12), on a test Typer app with the global options."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from tests.reconcile.rc_support import (
    BTC,
    WALLET,
    Scenario,
    add_snapshot,
    audit_rows,
    build_scenario,
)
from ttt.adapters.db.locks import DbLockManager
from ttt.adapters.db.uow import UnitOfWork
from ttt.cli import _global_options
from ttt.cli.portfolio_cmd import PortfolioWiring, register, set_wiring
from ttt.errors import ExitCode, PreconditionError

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(_global_options)
    register(app)
    return app


@pytest.fixture
def cli(engine: Engine, tmp_path: Path) -> Iterator[tuple[Scenario, list[str]]]:
    sc = build_scenario(engine, btc_dirs=(1,) * 8)  # BTC wants +0.001
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"""
database:
  url: "{engine.url.render_as_string(hide_password=False)}"
universe:
  symbols: ["BTC/USDC:USDC", "ETH/USDC:USDC"]
portfolio:
  risk_pos_percentage: 0.01
exchange:
  paper:
    wallet: "{WALLET}"
"""
    )
    set_wiring(
        lambda settings, eng: PortfolioWiring(
            gateway=sc.gateway, observers=list(sc.observers), cache=sc.cache, locks=None, clock=sc.clock
        )
    )
    yield sc, ["--config", str(cfg)]
    set_wiring(None)


def test_reconcile_dry_run_writes_nothing(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    result = runner.invoke(_app(), [*base, "--json", "reconcile", "--dry-run"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    btc = {s["symbol"]: s for s in data["symbols"]}[BTC]
    assert (
        btc["outcome"] == "would_order"
        and btc["order"]["side"] == "buy"
        and btc["order"]["size"] == "0.00100"
    )
    assert sc.gateway.submissions == [] and sc.gateway.cancel_calls == []
    with UnitOfWork(sc.engine, read_only=True) as uow:
        assert uow.reconciliation.recent_cycles() == []
    assert audit_rows(sc.engine) == []


def test_reconcile_with_symbol_runs_in_process(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    result = runner.invoke(_app(), [*base, "reconcile", "--symbol", BTC])
    assert result.exit_code == 0, result.output
    assert "order_sent" in result.output
    assert [(o.symbol, o.side) for o in sc.gateway.submissions] == [(BTC, "buy")]
    assert sc.gateway.cancel_calls == [[BTC]]


def test_reconcile_is_requested_from_a_running_instance(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    assert DbLockManager(sc.engine, sc.clock).acquire("instance:embedded", 30) is not None
    result = runner.invoke(_app(), [*base, "--json", "reconcile"])
    assert result.exit_code == 0, result.output
    cycle_id = json.loads(result.output)["cycle_id"]
    with UnitOfWork(sc.engine, read_only=True) as uow:
        row = uow.reconciliation.cycle(cycle_id)
        assert row is not None and row.outcome == "requested" and row.trigger == "manual"
    assert sc.gateway.submissions == []


def test_reconcile_without_gateway_is_a_precondition_error(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    set_wiring(
        lambda settings, eng: PortfolioWiring(gateway=None, observers=list(sc.observers), clock=sc.clock)
    )
    result = runner.invoke(_app(), [*base, "reconcile"])
    assert isinstance(result.exception, PreconditionError)
    assert result.exception.exit_code == ExitCode.PRECONDITION
    assert sc.gateway.submissions == []


def test_positions_shows_sources(cli: tuple[Scenario, list[str]]) -> None:
    _, base = cli
    result = runner.invoke(_app(), [*base, "positions"])
    assert result.exit_code == 0, result.output
    assert "BTC/USDC:USDC: desired 0.002" in result.output
    assert "local: 0.001" in result.output and "O2: 0.001" in result.output


def test_audit_tail_and_filters(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    sc.service().run_cycle("sched:20260101T120000Z")
    result = runner.invoke(_app(), [*base, "audit", "tail", "--kind", "cycle.end"])
    assert result.exit_code == 0, result.output
    assert "cycle.end" in result.output and "reconcile.decision" not in result.output
    result = runner.invoke(
        _app(), [*base, "--json", "audit", "tail", "--cycle", "sched:20260101T120000Z", "-n", "2"]
    )
    rows = json.loads(result.output)
    assert [r["kind"] for r in rows] == ["reconcile.decision", "cycle.end"]


def test_epochs_and_take_profit(cli: tuple[Scenario, list[str]]) -> None:
    sc, base = cli
    result = runner.invoke(_app(), [*base, "epochs", "list"])
    assert result.exit_code == 0 and "no epochs" in result.output
    result = runner.invoke(_app(), [*base, "take-profit", "reset-baseline"])
    assert isinstance(result.exception, PreconditionError)  # the snapshots are not fresh on the wall clock
    wall = time.time()
    for i, value in enumerate(["100", "110", "90", "105", "95"]):
        add_snapshot(sc.engine, wall - 50 + i, {}, account_value=value)
    result = runner.invoke(_app(), [*base, "take-profit", "reset-baseline"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(_app(), [*base, "--json", "take-profit", "status"])
    assert json.loads(result.output)["baseline"] == 100.0
    result = runner.invoke(_app(), [*base, "--json", "epochs", "list"])
    [epoch] = json.loads(result.output)
    assert epoch["kind"] == "baseline_reset" and epoch["value"] == "100"
