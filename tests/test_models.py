"""Toy model: parameter count, exact residual rotation, training cache/determinism, cohorts."""

import numpy as np
import pytest
import torch

from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import (
    cohort_config,
    functional_agreement,
    shared_tensors_equal,
    train_cohort,
)
from polyrot_utils.tasks.dyck.toy import (
    PAPER_PARAM_COUNT,
    READOUT_SLICES,
    build_toy,
    count_parameters,
    planted_rotation_check,
    rotate_residual,
    split_readouts,
)
from polyrot_utils.tasks.dyck.training import ToyTrainConfig, load_toy, train_toy

torch.set_num_threads(1)

TINY_DATA = dyck.DyckConfig(max_len=12, ood_min_len=14, ood_max_len=18, n_train=1000, n_heldout=200, n_ood=100,
                            depth_after_invalid="ignore")
TINY = ToyTrainConfig(steps=30, batch_size=32, lr=1e-2, warmup_steps=5, eval_every=15, eval_size=100,
                      n_checkpoints=1, data=TINY_DATA)


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _so(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return torch.tensor(q, dtype=torch.float32)


def _tokens(n=64):
    sp = dyck.make_split(dyck.DyckConfig(n_train=n, n_heldout=10, n_ood=10, max_len=20), "train")
    return sp.tokens, sp.mask


def test_parameter_count_matches_paper():
    m = build_toy(0)
    c = count_parameters(m)
    assert c["paper"] == PAPER_PARAM_COUNT == 104_448
    assert c["trainable"] == 104_448 and c["frozen"] == c["biases"] + c["pos"]
    assert not m.pos_embed.W_pos.requires_grad and not m.blocks[0].attn.b_Q.requires_grad
    assert float(m.blocks[0].mlp.b_in.abs().max()) == 0.0
    assert READOUT_SLICES == {"type": (0, 40), "depth": (40, 49), "invalid": (49, 51)}
    parts = split_readouts(torch.zeros(2, 3, 51))
    assert {k: v.shape[-1] for k, v in parts.items()} == {"type": 40, "depth": 9, "invalid": 2}
    with pytest.raises(ValueError, match="last dimension"):
        split_readouts(torch.zeros(2, 50))


def test_init_deterministic():
    a, b, c = build_toy(3), build_toy(3), build_toy(4)
    pa, pb, pc = dict(a.named_parameters()), dict(b.named_parameters()), dict(c.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["embed.W_E"], pc["embed.W_E"])


def _perturbed_toy(seed=0):
    m = build_toy(seed, init_scale=0.1)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith(".w"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    return m


def test_rotate_residual_same_function_and_rotated_activations():
    m = _perturbed_toy()
    R = _so(64, 1)
    tokens, mask = _tokens()
    rows = planted_rotation_check(m, R, tokens, mask=mask)  # float64 copies: exact to rounding
    for r in rows:
        assert r["logprob_err"] < 1e-10
        assert r["act_err"] < 1e-10, r
        if r["rank"] == 64:
            assert r["R_err"] < 1e-6, r
        assert r["R_err_subspace"] < 1e-6, r
    assert rows[0]["rank"] < 64 and rows[0]["R_err"] > 1e-2  # resid_pre 0: R identifiable only on the span
    rows32 = planted_rotation_check(m, R, tokens, mask=mask, float64=False, sites=["blocks.1.hook_resid_post"])
    assert rows32[0]["logprob_err"] < 1e-4 and rows32[0]["act_err"] < 1e-4
    # the rotated model has unit gains and the same hook names
    mr = rotate_residual(m, R)
    assert set(mr.hook_dict) == set(m.hook_dict)
    assert all(float((p.detach() - 1).abs().max()) == 0 for n, p in mr.named_parameters() if n.endswith(".w"))
    # rotating back gives the original function
    back = rotate_residual(mr, R.T)
    with torch.no_grad():
        assert float((back(tokens) - m(tokens)).abs().max()) < 1e-4


def test_rotate_residual_trained_model(tmp_cache):
    toy = train_toy(TINY)
    R = _so(64, 2)
    tokens, mask = _tokens(48)
    rows = planted_rotation_check(toy.model, R, tokens, mask=mask, float64=False)
    assert max(r["logprob_err"] for r in rows) < 1e-4
    assert max(r["act_err"] for r in rows) < 1e-4
    rows = planted_rotation_check(toy.model, R, tokens, mask=mask)
    assert max(r["logprob_err"] for r in rows) < 1e-10
    assert max(r["R_err_subspace"] for r in rows) < 1e-6


def test_rotate_residual_bad_input():
    m = build_toy(0)
    with pytest.raises(ValueError, match="d_model=64"):
        rotate_residual(m, torch.eye(63))
    with pytest.raises(ValueError, match="orthogonal"):
        rotate_residual(m, 2 * torch.eye(64))
    ln = build_toy(0, normalization_type="LN")
    with pytest.raises(ValueError, match="all-ones"):
        rotate_residual(ln, _so(64, 3))


def test_rotate_residual_layernorm_with_ones_fixing_rotation():
    ln = build_toy(0, normalization_type="LN", init_scale=0.1)
    with torch.no_grad():
        for n, p in ln.named_parameters():
            if n.endswith(".w"):
                p.add_(0.2 * torch.randn_like(p))
            if n.endswith("ln1.b") or n.endswith("ln_final.b"):
                p.add_(0.1 * torch.randn_like(p))
    # a rotation fixing 1: conjugate a rotation of the complement
    d = 64
    basis, _ = np.linalg.qr(np.concatenate([np.ones((d, 1)), np.random.default_rng(0).standard_normal((d, d - 1))], 1))
    Q = _so(d - 1, 5).double().numpy()
    block = np.eye(d)
    block[1:, 1:] = Q
    R = torch.tensor(basis @ block @ basis.T, dtype=torch.float32)
    tokens, _ = _tokens(16)
    lr = rotate_residual(ln, R)
    with torch.no_grad():
        assert float((ln(tokens).log_softmax(-1) - lr(tokens).log_softmax(-1)).abs().max()) < 1e-4


def test_train_cache_hit_and_determinism(tmp_cache):
    a = train_toy(TINY)
    assert not a.from_cache and a.history["step"][-1] == 30
    assert sorted(a.checkpoints) == [0, 15, 30]
    b = train_toy(TINY)
    assert b.from_cache
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    c = train_toy(TINY, force=True)  # retrain from scratch: same seed -> same weights
    pc = dict(c.model.named_parameters())
    assert all(torch.equal(pa[k], pc[k]) for k in pa)
    ck = a.load_checkpoint(30)
    assert all(torch.equal(pa[k], dict(ck.named_parameters())[k]) for k in pa)
    with pytest.raises(KeyError, match="saved steps"):
        a.load_checkpoint(7)
    with pytest.raises(FileNotFoundError):
        load_toy(TINY.with_(seed=99))
    # a different data order changes the weights, the init is shared
    d = train_toy(TINY.with_(data_seed=5))
    assert not torch.equal(pa["blocks.0.mlp.W_in"], dict(d.model.named_parameters())["blocks.0.mlp.W_in"])
    assert torch.equal(a.load_checkpoint(0).embed.W_E, d.load_checkpoint(0).embed.W_E)


def test_config_validation():
    with pytest.raises(ValueError, match="optimizer"):
        ToyTrainConfig(optimizer="lion")
    with pytest.raises(ValueError, match="unknown ToyTrainConfig"):
        TINY.with_(stepz=3)
    assert TINY.with_(data_max_len=10).data.max_len == 10


def test_shared_io_cohort_shares_frozen_weights(tmp_cache):
    cfg = cohort_config("shared_io", profile="smoke", n_seeds=3, steps=20, data_n_train=500, data_n_heldout=100,
                        data_n_ood=50)
    cohort = train_cohort(cfg)
    assert cohort.seeds == (0, 1, 2)
    assert shared_tensors_equal(cohort) == {"embed.W_E": True, "unembed.W_U": True}
    m0, m1 = cohort.models[0], cohort.models[1]
    assert not m1.embed.W_E.requires_grad and not m1.unembed.W_U.requires_grad
    assert not torch.equal(m0.blocks[0].mlp.W_in, m1.blocks[0].mlp.W_in)
    # the source model is the same artifact as an independent model of seed 0
    assert cohort.members[0].path == train_toy(cfg.member_configs()[0]).path
    ind = train_cohort(cohort_config("independent", profile="smoke", n_seeds=2, steps=20, data_n_train=500,
                                     data_n_heldout=100, data_n_ood=50))
    assert not torch.equal(ind.models[100].embed.W_E, ind.models[101].embed.W_E)
    rows = functional_agreement(ind.models, dyck.make_split(cfg.train.data, "heldout"))
    assert len(rows) == 3 and all(0 <= r["top1_agreement"] <= 1 and r["kl_ab"] >= 0 for r in rows)


def test_same_init_and_sgd_cohort_configs():
    same = cohort_config("same_init", profile="smoke", n_seeds=3).member_configs()
    assert {c.seed for c in same.values()} == {200} and [c.effective_data_seed for c in same.values()] == [200, 201, 202]
    sgd = cohort_config("sgd", profile="smoke", n_seeds=2).member_configs()
    assert all(c.optimizer == "sgd" for c in sgd.values())
    with pytest.raises(ValueError, match="kind"):
        cohort_config("tied")
