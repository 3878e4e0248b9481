"""`3t runs list|show|exit` through `ttt.cli.main` on SQLite with rows written by the run repository."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli_ops.conftest import Ops
from ttt.adapters.db.uow import UnitOfWork
from ttt.cli import main
from ttt.ports import NewRun, RunEnd

BTC = "BTC/USDC:USDC"
ETH = "ETH/USDC:USDC"
T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z
PARAMS = {"leverage": 10, "stop_loss": 0.02, "max_duration": 3600}
# One buy of 1 unit at 100, marked at 110, B0 10 000, leverage 10, fee 0.0004 (providence.md §15.3):
# fees = |100·1|·0.0004·2 = 0.08; uPnL = 1·110 − 100 − 0.08 = 9.92; balance 10 009.92; margin 100/10 = 10.
VOMS = {
    "starting_balance": 10_000.0,
    "leverage": 10.0,
    "fee_rate": 0.0004,
    "current_price": 110.0,
    "trades": [[100.0, 1.0]],
}


def _state(voms: Any) -> dict[str, Any]:
    return {"iteration_count": 7, "position_direction": 1, "voms_state": voms}


def _insert(ops: Ops, symbol: str, voms: Any = None, *, t: float = T0) -> int:
    run = NewRun(symbol, 0, 42, t, 10_000.0, 3600, "host-a", PARAMS, _state(voms))
    with UnitOfWork(ops.engine) as uow:
        (run_id,) = uow.runs.insert_many([run])
    return run_id


@pytest.fixture
def runs(ops: Ops) -> dict[str, int]:
    """active (BTC, with a VOMS book), ended (BTC), flagged (ETH), heightened+flagged (ETH)."""
    ids = {
        "active": _insert(ops, BTC, VOMS),
        "ended": _insert(ops, BTC, t=T0 + 1),
        "flagged": _insert(ops, ETH, t=T0 + 2),
        "heightened": _insert(ops, ETH, t=T0 + 3),
    }
    with UnitOfWork(ops.engine) as uow:
        uow.runs.record_ends_many(
            [RunEnd(ids["ended"], T0 + 60, "max_duration", 10_000.0, 0.0, json.dumps(_state(None)), 0, 9)]
        )
        assert uow.runs.flag_exit(ids["flagged"], T0 + 60)
    with UnitOfWork(ops.engine) as uow:  # take-profit's write (portfolio.md §14.4): height with exit_run
        uow.session.execute(
            sa.text("UPDATE runs SET height = 1, exit_run = :t WHERE id = :id"),
            {"t": True, "id": ids["heightened"]},
        )
    return ids


def _json(capsys: pytest.CaptureFixture[str], ops: Ops, *args: str) -> Any:
    code = main(ops.argv("--json", *args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _run(capsys: pytest.CaptureFixture[str], ops: Ops, *args: str) -> tuple[int, str, str]:
    code = main(ops.argv(*args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_by_state_and_symbol(
    ops: Ops, runs: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    def ids(*args: str) -> list[int]:
        return [r["id"] for r in _json(capsys, ops, "runs", "list", *args)]

    assert ids() == [runs["heightened"], runs["flagged"], runs["ended"], runs["active"]]
    assert ids("--state", "active") == [runs["active"]]
    assert ids("--state", "ended") == [runs["ended"]]
    assert ids("--state", "flagged") == [runs["heightened"], runs["flagged"]]  # exit_run set, not ended
    assert ids("--state", "heightened") == [runs["heightened"]]
    assert ids("--symbol", ETH) == [runs["heightened"], runs["flagged"]]
    assert ids("--symbol", BTC, "--state", "active") == [runs["active"]]
    assert ids("-n", "1") == [runs["heightened"]]
    rows = {r["id"]: r for r in _json(capsys, ops, "runs", "list")}
    ended = rows[runs["ended"]]
    assert ended["state"] == "ended" and ended["end_reason"] == "max_duration"
    assert ended["end_time"].startswith("2026-01-01T12:01:00")
    assert rows[runs["flagged"]]["state"] == "flagged" and rows[runs["flagged"]]["exit_run"] is True
    assert rows[runs["heightened"]]["height"] == 1

    code, out, _ = _run(capsys, ops, "runs", "list", "--state", "ended")
    assert code == 0 and "max_duration" in out and BTC in out
    code, _, err = _run(capsys, ops, "runs", "list", "--state", "sleeping")
    assert code == 2 and "--state sleeping" in err and "heightened" in err


def test_list_without_runs(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ops, "runs", "list")
    assert code == 0 and "no runs" in out


def test_show_has_parameters_and_voms_summary(
    ops: Ops, runs: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json(capsys, ops, "runs", "show", str(runs["active"]))
    assert data["id"] == runs["active"] and data["symbol"] == BTC and data["state"] == "active"
    assert data["ann_params"] == PARAMS and data["seed"] == 42 and data["start_balance"] == 10_000.0
    summary = data["state_summary"]
    assert summary["readable"] is True and summary["trades"] == 1
    assert summary["iteration_count"] == 7 and summary["position_direction"] == 1
    voms = summary["voms"]
    assert voms["position_size"] == 1.0 and voms["position_value"] == 100.0
    assert voms["unrealized_pnl"] == pytest.approx(9.92)
    assert voms["account_balance"] == pytest.approx(10_009.92)
    assert voms["margin_used"] == pytest.approx(10.0) and voms["current_price"] == 110.0
    assert "voms_state" not in json.dumps(data)  # a summary, never the raw arrays

    no_book = _json(capsys, ops, "runs", "show", str(runs["ended"]))
    assert no_book["state_summary"]["voms"] is None and no_book["end_reason"] == "max_duration"

    code, out, _ = _run(capsys, ops, "runs", "show", str(runs["active"]))
    assert code == 0 and "stop_loss: 0.02" in out and "account_balance: 10009.92" in out


def test_show_reports_an_unreadable_state(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _insert(ops, BTC)
    with UnitOfWork(ops.engine) as uow:
        uow.runs.record_ends_many(
            [RunEnd(run_id, T0 + 5, "invalid_state", None, None, "{not json", None, None)]
        )
    data = _json(capsys, ops, "runs", "show", str(run_id))
    assert data["state_summary"]["readable"] is False and data["end_reason"] == "invalid_state"


def test_show_unknown_or_malformed_id_exits_2(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, ops, "runs", "show", "999")
    assert code == 2 and "no run with id 999" in err
    code, _, err = _run(capsys, ops, "runs", "show", "abc")
    assert code == 2 and "positive integer" in err and "Traceback" not in err


def test_exit_flags_an_active_run_and_writes_an_audit_row(
    ops: Ops, runs: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    rid = runs["active"]
    data = _json(capsys, ops, "runs", "exit", str(rid))
    assert data == {"id": rid, "symbol": BTC, "exit_run": True, "already_flagged": False}
    with UnitOfWork(ops.engine, read_only=True) as uow:
        run = uow.runs.get(rid)
        assert run is not None and run.exit_run is True and run.end_time is None
        (audit,) = uow.audit.tail(10, kind="run.exit")
        assert audit.symbol == BTC and audit.payload["run_id"] == rid and audit.actor.startswith("cli@")
    assert [r["id"] for r in _json(capsys, ops, "runs", "list", "--state", "active")] == []

    # a second request is harmless: no second audit row
    again = _json(capsys, ops, "runs", "exit", str(rid))
    assert again["already_flagged"] is True
    with UnitOfWork(ops.engine, read_only=True) as uow:
        assert len(uow.audit.tail(10, kind="run.exit")) == 1


def test_exit_of_an_ended_run_exits_4_and_of_an_unknown_run_exits_2(
    ops: Ops, runs: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, ops, "runs", "exit", str(runs["ended"]))
    assert code == 4 and "already ended" in err and "max_duration" in err
    with UnitOfWork(ops.engine, read_only=True) as uow:
        run = uow.runs.get(runs["ended"])
        assert run is not None and run.exit_run is False
        assert uow.audit.tail(10, kind="run.exit") == []
    code, _, err = _run(capsys, ops, "runs", "exit", "4242")
    assert code == 2 and "no run with id 4242" in err
