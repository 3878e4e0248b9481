"""The run engine written as the specification reads (providence.md §5, §19.1): one run, one tick.

This module is the behavioural authority the vectorised engine is tested against, so it favours the
spec's step order and wording over speed. Steps carry their spec labels (S1–S15).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ttt.domain.entropy import close_entropy_from_lists, perm_entropy
from ttt.domain.params import DEFAULT_ANN_RANGES, DEFAULT_MAX_POSITION_DIRECTION, sample_params
from ttt.domain.signals import market_weight, volatility_from_bars, volatility_goal
from ttt.domain.voms import FEE_RATE, Voms, balance_of, voms_metrics

__all__ = [
    "DEFAULT_ANN_RANGES",
    "FEE_RATE",
    "STATE_KEYS",
    "StepResult",
    "close_entropy",
    "market_weight",
    "new_state",
    "perm_entropy",
    "sample_params",
    "step",
    "volatility_from_bars",
    "volatility_goal",
    "voms_metrics",
]

STATE_KEYS: tuple[str, ...] = (
    "start_time",
    "start_balance",
    "symbol",
    "ann_params",
    "weights",
    "weights_timestamp",
    "aprs",
    "aprs_timestamp",
    "position_direction",
    "apr_change",
    "apr_last",
    "voms_state",
    "iteration_count",
)

CONTINUE = "continue"
COMPLETED = "completed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    status: str
    reason: str | None
    trade: float
    position_direction: int
    balance: float
    apr: float | None
    entropy: float | None


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def new_state(params: Mapping[str, Any], start_time: float, start_balance: float) -> dict[str, Any]:
    """The §4 initial state; refuses runs that could only error for ever (B0 ≤ 0, leverage ≤ 0)."""
    if not (_number(start_balance) and math.isfinite(start_balance) and start_balance > 0):
        raise ValueError(f"start_balance must be a finite number > 0, got {start_balance!r}")
    if not (_number(start_time) and math.isfinite(start_time)):
        raise ValueError(f"start_time must be a finite number, got {start_time!r}")
    if "leverage" not in params or "symbol" not in params:
        raise ValueError("run parameters must contain 'symbol' and 'leverage'")
    leverage = params["leverage"]
    if not (_number(leverage) and math.isfinite(leverage) and leverage > 0):
        raise ValueError(f"ann_params.leverage must be a finite number > 0, got {leverage!r}")
    return {
        "start_time": float(start_time),
        "start_balance": float(start_balance),
        "symbol": params["symbol"],
        "ann_params": dict(params),
        "weights": [],
        "weights_timestamp": [],
        "aprs": [],
        "aprs_timestamp": [],
        "position_direction": 0,
        "apr_change": 0,
        "apr_last": 0,
        "voms_state": None,
        "iteration_count": 0,
    }


def close_entropy(state: Mapping[str, Any], now: float) -> float:
    """§14.2: entropy of the newest-first weight signs inside W minutes; 1.0 unless more than S samples."""
    a = state["ann_params"]
    return close_entropy_from_lists(
        state["weights"],
        state["weights_timestamp"],
        now,
        a["volatility_entropy_window_minutes"],
        a["volatility_entropy_window_samples"],
    )


def _copy_voms_state(voms_state: Any) -> Any:
    if not isinstance(voms_state, Mapping):
        return voms_state
    copied = dict(voms_state)
    if isinstance(copied.get("trades"), list):
        copied["trades"] = [list(fill) for fill in copied["trades"]]
    return copied


def _copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy sharing nothing mutable with the input, so a step never mutates its argument."""
    copied = dict(state)
    copied["ann_params"] = dict(state["ann_params"])
    for key in ("weights", "weights_timestamp", "aprs", "aprs_timestamp"):
        copied[key] = list(state[key])
    copied["voms_state"] = _copy_voms_state(state["voms_state"])
    return copied


def _price_unavailable(price: float | None) -> bool:
    return price is None or not math.isfinite(price) or price <= 0


def _volatility_unavailable(volatility: float | None) -> bool:
    return volatility is None or not math.isfinite(volatility) or volatility < 0


def _optional_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not _number(value):
        raise ValueError(f"{name} must be a number or None, got {value!r}")
    assert isinstance(value, numbers.Real)
    return float(value)


def _result(
    state: Mapping[str, Any],
    status: str,
    reason: str | None,
    *,
    trade: float = 0.0,
    apr: float | None = None,
    entropy: float | None = None,
) -> StepResult:
    return StepResult(
        status=status,
        reason=reason,
        trade=trade,
        position_direction=state["position_direction"],
        balance=balance_of(state["voms_state"], state["start_balance"]),
        apr=apr,
        entropy=entropy,
    )


def step(
    state: Mapping[str, Any],
    now: float,
    price: float | None,
    volatility: float | None,
    weight: float,
    config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], StepResult]:
    """§5: advance one run by one tick; returns a new state and never mutates the input."""
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"run state lacks {', '.join(missing)}")
    if not (_number(weight) and math.isfinite(weight) and -1.0 <= weight <= 1.0):
        raise ValueError(f"weight must be a finite number in [-1, 1], got {weight!r}")
    if not (_number(now) and math.isfinite(now)):
        raise ValueError(f"now must be a finite number, got {now!r}")
    for key in ("weights_timestamp", "aprs_timestamp"):
        stamps = state[key]
        if stamps and now < stamps[-1]:
            raise ValueError(f"now {now!r} is earlier than the stored {key} {stamps[-1]!r}")
    cap = (config or {}).get("max_position_direction", DEFAULT_MAX_POSITION_DIRECTION)
    if not (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1):
        raise ValueError(f"providence.max_position_direction must be an integer >= 1, got {cap!r}")
    now = float(now)
    w = float(weight)
    p_in = _optional_float("price", price)
    sigma_in = _optional_float("volatility", volatility)

    s = _copy_state(state)
    a = s["ann_params"]
    b0 = s["start_balance"]

    # S1 Rebuild VOMS.
    voms = Voms.from_state(s["voms_state"]) if s["voms_state"] else Voms(b0, a["leverage"], FEE_RATE)

    # S2 Duration.
    d = now - s["start_time"]
    s["iteration_count"] = s["iteration_count"] + 1

    # S3 Max-duration exit, at the stored price.
    if d > a["max_duration"]:
        s["voms_state"] = voms.to_state()
        return s, _result(s, COMPLETED, "max_duration")

    # S4 Price, S5 Volatility [Deviation R7: the service refreshes the cache TTL and counts a stale tick].
    if p_in is None or _price_unavailable(p_in):
        unchanged = _copy_state(state)
        return unchanged, _result(unchanged, SKIPPED, "price_unavailable")
    if sigma_in is None or _volatility_unavailable(sigma_in):
        unchanged = _copy_state(state)
        return unchanged, _result(unchanged, SKIPPED, "volatility_unavailable")
    p = p_in
    sigma = sigma_in

    # S6 Update.
    voms.set_price(p)
    s["weights"].append(w)
    s["weights_timestamp"].append(now)

    # S7 Metrics and APR.
    m = voms.metrics()
    balance = b0 if m is None else m.account_balance
    apr = ((((balance - b0) / (d / 3600)) * 24 * 365.24) / b0) if b0 > 0 and d > 0 else 0.0

    # S8 APR change against the previous rolling mean.
    prev = s["apr_last"]
    if prev != 0:
        x = (apr - prev) / prev
        if prev < 0:
            x = x * -1
        s["apr_change"] = x
    else:
        s["apr_change"] = 0

    # S9 Append APR.
    s["aprs"].append(apr)
    s["aprs_timestamp"].append(now)

    # S10 Rolling APR over R minutes (strict age test), sequential sum in chronological order.
    r_minutes = a["rolling_apr_minutes"]
    total = 0.0
    k = 0
    for value, ts in zip(s["aprs"], s["aprs_timestamp"], strict=True):
        if (now - ts) / 60 < r_minutes:
            total = total + value
            k += 1
    s["apr_last"] = total / k if k > 0 else 0.0

    # S11 Pruning.
    cw = now - (a["volatility_entropy_window_minutes"] + 1) * 60
    if s["weights_timestamp"] and s["weights_timestamp"][0] < cw:
        kept = [(v, ts) for v, ts in zip(s["weights"], s["weights_timestamp"], strict=True) if ts >= cw]
        s["weights"] = [v for v, _ in kept]
        s["weights_timestamp"] = [ts for _, ts in kept]
    ca = now - (r_minutes + 1) * 60
    if s["aprs_timestamp"] and s["aprs_timestamp"][0] < ca:
        kept = [(v, ts) for v, ts in zip(s["aprs"], s["aprs_timestamp"], strict=True) if ts >= ca]
        s["aprs"] = [v for v, _ in kept]
        s["aprs_timestamp"] = [ts for _, ts in kept]

    # S12 APR-target exit.
    goal = volatility_goal(sigma, p, a["min_goal_weight"], a["max_goal_weight"], a["min_goal"], a["max_goal"])
    if apr > a["apr_target"] * goal:
        s["voms_state"] = voms.to_state()
        return s, _result(s, COMPLETED, "apr_target", apr=apr)

    # S13 Entropy on the pruned lists, this tick's weight included.
    h = close_entropy(s, now)

    # S14 Trading block, only while the entropy gate is open.
    size = 0.0
    if h < a["machine_vision_entropy_max"]:
        # S14.1 Side (w = 0 sells), then the swing flip.
        buy = w > 0
        if a["system_swing"]:
            buy = not buy
        sell = not buy

        # S14.2 Approval.
        pos = s["position_direction"]
        ac = s["apr_change"]
        approved = (
            pos == 0
            or (ac > 0 and ((pos > 0 and buy) or (pos < 0 and sell)))
            or (ac <= 0 and ((pos > 0 and sell) or (pos < 0 and buy)))
        )
        if approved:
            # S14.3 Reversal exit while flat.
            if pos == 0 and d > a["max_direction_reversal"]:
                s["voms_state"] = voms.to_state()
                return s, _result(s, COMPLETED, "reversal", apr=apr, entropy=h)

            # S14.4 Margin check on the S7 metrics; voms_state keeps its value from the start of the step.
            ratio = m.margin_used / balance if m is not None and balance > 0 else 0.0
            extends = (pos > 0 and buy) or (pos < 0 and sell)
            if ratio > a["max_cross_margin_ratio"] and extends:
                return s, _result(s, CONTINUE, "margin_limit", apr=apr, entropy=h)

            # S14.5 Trade condition.
            tc = (
                (apr >= 0 and pos <= 0 and sell)
                or (apr <= 0 and pos < 0 and buy)
                or (apr >= 0 and pos >= 0 and buy)
                or (apr <= 0 and pos > 0 and sell)
            )

            # S14.6 Cap [Deviation R6]: only trades that increase |position_direction| are blocked.
            delta = 1 if buy else -1
            allowed = abs(pos) < cap or abs(pos + delta) < abs(pos)

            # S14.7 Trade.
            if tc and allowed:
                q = (((b0 * a["pos_weight"]) / p) * a["pos_scaler"]) / a["balance_divisor"]
                size = q * delta
                voms.add_fill(size)
                s["position_direction"] = pos + delta

    # S15 Save.
    s["voms_state"] = voms.to_state()
    return s, _result(s, CONTINUE, None, trade=size, apr=apr, entropy=h)
