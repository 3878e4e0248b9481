"""Encoding of a shard's cached state (`ttt:shard:{symbol}:{shard}`, providence.md §9.1).

A shard's state is a *base* plus a *journal*, so the per-tick cache write stays small however many runs the
shard holds:

* the base (`…:base`) is the shard's `Population` at one tick, as a binary blob (pickle protocol 5 under a
  restricted unpickler: NumPy buffers are copied, not converted, so 2,000 runs encode in milliseconds);
* the journal (`ttt:shard:{symbol}:{shard}`) lists, for every tick since the base, the tick's inputs and the
  membership changes applied before stepping, plus the shard's pending ends (§8.3).

`Population.step` is deterministic, so replaying the journal over the base yields exactly the states the
shard held, which is what §9.1 asks of the decoding. The journal is rewritten at every tick (one write); the
base is rewritten every few ticks, after the tick is committed. An unreadable or inconsistent pair is treated
as missing: members are then cold-loaded from the database (§9.4) rather than trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ttt.ports import RunEnd
from ttt.providence._history import History
from ttt.providence.population import Population

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
_BASE_MAGIC = b"TTTB"
_HEADER = struct.Struct("<4sB16sd")  # magic, version, layout fingerprint, tick time


@dataclass(frozen=True)
class JournalEntry:
    """One committed-or-in-flight shard tick: what was removed and joined, then the step inputs."""

    t: float
    price: float | None
    volatility: float | None
    weight: float
    removed: tuple[int, ...] = ()
    joined: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    stepped: bool = True
    config: Mapping[str, Any] | None = None


@dataclass
class ShardJournal:
    """`base_t` None: the entries start from an empty population (a new shard)."""

    base_t: float | None = None
    entries: list[JournalEntry] = field(default_factory=list)
    pending_ends: dict[int, RunEnd] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardSnapshot:
    """Decoded view of a shard's cache (tests, flush): member states and pending ends."""

    states: dict[int, dict[str, Any]]
    pending_ends: dict[int, RunEnd]


def _layout_fingerprint() -> bytes:
    """Changes when the engine's in-memory layout changes, so a base written by other code is not trusted."""
    probe = Population("X", {})
    names = [*sorted(vars(probe)), "|", *sorted(vars(probe._hist))]
    return hashlib.blake2b(",".join(names).encode(), digest_size=16).digest()


_LAYOUT = _layout_fingerprint()

_ALLOWED: dict[tuple[str, str], Any] = {
    ("ttt.providence.population", "Population"): Population,
    ("ttt.providence._history", "History"): History,
}


def _allowed_globals() -> None:
    import numpy as np

    from ttt.providence import population as pop_mod

    _ALLOWED[("ttt.providence.population", "StepBatch")] = pop_mod.StepBatch
    _ALLOWED[("ttt.providence.population", "_Group")] = pop_mod._Group
    _ALLOWED[("numpy", "dtype")] = np.dtype
    _ALLOWED[("numpy", "ndarray")] = np.ndarray
    for module in ("numpy._core.numeric", "numpy.core.numeric"):
        _ALLOWED[(module, "_frombuffer")] = _frombuffer
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        _ALLOWED[(module, "_reconstruct")] = _reconstruct


def _frombuffer(*args: Any) -> Any:
    from numpy._core.numeric import _frombuffer as impl  # type: ignore[attr-defined]

    return impl(*args)


def _reconstruct(*args: Any) -> Any:
    from numpy._core.multiarray import _reconstruct as impl  # type: ignore[attr-defined]

    return impl(*args)


_allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Only the engine's own classes and NumPy's array constructors: a tampered cache cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a shard base") from None


def encode_base(population: Population, t: float) -> bytes:
    return _HEADER.pack(_BASE_MAGIC, FORMAT_VERSION, _LAYOUT, t) + pickle.dumps(population, protocol=5)


def decode_base(raw: bytes | None, symbol: str) -> tuple[float, Population] | None:
    """(tick, population), or None when absent, unreadable, from another layout or another symbol."""
    if raw is None or len(raw) < _HEADER.size:
        return None
    magic, version, layout, t = _HEADER.unpack_from(raw)
    if magic != _BASE_MAGIC or version != FORMAT_VERSION or layout != _LAYOUT:
        log.warning("shard base of another format ignored (members cold-load from the database)")
        return None
    try:
        population = _RestrictedUnpickler(io.BytesIO(memoryview(raw)[_HEADER.size :])).load()
    except Exception as exc:  # any corruption: the database copy is the fallback (§9.4)
        log.warning("unreadable shard base ignored (members cold-load from the database): %s", exc)
        return None
    if not isinstance(population, Population) or population.symbol != symbol:
        return None
    return t, population


def _entry_doc(e: JournalEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {"t": e.t, "p": e.price, "v": e.volatility, "w": e.weight}
    if e.removed:
        doc["rm"] = list(e.removed)
    if e.joined:
        doc["j"] = {str(k): v for k, v in e.joined.items()}
    if not e.stepped:
        doc["ns"] = 1
    if e.config is not None:
        doc["cfg"] = e.config
    return doc


def _entry_from_doc(d: Mapping[str, Any]) -> JournalEntry:
    return JournalEntry(
        t=float(d["t"]),
        price=None if d["p"] is None else float(d["p"]),
        volatility=None if d["v"] is None else float(d["v"]),
        weight=float(d["w"]),
        removed=tuple(int(r) for r in d.get("rm", ())),
        joined={int(k): v for k, v in d.get("j", {}).items()},
        stepped=not d.get("ns"),
        config=d.get("cfg"),
    )


def encode_journal(journal: ShardJournal) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "base_t": journal.base_t,
        "entries": [_entry_doc(e) for e in journal.entries],
        "pending_ends": {str(k): asdict(v) for k, v in journal.pending_ends.items()},
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 1)


def decode_journal(raw: bytes | None) -> ShardJournal | None:
    """None when absent or unreadable (the caller cold-loads; pending ends are then lost from the cache,
    but the runs they belong to are still unended members and end again from their stored state)."""
    if raw is None:
        return None
    try:
        doc = json.loads(zlib.decompress(raw))
        if doc.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown shard journal version {doc.get('v')!r}")
        base_t = None if doc["base_t"] is None else float(doc["base_t"])
        entries = [_entry_from_doc(d) for d in doc["entries"]]
        ends = {int(k): RunEnd(**v) for k, v in doc["pending_ends"].items()}
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        log.warning("unreadable shard journal ignored (members cold-load from the database): %s", exc)
        return None
    return ShardJournal(base_t, entries, ends)


def apply_entry(population: Population, entry: JournalEntry) -> Sequence[int]:
    """Replay one tick exactly as the shard step applied it; returns the ids that completed."""
    if entry.config is not None:
        population.config = dict(entry.config)
    if entry.removed:
        population.remove_runs(entry.removed)
    if entry.joined:
        population.add_runs(entry.joined)
    if not entry.stepped:
        population.remove_runs(list(population.run_ids))
        return []
    if not len(population):
        return []
    batch = population.step(entry.t, entry.price, entry.volatility, entry.weight)
    completed = [int(r) for r in batch.run_ids[batch.status_code == 1]]
    if completed:
        population.remove_runs(completed)
    return completed


def rebuild(
    symbol: str,
    journal: ShardJournal | None,
    base: tuple[float, Population] | None,
    last: float | None,
    config: Mapping[str, Any],
) -> Population | None:
    """The population as of tick `last` (the shard's committed tick), or None when the cache cannot say.

    Entries after `last` belong to a tick whose commit did not finish; they are dropped and that tick is
    stepped again.
    """
    if journal is None or last is None:
        return None
    entries = [e for e in journal.entries if e.t <= last]
    if base is not None and (journal.base_t == base[0] or any(e.t == base[0] for e in entries)):
        population, at = base[1], base[0]
    elif journal.base_t is None:
        population, at = Population.from_states(symbol, {}, dict(config)), None
    else:
        return None
    for entry in entries:
        if at is not None and entry.t <= at:
            continue
        apply_entry(population, entry)
        at = entry.t
    if at != last:
        return None
    return population
