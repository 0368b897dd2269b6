"""Tests for polyrot_utils.experiments.analysis: planted answers (B = A @ R exactly), controls, geometry, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.experiments import analysis
from polyrot_utils.core import haar
from polyrot_utils.sae.autoencoder import transfer_sae

D = 8
SITES = ["s0", "s1"]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _anisotropic(n: int, seed: int, d: int = D) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 0.3, d)
    # a sparse-ish signal (few active directions per row) plus a mean offset
    z = torch.randn(n, d, generator=g) * scales * (torch.rand(n, d, generator=g) < 0.4)
    return (z + 2.0).float()


def _planted(n_fit: int = 800, n_eval: int = 400, seed: int = 0):
    R = {s: torch.as_tensor(haar.sample_haar(D, rng=seed + i), dtype=torch.float32) for i, s in enumerate(SITES)}
    A_fit = {s: _anisotropic(n_fit, 10 + i) for i, s in enumerate(SITES)}
    A_eval = {s: _anisotropic(n_eval, 20 + i) for i, s in enumerate(SITES)}
    fit = {"A": A_fit, "B": {s: A_fit[s] @ R[s] for s in SITES}}
    ev = {"A": A_eval, "B": {s: A_eval[s] @ R[s] for s in SITES}}
    return fit, ev, R


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    import os

    old = os.environ.get("POLYROT_CACHE")
    os.environ["POLYROT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        fit, ev, R = _planted()
        saes, rows = analysis.train_saes(fit, d_sae=16, k=3, n_tokens=4000, batch_size=128,
                                         seed=analysis.model_seeds(["A", "B"]))
    finally:
        if old is None:
            os.environ.pop("POLYROT_CACHE", None)
        else:
            os.environ["POLYROT_CACHE"] = old
    return fit, ev, R, saes, rows


def test_train_saes_rows_and_seeds(planted):
    _, _, _, saes, rows = planted
    assert set(saes) == {"A", "B"} and set(saes["A"]) == set(SITES)
    assert {r["seed"] for r in rows if r["model"] == "A"} == {0}
    assert {r["seed"] for r in rows if r["model"] == "B"} == {1}
    assert all(r["train_ev"] > 0.5 for r in rows)


def test_train_saes_seed_mapping_must_cover_models():
    fit, _, _ = _planted(200, 50)
    with pytest.raises(KeyError, match="seed has no entry"):
        analysis.train_saes(fit, d_sae=8, k=2, n_tokens=200, seed={"A": 0})


def test_alignment_table_planted_rotation(planted):
    fit, ev, R, saes, _ = planted
    rows = analysis.alignment_table(fit, ev, saes, [("A", "B")], SITES)
    by = {(r["site"], r["method"]): r for r in rows}
    for s in SITES:
        rot = by[(s, "rotation")]
        # the moved SAE is exactly A's SAE in B's frame: same EV as A's SAE on A's rows
        assert rot["map_ev"] > 1 - 1e-6
        assert rot["sae_ev"] == pytest.approx(analysis._sae_ev(saes["A"][s], ev["A"][s]), abs=1e-4)
        assert abs(rot["gap"]) < 0.05  # two SAEs of different seeds on isometric data
        assert by[(s, "rotation_O")]["map_ev"] > 1 - 1e-6
        assert by[(s, "identity")]["sae_ev"] < 0  # unaligned: worse than the mean
        assert by[(s, "identity")]["map_ev"] < 0
        assert by[(s, "affine")]["map_ev"] > 1 - 1e-6


def test_sae_through_map_equals_transfer_for_rotation(planted):
    fit, ev, _, saes, _ = planted
    maps = analysis.fit_maps(fit, [("A", "B")], SITES, methods=("rotation",))
    for s in SITES:
        fwd, back = maps[("A", "B", s, "rotation")], maps[("B", "A", s, "rotation")]
        via_maps = analysis.sae_through_map(saes["A"][s], back, fwd, ev["B"][s])
        moved = transfer_sae(saes["A"][s], fwd.matrix, source_mean=fwd.source_mean, target_mean=fwd.target_mean)
        assert via_maps == pytest.approx(analysis._sae_ev(moved, ev["B"][s]), abs=1e-4)


def test_universality_table_rotation_restores_dictionary(planted):
    fit, ev, R, saes, _ = planted
    # B's "SAE" = A's SAE moved exactly: rotating A's decoder must match it perfectly
    moved = {"A": saes["A"], "B": {s: transfer_sae(saes["A"][s], R[s]) for s in SITES}}
    rots = {("A", "B", s): R[s].numpy() for s in SITES}
    rows = analysis.universality_table(moved, ev, [("A", "B")], SITES, rotations=rots, live_only=True)
    for r in rows:
        assert r["matched_cosine_rotated"] == pytest.approx(1.0, abs=1e-5)
        assert r["matched_cosine"] < 0.99
        assert 0 < r["live_source"] <= 1
        assert r["ev_unaligned"] < r["ev_within"]


def test_cycle_consistency_planted_and_broken():
    g = torch.Generator().manual_seed(3)
    A = _anisotropic(2000, 1)
    R1 = torch.as_tensor(haar.sample_haar(D, rng=1), dtype=torch.float32)
    R2 = torch.as_tensor(haar.sample_haar(D, rng=2), dtype=torch.float32)
    B = A @ R1 + 0.01 * torch.randn(A.shape, generator=g)
    C = B @ R2 + 0.01 * torch.randn(A.shape, generator=g)
    acts = {"A": {"s": A}, "B": {"s": B}, "C": {"s": C}}
    (row,) = analysis.cycle_consistency(acts, ("A", "B", "C"), ["s"])
    assert row["cycle_error"] < 0.05 and row["ratio"] < 5
    acts["C"] = {"s": _anisotropic(2000, 99)}  # unrelated third model
    (bad,) = analysis.cycle_consistency(acts, ("A", "B", "C"), ["s"])
    assert bad["cycle_error"] > 10 * row["cycle_error"]


def test_fit_size_curve_improves(planted):
    fit, ev, _, saes, _ = planted
    rows = analysis.fit_size_curve(fit, ev, saes, ("A", "B"), "s0", [4, 16, 200])
    assert [r["n_fit"] for r in rows] == [4, 16, 200]
    assert rows[-1]["map_ev"] > 1 - 1e-6 and rows[-1]["map_ev"] >= rows[0]["map_ev"]
    with pytest.raises(ValueError, match="sizes asks"):
        analysis.fit_size_curve(fit, ev, saes, ("A", "B"), "s0", [10_000])


def test_bad_input_errors(planted):
    fit, ev, _, saes, _ = planted
    short = {"A": {s: x[:10] for s, x in fit["A"].items()}, "B": fit["B"]}
    with pytest.raises(ValueError, match="different numbers of rows"):
        analysis.fit_maps(short, [("A", "B")], SITES)
    with pytest.raises(KeyError, match="no site"):
        analysis.fit_maps(fit, [("A", "B")], ["nope"])
    with pytest.raises(KeyError, match="no model"):
        analysis.alignment_table(fit, ev, saes, [("A", "Z")], SITES)
    with pytest.raises(ValueError, match="unknown"):
        analysis.fit_maps(fit, [("A", "B")], SITES, methods=("magic",))
    with pytest.raises(ValueError, match="anchor"):
        analysis.all_pairs(["A", "B"], anchor="C")
    with pytest.raises(ValueError, match="fraction"):
        analysis.split_rows(fit, 1.5)
    with pytest.raises(ValueError, match="rcond"):
        analysis.fit_map(fit["A"]["s0"], fit["B"]["s0"], "affine", rcond=2.0)


def test_all_pairs_and_split_rows(planted):
    fit, *_ = planted
    assert analysis.all_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert analysis.all_pairs(["a", "b", "c"], anchor="b") == [("b", "a"), ("b", "c")]
    first, second = analysis.split_rows(fit, 0.25)
    assert first["A"]["s0"].shape[0] == 200 and second["B"]["s1"].shape[0] == 600


def test_rotations_from_maps_pairs_filter(planted):
    fit, *_ = planted
    maps = analysis.fit_maps(fit, [("A", "B")], SITES, methods=("rotation",))
    assert len(analysis.rotations_from_maps(maps)) == 4
    kept = analysis.rotations_from_maps(maps, pairs=[("A", "B")])
    assert set(kept) == {("A", "B", s) for s in SITES}


def test_fit_map_rank_deficient_does_not_blow_up():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(D, 3, generator=g))[0]

    def data(n, seed):
        gg = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 3, generator=gg) @ basis.T
        return (z + 1e-7 * torch.randn(n, D, generator=gg)).double()

    xs, xe = data(200, 1), data(200, 2)
    W = torch.randn(D, D, generator=g).double()
    ys, ye = xs @ W, xe @ W
    m = analysis.fit_map(xs, ys, "affine")
    assert m.info["rank"] == 3
    from polyrot_utils.core.metrics import explained_variance

    assert explained_variance(ye, m.apply(xe)) > 0.999
    lin = analysis.fit_map(xs, ys, "linear")
    assert explained_variance(ye, lin.apply(xe)) > 0.999


@settings(deadline=None, max_examples=10)
@given(scale=st.floats(0.2, 5.0), seed=st.integers(0, 1000))
def test_rotation_scaled_recovers_similarity(scale, seed):
    A = _anisotropic(300, seed)
    R = torch.as_tensor(haar.sample_haar(D, rng=seed), dtype=torch.float32)
    m = analysis.fit_map(A, scale * (A @ R) + 1.0, "rotation_scaled")
    assert m.info["scale"] == pytest.approx(scale, rel=1e-4)
    assert np.allclose(m.matrix, scale * R.double().numpy(), atol=1e-4)


def test_with_unpaired_breaks_pairing_only(planted):
    fit, ev, _, saes, _ = planted
    f2, e2, s2, name = analysis.with_unpaired(fit, ev, saes, "A", seed=1)
    assert name == "A (unpaired)" and name not in fit
    assert not torch.equal(f2[name]["s0"], fit["A"]["s0"])
    assert torch.equal(f2[name]["s0"].sort(0).values, fit["A"]["s0"].sort(0).values)
    assert e2[name]["s0"] is ev["A"]["s0"] and s2[name]["s0"] is saes["A"]["s0"]
    rows = {r["method"]: r for r in analysis.alignment_table(f2, e2, s2, [(name, "B")], ["s0"], methods=("rotation",))}
    assert rows["rotation"]["map_ev"] < 0.5  # without the pairing the rotation is not found
    with pytest.raises(ValueError, match="exists already"):
        analysis.with_unpaired(f2, e2, s2, "A", seed=1)


def test_site_geometry_rank():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g) @ torch.randn(3, D, generator=g)
    (row,) = analysis.site_geometry({"m": {"s": x}}, ["s"])
    assert row["rank"] == 3 and 1 <= row["participation_ratio"] <= 3


def test_signed_permutation_distance_and_null():
    P = haar.random_signed_permutation(16, 0)
    assert analysis.signed_permutation_distance(P) == pytest.approx(0.0, abs=1e-7)
    null = analysis.signed_permutation_distance_null(16, 50, seed=0)
    assert null.shape == (50,) and 0.5 < null.mean() < 1.0
    with pytest.raises(ValueError, match="orthogonal"):
        analysis.signed_permutation_distance(np.ones((4, 4)))


def test_fixed_subspace_and_principal_angles():
    R = haar.block_identity_rotation(12, 8, 0, basis="random")  # Haar on 8 dims, identity on 4
    F = analysis.fixed_subspace(R, tol=1e-6)
    assert F.shape == (12, 4)
    assert np.allclose(F.T @ R, F.T, atol=1e-8)  # row vectors in the span are fixed: x R = x
    ang = analysis.principal_angles(F, F[:, :2])
    assert np.allclose(ang, 0, atol=1e-7)
    e = np.eye(4)
    assert np.allclose(analysis.principal_angles(e[:, :1], e[:, 1:2]), [np.pi / 2])
    with pytest.raises(ValueError, match="tol"):
        analysis.fixed_subspace(R, tol=-1)


def test_fixed_subspace_table_overlap():
    R = haar.block_identity_rotation(12, 6, 1, basis="coordinate")
    F = analysis.fixed_subspace(R, tol=1e-6)
    inside = F[:, :3]
    rows = analysis.fixed_subspace_table({("a", "b", "s"): R}, {"in": inside}, tol=1e-3, n_null=50)
    assert rows[0]["fixed_dim"] == 6 and rows[0]["overlap_in"] == pytest.approx(1.0)
    assert rows[0]["haar_fixed_dim"] < 1.5
    assert analysis.span_basis(np.c_[np.eye(12)[:, :2], np.eye(12)[:, :2]]).shape == (12, 2)


def test_haar_table_rejects_permutation_not_haar():
    rots = {("a", "b", "perm"): haar.random_signed_permutation(16, 3), ("a", "b", "haar"): haar.sample_haar(16, rng=5)}
    rows = {r["site"]: r for r in analysis.haar_table(rots, n_null=60, perm_null=60)}
    assert rows["perm"]["pvalue"] <= 0.05 and rows["perm"]["signed_perm_pvalue"] <= 0.05
    assert rows["haar"]["signed_perm_pvalue"] > 0.05
    assert rows["perm"]["frobenius_ratio"] == pytest.approx(1.0, abs=0.2)


def test_random_dictionary_cosine_floor():
    r = analysis.random_dictionary_cosine(64, 64, 16)
    assert 0 < r["matched_cosine"] <= r["mean_max_cosine"] < 1
    with pytest.raises(ValueError):
        analysis.random_dictionary_cosine(0, 4, 4)


def test_distance_summary_identity():
    s = analysis.distance_summary(np.eye(6))
    assert s["frobenius_ratio"] == 0 and s["trace_over_d"] == 1 and s["det"] == pytest.approx(1)


# ----------------------------------------------------------------------------- the paper's statistics
def test_paper_transfer_table_planted_rotation(planted):
    """B = A R exactly: the paper's in-sample O(d) R (B → A) is Rᵀ, its map EV 1, its SAE gap 0;
    the identity map does worse; the SAE EVs use the scalar variance."""
    _, ev, R, saes, _ = planted
    rows = analysis.paper_transfer_table(ev, [("A", "B")], SITES, saes=saes)
    for r in rows:
        np.testing.assert_allclose(r["R"], R[r["site"]].double().numpy().T, atol=1e-5)
        assert r["rot_map_ev"] == pytest.approx(1.0, abs=1e-6)
        assert r["raw_map_ev"] < 0.9
        assert abs(r["sae_gap"]) < 1e-4 and r["sae_ev_raw"] < r["sae_ev_rot"]
        assert r["frob"] == pytest.approx(np.linalg.norm(R[r["site"]].numpy().T - np.eye(D)), rel=1e-5)
    assert analysis.without_matrices(rows)[0].keys() == {k for k in rows[0] if k != "R"}


def test_paper_rotation_has_no_determinant_fix():
    g = np.random.default_rng(3)
    Q = haar.sample_haar(D, rng=g, special=False)
    while np.linalg.det(Q) > 0:
        Q = haar.sample_haar(D, rng=g, special=False)
    x = torch.as_tensor(g.standard_normal((200, D)))
    R = analysis.paper_rotation(x @ torch.as_tensor(Q), x)
    assert np.linalg.det(R) == pytest.approx(-1.0) and np.allclose(R, Q.T, atol=1e-8)


def test_paper_decoder_cosine_is_many_to_one_and_signed():
    D1 = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    D2 = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    saes = {"a": {"s": type("S", (), {"W_dec": D1})()}, "b": {"s": type("S", (), {"W_dec": D2})()}}
    (row,) = analysis.paper_decoder_cosine_table(saes, [("a", "b")], ["s"])
    assert row["fraction"] == pytest.approx(2 / 3)  # two latents share b's first; the third is anti-aligned


def test_explained_variance_scalar_counts_offsets():
    from polyrot_utils.core import metrics

    x = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    x_hat = x.clone(); x_hat[:, 0] += 1.0
    per_dim = metrics.explained_variance(x, x_hat)
    scalar = metrics.explained_variance_scalar(x, x_hat)
    assert per_dim == pytest.approx(1 - 3 / 4)
    assert scalar == pytest.approx(1 - 0.5 / float(x.var()))
    assert scalar > per_dim


def test_paper_site_lists():
    toy = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post", "blocks.1.hook_resid_pre",
           "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post", "unembed.hook_in"]
    assert analysis.paper_toy_sites(toy) == [toy[0], toy[1], toy[2], toy[4], toy[5]]
    assert analysis.paper_internal_sites(toy) == [toy[1], toy[2], toy[4], toy[5]]
    assert analysis.last_block_resid_post(toy) == "blocks.1.hook_resid_post"
    py = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(6)] + ["unembed.hook_in"]
    assert analysis.paper_pythia_sites(py) == py[:6] + ["unembed.hook_in"]  # blocks.5 resid_post is not a paper site
    assert analysis.site_means([{"site": "a", "x": 1.0}, {"site": "a", "x": 3.0}, {"site": "b", "x": 5.0}], "x") == {"a": 2.0, "b": 5.0}
    with pytest.raises(ValueError, match="no rows"):
        analysis.site_means([{"site": "a", "x": 1.0}], "x", ["z"])
