"""Tests of polyrot_utils.tasks.dyck.bars: the four bars' computations on planted answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.tasks.dyck import bars, language as dyck
from polyrot_utils.core import haar
from polyrot_utils.tasks.dyck.toy import (
    build_toy,
    load_parameter_dict,
    parameter_dict,
    rotate_residual,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    m = build_toy(3, init_scale=0.1)
    m.eval()
    return m


@pytest.fixture(scope="module")
def batch():
    cfg = dyck.DyckConfig(max_len=10, n_train=200, n_heldout=64, n_ood=16, ood_min_len=12, ood_max_len=14,
                          depth_after_invalid="ignore")
    return dyck.make_split(cfg, "heldout").subset(slice(0, 12))


@pytest.fixture(scope="module")
def rotated(model):
    R = torch.as_tensor(haar.sample_haar(64, rng=7), dtype=torch.float32)
    return rotate_residual(model, R), R


def test_components_names_and_hooks(model):
    comps = bars.components(model)
    assert [c.name for c in comps][:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L0MLP"]
    assert len(comps) == 10 and all(c.hook in model.hook_dict for c in comps)


def test_parametric_bar_zero_for_exactly_rotated_copy(model, rotated):
    m_rot, R = rotated
    rows = bars.parametric_bar(model, m_rot, R)
    by = {lv: max(r["mse"] for r in rows if r["level"] == lv) for lv in bars.P_LEVELS}
    assert by["rotation"] < 1e-12 and by["permutation"] < 1e-12 and by["head_orthogonal"] < 1e-12
    assert by["none"] > 1e-4  # without R the rotated copy's weights differ


def test_parametric_bar_recovers_permuted_heads_and_neurons(model):
    p = parameter_dict(model)
    g = torch.Generator().manual_seed(0)
    for layer in range(2):
        hp = torch.randperm(4, generator=g)
        for k in ("W_Q", "W_K", "W_V", "W_O"):
            p[f"blocks.{layer}.attn.{k}"] = p[f"blocks.{layer}.attn.{k}"][hp]
        npm = torch.randperm(256, generator=g)
        p[f"blocks.{layer}.mlp.W_in"] = p[f"blocks.{layer}.mlp.W_in"][:, npm]
        p[f"blocks.{layer}.mlp.W_out"] = p[f"blocks.{layer}.mlp.W_out"][npm]
    permuted = build_toy(3, init_scale=0.1)
    load_parameter_dict(permuted, p)
    rows = bars.parametric_bar(model, permuted, np.eye(64))
    by = {lv: max(r["mse"] for r in rows if r["level"] == lv) for lv in bars.P_LEVELS}
    assert by["rotation"] > 1e-3
    assert by["permutation"] < 1e-12


def test_head_orthogonal_level_undoes_per_head_basis_change(model):
    p = parameter_dict(model)
    Q = torch.as_tensor(haar.sample_haar(16, rng=3), dtype=torch.float32)
    h = 2
    for k in ("W_Q", "W_K", "W_V"):
        p[f"blocks.0.attn.{k}"][h] = p[f"blocks.0.attn.{k}"][h] @ Q
    p["blocks.0.attn.W_O"][h] = Q.T @ p["blocks.0.attn.W_O"][h]
    other = build_toy(3, init_scale=0.1)
    load_parameter_dict(other, p)
    rows = bars.parametric_bar(model, other, np.eye(64))
    by = {lv: max(r["mse"] for r in rows if r["level"] == lv) for lv in bars.P_LEVELS}
    assert by["permutation"] > 1e-5 and by["head_orthogonal"] < 1e-10


def test_parametric_bar_bad_level(model):
    with pytest.raises(ValueError, match="levels"):
        bars.parametric_bar(model, model, None, levels=("bogus",))


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6))
def test_attribution_patching_exact_for_linear_and_ig_exact_for_quadratic(seed, n):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64)
    x0 = torch.randn(5, generator=g, dtype=torch.float64)
    x1 = torch.randn(5, generator=g, dtype=torch.float64)
    lin = lambda x: w @ x + 3.0  # noqa: E731
    quad = lambda x: x @ A @ x + w @ x  # noqa: E731
    assert bars.attribution_patching(lin, x0, x1) == pytest.approx(float(lin(x1) - lin(x0)), abs=1e-10)
    assert bars.integrated_gradients(quad, x0, x1, n_steps=n) == pytest.approx(float(quad(x1) - quad(x0)), abs=1e-9)


def test_ig_predicts_measured_patching_on_a_toy(model, batch):
    corrupted = bars.corrupt_tokens(batch.tokens, batch.mask, seed=1)
    rows = bars.causal_table(model, batch, corrupted, n_steps=16)
    meas = np.array([r["measured"] for r in rows])
    ig = np.array([r["ig"] for r in rows])
    assert np.abs(meas).max() > 1e-4
    assert np.allclose(ig, meas, atol=0.05 * np.abs(meas).max() + 1e-6)
    assert bars.pearson(ig, meas) > 0.99


def test_ablation_profile_predicts_itself_and_rotated_copy(model, rotated, batch):
    m_rot, R = rotated
    split = batch
    t_a = bars.ablation_effects(model, batch, bars.component_means(model, split), n_steps=2)
    t_b = bars.ablation_effects(m_rot, batch, bars.component_means(m_rot, split), n_steps=2)
    ident = {c.name: c.name for c in bars.components(model)}
    assert bars.cross_seed_r(t_a, t_a, ident, predicted="measured") == pytest.approx(1.0)
    # heads are not changed by a residual rotation: same effects, matched to themselves
    assert bars.component_correspondence(model, m_rot, R, how="matched") == ident
    assert bars.cross_seed_r(t_a, t_b, ident, predicted="measured") == pytest.approx(1.0, abs=1e-6)


def test_corrupt_tokens_changes_one_bracket(batch):
    out = bars.corrupt_tokens(batch.tokens, batch.mask, seed=0)
    diff = out != batch.tokens
    has_bracket = (torch.isin(batch.tokens, torch.tensor(dyck.BRACKETS)) & batch.mask).any(1)
    assert torch.equal(diff.sum(1), has_bracket.long())
    assert torch.isin(out[diff], torch.tensor(dyck.BRACKETS)).all()
    assert torch.equal(out == dyck.PAD, batch.tokens == dyck.PAD)
    re = bars.relabel(batch, out)
    ref = dyck.label_tokens(out.numpy(), "ignore")
    assert np.array_equal(re.labels["invalid"].numpy(), ref["invalid"])
    with pytest.raises(ValueError, match="same shape"):
        bars.corrupt_tokens(batch.tokens, batch.mask[:, :-1])


def test_behaviour_bar_identical_models_zero(model, batch):
    rows = bars.behaviour_bar({0: model, 1: model}, batch)
    assert {r["readout"] for r in rows} == {"type", "depth", "invalid", "mean"}
    assert max(abs(r["kl_ab"]) for r in rows) < 1e-6


def test_stream_rotation_recovers_planted_R_on_the_span(model, rotated, batch):
    m_rot, R = rotated
    R_fit = bars.stream_rotation(model, m_rot, batch.tokens, batch.mask)
    assert R_fit.shape == (64, 64)
    assert np.allclose(R_fit.T @ R_fit, np.eye(64), atol=1e-8)
    assert np.abs(R_fit - R.double().numpy()).max() < 1e-3


def test_pearson_edge_cases():
    assert bars.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert np.isnan(bars.pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        bars.pearson([1, 2], [1, 2, 3])


def test_label_kl_bar_matches_the_papers_formula(model, batch):
    """KL(ε-smoothed one-hot ‖ model), pooled over positions and readouts, equals the formula
    computed by hand; weights combine splits."""
    from polyrot_utils.tasks.dyck.toy import split_readouts

    out = bars.label_kl_bar(model, {"h": batch}, eps=1e-6)
    with torch.no_grad():
        logits = split_readouts(model(batch.tokens))
    tot, n = 0.0, 0
    for name, K in dyck.READOUT_SIZES.items():
        m = batch.readout_mask(name)
        logq = torch.log_softmax(logits[name][m].double(), -1)
        lab = batch.labels[name][m]
        p = torch.full((len(lab), K), 1e-6 / (K - 1), dtype=torch.float64)
        p[torch.arange(len(lab)), lab] = 1 - 1e-6
        kl = (p * (p.log() - logq)).sum(-1)
        tot += float(kl.sum()); n += kl.numel()
    assert out["mean_kl"] == pytest.approx(tot / n, rel=1e-5)
    two = bars.label_kl_bar(model, {"h": batch, "g": batch}, weights={"h": 0.6, "g": 0.4})
    assert two["mean_kl"] == pytest.approx(out["mean_kl"], rel=1e-9)
    with pytest.raises(ValueError, match="eps"):
        bars.label_kl_bar(model, {"h": batch}, eps=0.0)


def test_paper_toy_steering_identical_copies_give_ratio_one():
    """The paper's cross/within ratio of a model and its exact copy is 1 wherever the vector moves
    the readout; the masks follow exp2_steering.py's definitions."""
    from polyrot_utils.experiments import steering

    m = build_toy(3, init_scale=0.5)
    m.eval()
    cfg = dyck.DyckConfig(max_len=16, n_train=200, n_heldout=200, n_ood=16, ood_min_len=18, ood_max_len=20,
                          depth_after_invalid="freeze")
    split = dyck.make_split(cfg, "heldout").subset(slice(0, 60))
    masks = steering.paper_toy_masks(split)
    pos, neg, cond, readout, sign = masks["depth_4_to_5"]
    assert bool((split.labels["depth"][pos] == 5).all()) and bool((split.labels["depth"][cond] == 4).all())
    assert masks["sticky_invalid_d4"][4] == -1.0 and masks["closer_signal"][3] == "type"
    rows = steering.paper_toy_steering({"a": m, "b": m}, "a", split, "blocks.1.hook_resid_mid", [16.0], min_count=1)
    assert rows and all(r["cross"] == pytest.approx(r["within"]) for r in rows)
    assert all(r["ratio"] == pytest.approx(1.0) for r in rows if abs(r["within"]) > 1e-12)
    with pytest.raises(ValueError, match="anchor"):
        steering.paper_toy_steering({"a": m}, "z", split, "blocks.1.hook_resid_mid", [1.0])
