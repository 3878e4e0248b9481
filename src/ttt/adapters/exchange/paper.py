"""Paper exchange: in-process matching against the configured price source (services.md §7.2).

It implements the `ExchangeAdapter` shapes, including Hyperliquid's error texts and `clearinghouseState`,
so the gateway, ingestion and reconciliation run unchanged on paper. It is driven only by price events
and the injected Clock: the same events give the same fills. All money is exact `Decimal`; the account
value always equals deposits − fees − funding + realised + unrealised PnL to the last digit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Literal, ParamSpec, TypeVar

from ttt.adapters.exchange.paper_store import (
    InMemoryPaperStore,
    LedgerKind,
    PaperOrder,
    PaperPosition,
    PaperStore,
)
from ttt.domain.orders import (
    Bar,
    Fill,
    Liquidity,
    OpenOrder,
    OrderRequest,
    OrderStatus,
    PlaceResult,
    ProductMeta,
    Side,
    is_valid_price,
)
from ttt.errors import ConfigError, PreconditionError
from ttt.ports import Clock

ERR_INVALID_SIZE = "Order has invalid size."
ERR_INVALID_PRICE = "Price must be divisible by tick size."
ERR_REDUCE_ONLY = "Reduce only order would increase position."
ERR_MIN_VALUE = "Order must have minimum value of $10."
ERR_MARGIN = "Insufficient margin to place order."
ERR_DUPLICATE_CLOID = "Duplicate cloid."
ERR_IOC_NO_MATCH = "Order could not immediately match against any resting orders."
ERR_CANCEL_MISSING = "Order was never placed, already canceled, or filled."
ERR_POST_ONLY = "Post only order would have immediately matched, bbo was {bid}@{ask}."

DEFAULT_WALLET = "0x0000000000000000000000000000000000000001"
DEFAULT_PRODUCTS: dict[str, ProductMeta] = {
    "BTC/USDC:USDC": ProductMeta("BTC/USDC:USDC", sz_decimals=5, max_leverage=40),
    "ETH/USDC:USDC": ProductMeta("ETH/USDC:USDC", sz_decimals=4, max_leverage=25),
    "SOL/USDC:USDC": ProductMeta("SOL/USDC:USDC", sz_decimals=2, max_leverage=20),
    "HYPE/USDC:USDC": ProductMeta("HYPE/USDC:USDC", sz_decimals=2, max_leverage=10),
}

_CONTEXT = Context(prec=60)
_CASH_QUANTUM = Decimal("1e-18")
_DISPLAY_QUANTUM = Decimal("1e-12")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _exact(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run with 60 significant digits so sums of exact products never round."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with localcontext(_CONTEXT):
            return method(*args, **kwargs)

    return wrapper


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """A float becomes the decimal of its shortest round-trip text (0.1 → 0.1), as portfolio.md §0."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return Decimal(repr(value))
    return Decimal(value)


def fmt_decimal(value: Decimal) -> str:
    """Hyperliquid's decimal strings: plain notation, at least one decimal (`26951.0`, `-0.00785`)."""
    if value == 0:
        return "0.0"
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


_USD_QUANTUM = Decimal("0.000001")


def fmt_usd(value: Decimal) -> str:
    """USD amounts as Hyperliquid renders them: six decimals (`"accountValue":"1182.312496"`)."""
    return fmt_decimal(value.quantize(_USD_QUANTUM, rounding=ROUND_HALF_EVEN))


def paper_products(
    universe: Sequence[str], configured: Mapping[str, ProductMeta] | None = None
) -> dict[str, ProductMeta]:
    """Products for the universe: configured rows first, then the built-in defaults; any other symbol
    is a startup error naming it."""
    table = {**DEFAULT_PRODUCTS, **(configured or {})}
    missing = [s for s in universe if s not in table]
    if missing:
        raise ConfigError([f"exchange.paper.products: no product metadata for {s}" for s in missing])
    return {s: table[s] for s in universe}


@dataclass(frozen=True)
class PaperConfig:
    wallet: str = DEFAULT_WALLET
    initial_balance_usd: Decimal = Decimal(10000)
    maker_fee: Decimal = Decimal("0.00015")
    taker_fee: Decimal = Decimal("0.00045")
    slippage_bps: Decimal = Decimal(2)
    half_spread_bps: Decimal = Decimal(1)
    maker_fill_rule: Literal["through", "touch"] = "through"
    leverage: int = 10
    default_funding_hourly: Decimal = Decimal("0.0000125")
    products: Mapping[str, ProductMeta] = field(default_factory=lambda: dict(DEFAULT_PRODUCTS))

    def __post_init__(self) -> None:
        for name in (
            "initial_balance_usd",
            "maker_fee",
            "taker_fee",
            "slippage_bps",
            "half_spread_bps",
            "default_funding_hourly",
        ):
            object.__setattr__(self, name, to_decimal(getattr(self, name)))
        if self.maker_fill_rule not in ("through", "touch"):
            raise ConfigError(
                [f"exchange.paper.maker_fill_rule: expected through or touch, got {self.maker_fill_rule!r}"]
            )
        if self.leverage < 1:
            raise ConfigError([f"exchange.paper.leverage: must be ≥ 1, got {self.leverage}"])
        object.__setattr__(self, "wallet", self.wallet.lower())


FundingRateSource = Callable[[str, float], "Decimal | float"]
OhlcvSource = Callable[[str, str, int, int], list[Bar]]


class PaperExchange:
    """The paper engine. Wallet-aware so `3t sim-exchange` can serve several accounts; every adapter
    method defaults to the configured wallet."""

    def __init__(
        self,
        config: PaperConfig,
        clock: Clock,
        *,
        store: PaperStore | None = None,
        funding_rate: FundingRateSource | None = None,
        ohlcv: OhlcvSource | None = None,
    ) -> None:
        self.config = config
        self.products: dict[str, ProductMeta] = dict(config.products)
        self._by_coin = {p.api_coin: p for p in self.products.values()}
        self._clock = clock
        self._store: PaperStore = store if store is not None else InMemoryPaperStore()
        self._funding_rate = funding_rate
        self._ohlcv = ohlcv
        self._prices: dict[str, Decimal] = {}
        if self._store.funding_hour() is None:
            self._store.set_funding_hour(self._hour())

    @property
    def store(self) -> PaperStore:
        return self._store

    # --- time, prices, accounts -------------------------------------------------------------------

    def _now_ms(self) -> int:
        return round(self._clock.now() * 1000)

    def _hour(self) -> int:
        return math.floor(self._clock.now() / 3600)

    def price(self, symbol: str) -> Decimal | None:
        return self._prices.get(symbol)

    def quotes(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(bid, ask) = P·(1 ∓ h)."""
        p = self._prices[symbol]
        h = self.config.half_spread_bps / Decimal(10_000)
        with localcontext(_CONTEXT):
            return p * (1 - h), p * (1 + h)

    def taker_prices(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(buy, sell) = (ask·(1 + s), bid·(1 − s))."""
        bid, ask = self.quotes(symbol)
        s = self.config.slippage_bps / Decimal(10_000)
        with localcontext(_CONTEXT):
            return ask * (1 + s), bid * (1 - s)

    def _wallet(self, wallet: str | None) -> str:
        w = (wallet or self.config.wallet).lower()
        if self._store.cash(w) is None:
            self._store.set_cash(w, Decimal(0))
            self._credit(w, "deposit", None, self.config.initial_balance_usd, "initial_balance")
        return w

    @_exact
    def deposit(self, wallet: str, amount: Decimal | float | int) -> None:
        """Create (or top up) an account; the sim-exchange's `--wallet ADDR=BALANCE`."""
        w = wallet.lower()
        if self._store.cash(w) is None:
            self._store.set_cash(w, Decimal(0))
        self._credit(w, "deposit", None, to_decimal(amount), "deposit")

    def _credit(self, wallet: str, kind: LedgerKind, symbol: str | None, amount: Decimal, ref: str) -> None:
        cash = self._store.cash(wallet) or Decimal(0)
        self._store.set_cash(wallet, cash + amount)
        self._store.add_ledger(wallet, self._now_ms(), kind, symbol, amount, ref)

    def _leverage(self, wallet: str, symbol: str) -> int:
        product = self.products[symbol]
        chosen = self._store.leverage(wallet, symbol)
        return min(chosen if chosen is not None else self.config.leverage, product.max_leverage)

    def _upnl(self, pos: PaperPosition) -> Decimal:
        return pos.size * self._prices[pos.symbol] - pos.cost

    @_exact
    def account_value(self, wallet: str | None = None) -> Decimal:
        w = self._wallet(wallet)
        cash = self._store.cash(w) or Decimal(0)
        return cash + sum((self._upnl(p) for p in self._store.positions(w)), Decimal(0))

    def _initial_margin(self, wallet: str, sizes: Mapping[str, Decimal]) -> Decimal:
        return sum(
            (abs(size) * self._prices[s] / self._leverage(wallet, s) for s, size in sizes.items()),
            Decimal(0),
        )

    def _maintenance(self, wallet: str) -> Decimal:
        return sum(
            (
                abs(p.size) * self._prices[p.symbol] / (2 * self.products[p.symbol].max_leverage)
                for p in self._store.positions(wallet)
            ),
            Decimal(0),
        )

    # --- events -----------------------------------------------------------------------------------

    @_exact
    def on_price(self, symbol: str, price: Decimal | float | int) -> list[Fill]:
        """A price event: settle due funding first (at the previous price), then fill resting orders the
        new price has reached, then check liquidation."""
        if symbol not in self.products:
            return []
        p = to_decimal(price)
        if not p.is_finite() or p <= 0:
            raise ValueError(f"price event for {symbol}: price must be a finite number > 0, got {price}")
        if symbol not in self._prices:
            self._prices[symbol] = p  # first price after a restart: funding needs a price to settle at
        self._settle_hours()
        self._prices[symbol] = p
        fills: list[Fill] = []
        touch = self.config.maker_fill_rule == "touch"
        for order in self._store.open_orders(symbol=symbol):
            hit = (
                (p < order.price or (touch and p == order.price))
                if order.side == "buy"
                else (p > order.price or (touch and p == order.price))
            )
            if not hit:
                continue
            if order.reduce_only and self._would_increase(order.wallet, symbol, order.side, order.remaining):
                self._store.put_order(replace(order, status="canceled", closed_ms=self._now_ms()))
                continue
            fills.append(self._fill(order, order.price, "maker"))
        for wallet in self._store.wallets():
            fills.extend(self._check_liquidation(wallet))
        return fills

    @_exact
    def on_clock(self) -> list[Fill]:
        """Settle every whole hour the Clock has passed (the driver calls this after moving the Clock)."""
        return self._settle_hours()

    def _settle_hours(self) -> list[Fill]:
        last = self._store.funding_hour()
        current = self._hour()
        fills: list[Fill] = []
        if last is None:
            self._store.set_funding_hour(current)
            return fills
        for hour in range(last + 1, current + 1):
            if any(
                pos.symbol not in self._prices
                for w in self._store.wallets()
                for pos in self._store.positions(w)
            ):
                break  # a position without a price yet (just restarted): settle this hour at its first price
            for wallet in self._store.wallets():
                for pos in self._store.positions(wallet):
                    p = self._prices[pos.symbol]
                    rate = to_decimal(self._rate(pos.symbol, hour * 3600.0))
                    paid = pos.size * p * rate
                    self._store.put_position(
                        replace(
                            pos,
                            cum_funding=pos.cum_funding + paid,
                            funding_since_open=pos.funding_since_open + paid,
                        )
                    )
                    self._credit(wallet, "funding", pos.symbol, -paid, f"hour:{hour}")
                fills.extend(self._check_liquidation(wallet))
            self._store.set_funding_hour(hour)
        return fills

    def _rate(self, symbol: str, at_s: float) -> Decimal | float:
        if self._funding_rate is None:
            return self.config.default_funding_hourly
        return self._funding_rate(symbol, at_s)

    def _check_liquidation(self, wallet: str) -> list[Fill]:
        positions = self._store.positions(wallet)
        if any(p.symbol not in self._prices for p in positions):
            return []  # a held symbol has no price yet (just restarted): never liquidate on a guess
        if not positions or self.account_value(wallet) >= self._maintenance(wallet):
            return []
        now = self._now_ms()
        for order in self._store.open_orders(wallet=wallet):
            self._store.put_order(replace(order, status="canceled", closed_ms=now))
        fills = []
        for pos in positions:
            side: Side = "sell" if pos.size > 0 else "buy"
            order = PaperOrder(
                oid=self._store.next_oid(),
                cloid=None,
                wallet=wallet,
                symbol=pos.symbol,
                side=side,
                price=self._prices[pos.symbol],
                size=abs(pos.size),
                remaining=abs(pos.size),
                tif="Ioc",
                reduce_only=True,
                status="open",
                created_ms=now,
            )
            self._store.put_order(order)
            fills.append(self._fill(order, self._prices[pos.symbol], "taker", liquidation=True))
        return fills

    # --- fills and positions -----------------------------------------------------------------------

    def _would_increase(self, wallet: str, symbol: str, side: Side, size: Decimal) -> bool:
        pos = self._store.position(wallet, symbol)
        current = pos.size if pos is not None else Decimal(0)
        signed = size if side == "buy" else -size
        return current == 0 or (current > 0) == (signed > 0) or abs(signed) > abs(current)

    def _fill(
        self, order: PaperOrder, price: Decimal, liquidity: Liquidity, *, liquidation: bool = False
    ) -> Fill:
        wallet, symbol, size = order.wallet, order.symbol, order.remaining
        now = self._now_ms()
        signed = size if order.side == "buy" else -size
        pos = self._store.position(wallet, symbol) or PaperPosition(wallet, symbol, Decimal(0), Decimal(0))
        realised = Decimal(0)
        opening = signed
        if pos.size != 0 and (pos.size > 0) != (signed > 0):
            closed = min(abs(signed), abs(pos.size)) * (1 if pos.size > 0 else -1)
            if closed == pos.size:
                cost_removed = pos.cost
            else:
                cost_removed = (pos.cost * closed / pos.size).quantize(_CASH_QUANTUM)
            realised = closed * price - cost_removed
            pos = replace(pos, size=pos.size - closed, cost=pos.cost - cost_removed)
            opening = signed + closed
            if pos.size == 0:
                pos = replace(pos, cost=Decimal(0), funding_since_open=Decimal(0))
        if opening != 0:
            pos = replace(pos, size=pos.size + opening, cost=pos.cost + opening * price)
        self._store.put_position(replace(pos, updated_ms=now))
        rate = self.config.maker_fee if liquidity == "maker" else self.config.taker_fee
        fee = size * price * rate
        tid = self._store.next_tid()
        if realised != 0:
            self._credit(
                wallet, "liquidation" if liquidation else "realized_pnl", symbol, realised, f"tid:{tid}"
            )
        if fee != 0:
            self._credit(wallet, "fee", symbol, -fee, f"tid:{tid}")
        fill = Fill(
            tid=tid,
            oid=order.oid,
            cloid=order.cloid,
            symbol=symbol,
            side=order.side,
            price=price,
            size=size,
            fee=fee,
            liquidity=liquidity,
            closed_pnl=realised,
            ts_ms=now,
            liquidation=liquidation,
        )
        self._store.add_trade(wallet, fill)
        self._store.put_order(
            replace(
                order,
                status="filled",
                remaining=Decimal(0),
                filled_size=order.size,
                avg_price=price,
                closed_ms=now,
            )
        )
        return fill

    # --- orders -----------------------------------------------------------------------------------

    @_exact
    def place_order(self, request: OrderRequest, wallet: str | None = None) -> PlaceResult:
        self._settle_hours()
        w = self._wallet(wallet)
        error = self._validate(w, request)
        if error == ERR_DUPLICATE_CLOID:
            return PlaceResult("error", error_text=error)
        order = PaperOrder(
            oid=self._store.next_oid(),
            cloid=request.cloid.lower() if request.cloid else None,
            wallet=w,
            symbol=request.symbol,
            side=request.side,
            price=request.limit_price,
            size=request.size,
            remaining=request.size,
            tif=request.tif,
            reduce_only=request.reduce_only,
            status="open",
            created_ms=self._now_ms(),
        )
        if error is None:
            error = self._cross_error(order)
        if error is not None:
            self._store.put_order(
                replace(order, status="rejected", closed_ms=order.created_ms, error_text=error)
            )
            return PlaceResult("error", error_text=error)
        buy_taker, sell_taker = self.taker_prices(order.symbol)
        taker = buy_taker if order.side == "buy" else sell_taker
        crosses = order.price >= taker if order.side == "buy" else order.price <= taker
        if order.tif != "Alo" and crosses:
            fill = self._fill(order, taker, "taker")
            self._check_liquidation(w)
            return PlaceResult("filled", oid=order.oid, filled_size=fill.size, avg_price=fill.price)
        self._store.put_order(order)
        return PlaceResult("resting", oid=order.oid)

    def _validate(self, wallet: str, r: OrderRequest) -> str | None:
        """The checks of §7.2 in their normative order; None when the order may go to matching."""
        product = self.products.get(r.symbol)
        if product is None:
            return f"Unknown symbol {r.symbol}."
        if r.side not in ("buy", "sell") or r.tif not in ("Alo", "Ioc", "Gtc"):
            return f"Invalid order: side {r.side!r}, tif {r.tif!r}."
        size = r.size
        if not size.is_finite() or size <= 0 or size % product.lot_size != 0:
            return ERR_INVALID_SIZE
        if not is_valid_price(r.limit_price, product.sz_decimals):
            return ERR_INVALID_PRICE
        if r.reduce_only and self._would_increase(wallet, r.symbol, r.side, size):
            return ERR_REDUCE_ONLY
        if not r.reduce_only and size * r.limit_price < product.min_notional:
            return ERR_MIN_VALUE
        if r.symbol not in self._prices:
            return f"No reference price for {r.symbol}."
        sizes = {p.symbol: p.size for p in self._store.positions(wallet)}
        before = self._initial_margin(wallet, sizes)
        sizes[r.symbol] = sizes.get(r.symbol, Decimal(0)) + (size if r.side == "buy" else -size)
        after = self._initial_margin(wallet, sizes)
        if after > self.account_value(wallet) and after > before:
            return ERR_MARGIN
        if r.cloid is not None and self._store.order_by_cloid(wallet, r.cloid) is not None:
            return ERR_DUPLICATE_CLOID
        return None

    def _cross_error(self, order: PaperOrder) -> str | None:
        bid, ask = self.quotes(order.symbol)
        if order.tif == "Alo":
            crosses = order.price >= ask if order.side == "buy" else order.price <= bid
            if crosses:
                return ERR_POST_ONLY.format(bid=fmt_decimal(bid), ask=fmt_decimal(ask))
        if order.tif == "Ioc":
            buy_taker, sell_taker = self.taker_prices(order.symbol)
            fills = order.price >= buy_taker if order.side == "buy" else order.price <= sell_taker
            if not fills:
                return ERR_IOC_NO_MATCH
        return None

    @_exact
    def cancel(
        self, symbol: str, cloids: Sequence[str] = (), oids: Sequence[int] = (), wallet: str | None = None
    ) -> dict[str, str]:
        w = self._wallet(wallet)
        result: dict[str, str] = {}
        targets: list[tuple[str, PaperOrder | None]] = [
            (c, self._store.order_by_cloid(w, c)) for c in cloids
        ] + [(str(o), self._store.order_by_oid(w, o)) for o in oids]
        for key, order in targets:
            if order is None or order.status != "open" or order.symbol != symbol:
                result[key] = ERR_CANCEL_MISSING
                continue
            self._store.put_order(replace(order, status="canceled", closed_ms=self._now_ms()))
            result[key] = "success"
        return result

    def order_status(
        self, cloid: str | None = None, oid: int | None = None, wallet: str | None = None
    ) -> OrderStatus:
        w = self._wallet(wallet)
        order = None
        if cloid is not None:
            order = self._store.order_by_cloid(w, cloid)
        elif oid is not None:
            order = self._store.order_by_oid(w, oid)
        if order is None:
            return OrderStatus("unknown", oid=oid, cloid=cloid)
        return OrderStatus(
            order.status,
            oid=order.oid,
            cloid=order.cloid,
            symbol=order.symbol,
            filled_size=order.filled_size,
            avg_price=order.avg_price,
            error_text=order.error_text,
        )

    def fetch_open_orders(self, symbol: str | None = None, wallet: str | None = None) -> list[OpenOrder]:
        w = self._wallet(wallet)
        return [
            OpenOrder(o.oid, o.cloid, o.symbol, o.side, o.price, o.remaining, o.reduce_only, o.created_ms)
            for o in self._store.open_orders(wallet=w, symbol=symbol)
        ]

    def fetch_fills(self, since_ms: int, wallet: str | None = None) -> list[Fill]:
        return self._store.trades(self._wallet(wallet), since_ms)

    def ledger(self, wallet: str | None = None) -> list[Any]:
        return list(self._store.ledger(self._wallet(wallet)))

    # --- other adapter reads ----------------------------------------------------------------------

    def load_products(self) -> list[ProductMeta]:
        return list(self.products.values())

    def fetch_mids(self) -> dict[str, Any]:
        return {self.products[s].api_coin: p for s, p in self._prices.items()}

    @_exact
    def fetch_funding(self) -> dict[str, Any]:
        now = self._hour() * 3600.0
        return {p.api_coin: to_decimal(self._rate(s, now)) for s, p in self.products.items()}

    def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[Bar]:
        if self._ohlcv is None:
            raise PreconditionError(
                "the paper exchange has no bar source; bars come from the market data source"
            )
        return self._ohlcv(symbol, timeframe, since_ms, until_ms)

    def set_isolated_leverage(self, symbol: str, leverage: int, wallet: str | None = None) -> str | None:
        product = self.products.get(symbol)
        if product is None:
            return f"Unknown symbol {symbol}."
        if not 1 <= leverage <= product.max_leverage:
            return f"Invalid leverage value {leverage}: must be between 1 and {product.max_leverage}."
        self._store.set_leverage(self._wallet(wallet), symbol, leverage)
        return None

    # --- rendering --------------------------------------------------------------------------------

    @_exact
    def fetch_account(
        self, wallet: str | None = None, dexes: Sequence[str] = ("",)
    ) -> dict[str, dict[str, Any]]:
        """`clearinghouseState` per requested dex in Hyperliquid's shape. A HIP-3 product lives on the
        dex of its api coin (`xyz:CL` → `xyz`); its margin is carried there as isolated collateral, so
        the dexes' account values add up to the single paper account value."""
        self._settle_hours()
        w = self._wallet(wallet)
        return {dex: self._render(w, dex) for dex in dexes}

    def clearinghouse_state(self, wallet: str | None = None, dex: str = "") -> dict[str, Any]:
        return self.fetch_account(wallet, (dex,))[dex]

    def _dex_of(self, symbol: str) -> str:
        coin = self.products[symbol].api_coin
        return coin.split(":", 1)[0] if ":" in coin else ""

    def _render(self, wallet: str, dex: str) -> dict[str, Any]:
        positions = self._store.positions(wallet)
        cash = self._store.cash(wallet) or Decimal(0)
        av_total = cash + sum((self._upnl(p) for p in positions), Decimal(0))
        im_total = sum(
            (abs(p.size) * self._prices[p.symbol] / self._leverage(wallet, p.symbol) for p in positions),
            Decimal(0),
        )
        withdrawable = max(Decimal(0), av_total - im_total)
        mine = [p for p in positions if self._dex_of(p.symbol) == dex]
        others = [p for p in positions if self._dex_of(p.symbol) != dex]
        rendered = []
        ntl = margin_used = maintenance = signed_ntl = upnl_sum = Decimal(0)
        for pos in mine:
            p = self._prices[pos.symbol]
            product = self.products[pos.symbol]
            lev = self._leverage(wallet, pos.symbol)
            value = abs(pos.size) * p
            upnl = self._upnl(pos)
            used = value / lev
            ntl += value
            signed_ntl += pos.size * p
            margin_used += used
            upnl_sum += upnl
            maintenance += value / (2 * product.max_leverage)
            entry = pos.cost / pos.size
            entry_margin = abs(pos.cost) / lev
            roe = upnl / entry_margin if entry_margin else Decimal(0)
            rendered.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": product.api_coin,
                        "szi": fmt_decimal(pos.size),
                        "leverage": {
                            "type": "cross" if product.margin_mode == "cross" else "isolated",
                            "value": lev,
                        },
                        "entryPx": fmt_decimal(entry.quantize(_DISPLAY_QUANTUM)),
                        "positionValue": fmt_usd(value),
                        "unrealizedPnl": fmt_usd(upnl),
                        "returnOnEquity": fmt_decimal(roe.quantize(_DISPLAY_QUANTUM)),
                        "liquidationPx": self._liquidation_px(wallet, pos, av_total),
                        "marginUsed": fmt_usd(used),
                        "maxLeverage": product.max_leverage,
                        "maxTradeSzs": self._max_trade_sizes(pos, withdrawable, lev),
                        "cumFunding": {
                            "allTime": fmt_usd(pos.cum_funding),
                            "sinceOpen": fmt_usd(pos.funding_since_open),
                            "sinceChange": fmt_usd(pos.funding_since_open),
                        },
                    },
                }
            )
        if dex == "":
            other_collateral = sum(
                (
                    abs(p.size) * self._prices[p.symbol] / self._leverage(wallet, p.symbol) + self._upnl(p)
                    for p in others
                ),
                Decimal(0),
            )
            account_value = av_total - other_collateral
        else:
            account_value = margin_used + upnl_sum
        summary = {
            "accountValue": fmt_usd(account_value),
            "totalNtlPos": fmt_usd(ntl),
            "totalRawUsd": fmt_usd(account_value - signed_ntl),
            "totalMarginUsed": fmt_usd(margin_used),
        }
        return {
            "marginSummary": summary,
            "crossMarginSummary": dict(summary),
            "crossMaintenanceMarginUsed": fmt_usd(maintenance),
            "withdrawable": fmt_usd(withdrawable if dex == "" else Decimal(0)),
            "assetPositions": rendered,
            "time": self._now_ms(),
        }

    def _liquidation_px(self, wallet: str, pos: PaperPosition, account_value: Decimal) -> str | None:
        """Price of this position at which account value meets total maintenance, others held."""
        p = self._prices[pos.symbol]
        max_lev = self.products[pos.symbol].max_leverage
        others_mm = self._maintenance(wallet) - abs(pos.size) * p / (2 * max_lev)
        denominator = abs(pos.size) / (2 * max_lev) - pos.size
        if denominator == 0:
            return None
        px = (account_value - pos.size * p - others_mm) / denominator
        return fmt_decimal(px.quantize(_DISPLAY_QUANTUM)) if px > 0 else None

    def _max_trade_sizes(self, pos: PaperPosition, withdrawable: Decimal, lev: int) -> list[str]:
        lot = self.products[pos.symbol].lot_size
        fresh = withdrawable * lev / self._prices[pos.symbol]
        buy = fresh + (abs(pos.size) * 2 if pos.size < 0 else Decimal(0))
        sell = fresh + (abs(pos.size) * 2 if pos.size > 0 else Decimal(0))
        return [fmt_decimal((x / lot).to_integral_value(rounding="ROUND_FLOOR") * lot) for x in (buy, sell)]
