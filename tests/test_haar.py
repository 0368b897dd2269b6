"""Tests for polyrot_utils.core.haar: the one-angle law, sampling, eigenangles, calibrated tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import quad

from polyrot_utils.core import haar

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# ------------------------------------------------------------------------------- the law


@pytest.mark.parametrize("d", [2, 3, 4, 5, 8, 9, 64, 65])
def test_density_integrates_to_one_and_cdf_is_its_integral(d):
    f = lambda t: float(haar.eigenangle_density(t, d))  # noqa: E731
    assert quad(f, 0, np.pi, limit=200)[0] == pytest.approx(1.0, abs=1e-9)
    for t in (0.1, 0.7, 1.5, 2.9):
        assert haar.eigenangle_cdf(t, d) == pytest.approx(quad(f, 0, t, limit=200)[0], abs=1e-9)
    grid = np.linspace(0, np.pi, 400)
    assert (haar.eigenangle_density(grid, d) >= -1e-12).all()
    assert (np.diff(haar.eigenangle_cdf(grid, d)) >= -1e-12).all()
    assert haar.eigenangle_cdf(-1.0, d) == 0.0 and haar.eigenangle_cdf(4.0, d) == 1.0


def test_density_closed_forms_match_design_formulas():
    th = np.linspace(0.05, np.pi - 0.05, 50)
    for d in (6, 7, 10, 11):
        n = d // 2
        if d % 2 == 0:
            ref = ((2 * n - 1) + np.sin((2 * n - 1) * th) / np.sin(th)) / (2 * np.pi * n)
        else:
            ref = (2 * n - np.sin(2 * n * th) / np.sin(th)) / (2 * np.pi * n)
        assert np.allclose(haar.eigenangle_density(th, d), ref, atol=1e-12)


@pytest.mark.parametrize("d", [4, 5, 8, 9])
def test_density_matches_monte_carlo(d):
    """One uniformly chosen angle per independent Haar matrix is an iid sample from ρ: KS is exact."""
    g = np.random.default_rng(100 + d)
    angles = haar.eigenangles(haar.sample_haar(d, 4000, rng=g))
    one = angles[np.arange(len(angles)), g.integers(0, d // 2, len(angles))]
    assert stats.kstest(one, lambda t: haar.eigenangle_cdf(t, d)).pvalue > 1e-3
    # and against scipy's own Haar sampler
    ref = stats.special_ortho_group.rvs(d, size=1500, random_state=d)
    ref_one = haar.eigenangles(ref)[np.arange(1500), g.integers(0, d // 2, 1500)]
    assert stats.kstest(ref_one, lambda t: haar.eigenangle_cdf(t, d)).pvalue > 1e-3
    # pooled angles (all of them, dependent within a matrix) do not reject either
    assert stats.kstest(angles.ravel(), lambda t: haar.eigenangle_cdf(t, d)).pvalue > 1e-3


def test_a_wrong_density_is_rejected():
    """The MC check has power: d = 8 angles against d = 9's law (and uniform) are rejected."""
    g = np.random.default_rng(0)
    angles = haar.eigenangles(haar.sample_haar(8, 4000, rng=g))
    one = angles[np.arange(4000), g.integers(0, 4, 4000)]
    assert stats.kstest(one, lambda t: haar.eigenangle_cdf(t, 9)).pvalue < 1e-6
    assert stats.kstest(one, stats.uniform(0, np.pi).cdf).pvalue < 1e-6


# ------------------------------------------------------------------------------- sampling, angles


@settings(deadline=None, max_examples=20)
@given(d=st.integers(2, 40), seed=st.integers(0, 2**31 - 1))
def test_samples_are_special_orthogonal(d, seed):
    q = haar.sample_haar(d, 3, rng=seed)
    assert q.shape == (3, d, d)
    assert np.abs(np.swapaxes(q, 1, 2) @ q - np.eye(d)).max() < 1e-12
    assert np.allclose(np.linalg.det(q), 1.0)
    o = haar.sample_haar(d, 50, rng=seed, special=False)
    assert np.allclose(np.abs(np.linalg.det(o)), 1.0)


def test_sampler_moments():
    d = 6
    q = haar.sample_haar(d, 20000, rng=3)
    assert np.abs(q.mean(0)).max() < 0.03  # E R = 0
    assert q.var(0).mean() == pytest.approx(1 / d, rel=0.02)
    assert (q**4).sum((1, 2)).mean() == pytest.approx(3 * d / (d + 2), rel=0.02)  # Haar kurtosis
    frob2 = ((q - np.eye(d)) ** 2).sum((1, 2))
    assert frob2.mean() == pytest.approx(2 * d, abs=4 * frob2.std() / np.sqrt(len(q)))
    # Same law as scipy's sampler (trace distribution, two-sample KS).
    ref = stats.special_ortho_group.rvs(d, size=3000, random_state=1)
    assert stats.ks_2samp(np.trace(q, axis1=1, axis2=2), np.trace(ref, axis1=1, axis2=2)).pvalue > 1e-3


def _angles_via_eig(r):
    return np.sort(np.abs(np.angle(np.linalg.eigvals(r))))


@pytest.mark.parametrize("d", [2, 3, 6, 7, 32, 33])
def test_eigenangles_against_general_eigensolver(d):
    g = np.random.default_rng(d)
    mats = [
        haar.sample_haar(d, rng=g),
        haar.random_signed_permutation(d, g),  # repeated ±1 eigenvalues
        haar.block_identity_rotation(d, 2, g, basis="coordinate"),  # many eigenvalues exactly 1
        np.eye(d),
        haar.givens_product(d, 3, g),
    ]
    for r in mats:
        full = haar.abs_eigenangles(r)
        assert full.shape == (d,)
        assert np.abs(full - _angles_via_eig(r)).max() < 1e-6
        pair = haar.eigenangles(r)
        assert pair.shape == (d // 2,)
        expect = full.copy()
        if d % 2:
            expect = np.delete(expect, 0)  # drop one zero angle (the forced eigenvalue 1)
        assert np.abs(np.repeat(pair, 2) - expect).max() < 1e-6


def test_abs_eigenangles_accepts_O_d_and_eigenangles_does_not():
    r = np.diag([-1.0, 1.0, 1.0, 1.0])
    assert np.allclose(haar.abs_eigenangles(r), [0, 0, 0, np.pi])
    with pytest.raises(ValueError, match="R has determinant"):
        haar.eigenangles(r)


def test_expected_frobenius_distance():
    for d in (2, 3, 4, 8):
        mc = haar.expected_frobenius_distance(d, method="mc", n=40000, seed=1)
        approx = haar.expected_frobenius_distance(d)
        assert approx == pytest.approx(mc, rel=1.5e-3)
    assert haar.expected_frobenius_distance(512) == pytest.approx(32.0, rel=1e-6)


def test_trace_powers_diaconis_shahshahani_for_SO_d():
    """For SO(d), d >> k, both parities: E tr R^k = 1 (k even) / 0 (k odd), Var tr R^k = k
    (as for O(d)); finite-d corrections appear once k >= d/2 (checked in the notebook)."""
    for d in (16, 17):
        t = haar.null_features(d, 4000, seed=5, n_powers=5, cache=False)["traces"]
        k = np.arange(1, 6)
        assert np.abs(t.mean(0) - (k % 2 == 0)).max() < 0.15
        assert np.allclose(t.var(0), k, rtol=0.12)


# ------------------------------------------------------------------------------- the test


def test_haar_test_on_haar_and_on_permutation():
    d = 48
    res_h = haar.haar_test(haar.sample_haar(d, rng=7), n_null=199, seed=0)
    assert res_h.pvalue > 0.01
    assert res_h.ks_pvalue_iid > 0.5  # the iid KS is wildly conservative ...
    res_p = haar.haar_test(haar.random_signed_permutation(d, 7), n_null=199, seed=0)
    assert res_p.ks_pvalue_iid > 0.5  # ... it cannot see a permutation either
    assert abs(res_p.frobenius_ratio - 1) < 0.05  # nor can the Frobenius ratio
    assert res_p.pvalue <= 0.01  # the calibrated test can
    assert res_p.kurtosis == pytest.approx(d) and res_p.max_entry == pytest.approx(np.sqrt(d))
    assert res_p.kurtosis_pvalue == pytest.approx(2 / 200)  # two-sided: twice the floor
    assert res_p.max_entry_pvalue == pytest.approx(1 / 200)
    blk = haar.haar_test(haar.block_identity_rotation(d, d // 2, 1), n_null=199, seed=0)
    assert blk.fixed_dim == d // 2 and blk.fixed_dim_pvalue == pytest.approx(1 / 200)
    assert blk.pvalue <= 0.01
    assert set(res_h.as_dict()["component_pvalues"]) == set(haar.COMPONENTS)


def test_haar_test_torch_input_and_bad_input():
    r = torch.from_numpy(haar.sample_haar(10, rng=1)).float()
    assert 0 < haar.haar_test(r, n_null=50).pvalue <= 1
    with pytest.raises(ValueError, match="R is not orthogonal"):
        haar.haar_test(np.ones((4, 4)), n_null=10)
    with pytest.raises(ValueError, match="R has determinant"):
        haar.haar_test(np.diag([-1.0, 1, 1, 1]), n_null=10)
    with pytest.raises(ValueError, match="R must be a square"):
        haar.haar_test(np.ones((4, 3)), n_null=10)
    with pytest.raises(ValueError, match="R contains NaN"):
        haar.haar_test(np.full((3, 3), np.nan), n_null=10)


def test_null_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path))
    a = haar.null_features(12, 30, seed=3)
    files = list(tmp_path.glob("haar_null/*/features.npz"))
    assert len(files) == 1
    b = haar.null_features(12, 30, seed=3)
    for k in a:
        assert np.array_equal(a[k], b[k])
    c = haar.null_features(12, 30, seed=4)
    assert not np.array_equal(a["ks"], c["ks"])


def test_size_and_power_table():
    """Seeded, so deterministic. Size on Haar within binomial noise of alpha; power on named
    alternatives high for the calibrated verdict; the iid KS and Frobenius ratio have none."""
    n, n_null = 150, 999
    table = haar.size_and_power(24, n_trials=n, alpha=0.05, seed=0, n_null=n_null)
    rows = {name: i for i, name in enumerate(table["alternative"])}
    assert list(rows)[0] == "haar"
    # The size is measured conditionally on one null sample: both binomial noises count.
    slack = 3 * np.sqrt(0.05 * 0.95 * (1 / n + 1 / n_null))
    for test in ("ks_calibrated", "kurtosis", "max_entry", "traces", "fixed_dim", "combined"):
        assert table[test][rows["haar"]] <= 0.05 + slack, test
    assert table["ks_iid"][rows["haar"]] == 0.0
    assert table["combined"][rows["signed_permutation"]] >= 0.95
    assert table["combined"][rows["half_fixed"]] >= 0.95
    assert table["combined"][rows["two_haar_blocks"]] >= 0.95
    assert table["ks_iid"][rows["two_haar_blocks"]] <= 0.1
    assert table["combined"][rows["givens_d"]] >= 0.95
    assert table["ks_iid"][rows["signed_permutation"]] <= 0.1
    assert abs(table["mean_frobenius_ratio"][rows["signed_permutation"]] - 1) < 0.03
    assert table == haar.size_and_power(24, n_trials=n, alpha=0.05, seed=0, n_null=n_null)


def test_pooled_test_size_and_power():
    d, m, reps = 10, 4, 60
    g = np.random.default_rng(0)
    rejections = sum(
        haar.haar_test_pooled(list(haar.sample_haar(d, m, rng=g)), n_null=99, seed=0, n_resample=500).pvalue <= 0.05
        for _ in range(reps)
    )
    assert rejections / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    perms = [haar.random_signed_permutation(d, g) for _ in range(m)]
    res = haar.haar_test_pooled(perms, n_null=99, seed=0, n_resample=500)
    assert res.pvalue <= 0.01 and res.n_matrices == m and len(res.per_matrix) == m
    with pytest.raises(ValueError, match="Rs\\[1\\] is not orthogonal"):
        haar.haar_test_pooled([np.eye(3), np.ones((3, 3))], n_null=10)


def test_paper_ks_test_has_no_power():
    d, m = 64, 8
    g = np.random.default_rng(2)
    on_haar = haar.paper_ks_test(list(haar.sample_haar(d, m, rng=g)), seed=0)
    on_perm = haar.paper_ks_test([haar.random_signed_permutation(d, g) for _ in range(m)], seed=0)
    o_fits = list(haar.sample_haar(d, m, rng=g, special=False))  # O(d) fits are accepted
    on_o = haar.paper_ks_test(o_fits, seed=0)
    assert on_haar.n_angles == d * m and on_haar.n_haar_angles == d * 10  # the paper's 10-matrix pool
    assert on_haar.pvalue > 0.05 and on_perm.pvalue > 0.01 and on_o.pvalue > 0.01


def test_paper_haar_pool_is_the_papers():
    """The pool is eigenvalue_spectrum.py's: default_rng(31), QR with the sign fix, O(d)."""
    d = 16
    g = np.random.default_rng(31)
    expect, dets = [], []
    for _ in range(10):
        q, r = np.linalg.qr(g.standard_normal((d, d)))
        q = q * np.sign(np.diag(r))
        dets.append(np.linalg.det(q))
        expect.append(np.abs(np.angle(np.linalg.eigvals(q))))
    np.testing.assert_array_equal(haar.paper_haar_pool(d), np.concatenate(expect))
    assert any(x < 0 for x in dets) and any(x > 0 for x in dets)  # Haar on O(d), both components
    with pytest.raises(ValueError, match="n must be"):
        haar.paper_haar_pool(d, n=0)


def test_alternatives_are_rotations():
    g = np.random.default_rng(4)
    for name, gen in haar.default_alternatives(12).items():
        r = gen(g)
        assert np.abs(r.T @ r - np.eye(12)).max() < 1e-10, name
        assert np.linalg.det(r) == pytest.approx(1.0), name
    assert haar.matrix_features(haar.block_identity_rotation(9, 4, g))["fixed_dim"][0] == 5
