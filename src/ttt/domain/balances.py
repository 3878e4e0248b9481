"""Validation and derived values of an account snapshot (portfolio.md §2.2, §2.3).

Input is the verbatim `clearinghouseState` answer per dex. A snapshot is either stored (possibly
marked unusable) or rejected as a whole with every problem named; a half-parsed snapshot is never
stored, because a missing position row reads as "flat" downstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ttt.domain.rounding import lot_size, on_grid
from ttt.domain.symbols import MAIN_DEX, api_coin, map_coin


@dataclass(frozen=True, slots=True)
class Product:
    symbol: str
    api_coin: str | None
    sz_decimals: int

    @property
    def coin(self) -> str:
        return api_coin(self.symbol, self.api_coin)


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    coin: str
    dex: str
    size: Decimal
    entry_price: Decimal | None
    position_value: Decimal | None
    unrealized_pnl: Decimal | None
    margin_used: Decimal | None
    leverage: Decimal | None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account_value: Decimal
    cross_maintenance_margin_used: Decimal | None
    total_margin_used: Decimal
    withdrawable: Decimal | None
    partial: bool
    usable: bool
    missing_dexes: tuple[str, ...]
    unmapped: tuple[str, ...]
    unmapped_nonzero: tuple[str, ...]
    off_grid: tuple[str, ...]
    positions: tuple[PositionRow, ...]


@dataclass(frozen=True, slots=True)
class RejectedSnapshot:
    problems: tuple[str, ...]


def parse_decimal(value: object) -> Decimal | None:
    """A finite decimal from a JSON string or number, else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _label(dex: str) -> str:
    return "main dex" if dex == MAIN_DEX else f"dex {dex!r}"


def _optional(pos: Mapping[str, object], key: str, where: str, problems: list[str]) -> Decimal | None:
    raw = pos.get(key)
    if raw is None:
        return None
    value = parse_decimal(raw)
    if value is None:
        problems.append(f"{where}.{key} = {raw!r} is not a finite number")
    return value


def _leverage(pos: Mapping[str, object]) -> Decimal | None:
    lev = pos.get("leverage")
    if isinstance(lev, Mapping):
        return parse_decimal(lev.get("value"))
    return parse_decimal(lev)


def validate_account(
    responses: Mapping[str, object | None], requested_dexes: Sequence[str], products: Sequence[Product]
) -> AccountSnapshot | RejectedSnapshot:
    """V1–V8 over the per-dex answers (None or absent = the dex did not answer) and §2.3 sums."""
    problems: list[str] = []
    answered = [d for d in requested_dexes if responses.get(d) is not None]
    missing = tuple(d for d in requested_dexes if responses.get(d) is None)
    coin_of = {p.symbol: p.coin for p in products}
    by_symbol = {p.symbol: p for p in products}

    account_value = Decimal(0)
    total_margin = Decimal(0)
    hip3_margin = Decimal(0)
    cross_main: Decimal | None = None
    withdrawable: Decimal | None = None
    raw_positions: list[tuple[str, str, Mapping[str, object], str]] = []

    for dex in answered:
        label = _label(dex)
        state = responses[dex]
        if not isinstance(state, Mapping):
            problems.append(f"{label}: answer is not an object")
            continue
        summary = state.get("marginSummary")
        summary = summary if isinstance(summary, Mapping) else {}
        value = parse_decimal(summary.get("accountValue"))
        if value is None or value < 0:
            problems.append(f"{label}: marginSummary.accountValue = {summary.get('accountValue')!r} invalid")
        else:
            account_value += value
        used = parse_decimal(summary.get("totalMarginUsed"))
        if used is None or used < 0:
            problems.append(
                f"{label}: marginSummary.totalMarginUsed = {summary.get('totalMarginUsed')!r} invalid"
            )
        else:
            total_margin += used
            if dex != MAIN_DEX:
                hip3_margin += used
        if dex == MAIN_DEX:
            raw_cross = state.get("crossMaintenanceMarginUsed")
            if raw_cross is not None:
                cross_main = parse_decimal(raw_cross)
                if cross_main is None or cross_main < 0:
                    problems.append(f"{label}: crossMaintenanceMarginUsed = {raw_cross!r} invalid")
            withdrawable = parse_decimal(state.get("withdrawable"))
        entries = state.get("assetPositions", [])
        if not isinstance(entries, list):
            problems.append(f"{label}: assetPositions is not a list")
            continue
        for i, entry in enumerate(entries):
            where = f"{label}: assetPositions[{i}].position"
            pos = entry.get("position") if isinstance(entry, Mapping) else None
            if not isinstance(pos, Mapping):
                problems.append(f"{where} missing")
                continue
            coin = pos.get("coin")
            if not isinstance(coin, str) or not coin:
                problems.append(f"{where}.coin missing or empty")
                continue
            if parse_decimal(pos.get("szi")) is None:
                problems.append(f"{where}.szi = {pos.get('szi')!r} is not a finite number")
                continue
            for key in ("marginUsed", "positionValue", "unrealizedPnl", "entryPx"):
                _optional(pos, key, where, problems)
            raw_positions.append((dex, coin, pos, where))

    seen: dict[str, str] = {}
    for dex, coin, _, _ in raw_positions:
        if coin in seen:
            problems.append(f"coin {coin!r} appears in both {_label(seen[coin])} and {_label(dex)}")
        seen.setdefault(coin, dex)

    open_positions = [p for p in raw_positions if parse_decimal(p[2].get("szi")) != 0]
    if not problems and account_value == 0 and open_positions:
        problems.append(f"account value is 0 but {len(open_positions)} position(s) are open")
    if problems:
        return RejectedSnapshot(tuple(problems))

    unmapped: list[str] = []
    unmapped_nonzero: list[str] = []
    off_grid: list[str] = []
    rows: list[PositionRow] = []
    for dex, coin, pos, where in raw_positions:
        size = parse_decimal(pos.get("szi"))
        assert size is not None
        symbol = map_coin(coin, coin_of)
        if symbol is None:
            unmapped.append(coin)
            if size != 0:
                unmapped_nonzero.append(coin)
            continue
        if size == 0:
            continue
        if not on_grid(float(size), lot_size(by_symbol[symbol].sz_decimals)):
            off_grid.append(symbol)
        rows.append(
            PositionRow(
                symbol=symbol,
                coin=coin,
                dex=dex,
                size=size,
                entry_price=_optional(pos, "entryPx", where, problems),
                position_value=_optional(pos, "positionValue", where, problems),
                unrealized_pnl=_optional(pos, "unrealizedPnl", where, problems),
                margin_used=_optional(pos, "marginUsed", where, problems),
                leverage=_leverage(pos),
            )
        )

    main_answered = MAIN_DEX in answered
    cross = cross_main + hip3_margin if (main_answered and cross_main is not None) else None
    partial = bool(missing)
    return AccountSnapshot(
        account_value=account_value,
        cross_maintenance_margin_used=cross,
        total_margin_used=total_margin,
        withdrawable=withdrawable,
        partial=partial,
        usable=not partial,
        missing_dexes=missing,
        unmapped=tuple(unmapped),
        unmapped_nonzero=tuple(unmapped_nonzero),
        off_grid=tuple(off_grid),
        positions=tuple(rows),
    )
