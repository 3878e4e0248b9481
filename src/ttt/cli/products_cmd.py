"""`3t products sync` (services.md §12): product metadata from the exchange, or the paper configuration.

Register with `app.add_typer(products_app, name="products")`.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from sqlalchemy.engine import Engine

from ttt.cli.data_import_cmd import _WallClock, emit_unwrapped, state_of, with_migrated_engine

products_app = typer.Typer(
    name="products",
    help="Product metadata (size decimals, lot, max leverage, API coin, asset id).",
    no_args_is_help=True,
)


@products_app.callback()
def _products() -> None:
    """Product metadata."""


def _source(settings: Any) -> Any:
    """The paper configuration, or the Hyperliquid adapter of the configured network."""
    exchange = settings.config.exchange
    if exchange.kind == "paper":
        from ttt.services.products_sync import ConfiguredProducts

        return ConfiguredProducts(exchange.paper.products)
    from ttt.adapters.exchange.hyperliquid import HyperliquidAdapter, HyperliquidSettings

    return HyperliquidAdapter(HyperliquidSettings.from_config(exchange, settings.secrets))


@products_app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Load product metadata from the exchange (or exchange.paper.products) into the products table."""
    from ttt.services.products_sync import SyncResult, sync_products, venue_from_config

    def work(engine: Engine, settings: Any) -> SyncResult:
        venue = venue_from_config(settings.config.exchange)
        return sync_products(engine, _source(settings), venue, _WallClock())

    result = with_migrated_engine(ctx, work, process="cli")

    def render() -> Text:
        text = f"{result.venue}: {len(result.created)} product(s) created, {len(result.updated)} refreshed"
        if result.missing:
            text += f"; no longer listed (rows kept): {', '.join(result.missing)}"
        return Text(text)

    emit_unwrapped(state_of(ctx), result.as_dict(), render)
