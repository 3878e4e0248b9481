"""The order service (portfolio.md §11, §12, §16, §17): the only code that sends orders to a venue.

Why it is shaped like this:
* Each cloid reaches the exchange at most once. A per-order lock serialises requests for one cloid, the
  unique key on `client_order_id` backs it up, and an ambiguous send is resolved by asking the exchange
  (`order_status`), never by sending again.
* Write-ahead: `order.request` and `order.submit` are committed before the exchange is called; if they
  cannot be written nothing is sent.
* No database transaction is held open across an exchange call or a lock wait (SQLite takes its write
  lock at BEGIN, see `adapters/db/engine.py`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.context import Context
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ttt.adapters.db.models import OrderRecord
from ttt.adapters.db.repositories.gateway_extra import GatewayOrderQueries
from ttt.adapters.db.types import utc_from_epoch
from ttt.adapters.db.uow import UnitOfWork
from ttt.domain.client_ids import is_ours, is_valid_client_order_id
from ttt.domain.orders import OrderRequest, OrderStatus, PlaceResult
from ttt.domain.rounding import ioc_limit_price, round_price
from ttt.errors import ExchangeUnavailable, LocalRefusal
from ttt.ports import Cache, Clock, ExchangeAdapter, LockManager
from ttt.services.gateway.model import (
    CANCELED,
    EXPIRED_UNKNOWN,
    FILLED,
    NOT_SENT,
    NOTHING_SENT,
    PARTIAL,
    RECEIVED,
    REJECTED,
    RESTING,
    SENT_UNKNOWN,
    STATUSES,
    TERMINAL,
    GatewayError,
    OrderPolicy,
    PreSendError,
    ProductInfo,
    ValidOrder,
    error_code_for,
    json_safe,
    plain,
    quantize_18,
    render_record,
    validate_create,
    validation_error,
)
from ttt.services.gateway.support import AlertSink, PriceSource, SleepFn, noop_alert
from ttt.services.products_sync import venue_from_config
from ttt.telemetry.metrics import Metrics

log = logging.getLogger("ttt.gateway")
T = TypeVar("T")

ORDER_LOCK_TTL_S = 60.0
RESOLVER_LOCK = "gateway:resolver"
RESOLVER_LOCK_TTL_S = 30.0
RESOLVER_EXTEND_S = 10.0
ORDERS_STREAM = "stream:orders"
CANCEL_MISSING = "never placed, already canceled, or filled"
_PRE_SEND = (PreSendError, ExchangeUnavailable, LocalRefusal, ConnectionRefusedError, socket.gaierror)


def is_pre_send(exc: BaseException) -> bool:
    """True only when the venue is known not to have received the request; anything else is ambiguous."""
    return isinstance(exc, _PRE_SEND)


@dataclass(frozen=True)
class GatewayConfig:
    """The keys the gateway reads (services.md §11.2 `gateway.*`, `orders.*`, `exchange.*`)."""

    policy: OrderPolicy
    exchange_name: str = "paper"
    mainnet: bool = False
    allow_mainnet_orders: bool = False
    max_price_age_s: float = 10.0
    max_price_deviation: float = 0.05
    max_order_notional_usd: float | None = None
    duplicate_wait_s: float = 5.0
    resolver_period_s: float = 10.0
    fills_period_s: float = 30.0
    unknown_resolve_schedule_s: tuple[float, ...] = (1, 2, 4, 8, 15)
    unknown_grace_s: float = 30.0
    isolated_leverage: int = 5
    vault_address: str | None = None
    orders_stream_maxlen: int = 10000
    actor: str = "gateway"

    @classmethod
    def from_settings(cls, settings: Any, *, actor: str | None = None) -> GatewayConfig:
        cfg = settings.config
        tp = cfg.take_profit
        hl = cfg.exchange.hyperliquid
        return cls(
            policy=OrderPolicy(
                universe=tuple(cfg.universe.symbols),
                prefix=cfg.orders.client_id_prefix,
                default_style=cfg.orders.style,
                ioc_slippage_bps=cfg.orders.ioc_max_slippage_bps,
                ioc_slippage_limit_bps=cfg.orders.ioc_max_slippage_bps_limit,
            ),
            exchange_name=venue_from_config(cfg.exchange).name,
            mainnet=cfg.exchange.kind == "hyperliquid" and hl.network == "mainnet",
            allow_mainnet_orders=cfg.exchange.allow_mainnet_orders,
            max_price_age_s=cfg.gateway.max_price_age_s,
            max_price_deviation=cfg.gateway.max_price_deviation,
            max_order_notional_usd=cfg.gateway.max_order_notional_usd,
            duplicate_wait_s=cfg.gateway.duplicate_wait_s,
            resolver_period_s=cfg.gateway.resolver_period_s,
            fills_period_s=cfg.gateway.fills_period_s,
            unknown_resolve_schedule_s=tuple(cfg.gateway.unknown_resolve_schedule_s),
            unknown_grace_s=cfg.gateway.unknown_grace_s,
            isolated_leverage=max(1, int(tp.reward_multiple / tp.threshold)),
            vault_address=hl.vault_address,
            orders_stream_maxlen=cfg.cache.streams.orders_maxlen,
            actor=actor or f"gateway@{socket.gethostname()}",
        )


@dataclass
class Answer:
    """An HTTP-shaped answer, shared by the HTTP app and the in-process client."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def wire_action(request: OrderRequest, product: ProductInfo) -> dict[str, Any]:
    """The Hyperliquid `order` action as it is signed, without the signature (for `order.submit`)."""
    order: dict[str, Any] = {
        "a": product.asset_id if product.asset_id is not None else product.api_coin,
        "b": request.side == "buy",
        "p": plain(request.limit_price),
        "s": plain(request.size),
        "r": request.reduce_only,
        "t": {"limit": {"tif": request.tif}},
    }
    if request.cloid is not None:
        order["c"] = request.cloid
    return {"type": "order", "orders": [order], "grouping": "na"}


def _place_result_doc(result: PlaceResult) -> dict[str, Any]:
    doc: dict[str, Any] = json_safe(asdict(result))
    return doc


def _status_doc(status: OrderStatus) -> dict[str, Any]:
    doc: dict[str, Any] = json_safe(asdict(status))
    return doc


class GatewayService:
    def __init__(
        self,
        *,
        engine: Engine,
        exchange: ExchangeAdapter,
        locks: LockManager,
        clock: Clock,
        prices: PriceSource,
        config: GatewayConfig,
        cache: Cache | None = None,
        metrics: Metrics | None = None,
        alert: AlertSink | None = None,
        sleep: SleepFn = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.exchange = exchange
        self.locks = locks
        self.clock = clock
        self.prices = prices
        self.config = config
        self.cache = cache
        self.metrics = metrics
        self.alert: AlertSink = alert if alert is not None else noop_alert
        self._sleep = sleep
        self._monotonic = monotonic
        self._tracer = trace.get_tracer("ttt.gateway")
        self._products: dict[str, ProductInfo] = {}
        self._exchange_id: int | None = None
        self._leverage_done: set[str] = set()
        self._status_queries: dict[str, int] = {}
        self._mutex = threading.Lock()

    @property
    def policy(self) -> OrderPolicy:
        return self.config.policy

    # --- plumbing ----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now()

    @contextmanager
    def _uow(self) -> Iterator[UnitOfWork]:
        """A unit of work whose database failures become 503 `db_unavailable`."""
        try:
            with UnitOfWork(self.engine) as uow:
                yield uow
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            log.error("database unavailable: %s", reason)
            raise GatewayError(503, "db_unavailable", f"database unavailable: {reason}") from None

    def _audit(
        self,
        uow: UnitOfWork,
        kind: str,
        message: str,
        payload: Mapping[str, Any],
        *,
        row: Any = None,
        symbol: str | None = None,
        severity: str = "info",
    ) -> None:
        uow.audit.append(
            ts=self._now(),
            kind=kind,
            actor=self.config.actor,
            message=message,
            payload=json_safe(payload),
            severity=severity,
            cycle_id=row.cycle_id if row is not None else None,
            symbol=row.symbol if row is not None else symbol,
            client_order_id=row.client_order_id if row is not None else None,
        )

    def _exchange_call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = self._monotonic()
        result = "ok"
        with self._tracer.start_as_current_span(f"exchange.{operation}") as span:
            span.set_attribute("exchange", self.config.exchange_name)
            try:
                return fn(*args, **kwargs)
            except BaseException:
                result = "error"
                raise
            finally:
                if self.metrics is not None:
                    name = self.config.exchange_name
                    self.metrics.exchange_request_seconds.labels(name, operation).observe(
                        max(0.0, self._monotonic() - started)
                    )
                    self.metrics.exchange_requests_total.labels(name, operation, result).inc()

    def _publish(self, row: Any) -> None:
        if self.cache is None:
            return
        try:
            self.cache.xadd(
                ORDERS_STREAM,
                {
                    "client_order_id": row.client_order_id,
                    "symbol": row.symbol,
                    "side": row.side,
                    "size": plain(row.size),
                    "status": row.status,
                    "ts": self._now(),
                },
                self.config.orders_stream_maxlen,
            )
        except Exception as exc:  # live-update channel only; nothing depends on it
            log.debug("orders stream append failed: %s", exc)

    def _count_order(self, row: Any) -> None:
        if self.metrics is not None:
            self.metrics.gateway_orders_total.labels(row.symbol, row.side, row.style, row.status).inc()

    def circuit_open(self) -> bool:
        """The venue's circuit breaker state, when it exposes one (`circuit_open` or `breaker.is_open`)."""
        try:
            probe = getattr(self.exchange, "circuit_open", None)
            if probe is None:
                breaker = getattr(self.exchange, "breaker", None)
                return bool(getattr(breaker, "is_open", False)) if breaker is not None else False
            return bool(probe() if callable(probe) else probe)
        except Exception:
            return False

    # --- products ----------------------------------------------------------------------------------

    def exchange_id(self) -> int:
        if self._exchange_id is None:
            with self._uow() as uow:
                row = uow.venues.exchange_by_name(self.config.exchange_name)
                if row is None:
                    raise GatewayError(
                        503,
                        "instrument_metadata_missing",
                        f"exchange {self.config.exchange_name!r} has no row in `exchanges`; "
                        "run `3t products sync`",
                    )
                self._exchange_id = int(row.id)
        return self._exchange_id

    def products(self, *, reload: bool = False) -> dict[str, ProductInfo]:
        if self._products and not reload:
            return self._products
        exchange_id = self.exchange_id()
        with self._uow() as uow:
            rows = uow.venues.products(exchange_id)
            loaded = {
                r.symbol: ProductInfo(
                    product_id=int(r.id),
                    symbol=r.symbol,
                    sz_decimals=int(r.sz_decimals),
                    max_leverage=int(r.max_leverage),
                    margin_mode=r.margin_mode,
                    api_coin=r.api_coin,
                    min_notional=Decimal(r.min_notional),
                    asset_id=r.asset_id,
                )
                for r in rows
            }
        self._products = loaded
        return loaded

    def _product(self, symbol: str) -> ProductInfo | None:
        try:
            products = self.products()
            if symbol not in products:
                products = self.products(reload=True)
        except GatewayError as exc:
            if exc.code == "instrument_metadata_missing":
                return None
            raise
        return products.get(symbol)

    # --- create (§11.3) ------------------------------------------------------------------------------

    def create_order(self, body: Any, *, trace_context: Context | None = None) -> Answer:
        """Validate, then create or replay one order; GatewayError for every refusal."""
        with self._tracer.start_as_current_span("gateway.POST /v1/orders", context=trace_context) as span:
            symbol = body.get("symbol") if isinstance(body, dict) else None
            product = self._product(symbol) if isinstance(symbol, str) else None
            products = {symbol: product} if product is not None and isinstance(symbol, str) else {}
            order = validate_create(body, self.policy, products)
            span.set_attribute("client_order_id", order.client_order_id)
            span.set_attribute("symbol", order.symbol)
            span.set_attribute("side", order.side)
            span.set_attribute("style", order.style)
            if product is None:
                raise GatewayError(
                    503,
                    "instrument_metadata_missing",
                    f"no product metadata for {order.symbol} on {self.config.exchange_name}; "
                    "run `3t products sync`",
                )
            answer = self._create_with_lock(order, product)
            span.set_attribute("status", str(answer.body.get("status", answer.body.get("error", ""))))
            return answer

    def _acquire_order_lock(self, cloid: str) -> str | None:
        name = f"gateway:order:{cloid}"
        deadline = self._monotonic() + self.config.duplicate_wait_s
        while True:
            try:
                token = self.locks.acquire(name, ORDER_LOCK_TTL_S)
            except Exception as exc:
                raise GatewayError(503, "lock_unavailable", f"lock service unavailable: {exc}") from None
            if token is not None or self._monotonic() >= deadline:
                return token
            self._sleep(0.05)

    def _create_with_lock(self, order: ValidOrder, product: ProductInfo) -> Answer:
        cloid = order.client_order_id
        token = self._acquire_order_lock(cloid)
        if token is None:
            return self._busy_answer(order)
        try:
            return self._create_locked(order, product)
        finally:
            try:
                self.locks.release(f"gateway:order:{cloid}", token)
            except Exception as exc:
                log.warning("releasing gateway:order:%s failed: %s (it expires by TTL)", cloid, exc)

    def _busy_answer(self, order: ValidOrder) -> Answer:
        """Another request for this cloid is in flight (§11.3 step 2)."""
        with self._uow() as uow:
            row = uow.orders.by_client_order_id(order.client_order_id)
            if row is not None and row.fingerprint != order.fingerprint():
                raise self._conflict(order.client_order_id)
            if row is not None:
                return Answer(202, render_record(row, replayed=True))
        now = utc_from_epoch(self._now())
        pending = {
            "client_order_id": order.client_order_id,
            "cycle_id": order.cycle_id,
            "symbol": order.symbol,
            "side": order.side,
            "size": float(order.size),
            "requested_size": float(order.requested_size),
            "style": order.style,
            "time_in_force": order.tif,
            "limit_price": None,
            "reference_price": None,
            "decision_price": float(order.decision_price) if order.decision_price is not None else None,
            "reduce_only": order.reduce_only,
            "status": RECEIVED,
            "exchange_order_id": None,
            "filled_size": 0.0,
            "avg_fill_price": None,
            "fees_usd": 0.0,
            "error": None,
            "created_at": now.isoformat(timespec="milliseconds"),
            "updated_at": now.isoformat(timespec="milliseconds"),
            "replayed": True,
        }
        return Answer(202, pending)

    @staticmethod
    def _conflict(cloid: str) -> GatewayError:
        return GatewayError(
            409,
            "client_order_id_conflict",
            f"client_order_id {cloid} was already used for a different request",
        )

    def _replayed(self, row: Any) -> Answer:
        if self.metrics is not None:
            self.metrics.gateway_replays_total.inc()
        return Answer(200, render_record(row, replayed=True))

    def _create_locked(self, order: ValidOrder, product: ProductInfo) -> Answer:
        cloid = order.client_order_id
        fingerprint = order.fingerprint()
        with self._uow() as uow:
            row = uow.orders.by_client_order_id(cloid)
        if row is None:
            try:
                row = self._insert(order, product, fingerprint)
            except IntegrityError:
                with self._uow() as uow:
                    row = uow.orders.by_client_order_id(cloid)
                if row is None:
                    raise GatewayError(503, "db_unavailable", "order record could not be written") from None
                if row.fingerprint != fingerprint:
                    raise self._conflict(cloid) from None
                return self._replayed(row)
        else:
            if row.fingerprint != fingerprint:
                raise self._conflict(cloid)
            if row.status == SENT_UNKNOWN:
                row = self.resolve_row(row, source="replay")
                return self._replayed(row)
            if row.status not in NOTHING_SENT:
                return self._replayed(row)
        attempts = int(row.attempts) + (1 if row.status == NOT_SENT else 0)
        p_g = self._pre_send_checks(row, order, product, attempts)
        return self._submit(row, order, product, p_g, attempts)

    def _insert(self, order: ValidOrder, product: ProductInfo, fingerprint: str) -> Any:
        now = utc_from_epoch(self._now())
        record = OrderRecord(
            client_order_id=order.client_order_id,
            cycle_id=order.cycle_id,
            product_id=product.product_id,
            symbol=order.symbol,
            side=order.side,
            size=order.size,
            requested_size=quantize_18(order.requested_size),
            style=order.style,
            time_in_force=order.tif,
            limit_price=None,
            reference_price=None,
            decision_price=quantize_18(order.decision_price) if order.decision_price is not None else None,
            reduce_only=order.reduce_only,
            status=RECEIVED,
            exchange_order_id=None,
            filled_size=Decimal(0),
            avg_fill_price=None,
            fees_usd=Decimal(0),
            error_code=None,
            error_message=None,
            fingerprint=fingerprint,
            attempts=0,
            created_at=now,
            updated_at=now,
            submitted_at=None,
            closed_at=None,
        )
        with self._uow() as uow:
            uow.orders.add(record)
            self._audit(
                uow,
                "order.request",
                f"order request {order.side} {plain(order.size)} {order.symbol}",
                {"request": order.body, "fingerprint": fingerprint},
                row=record,
            )
        self._publish(record)
        return record

    def _refuse(
        self,
        row: Any,
        status: int,
        code: str,
        message: str,
        inputs: Mapping[str, Any],
        attempts: int,
        headers: Mapping[str, str] | None = None,
    ) -> GatewayError:
        """Mark the row NOT_SENT with `order.not_sent` and return the refusal to raise (§11.3 step 4)."""
        with self._uow() as uow:
            uow.orders.update(
                row.client_order_id,
                self._now(),
                status=NOT_SENT,
                error_code=code,
                error_message=message,
                attempts=attempts,
            )
            self._audit(
                uow,
                "order.not_sent",
                f"order not sent: {code}",
                {"code": code, "message": message, **inputs},
                row=row,
                severity="warning",
            )
            stored = uow.orders.by_client_order_id(row.client_order_id)
        if stored is not None:
            self._count_order(stored)
            self._publish(stored)
        return GatewayError(status, code, message, headers=headers)

    def _pre_send_checks(self, row: Any, order: ValidOrder, product: ProductInfo, attempts: int) -> Decimal:
        cfg = self.config
        now = self._now()
        if cfg.mainnet and not cfg.allow_mainnet_orders:
            raise self._refuse(
                row,
                403,
                "mainnet_orders_disabled",
                "exchange.allow_mainnet_orders is false while the exchange is Hyperliquid mainnet",
                {},
                attempts,
            )
        latest = self.prices.latest(order.symbol)
        age = None if latest is None else now - latest[1]
        inputs: dict[str, Any] = {
            "p_g": latest[0] if latest is not None else None,
            "price_age_s": age,
            "decision_price": order.decision_price,
        }
        if latest is None or age is None or age > cfg.max_price_age_s:
            why = "no price" if latest is None else f"price is {age:.1f} s old"
            raise self._refuse(
                row,
                503,
                "price_unavailable",
                f"{why} for {order.symbol} (gateway.max_price_age_s = {cfg.max_price_age_s:g})",
                inputs,
                attempts,
                headers={"Retry-After": "5"},
            )
        p_g = latest[0]
        notional = order.size * p_g
        inputs["notional"] = notional
        if order.decision_price is not None:
            deviation = abs(p_g - order.decision_price) / order.decision_price
            if deviation > Decimal(repr(cfg.max_price_deviation)):
                raise self._refuse(
                    row,
                    409,
                    "price_deviation",
                    f"gateway price {plain(p_g)} deviates {float(deviation):.4f} from decision_price "
                    f"{plain(order.decision_price)} "
                    f"(gateway.max_price_deviation = {cfg.max_price_deviation:g})",
                    inputs,
                    attempts,
                )
        cap = cfg.max_order_notional_usd
        if cap is not None and notional > Decimal(repr(cap)):
            raise self._refuse(
                row,
                422,
                "notional_too_large",
                f"notional {float(notional):.2f} USD exceeds gateway.max_order_notional_usd = {cap:g}",
                inputs,
                attempts,
            )
        if notional < product.min_notional:
            raise self._refuse(
                row,
                422,
                "below_exchange_minimum",
                f"notional {float(notional):.4f} USD is below the exchange minimum "
                f"{plain(product.min_notional)}",
                inputs,
                attempts,
            )
        if self.circuit_open():
            raise self._refuse(
                row, 503, "exchange_unavailable", "the exchange circuit breaker is open", inputs, attempts
            )
        if product.isolated_only and product.symbol not in self._leverage_done:
            leverage = min(self.config.isolated_leverage, product.max_leverage)
            try:
                error = self._exchange_call(
                    "set_isolated_leverage", self.exchange.set_isolated_leverage, product.symbol, leverage
                )
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                raise self._refuse(
                    row,
                    503,
                    "leverage_setup_failed",
                    f"setting isolated leverage {leverage} on {product.symbol} failed: {error}",
                    {**inputs, "leverage": leverage},
                    attempts,
                )
            self._leverage_done.add(product.symbol)
        return p_g

    def _submit(
        self, row: Any, order: ValidOrder, product: ProductInfo, p_g: Decimal, attempts: int
    ) -> Answer:
        if order.style == "ioc":
            assert order.max_slippage_bps is not None
            limit = ioc_limit_price(p_g, order.side, order.max_slippage_bps, product.sz_decimals)
        else:
            limit = round_price(p_g, order.side, product.sz_decimals)
        request = OrderRequest(
            symbol=order.symbol,
            side=order.side,
            size=order.size,
            limit_price=limit,
            tif=order.tif,
            reduce_only=order.reduce_only,
            cloid=order.client_order_id,
        )
        action = wire_action(request, product)
        if self.config.vault_address:
            action_doc: dict[str, Any] = {"action": action, "vaultAddress": self.config.vault_address}
        else:
            action_doc = {"action": action}
        with self._tracer.start_as_current_span("gateway.submit"):
            with self._uow() as uow:
                uow.orders.update(
                    order.client_order_id,
                    self._now(),
                    status=SENT_UNKNOWN,
                    submitted_at=utc_from_epoch(self._now()),
                    limit_price=limit,
                    reference_price=p_g,
                    error_code=None,
                    error_message=None,
                    attempts=attempts,
                )
                self._audit(
                    uow,
                    "order.submit",
                    f"submit {order.side} {plain(order.size)} {order.symbol} @ {plain(limit)} {order.tif}",
                    {**action_doc, "p_g": p_g, "limit_price": limit},
                    row=row,
                )
            try:
                result = self._exchange_call("place_order", self.exchange.place_order, request)
            except Exception as exc:
                if not is_pre_send(exc):
                    return self._sent_unknown(row, exc)
                raise self._refuse(
                    row,
                    503,
                    "exchange_unavailable",
                    f"exchange unreachable before sending: {type(exc).__name__}: {exc}",
                    {"p_g": p_g},
                    attempts,
                ) from None
            fields = self._fields_from_place(result, order)
            try:
                with self._uow() as uow:
                    uow.orders.update(order.client_order_id, self._now(), **fields)
                    self._audit(
                        uow,
                        "order.result",
                        f"order {fields['status']}",
                        {"raw": _place_result_doc(result), "status": fields["status"]},
                        row=row,
                        severity="warning" if fields["status"] == REJECTED else "info",
                    )
                    stored = uow.orders.by_client_order_id(order.client_order_id)
            except GatewayError:
                # The exchange answered but the answer could not be stored: the resolver will find it.
                log.error("order %s: result could not be stored; left SENT_UNKNOWN", order.client_order_id)
                return self._unknown_answer(row)
        assert stored is not None
        self._count_order(stored)
        self._publish(stored)
        return Answer(201, render_record(stored))

    def _sent_unknown(self, row: Any, exc: BaseException) -> Answer:
        """An ambiguous send: the row stays SENT_UNKNOWN for the resolver; never resent (§11.3 step 5)."""
        log.warning("order %s: outcome unknown after %s: %s", row.client_order_id, type(exc).__name__, exc)
        return self._unknown_answer(row)

    def _unknown_answer(self, row: Any) -> Answer:
        """202 with the SENT_UNKNOWN record; after a send it must never turn into a 5xx (that would read
        as "not sent"), so a database failure here still answers 202 from what is in memory."""
        try:
            with self._uow() as uow:
                stored = uow.orders.by_client_order_id(row.client_order_id)
        except GatewayError:
            stored = None
        if stored is None:
            body = render_record(row)
            body["status"] = SENT_UNKNOWN
            return Answer(202, body)
        self._count_order(stored)
        self._publish(stored)
        return Answer(202, render_record(stored))

    def _fields_from_place(self, result: PlaceResult, order: ValidOrder) -> dict[str, Any]:
        now = utc_from_epoch(self._now())
        oid = str(result.oid) if result.oid is not None else None
        if result.status == "resting":
            return {
                "status": RESTING,
                "exchange_order_id": oid,
                "filled_size": result.filled_size,
                "avg_fill_price": result.avg_price,
            }
        if result.status == "filled":
            full = result.filled_size >= order.size
            return {
                "status": FILLED if full else PARTIAL,
                "exchange_order_id": oid,
                "filled_size": result.filled_size,
                "avg_fill_price": result.avg_price,
                "closed_at": now,
            }
        return {
            "status": REJECTED,
            "exchange_order_id": oid,
            "error_code": error_code_for(result.error_text),
            "error_message": result.error_text or "",
            "closed_at": now,
        }

    # --- status resolution (§11.6) -------------------------------------------------------------------

    def _fields_from_status(self, status: OrderStatus, row: Any) -> dict[str, Any] | None:
        """The record fields an exchange status implies, or None when the exchange does not know it."""
        if status.status == "unknown":
            return None
        fields: dict[str, Any] = {}
        if status.oid is not None:
            fields["exchange_order_id"] = str(status.oid)
        if status.status == "open":
            fields.update(status=RESTING, filled_size=status.filled_size)
            if status.avg_price is not None:
                fields["avg_fill_price"] = status.avg_price
            return fields
        if status.status == "filled":
            filled = status.filled_size if status.filled_size > 0 else Decimal(row.size)
            fields.update(status=FILLED if filled >= row.size else PARTIAL, filled_size=filled)
        elif status.status == "canceled":
            partial_ioc = row.style == "ioc" and status.filled_size > 0
            fields.update(status=PARTIAL if partial_ioc else CANCELED, filled_size=status.filled_size)
        else:
            fields.update(
                status=REJECTED,
                error_code=error_code_for(status.error_text),
                error_message=status.error_text or "",
            )
        if status.avg_price is not None:
            fields["avg_fill_price"] = status.avg_price
        return fields

    def _closed_at(self, status: OrderStatus, fields: Mapping[str, Any]) -> datetime:
        """When the order closed: the exchange's status time if given, else its last fill, else now."""
        stamp = getattr(status, "status_timestamp_ms", None) or getattr(status, "timestamp_ms", None)
        if isinstance(stamp, int | float) and stamp > 0:
            return utc_from_epoch(stamp / 1000)
        if fields.get("status") in (FILLED, PARTIAL) and status.oid is not None:
            try:
                fills = self._exchange_call("fetch_fills", self.exchange.fetch_fills, 0)
                times = [f.ts_ms for f in fills if f.oid == status.oid]
                if times:
                    return utc_from_epoch(max(times) / 1000)
            except Exception as exc:
                log.warning("fill time of oid %s unavailable: %s", status.oid, exc)
        return utc_from_epoch(self._now())

    def _apply(self, row: Any, fields: Mapping[str, Any], source: str, status: OrderStatus | None) -> Any:
        """Write a status change with its `order.status` audit row; unchanged rows are left alone."""
        changed = {
            k: v
            for k, v in fields.items()
            if getattr(row, k) != v and not (v is None and k == "avg_fill_price")
        }
        if not changed:
            return row
        updates = dict(changed)
        new_status = updates.get("status", row.status)
        if new_status in TERMINAL and row.closed_at is None:
            updates["closed_at"] = (
                self._closed_at(status, fields) if status is not None else utc_from_epoch(self._now())
            )
        with self._uow() as uow:
            uow.orders.update(row.client_order_id, self._now(), **updates)
            self._audit(
                uow,
                "order.status",
                f"order {row.status} -> {new_status} ({source})",
                {
                    "old": row.status,
                    "new": new_status,
                    "filled_size": updates.get("filled_size", row.filled_size),
                    "source": source,
                    "exchange_status": _status_doc(status) if status is not None else None,
                },
                row=row,
            )
            stored = uow.orders.by_client_order_id(row.client_order_id)
        assert stored is not None
        if stored.status != row.status:
            self._count_order(stored)
            self._publish(stored)
        return stored

    def _query_status(self, row: Any) -> OrderStatus | None:
        try:
            return self._exchange_call("order_status", self.exchange.order_status, cloid=row.client_order_id)
        except Exception as exc:
            log.warning("order_status %s failed: %s", row.client_order_id, exc)
            return None

    def resolve_row(self, row: Any, *, source: str = "resolver") -> Any:
        """Ask the exchange about one SENT_UNKNOWN or RESTING row; expire an unknown past the grace."""
        status = self._query_status(row)
        if status is None:
            return row
        fields = self._fields_from_status(status, row)
        if fields is not None:
            return self._apply(row, fields, source, status)
        if row.status == SENT_UNKNOWN and row.submitted_at is not None:
            elapsed = self._now() - row.submitted_at.timestamp()
            if elapsed >= self.config.unknown_grace_s:
                stored = self._apply(row, {"status": EXPIRED_UNKNOWN}, source, status)
                self.alert(
                    "gateway",
                    "order_status_unknown",
                    "warning",
                    scope=row.symbol,
                    detail=f"{row.client_order_id} unknown to the exchange {elapsed:.0f} s after submission",
                    symbol=row.symbol,
                    cycle_id=row.cycle_id,
                    client_order_id=row.client_order_id,
                )
                return stored
        return row

    def _due(self, row: Any, now: float) -> bool:
        """A SENT_UNKNOWN row is queried at each point of the schedule, and once more at the grace."""
        if row.submitted_at is None:
            return True
        elapsed = now - row.submitted_at.timestamp()
        points = [p for p in self.config.unknown_resolve_schedule_s if p <= elapsed]
        if elapsed >= self.config.unknown_grace_s:
            points.append(self.config.unknown_grace_s)
        with self._mutex:
            done = self._status_queries.get(row.client_order_id, 0)
            if len(points) > done:
                self._status_queries[row.client_order_id] = len(points)
                return True
        return False

    def _try_row_lock(self, cloid: str) -> str | None:
        try:
            return self.locks.acquire(f"gateway:order:{cloid}", ORDER_LOCK_TTL_S)
        except Exception:
            return None

    def resolve_unknown(self, *, still_held: Callable[[], bool] = lambda: True) -> int:
        """One pass over SENT_UNKNOWN rows; rows with a request in flight are left to that request."""
        with self._tracer.start_as_current_span("gateway.resolve") as span:
            with self._uow() as uow:
                rows = uow.orders.list_orders(status=SENT_UNKNOWN, limit=500)
            span.set_attribute("count", len(rows))
            resolved = 0
            now = self._now()
            for row in rows:
                if not still_held():
                    break
                if not self._due(row, now):
                    continue
                token = self._try_row_lock(row.client_order_id)
                if token is None:
                    continue
                try:
                    with self._uow() as uow:
                        fresh = uow.orders.by_client_order_id(row.client_order_id)
                    if fresh is not None and fresh.status == SENT_UNKNOWN:
                        after = self.resolve_row(fresh)
                        resolved += int(after.status != SENT_UNKNOWN)
                finally:
                    self.locks.release(f"gateway:order:{row.client_order_id}", token)
            return resolved

    def refresh_resting(self, *, still_held: Callable[[], bool] = lambda: True) -> int:
        """Refresh RESTING rows (status, filled size, average price) from the exchange."""
        with self._uow() as uow:
            rows = uow.orders.list_orders(status=RESTING, limit=500)
        changed = 0
        for row in rows:
            if not still_held():
                break
            after = self.resolve_row(row)
            changed += int(after.status != row.status or after.filled_size != row.filled_size)
        return changed

    def sync_fills(self) -> int:
        """Ingest fills of our orders into `fills`, idempotently by trade id; returns the new count."""
        exchange_id = self.exchange_id()
        with self._uow() as uow:
            latest = uow.fills.latest_exchange_time(exchange_id)
        since_ms = max(0, int(latest.timestamp() * 1000) - 60_000) if latest is not None else 0
        fills = self._exchange_call("fetch_fills", self.exchange.fetch_fills, since_ms)
        ours = [f for f in fills if is_ours(f.cloid, self.policy.prefix)]
        if not ours:
            return 0
        now = utc_from_epoch(self._now())
        rows = [
            {
                "exchange_id": exchange_id,
                "trade_id": str(f.tid),
                "client_order_id": f.cloid.lower() if f.cloid else None,
                "exchange_order_id": str(f.oid),
                "symbol": f.symbol,
                "side": f.side,
                "price": f.price,
                "size": f.size,
                "fee": f.fee,
                "fee_token": f.fee_token,
                "liquidity": f.liquidity,
                "closed_pnl": f.closed_pnl,
                "exchange_time": utc_from_epoch(f.ts_ms / 1000),
                "ingested_at": now,
            }
            for f in ours
        ]
        by_tid = {str(f.tid): f for f in ours}
        with self._uow() as uow:
            new_ids = uow.fills.insert_new(rows)
            touched: set[str] = set()
            for tid in new_ids:
                f = by_tid[tid]
                cloid = f.cloid.lower() if f.cloid else None
                uow.audit.append(
                    ts=self._now(),
                    kind="fill",
                    actor=self.config.actor,
                    message=f"fill {f.side} {plain(f.size)} {f.symbol} @ {plain(f.price)}",
                    payload=json_safe(
                        {
                            "trade_id": tid,
                            "oid": f.oid,
                            "cloid": cloid,
                            "price": f.price,
                            "size": f.size,
                            "fee": f.fee,
                            "liquidity": f.liquidity,
                            "closed_pnl": f.closed_pnl,
                            "exchange_time_ms": f.ts_ms,
                        }
                    ),
                    symbol=f.symbol,
                    client_order_id=cloid,
                )
                if cloid:
                    touched.add(cloid)
                if self.metrics is not None:
                    self.metrics.fills_total.labels(f.symbol, f.liquidity).inc()
                    self.metrics.fees_usd_total.labels(f.symbol, f.liquidity).inc(float(f.fee))
            for cloid in touched:
                if uow.orders.by_client_order_id(cloid) is None:
                    continue
                fees = sum((r.fee for r in uow.fills.for_client_order_id(cloid)), Decimal(0))
                uow.orders.update(cloid, self._now(), fees_usd=fees)
        return len(new_ids)

    def run_resolver_once(self) -> bool:
        """One resolver + RESTING refresh + fills pass under `gateway:resolver`; False when it is held."""
        token = self.locks.acquire(RESOLVER_LOCK, RESOLVER_LOCK_TTL_S)
        if token is None:
            return False
        try:
            self.resolve_unknown()
            self.refresh_resting()
            self.sync_fills()
        finally:
            self.locks.release(RESOLVER_LOCK, token)
        return True

    # --- reads (§11.8) -------------------------------------------------------------------------------

    @staticmethod
    def _check_cloid(cloid: str) -> None:
        if not is_valid_client_order_id(cloid):
            raise validation_error([("client_order_id", "must match ^0x[0-9a-f]{32}$")])

    def get_order(self, cloid: str) -> Answer:
        self._check_cloid(cloid)
        with self._uow() as uow:
            row = uow.orders.by_client_order_id(cloid)
        if row is None:
            raise GatewayError(404, "not_found", f"no order with client_order_id {cloid}")
        return Answer(200, render_record(row))

    def list_orders(
        self,
        *,
        cycle_id: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Answer:
        problems: list[tuple[str, str]] = []
        if status is not None and status not in STATUSES:
            problems.append(("status", f"must be one of {', '.join(STATUSES)}"))
        if not 1 <= limit <= 500:
            problems.append(("limit", "must be an integer from 1 to 500"))
        before: int | None = None
        if cursor is not None:
            if cursor.isdigit() and 0 < len(cursor) <= 18:
                before = int(cursor)
            else:
                problems.append(("cursor", "must be a next_cursor value returned by this endpoint"))
        if since is not None and (since.tzinfo is None or since.utcoffset() is None):
            problems.append(("since", "must be an ISO-8601 time with a UTC offset"))
        if problems:
            raise validation_error(problems)
        with self._uow() as uow:
            rows, next_id = GatewayOrderQueries(uow.session).page(
                cycle_id=cycle_id, symbol=symbol, status=status, since=since, before_id=before, limit=limit
            )
            records = [render_record(r) for r in rows]
        return Answer(200, {"orders": records, "next_cursor": str(next_id) if next_id is not None else None})

    def _check_symbols(self, symbols: Sequence[str]) -> None:
        unknown = [s for s in symbols if s not in self.policy.universe]
        if unknown:
            raise validation_error(
                [
                    ("symbols", f"{s!r} is not in universe.symbols ({', '.join(self.policy.universe)})")
                    for s in unknown
                ]
            )

    def open_orders(self, symbol: str | None = None) -> Answer:
        if symbol is not None:
            self._check_symbols([symbol])
        try:
            listed = self._exchange_call("fetch_open_orders", self.exchange.fetch_open_orders, symbol)
        except Exception as exc:
            raise GatewayError(503, "exchange_unavailable", f"listing open orders failed: {exc}") from None
        wanted = set(self.policy.universe) if symbol is None else {symbol}
        return Answer(
            200,
            {
                "orders": [
                    {
                        "symbol": o.symbol,
                        "oid": o.oid,
                        "cloid": o.cloid,
                        "side": o.side,
                        "price": float(o.price),
                        "size": float(o.size),
                        "ours": is_ours(o.cloid, self.policy.prefix),
                    }
                    for o in listed
                    if o.symbol in wanted
                ]
            },
        )

    # --- cancellation (§12) --------------------------------------------------------------------------

    def cancel_order(self, cloid: str) -> Answer:
        self._check_cloid(cloid)
        with self._uow() as uow:
            row = uow.orders.by_client_order_id(cloid)
        if row is None:
            raise GatewayError(404, "not_found", f"no order with client_order_id {cloid}")
        if row.status in TERMINAL or row.status in NOTHING_SENT:
            raise GatewayError(409, "not_open", f"order {cloid} is {row.status}, not open on the exchange")
        with self._uow() as uow:
            self._audit(
                uow,
                "order.cancel.request",
                f"cancel {cloid}",
                {"symbol": row.symbol, "cloids": [cloid], "oids": []},
                row=row,
            )
        try:
            answers = self._exchange_call("cancel", self.exchange.cancel, row.symbol, cloids=[cloid])
        except Exception as exc:
            raise GatewayError(503, "exchange_unavailable", f"cancel failed: {exc}") from None
        text = _answer_for(answers, cloid)
        if text == "success":
            row = self._apply(row, {"status": CANCELED}, "cancel", None)
        else:
            row = self.resolve_row(row, source="cancel")
        with self._uow() as uow:
            self._audit(
                uow,
                "order.cancel.result",
                f"cancel {cloid}: {text}",
                {"symbol": row.symbol, "answers": dict(answers), "status": row.status},
                row=row,
            )
        return Answer(200, render_record(row))

    def cancel_open(
        self, symbols: Sequence[str], scope: str = "ours", *, trace_context: Context | None = None
    ) -> Answer:
        """§12: cancel our open orders per symbol, never foreign ones; one result per symbol."""
        if scope != "ours":
            raise validation_error([("scope", "must be ours (nothing in ttt cancels foreign orders)")])
        self._check_symbols(symbols)
        with self._tracer.start_as_current_span("gateway.cancel_open", context=trace_context) as span:
            span.set_attribute("symbols", list(symbols))
            results = []
            listing_failures = 0
            for symbol in symbols:
                result, listed = self._cancel_symbol(symbol)
                listing_failures += int(not listed)
                results.append(result)
            if symbols and listing_failures == len(symbols):
                raise GatewayError(
                    503,
                    "exchange_unavailable",
                    "open orders could not be listed for any symbol",
                    details={"results": results},
                )
            return Answer(200, {"results": results})

    def _cancel_symbol(self, symbol: str) -> tuple[dict[str, Any], bool]:
        result: dict[str, Any] = {
            "symbol": symbol,
            "cancelled": [],
            "already_closed": [],
            "foreign_open": 0,
            "error": None,
        }
        try:
            listed = self._exchange_call("fetch_open_orders", self.exchange.fetch_open_orders, symbol)
        except Exception as exc:
            result["error"] = f"listing open orders failed: {type(exc).__name__}: {exc}"
            return result, False
        listed = [o for o in listed if o.symbol == symbol]
        ours = [o for o in listed if is_ours(o.cloid, self.policy.prefix)]
        foreign = len(listed) - len(ours)
        result["foreign_open"] = foreign
        if self.metrics is not None:
            self.metrics.foreign_open_orders.labels(symbol).set(foreign)
        if foreign:
            log.warning("%d foreign open order(s) on %s left untouched", foreign, symbol)
        if not ours:
            return result, True
        cloids = [str(o.cloid).lower() for o in ours]
        try:
            with self._uow() as uow:
                known = GatewayOrderQueries(uow.session).by_client_order_ids(cloids)
                self._audit(
                    uow,
                    "order.cancel.request",
                    f"cancel {len(cloids)} open order(s) on {symbol}",
                    {"symbol": symbol, "cloids": cloids, "oids": [o.oid for o in ours]},
                    symbol=symbol,
                )
                for o in ours:
                    if str(o.cloid).lower() not in known:
                        self._audit(
                            uow,
                            "order.cancel.orphan",
                            f"cancelling open order {o.cloid} that has no gateway record",
                            {"symbol": symbol, "cloid": o.cloid, "oid": o.oid},
                            symbol=symbol,
                            severity="warning",
                        )
        except GatewayError as exc:
            result["error"] = f"audit unavailable, nothing cancelled: {exc.message}"
            return result, True
        try:
            answers = self._exchange_call("cancel", self.exchange.cancel, symbol, cloids=cloids)
        except Exception as exc:
            result["error"] = f"cancel failed: {type(exc).__name__}: {exc}"
            return result, True
        failures = []
        for cloid in cloids:
            text = _answer_for(answers, cloid)
            row = known.get(cloid)
            if text == "success":
                result["cancelled"].append(cloid)
                if row is not None:
                    self._apply(row, {"status": CANCELED}, "cancel", None)
            elif text is not None and CANCEL_MISSING in text.lower():
                result["already_closed"].append(cloid)
                if row is not None:
                    self.resolve_row(row, source="cancel")
            else:
                failures.append(f"{cloid}: {text or 'no answer'}")
        if failures:
            result["error"] = "cancel failed for " + "; ".join(failures)
        with self._uow() as uow:
            self._audit(
                uow,
                "order.cancel.result",
                f"cancel on {symbol}: {len(result['cancelled'])} cancelled, "
                f"{len(result['already_closed'])} already closed",
                {"symbol": symbol, "answers": dict(answers), "error": result["error"]},
                symbol=symbol,
            )
        return result, True

    # --- health --------------------------------------------------------------------------------------

    def health(self) -> Answer:
        db = "ok"
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            db = f"error: {type(exc).__name__}"
        circuit = "open" if self.circuit_open() else "closed"
        exchange = "ok" if circuit == "closed" else "unavailable"
        healthy = db == "ok" and exchange == "ok"
        body = {
            "status": "ok" if healthy else "degraded",
            "db": db,
            "exchange": exchange,
            "circuit": circuit,
            "time": utc_from_epoch(self._now()).isoformat(timespec="milliseconds"),
        }
        return Answer(200 if healthy else 503, body)


def _answer_for(answers: Mapping[str, str], cloid: str) -> str | None:
    for key, text in answers.items():
        if key.lower() == cloid.lower():
            return text
    return None
