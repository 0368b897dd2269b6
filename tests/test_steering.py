"""Tests for polyrot_utils.experiments.steering: diff-of-means, hooks on tiny HookedTransformers, exact
transfer through a rotated copy of a model, fixed subspaces, regime thresholds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.experiments import steering as St

torch.set_num_threads(1)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from transformer_lens import HookedTransformer, HookedTransformerConfig

D_MODEL, VOCAB, CTX = 16, 10, 8


def haar(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def tiny_model(seed: int = 0, attn_only: bool = False) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=D_MODEL,
        n_ctx=CTX,
        d_head=4,
        n_heads=4,
        d_mlp=32,
        d_vocab=VOCAB,
        act_fn="relu",
        normalization_type=None,
        attn_only=attn_only,
        seed=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # non-zero biases so the test sees them
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    model.eval()
    return model


def rotated_copy(model: HookedTransformer, R: torch.Tensor) -> HookedTransformer:
    """The same function in the residual basis x ↦ x R: every weight writing to the residual
    stream is right-multiplied by R, every weight reading from it left-multiplied by Rᵀ
    (no normalisation layers, so this is an exact symmetry)."""
    R = R.float()
    new = tiny_model(0, attn_only=model.cfg.attn_only)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for k in ("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.b_O", "blocks.0.mlp.b_out"):
        if k in sd:
            sd[k] = sd[k] @ R
    for k in ("blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V"):
        sd[k] = torch.einsum("ji,hjk->hik", R, sd[k])  # Rᵀ W per head
    sd["blocks.0.attn.W_O"] = sd["blocks.0.attn.W_O"] @ R
    if "blocks.0.mlp.W_in" in sd:
        sd["blocks.0.mlp.W_in"] = R.T @ sd["blocks.0.mlp.W_in"]
        sd["blocks.0.mlp.W_out"] = sd["blocks.0.mlp.W_out"] @ R
    sd["unembed.W_U"] = R.T @ sd["unembed.W_U"]
    new.load_state_dict(sd)
    new.eval()
    return new


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, VOCAB, (6, CTX), generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------


def test_diff_of_means_planted():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 8, generator=g)
    labels = torch.rand(4000, generator=g) < 0.3
    planted = torch.tensor([3.0, -1.0, 0, 0, 0, 0, 0, 2.0])
    x[labels] += planted
    v = St.diff_of_means(x, labels)
    expected = x[labels].double().mean(0) - x[~labels].double().mean(0)
    torch.testing.assert_close(v, expected.float())
    assert torch.allclose(v, planted, atol=0.15)
    # explicit B mask, (batch, pos, d) input and numpy input
    x3 = x.reshape(40, 100, 8)
    v3 = St.diff_of_means(x3.numpy(), labels.reshape(40, 100).numpy(), (~labels).reshape(40, 100))
    torch.testing.assert_close(v3, v)


def test_diff_of_means_errors():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="mask_a selects no rows"):
        St.diff_of_means(x, torch.zeros(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="one entry per activation row"):
        St.diff_of_means(x, torch.ones(9, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        St.diff_of_means(x, torch.ones(10))


def test_steering_changes_logits_by_exact_linear_amount(tokens):
    """At the last residual site with no final norm, logits move by exactly alpha v W_U."""
    model = tiny_model(0, attn_only=True)
    v = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(1))
    alpha = 2.5
    clean = St.run_with_steering(model, tokens, "blocks.0.hook_resid_post", None, 0.0)
    steered = St.run_with_steering(model, tokens, "blocks.0.hook_resid_post", v, alpha)
    torch.testing.assert_close(
        steered - clean, (alpha * v @ model.W_U).expand_as(clean), atol=1e-5, rtol=1e-5
    )
    # only at position 3
    pos3 = St.run_with_steering(model, tokens, "blocks.0.hook_resid_post", v, alpha, positions=3)
    delta = pos3 - clean
    torch.testing.assert_close(
        delta[:, 3], (alpha * v @ model.W_U).expand(tokens.shape[0], VOCAB), atol=1e-5, rtol=1e-5
    )
    assert delta[:, [0, 1, 2, 4, 5, 6, 7]].abs().max() < 1e-6
    # a behaviour measured on it
    beh = St.logit_diff_behaviour(target=2, baseline=5)
    eff = St.steering_effect(model, tokens, "blocks.0.hook_resid_post", v, alpha, beh)
    assert eff == pytest.approx(
        float(alpha * v @ (model.W_U[:, 2] - model.W_U[:, 5]).detach()), abs=1e-4
    )


def test_bad_site_and_dimension(tokens):
    model = tiny_model(0, attn_only=True)
    with pytest.raises(KeyError, match="hook_resid_nope"):
        St.run_with_steering(model, tokens, "blocks.0.hook_resid_nope", torch.zeros(D_MODEL), 1.0)
    with pytest.raises(ValueError, match="dimension 5"):
        St.run_with_steering(model, tokens, "blocks.0.hook_resid_pre", torch.zeros(5), 1.0)


@pytest.mark.parametrize(
    "site", ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"]
)
def test_transferred_vector_on_rotated_copy_has_identical_effect(tokens, site):
    src = tiny_model(0)
    R = haar(D_MODEL, 3)
    tgt = rotated_copy(src, R)
    torch.testing.assert_close(tgt(tokens), src(tokens), atol=1e-4, rtol=1e-4)  # same function
    v = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(2))
    alpha = 3.0
    steered_src = St.run_with_steering(src, tokens, site, v, alpha)
    steered_tgt = St.run_with_steering(tgt, tokens, site, St.transfer_vector(v, R), alpha)
    torch.testing.assert_close(steered_tgt, steered_src, atol=1e-4, rtol=1e-4)
    beh = St.class_prob_behaviour(target=4, readout=slice(0, 6))
    eff = St.transfer_effects(
        tgt,
        tokens,
        site,
        v_source=v,
        v_native=St.transfer_vector(v, R),
        R=R,
        alpha=alpha,
        behaviour=beh,
    )
    assert eff.transferred == pytest.approx(eff.native, abs=1e-6)
    assert eff.regime_transferred == "clean"
    assert eff.native == pytest.approx(
        St.steering_effect(src, tokens, site, v, alpha, beh), abs=1e-5
    )


def test_fixed_subspace_predicts_unaligned_transfer(tokens):
    """R = identity on the first 6 coordinates, Haar on the other 10: a vector in the fixed block
    transfers unchanged (clean), one in the rotated block does not."""
    R = torch.eye(D_MODEL, dtype=torch.float64)
    R[6:, 6:] = haar(10, 4)
    basis = St.fixed_subspace(R)
    assert basis.shape == (6, D_MODEL)
    torch.testing.assert_close(
        basis.double() @ basis.double().T, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert float(basis[:, 6:].abs().max()) < 1e-5  # spans the identity block
    src = tiny_model(0, attn_only=True)
    tgt = rotated_copy(src, R)
    site = "blocks.0.hook_resid_post"
    v_in = torch.zeros(D_MODEL)
    v_in[:6] = torch.randn(6, generator=torch.Generator().manual_seed(5))
    v_out = torch.zeros(D_MODEL)
    v_out[6:] = torch.randn(10, generator=torch.Generator().manual_seed(6))
    assert St.fixed_subspace_overlap(v_in, basis) == pytest.approx(1.0, abs=1e-6)
    assert St.fixed_subspace_overlap(v_out, basis) == pytest.approx(0.0, abs=1e-6)
    assert St.rotation_cosine(v_in, R) == pytest.approx(1.0)
    beh = St.logit_diff_behaviour(target=1)
    e_in = St.transfer_effects(tgt, tokens, site, v_in, St.transfer_vector(v_in, R), R, 2.0, beh)
    assert e_in.regime_unaligned == "clean" and e_in.ratio_unaligned == pytest.approx(1.0, abs=1e-4)
    e_out = St.transfer_effects(tgt, tokens, site, v_out, St.transfer_vector(v_out, R), R, 2.0, beh)
    assert e_out.regime_transferred == "clean"
    assert e_out.ratio_unaligned == pytest.approx(
        float(v_out @ (tgt.W_U[:, 1] - tgt.W_U[:, [0, 2, 3, 4, 5, 6, 7, 8, 9]].mean(1)).detach())
        / float(
            (v_out @ R.float()) @ (tgt.W_U[:, 1] - tgt.W_U[:, [0, 2, 3, 4, 5, 6, 7, 8, 9]].mean(1)).detach()
        ),
        abs=1e-3,
    )


def test_fixed_subspace_cases():
    assert St.fixed_subspace(torch.eye(5)).shape == (5, 5)
    assert St.fixed_subspace(haar(8, 0)).shape[0] == 0  # generic even-d rotation fixes nothing
    assert St.fixed_subspace(haar(9, 0)).shape[0] == 1  # odd d: a forced +1 eigenvalue
    P = torch.eye(6)[[1, 0, 2, 3, 5, 4]]  # swaps (0,1) and (4,5): fixed = e0+e1, e2, e3, e4+e5
    assert St.fixed_subspace(P).shape[0] == 4
    assert St.fixed_subspace_overlap(torch.ones(3), torch.zeros(0, 3)) == 0.0
    with pytest.raises(ValueError, match="square"):
        St.fixed_subspace(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(k, 4\)"):
        St.fixed_subspace_overlap(torch.ones(4), torch.zeros(2, 3))


@settings(deadline=None, max_examples=30)
@given(k=st.integers(0, 7), seed=st.integers(0, 10**6))
def test_fixed_subspace_dimension_property(k, seed):
    """Block rotation diag(I_k, Q) with Q a generic rotation of even size: fixed dim == k."""
    d = k + 2 * (1 + seed % 4)
    R = torch.eye(d, dtype=torch.float64)
    R[k:, k:] = haar(d - k, seed)
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    Rp = R[perm][:, perm]  # conjugate by a permutation: still a rotation with a k-dim fixed space
    assert St.fixed_subspace(Rp, tol=1e-6).shape == (k, d)


@settings(deadline=None, max_examples=50)
@given(native=st.floats(0.01, 100) | st.floats(-100, -0.01), r=st.floats(-3, 3))
def test_classify_transfer_thresholds(native, r):
    got = St.classify_transfer(native, r * native)
    r_eff = (r * native) / native
    expected = (
        "clean"
        if r_eff >= 0.7
        else "partial"
        if r_eff >= 0.2
        else "none"
        if r_eff > -0.2
        else "inverted"
    )
    assert got == expected


def test_classify_transfer_edges_and_config():
    assert St.classify_transfer(1.0, 0.7) == "clean"
    assert St.classify_transfer(1.0, 0.69) == "partial"
    assert St.classify_transfer(1.0, 0.2) == "partial"
    assert St.classify_transfer(1.0, 0.1) == "none"
    assert St.classify_transfer(1.0, -0.1) == "none"
    assert St.classify_transfer(1.0, -0.2) == "inverted"
    assert St.classify_transfer(-2.0, 2.0) == "inverted"
    assert St.classify_transfer(1.0, 0.6, clean_ratio=0.5) == "clean"
    assert St.classify_transfer(1.0, 0.05, none_ratio=0.01) == "partial"
    with pytest.raises(ValueError, match="nothing to transfer"):
        St.classify_transfer(0.0, 1.0)
    with pytest.raises(ValueError, match="none_ratio"):
        St.classify_transfer(1.0, 1.0, clean_ratio=0.1, none_ratio=0.2)


def test_transfer_vector_shapes():
    R = haar(5, 1)
    v = torch.randn(5)
    torch.testing.assert_close(St.transfer_vector(v, R), (v.double() @ R).float())
    assert St.transfer_vector(torch.randn(3, 5), R).shape == (3, 5)
    assert isinstance(St.transfer_vector(np.ones(5), R.numpy()), torch.Tensor)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        St.transfer_vector(torch.randn(4), R)


def test_paper_kl_transfer_ratio(tokens):
    """The paper's KL effect: 0 with no push, > 0 with one; on an exact copy the cross-seed effect
    equals the within-seed one (ratio 1); the vector applied unchanged to a rotated copy differs."""
    src = tiny_model(0)
    site = "blocks.0.hook_resid_post"
    v = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(5))
    assert St.kl_steering_effect(src, tokens, site, v, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert St.kl_steering_effect(src, tokens, site, v, 2.0) > 0
    copy = tiny_model(0)
    rows = St.paper_transfer_ratios({"a": src, "b": copy}, "a", tokens, site, {"v": v}, [1.0, 2.0])
    assert [r["alpha"] for r in rows] == [1.0, 2.0]
    assert all(r["ratio"] == pytest.approx(1.0, rel=1e-6) for r in rows)
    rot = rotated_copy(src, haar(D_MODEL, 3))
    (r,) = St.paper_transfer_ratios({"a": src, "b": rot}, "a", tokens, site, {"v": v}, [2.0])
    assert r["ratio"] != pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="anchor"):
        St.paper_transfer_ratios({"a": src}, "z", tokens, site, {"v": v}, [1.0])


# ---------------------------------------------------------------------- the one transfer experiment

from polyrot_utils.book.results import ChapterResults  # noqa: E402
from polyrot_utils.book.runner import parameter_specs  # noqa: E402
from polyrot_utils.models.activations import PairedActs, collect_activations  # noqa: E402

SITE = "blocks.0.hook_resid_post"


def _paired(models: dict, seed: int = 0) -> tuple[PairedActs, torch.Tensor]:
    """PairedActs of ``models`` on random tokens (fit) and the eval tokens."""
    g = torch.Generator().manual_seed(seed)
    fit_t, eval_t = (
        torch.randint(0, VOCAB, (64, CTX), generator=g),
        torch.randint(0, VOCAB, (16, CTX), generator=g),
    )
    fit = {m: collect_activations(x, fit_t, [SITE]) for m, x in models.items()}
    ev = {m: collect_activations(x, eval_t, [SITE]) for m, x in models.items()}
    acts = PairedActs(fit, ev, [SITE], dict(models), list(models), info={"fit_tokens": fit_t})
    return acts, eval_t


def _setup(acts: PairedActs, eval_t: torch.Tensor, w: torch.Tensor) -> St.SteeringSetup:
    """Contrast: current token 1 vs 2; behaviour: logits · w (w = v_a W_U makes the native effect
    of a's vector, and of any exact rotation of it, positive)."""
    t = acts.info["fit_tokens"].reshape(-1)
    return St.SteeringSetup(
        eval_t, [St.Contrast("one_vs_two", t == 1, t == 2, lambda z: z.float() @ w)]
    )


def _planted():
    a = tiny_model(0, attn_only=True)
    R = haar(D_MODEL, 7)
    acts, eval_t = _paired({"a": a, "b": rotated_copy(a, R), "c": tiny_model(5, attn_only=True)})
    t = acts.info["fit_tokens"].reshape(-1)
    v_a = St.diff_of_means(acts.fit["a"][SITE], t == 1, t == 2)
    w = (v_a @ a.W_U).detach()
    return acts, eval_t, w, R


def test_transfer_planted_rotation_is_clean_unrelated_is_not():
    acts, eval_t, w, R = _planted()
    pair = PairedActs(acts.fit, acts.eval, acts.sites, acts.models, ["a", "b"], info=acts.info)
    res = St.steering_transfer(
        pair, _setup(pair, eval_t, w), alphas=[1.0, 2.0], min_native=0.0, cohort="x"
    )
    assert len(res.rows) == 2 * 2  # ordered pairs x alphas
    assert (res.rows["native"] > 0).all()
    np.testing.assert_allclose(res.rows["ratio_transferred"], 1.0, atol=2e-3)
    assert (res.rows["regime_transferred"] == "clean").all()
    np.testing.assert_allclose(res.rows["norm_ratio"], 1.0, atol=1e-4)
    assert res.interval("transferred").point == pytest.approx(1.0, abs=2e-3)
    # the same vector in the wrong basis: its effect is the cosine-like projection, not the native one
    assert (abs(res.rows["ratio_unaligned"] - 1.0) > 0.05).all()
    unrelated = PairedActs(acts.fit, acts.eval, acts.sites, acts.models, ["a", "c"], info=acts.info)
    res_u = St.steering_transfer(
        unrelated, _setup(unrelated, eval_t, w), alphas=[1.0], min_native=0.0
    )
    row = res_u.rows[res_u.rows.source == "a"].iloc[0]
    assert (
        abs(row["ratio_transferred"] - 1.0) > 0.05
    )  # no rotation relates a and c: v R is not c's vector
    assert res_u.rows["fixed_dim"].max() == 0


def test_transfer_is_deterministic_and_random_control_is_seeded():
    acts, eval_t, w, _ = _planted()
    pair = PairedActs(acts.fit, acts.eval, acts.sites, acts.models, ["a", "b"], info=acts.info)
    r1 = St.steering_transfer(pair, _setup(pair, eval_t, w), seed=3).rows
    r2 = St.steering_transfer(pair, _setup(pair, eval_t, w), seed=3).rows
    r3 = St.steering_transfer(pair, _setup(pair, eval_t, w), seed=4).rows
    pd_testing = pytest.importorskip("pandas").testing
    pd_testing.assert_frame_equal(r1, r2)
    assert not np.allclose(r1["random"], r3["random"])


def test_transfer_input_errors_are_named():
    acts, eval_t, w, _ = _planted()
    setup = _setup(acts, eval_t, w)
    with pytest.raises(ValueError, match="sites"):
        St.steering_transfer(acts, setup, sites=["blocks.9.hook_resid_post"])
    with pytest.raises(ValueError, match="alphas"):
        St.steering_transfer(acts, setup, alphas=[])
    with pytest.raises(ValueError, match="fixed_tol"):
        St.steering_transfer(acts, setup, fixed_tol=4.0)
    with pytest.raises(ValueError, match="min_native"):
        St.steering_transfer(acts, setup, min_native=float("nan"))
    one = PairedActs(acts.fit, acts.eval, acts.sites, acts.models, ["a"])
    with pytest.raises(ValueError, match="two members"):
        St.steering_transfer(one, setup)
    bad = St.SteeringSetup(
        eval_t,
        [
            St.Contrast(
                "x",
                torch.ones(3, dtype=torch.bool),
                torch.ones(3, dtype=torch.bool),
                lambda z: z.sum(),
            )
        ],
    )
    with pytest.raises(ValueError, match="fit_a / fit_b"):
        St.steering_transfer(acts, bad)
    with pytest.raises(ValueError, match="no usable contrast"):
        St.steering_transfer(acts, St.SteeringSetup(eval_t, [], {"x": "too few"}))


def test_record_claims_names_and_regimes(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_RESULTS_WRITE_DIR", str(tmp_path))
    acts, eval_t, w, _ = _planted()
    res = St.steering_transfer(
        acts, _setup(acts, eval_t, w), alphas=[1.0], min_native=0.0, cohort="independent"
    )
    res_s = St.SteeringResult(res.rows, "shared_io", res.members, res.min_native, res.fixed_tol)
    paper = St.PaperInversion(2.0, None, [], True, "independent", "all inverted", "§8.7", "planted")
    results = ChapterResults("99_test_steering")
    St.record_steering_claims(results, [res_s, res], paper)
    claims = results.data["claims"]
    assert set(claims) == {
        "paper_inversion",
        "shared_io_three_regimes",
        "independent_unaligned_inverted_fraction",
        "shared_io_transferred_ratio",
        "independent_transferred_ratio",
        "shared_io_overlap_predicts_regime",
        "independent_overlap_predicts_regime",
    }
    assert claims["paper_inversion"]["passed"] and claims["paper_inversion"]["kind"] == "paper"
    assert claims["independent_unaligned_inverted_fraction"]["check_of"] == "paper_inversion"
    inv = float((res.read["regime_unaligned"] == "inverted").mean())
    assert claims["independent_unaligned_inverted_fraction"]["value"] == pytest.approx(inv)
    assert claims["independent_transferred_ratio"]["interval"]["n"] == 3
    table = St.claims_frame(results)
    assert "[" in table.loc["independent_transferred_ratio", "value [lo, hi]"]


def test_chapter_outputs_names_tables_and_figure_panels():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from polyrot_utils.book.figures import column_figure, legibility_problems

    acts, eval_t, w, _ = _planted()
    setup = _setup(acts, eval_t, w)
    res = St.steering_transfer(acts, setup, alphas=[1.0], min_native=0.0, cohort="independent")
    res_s = St.SteeringResult(res.rows, "shared_io", res.members, res.min_native, res.fixed_tol)
    for measured, panels, width in (([res], 1, 0.7), ([res_s, res], 2, 1.0)):
        out = St.chapter_outputs(measured, setup, column_figure)
        assert set(out) == {"contrast_table", "summary_table", "ratio_figure", "predictor_figure"}
        assert out["contrast_table"].equals(setup.table())
        assert out["summary_table"].equals(St.summary_table(measured))
        ratio, pred = out["ratio_figure"], out["predictor_figure"]
        assert isinstance(ratio, Figure) and isinstance(pred, Figure)
        assert len(ratio.axes) == panels and len(pred.axes) == 2
        full = column_figure()[0]
        assert ratio.get_figwidth() == pytest.approx(width * full.get_figwidth())
        assert [ax.get_title() for ax in ratio.axes] == [
            f"{St._label(r.cohort)}, {len(r.read)} transfers" for r in measured
        ]
        assert legibility_problems(ratio) == [] and legibility_problems(pred) == []
        plt.close("all")
    with pytest.raises(ValueError, match="measured"):
        St.chapter_outputs([], setup, column_figure)


def test_regimes_follow_the_glossary():
    assert St._regime(1.0, 0.7, 0.02) == "clean" and St._regime(1.0, 0.3, 0.02) == "partial"
    assert St._regime(1.0, 0.1, 0.02) == "none" and St._regime(1.0, -0.2, 0.02) == "inverted"
    assert St._regime(0.01, 5.0, 0.02) == "n/a" and St._regime(-1.0, -1.0, 0.02) == "n/a"


#: parameters that say how each rung builds its activations and contrasts (names may differ)
RUNG_SPECIFIC = {
    "14_dyck_steering": {
        "toy_profile",
        "cohorts",
        "n_seeds",
        "n_fit",
        "n_eval",
        "sites",
        "contrasts",
        "paper_site",
    },
    "24_pythia_steering": {
        "suite_profile",
        "suite_overrides",
        "n_fit_seqs",
        "n_eval_seqs",
        "skip_positions",
        "sites",
        "contrasts",
        "paper_site",
        "k_next",
        "n_kl_seqs",
    },
}


def test_dyck_and_pythia_chapters_declare_the_same_experiment_parameters():
    dyck, pythia = (parameter_specs(s) for s in ("14_dyck_steering", "24_pythia_steering"))
    shared_d = {k: v.default for k, v in dyck.items() if k not in RUNG_SPECIFIC["14_dyck_steering"]}
    shared_p = {
        k: v.default for k, v in pythia.items() if k not in RUNG_SPECIFIC["24_pythia_steering"]
    }
    assert shared_d == shared_p
    assert {"alphas", "fixed_tol", "min_native", "min_count", "paper_alphas", "seed"} <= set(
        shared_d
    )
    for name in ("sites", "contrasts", "paper_site"):
        assert name in dyck and name in pythia


# ---------------------------------------------------------------------- the Dyck rung's contrasts

from polyrot_utils.core import haar as haar_mod  # noqa: E402
from polyrot_utils.tasks.dyck import language as dyck  # noqa: E402
from polyrot_utils.tasks.dyck.suite import dyck_activations  # noqa: E402
from polyrot_utils.tasks.dyck.toy import READOUT_SLICES, build_toy, rotate_residual  # noqa: E402

DYCK_CFG = dyck.DyckConfig(
    max_len=12,
    n_train=200,
    n_heldout=200,
    n_ood=16,
    ood_min_len=14,
    ood_max_len=16,
    depth_after_invalid="ignore",
)


@pytest.fixture(scope="module")
def split():
    return dyck.make_split(DYCK_CFG, "heldout")


def test_contrast_masks_disjoint_and_correct(split):
    for c in St.DYCK_CONTRASTS:
        a, b = St.dyck_contrast_masks(split, c)
        assert a.any() and b.any() and not (a & b).any()
        assert not (a & ~split.mask).any() and not (b & ~split.mask).any()
    a, b = St.dyck_contrast_masks(split, "closer")
    assert torch.isin(split.tokens[a], torch.tensor(dyck.CLOSERS)).all()
    with pytest.raises(ValueError, match="contrast"):
        St.dyck_contrast_masks(split, "bogus")


def test_group_logit_diff_behaviour_arithmetic():
    logits = torch.arange(2 * 3 * 51, dtype=torch.float32).reshape(2, 3, 51)
    lo, hi = READOUT_SLICES["depth"]
    f = St.group_logit_diff_behaviour((3, 4), (0,), slice(lo, hi))
    assert torch.allclose(f(logits), torch.full((2, 3), 3.5))
    with pytest.raises(ValueError, match="non-empty"):
        St.group_logit_diff_behaviour((), (0,))


def test_dyck_setup_rows_match_activations_and_rotated_copy_transfers_cleanly(split):
    """The fit masks of dyck_steering_setup select exactly the rows dyck_activations returned (the
    diff-of-means from the rows equals the one from the strings), and a planted exact rotation of
    a toy is a clean transfer through R."""
    m = build_toy(5, init_scale=0.1)
    R = torch.as_tensor(haar_mod.sample_haar(64, rng=2), dtype=torch.float32)
    site = "blocks.1.hook_resid_mid"
    acts = dyck_activations(
        {"a": m, "b": rotate_residual(m, R)},
        split,
        [site],
        n_fit=600,
        n_eval=300,
        data_config=DYCK_CFG,
    )
    setup = St.dyck_steering_setup(acts, DYCK_CFG, min_count=5)
    assert [c.name for c in setup.contrasts] == list(St.DYCK_CONTRASTS)
    fit_split, _ = St.dyck_splits(acts, DYCK_CFG)
    full = collect_activations(m, fit_split.tokens, [site], mask=fit_split.mask)[site][:600]
    torch.testing.assert_close(full, acts.fit["a"][site])
    res = St.steering_transfer(acts, setup, alphas=[1.0], min_native=0.0)
    read = res.read
    assert len(read) >= 2
    np.testing.assert_allclose(read["ratio_transferred"], 1.0, atol=5e-3)
    assert (read["regime_transferred"] == "clean").all()
    with pytest.raises(ValueError, match="contrasts"):
        St.dyck_steering_setup(acts, DYCK_CFG, ["bogus"])
    big = St.dyck_steering_setup(acts, DYCK_CFG, min_count=10**6)
    assert not big.contrasts and set(big.skipped) == set(St.DYCK_CONTRASTS)


def test_fixed_subspace_at_the_glossarys_angle_tolerance():
    """Planes turned by 0.05, 0.2 and 1.0 rad: at τ = 0.1 rad the fixed subspace is the first
    plane, with tol = 2 sin(τ/2) as steering_transfer passes it, and it is the span
    analysis.fixed_subspace (the glossary's angle definition) returns."""
    from polyrot_utils.experiments import analysis

    blocks = [torch.tensor([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) for t in (0.05, 0.2, 1.0)]
    R = torch.block_diag(*blocks).double()
    Q = haar(6, 11)
    R = Q.T @ R @ Q
    tau = 0.1
    B = St.fixed_subspace(R, 2 * np.sin(tau / 2)).double()
    F = torch.as_tensor(analysis.fixed_subspace(R.numpy(), tau))
    assert B.shape == (2, 6) and F.shape == (6, 2)
    torch.testing.assert_close(B.T @ B, F @ F.T, atol=1e-6, rtol=0)  # same projector (float32)
