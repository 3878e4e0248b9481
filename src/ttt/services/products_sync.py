"""`ttt.products.sync` and `3t products sync` (services.md §2.1, §4.2, §7.1, §12).

Product metadata (size decimals, lot, max leverage, API coin, asset id) comes from the venue's
`load_products()`: the Hyperliquid adapter's markets, or for the paper venue `exchange.paper.products`.
It is written into `exchanges`, `instruments` and `products` in one transaction.

The exchange is asked BEFORE the transaction opens, so a slow or failing venue never holds the database
(on SQLite a writing transaction holds the write lock). A failure writes nothing and the previous rows
stay: not knowing the products means keeping what we knew. Products the venue no longer lists are kept
too (orders reference them) and reported as `missing`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.paper import DEFAULT_PRODUCTS
from ttt.domain.orders import ProductMeta
from ttt.errors import TTTError
from ttt.ports import Clock, LockManager
from ttt.services.locking import run_locked

log = logging.getLogger(__name__)

PRODUCTS_LOCK = "products:sync"
PRODUCTS_LOCK_TTL_S = 600
PAPER_VENUE = "paper"
_HL_ENDPOINTS = {
    "mainnet": ("https://api.hyperliquid.xyz", "wss://api.hyperliquid.xyz/ws"),
    "testnet": ("https://api.hyperliquid-testnet.xyz", "wss://api.hyperliquid-testnet.xyz/ws"),
}


class ProductSource(Protocol):
    """The part of `ExchangeAdapter` this task needs."""

    def load_products(self) -> Sequence[ProductMeta]: ...


class ProductSyncError(TTTError):
    """The venue's product list could not be used; nothing was written."""


@dataclass(frozen=True)
class Venue:
    """One `exchanges` row: `paper`, or `hyperliquid-<network>` with its endpoints."""

    name: str
    kind: str
    api_url: str | None = None
    ws_url: str | None = None


def venue_from_config(exchange: Any) -> Venue:
    """From `config.exchange` (kind, hyperliquid.network, base_url, ws_url)."""
    if exchange.kind == "paper":
        return Venue(PAPER_VENUE, "paper")
    hl = exchange.hyperliquid
    if hl.network in _HL_ENDPOINTS:
        api, ws = _HL_ENDPOINTS[hl.network]
        return Venue(f"hyperliquid-{hl.network}", "hyperliquid", api, ws)
    return Venue("hyperliquid-custom", "hyperliquid", hl.base_url, hl.ws_url)


@dataclass(frozen=True)
class ConfiguredProducts:
    """The paper venue's products: the engine's built-in defaults overlaid with `exchange.paper.products`
    (symbol → sz_decimals, max_leverage, margin_mode), i.e. exactly what the paper engine can trade. The
    configuration's `isolated` is the table's `isolated_only`."""

    products: Mapping[str, Any]

    def load_products(self) -> list[ProductMeta]:
        table = dict(DEFAULT_PRODUCTS)
        for symbol, p in self.products.items():
            table[symbol] = ProductMeta(
                symbol=symbol,
                sz_decimals=int(p.sz_decimals),
                max_leverage=int(p.max_leverage),
                margin_mode="cross" if p.margin_mode == "cross" else "isolated_only",
            )
        return [table[s] for s in sorted(table)]


@dataclass(frozen=True)
class SyncResult:
    venue: str
    exchange_id: int
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.venue,
            "exchange_id": self.exchange_id,
            "created": self.created,
            "updated": self.updated,
            "missing": self.missing,
        }


def instrument_name(symbol: str) -> str:
    """The underlying, the base of the CCXT symbol: `BTC/USDC:USDC` → `BTC`, `XYZ-CL/USDC:USDC` → `XYZ-CL`."""
    return symbol.split("/", 1)[0]


def _checked(products: Sequence[ProductMeta], venue: Venue) -> list[ProductMeta]:
    problems: list[str] = []
    seen: set[str] = set()
    for p in products:
        where = f"{venue.name}: product {p.symbol!r}"
        if not p.symbol or "/" not in p.symbol or len(p.symbol) > 64:
            problems.append(f"{where}: symbol must be BASE/QUOTE[:SETTLE], at most 64 characters")
        if p.symbol in seen:
            problems.append(f"{where}: listed twice")
        seen.add(p.symbol)
        if not 0 <= p.sz_decimals <= 18:
            problems.append(f"{where}: sz_decimals {p.sz_decimals} outside 0–18")
        if p.max_leverage < 1:
            problems.append(f"{where}: max_leverage {p.max_leverage} < 1")
        if p.margin_mode not in ("cross", "isolated_only"):
            problems.append(f"{where}: margin_mode {p.margin_mode!r} is not cross or isolated_only")
        if not p.api_coin or len(p.api_coin) > 64:
            problems.append(f"{where}: api coin {p.api_coin!r} must be 1–64 characters")
    if not products:
        problems.append(f"{venue.name}: the venue listed no products")
    if problems:
        raise ProductSyncError("products sync wrote nothing: " + "; ".join(problems))
    return list(products)


def _metadata(p: ProductMeta, venue: Venue) -> dict[str, Any]:
    return {
        "source": venue.kind,
        "symbol": p.symbol,
        "api_coin": p.api_coin,
        "asset_id": p.asset_id,
        "sz_decimals": p.sz_decimals,
        "max_leverage": p.max_leverage,
        "margin_mode": p.margin_mode,
        "product_type": p.product_type,
        "min_notional": str(p.min_notional),
    }


def sync_products(engine: Engine, source: ProductSource, venue: Venue, clock: Clock) -> SyncResult:
    """Load the venue's products and upsert them; raises (writing nothing) when the list is unusable."""
    products = _checked(source.load_products(), venue)
    now = datetime.fromtimestamp(clock.now(), UTC)
    created: list[str] = []
    updated: list[str] = []
    with UnitOfWork(engine) as uow:
        exchange = uow.venues.ensure_exchange(
            venue.name, venue.kind, now, api_url=venue.api_url, ws_url=venue.ws_url
        )
        known = dict(uow.venues.products_by_symbol(exchange.id))
        for p in products:
            instrument = uow.venues.ensure_instrument(instrument_name(p.symbol), now)
            uow.venues.upsert_product(
                exchange_id=exchange.id,
                instrument_id=instrument.id,
                symbol=p.symbol,
                now=now,
                metadata=_metadata(p, venue),
                api_coin=p.api_coin,
                asset_id=p.asset_id,
                product_type=p.product_type,
                margin_mode=p.margin_mode,
                max_leverage=Decimal(p.max_leverage),
                sz_decimals=p.sz_decimals,
                lot_size=p.lot_size,
                max_price_decimals=p.max_price_decimals,
                min_notional=p.min_notional,
            )
            (updated if p.symbol in known else created).append(p.symbol)
        listed = {p.symbol for p in products}
        missing = sorted(s for s in known if s not in listed)
        result = SyncResult(venue.name, int(exchange.id), created, updated, missing)
    if missing:
        log.warning("products sync: %s no longer lists %s; their rows are kept", venue.name, missing)
    log.info("products sync %s: %d created, %d refreshed", venue.name, len(created), len(updated))
    return result


def products_sync(
    engine: Engine, locks: LockManager, clock: Clock, source: ProductSource, venue: Venue
) -> SyncResult:
    """The scheduled task (and startup one-off): raises `LockBusy` when another sync holds the lock."""
    return run_locked(
        locks, PRODUCTS_LOCK, PRODUCTS_LOCK_TTL_S, lambda _t: sync_products(engine, source, venue, clock)
    )


__all__ = [
    "PRODUCTS_LOCK",
    "ConfiguredProducts",
    "ProductSource",
    "ProductSyncError",
    "SyncResult",
    "Venue",
    "instrument_name",
    "products_sync",
    "sync_products",
    "venue_from_config",
]
