"""Tests for polyrot_utils.core.metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.core.metrics import (
    explained_variance,
    kl_divergence,
    matched_cosine,
    mean_max_cosine,
    top1_agreement,
)


def test_explained_variance_definition():
    g = np.random.default_rng(0)
    x = g.standard_normal((50, 4)) + 3
    assert explained_variance(x, x) == 1.0
    assert explained_variance(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(0.0, abs=1e-12)
    x_hat = x + g.standard_normal(x.shape)
    ref = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert explained_variance(x, x_hat) == pytest.approx(ref, rel=1e-12)
    assert explained_variance(torch.from_numpy(x).float(), torch.from_numpy(x_hat).float()) == pytest.approx(ref, rel=1e-5)
    assert explained_variance(x, np.zeros_like(x)) < 0  # worse than the mean
    # leading dims are flattened: (batch, pos, d)
    assert explained_variance(x.reshape(5, 10, 4), x_hat.reshape(5, 10, 4)) == pytest.approx(ref, rel=1e-12)


def test_explained_variance_bad_input():
    x = np.ones((5, 3))
    with pytest.raises(ValueError, match="x and x_hat must have the same shape"):
        explained_variance(x, np.ones((5, 2)))
    with pytest.raises(ValueError, match="zero variance"):
        explained_variance(x, x)
    with pytest.raises(ValueError, match="x_hat contains NaN"):
        explained_variance(np.eye(3), np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        explained_variance(np.ones(3), np.ones(3))


@settings(deadline=None, max_examples=20)
@given(n=st.integers(2, 30), d=st.integers(2, 10), seed=st.integers(0, 2**31 - 1))
def test_dictionary_similarity_planted(n, d, seed):
    g = np.random.default_rng(seed)
    d1 = g.standard_normal((n, d))
    perm = g.permutation(n)
    d2 = d1[perm] * g.uniform(0.5, 2.0, (n, 1))  # same directions, shuffled and rescaled
    assert matched_cosine(d1, d2) == pytest.approx(1.0)
    assert mean_max_cosine(d1, d2) == pytest.approx(1.0)
    _, (rows, cols, _) = matched_cosine(d1, d2, return_matching=True)
    assert np.array_equal(perm[cols], rows)
    # sign flips: raw cosine sees them, absolute does not
    assert matched_cosine(d1, -d2, absolute=True) == pytest.approx(1.0)
    assert matched_cosine(d1, -d2) <= matched_cosine(d1, -d2, absolute=True) + 1e-12


def test_matched_is_at_most_mean_max():
    g = np.random.default_rng(1)
    a, b = g.standard_normal((20, 5)), g.standard_normal((30, 5))
    assert matched_cosine(a, b) <= mean_max_cosine(a, b) + 1e-12
    assert -1 <= matched_cosine(torch.from_numpy(a), torch.from_numpy(b)) <= 1
    with pytest.raises(ValueError, match="same d"):
        matched_cosine(a, np.ones((3, 4)))
    with pytest.raises(ValueError, match="D2 has an all-zero row"):
        mean_max_cosine(a, np.zeros((3, 5)))


def test_kl_and_agreement():
    g = np.random.default_rng(2)
    p = g.standard_normal((4, 7, 11))
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(p, p + 3.0) == pytest.approx(0.0, abs=1e-12)  # logits shift-invariant
    q = g.standard_normal((4, 7, 11))
    lp = torch.log_softmax(torch.from_numpy(p), -1)
    lq = torch.log_softmax(torch.from_numpy(q), -1)
    ref = (lp.exp() * (lp - lq)).sum(-1)
    assert kl_divergence(p, q) == pytest.approx(float(ref.mean()), rel=1e-10)
    mask = g.random((4, 7)) < 0.5
    assert kl_divergence(torch.from_numpy(p).float(), torch.from_numpy(q).float(), mask=mask) == pytest.approx(
        float(ref[torch.from_numpy(mask)].mean()), rel=1e-5
    )
    assert top1_agreement(p, p) == 1.0
    agree = (p.argmax(-1) == q.argmax(-1)).mean()
    assert top1_agreement(p, q) == pytest.approx(agree)
    with pytest.raises(ValueError, match="mask must have the logits' leading shape"):
        kl_divergence(p, q, mask=np.ones((4,), bool))
    with pytest.raises(ValueError, match="logits_p and logits_q must have the same shape"):
        top1_agreement(p, q[:, :3])
    with pytest.raises(ValueError, match="mask selects no positions"):
        top1_agreement(p, q, mask=np.zeros((4, 7), bool))


def test_pairwise_agreement_equals_pairwise_calls():
    import torch

    from polyrot_utils.core.metrics import kl_divergence, pairwise_agreement, top1_agreement

    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(3, 5, 11, generator=g) for _ in range(3)]
    mask = torch.rand(3, 5, generator=g) > 0.3
    kl, top1 = pairwise_agreement(logits, mask)
    for i in range(3):
        assert kl[i, i] == 0 and top1[i, i] == 1
        for j in range(3):
            if i != j:
                assert abs(kl[i, j] - kl_divergence(logits[i], logits[j], mask)) < 1e-12
                assert abs(top1[i, j] - top1_agreement(logits[i], logits[j], mask)) < 1e-12
