"""The stored JSON of a run state (providence.md §9.2): the same state back, and never a silent `null`."""

from __future__ import annotations

import json
import math
from typing import Any

from tests.providence.test_services_providence import _ticks
from ttt.ports import StrictJsonText
from ttt.providence import reference
from ttt.services.providence.shard import state_text


def _same(a: Any, b: Any, where: str = "$") -> None:
    """Equal with the same types and the same float bits (0.0 and -0.0 differ; 1 and 1.0 differ)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: length"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a.hex() == b.hex(), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def test_reference_states_read_back_exactly_as_the_json_module_would() -> None:
    checked = traded = 0
    for seed in range(40):
        params = reference.sample_params(seed, "BTC", 40.0)
        state = reference.new_state(params, start_time=1.76e9, start_balance=params["virtual_balance"])
        for t, p, v, w in _ticks(120):
            state, result = reference.step(state, t, p, v, w)
            traded += result.trade != 0
            _same(json.loads(json.dumps(state)), json.loads(state_text(state)))
            checked += 1
            if result.status == "completed":
                break
    assert checked > 1000 and traded > 50


def test_extreme_floats_keep_their_bits() -> None:
    values = [
        0.0,
        -0.0,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        0.1 + 0.2,
        1e16,
        1e-7,
        123456789.0,
    ]
    _same(json.loads(state_text({"x": values})), {"x": values})


def test_non_finite_numbers_are_written_as_the_database_will_refuse_them() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        text = state_text({"apr_last": bad, "aprs": [1.0]})
        assert "NaN" in text or "Infinity" in text
        assert "null" not in text


def test_nulls_and_keys_the_fast_path_cannot_take_are_kept() -> None:
    assert json.loads(state_text({"voms_state": None, "a": [None, 1]})) == {
        "voms_state": None,
        "a": [None, 1],
    }
    assert json.loads(state_text({1: 2.0})) == {"1": 2.0}  # type: ignore[dict-item]
    assert json.loads(state_text({"big": 2**70})) == {"big": 2**70}


def test_only_the_strict_encoders_output_is_marked_as_needing_no_second_parse() -> None:
    assert type(state_text({"apr_last": 1.5, "aprs": [1.0, -2e-9]})) is StrictJsonText
    for made_by_json in ({"apr_last": math.nan}, {"voms_state": None}, {"x": math.inf}):
        assert type(state_text(made_by_json)) is str
