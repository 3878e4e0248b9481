"""The shared per-shard weight history and O(1) entropy look-ups of providence.md §16.

Every conforming run's `weights`/`weights_timestamp` (and the timestamps of its `aprs`) are a suffix of this
one series, so the history is kept once per population and a run keeps only the global index of its oldest
entry. Global indices never change; compaction only moves the array offset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ttt.domain.entropy import CODE_INDEX, motif_code, pe_from_counts

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _motif_table() -> npt.NDArray[np.int64]:
    """Bucket (index in `CODES`) of the newest-first triple (s_g, s_g-1, s_g-2), by base-3 digits."""
    table = np.zeros(27, dtype=np.int64)
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            for c in (-1, 0, 1):
                table[(a + 1) * 9 + (b + 1) * 3 + (c + 1)] = CODE_INDEX[motif_code(a, b, c)]
    return table


MOTIF_BUCKET = _motif_table()


class History:
    """Entries g = off … end-1 with tick time, weight, sign and cumulative motif counts C[g] (§16.2).

    `known` is False for entries seeded from `aprs_timestamp` lists only: their weight is unknown, and no
    conforming run's entropy window can reach them, so their signs are placeholders.
    """

    def __init__(self) -> None:
        self.off = 0
        self.n = 0
        self._alloc(64)
        self._pe_memo: dict[tuple[int, ...], float] = {}

    def _alloc(self, cap: int) -> None:
        self.tau: F64 = np.zeros(cap, dtype=np.float64)
        self.w: F64 = np.zeros(cap, dtype=np.float64)
        self.known = np.zeros(cap, dtype=bool)
        self.sign = np.zeros(cap, dtype=np.int64)
        self.counts: I64 = np.zeros((cap, 6), dtype=np.int64)

    @property
    def end(self) -> int:
        """Global index of the next entry."""
        return self.off + self.n

    @property
    def last(self) -> int:
        return self.off + self.n - 1

    def nbytes(self) -> int:
        return int(
            self.tau.nbytes + self.w.nbytes + self.known.nbytes + self.sign.nbytes + self.counts.nbytes
        )

    def _ensure(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.tau.shape[0]:
            return
        cap = max(need, 2 * self.tau.shape[0])
        old = (self.tau, self.w, self.known, self.sign, self.counts)
        self._alloc(cap)
        n = self.n
        self.tau[:n] = old[0][:n]
        self.w[:n] = old[1][:n]
        self.known[:n] = old[2][:n]
        self.sign[:n] = old[3][:n]
        self.counts[:n] = old[4][:n]

    def append(self, t: float, w: float, known: bool = True) -> None:
        self._ensure(1)
        i = self.n
        s = (1 if w > 0 else (-1 if w < 0 else 0)) if known else 0
        self.tau[i] = t
        self.w[i] = w
        self.known[i] = known
        self.sign[i] = s
        if i == 0:
            self.counts[0] = 0
        else:
            self.counts[i] = self.counts[i - 1]
            if i >= 2:
                code = (s + 1) * 9 + (int(self.sign[i - 1]) + 1) * 3 + (int(self.sign[i - 2]) + 1)
                self.counts[i, MOTIF_BUCKET[code]] += 1
        self.n += 1

    def reset(self) -> None:
        """Forget every entry but keep global indices increasing (the next entry gets index `end`)."""
        self.off = self.end
        self.n = 0

    def drop_before(self, g: int) -> None:
        """Discard entries older than global index g (keeping at least two for the next motif)."""
        g = min(g, self.end - 2)
        k = g - self.off
        if k <= 0 or k < self.n // 2 or k < 256:
            return
        n = self.n - k
        for arr in (self.tau, self.w, self.known, self.sign):
            arr[:n] = arr[k : self.n].copy()
        self.counts[:n] = self.counts[k : self.n].copy()
        self.off += k
        self.n = n

    def times(self, lo: int, hi: int) -> F64:
        """τ of global entries lo … hi-1."""
        return self.tau[lo - self.off : hi - self.off]

    def weights(self, lo: int, hi: int) -> F64:
        return self.w[lo - self.off : hi - self.off]

    def alpha(self, now: float, minutes: npt.NDArray[Any]) -> I64:
        """α(X) of §16.4 for each X: the first g with fl(fl(now - τ_g) / 60) < X (end if none)."""
        neg_age = -((now - self.tau[: self.n]) / 60)
        idx = np.searchsorted(neg_age, -np.asarray(minutes, dtype=np.float64), side="right")
        return idx.astype(np.int64) + self.off

    def beta(self, now: float, minutes: npt.NDArray[Any]) -> I64:
        """First g with τ_g ≥ now - (X + 1)·60: the oldest entry that S11 pruning keeps."""
        cut = now - (np.asarray(minutes, dtype=np.int64) + 1) * 60
        idx = np.searchsorted(self.tau[: self.n], cut, side="left")
        return idx.astype(np.int64) + self.off

    def entropy_of_window(self, a: int, b: int) -> float:
        """§14.1 PE of the newest-first signs of entries a … b, from prefix counts (b - a ≥ 2)."""
        cb = self.counts[b - self.off]
        ca = self.counts[a + 1 - self.off]
        key = tuple(int(x) for x in (cb - ca))
        h = self._pe_memo.get(key)
        if h is None:
            h = pe_from_counts(key, b - a - 1)
            if len(self._pe_memo) > 200_000:
                self._pe_memo.clear()
            self._pe_memo[key] = h
        return h
