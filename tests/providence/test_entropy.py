"""Permutation entropy (providence.md §14, §16.5) against the spec's worked examples and antropy."""

from __future__ import annotations

import itertools
import math
from typing import Any

import antropy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttt.domain.entropy import CODES, motif_code, motif_counts, pe_from_counts, pe_term, perm_entropy
from ttt.providence import reference as ref


def antropy_pe(y: list[float]) -> float:
    return float(antropy.perm_entropy(np.asarray(y, dtype=float), order=3, delay=1, normalize=True))


def state_with(weights: list[float], stamps: list[float], w_minutes: int, samples: int) -> dict[str, Any]:
    return {
        "weights": weights,
        "weights_timestamp": stamps,
        "ann_params": {
            "volatility_entropy_window_minutes": w_minutes,
            "volatility_entropy_window_samples": samples,
        },
    }


# §14.1 table: the non-21 codes and their ternary triples; the other 10 triples are code 21.
TABLE = {
    15: {(-1, 0, -1), (-1, 1, -1), (-1, 1, 0), (0, 1, 0)},
    19: {(0, -1, 0), (0, -1, 1), (1, -1, 1), (1, 0, 1)},
    7: {(0, -1, -1), (1, -1, -1), (1, -1, 0), (1, 0, 0)},
    11: {(0, 0, -1), (0, 1, -1), (1, 1, -1), (1, 1, 0)},
    5: {(1, 0, -1)},
}


def test_codes_match_the_table_for_every_ternary_triple() -> None:
    triples = list(itertools.product((-1, 0, 1), repeat=3))
    by_code: dict[int, set[tuple[int, ...]]] = {}
    for t in triples:
        by_code.setdefault(motif_code(*t), set()).add(t)
    assert set(by_code) == set(CODES)
    for code, expected in TABLE.items():
        assert by_code[code] == expected
    assert len(by_code[21]) == 10
    assert {(c, c, c) for c in (-1, 0, 1)} <= by_code[21]


@given(st.tuples(*[st.integers(-3, 3)] * 3) | st.tuples(*[st.floats(-1e6, 1e6)] * 3))
@settings(max_examples=300, deadline=None)
def test_code_is_the_stable_argsort_hash(triple: tuple[float, float, float]) -> None:
    idx = np.argsort(np.asarray(triple, dtype=float), kind="stable")
    assert motif_code(*triple) == int(idx[0]) + 3 * int(idx[1]) + 9 * int(idx[2])


def test_codes_are_summed_in_ascending_order() -> None:
    assert CODES == (5, 7, 11, 15, 19, 21)
    assert math.log2(6.0) == 2.584962500721156


# ---------------------------------------------------------------- §14.3 worked examples

E1_TIMES = [9935.0 + 5 * i for i in range(14)]
E1_WEIGHTS = [-0.0667, -0.0667, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, -0.0333, -0.0333, -0.0333, 0.0, 0.0, 0.0]


def test_e1_window_reversal_and_s_rule() -> None:
    newest_first = [0, 0, 0, -1, -1, -1, 0, 0, 0, 1, 1, 1]
    assert [(10000.0 - t) / 60 for t in E1_TIMES[:2]] == pytest.approx([1.0833, 1.0], abs=1e-4)
    codes = [motif_code(*newest_first[i : i + 3]) for i in range(10)]
    assert codes == [21, 11, 7, 21, 21, 21, 21, 21, 21, 21]
    assert motif_counts(newest_first) == [0, 1, 1, 0, 0, 8]
    h = ref.close_entropy(state_with(E1_WEIGHTS, E1_TIMES, 1, 11), 10000.0)
    assert h == 0.35665047157556895
    assert perm_entropy(newest_first) == 0.35665047157556895
    assert ref.close_entropy(state_with(E1_WEIGHTS, E1_TIMES, 1, 12), 10000.0) == 1.0
    # A single chronological upward step (-1 x9 then 0 x3), newest first, gives the same value.
    assert perm_entropy([0] * 3 + [-1] * 9) == 0.35665047157556895


def test_e2_asymmetry() -> None:
    stamps = [100.0 + i for i in range(7)]
    up = ref.close_entropy(state_with([-0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 0.5], stamps, 1, 5), 107.0)
    down = ref.close_entropy(state_with([0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.5], stamps, 1, 5), 107.0)
    assert up == 0.5303560860446522
    assert down == 0.0
    newest_first_up = [1, 1, 1, 1, -1, -1, -1]
    assert [motif_code(*newest_first_up[i : i + 3]) for i in range(5)] == [21, 21, 11, 7, 21]


def test_e3_strictness_and_all_pattern_kinds() -> None:
    seven = state_with([0.3, -0.2, 0.0, 0.1, -0.4, 0.2, 0.9], [float(i) for i in range(7)], 1, 7)
    assert ref.close_entropy(seven, 7.0) == 1.0
    chrono = [0.0, 0.4, 0.0, -0.4, 0.0, 0.4, 0.0, 0.0]
    eight = state_with(chrono, [float(i) for i in range(8)], 1, 7)
    newest_first = [0, 0, 1, 0, -1, 0, 1, 0]
    assert [motif_code(*newest_first[i : i + 3]) for i in range(6)] == [21, 15, 5, 19, 21, 15]
    assert motif_counts(newest_first) == [1, 0, 0, 2, 1, 2]
    assert ref.close_entropy(eight, 8.0) == 0.7420981285103057


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        ([4, 7, 9, 10, 6, 11, 3], 0.5887621559162939),
        ([1, -1] * 30, 0.38685280723454163),
        ([0, 0, 1, 1, 0, 0, -1, -1, 0, 0], 0.5802792108518124),
        ([1, 2, 3], 0.0),
        ([5.5] * 17, 0.0),
        ([0, 0, 0], 0.0),
        ([1] * 30 + [-1] * 30, 0.09705351276932009),
        ([-1] * 30 + [1] * 30, 0.0),
    ],
)
def test_further_pe_vectors(y: list[float], expected: float) -> None:
    assert ref.perm_entropy(y) == expected


def test_pe_needs_three_values() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        ref.perm_entropy([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        ref.perm_entropy([1.0, float("nan"), 2.0])


def test_pe_from_counts_rejects_inconsistent_counts() -> None:
    with pytest.raises(ValueError):
        pe_from_counts([1, 1, 1, 1, 1], 5)
    with pytest.raises(ValueError):
        pe_from_counts([1, 0, 0, 0, 0, 1], 3)


def test_pe_from_counts_is_the_literal_formula() -> None:
    counts = [1, 0, 0, 2, 1, 2]
    pe = 0.0
    for c in counts:
        if c:
            pe = pe - (c / 6) * math.log2(c / 6)
    assert pe_from_counts(counts, 6) == pe / math.log2(6.0)
    assert pe_term(2, 6) == (2 / 6) * math.log2(2 / 6)


# ---------------------------------------------------------------- §16.5 (direct PE of the windows)

G_SIGNS = [-1, -1, 1, 1, 1, 0, 0, 0, -1, -1, -1, 0, 0, 0]


def test_shared_history_example_codes() -> None:
    mu = [motif_code(G_SIGNS[g], G_SIGNS[g - 1], G_SIGNS[g - 2]) for g in range(2, 14)]
    assert mu == [7, 11, 21, 21, 21, 21, 21, 21, 21, 7, 11, 21]


def test_shared_history_run_a_and_run_b() -> None:
    run_a = list(reversed(G_SIGNS[2:]))
    assert motif_counts(run_a) == [0, 1, 1, 0, 0, 8]
    assert perm_entropy(run_a) == 0.35665047157556895
    run_b = list(reversed(G_SIGNS[6:]))
    assert motif_counts(run_b) == [0, 1, 1, 0, 0, 4]
    assert perm_entropy(run_b) == 0.4841962570206112


# ---------------------------------------------------------------- antropy agreement

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
tie_heavy = st.sampled_from([-1.0, 0.0, 1.0])


@given(st.lists(finite, min_size=3, max_size=200))
@settings(max_examples=200, deadline=None)
def test_pe_matches_antropy_on_random_input(y: list[float]) -> None:
    assert perm_entropy(y) == pytest.approx(antropy_pe(y), abs=1e-12)


@given(st.lists(tie_heavy, min_size=3, max_size=200) | st.lists(st.sampled_from([2.0, 3.0]), min_size=3))
@settings(max_examples=300, deadline=None)
def test_pe_matches_antropy_on_tie_heavy_input(y: list[float]) -> None:
    assert perm_entropy(y) == pytest.approx(antropy_pe(y), abs=1e-12)


@given(
    st.lists(st.tuples(st.sampled_from([-0.4, -0.1, 0.0, 0.0, 0.2, 0.7]), st.integers(0, 20)), max_size=120),
    st.integers(1, 15),
    st.integers(2, 20),
)
@settings(max_examples=200, deadline=None)
def test_close_entropy_is_antropy_of_the_newest_first_ternary_list(
    entries: list[tuple[float, int]], w_minutes: int, samples: int
) -> None:
    stamps: list[float] = []
    t = 0.0
    for _, gap in entries:
        t += gap
        stamps.append(t)
    weights = [w for w, _ in entries]
    now = t + 1.0
    signs = [(w > 0) - (w < 0) for w, ts in zip(weights, stamps, strict=True) if (now - ts) / 60 < w_minutes]
    newest_first = [float(s) for s in reversed(signs)]
    h = ref.close_entropy(state_with(weights, stamps, w_minutes, samples), now)
    if len(newest_first) > samples:
        assert h == pytest.approx(antropy_pe(newest_first), abs=1e-12)
    else:
        assert h == 1.0
