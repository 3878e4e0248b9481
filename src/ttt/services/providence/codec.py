"""Encoding of a shard's cached state (`ttt:shard:{symbol}:{shard}`, providence.md §9.1).

The document holds the continuing members' states exactly as `Population.to_states()` returned them and the
shard's pending ends. Compressed JSON: decoding yields the same dicts, and an unreadable blob is treated as
missing (members are then cold-loaded from the database, §9.4) rather than trusted.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from ttt.ports import RunEnd

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardSnapshot:
    states: dict[int, dict[str, Any]]
    pending_ends: dict[int, RunEnd]


EMPTY = ShardSnapshot({}, {})


def encode_snapshot(snapshot: ShardSnapshot) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "states": {str(k): v for k, v in snapshot.states.items()},
        "pending_ends": {str(k): asdict(v) for k, v in snapshot.pending_ends.items()},
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 1)


def decode_snapshot(raw: bytes | None) -> ShardSnapshot:
    if raw is None:
        return ShardSnapshot({}, {})
    try:
        doc = json.loads(zlib.decompress(raw))
        if doc.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown shard snapshot version {doc.get('v')!r}")
        states = {int(k): v for k, v in doc["states"].items()}
        ends = {int(k): RunEnd(**v) for k, v in doc["pending_ends"].items()}
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        log.warning("unreadable shard snapshot ignored (members cold-load from the database): %s", exc)
        return ShardSnapshot({}, {})
    return ShardSnapshot(states, ends)
