"""Outlier dimensions and where a rotation sends them (polyrot_utils.core.basis)."""

from __future__ import annotations

import numpy as np
import pytest

from polyrot_utils.core import basis, haar


def _acts_with_outliers(n: int, d: int, outliers: list[int], rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d))
    for j in outliers:  # heavy-tailed: a few huge values
        x[:, j] = rng.standard_t(df=2.5, size=n) * 5
    return x


def test_kurtosis_is_three_for_gaussians_and_finds_outliers():
    rng = np.random.default_rng(0)
    x = _acts_with_outliers(20_000, 16, [3, 11], rng)
    kurt = basis.dimension_kurtosis(x)
    normal = np.delete(kurt, [3, 11])
    assert np.allclose(normal, 3.0, atol=0.2)
    assert set(basis.outlier_dimensions(x, k=2).tolist()) == {3, 11}


def test_permutation_maps_outliers_and_is_detected():
    d = 32
    perm = np.eye(d)[np.random.default_rng(1).permutation(d)]
    src = [2, 7]
    tgt = [int(np.argmax(perm[i])) for i in src]
    res = basis.outlier_alignment(perm, src, tgt, n_null=200, seed=0)
    assert res.mass == pytest.approx(1.0)
    assert res.p_value <= 1 / 201 + 1e-12
    assert res.best_match == tgt


def test_haar_rotation_is_not_flagged():
    d = 32
    rng = np.random.default_rng(2)
    pvals = [basis.outlier_alignment(haar.sample_haar(d, rng=rng), [0, 1], [5, 6], n_null=200, seed=s).p_value
             for s in range(20)]
    assert np.mean(np.array(pvals) < 0.05) <= 0.2  # size near 0.05 (20 draws: loose bound)


def test_bad_input():
    with pytest.raises(ValueError, match="orthogonal"):
        basis.outlier_alignment(np.ones((4, 4)), [0], [1])
    with pytest.raises(ValueError, match="source_outliers"):
        basis.outlier_alignment(np.eye(4), [9], [1])
    with pytest.raises(ValueError, match="acts"):
        basis.dimension_kurtosis(np.zeros(5))
