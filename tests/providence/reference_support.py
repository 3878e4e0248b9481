"""Constructed run states for the reference-engine branch tests (values chosen for hand calculation).

Book: B0 = 1000, leverage 10, one long fill of 1 unit at 100 with fee_rate 0 (restored from voms_state),
so at P = 110 / 100 / 90 the balance is 1010 / 1000 / 990 and, with D = one day,
APR = ((±10 / 24) × 24 × 365.24) / 1000 = ±3.6524 or exactly 0.0.
"""

from __future__ import annotations

from typing import Any

NOW = 86_400.0
B0 = 1000.0


def base_params(**overrides: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "virtual_balance": B0,
        "symbol": "BTC/USDC:USDC",
        "leverage": 10.0,
        "max_duration": 10**9,
        "max_direction_reversal": 10**9,
        "balance_divisor": 5,
        "pos_scaler": 0.002,
        "max_cross_margin_ratio": 1.0,
        "apr_target": 1e12,
        "pos_weight": 0.01,
        "min_goal": 0.5,
        "max_goal": 5,
        "min_goal_weight": 0.002,
        "max_goal_weight": 0.01,
        "volatility_entropy_window_minutes": 1,
        "volatility_entropy_window_samples": 2,
        "machine_vision_entropy_max": 0.1,
        "rolling_apr_minutes": 5,
        "decision_distance_seconds": 0,
        "system_swing": False,
    }
    p.update(overrides)
    return p


def book(price: float = 100.0, fills: list[list[float]] | None = None, fee: float = 0.0) -> dict[str, Any]:
    return {
        "starting_balance": B0,
        "leverage": 10.0,
        "fee_rate": fee,
        "current_price": price,
        "trades": [[100.0, 1.0]] if fills is None else fills,
    }


def make_state(
    *,
    pos: int = 0,
    apr_last: float = 0.0,
    prior_weight: float = 0.5,
    voms_state: dict[str, Any] | str | None = "default",
    start_time: float = 0.0,
    **param_overrides: Any,
) -> dict[str, Any]:
    """Three prior weights of one sign (so H = 0 once this tick's same-sign weight is appended)."""
    return {
        "start_time": start_time,
        "start_balance": B0,
        "symbol": "BTC/USDC:USDC",
        "ann_params": base_params(**param_overrides),
        "weights": [prior_weight] * 3,
        "weights_timestamp": [NOW - 15, NOW - 10, NOW - 5],
        "aprs": [],
        "aprs_timestamp": [],
        "position_direction": pos,
        "apr_change": 0,
        "apr_last": apr_last,
        "voms_state": book() if voms_state == "default" else voms_state,
        "iteration_count": 7,
    }


def unit_size(price: float) -> float:
    """q of S14.7 for these parameters, written out by hand."""
    return (((B0 * 0.01) / price) * 0.002) / 5


def apr_at(price: float, now: float = NOW, start: float = 0.0) -> float:
    balance = B0 + (1.0 * price - 100.0 * 1.0)
    return (((balance - B0) / ((now - start) / 3600)) * 24 * 365.24) / B0
