"""The one-of-each helpers in core: input check, nearest orthogonal, fixed subspace, schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.core import haar
from polyrot_utils.core.basis import fixed_subspace
from polyrot_utils.core.procrustes import fit_rotation, nearest_orthogonal
from polyrot_utils.core.schedule import checkpoint_steps
from polyrot_utils.core.validate import as_array, as_tensor, is_numpy_input


def test_as_tensor_accepts_and_refuses_by_name():
    assert as_tensor([[1, 2], [3, 4]], "x").dtype == torch.float64
    t32 = torch.ones(2, 3, dtype=torch.float32)
    assert as_tensor(t32, "x").dtype == torch.float32
    assert as_array(t32, "x").dtype == np.float64
    assert is_numpy_input([1.0]) and not is_numpy_input(t32)
    with pytest.raises(ValueError, match=r"^x must be 2-D with shape \(n, d\), got shape \(3,\)"):
        as_tensor(np.ones(3), "x", ndim=2, shape="(n, d)")
    with pytest.raises(ValueError, match="v contains NaN"):
        as_tensor([1.0, np.inf], "v")
    assert bool(torch.isnan(as_tensor([np.nan], "v", finite=False)).all())
    for bad, what in (
        (np.array([True]), "real numeric array"),
        (["a"], "real numeric array_like"),
        (torch.ones(2, dtype=torch.complex64), "real-valued"),
    ):
        with pytest.raises(ValueError, match=f"^m must be .*{what}"):
            as_tensor(bad, "m")
    with pytest.raises(ValueError, match="R must be a square"):
        as_array(np.ones((2, 3)), "R", ndim=(2, 3), square=True, shape="a square (d, d) matrix")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        as_tensor(np.ones(3), "x", min_ndim=2)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_nearest_orthogonal_recovers_the_polar_factor(d, seed):
    """Planted answer: M = Q S with Q orthogonal and S symmetric positive definite → Q."""
    rng = np.random.default_rng(seed)
    q = haar.sample_haar(d, rng=rng)
    a = rng.standard_normal((d, d))
    s = a @ a.T + d * np.eye(d)
    np.testing.assert_allclose(nearest_orthogonal(q @ s), q, atol=1e-9)
    r = nearest_orthogonal(torch.from_numpy(q @ s))
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float64
    # fit_rotation is Procrustes through the same solver: the polar factor of XᵀY
    x = rng.standard_normal((4 * d, d))
    np.testing.assert_allclose(
        fit_rotation(x, x @ q, special=False, center=False),
        nearest_orthogonal(x.T @ (x @ q)),
        atol=1e-12,
    )


def test_nearest_orthogonal_special_and_errors():
    reflect = np.diag([1.0, 1.0, -1.0])
    assert np.linalg.det(nearest_orthogonal(reflect)) == pytest.approx(-1)
    assert np.linalg.det(nearest_orthogonal(reflect, special=True)) == pytest.approx(1)
    with pytest.raises(ValueError, match="special=True needs a square m"):
        nearest_orthogonal(np.ones((3, 2)), special=True)
    assert nearest_orthogonal(np.ones((3, 2))).shape == (3, 2)


def _planted(d: int, k: int, seed: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A rotation fixing exactly a random k-dim subspace F (rows), turning the rest by >= angle."""
    rng = np.random.default_rng(seed)
    basis = haar.sample_haar(d, rng=rng)
    blocks = np.eye(d)
    for i in range(k, d - 1, 2):
        th = angle + rng.uniform(0, 0.5)
        c, s = np.cos(th), np.sin(th)
        blocks[i : i + 2, i : i + 2] = [[c, s], [-s, c]]
    if (d - k) % 2:
        blocks[d - 1, d - 1] = -1.0  # an odd leftover direction flips (angle π)
    return basis.T @ blocks @ basis, basis[:k]


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 9), data=st.data())
def test_fixed_subspace_recovers_a_planted_subspace(d, data):
    k = data.draw(st.integers(0, d))
    R, F = _planted(d, k, data.draw(st.integers(0, 10_000)), angle=0.3)
    got = fixed_subspace(R, tol=0.1)
    assert got.shape == (k, d)
    np.testing.assert_allclose(got @ R, got, atol=1e-9)  # row convention: b @ R = b
    np.testing.assert_allclose(got.T @ got, F.T @ F, atol=1e-8)  # the same span
    if np.linalg.det(R) > 0:  # the count is the Haar test's fixed_dim at the same angle
        assert haar.matrix_features(R, fixed_tol=0.1)["fixed_dim"][0] == k


def test_fixed_subspace_tolerance_is_an_angle():
    th = 0.05
    R = np.eye(4)
    R[:2, :2] = [[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]
    assert fixed_subspace(R, tol=0.06).shape == (4, 4)
    assert fixed_subspace(R, tol=0.04).shape == (2, 4)
    with pytest.raises(ValueError, match="tol must be an angle"):
        fixed_subspace(R, tol=-1)
    with pytest.raises(ValueError, match="not orthogonal"):
        fixed_subspace(np.ones((3, 3)))


@settings(max_examples=50, deadline=None)
@given(steps=st.integers(0, 5000), k=st.integers(0, 12))
def test_checkpoint_steps_reproduces_the_toy_schedule(steps, k):
    """The toy trainer's former rule: 0, k evenly spaced inner steps, the final step."""
    old = sorted(set([0, *[round(steps * (i + 1) / (k + 1)) for i in range(k)], steps]))
    assert checkpoint_steps(steps, k + 1, powers_of_two=False) == old


def test_checkpoint_steps_pythia_like():
    assert checkpoint_steps(16, n_even=4) == [0, 1, 2, 4, 8, 12, 16]
    assert checkpoint_steps(0) == [0]
    with pytest.raises(ValueError, match="n_even"):
        checkpoint_steps(10, n_even=0)
