"""An in-process implementation of our `OrderGateway` protocol over the paper exchange, for the cycle tests.

It keeps the gateway's essential contract (portfolio.md §11.3, §12): one record per client order id with
write-ahead audit rows, at most one exchange submission per cloid (a repeat is a replay), cancellation of
our orders only, and fills ingested into `fills` so the fill fence sees them. The production gateway is
built elsewhere; this is deliberately small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.engine import Engine

from ttt.adapters.db.models import OrderRecord
from ttt.adapters.db.types import as_utc
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import PaperExchange
from ttt.domain.client_ids import is_ours
from ttt.domain.orders import OrderRequest
from ttt.domain.rounding import round_price, round_to_lot
from ttt.ports import Clock
from ttt.services.portfolio.ports import CancelResult, OpenOrderView, OrderSubmission, SubmitAnswer

_MAP = {"resting": "RESTING", "filled": "FILLED", "error": "REJECTED"}


class PaperGateway:
    def __init__(self, paper: PaperExchange, engine: Engine, clock: Clock, exchange: str = "paper") -> None:
        self.paper = paper
        self.engine = engine
        self.clock = clock
        self.exchange = exchange
        self.exchange_submissions: list[str] = []

    def _record(self, row: OrderRecord, replayed: bool) -> dict[str, object]:
        return {
            "client_order_id": row.client_order_id,
            "symbol": row.symbol,
            "side": row.side,
            "size": float(row.size),
            "status": row.status,
            "exchange_order_id": row.exchange_order_id,
            "replayed": replayed,
        }

    def submit(self, order: OrderSubmission) -> SubmitAnswer:
        now = self.clock.now()
        product = self.paper.products[order.symbol]
        size = round_to_lot(order.size, product.lot_size)
        fingerprint = hashlib.sha256(
            json.dumps([order.cycle_id, order.symbol, order.side, str(size)]).encode()
        ).hexdigest()
        with UnitOfWork(self.engine) as uow:
            existing = uow.orders.by_client_order_id(order.client_order_id)
            if existing is not None:
                return SubmitAnswer("response", 200, self._record(existing, True))
            venue = uow.venues.exchange_by_name(self.exchange)
            assert venue is not None
            db_product = uow.venues.product(venue.id, order.symbol)
            assert db_product is not None
            p_g = self.paper.price(order.symbol)
            assert p_g is not None
            limit = round_price(p_g, order.side, product.sz_decimals)
            uow.orders.add(
                OrderRecord(
                    client_order_id=order.client_order_id,
                    cycle_id=order.cycle_id,
                    product_id=db_product.id,
                    symbol=order.symbol,
                    side=order.side,
                    size=size,
                    requested_size=Decimal(repr(order.size)),
                    style="post_only",
                    time_in_force="Alo",
                    limit_price=limit,
                    reference_price=p_g,
                    decision_price=Decimal(repr(order.decision_price)),
                    reduce_only=False,
                    status="SENT_UNKNOWN",
                    filled_size=Decimal(0),
                    fees_usd=Decimal(0),
                    fingerprint=fingerprint,
                    attempts=1,
                    created_at=as_utc(now),
                    updated_at=as_utc(now),
                    submitted_at=as_utc(now),
                )
            )
            for kind in ("order.request", "order.submit"):
                uow.audit.append(
                    ts=now,
                    kind=kind,
                    actor="paper-gateway",
                    message=f"{kind} {order.client_order_id}",
                    payload={"body": order.body(), "limit_price": str(limit)},
                    cycle_id=order.cycle_id,
                    symbol=order.symbol,
                    client_order_id=order.client_order_id,
                )
        # write-ahead rows are committed; now the exchange, once
        self.exchange_submissions.append(order.client_order_id)
        placed = self.paper.place_order(
            OrderRequest(order.symbol, order.side, size, limit, "Alo", False, order.client_order_id)
        )
        status = _MAP[placed.status]
        with UnitOfWork(self.engine) as uow:
            fields: dict[str, object] = {"status": status, "exchange_order_id": str(placed.oid)}
            if placed.status == "error":
                fields.update(error_message=placed.error_text, closed_at=as_utc(now))
            uow.orders.update(order.client_order_id, now, **fields)
            uow.audit.append(
                ts=now,
                kind="order.result",
                actor="paper-gateway",
                message=f"{order.client_order_id} {status}",
                payload={"status": placed.status, "error": placed.error_text},
                client_order_id=order.client_order_id,
            )
            row = uow.orders.by_client_order_id(order.client_order_id)
            assert row is not None
            return SubmitAnswer("response", 201, self._record(row, False))

    def cancel_open(self, symbols: Sequence[str]) -> list[CancelResult]:
        now = self.clock.now()
        results = []
        for symbol in symbols:
            open_orders = self.paper.fetch_open_orders(symbol)
            ours = [o.cloid for o in open_orders if o.cloid and is_ours(o.cloid)]
            foreign = len(open_orders) - len(ours)
            cancelled: list[str] = []
            if ours:
                answers = self.paper.cancel(symbol, cloids=[c for c in ours if c])
                cancelled = [c for c, a in answers.items() if a == "success"]
                with UnitOfWork(self.engine) as uow:
                    for cloid in cancelled:
                        uow.orders.update(cloid, now, status="CANCELED", closed_at=as_utc(now))
            results.append(CancelResult(symbol, cancelled, (), foreign))
        return results

    def open_orders(self, symbol: str | None = None) -> list[OpenOrderView]:
        return [
            OpenOrderView(o.symbol, o.oid, o.cloid, o.side, float(o.price), float(o.size), is_ours(o.cloid))
            for o in self.paper.fetch_open_orders(symbol)
        ]

    def sync_fills(self) -> int:
        """The gateway's fills loop: new fills into `fills`, their orders to FILLED with closed_at."""
        fills = self.paper.fetch_fills(0)
        with UnitOfWork(self.engine) as uow:
            venue = uow.venues.exchange_by_name(self.exchange)
            assert venue is not None
            rows = [
                {
                    "exchange_id": venue.id,
                    "trade_id": str(f.tid),
                    "client_order_id": f.cloid,
                    "exchange_order_id": str(f.oid),
                    "symbol": f.symbol,
                    "side": f.side,
                    "price": f.price,
                    "size": f.size,
                    "fee": f.fee,
                    "fee_token": f.fee_token,
                    "liquidity": f.liquidity,
                    "closed_pnl": f.closed_pnl,
                    "exchange_time": as_utc(f.ts_ms / 1000),
                    "ingested_at": as_utc(self.clock.now()),
                }
                for f in fills
            ]
            new = uow.fills.insert_new(rows)
            for f in fills:
                if f.cloid and str(f.tid) in new:
                    uow.orders.update(
                        f.cloid,
                        self.clock.now(),
                        status="FILLED",
                        filled_size=f.size,
                        avg_fill_price=f.price,
                        closed_at=as_utc(f.ts_ms / 1000),
                    )
            return len(new)
