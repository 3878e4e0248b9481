"""Purge (providence.md §10): ended and long-flagged runs without a height go; apex burns stay."""

from __future__ import annotations

import logging

from ttt.ports import Clock, LockManager, RunStore
from ttt.services.locking import run_locked

log = logging.getLogger(__name__)

PURGE_LOCK = "providence:purge"
PURGE_LOCK_TTL_S = 900


def purge_runs(store: RunStore, locks: LockManager, clock: Clock, flagged_after_s: float) -> int:
    """Raises LockBusy when another purge runs."""

    def work(_token: str) -> int:
        deleted = store.purge(clock.now(), flagged_after_s)
        log.info("providence purge deleted %d runs", deleted)
        return deleted

    return run_locked(locks, PURGE_LOCK, PURGE_LOCK_TTL_S, work)
