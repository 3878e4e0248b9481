"""Plain order and market types shared by every exchange adapter and market-data source.

They carry no behaviour beyond small derived properties, so the paper engine, the Hyperliquid adapter and
the gateway agree on one vocabulary. Sizes, prices and money are `Decimal` (exact, as persisted); bars are
floats because strategy arithmetic is IEEE double (portfolio.md §0).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Side = Literal["buy", "sell"]
TimeInForce = Literal["Alo", "Ioc", "Gtc"]
PlaceStatus = Literal["resting", "filled", "error"]
Liquidity = Literal["maker", "taker"]
MarginMode = Literal["cross", "isolated_only"]
OrderState = Literal["open", "filled", "canceled", "rejected", "unknown"]

TIME_IN_FORCES: tuple[TimeInForce, ...] = ("Alo", "Ioc", "Gtc")


def api_coin_for(symbol: str) -> str:
    """Exchange coin derived from a CCXT symbol when the products table has none (portfolio.md §0)."""
    base = symbol.split("/", 1)[0]
    if "-" in base:
        dex, rest = base.split("-", 1)
        return f"{dex.lower()}:{rest}"
    return base


def is_valid_price(price: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid perp price rule (portfolio.md §9.3): an integer, or ≤ 5 significant figures and at
    most 6 − sz_decimals decimals. Non-positive and non-finite prices are never valid."""
    if not price.is_finite() or price <= 0:
        return False
    if price == price.to_integral_value():
        return True
    normal = price.normalize()
    _, digits, exponent = normal.as_tuple()
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    significant = len(digits)
    return significant <= 5 and decimals <= 6 - sz_decimals


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    size: Decimal
    limit_price: Decimal
    tif: TimeInForce
    reduce_only: bool = False
    cloid: str | None = None


@dataclass(frozen=True)
class PlaceResult:
    status: PlaceStatus
    oid: int | None = None
    filled_size: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    error_text: str | None = None


@dataclass(frozen=True)
class ProductMeta:
    symbol: str
    sz_decimals: int
    max_leverage: int
    margin_mode: MarginMode = "cross"
    api_coin: str = ""
    min_notional: Decimal = Decimal(10)
    asset_id: int | None = None
    product_type: Literal["PERP", "HIP3_PERP"] = "PERP"

    def __post_init__(self) -> None:
        if not self.api_coin:
            object.__setattr__(self, "api_coin", api_coin_for(self.symbol))

    @property
    def lot_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.sz_decimals)

    @property
    def max_price_decimals(self) -> int:
        return 6 - self.sz_decimals


@dataclass(frozen=True)
class Fill:
    tid: int
    oid: int
    cloid: str | None
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    liquidity: Liquidity
    closed_pnl: Decimal
    ts_ms: int
    fee_token: str = "USDC"
    liquidation: bool = False


@dataclass(frozen=True)
class OpenOrder:
    oid: int
    cloid: str | None
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    reduce_only: bool
    timestamp: int


@dataclass(frozen=True)
class OrderStatus:
    """`status` is `unknown` when the exchange has no record of the id (never taken as success)."""

    status: OrderState
    oid: int | None = None
    cloid: str | None = None
    symbol: str | None = None
    filled_size: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    error_text: str | None = None


@dataclass(frozen=True)
class Bar:
    symbol: str
    timeframe: str
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    is_final: bool = True
