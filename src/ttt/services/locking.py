"""Run a unit of work under an owner-token lock (portfolio.md §16): skip when held, never overlap."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ttt.ports import LockManager

T = TypeVar("T")


class LockBusy(Exception):
    """The lock is held by someone else; the run is skipped (services.md §2.3)."""


def run_locked(locks: LockManager, name: str, ttl_s: float, work: Callable[[str], T]) -> T:
    """Call `work(token)` holding `name`; raises LockBusy when it is held. Released by compare-and-delete."""
    token = locks.acquire(name, ttl_s)
    if token is None:
        raise LockBusy(name)
    try:
        return work(token)
    finally:
        locks.release(name, token)
