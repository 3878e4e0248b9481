"""`3t orders list|show|cancel-ours` (services.md §12, portfolio.md §11.3, §11.8, §12).

Reads go straight to the gateway's tables. `cancel-ours` mutates the venue, so with a running `3t run` it
only leaves a control request for it (services.md §1.2): two processes driving one paper engine would
each allocate oids from their own view of the store. Without one, it builds the gateway here over the
venue the configuration names; the paper venue is the database-backed engine `3t run` itself uses.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine

from ttt.cli.context import CliState
from ttt.cli.portfolio_cmd import _engine, _instance_running, _settings, _state, _WallClock
from ttt.config.settings import Settings
from ttt.errors import ExitCode, TTTError
from ttt.ports import Clock

CONTROL_CANCEL_OURS = "orders.cancel_ours"

orders_app = typer.Typer(name="orders", help="Gateway order records; cancel our open orders.")


class UsageProblem(TTTError):
    """A bad argument (unknown status, malformed id, symbol outside the universe): exit 2."""

    exit_code = ExitCode.USAGE


class CancelFailed(TTTError):
    """The venue could not be used for cancelling: exit 1 (the orders may still be open)."""


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _fill_json(f: Any) -> dict[str, Any]:
    return {
        "trade_id": f.trade_id,
        "exchange_order_id": f.exchange_order_id,
        "symbol": f.symbol,
        "side": f.side,
        "price": str(f.price),
        "size": str(f.size),
        "fee": str(f.fee),
        "fee_token": f.fee_token,
        "liquidity": f.liquidity,
        "closed_pnl": None if f.closed_pnl is None else str(f.closed_pnl),
        "exchange_time": _iso(f.exchange_time),
    }


def _audit_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "ts": _iso(r.ts),
        "kind": r.kind,
        "severity": r.severity,
        "actor": r.actor,
        "message": r.message,
        "payload": r.payload,
    }


def _order_line(r: dict[str, Any]) -> str:
    filled = f" filled {r['filled_size']:g}" if r["filled_size"] else ""
    price = f" @ {r['limit_price']:g}" if r["limit_price"] is not None else ""
    return (
        f"{r['created_at']}  {r['client_order_id']}  {r['status']:<15} {r['symbol']} {r['side']} "
        f"{r['size']:g}{price}{filled}  ({r['cycle_id']})"
    )


@orders_app.command("list")
def orders_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only records with this status.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol.")] = None,
    n: Annotated[int, typer.Option("-n", "--limit", min=1, max=500, help="Number of records.")] = 50,
) -> None:
    """List gateway order records, newest first."""
    from ttt.adapters.db.repositories.gateway_extra import GatewayOrderQueries
    from ttt.adapters.db.uow import UnitOfWork
    from ttt.services.gateway.model import STATUSES, render_record

    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            raise UsageProblem(f"--status {status}: must be one of {', '.join(STATUSES)}")
    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        rows, _ = GatewayOrderQueries(uow.session).page(symbol=symbol, status=status, limit=n)
        records = [render_record(r) for r in rows]
    _state(ctx).emit(records, lambda: "\n".join(map(_order_line, records)) if records else "no orders")


@orders_app.command("show")
def orders_show(
    ctx: typer.Context, cloid: Annotated[str, typer.Argument(help="The client_order_id (0x + 32 hex).")]
) -> None:
    """Show one order record with its audit trail and fills."""
    from ttt.adapters.db.uow import UnitOfWork
    from ttt.domain.client_ids import is_valid_client_order_id
    from ttt.services.gateway.model import render_record

    cloid = cloid.strip().lower()
    if not is_valid_client_order_id(cloid):
        raise UsageProblem(f"client order id {cloid!r}: must be 0x followed by 32 hex characters")
    settings = _settings(ctx)
    with _engine(settings) as engine, UnitOfWork(engine, read_only=True) as uow:
        row = uow.orders.by_client_order_id(cloid)
        if row is None:
            raise UsageProblem(f"no order with client_order_id {cloid}")
        data: dict[str, Any] = {
            "record": render_record(row),
            "audit": [_audit_json(a) for a in uow.audit.tail(10_000, client_order_id=cloid)],
            "fills": [_fill_json(f) for f in uow.fills.for_client_order_id(cloid)],
        }

    def render() -> str:
        rec = data["record"]
        lines = [f"{k}: {v}" for k, v in rec.items() if k != "replayed"]
        lines.append(f"audit ({len(data['audit'])}):")
        lines += [f"  {a['ts']} {a['severity']:<8} {a['kind']:<22} {a['message']}" for a in data["audit"]]
        lines.append(f"fills ({len(data['fills'])}):")
        lines += [
            f"  {f['exchange_time']} {f['trade_id']} {f['side']} {f['size']} @ {f['price']} "
            f"fee {f['fee']} {f['fee_token']} {f['liquidity']}"
            for f in data["fills"]
        ]
        return "\n".join(lines)

    _state(ctx).emit(data, render)


def _in_process_gateway(settings: Settings, engine: Engine, clock: Clock) -> Any:
    """The gateway service over the configured venue. For paper, the engine reads and writes the same
    database tables as `3t run` (SqlPaperStore), so its open orders are the ones the runtime left."""
    from ttt.adapters.cache.memory import MemoryCache
    from ttt.adapters.db.locks import DbLockManager
    from ttt.services.gateway.bootstrap import build_gateway

    cfg = settings.config
    exchange: Any = None
    if cfg.exchange.kind == "paper":
        from ttt.adapters.exchange.paper import PaperExchange
        from ttt.adapters.exchange.paper_sql import AtomicPaperExchange, SqlPaperStore
        from ttt.services.gateway.bootstrap import paper_config_from_settings
        from ttt.services.gateway.support import SerializedExchange

        store = SqlPaperStore(engine, clock)
        paper = PaperExchange(paper_config_from_settings(settings), clock, store=store)
        exchange = SerializedExchange(AtomicPaperExchange(paper, store))
    bundle = build_gateway(
        settings,
        engine=engine,
        cache=MemoryCache(cfg.cache.prefix),
        locks=DbLockManager(engine, clock),
        clock=clock,
        exchange=exchange,
    )
    return bundle.service


def _render_cancel(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        line = (
            f"{r['symbol']}: cancelled {len(r['cancelled'])}, already closed {len(r['already_closed'])}, "
            f"foreign open {r['foreign_open']} (left untouched)"
        )
        if r["error"]:
            line += f"  ERROR: {r['error']}"
        lines.append(line)
        lines += [f"    cancelled {c}" for c in r["cancelled"]]
        lines += [f"    already closed {c}" for c in r["already_closed"]]
    return "\n".join(lines) if lines else "(no symbols)"


@orders_app.command("cancel-ours")
def orders_cancel_ours(
    ctx: typer.Context,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this universe symbol.")] = None,
) -> None:
    """Cancel our open orders (client-id prefix match); foreign orders are never touched."""
    from ttt.adapters.db.uow import UnitOfWork
    from ttt.services.gateway.model import GatewayError

    settings = _settings(ctx)
    universe = list(settings.config.universe.symbols)
    if symbol is not None and symbol not in universe:
        raise UsageProblem(f"--symbol {symbol} is not in universe.symbols ({', '.join(universe)})")
    symbols = [symbol] if symbol is not None else universe
    state: CliState = _state(ctx)
    clock = _WallClock()
    with _engine(settings) as engine:
        if _instance_running(engine, clock):
            with UnitOfWork(engine) as uow:
                request_id = uow.control.add(CONTROL_CANCEL_OURS, {"symbols": symbols}, clock.now())
            state.emit(
                {"requested": True, "request_id": request_id, "symbols": symbols},
                lambda: (
                    f"cancel of our open orders on {', '.join(symbols)} requested from the running "
                    f"`3t run` (request #{request_id})"
                ),
            )
            return
        service = _in_process_gateway(settings, engine, clock)
        try:
            answer = service.cancel_open(symbols, "ours")
        except GatewayError as exc:
            raise CancelFailed(f"cancel-ours failed: {exc.message}") from None
        results: list[dict[str, Any]] = answer.body["results"]
    state.emit({"requested": False, "results": results}, lambda: _render_cancel(results))
    if any(r["error"] for r in results):
        raise typer.Exit(int(ExitCode.INTERNAL))


__all__ = ["CONTROL_CANCEL_OURS", "orders_app"]
