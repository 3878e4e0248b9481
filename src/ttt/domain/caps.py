"""Per-symbol margin caps and the clamp (portfolio.md §5), the reference formulas kept as they are.

The clamp deliberately does nothing when the symbol has no margin in use (m = 0): a newly opened
position may exceed its cap and is bounded only by the global gate. This is the reference's risk
envelope and is not "fixed" here (§22 question 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

EPSILON = 1e-8


def max_margin(balance: float, max_margin_usage: float) -> float:
    """M = B · μ."""
    return balance * max_margin_usage


def effective_leverage(max_leverage: float | None) -> float:
    """ℓ = max(max_leverage, 1); NULL, 0 and a missing product count as 1."""
    if max_leverage is None:
        return 1.0
    return max(float(max_leverage), 1.0)


def margin_caps(
    universe: Sequence[str], max_leverage: Mapping[str, float | None], total_margin: float
) -> dict[str, float]:
    """cap_s = (ℓ_s / Σℓ) · M for every universe symbol, in universe order."""
    if not universe:
        return {}
    lev = {s: effective_leverage(max_leverage.get(s)) for s in universe}
    total = sum(lev[s] for s in universe)
    return {s: (lev[s] / total) * total_margin for s in universe}


def clamp(desired: float, margin_used: float, cap: float, multiplier: float = 1.0) -> float:
    """§5.2: scale D down when the symbol's margin already exceeds cap·χ; otherwise D unchanged."""
    limit = cap * multiplier
    if margin_used > 0 and abs(desired) > EPSILON and margin_used > limit:
        return desired * limit / margin_used
    return desired
