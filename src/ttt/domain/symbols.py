"""Symbols, bases and exchange coin names (portfolio.md §0, §6.3, §21.10).

Coin names are compared case-insensitively because the exchange and observers do not agree on case
(`kPEPE`), but a match must be unambiguous: two coins differing only in case are never guessed between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MAIN_DEX = ""


def base(symbol: str) -> str:
    """The text before the first `/`; a string without `/` is its own base. Case is kept."""
    return symbol.split("/", 1)[0]


def derive_api_coin(symbol: str) -> str:
    """The coin name implied by a symbol when the product row has none (`XYZ-CL/...` → `xyz:CL`)."""
    b = base(symbol)
    if "-" in b:
        dex, rest = b.split("-", 1)
        return f"{dex.lower()}:{rest}"
    return b


def api_coin(symbol: str, product_api_coin: str | None = None) -> str:
    """`products.api_coin` when known, otherwise the derived name."""
    if product_api_coin:
        return product_api_coin
    return derive_api_coin(symbol)


def coin_dex(coin: str) -> str:
    """The dex a coin trades on: the lower-cased prefix before `:`, or the main dex ("")."""
    if ":" in coin:
        return coin.split(":", 1)[0].lower()
    return MAIN_DEX


def is_hip3(coin: str) -> bool:
    return coin_dex(coin) != MAIN_DEX


def coins_match(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def matching_coins(candidates: Iterable[str], coin: str) -> list[str]:
    """Every candidate equal to `coin` ignoring case, in the given order."""
    return [c for c in candidates if coins_match(c, coin)]


def map_coin(coin: str, products: Mapping[str, str]) -> str | None:
    """The symbol of an account coin, or None when it is unmapped (§2.2 V6, L8).

    `products` maps symbol → effective API coin. An exact match wins; otherwise exactly one
    case-insensitive match is required. A coin is never turned into a symbol by string conversion.
    """
    exact = [s for s, c in products.items() if c == coin]
    if exact:
        return exact[0] if len(exact) == 1 else None
    folded = [s for s, c in products.items() if coins_match(c, coin)]
    return folded[0] if len(folded) == 1 else None
