"""Result kinds for every computation that feeds an order (portfolio.md §0, P1).

`Flat` is a positive statement ("no position wanted") and may lead to an order towards flat; `Unknown`
means "cannot be determined" and only ever leads to a hold. Keeping them as distinct types makes it
impossible to turn an unknown into a zero by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeAlias, TypeVar

T = TypeVar("T")

Severity = Literal["warning", "critical"]

# Alert severity per hold reason (failure matrix, §18). Reasons not listed are treated as critical so
# that an unforeseen hold is loud rather than quiet.
_WARNING_REASONS = frozenset(
    {
        "kelly_error",
        "price_unavailable",
        "quorum_insufficient",
        "margin_used_unknown",
        "instrument_metadata_missing",
        "cancel_failed",
        "quorum_source_unavailable",
    }
)


def severity_of(reason: str) -> Severity:
    """Severity of the alert that accompanies a hold with this reason."""
    return "warning" if reason in _WARNING_REASONS else "critical"


@dataclass(frozen=True, slots=True)
class Value(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Flat:
    reason: str


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str
    detail: str | None = None

    @property
    def severity(self) -> Severity:
        return severity_of(self.reason)


Result: TypeAlias = Value[T] | Flat | Unknown
