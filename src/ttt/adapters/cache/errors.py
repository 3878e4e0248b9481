"""Errors of the cache and lock adapters.

They are `TTTError`s so a CLI prints the message instead of a traceback, and they are distinct types so
callers can tell "the cache is unreachable" (hold and retry later) from "the cache answered something
unexpected" (a bug or a misconfiguration).
"""

from __future__ import annotations

from ttt.errors import TTTError


class CacheError(TTTError):
    """The cache answered, but not with something we can use (wrong key type, refused command)."""


class CacheUnavailable(CacheError):
    """The cache could not be reached or did not answer in time; nothing is known, so callers hold."""
