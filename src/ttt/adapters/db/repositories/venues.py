"""`exchanges`, `instruments` and `products` (services.md §4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ttt.adapters.db.models import Exchange, Instrument, Product
from ttt.adapters.db.types import as_utc

_PRODUCT_FIELDS = (
    "api_coin",
    "asset_id",
    "product_type",
    "margin_mode",
    "max_leverage",
    "sz_decimals",
    "lot_size",
    "max_price_decimals",
    "min_notional",
)


class VenueRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- exchanges ---------------------------------------------------------------------------------

    def exchange_by_name(self, name: str) -> Exchange | None:
        return self.session.scalars(sa.select(Exchange).where(Exchange.name == name)).one_or_none()

    def ensure_exchange(
        self,
        name: str,
        kind: str,
        now: datetime | float,
        *,
        api_url: str | None = None,
        ws_url: str | None = None,
    ) -> Exchange:
        """The venue row by name, created on first use; endpoints are refreshed when given."""
        row = self.exchange_by_name(name)
        if row is None:
            row = Exchange(name=name, kind=kind, api_url=api_url, ws_url=ws_url, created_at=as_utc(now))
            self.session.add(row)
            self.session.flush()
        else:
            if api_url is not None:
                row.api_url = api_url
            if ws_url is not None:
                row.ws_url = ws_url
        return row

    def exchanges(self) -> list[Exchange]:
        return list(self.session.scalars(sa.select(Exchange).order_by(Exchange.id)))

    # --- instruments -------------------------------------------------------------------------------

    def ensure_instrument(
        self, name: str, now: datetime | float, description: str | None = None
    ) -> Instrument:
        row = self.session.scalars(sa.select(Instrument).where(Instrument.name == name)).one_or_none()
        if row is None:
            row = Instrument(name=name, description=description, created_at=as_utc(now))
            self.session.add(row)
            self.session.flush()
        return row

    def instruments(self) -> list[Instrument]:
        return list(self.session.scalars(sa.select(Instrument).order_by(Instrument.id)))

    # --- products ----------------------------------------------------------------------------------

    def upsert_product(
        self,
        *,
        exchange_id: int,
        instrument_id: int,
        symbol: str,
        now: datetime | float,
        metadata: Any,
        **fields: Any,
    ) -> Product:
        """Create or refresh one product (`3t products sync`); `fields` are the §4.2 product columns."""
        unknown = set(fields) - set(_PRODUCT_FIELDS)
        if unknown:
            raise TypeError(f"unknown product field(s): {', '.join(sorted(unknown))}")
        at = as_utc(now)
        row = self.product(exchange_id, symbol)
        if row is None:
            missing = [f for f in _PRODUCT_FIELDS if f not in fields and f != "asset_id"]
            if missing:
                raise TypeError(f"new product {symbol} lacks field(s): {', '.join(missing)}")
            row = Product(
                exchange_id=exchange_id,
                instrument_id=instrument_id,
                symbol=symbol,
                metadata_=metadata,
                refreshed_at=at,
                created_at=at,
                **fields,
            )
            self.session.add(row)
        else:
            row.instrument_id = instrument_id
            row.metadata_ = metadata
            row.refreshed_at = at
            for key, value in fields.items():
                setattr(row, key, value)
        self.session.flush()
        return row

    def product(self, exchange_id: int, symbol: str) -> Product | None:
        stmt = sa.select(Product).where(Product.exchange_id == exchange_id, Product.symbol == symbol)
        return self.session.scalars(stmt).one_or_none()

    def product_by_id(self, product_id: int) -> Product | None:
        return self.session.get(Product, product_id)

    def products(self, exchange_id: int) -> list[Product]:
        stmt = sa.select(Product).where(Product.exchange_id == exchange_id).order_by(Product.symbol)
        return list(self.session.scalars(stmt))

    def products_by_symbol(self, exchange_id: int) -> Mapping[str, Product]:
        return {p.symbol: p for p in self.products(exchange_id)}
