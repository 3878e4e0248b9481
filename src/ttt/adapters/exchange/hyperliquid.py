"""Hyperliquid through ccxt (services.md §7.3): the live `ExchangeAdapter`.

Three rules shape this module:

* **Nothing forbidden leaves the process.** ccxt's client initialisation approves a builder fee and sets
  a referrer on its own. The client subclass turns both steps into no-ops, and a request hook refuses —
  locally, before sending — any builder-fee approval, referrer, dex abstraction (unless configured) or
  order with a `builder` key, counting `ttt_exchange_forbidden_actions_total`.
* **A write is sent at most once.** Reads retry on network errors and 5xx; writes never do. A write
  whose fate is unknown (timeout, reset after sending, 5xx) raises `OutcomeUnknown`, and the caller
  resolves it by querying the cloid; one refused before sending raises `ExchangeUnavailable`.
* **No text is success.** Exchange error texts become `PlaceResult("error", error_text=…)` and map to
  codes with `hl_parse.error_code`; an answer of unknown shape to a write is an unknown outcome.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar

import ccxt
from eth_account import Account

from ttt.adapters.exchange import hl_parse
from ttt.adapters.exchange.hl_parse import HyperliquidShapeError
from ttt.domain.orders import (
    Bar,
    Fill,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    PlaceResult,
    ProductMeta,
    is_valid_price,
)
from ttt.errors import (
    ConfigError,
    ExchangeUnavailable,
    ForbiddenActionError,
    LocalRefusal,
    OutcomeUnknown,
)
from ttt.ports import Clock
from ttt.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

EXCHANGE = "hyperliquid"
FORBIDDEN_ACTIONS = ("approveBuilderFee", "setReferrer")
_T = TypeVar("_T")


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True)
class HyperliquidSettings:
    """`exchange.hyperliquid.*` plus the secrets. The wallet is the account; the key may be the
    wallet's own or an approved API wallet (agent); a vault, when set, is traded for explicitly."""

    network: Literal["mainnet", "testnet", "custom"] = "mainnet"
    base_url: str | None = None
    wallet_address: str | None = None
    private_key: str | None = None
    vault_address: str | None = None
    timeout_s: float = 10.0
    hip3_dexes: tuple[str, ...] = ()
    user_dex_abstraction: bool = False
    proxies: tuple[str, ...] = ()
    origin: str | None = None
    breaker_failures: int = 5
    breaker_reset_s: float = 60.0
    read_attempts: int = 3
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)

    def __post_init__(self) -> None:
        if self.network == "custom" and not self.base_url:
            raise ConfigError(["exchange.hyperliquid.base_url: required when network = custom"])
        if self.read_attempts < 1:
            raise ConfigError(["exchange.hyperliquid.read_retries: must be ≥ 1"])

    @classmethod
    def from_config(cls, exchange: Any, secrets: Any = None) -> HyperliquidSettings:
        """From `config.exchange` (section `hyperliquid`) and `secrets.exchanges.hyperliquid`."""
        hl = exchange.hyperliquid
        wallet = key = None
        if secrets is not None:
            creds = secrets.exchanges.hyperliquid
            wallet = creds.wallet_address.get_secret_value() if creds.wallet_address else None
            key = creds.private_key.get_secret_value() if creds.private_key else None
        return cls(
            network=hl.network,
            base_url=hl.base_url,
            wallet_address=wallet,
            private_key=key,
            vault_address=hl.vault_address,
            timeout_s=float(hl.timeout_s),
            hip3_dexes=tuple(hl.hip3_dexes),
            user_dex_abstraction=bool(hl.user_dex_abstraction),
            proxies=tuple(hl.proxies),
            origin=hl.origin,
            breaker_failures=int(hl.circuit_breaker.failures),
            breaker_reset_s=float(hl.circuit_breaker.reset_s),
            read_attempts=max(1, int(hl.read_retries)),
        )


class CircuitBreaker:
    """Counts failed *operations* (a read with all its retries is one). `failures` in a row open it for
    `reset_s`; then exactly one trial call is let through (half-open): success closes, failure re-opens."""

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Clock,
        on_change: Callable[[bool], None] = lambda is_open: None,
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self.consecutive = 0
        self.state: Literal["closed", "open", "half_open"] = "closed"
        self.opened_at: float | None = None
        self._trial = False

    def before(self) -> bool:
        """Admit a call, or raise ExchangeUnavailable. Returns True when the call is the half-open trial."""
        with self._lock:
            if self.state == "closed":
                return False
            assert self.opened_at is not None
            if self.state == "open" and self._clock.now() - self.opened_at >= self.reset_s:
                self.state = "half_open"
                self._trial = False
            if self.state == "half_open" and not self._trial:
                self._trial = True
                return True
            remaining = max(0.0, self.opened_at + self.reset_s - self._clock.now())
            raise ExchangeUnavailable(f"{EXCHANGE}: circuit breaker open (retry in {remaining:.0f} s)")

    def success(self) -> None:
        with self._lock:
            was_open = self.state != "closed"
            self.state, self.consecutive, self._trial, self.opened_at = "closed", 0, False, None
        if was_open:
            self._on_change(False)

    def failure(self) -> None:
        with self._lock:
            self.consecutive += 1
            opening = self.state == "half_open" or (
                self.state == "closed" and self.consecutive >= self.failures
            )
            if opening:
                self.state, self.opened_at, self._trial = "open", self._clock.now(), False
        if opening:
            self._on_change(True)

    @property
    def is_open(self) -> bool:
        return self.state != "closed"


class GuardedHyperliquid(ccxt.hyperliquid):  # type: ignore[misc]
    """ccxt's client with its builder-fee approval and referral made inert and every request passed
    through `guard` first."""

    guard: Callable[[str, Any], None] = staticmethod(lambda url, body: None)
    price_is_valid: Callable[[str, Decimal], bool] | None = None

    proxy_prefix: str | None = None
    proxy_origin: str | None = None

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.guard(url, body)
        if self.proxy_prefix:
            # ccxt's own proxyUrl always reports a conflict in this release, so the prefix is applied here
            url = self.proxy_prefix + self.url_encoder_for_proxy_url(url)
            headers = {**(headers or {}), **({"Origin": self.proxy_origin} if self.proxy_origin else {})}
        return super().fetch(url, method, headers, body)

    def handle_builder_fee_approval(self) -> bool:
        return True

    def set_ref(self) -> bool:
        self.options["refSet"] = True
        return True

    def price_to_precision(self, symbol: str, price: Any) -> Any:
        """Integer prices are always valid on Hyperliquid, but ccxt cuts every price to 5 significant
        figures (100123 → 100120); a price already valid for the market is sent unchanged."""
        check = self.price_is_valid
        if check is not None:
            try:
                value = Decimal(str(price))
            except ArithmeticError:
                value = None
            if value is not None and check(symbol, value):
                return _wire(value)
        return super().price_to_precision(symbol, price)


def _wire(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _answer_of(exc: BaseException) -> Any | None:
    """The exchange's JSON answer carried in a ccxt error message (`hyperliquid {json}`), if any."""
    message = str(exc)
    start = message.find("{")
    if start < 0:
        return None
    try:
        answer = json.loads(message[start:])
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and "status" in answer else None


def _never_sent(exc: BaseException) -> bool:
    """Connection refused, DNS failure or connect timeout: the request never left."""
    seen: set[int] = set()
    current: BaseException | None = exc
    markers = ("NewConnectionError", "NameResolutionError", "Connection refused", "ConnectTimeout")
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        text = f"{type(current).__name__} {current!r}"
        if any(m in text for m in markers):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class _Answered(Exception):
    """ccxt raised because the exchange answered with an error; `answer` is its JSON."""

    answer: Any
    text: str = field(default="")


class HyperliquidAdapter:
    """The Hyperliquid `ExchangeAdapter`. Thread-safe for the gateway's concurrent requests."""

    def __init__(
        self,
        settings: HyperliquidSettings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        alert: Callable[[str, str, str], None] | None = None,
        products: Mapping[str, ProductMeta] | None = None,
    ) -> None:
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._metrics = metrics
        self._sleep = sleep
        self._alert = alert
        self._proxy_index = 0
        self._products: dict[str, ProductMeta] = dict(products or {})
        self._lock = threading.RLock()
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_s, self._clock, self._breaker_changed
        )
        self.client = self._make_client()

    # --- client ---------------------------------------------------------------------------------

    def _make_client(self) -> GuardedHyperliquid:
        s = self.settings
        types = ["swap"] + (["hip3"] if s.hip3_dexes else [])
        options: dict[str, Any] = {
            "defaultType": "swap",
            "builderFee": False,
            "approvedBuilderFee": False,
            "refSet": True,
            "fetchMarkets": {"types": types, "hip3": {"dexes": list(s.hip3_dexes)}},
        }
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(s.timeout_s * 1000),
            "options": options,
        }
        if s.wallet_address:
            config["walletAddress"] = s.wallet_address
        if s.private_key:
            config["privateKey"] = s.private_key
        client = GuardedHyperliquid(config)
        client.guard = self._guard
        client.price_is_valid = self._price_is_valid
        if s.network == "testnet":
            client.set_sandbox_mode(True)
        elif s.network == "custom":
            assert s.base_url is not None
            base = s.base_url.rstrip("/")
            client.urls["api"] = {"public": base, "private": base}
        self._apply_proxy(client)
        return client

    def _apply_proxy(self, client: GuardedHyperliquid) -> None:
        if not self.settings.proxies:
            return
        client.proxy_prefix = self.settings.proxies[self._proxy_index % len(self.settings.proxies)]
        client.proxy_origin = self.settings.origin

    def _breaker_changed(self, is_open: bool) -> None:
        if self._metrics is not None:
            self._metrics.exchange_circuit_open.labels(exchange=EXCHANGE).set(1 if is_open else 0)
        if is_open:
            self._proxy_index += 1
            self._apply_proxy(self.client)
            log.warning("%s circuit breaker opened", EXCHANGE)

    def _price_is_valid(self, symbol: str, price: Decimal) -> bool:
        product = self._products.get(symbol)
        return product is not None and is_valid_price(price, product.sz_decimals)

    # --- the guard ------------------------------------------------------------------------------

    def _guard(self, url: str, body: Any) -> None:
        if not url.rstrip("/").endswith("/exchange"):
            return
        refused: str | None = None
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        action = payload.get("action") if isinstance(payload, dict) else None
        if not isinstance(action, dict):
            refused = "unreadable"
        else:
            kind = action.get("type")
            if kind in FORBIDDEN_ACTIONS:
                refused = str(kind)
            elif kind == "userDexAbstraction" and not self.settings.user_dex_abstraction:
                refused = "userDexAbstraction"
            elif kind == "order" and "builder" in action:
                refused = "order.builder"
        if refused is None:
            return
        if self._metrics is not None:
            self._metrics.exchange_forbidden_actions_total.labels(action=refused).inc()
        log.critical("refused forbidden exchange action %s before sending", refused)
        if self._alert is not None:
            self._alert("exchange", "forbidden_action", "critical")
        raise ForbiddenActionError(f"{EXCHANGE}: refused forbidden action {refused!r} before sending it")

    # --- call wrappers ----------------------------------------------------------------------------

    def _count(self, operation: str, result: str, started: float) -> None:
        if self._metrics is None:
            return
        self._metrics.exchange_requests_total.labels(
            exchange=EXCHANGE, operation=operation, result=result
        ).inc()
        self._metrics.exchange_request_seconds.labels(exchange=EXCHANGE, operation=operation).observe(
            time.monotonic() - started
        )

    def _read(self, operation: str, call: Callable[[], _T]) -> _T:
        """One read operation: up to `read_attempts` tries (after 1 s, 2 s) on network errors and 5xx;
        the half-open trial is a single try."""
        trial = self.breaker.before()
        attempts = 1 if trial else self.settings.read_attempts
        delays = self.settings.retry_delays_s or (0.0,)
        started = time.monotonic()
        for attempt in range(attempts):
            try:
                with self._lock:
                    result = call()
            except ForbiddenActionError:
                raise
            except ccxt.NetworkError as exc:
                if _answer_of(exc) is not None:
                    self.breaker.success()
                    self._count(operation, "rejected", started)
                    raise
                if attempt + 1 < attempts:
                    self._sleep(delays[min(attempt, len(delays) - 1)])
                    continue
                self.breaker.failure()
                self._count(operation, "error", started)
                raise ExchangeUnavailable(f"{EXCHANGE} {operation}: {type(exc).__name__}: {exc}") from exc
            except ccxt.ExchangeError:
                self.breaker.success()
                self._count(operation, "rejected", started)
                raise
            self.breaker.success()
            self._count(operation, "ok", started)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, operation: str, call: Callable[[], _T]) -> _T:
        """Exactly one send. Raises `_Answered` for an exchange error answer, `ExchangeUnavailable`
        when nothing was executed, `OutcomeUnknown` when it may have been."""
        self.breaker.before()
        started = time.monotonic()
        try:
            with self._lock:
                result = call()
        except LocalRefusal:
            raise
        except ccxt.BaseError as exc:
            answer = _answer_of(exc)
            if answer is not None:
                self.breaker.success()
                self._count(operation, "rejected", started)
                raise _Answered(answer, str(exc)) from exc
            if isinstance(exc, ccxt.NetworkError):
                self.breaker.failure()
                if _never_sent(exc) or isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
                    self._count(operation, "not_sent", started)
                    raise ExchangeUnavailable(f"{EXCHANGE} {operation} not sent: {exc}") from exc
                self._count(operation, "unknown", started)
                raise OutcomeUnknown(
                    f"{EXCHANGE} {operation}: outcome unknown: {type(exc).__name__}: {exc}"
                ) from exc
            self.breaker.success()
            self._count(operation, "rejected", started)
            raise _Answered({"status": "err", "response": str(exc)}, str(exc)) from exc
        self.breaker.success()
        self._count(operation, "ok", started)
        return result

    def _info(self, operation: str, body: dict[str, Any]) -> Any:
        return self._read(operation, lambda: self.client.publicPostInfo(dict(body)))

    # --- identities -----------------------------------------------------------------------------

    @property
    def account(self) -> str:
        """The address whose state is read and traded: the vault when configured, else the wallet."""
        address = self.settings.vault_address or self.settings.wallet_address
        if not address:
            raise ConfigError(["secrets.exchanges.hyperliquid.wallet_address: required"])
        return address.lower()

    def check_credentials(self) -> str:
        """`master` when the key is the wallet's own, `agent` when it is an approved API wallet of it;
        otherwise a ConfigError that names the key and the wallet."""
        wallet, key = self.settings.wallet_address, self.settings.private_key
        if not wallet:
            raise ConfigError(["secrets.exchanges.hyperliquid.wallet_address: required to trade"])
        if not key:
            raise ConfigError(["secrets.exchanges.hyperliquid.private_key: required to trade"])
        try:
            signer = str(Account.from_key(key).address).lower()
        except Exception as exc:
            raise ConfigError(
                [f"secrets.exchanges.hyperliquid.private_key: not a valid key ({exc})"]
            ) from None
        if signer == wallet.lower():
            return "master"
        role, master = hl_parse.parse_user_role(self._info("userRole", {"type": "userRole", "user": signer}))
        if role == "agent" and master == wallet.lower():
            return "agent"
        agents = hl_parse.parse_extra_agents(
            self._info("extraAgents", {"type": "extraAgents", "user": wallet})
        )
        if signer in agents:
            return "agent"
        raise ConfigError(
            [
                f"secrets.exchanges.hyperliquid.private_key: its address {signer} is not an approved API "
                f"wallet (agent) of wallet_address {wallet.lower()} (userRole says {role!r}); approve it on "
                "Hyperliquid or use the wallet's own key"
            ]
        )

    # --- products -------------------------------------------------------------------------------

    def load_products(self) -> list[ProductMeta]:
        markets = self._read("load_markets", lambda: self.client.load_markets(True))
        out: list[ProductMeta] = []
        for symbol, market in markets.items():
            if not market.get("swap"):
                continue
            info = market.get("info") or {}
            where = f"markets[{symbol}].info"
            coin = hl_parse.text(
                hl_parse.field(info, "name", "load_markets", where), "load_markets", where + ".name"
            )
            hip3 = ":" in coin
            out.append(
                ProductMeta(
                    symbol=symbol,
                    sz_decimals=hl_parse.integer(
                        info.get("szDecimals"), "load_markets", where + ".szDecimals"
                    ),
                    max_leverage=hl_parse.integer(
                        info.get("maxLeverage"), "load_markets", where + ".maxLeverage"
                    ),
                    margin_mode="isolated_only" if hip3 or info.get("onlyIsolated") is True else "cross",
                    api_coin=coin,
                    asset_id=hl_parse.integer(
                        market.get("baseId"), "load_markets", f"markets[{symbol}].baseId"
                    ),
                    product_type="HIP3_PERP" if hip3 else "PERP",
                )
            )
        with self._lock:
            self._products.update({p.symbol: p for p in out})
        return out

    def _coins(self) -> dict[str, str]:
        return {s: p.api_coin for s, p in self._products.items()}

    def _product(self, symbol: str) -> ProductMeta:
        if symbol not in self._products or self.client.markets is None:
            self.load_products()
        product = self._products.get(symbol)
        if product is None:
            raise LocalRefusal(f"{EXCHANGE}: {symbol} is not listed")
        return product

    # --- reads ----------------------------------------------------------------------------------

    def fetch_account(self, wallet: str, dexes: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for dex in dexes:
            body: dict[str, Any] = {"type": "clearinghouseState", "user": wallet}
            if dex:
                body["dex"] = dex
            try:
                state = self._info("clearinghouseState", body)
                out[dex] = dict(hl_parse.check_clearinghouse_state(state, dex))
            except (ExchangeUnavailable, HyperliquidShapeError, ccxt.ExchangeError) as exc:
                log.warning("clearinghouseState for dex %r unavailable: %s", dex, exc)
        return out

    def fetch_open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        orders: list[OpenOrder] = []
        for dex in ("", *self.settings.hip3_dexes):
            body: dict[str, Any] = {"type": "frontendOpenOrders", "user": self.account}
            if dex:
                body["dex"] = dex
            orders.extend(hl_parse.parse_open_orders(self._info("frontendOpenOrders", body), self._coins()))
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def order_status(self, cloid: str | None = None, oid: int | None = None) -> OrderStatus:
        if (cloid is None) == (oid is None):
            raise ValueError("order_status needs exactly one of cloid and oid")
        body = {"type": "orderStatus", "user": self.account, "oid": cloid.lower() if cloid else oid}
        try:
            answer = self._info("orderStatus", body)
        except ccxt.OrderNotFound:
            return OrderStatus("unknown", oid=oid, cloid=cloid)
        status = hl_parse.parse_order_status(answer, self._coins())
        if status.status == "unknown":
            return OrderStatus("unknown", oid=oid, cloid=cloid)
        return status

    def fetch_fills(self, since_ms: int) -> list[Fill]:
        seen: dict[int, Fill] = {}
        start = since_ms
        for _ in range(100):
            body = {"type": "userFillsByTime", "user": self.account, "startTime": start}
            page = hl_parse.parse_fills(self._info("userFillsByTime", body), self._coins(), "userFillsByTime")
            fresh = [f for f in page if f.tid not in seen]
            seen.update((f.tid, f) for f in page)
            if len(page) < 2000 or not fresh:
                break
            start = max(f.ts_ms for f in page)
        return sorted(seen.values(), key=lambda f: (f.ts_ms, f.tid))

    def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[Bar]:
        coin = self._product(symbol).api_coin
        req = {"coin": coin, "interval": timeframe, "startTime": since_ms, "endTime": until_ms}
        answer = self._info("candleSnapshot", {"type": "candleSnapshot", "req": req})
        now_ms = round(self._clock.now() * 1000)
        return [
            b for b in hl_parse.parse_candles(answer, symbol, now_ms) if since_ms <= b.ts_open <= until_ms
        ]

    def fetch_mids(self) -> dict[str, Any]:
        mids: dict[str, Any] = {}
        for dex in ("", *self.settings.hip3_dexes):
            body: dict[str, Any] = {"type": "allMids"}
            if dex:
                body["dex"] = dex
            mids.update(hl_parse.parse_all_mids(self._info("allMids", body)))
        return mids

    def fetch_funding(self) -> dict[str, Any]:
        rates: dict[str, Any] = {}
        for index, dex in enumerate(("", *self.settings.hip3_dexes)):
            body: dict[str, Any] = {"type": "metaAndAssetCtxs"}
            if dex:
                body["dex"] = dex
            _, funding = hl_parse.parse_meta_and_ctxs(self._info("metaAndAssetCtxs", body), dex, index)
            rates.update(funding)
        return rates

    # --- writes ---------------------------------------------------------------------------------

    def _vault_params(self) -> dict[str, Any]:
        return {"vaultAddress": self.settings.vault_address} if self.settings.vault_address else {}

    def place_order(self, request: OrderRequest) -> PlaceResult:
        self._product(request.symbol)
        if request.tif not in ("Alo", "Ioc", "Gtc"):
            raise LocalRefusal(f"{EXCHANGE}: time in force {request.tif!r} is not Alo, Ioc or Gtc")
        size_text = self.client.amount_to_precision(request.symbol, float(request.size))
        price_text = self.client.price_to_precision(request.symbol, float(request.limit_price))
        if Decimal(size_text) != request.size or Decimal(price_text) != request.limit_price:
            raise LocalRefusal(
                f"{EXCHANGE}: {request.symbol} order size {request.size} / price {request.limit_price} "
                f"is not on the exchange grid (ccxt would send {size_text} / {price_text}); nothing was sent"
            )
        params: dict[str, Any] = {
            "timeInForce": request.tif,
            "reduceOnly": request.reduce_only,
            **self._vault_params(),
        }
        if request.cloid:
            params["clientOrderId"] = request.cloid.lower()
        try:
            orders = self._write(
                "order",
                lambda: self.client.create_order(
                    request.symbol,
                    "limit",
                    request.side,
                    float(request.size),
                    float(request.limit_price),
                    params,
                ),
            )
        except _Answered as answered:
            statuses = hl_parse.parse_exchange_response(answered.answer, "order")
            if not statuses:
                return PlaceResult("error", error_text=answered.text)
            return hl_parse.parse_place_status(statuses[0])
        try:
            return hl_parse.parse_place_status(orders["info"])
        except (HyperliquidShapeError, IndexError, KeyError, TypeError) as exc:
            raise OutcomeUnknown(
                f"{EXCHANGE} order: unreadable answer ({exc}); query the order status"
            ) from exc

    def cancel(self, symbol: str, cloids: Sequence[str] = (), oids: Sequence[int] = ()) -> dict[str, str]:
        self._product(symbol)
        result: dict[str, str] = {}
        batches: list[tuple[list[str], Callable[[], Any]]] = []
        if cloids:
            keys = [c.lower() for c in cloids]
            params = {"clientOrderId": keys, **self._vault_params()}
            batches.append((keys, lambda: self.client.cancel_orders([], symbol, params)))
        if oids:
            keys_o = [str(o) for o in oids]
            params_o = self._vault_params()
            batches.append((keys_o, lambda: self.client.cancel_orders(keys_o, symbol, params_o)))
        for keys, call in batches:
            try:
                answer = self._write("cancel", call)
                statuses = [o.get("info") for o in answer]
            except _Answered as answered:
                statuses = hl_parse.parse_exchange_response(answered.answer, "cancel")
            if len(statuses) == 1 and len(keys) > 1:
                statuses = statuses * len(keys)
            for key, status in zip(keys, statuses, strict=False):
                result[key] = hl_parse.parse_cancel_status(status)
        return result

    def set_isolated_leverage(self, symbol: str, leverage: int) -> str | None:
        self._product(symbol)
        params = {"marginMode": "isolated", **self._vault_params()}
        try:
            self._write("leverage", lambda: self.client.set_leverage(leverage, symbol, params))
        except _Answered as answered:
            answer = answered.answer
            return str(answer.get("response")) if isinstance(answer, dict) else answered.text
        return None


__all__ = [
    "CircuitBreaker",
    "ExchangeUnavailable",
    "ForbiddenActionError",
    "GuardedHyperliquid",
    "HyperliquidAdapter",
    "HyperliquidSettings",
    "LocalRefusal",
    "OutcomeUnknown",
]
