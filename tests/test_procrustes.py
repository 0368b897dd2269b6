"""Tests for polyrot_utils.core.procrustes: planted rotations, conventions, streaming, baselines, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.core.haar import sample_haar
from polyrot_utils.core.procrustes import (
    AlignmentMap,
    CrossCovariance,
    alignment_report,
    fit_alignment,
    fit_rotation,
)

torch.set_num_threads(1)


def _planted(d: int, n: int, seed: int, offset: float = 3.0):
    g = np.random.default_rng(seed)
    r = sample_haar(d, rng=g)
    x = g.standard_normal((n, d)) * g.uniform(0.5, 2.0, d) + offset * g.standard_normal(d)
    y = x @ r + offset * g.standard_normal(d)
    return x, y, r


@settings(deadline=None, max_examples=25)
@given(d=st.integers(2, 24), extra=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_planted_rotation_recovered(d, extra, seed):
    x, y, r = _planted(d, d + extra, seed)
    r_hat = fit_rotation(x, y)
    assert np.abs(r_hat - r).max() < 1e-6
    assert np.abs(r_hat.T @ r_hat - np.eye(d)).max() < 1e-10
    assert np.linalg.det(r_hat) > 0


@settings(deadline=None, max_examples=25)
@given(d=st.integers(2, 16), seed=st.integers(0, 2**31 - 1))
def test_special_gives_so_d_and_O_can_reflect(d, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((3 * d, d))
    refl = np.eye(d)
    refl[0, 0] = -1.0  # a planted reflection: O(d) \ SO(d)
    y = x @ refl
    r_o = fit_rotation(x, y, special=False)
    r_so = fit_rotation(x, y, special=True)
    assert np.abs(r_o - refl).max() < 1e-8
    assert np.linalg.det(r_so) == pytest.approx(1.0, abs=1e-10)
    assert np.abs(r_so.T @ r_so - np.eye(d)).max() < 1e-10
    # The SO(d) fit is the best rotation: no worse than any random rotation.
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert np.linalg.norm(xc @ r_so - yc) <= np.linalg.norm(xc @ sample_haar(d, rng=g) - yc) + 1e-9


@settings(deadline=None, max_examples=20)
@given(d=st.integers(2, 16), seed=st.integers(0, 2**31 - 1), special=st.booleans())
def test_equivariance(d, seed, special):
    g = np.random.default_rng(seed)
    x = g.standard_normal((2 * d + 3, d))
    y = g.standard_normal((2 * d + 3, d))
    q = sample_haar(d, rng=g)
    r = fit_rotation(x, y, special=special)
    r_q = fit_rotation(x @ q, y, special=special)
    assert np.abs(r_q - q.T @ r).max() < 1e-8


@pytest.mark.parametrize("seed", range(5))
def test_matches_scipy(seed):
    g = np.random.default_rng(seed)
    d = int(g.integers(2, 40))
    x = g.standard_normal((100, d))
    y = g.standard_normal((100, d))
    ref, _ = scipy.linalg.orthogonal_procrustes(x, y)
    mine = fit_rotation(x, y, special=False, center=False)
    assert np.abs(mine - ref).max() < 1e-10


def test_torch_and_numpy_kinds():
    x, y, r = _planted(8, 50, 0)
    out_np = fit_rotation(x.astype(np.float32), y.astype(np.float32))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    out_t = fit_rotation(torch.from_numpy(x), torch.from_numpy(y))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    assert torch.allclose(out_t, torch.from_numpy(r), atol=1e-8)
    m = fit_alignment(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    mapped = m.apply(torch.from_numpy(x).float())
    assert isinstance(mapped, torch.Tensor) and mapped.dtype == torch.float32
    assert torch.allclose(mapped, torch.from_numpy(y).float(), atol=1e-3)


# ------------------------------------------------------------------------------- streaming


@settings(deadline=None, max_examples=20)
@given(d=st.integers(2, 12), n_batches=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), special=st.booleans(),
       center=st.booleans(), precise=st.booleans())
def test_streaming_equals_batch(d, n_batches, seed, special, center, precise):
    g = np.random.default_rng(seed)
    sizes = g.integers(1, 3 * d, size=n_batches)
    sizes[0] += d + 2
    n = int(sizes.sum())
    x = g.standard_normal((n, d)) + 5.0
    y = g.standard_normal((n, d)) @ sample_haar(d, rng=g) - 2.0
    acc = CrossCovariance(precise_centering=precise)
    start = 0
    for s in sizes:
        acc.update(x[start : start + s], y[start : start + s])
        start += s
    ref = fit_rotation(x, y, special=special, center=center)
    assert acc.n == n
    assert np.abs(acc.rotation(special=special, center=center).numpy() - ref).max() < 1e-9
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert np.abs(acc.cross_covariance().numpy() - xc.T @ yc).max() < 1e-9 * n


def test_merge_and_add_equal_single_pass():
    x, y, _ = _planted(10, 300, 1, offset=50.0)
    whole = CrossCovariance().update(x, y)
    a = CrossCovariance().update(x[:70], y[:70])
    b = CrossCovariance().update(x[70:200], y[70:200])
    c = CrossCovariance().update(x[200:], y[200:])
    s = a + b + c
    assert a.n == 70  # + does not mutate
    a.merge(b).merge(c)
    for acc in (s, a):
        assert acc.n == 300
        assert torch.allclose(acc.comoment, whole.comoment, atol=1e-8)
        assert torch.allclose(acc.mean_source, whole.mean_source, atol=1e-12)
    assert (CrossCovariance() + whole).n == 300


def test_float32_streaming_modest_offsets():
    g = np.random.default_rng(3)
    d, n = 16, 4000
    r = sample_haar(d, rng=g)
    x = (g.standard_normal((n, d)) * 2 + 3).astype(np.float32)
    y = ((x.astype(np.float64) - 3) @ r - 4).astype(np.float32)
    for precise in (False, True):
        acc = CrossCovariance(precise_centering=precise)
        for i in range(0, n, 512):
            acc.update(torch.from_numpy(x[i : i + 512]), torch.from_numpy(y[i : i + 512]))
        assert np.abs(acc.rotation().numpy() - r).max() < 1e-4


def test_large_offsets_cost_nothing_in_either_mode():
    """Means 300x the spread: every batch is centred on its own mean before its GEMM (issue 15),
    so float32 streaming stays accurate whatever ``precise_centering`` says."""
    g = np.random.default_rng(3)
    d, n = 16, 4096
    r = sample_haar(d, rng=g)
    x = (g.standard_normal((n, d)) + 300.0).astype(np.float32)
    y = ((x.astype(np.float64) - 300.0) @ r + 300.0).astype(np.float32)
    for precise in (False, True):
        acc = CrossCovariance(precise_centering=precise)
        for i in range(0, n, 512):
            acc.update(torch.from_numpy(x[i : i + 512]), torch.from_numpy(y[i : i + 512]))
        assert np.abs(acc.rotation().numpy() - r).max() < 1e-4


def test_alignment_map_from_accumulator():
    x, y, r = _planted(6, 100, 4)
    m = CrossCovariance().update(x, y).alignment_map()
    assert isinstance(m, AlignmentMap) and m.name == "rotation"
    assert np.abs(m.apply(x) - y).max() < 1e-8


# ------------------------------------------------------------------------------- distributed


def _dist_worker(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        x, y, _ = _planted(7, 400, 11, offset=20.0)
        shard = slice(0, 130) if rank == 0 else slice(130, 400)  # unequal shards
        acc = CrossCovariance()
        xs, ys = x[shard], y[shard]
        for i in range(0, len(xs), 64):
            acc.update(xs[i : i + 64], ys[i : i + 64])
        acc.all_reduce()
        np.savez(
            f"{out}/rank{rank}.npz",
            r=acc.rotation().numpy(),
            r_o=acc.rotation(special=False, center=False).numpy(),
            n=acc.n,
            c=acc.comoment.numpy(),
        )
    finally:
        dist.destroy_process_group()


def test_all_reduce_gloo_two_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_dist_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    x, y, _ = _planted(7, 400, 11, offset=20.0)
    ref = fit_rotation(x, y)
    ref_o = fit_rotation(x, y, special=False, center=False)
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert int(got["n"]) == 400
        assert np.abs(got["r"] - ref).max() < 1e-9
        assert np.abs(got["r_o"] - ref_o).max() < 1e-9
        assert np.abs(got["c"] - (x - x.mean(0)).T @ (y - y.mean(0))).max() < 1e-7


# ------------------------------------------------------------------------------- baselines


def test_signed_permutation_baseline_recovers_planted():
    g = np.random.default_rng(5)
    d = 12
    p = np.zeros((d, d))
    p[np.arange(d), g.permutation(d)] = g.choice([-1.0, 1.0], d)
    x = g.standard_normal((200, d)) * np.linspace(1, 3, d) + 4
    y = x @ p + 0.01 * g.standard_normal((200, d))
    m = fit_alignment(x, y, method="signed_permutation")
    assert np.array_equal(m.matrix, p)
    rep = alignment_report(m, x, y, ceiling=1.0)
    assert rep.ev > 0.999 and rep.gap == pytest.approx(1.0 - rep.ev)


def test_linear_affine_identity_baselines():
    g = np.random.default_rng(6)
    d, n = 8, 300
    w = g.standard_normal((d, d))
    b = g.standard_normal(d) * 5
    x = g.standard_normal((n, d)) + 2
    y = x @ w + b
    aff = fit_alignment(x, y, method="affine")
    assert np.abs(aff.apply(x) - y).max() < 1e-8
    lin = fit_alignment(x, x @ w, method="linear")
    assert np.abs(lin.matrix - w).max() < 1e-8
    ident = fit_alignment(x, y, method="identity")
    assert np.array_equal(ident.apply(x), x)
    # A rotation cannot fit a general linear map perfectly; least squares can.
    xh = g.standard_normal((n, d)) + 2
    yh = xh @ w + b
    evs = {m: alignment_report(fit_alignment(x, y, method=m), xh, yh).ev for m in ("affine", "rotation", "linear")}
    assert evs["affine"] > 1 - 1e-12
    assert evs["rotation"] < 0.99  # w is not orthogonal
    assert evs["linear"] < evs["affine"]  # no intercept


def test_rotation_report_on_heldout():
    x, y, r = _planted(10, 400, 7)
    g = np.random.default_rng(8)
    y = y + 0.1 * g.standard_normal(y.shape)
    m = fit_alignment(x[:200], y[:200], method="rotation")
    rep = alignment_report(m, x[200:], y[200:], ceiling=0.99)
    assert 0.9 < rep.ev < 1.0
    assert rep.method == "rotation" and rep.n == 200
    assert rep.relative_error == pytest.approx(np.sqrt(1 - rep.ev))
    rep_id = alignment_report(fit_alignment(x, y, method="identity"), x[200:], y[200:])
    assert rep_id.ev < rep.ev and rep_id.gap is None


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "src, tgt, kwargs, match",
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), {}, "same shape"),
        (np.zeros((10, 3)), np.zeros((9, 3)), {}, "same shape"),
        (np.zeros(10), np.zeros(10), {}, "source must be 2-D"),
        (np.zeros((10, 3, 1)), np.zeros((10, 3, 1)), {}, "source must be 2-D"),
        (np.ones((1, 3)), np.ones((1, 3)), {"allow_underdetermined": True}, "at least 2"),
        (np.ones((4, 4)), np.ones((4, 4)), {}, "n >= 5"),
        (np.ones((3, 4)), np.ones((3, 4)), {"center": False}, "n >= 4"),
        ([[1.0, 2.0]], [[1.0, 2.0]], {}, "at least 2"),  # lists are accepted (as scipy does), then checked
        ([["a", "b"]] * 3, [["a", "b"]] * 3, {}, "real numeric array_like"),
    ],
)
def test_bad_input_fit_rotation(src, tgt, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_rotation(src, tgt, **kwargs)


def test_nonfinite_names_argument():
    x = np.random.default_rng(0).standard_normal((20, 3))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="target contains NaN"):
        fit_rotation(x, bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="source contains NaN"):
        fit_rotation(bad, x)
    acc = CrossCovariance()
    with pytest.raises(ValueError, match="source_batch contains NaN"):
        acc.update(bad, x)
    with pytest.raises(ValueError, match="target_batch contains NaN"):
        acc.update(x, torch.from_numpy(bad))
    acc.update(x, x)
    with pytest.raises(ValueError, match="d = 4"):
        acc.update(np.zeros((5, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="empty"):
        CrossCovariance().rotation()
    with pytest.raises(ValueError, match="method must be one of"):
        fit_alignment(x, x, method="procrustes")
    with pytest.raises(ValueError, match="map must be an AlignmentMap"):
        alignment_report(np.eye(3), x, x)


def test_underdetermined_allowed_gives_optimal_fit():
    g = np.random.default_rng(1)
    x = g.standard_normal((3, 6))
    y = x @ sample_haar(6, rng=g)
    r = fit_rotation(x, y, allow_underdetermined=True)
    assert np.abs(r.T @ r - np.eye(6)).max() < 1e-10
    assert np.abs((x - x.mean(0)) @ r - (y - y.mean(0))).max() < 1e-8
