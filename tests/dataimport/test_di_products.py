"""`ttt.products.sync`: exchanges / instruments / products rows from the paper configuration and from the
Hyperliquid adapter (against a running sim-exchange)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import Engine

from tests.dataimport.di_support import FixedClock
from tests.exchange.conftest import AGENT_KEY, WALLET, SimServer, sim_factory  # noqa: F401 (fixture)
from ttt.adapters.cache.locks import MemoryLockManager
from ttt.adapters.db.uow import UnitOfWork
from ttt.adapters.exchange.hyperliquid import HyperliquidAdapter, HyperliquidSettings
from ttt.domain.orders import ProductMeta
from ttt.services.locking import LockBusy
from ttt.services.products_sync import (
    PRODUCTS_LOCK,
    ConfiguredProducts,
    ProductSyncError,
    Venue,
    instrument_name,
    products_sync,
    sync_products,
    venue_from_config,
)

PAPER = Venue("paper", "paper")


def cfg_product(sz: int, lev: int, mode: str = "cross") -> SimpleNamespace:
    return SimpleNamespace(sz_decimals=sz, max_leverage=lev, margin_mode=mode)


def product_rows(engine: Engine, venue: str) -> dict[str, dict[str, object]]:
    with UnitOfWork(engine, read_only=True) as uow:
        exchange = uow.venues.exchange_by_name(venue)
        assert exchange is not None
        instruments = {i.id: i.name for i in uow.venues.instruments()}
        return {
            p.symbol: {**p.as_dict(), "instrument": instruments[p.instrument_id]}
            for p in uow.venues.products(exchange.id)
        }


def test_paper_products_from_configuration(engine: Engine) -> None:
    configured = {
        "BTC/USDC:USDC": cfg_product(5, 50),  # overrides the built-in 40×
        "XYZ-CL/USDC:USDC": cfg_product(2, 10, "isolated"),
    }
    t1 = FixedClock(1_767_225_600.0)
    result = sync_products(engine, ConfiguredProducts(configured), PAPER, t1)
    symbols = ["BTC/USDC:USDC", "ETH/USDC:USDC", "HYPE/USDC:USDC", "SOL/USDC:USDC", "XYZ-CL/USDC:USDC"]
    assert sorted(result.created) == symbols and result.updated == [] and result.missing == []
    rows = product_rows(engine, "paper")
    assert sorted(rows) == symbols
    btc, xyz, eth = rows["BTC/USDC:USDC"], rows["XYZ-CL/USDC:USDC"], rows["ETH/USDC:USDC"]
    assert (btc["instrument"], btc["api_coin"], btc["max_leverage"], btc["sz_decimals"]) == (
        "BTC",
        "BTC",
        D(50),
        5,
    )
    assert (btc["lot_size"], btc["max_price_decimals"], btc["min_notional"]) == (D("0.00001"), 1, D(10))
    assert (btc["product_type"], btc["margin_mode"], btc["asset_id"]) == ("PERP", "cross", None)
    assert (eth["max_leverage"], eth["sz_decimals"], eth["lot_size"]) == (D(25), 4, D("0.0001"))
    assert (xyz["instrument"], xyz["api_coin"], xyz["margin_mode"]) == ("XYZ-CL", "xyz:CL", "isolated_only")
    assert btc["metadata_"]["max_leverage"] == 50 and btc["metadata_"]["source"] == "paper"

    configured["BTC/USDC:USDC"] = cfg_product(4, 20)
    del configured["XYZ-CL/USDC:USDC"]
    t2 = FixedClock(1_767_225_600.0 + 3600)
    again = sync_products(engine, ConfiguredProducts(configured), PAPER, t2)
    assert again.created == [] and sorted(again.updated) == symbols[:4]
    assert again.missing == ["XYZ-CL/USDC:USDC"]  # kept, orders may reference it
    rows2 = product_rows(engine, "paper")
    assert sorted(rows2) == symbols
    btc2 = rows2["BTC/USDC:USDC"]
    assert (btc2["max_leverage"], btc2["sz_decimals"], btc2["lot_size"]) == (D(20), 4, D("0.0001"))
    assert btc2["id"] == btc["id"] and btc2["created_at"] == btc["created_at"]
    assert btc2["refreshed_at"] == datetime.fromtimestamp(t2.t, UTC)
    with UnitOfWork(engine, read_only=True) as uow:
        assert len(uow.venues.exchanges()) == 1
        assert sorted(i.name for i in uow.venues.instruments()) == ["BTC", "ETH", "HYPE", "SOL", "XYZ-CL"]


class _Listing:
    def __init__(self, products: Sequence[ProductMeta] | Exception) -> None:
        self.products = products

    def load_products(self) -> Sequence[ProductMeta]:
        if isinstance(self.products, Exception):
            raise self.products
        return self.products


def test_an_unusable_listing_writes_nothing(lite: Engine) -> None:
    sync_products(lite, ConfiguredProducts({}), PAPER, FixedClock())
    before = product_rows(lite, "paper")
    with pytest.raises(ConnectionError):
        sync_products(lite, _Listing(ConnectionError("venue down")), PAPER, FixedClock(2e9))
    bad = [ProductMeta("BTC/USDC:USDC", 5, 40), ProductMeta("ETH/USDC:USDC", -1, 0)]
    with pytest.raises(ProductSyncError, match=r"'ETH/USDC:USDC': sz_decimals -1.*max_leverage 0 < 1"):
        sync_products(lite, _Listing(bad), PAPER, FixedClock(2e9))
    with pytest.raises(ProductSyncError, match="listed no products"):
        sync_products(lite, _Listing([]), PAPER, FixedClock(2e9))
    dup = [ProductMeta("BTC/USDC:USDC", 5, 40), ProductMeta("BTC/USDC:USDC", 4, 40)]
    with pytest.raises(ProductSyncError, match="listed twice"):
        sync_products(lite, _Listing(dup), PAPER, FixedClock(2e9))
    assert product_rows(lite, "paper") == before


def test_the_task_takes_its_lock(lite: Engine) -> None:
    locks = MemoryLockManager()
    token = locks.acquire(PRODUCTS_LOCK, 60)
    assert token is not None
    with pytest.raises(LockBusy):
        products_sync(lite, locks, FixedClock(), ConfiguredProducts({}), PAPER)
    locks.release(PRODUCTS_LOCK, token)
    assert len(products_sync(lite, locks, FixedClock(), ConfiguredProducts({}), PAPER).created) == 4


def test_hyperliquid_products_through_the_adapter(
    lite: Engine,
    sim_factory: Callable[..., SimServer],  # noqa: F811
) -> None:
    sim = sim_factory()
    adapter = HyperliquidAdapter(
        HyperliquidSettings(network="custom", base_url=sim.url, wallet_address=WALLET)
    )
    listed = {p.symbol: p for p in adapter.load_products()}
    assert "BTC/USDC:USDC" in listed
    venue = Venue("hyperliquid-custom", "hyperliquid", sim.url, None)
    result = sync_products(lite, adapter, venue, FixedClock())
    rows = product_rows(lite, "hyperliquid-custom")
    assert sorted(result.created) == sorted(listed) == sorted(rows)
    for symbol, meta in listed.items():
        row = rows[symbol]
        assert (row["api_coin"], row["asset_id"], row["sz_decimals"]) == (
            meta.api_coin,
            meta.asset_id,
            meta.sz_decimals,
        )
        assert row["max_leverage"] == D(meta.max_leverage) and row["instrument"] == instrument_name(symbol)
        assert row["lot_size"] == D(1).scaleb(-meta.sz_decimals)
    assert rows["BTC/USDC:USDC"]["asset_id"] == 0  # index in meta.universe
    with UnitOfWork(lite, read_only=True) as uow:
        ex = uow.venues.exchange_by_name("hyperliquid-custom")
        assert ex is not None and (ex.kind, ex.api_url) == ("hyperliquid", sim.url)


def test_venue_names_follow_the_configuration() -> None:
    def exchange(kind: str, network: str = "mainnet", base: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(
            kind=kind, hyperliquid=SimpleNamespace(network=network, base_url=base, ws_url=None)
        )

    assert venue_from_config(exchange("paper")) == Venue("paper", "paper")
    main = venue_from_config(exchange("hyperliquid"))
    assert (main.name, main.api_url, main.ws_url) == (
        "hyperliquid-mainnet",
        "https://api.hyperliquid.xyz",
        "wss://api.hyperliquid.xyz/ws",
    )
    assert venue_from_config(exchange("hyperliquid", "testnet")).name == "hyperliquid-testnet"
    custom = venue_from_config(exchange("hyperliquid", "custom", "http://127.0.0.1:9"))
    assert (custom.name, custom.api_url) == ("hyperliquid-custom", "http://127.0.0.1:9")
