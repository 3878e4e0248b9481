"""Permutation entropy of order 3, delay 1, normalised (providence.md §14).

Every engine must produce bit-identical entropies (§17.3), so the per-code term and the summation order
live here once: `pe_from_counts` is the single place where counts become an entropy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Pattern codes (idx0 + 3*idx1 + 9*idx2 of the stable argsort) in the ascending order the sum must use.
CODES: tuple[int, ...] = (5, 7, 11, 15, 19, 21)
CODE_INDEX: dict[int, int] = {code: i for i, code in enumerate(CODES)}
LOG2_6: float = math.log2(6.0)


def motif_code(a: float, b: float, c: float) -> int:
    """Code of the stable argsort of (a, b, c); equal values rank by position, as NumPy's argsort does."""
    if a <= b:
        if b <= c:
            return 21
        return 15 if a <= c else 11
    if a <= c:
        return 19
    return 7 if b <= c else 5


def sign(w: float) -> int:
    return 1 if w > 0 else (-1 if w < 0 else 0)


def motif_counts(y: Sequence[float]) -> list[int]:
    """Six motif counts in `CODES` order; the input must hold at least three values."""
    if len(y) < 3:
        raise ValueError(f"permutation entropy needs at least 3 values, got {len(y)}")
    counts = [0] * 6
    for i in range(len(y) - 2):
        a, b, c = y[i], y[i + 1], y[i + 2]
        if a != a or b != b or c != c:
            raise ValueError(f"permutation entropy input holds NaN at positions {i}..{i + 2}")
        counts[CODE_INDEX[motif_code(a, b, c)]] += 1
    return counts


def pe_term(count: int, m: int) -> float:
    """p·log2(p) for p = count/m; a table of these (built here) keeps vectorised engines bit-identical."""
    p = count / m
    return p * math.log2(p)


def pe_from_counts(counts6: Sequence[int], m: int) -> float:
    """§14.1 from the six counts (in `CODES` order) over `m` motifs."""
    if len(counts6) != 6:
        raise ValueError(f"expected 6 motif counts, got {len(counts6)}")
    if m < 1 or sum(counts6) != m or min(counts6) < 0:
        raise ValueError(f"motif counts {list(counts6)} do not add up to M = {m}")
    pe = 0.0
    for count in counts6:
        if count > 0:
            pe = pe - pe_term(count, m)
    return pe / LOG2_6


def perm_entropy(y: Sequence[float]) -> float:
    """PE(y) of §14.1; raises ValueError for fewer than three values."""
    return pe_from_counts(motif_counts(y), len(y) - 2)


def window_signs(
    weights: Sequence[float], timestamps: Sequence[float], now: float, minutes: float
) -> list[int]:
    """Signs of the weights younger than `minutes` (strict age test), in stored chronological order."""
    return [sign(w) for w, ts in zip(weights, timestamps, strict=True) if (now - ts) / 60 < minutes]


def close_entropy_from_lists(
    weights: Sequence[float], timestamps: Sequence[float], now: float, minutes: float, samples: int
) -> float:
    """§14.2 on explicit lists: PE of the newest-first window, or 1.0 unless it holds more than S values."""
    newest_first = window_signs(weights, timestamps, now, minutes)
    newest_first.reverse()
    if len(newest_first) > samples:
        return perm_entropy(newest_first)
    return 1.0
