"""Intervals across seeds: checked against a brute-force enumeration written from the definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.core.intervals import pair_interval, seed_interval


def _exact_pair_means(values: dict, seeds: list) -> list[tuple[float, float]]:
    """Every equally likely draw of len(seeds) seeds with replacement -> (mean over pairs, prob)."""
    n = len(seeds)
    out = []
    for draw in itertools.product(range(n), repeat=n):
        num = den = 0.0
        for i, j in itertools.combinations(range(n), 2):  # positions in the draw
            a, b = seeds[draw[i]], seeds[draw[j]]
            if a == b:
                continue
            v = values.get((a, b), values.get((b, a)))
            num, den = num + v, den + 1
        if den:
            out.append(num / den)
    return out


def test_pair_interval_matches_the_exact_bootstrap_distribution():
    values = {(0, 1): 0.1, (0, 2): 0.4, (1, 2): 0.2}
    exact = np.array(_exact_pair_means(values, [0, 1, 2]))
    iv = pair_interval(values, n_boot=20_000, seed=1, level=0.8)
    assert iv.point == pytest.approx(np.mean(list(values.values())))
    assert iv.lo == pytest.approx(np.quantile(exact, 0.1), abs=0.02)
    assert iv.hi == pytest.approx(np.quantile(exact, 0.9), abs=0.02)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=6))
def test_seed_interval_lies_in_the_range_and_contains_nothing_outside(xs):
    iv = seed_interval(dict(enumerate(xs)), n_boot=400, seed=0)
    assert min(xs) - 1e-9 <= iv.lo <= iv.hi <= max(xs) + 1e-9
    assert iv.n == len(xs)


def test_a_constant_has_a_zero_width_interval_and_bad_input_is_named():
    iv = seed_interval({0: 1.0, 1: 1.0, 2: 1.0}, n_boot=200)
    assert iv.lo == iv.hi == iv.point == 1.0
    with pytest.raises(ValueError, match="level"):
        seed_interval({0: 1.0}, level=1.5)
    with pytest.raises(ValueError, match="not finite"):
        seed_interval({0: float("nan")})
    with pytest.raises(ValueError, match="pair keys"):
        pair_interval({(0, 0): 1.0})
    with pytest.raises(ValueError, match="non-empty"):
        seed_interval({})
