"""Actual position by k-of-n quorum over independent readings (portfolio.md §6, P2).

Each source is judged on its own and either yields a reading or says why it cannot; nothing here ever
reads "no answer" as "no position". A missing wallet, a stale document or a reading that may predate
our own fill is unavailable, so the quorum holds instead of trading against a wrong actual.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ttt.domain.results import Unknown, Value
from ttt.domain.rounding import on_grid, size_in_lots
from ttt.domain.symbols import coin_dex, coins_match, is_hip3

EPSILON = 1e-8
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reading:
    size: float
    margin_used: float | None
    as_of: float


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str
    detail: str | None = None


SourceResult = Reading | Unavailable


# --- fill fence (§6.5) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderClosure:
    """One of our orders on the symbol, as far as the fence cares."""

    status: str
    closed_at: float | None
    filled_size: float


def fill_fence(fill_times: Iterable[float], orders: Iterable[OrderClosure] = ()) -> float | None:
    """t_fence: the latest fill time or close time of an order of ours that traded, or None."""
    times = list(fill_times)
    for o in orders:
        traded = o.status in ("FILLED", "PARTIAL") or (o.status == "CANCELED" and o.filled_size > 0)
        if traded and o.closed_at is not None:
            times.append(o.closed_at)
    return max(times, default=None)


def _fenced(as_of: float, fence: float | None) -> Unavailable | None:
    if fence is not None and as_of < fence:
        return Unavailable("older_than_fill", f"as_of {as_of} precedes our fill at {fence}")
    return None


# --- local source (§6.2) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalPosition:
    size: float
    margin_used: float | None


@dataclass(frozen=True, slots=True)
class LocalSnapshot:
    """The cycle's account snapshot: a complete list of open positions by symbol."""

    fetched_at: float
    positions: Mapping[str, LocalPosition]
    missing_dexes: frozenset[str] = frozenset()
    off_grid: frozenset[str] = frozenset()


def local_reading(
    snapshot: LocalSnapshot,
    symbol: str,
    dex: str,
    now: float,
    max_age_s: float = 60.0,
    fence: float | None = None,
) -> SourceResult:
    age = now - snapshot.fetched_at
    if age > max_age_s:
        return Unavailable("stale", f"snapshot is {age:.1f} s old (max {max_age_s})")
    if dex in snapshot.missing_dexes:
        return Unavailable("dex_missing", f"dex {dex!r} did not answer")
    if symbol in snapshot.off_grid:
        return Unavailable("off_grid", f"{symbol} size is not on the lot grid")
    fenced = _fenced(snapshot.fetched_at, fence)
    if fenced is not None:
        return fenced
    row = snapshot.positions.get(symbol)
    if row is None:
        return Reading(0.0, 0.0, snapshot.fetched_at)
    return Reading(row.size, row.margin_used, snapshot.fetched_at)


# --- observer documents (§6.3) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObserverConfig:
    max_age_s: float = 120.0
    future_skew_s: float = 5.0


@dataclass(frozen=True, slots=True)
class ObserverDocument:
    timestamp: float
    positions: Mapping[str, Any]
    dexes: tuple[str, ...] | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON literal {name}")


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 text with a UTC offset; None for anything else (naive included)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed.timestamp()


def parse_observer_response(
    status: int | None, body: bytes | None, transport_error: str | None = None
) -> ObserverDocument | Unavailable:
    """Turn one GET's outcome into a document, or the reason it cannot be used."""
    if transport_error is not None or status is None or body is None:
        return Unavailable("transport", transport_error or "no response")
    if status != 200:
        return Unavailable("http_status", f"HTTP {status}")
    if len(body) > MAX_DOCUMENT_BYTES:
        return Unavailable("transport", f"response larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        return Unavailable("invalid_json", str(exc))
    return parse_observer_document(data)


def parse_observer_document(data: object) -> ObserverDocument | Unavailable:
    """The document-level schema checks; per-wallet checks happen per reading."""
    if not isinstance(data, dict):
        return Unavailable("invalid_schema", "top level is not an object")
    ts = parse_timestamp(data.get("timestamp"))
    if ts is None:
        return Unavailable("invalid_schema", "timestamp missing, unparseable or without UTC offset")
    positions = data.get("positions")
    if not isinstance(positions, dict):
        return Unavailable("invalid_schema", "positions is not an object")
    dexes_raw = data.get("dexes")
    dexes: tuple[str, ...] | None = None
    if dexes_raw is not None:
        if not isinstance(dexes_raw, list) or not all(isinstance(d, str) for d in dexes_raw):
            return Unavailable("invalid_schema", "dexes is not a list of names")
        dexes = tuple(d.lower() for d in dexes_raw)
    return ObserverDocument(timestamp=ts, positions=positions, dexes=dexes)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _wallet_positions(wallet_obj: object) -> list[tuple[str, float, float | None]] | Unavailable:
    if not isinstance(wallet_obj, dict) or not isinstance(wallet_obj.get("assetPositions"), list):
        return Unavailable("invalid_schema", "wallet object lacks a list assetPositions")
    out: list[tuple[str, float, float | None]] = []
    for i, entry in enumerate(wallet_obj["assetPositions"]):
        pos = entry.get("position") if isinstance(entry, dict) else None
        if not isinstance(pos, dict):
            return Unavailable("invalid_schema", f"assetPositions[{i}] has no position object")
        coin = pos.get("coin")
        if not isinstance(coin, str) or not coin:
            return Unavailable("invalid_schema", f"assetPositions[{i}].position lacks coin")
        szi = _finite(pos.get("szi"))
        if szi is None:
            return Unavailable("invalid_schema", f"assetPositions[{i}].position szi missing or not finite")
        out.append((coin, szi, _finite(pos.get("marginUsed"))))
    return out


def _older(timestamp: float, wallet_time_ms: float) -> float:
    t = wallet_time_ms / 1000.0
    return min(timestamp, t) if math.isfinite(t) else timestamp


def observer_reading(
    document: ObserverDocument | Unavailable,
    wallet: str,
    coin: str,
    lot: float | Decimal,
    now: float,
    cfg: ObserverConfig = ObserverConfig(),
    fence: float | None = None,
) -> SourceResult:
    """§6.3 consumer rules for one symbol (by its API coin) of one wallet."""
    if isinstance(document, Unavailable):
        return document
    if document.timestamp - now > cfg.future_skew_s:
        return Unavailable("future", f"timestamp {document.timestamp - now:.1f} s ahead")
    keys = [k for k in document.positions if isinstance(k, str) and k.lower() == wallet.lower()]
    if not keys:
        return Unavailable("wallet_missing", f"wallet {wallet.lower()} not in positions")
    if len(keys) > 1:
        return Unavailable("invalid_schema", f"wallet {wallet.lower()} appears under several keys")
    wallet_obj = document.positions[keys[0]]
    as_of = document.timestamp
    if isinstance(wallet_obj, dict):
        wallet_time = wallet_obj.get("time")
        if isinstance(wallet_time, int | float) and not isinstance(wallet_time, bool):
            as_of = _older(as_of, wallet_time)
    age = now - as_of
    if age > cfg.max_age_s:
        return Unavailable("stale", f"document is {age:.1f} s old (max {cfg.max_age_s})")
    parsed = _wallet_positions(wallet_obj)
    if isinstance(parsed, Unavailable):
        return parsed
    if is_hip3(coin) and document.dexes is not None and coin_dex(coin) not in document.dexes:
        return Unavailable("dex_not_observed", f"dex {coin_dex(coin)!r} is not observed")
    matches = [p for p in parsed if coins_match(p[0], coin)]
    if len(matches) > 1:
        names = ", ".join(p[0] for p in matches)
        return Unavailable("ambiguous", f"several positions match {coin}: {names}")
    if not matches:
        fenced = _fenced(as_of, fence)
        return fenced if fenced is not None else Reading(0.0, 0.0, as_of)
    _, size, margin = matches[0]
    if not on_grid(size, lot):
        return Unavailable("off_grid", f"szi {size} is not on the lot grid {lot}")
    fenced = _fenced(as_of, fence)
    if fenced is not None:
        return fenced
    return Reading(size, 0.0 if size == 0 else margin, as_of)


# --- agreement and quorum (§6.4) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actual:
    size: float
    margin_used: float


@dataclass(frozen=True, slots=True)
class SourceDetail:
    source: str
    reading: SourceResult
    lots: int | None
    canonical: float | None


@dataclass(frozen=True, slots=True)
class QuorumOutcome:
    result: Value[Actual] | Unknown
    sources: tuple[SourceDetail, ...]
    members: tuple[str, ...]
    dissent: tuple[str, ...]

    @property
    def unavailable(self) -> tuple[SourceDetail, ...]:
        return tuple(s for s in self.sources if isinstance(s.reading, Unavailable))


def median(values: Sequence[float]) -> float:
    """The middle value, or the mean of the two middle values for an even count."""
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def quorum(sources: Sequence[tuple[str, SourceResult]], k: int, lot: Decimal) -> QuorumOutcome:
    """A and m by k-of-n agreement on the lot grid; every failure is an Unknown with its reason."""
    if k < 1:
        raise ValueError(f"portfolio.quorum.k must be >= 1, got {k}")
    names = [name for name, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"quorum source names must be unique, got {names}")
    details: list[SourceDetail] = []
    groups: dict[int, list[tuple[str, Reading]]] = {}
    for name, reading in sources:
        if isinstance(reading, Unavailable):
            details.append(SourceDetail(name, reading, None, None))
            continue
        lots = size_in_lots(reading.size, lot)
        details.append(SourceDetail(name, reading, lots, float(lots * lot)))
        groups.setdefault(lots, []).append((name, reading))

    def outcome(
        result: Value[Actual] | Unknown, members: Sequence[str] = (), dissent: Sequence[str] = ()
    ) -> QuorumOutcome:
        return QuorumOutcome(result, tuple(details), tuple(members), tuple(dissent))

    if not groups:
        return outcome(Unknown("quorum_no_sources", "no source yielded a reading"))
    reaching = [lots for lots, members in groups.items() if len(members) >= k]
    if len(reaching) >= 2:
        return outcome(Unknown("quorum_conflict", f"{len(reaching)} groups each reach k = {k}"))
    if not reaching:
        if len(groups) == 1:
            n = len(next(iter(groups.values())))
            return outcome(Unknown("quorum_insufficient", f"{n} agreeing reading(s), k = {k}"))
        return outcome(Unknown("quorum_disagreement", f"readings fall into {len(groups)} groups"))
    lots = reaching[0]
    members = groups[lots]
    member_names = [name for name, _ in members]
    dissent = [d.source for d in details if d.lots is not None and d.lots != lots]
    a = float(lots * lot)
    if abs(a) <= EPSILON:
        return outcome(Value(Actual(a, 0.0)), member_names, dissent)
    margins = [r.margin_used for _, r in members if r.margin_used is not None]
    if not margins:
        return outcome(
            Unknown("margin_used_unknown", "no member of the quorum reports margin used"),
            member_names,
            dissent,
        )
    return outcome(Value(Actual(a, median(margins))), member_names, dissent)
