"""`3t runs list|show|exit` (services.md §9, §12; providence.md §3.4, §8.2).

`exit` only sets the flag: Providence ends the run at its shard's next tick with reason `exit_flag`, in
whichever process steps that shard, so no hand-off to a running `3t run` is needed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ttt.adapters.db.repositories.runs import RunFilter
from ttt.cli.orders_cmd import UsageProblem
from ttt.cli.portfolio_cmd import _engine, _settings, _state, _WallClock
from ttt.errors import PreconditionError

runs_app = typer.Typer(name="runs", help="Providence runs: list, show, and flag one to exit.")

_REPO_STATE: dict[str, RunFilter] = {
    "active": "active",
    "ended": "ended",
    "flagged": "flagged",
    "heightened": "heighted",
}


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _state_of(run: Any) -> str:
    """One label per row, most final first; the list filters are the §9 ones and may overlap."""
    if run.end_time is not None:
        return "ended"
    if run.exit_run:
        return "flagged"
    return "active"


def _row_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "symbol": run.symbol,
        "state": _state_of(run),
        "shard": run.shard,
        "start_time": _iso(run.start_time),
        "end_time": _iso(run.end_time),
        "end_reason": run.end_reason,
        "position_direction": run.position_direction,
        "live_pnl": run.live_pnl,
        "exit_run": bool(run.exit_run),
        "height": run.height,
        "update_time": _iso(run.update_time),
    }


def _state_summary(raw: str | None) -> dict[str, Any]:
    """VOMS metrics and counters of the stored state, never the raw arrays; an unreadable state (an
    `invalid_state` end keeps the raw text) is reported, not raised."""
    from ttt.providence.reference import voms_metrics

    try:
        state = json.loads(raw) if raw else None
        if not isinstance(state, dict):
            raise ValueError("run_state is not a JSON object")
        voms = voms_metrics(state.get("voms_state"))
    except (ValueError, TypeError, KeyError) as exc:
        return {"readable": False, "error": str(exc)}
    trades = (state.get("voms_state") or {}).get("trades") or []
    return {
        "readable": True,
        "iteration_count": state.get("iteration_count"),
        "position_direction": state.get("position_direction"),
        "trades": len(trades),
        "voms": voms,
    }


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only runs of this symbol.")] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="active | ended | flagged (exit_run, not ended) | heightened."),
    ] = None,
    n: Annotated[int, typer.Option("-n", "--limit", min=1, max=10_000, help="Number of runs.")] = 50,
) -> None:
    """List runs, newest first."""
    from ttt.adapters.db.uow import UnitOfWork

    if state is not None and state not in _REPO_STATE:
        raise UsageProblem(f"--state {state}: must be one of {', '.join(_REPO_STATE)}")
    wanted: RunFilter = _REPO_STATE[state] if state is not None else "all"
    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        rows = [_row_json(r) for r in uow.runs.list_runs(symbol, wanted, limit=n)]

    def render() -> str:
        if not rows:
            return "no runs"
        return "\n".join(
            f"{r['id']:>8} {r['symbol']:<16} {r['state']:<8} dir {r['position_direction']:>+4} "
            f"pnl {r['live_pnl'] if r['live_pnl'] is not None else '-'}  "
            f"height {r['height'] if r['height'] is not None else '-'}  started {r['start_time']}"
            + (f"  ended {r['end_time']} ({r['end_reason']})" if r["end_time"] else "")
            for r in rows
        )

    _state(ctx).emit(rows, render)


def _run_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise UsageProblem(f"run id {value!r}: must be a positive integer")
    return int(value)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show one run: the row, its parameters and a summary of its VOMS state."""
    from ttt.adapters.db.uow import UnitOfWork

    rid = _run_id(run_id)
    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        run = uow.runs.get(rid)
        if run is None:
            raise UsageProblem(f"no run with id {rid}")
        data = _row_json(run) | {
            "seed": run.seed,
            "start_balance": run.start_balance,
            "end_balance": run.end_balance,
            "max_duration": run.max_duration,
            "iteration_count": run.iteration_count,
            "host": run.host,
            "apex_file": run.apex_file,
            "apex_hash": run.apex_hash,
            "apex_rank": run.apex_rank,
            "ann_params": run.ann_params,
            "state_summary": _state_summary(run.run_state),
        }

    def render() -> str:
        lines = [f"{k}: {v}" for k, v in data.items() if k not in ("ann_params", "state_summary")]
        lines.append("ann_params:")
        lines += [f"  {k}: {v}" for k, v in (data["ann_params"] or {}).items()]
        summary = data["state_summary"]
        if not summary["readable"]:
            lines.append(f"state: unreadable ({summary['error']})")
        else:
            lines.append(
                f"state: iteration_count {summary['iteration_count']}, "
                f"position_direction {summary['position_direction']}, trades {summary['trades']}"
            )
            voms = summary["voms"]
            lines.append("voms: no trades" if voms is None else "voms:")
            lines += [f"  {k}: {v}" for k, v in (voms or {}).items()]
        return "\n".join(lines)

    _state(ctx).emit(data, render)


@runs_app.command("exit")
def runs_exit(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Set exit_run on one run; Providence ends it at its shard's next tick (reason exit_flag)."""
    from ttt.adapters.db.uow import UnitOfWork
    from ttt.services.portfolio.bootstrap import actor

    rid = _run_id(run_id)
    settings = _settings(ctx)
    clock = _WallClock()
    with _engine(settings) as engine, UnitOfWork(engine) as uow:
        run = uow.runs.get(rid)
        if run is None:
            raise UsageProblem(f"no run with id {rid}")
        if run.end_time is not None:
            raise PreconditionError(
                f"run {rid} already ended at {run.end_time.isoformat()} ({run.end_reason}); nothing to do"
            )
        already = bool(run.exit_run)
        if not already:
            now = clock.now()
            if not uow.runs.flag_exit(rid, now):
                raise PreconditionError(f"run {rid} ended or was flagged meanwhile; nothing was changed")
            uow.audit.append(
                ts=now,
                kind="run.exit",
                actor=actor(),
                message=f"run {rid} ({run.symbol}) flagged to exit by operator",
                payload={"run_id": rid, "symbol": run.symbol, "shard": run.shard},
                symbol=run.symbol,
            )
        data = {"id": rid, "symbol": run.symbol, "exit_run": True, "already_flagged": already}
    _state(ctx).emit(
        data,
        lambda: (
            f"run {rid} was already flagged to exit"
            if already
            else f"run {rid} flagged: it ends at its shard's next tick (reason exit_flag)"
        ),
    )


__all__ = ["runs_app"]
