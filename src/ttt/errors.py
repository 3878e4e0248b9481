"""Errors that map to the CLI exit codes of services.md §12."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    SCHEMA_BEHIND = 3
    PRECONDITION = 4


class TTTError(Exception):
    """An error with a message meant for the user, never a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(TTTError):
    """Invalid configuration or secrets. Carries every problem found, each naming its key."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"config error: {p}" for p in self.problems))


class DataError(TTTError):
    """A malformed input file; the message names the file, the row and the problem."""

    exit_code = ExitCode.USAGE


class SchemaBehindError(TTTError):
    exit_code = ExitCode.SCHEMA_BEHIND


class PreconditionError(TTTError):
    exit_code = ExitCode.PRECONDITION


class CacheError(TTTError):
    """The cache answered, but not with something we can use (wrong key type, refused command)."""


class CacheUnavailable(CacheError):
    """The cache could not be reached or did not answer in time; nothing is known, so callers hold."""


class LocalRefusal(TTTError):
    """An exchange action refused inside the process; nothing was sent."""


class ForbiddenActionError(LocalRefusal):
    """The guard refused a forbidden `/exchange` action (builder fee, referral, …) before sending it."""


class ExchangeUnavailable(TTTError):
    """The exchange could not be used (circuit open, refused connection, rate limit, reads exhausted);
    for a write this means it was *not* sent."""


class OutcomeUnknown(TTTError):
    """A write was sent and its result is unknown (timeout, reset after sending, 5xx, unreadable answer).
    Resolve it by querying the order status; never resend it."""
