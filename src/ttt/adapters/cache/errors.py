"""Errors of the cache and lock adapters, defined in `ttt.errors` so services can hold on them.

They are `TTTError`s so a CLI prints the message instead of a traceback, and they are distinct types so
callers can tell "the cache is unreachable" (hold and retry later) from "the cache answered something
unexpected" (a bug or a misconfiguration).
"""

from ttt.errors import CacheError, CacheUnavailable

__all__ = ["CacheError", "CacheUnavailable"]
