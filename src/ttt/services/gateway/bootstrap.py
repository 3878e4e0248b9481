"""Wire a gateway from configuration: the one place that chooses adapters for `3t gateway` and for the
embedded runtime (services.md §1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from ttt.adapters.db.uow import UnitOfWork
from ttt.clock import WallClock
from ttt.domain.orders import ProductMeta
from ttt.domain.symbols import base
from ttt.ports import Cache, Clock, ExchangeAdapter, LockManager
from ttt.services.gateway.loops import GatewayLoops
from ttt.services.gateway.service import GatewayConfig, GatewayService
from ttt.services.gateway.support import (
    AuditAlertSink,
    CachePrices,
    FirstPrice,
    PaperPrices,
    PriceSource,
    SerializedExchange,
)
from ttt.telemetry.metrics import Metrics


def ensure_venue(
    engine: Engine, exchange_name: str, kind: str, products: Iterable[ProductMeta], now: float
) -> int:
    """The venue row and any product row still missing, from the venue's own metadata.

    Existing product rows are left as `3t products sync` wrote them. Returns the exchange id.
    """
    with UnitOfWork(engine) as uow:
        exchange = uow.venues.ensure_exchange(exchange_name, kind, now)
        existing = uow.venues.products_by_symbol(exchange.id)
        for p in products:
            if p.symbol in existing:
                continue
            instrument = uow.venues.ensure_instrument(base(p.symbol), now)
            uow.venues.upsert_product(
                exchange_id=exchange.id,
                instrument_id=instrument.id,
                symbol=p.symbol,
                now=now,
                metadata={"source": kind},
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
        return int(exchange.id)


@dataclass
class GatewayBundle:
    service: GatewayService
    loops: GatewayLoops
    exchange: Any


def paper_from_settings(settings: Any, clock: Clock) -> Any:
    """The in-process paper engine configured by `exchange.paper.*`."""
    from ttt.adapters.exchange.paper import PaperExchange

    return PaperExchange(paper_config_from_settings(settings), clock)


def paper_config_from_settings(settings: Any) -> Any:
    """`exchange.paper.*` as the engine's PaperConfig, products limited to the universe."""
    from ttt.adapters.exchange.paper import PaperConfig, paper_products

    paper = settings.config.exchange.paper
    products = {
        symbol: ProductMeta(
            symbol,
            sz_decimals=p.sz_decimals,
            max_leverage=p.max_leverage,
            margin_mode="cross" if p.margin_mode == "cross" else "isolated_only",
        )
        for symbol, p in paper.products.items()
    }
    config = PaperConfig(
        wallet=paper.wallet,
        initial_balance_usd=Decimal(repr(paper.initial_balance_usd)),
        maker_fee=Decimal(repr(paper.maker_fee)),
        taker_fee=Decimal(repr(paper.taker_fee)),
        slippage_bps=Decimal(repr(paper.slippage_bps)),
        half_spread_bps=Decimal(repr(paper.half_spread_bps)),
        maker_fill_rule=paper.maker_fill_rule,
        leverage=paper.leverage,
        default_funding_hourly=Decimal(repr(paper.default_funding_hourly)),
        products=paper_products(settings.config.universe.symbols, products),
    )
    return config


def build_gateway(
    settings: Any,
    *,
    engine: Engine,
    cache: Cache,
    locks: LockManager,
    clock: Clock | None = None,
    exchange: ExchangeAdapter | None = None,
    prices: PriceSource | None = None,
    metrics: Metrics | None = None,
) -> GatewayBundle:
    """A service and its loops over the configured venue (the paper engine unless one is given)."""
    clock = clock if clock is not None else WallClock()
    config = GatewayConfig.from_settings(settings)
    venue: Any = exchange
    if venue is None and settings.config.exchange.kind == "hyperliquid":
        # `3t gateway` in S2: the live venue, or `3t sim-exchange` reached as a custom network
        from ttt.adapters.exchange.hyperliquid import HyperliquidAdapter, HyperliquidSettings

        hl = HyperliquidSettings.from_config(settings.config.exchange, settings.secrets)
        venue = HyperliquidAdapter(hl, clock=clock, metrics=metrics)
    if venue is None:
        paper = paper_from_settings(settings, clock)
        venue = SerializedExchange(paper)
        if prices is None:
            prices = FirstPrice(CachePrices(cache), PaperPrices(venue, clock))
    if prices is None:
        prices = CachePrices(cache)
    ensure_venue(
        engine, config.exchange_name, settings.config.exchange.kind, venue.load_products(), clock.now()
    )
    alert = AuditAlertSink(
        engine, clock, metrics, config.actor, settings.config.observability.alerts.min_interval_s
    )
    service = GatewayService(
        engine=engine,
        exchange=venue,
        locks=locks,
        clock=clock,
        prices=prices,
        config=config,
        cache=cache,
        metrics=metrics,
        alert=alert,
    )
    return GatewayBundle(service=service, loops=GatewayLoops(service), exchange=venue)
