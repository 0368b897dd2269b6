"""Tests of polyrot_utils.experiments.checkpoints (planted rotations); the Dyck steering helpers
are tested in tests/test_steering.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.experiments import checkpoints as ck
from polyrot_utils.core import haar
from polyrot_utils.core.procrustes import alignment_report, fit_alignment

torch.set_num_threads(1)


def test_checkpoint_pairs():
    assert ck.checkpoint_pairs([0, 10, 20], "successive") == [(0, 10), (10, 20)]
    assert ck.checkpoint_pairs([20, 0, 10], "to_final") == [(0, 20), (10, 20)]
    with pytest.raises(ValueError, match="at least 2"):
        ck.checkpoint_pairs([5])
    with pytest.raises(ValueError, match="kind"):
        ck.checkpoint_pairs([0, 1], "bogus")


def test_checkpoint_models_missing_step():
    member = SimpleNamespace(checkpoints={0: "a", 10: "b"}, load_checkpoint=lambda s: f"model{s}")
    assert ck.checkpoint_models(member) == {0: "model0", 10: "model10"}
    with pytest.raises(KeyError, match="saved steps"):
        ck.checkpoint_models(member, steps=[5])


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_rotation_row_planted(seed):
    g = torch.Generator().manual_seed(seed)
    d = 16
    x = torch.randn(400, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2, d, dtype=torch.float64)
    R = torch.as_tensor(haar.sample_haar(d, rng=seed))
    y = x @ R + 1.0
    row = ck.rotation_row(x[:200], y[:200], x[200:], y[200:], n_null=0)
    assert row["frob_ratio"] == pytest.approx(float(torch.linalg.norm(R - torch.eye(d)) / np.sqrt(2 * d)), abs=1e-8)
    assert row["ev_rotation"] == pytest.approx(1.0, abs=1e-10)
    assert row["ev_affine"] == pytest.approx(1.0, abs=1e-6)
    assert row["ev_identity"] < 0.9
    same = ck.rotation_row(x[:200], x[:200], x[200:], x[200:], n_null=0)
    assert same["frob_ratio"] < 1e-8 and same["ev_identity"] == pytest.approx(1.0)


def test_affine_ev_matches_fit_alignment():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    y = x @ torch.randn(8, 8, generator=g, dtype=torch.float64) + 0.3 * torch.randn(300, 8, generator=g, dtype=torch.float64)
    ref = alignment_report(fit_alignment(x[:200], y[:200], "affine"), x[200:], y[200:]).ev
    assert ck.affine_ev(x[:200], y[:200], x[200:], y[200:]) == pytest.approx(ref, abs=1e-6)


def test_rotation_row_haar_p_is_a_probability():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    row = ck.rotation_row(x[:150], x[:150], x[150:], x[150:], n_null=19, seed=0)
    assert 0 < row["haar_p"] <= 1 and row["haar_p"] == pytest.approx(0.05)  # identity: the most extreme
