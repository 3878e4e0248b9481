"""Run parameters (providence.md §2): golden vectors, draw order, config merge and validation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from ttt.domain.params import validate_providence_config
from ttt.providence import reference as ref

KEY_ORDER = [
    "virtual_balance",
    "symbol",
    "leverage",
    "max_duration",
    "max_direction_reversal",
    "balance_divisor",
    "pos_scaler",
    "max_cross_margin_ratio",
    "apr_target",
    "pos_weight",
    "min_goal",
    "max_goal",
    "min_goal_weight",
    "max_goal_weight",
    "volatility_entropy_window_minutes",
    "volatility_entropy_window_samples",
    "machine_vision_entropy_max",
    "rolling_apr_minutes",
    "decision_distance_seconds",
    "system_swing",
]

COMMON = {
    "virtual_balance": 7000,
    "symbol": "BTC/USDC:USDC",
    "leverage": 40.0,
    "balance_divisor": 5,
    "max_cross_margin_ratio": 0.01,
    "pos_weight": 0.010910951739876785,
    "decision_distance_seconds": 0,
}

GOLDEN = {
    0: {
        "system_swing": True,
        "max_duration": 10050600,
        "max_direction_reversal": 2010120,
        "pos_scaler": 0.0016842951617287631,
        "apr_target": 5.067985166872681,
        "min_goal": 0.1,
        "max_goal": 1,
        "min_goal_weight": 0.0007,
        "max_goal_weight": 0.0176,
        "volatility_entropy_window_minutes": 10,
        "volatility_entropy_window_samples": 19,
        "machine_vision_entropy_max": 0.1,
        "rolling_apr_minutes": 19,
    },
    42: {
        "system_swing": False,
        "max_duration": 12212166,
        "max_direction_reversal": 2035361,
        "pos_scaler": 0.0030072114344166173,
        "apr_target": 6.798516687268232,
        "min_goal": 0.1,
        "max_goal": 7,
        "min_goal_weight": 0.0008,
        "max_goal_weight": 0.0081,
        "volatility_entropy_window_minutes": 8,
        "volatility_entropy_window_samples": 20,
        "machine_vision_entropy_max": 0.13,
        "rolling_apr_minutes": 23,
    },
}


@pytest.mark.parametrize("seed", [0, 42])
def test_golden_vectors_all_keys_in_order(seed: int) -> None:
    p = ref.sample_params(seed, "BTC/USDC:USDC", 40.0)
    assert list(p) == KEY_ORDER
    expected = {**COMMON, **GOLDEN[seed]}
    for key in KEY_ORDER:
        assert p[key] == expected[key], key
        assert type(p[key]) is type(expected[key]), key


def test_params_are_native_json_types() -> None:
    p = ref.sample_params(7, "ETH/USDC:USDC", 25)
    assert p["leverage"] == 25.0 and isinstance(p["leverage"], float)
    for value in p.values():
        assert type(value) in (int, float, str, bool)
    assert json.loads(json.dumps(p)) == p


def test_draw_order_is_the_spec_order() -> None:
    """Replays §2.2 by hand with the same generator; any reordering shows up here."""
    seed = 123456789
    g = np.random.Generator(np.random.PCG64(seed))

    def n(lo: int, hi: int) -> int:
        return int(g.integers(lo, hi, endpoint=True))

    swing = bool(n(0, 1))
    md = n(300, 15778800)
    mdr = int(md / n(1, 9))
    ps = float(g.uniform(1.618, 3.236)) / 1000
    at = n(20, 100) / 5 / 1.618
    expected = {
        "system_swing": swing,
        "max_duration": md,
        "max_direction_reversal": mdr,
        "pos_scaler": ps,
        "apr_target": at,
        "min_goal": n(1, 9) / 10,
        "max_goal": n(1, 10),
        "min_goal_weight": n(1, 38) / 10000,
        "max_goal_weight": n(69, 200) / 10000,
        "volatility_entropy_window_minutes": n(1, 15),
        "volatility_entropy_window_samples": n(5, 20),
        "machine_vision_entropy_max": n(5, 15) / 100,
        "rolling_apr_minutes": n(1, 30),
    }
    p = ref.sample_params(seed, "BTC/USDC:USDC", 3.0)
    assert {k: p[k] for k in expected} == expected


def test_partial_ann_params_merge_over_defaults() -> None:
    cfg: dict[str, Any] = {
        "virtual_balance": 1234.5,
        "ann_params": {"entropy_window_minutes": [4, 4], "balance_divisor": 2},
        "unknown_key": 1,
    }
    p = ref.sample_params(42, "BTC/USDC:USDC", 40.0, cfg)
    assert p["virtual_balance"] == 1234.5
    assert p["volatility_entropy_window_minutes"] == 4
    assert p["balance_divisor"] == 2
    assert p["max_cross_margin_ratio"] == 0.05 / 2
    # Other draws are unaffected by the narrowed window range (same stream, same order).
    base = ref.sample_params(42, "BTC/USDC:USDC", 40.0)
    assert p["max_duration"] == base["max_duration"]
    assert p["rolling_apr_minutes"] == base["rolling_apr_minutes"]
    # Seed 42 draws n = 55 for apr_target (golden 6.798516687268232 = 55 / 5 / 1.618).
    assert base["apr_target"] == 55 / 5 / 1.618
    assert p["apr_target"] == 55 / 2 / 1.618


def test_default_ranges_are_the_reference_example_values() -> None:
    d = ref.DEFAULT_ANN_RANGES
    assert d["max_duration"] == [300, 15778800]
    assert d["pos_scaler"] == [1.618, 3.236]
    assert d["pos_weight"] == 0.032732855219630354
    assert d["max_cross_margin_ratio"] == 0.05
    assert len(d) == 20
    assert validate_providence_config(None) == []
    assert validate_providence_config({"ann_params": dict(d), "virtual_balance": 7000}) == []


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"ann_params": {"max_duration": [300]}}, "max_duration"),
        ({"ann_params": {"max_duration": "300"}}, "max_duration"),
        ({"ann_params": {"max_duration": [900, 300]}}, "max_duration has min"),
        ({"ann_params": {"reversal_divisor": [1.5, 9]}}, "reversal_divisor must hold two integers"),
        ({"ann_params": {"min_goal": [True, 9]}}, "min_goal must hold two integers"),
        ({"ann_params": {"pos_scaler": [3.0, 1.0]}}, "pos_scaler has min"),
        ({"ann_params": {"pos_scaler": [0.0, 1.0]}}, "pos_scaler minimum must be > 0"),
        ({"ann_params": {"balance_divisor": 0}}, "balance_divisor"),
        ({"ann_params": {"pos_scaler_divisor": -1}}, "pos_scaler_divisor"),
        ({"ann_params": {"apr_target_divisor": 0.0}}, "apr_target_divisor"),
        ({"ann_params": {"goal_weight_divisor": 0}}, "goal_weight_divisor"),
        ({"ann_params": {"machine_vision_entropy_divisor": 0}}, "machine_vision_entropy_divisor"),
        ({"ann_params": {"pos_weight_divisor": 0}}, "pos_weight_divisor"),
        ({"ann_params": {"min_goal": [0, 9]}}, "min_goal minimum must be >= 1"),
        ({"ann_params": {"max_goal": [0, 10]}}, "max_goal minimum must be >= 1"),
        ({"ann_params": {"max_duration": [0, 10]}}, "max_duration minimum must be >= 1"),
        ({"ann_params": {"reversal_divisor": [0, 9]}}, "reversal_divisor minimum must be >= 1"),
        ({"ann_params": {"entropy_window_minutes": [0, 15]}}, "entropy_window_minutes minimum must be >= 1"),
        ({"ann_params": {"entropy_window_samples": [1, 20]}}, "entropy_window_samples minimum must be >= 2"),
        ({"ann_params": {"rolling_apr_minutes": [0, 30]}}, "rolling_apr_minutes minimum must be >= 1"),
        ({"virtual_balance": 0}, "virtual_balance"),
        ({"virtual_balance": -5.0}, "virtual_balance"),
        ({"max_position_direction": 0}, "max_position_direction"),
        ({"ann_params": {"pos_weight": 0.0}}, "pos_weight must be"),
        ({"ann_params": {"max_cross_margin_ratio": -0.1}}, "max_cross_margin_ratio"),
        ({"ann_params": [1, 2]}, "ann_params must be a mapping"),
    ],
)
def test_validation_names_each_problem(cfg: dict[str, Any], needle: str) -> None:
    problems = validate_providence_config(cfg)
    assert len(problems) == 1, problems
    assert needle in problems[0]
    with pytest.raises(ValueError, match="invalid providence configuration"):
        ref.sample_params(1, "BTC/USDC:USDC", 2.0, cfg)


def test_boundary_values_are_accepted() -> None:
    cfg = {
        "virtual_balance": 0.01,
        "max_position_direction": 1,
        "ann_params": {
            "min_goal": [1, 1],
            "max_goal": [1, 1],
            "max_duration": [1, 1],
            "reversal_divisor": [1, 1],
            "entropy_window_minutes": [1, 1],
            "entropy_window_samples": [2, 2],
            "rolling_apr_minutes": [1, 1],
            "max_cross_margin_ratio": 0,
        },
    }
    assert validate_providence_config(cfg) == []
    p = ref.sample_params(5, "BTC/USDC:USDC", 1.0, cfg)
    assert p["volatility_entropy_window_samples"] == 2
    assert p["max_cross_margin_ratio"] == 0.0


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_bad_seed_is_rejected(seed: Any) -> None:
    with pytest.raises(ValueError, match="seed"):
        ref.sample_params(seed, "BTC/USDC:USDC", 2.0)
