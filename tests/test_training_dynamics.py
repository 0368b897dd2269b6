"""Claims over training: planted checkpoints whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyrot_utils.core import haar
from polyrot_utils.experiments.training_dynamics import COLUMNS, claims_over_training
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import functional_agreement
from polyrot_utils.tasks.dyck.suite import dyck_activations
from polyrot_utils.tasks.dyck.toy import build_toy, rotate_residual

SITE = "blocks.1.hook_resid_mid"


def _split():
    cfg = dyck.DyckConfig(task="paper", min_len=2, max_len=8, n_train=10, n_heldout=400, n_ood=10, seed=3)
    return dyck.make_split(cfg, "heldout")


def _agreement(split):
    def agree(models):
        rows = functional_agreement(dict(models), split)
        return float(np.mean([r["kl_ab"] for r in rows])), float(np.mean([r["top1_agreement"] for r in rows]))
    return agree


def test_a_rotated_copy_is_found_and_two_unrelated_models_are_not():
    torch.manual_seed(0)
    split = _split()
    a = build_toy(1)
    R = torch.as_tensor(haar.sample_haar(a.cfg.d_model, rng=5), dtype=torch.float32)
    checkpoints = {10: {"seed1": a, "seed2": build_toy(2)}, 20: {"seed1": a, "seed2": rotate_residual(a, R)}}
    build = lambda models: dyck_activations(dict(models), split, n_fit=600, n_eval=400, seed=0)  # noqa: E731
    df = claims_over_training(checkpoints, {10: 100, 20: 200}, build, _agreement(split), site=SITE,
                              min_accuracy={10: 0.5, 20: 0.9}, sae_n_tokens=2048, n_null=50)
    assert list(df.step) == [10, 20] and list(df.tokens) == [100, 200]
    assert set(COLUMNS) <= set(df.columns)
    unrelated, rotated = df.iloc[0], df.iloc[1]
    assert rotated.cross_seed_kl < 1e-6 and rotated.cross_seed_top1 > 0.999
    # the two seeds keep their own SAEs (different SAE seeds), so the gap is SAE noise, not 0
    assert rotated.aligned_ev > 0.999 and abs(rotated.sae_gap) < 0.1
    assert rotated.unaligned_ev < 0.5 < rotated.aligned_ev
    assert 0.7 < rotated.rotation_distance < 1.3  # a Haar draw sits near 1
    # two untrained toys: near-orthogonal random embeddings have similar Gram matrices, so even they
    # align well (the reason the chapters carry an untrained control); the exact copy aligns better
    assert unrelated.aligned_ev < rotated.aligned_ev and unrelated.cross_seed_kl > 1e3 * rotated.cross_seed_kl


def test_bad_checkpoints_are_refused_by_name():
    with pytest.raises(ValueError, match="checkpoints"):
        claims_over_training({}, {}, None, None, site=SITE)
    a, b = build_toy(1), build_toy(2)
    with pytest.raises(ValueError, match="tokens_seen"):
        claims_over_training({1: {"x": a, "y": b}}, {}, None, None, site=SITE)
    with pytest.raises(ValueError, match="has seeds"):
        claims_over_training({1: {"x": a, "y": b}, 2: {"x": a, "z": b}}, {1: 1, 2: 2}, None, None, site=SITE)
    with pytest.raises(ValueError, match="n_null"):
        claims_over_training({1: {"x": a, "y": b}}, {1: 1}, None, None, site=SITE, n_null=1)
