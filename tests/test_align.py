"""The public API (polyrot_utils.models.align): streaming equals one-shot, errors name the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import polyrot_utils as pr
from polyrot_utils.core.haar import sample_haar
from polyrot_utils.sae.autoencoder import SAE, SAEConfig
from polyrot_utils.tasks.dyck.toy import build_toy, rotate_residual


@pytest.fixture(scope="module")
def pair():
    a = build_toy(seed=1)
    R = torch.as_tensor(sample_haar(64, rng=np.random.default_rng(3)), dtype=torch.float32)
    tokens = torch.randint(0, a.cfg.d_vocab, (40, 16), generator=torch.Generator().manual_seed(1))
    return a, rotate_residual(a, R), R, tokens


def test_streamed_batches_give_the_one_shot_fit(pair):
    a, b, R, tokens = pair
    site = "blocks.0.hook_resid_post"
    whole = pr.fit_rotations(a, b, tokens, sites=site, batch_size=40)[site]
    streamed = pr.fit_rotations(a, b, (tokens[i : i + 7] for i in range(0, 40, 7)), sites=[site])
    np.testing.assert_allclose(streamed[site].matrix, whole.matrix, atol=1e-9)
    np.testing.assert_allclose(whole.matrix, R.numpy(), atol=1e-5)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, :4] = False  # masked positions are left out, and the fit still recovers R
    masked = pr.fit_rotations(a, b, tokens, sites=site, mask=mask)[site]
    np.testing.assert_allclose(masked.matrix, R.numpy(), atol=1e-5)


def test_align_models_and_move_sae_errors(pair):
    a, b, _, tokens = pair
    res = pr.align_models(
        a, b, tokens[:30], tokens[30:], sites=["blocks.1.hook_resid_post"], haar_test_sites=False
    )
    assert [r["site"] for r in res.table()] == ["blocks.1.hook_resid_post"]
    assert res.table()[0]["gap"] < 1e-9 and "haar_pvalue" not in res.table()[0]
    with pytest.raises(KeyError, match="is not in the alignment"):
        pr.move_sae(
            SAE(SAEConfig(d_in=64, d_sae=128, k=4, hook_name="blocks.0.hook_resid_pre")), res
        )
    moved = pr.move_sae(
        SAE(SAEConfig(d_in=64, d_sae=128, k=4)),
        res,
        site="blocks.1.hook_resid_post",
        model_name="B",
    )
    assert moved.cfg.hook_name == "blocks.1.hook_resid_post" and moved.cfg.model_name == "B"
    with pytest.raises(ValueError, match="alignment must be"):
        pr.move_sae(SAE(SAEConfig(d_in=64, d_sae=128, k=4)), {"x": 1})  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown hook sites"):
        pr.fit_rotations(a, b, tokens, sites="blocks.9.hook_resid_post")
    with pytest.raises(ValueError, match="tokens must be"):
        pr.fit_rotations(a, b, tokens[0], sites="blocks.0.hook_resid_post")
