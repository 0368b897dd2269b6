"""The Haar negative controls on planted data, where the answer is known.

* a planted Haar rotation: the pair is recovered (map_ev ≈ 1) and looks Haar;
* a planted signed permutation: the pair is recovered and the calibrated test rejects it;
* both negative controls align nothing (held-out map_ev ≤ ~0) — and, for clouds with nothing
  to align, Procrustes returns a rotation the calibrated test does not reject at its level:
  "looks Haar" is what an unrelated pair gives too.
"""

from __future__ import annotations

import numpy as np
import pytest

from polyrot_utils.experiments import controls
from polyrot_utils.core import haar
from polyrot_utils.core.synthetic import planted_pair

D, N, N_NULL = 16, 800, 100


def _planted(R_star, seed):
    rng = np.random.default_rng(seed)
    X, Y = planted_pair(R_star, N, noise=0.01, rng=rng)
    U = rng.standard_normal((N, D)) * X.std(0) + X.mean(0)  # "untrained": same scale, no relation to X
    return X, Y, U


def test_planted_haar_pair_and_its_controls():
    R_star = haar.sample_haar(D, rng=np.random.default_rng(1))
    X, Y, U = _planted(R_star, 2)
    res = controls.haar_negative_controls(X, U, Y, n_null=N_NULL, seed=0, shuffle_seed=3)
    assert list(res) == ["pair", "untrained", "shuffled"]
    assert res["pair"].map_ev > 0.99
    assert res["pair"].looks_haar
    for name in ("untrained", "shuffled"):
        r = res[name]
        assert r.map_ev < 0.05, (name, r.map_ev)   # nothing aligned on held-out rows
        assert r.n_fit == N // 2 and r.n_eval == N // 2 and r.d == D
        assert 1 / (N_NULL + 1) <= r.pvalue <= 1
    table = controls.controls_table(res)
    assert list(table.index) == ["pair", "untrained", "shuffled"] and "calibrated p" in table.columns


def test_planted_signed_permutation_is_rejected_but_the_untrained_control_is_not():
    P = haar.random_signed_permutation(D, np.random.default_rng(4))
    X, Y, U = _planted(P, 5)
    res = controls.haar_negative_controls(X, U, Y, n_null=N_NULL, seed=0)
    assert res["pair"].map_ev > 0.99
    assert not res["pair"].looks_haar and res["pair"].pvalue <= 0.05
    assert res["untrained"].map_ev < 0.05


def test_unrelated_isotropic_clouds_give_a_haar_looking_rotation():
    """Independent isotropic clouds: the cross-covariance is Gaussian, its polar factor Haar, so
    the calibrated test rejects at about its level α — far from always."""
    rejections = 0
    for s in range(8):
        rng = np.random.default_rng([7, s])
        X, U = rng.standard_normal((N, D)), rng.standard_normal((N, D))
        r = controls.fit_and_test(X, U, name="untrained", n_null=N_NULL, seed=0)
        rejections += not r.looks_haar
    assert rejections <= 3


def test_bad_input_is_named():
    X = np.zeros((50, D))
    with pytest.raises(ValueError, match="untrained must have"):
        controls.haar_negative_controls(X, np.zeros((40, D)))
    with pytest.raises(ValueError, match="source has 20 rows"):
        controls.fit_and_test(X[:20], X[:20])
    with pytest.raises(ValueError, match="eval_fraction"):
        controls.fit_and_test(X, X, eval_fraction=1.5)
    with pytest.raises(ValueError, match="source must be a 2-D"):
        controls.fit_and_test(np.zeros(5), np.zeros(5))
