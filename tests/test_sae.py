"""Tests for polyrot_utils.sae: training on planted sparse data, exact gradients, rotation
transfer (with means), SAELens format round trips, the cache, and input validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.sae import autoencoder as S
from polyrot_utils.core.metrics import explained_variance, matched_cosine

torch.set_num_threads(1)


def planted(n: int, d: int, m: int, k: int, seed: int, offset: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """x = codes @ D + b: D (m, d) unit rows, codes exactly k-sparse with magnitudes in [1, 2]."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, d, generator=g)
    D /= D.norm(dim=1, keepdim=True)
    idx = torch.rand(n, m, generator=g).argsort(dim=1)[:, :k]
    codes = torch.zeros(n, m).scatter_(1, idx, 1 + torch.rand(n, k, generator=g))
    return codes @ D + offset * torch.randn(d, generator=g), D


def haar(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture(scope="module")
def trained():
    x, D = planted(20_000, 16, 32, 3, seed=0)
    sae, hist = S.train_sae(x, d_sae=32, k=3, n_tokens=150_000, batch_size=256, seed=0)
    return x, D, sae, hist


def test_trains_on_planted_sparse_data(trained):
    x, D, sae, hist = trained
    assert hist["final_ev"] > 0.9
    assert explained_variance(x, sae.reconstruct(x)) == pytest.approx(hist["final_ev"])
    assert matched_cosine(sae.W_dec.detach(), D) > 0.9
    assert sae.l0(x[:1000]) == pytest.approx(3.0)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(32), atol=1e-5)
    assert hist["tokens_per_second"] > 0 and hist["steps"][-1]["fvu"] < 0.2


def test_deterministic_given_seed():
    x, _ = planted(2000, 8, 16, 2, seed=1)
    a, ha = S.train_sae(x, d_sae=16, k=2, n_steps=30, batch_size=128, seed=3)
    b, hb = S.train_sae(x, d_sae=16, k=2, n_steps=30, batch_size=128, seed=3)
    c, _ = S.train_sae(x, d_sae=16, k=2, n_steps=30, batch_size=128, seed=4)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.W_dec, c.W_dec)
    assert ha["final_ev"] == hb["final_ev"]


def test_manual_gradients_match_autograd():
    """The trainer's hand-written TopK + AuxK gradients equal autograd's."""
    torch.manual_seed(0)
    d, m, k, B, ka, c = 12, 40, 4, 64, 3, 0.5
    sae = S.SAE(S.SAEConfig(d_in=d, d_sae=m, k=k)).double()
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
        sae.W_enc.add_(0.3 * torch.randn_like(sae.W_enc))
    x = torch.randn(B, d, dtype=torch.float64)
    dead = torch.zeros(m, dtype=torch.bool)
    dead[:20] = True
    rec = sae(x)
    pre = sae.pre_activations(x)
    av, ai = torch.topk(pre.masked_fill(~dead, float("-inf")), ka, dim=-1)
    arec = (av.relu()[:, :, None] * sae.W_dec[ai]).sum(1)
    loss = ((rec - x) ** 2).sum(1).mean() + c * ((arec - (x - rec).detach()) ** 2).sum(1).mean()
    loss.backward()
    g = {"W_encT": torch.zeros(m, d, dtype=torch.float64), "b_enc": torch.zeros(m, dtype=torch.float64),
         "W_dec": torch.zeros(m, d, dtype=torch.float64), "b_dec": torch.zeros(d, dtype=torch.float64)}
    with torch.no_grad():
        xc = x - sae.b_dec
        pre = xc @ sae.W_enc + sae.b_enc
        vals, idx = S.topk_indices(pre, k)
        act = vals.relu()
        err = S._decode_sparse(sae.W_dec, idx, act) + sae.b_dec - x
        g["b_dec"] += (2 * err / B).sum(0)
        S._sparse_grads(sae.W_enc, sae.W_dec, xc, idx, act, 2 * err / B, g)
        av, ai = S.topk_indices(pre.masked_fill(~dead, float("-inf")), ka)
        aerr = S._decode_sparse(sae.W_dec, ai, av.relu()) + err
        S._sparse_grads(sae.W_enc, sae.W_dec, xc, ai, av.relu(), 2 * c * aerr / B, g)
    torch.testing.assert_close(g["W_encT"].T, sae.W_enc.grad)
    torch.testing.assert_close(g["W_dec"], sae.W_dec.grad)
    torch.testing.assert_close(g["b_enc"], sae.b_enc.grad)
    torch.testing.assert_close(g["b_dec"], sae.b_dec.grad)


@settings(deadline=None, max_examples=25)
@given(B=st.integers(1, 20), m=st.integers(2, 700), kfrac=st.floats(0.0, 1.0), seed=st.integers(0, 10**6))
def test_topk_indices_matches_torch_topk(B, m, kfrac, seed):
    k = max(1, min(m, int(round(kfrac * m / 4)) or 1))
    pre = torch.randn(B, m, generator=torch.Generator().manual_seed(seed))
    v1, _ = torch.topk(pre, k, dim=-1)
    v2, i2 = S.topk_indices(pre, k)
    torch.testing.assert_close(v2.sort(dim=-1, descending=True).values, v1)
    torch.testing.assert_close(pre.gather(1, i2), v2)
    assert all(len(set(r.tolist())) == k for r in i2)


def test_encode_matches_saelens_topk_convention():
    """f = relu(topk(pre)) with pre = (x − b_dec) W_enc + b_enc; decode = f W_dec + b_dec."""
    sae = S.SAE(S.SAEConfig(d_in=6, d_sae=10, k=3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(5, 6)
    with torch.no_grad():
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        f = sae.encode(x)
    for row, p in zip(f, pre):
        top = set(torch.topk(p, 3).indices.tolist())
        for i in range(10):
            assert row[i] == (max(float(p[i]), 0.0) if i in top else 0.0)
    with torch.no_grad():
        torch.testing.assert_close(sae.decode(f), f @ sae.W_dec + sae.b_dec)


def test_standard_relu_l1_trains():
    x, _ = planted(5000, 12, 24, 2, seed=2)
    sae, hist = S.train_sae(x, d_sae=24, architecture="standard", n_tokens=60_000, batch_size=256, seed=0, l1_coef=1e-3)
    assert sae.cfg.architecture == "standard" and sae.cfg.k is None
    assert hist["final_ev"] > 0.8


# ---------------------------------------------------------------------------------------------
# rotation transfer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("centred", [True, False])
def test_transfer_through_planted_rotation_and_shift(trained, centred):
    x_src, _, sae, hist = trained
    d = x_src.shape[1]
    R = haar(d, seed=5)
    x64 = x_src.double()
    if centred:
        mu_s = x64.mean(0)
        mu_t = 3.0 * torch.randn(d, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        x_tgt = ((x64 - mu_s) @ R + mu_t).float()
        moved = S.transfer_sae(sae, R, source_mean=mu_s, target_mean=mu_t)
    else:
        x_tgt = (x64 @ R).float()
        moved = S.transfer_sae(sae, R)
    ev_src = sae.explained_variance(x_src)
    assert moved.explained_variance(x_tgt) == pytest.approx(ev_src, abs=1e-4)
    # the same latents fire with the same values
    torch.testing.assert_close(moved.encode(x_tgt[:500]), sae.encode(x_src[:500]), atol=1e-4, rtol=1e-4)
    # the untransferred SAE on the target frame is far worse
    assert sae.explained_variance(x_tgt) < ev_src - 0.5
    assert torch.allclose(moved.W_dec.norm(dim=1), torch.ones(sae.d_sae), atol=1e-5)
    assert moved.cfg.k == sae.cfg.k and moved is not sae


def test_transfer_with_fitted_rotation(trained):
    """End to end with procrustes.fit_rotation (centred): recovered R and means give the source EV."""
    procrustes = pytest.importorskip("polyrot_utils.core.procrustes")
    x_src, _, sae, _ = trained
    d = x_src.shape[1]
    R = haar(d, seed=7)
    mu_t = torch.randn(d, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x_tgt = ((x_src.double() - x_src.double().mean(0)) @ R + mu_t).float()
    R_hat = torch.as_tensor(procrustes.fit_rotation(x_src[:4000], x_tgt[:4000], special=True, center=True))
    moved = S.transfer_sae(sae, R_hat.double(), source_mean=x_src[:4000].double().mean(0), target_mean=x_tgt[:4000].double().mean(0))
    assert moved.explained_variance(x_tgt[4000:]) == pytest.approx(sae.explained_variance(x_src[4000:]), abs=2e-3)


def test_transfer_without_b_dec_on_input():
    cfg = S.SAEConfig(d_in=8, d_sae=20, k=4, apply_b_dec_to_input=False)
    sae = S.SAE(cfg, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    R = haar(8, 1)
    mu_s, mu_t = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    x_t = torch.randn(50, 8, dtype=torch.float64)
    x_s = (x_t - mu_t) @ R.T + mu_s
    moved = S.transfer_sae(sae, R, source_mean=mu_s, target_mean=mu_t)
    torch.testing.assert_close(moved.encode(x_t.float()), sae.encode(x_s.float()), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved(x_t.float()).double(), (sae(x_s.float()).double() - mu_s) @ R + mu_t, atol=1e-5, rtol=1e-5)


def test_transfer_rejects_bad_input():
    sae = S.SAE(S.SAEConfig(d_in=4, d_sae=8, k=2))
    with pytest.raises(ValueError, match="orthogonal"):
        S.transfer_sae(sae, 2 * torch.eye(4))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        S.transfer_sae(sae, torch.eye(5))
    with pytest.raises(ValueError, match="both"):
        S.transfer_sae(sae, torch.eye(4), source_mean=torch.zeros(4))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def test_d_in_mismatch_names_both_numbers():
    sae = S.SAE(S.SAEConfig(d_in=64, d_sae=128, k=4))
    with pytest.raises(ValueError, match=r"512.*d_in=64"):
        sae.explained_variance(torch.randn(10, 512))
    with pytest.raises(ValueError, match="d_sae=128"):
        sae.decode(torch.randn(3, 100))


def test_config_validation():
    with pytest.raises(ValueError, match="k must be"):
        S.SAEConfig(d_in=4, d_sae=8, k=9)
    with pytest.raises(ValueError, match="architecture"):
        S.SAEConfig(d_in=4, d_sae=8, architecture="jumprelu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"activations must be 2-D with shape \(n, d\)"):
        S.train_sae(torch.randn(10), d_sae=4, k=2)
    with pytest.raises(ValueError, match="not both"):
        S.train_sae(torch.randn(10, 3), d_sae=4, k=2, n_steps=2, n_tokens=10)


# ---------------------------------------------------------------------------------------------
# SAELens format
# ---------------------------------------------------------------------------------------------


def _random_sae(arch: str = "topk", d: int = 10, m: int = 24, seed: int = 0) -> S.SAE:
    sae = S.SAE(S.SAEConfig(d_in=d, d_sae=m, k=5 if arch == "topk" else None, architecture=arch,  # type: ignore[arg-type]
                            hook_name="blocks.0.hook_resid_post", model_name="toy"), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_()
    return sae


@pytest.mark.parametrize("arch", ["topk", "standard"])
def test_save_load_round_trip(tmp_path, arch):
    sae = _random_sae(arch)
    S.save_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["d_in"] == 10 and cfg["d_sae"] == 24
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post" and cfg["apply_b_dec_to_input"] is True
    assert cfg["normalize_activations"] == "none" and cfg["dtype"] == "float32"
    assert (cfg.get("k") == 5) == (arch == "topk")
    back = S.load_sae(tmp_path / "sae")
    x = torch.randn(40, 10)
    assert torch.equal(back(x), sae(x))
    assert back.cfg.hook_name == sae.cfg.hook_name and back.cfg.k == sae.cfg.k
    assert not list((tmp_path / "sae").glob("*.tmp"))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        S.load_sae(tmp_path)
    S.save_sae(_random_sae(), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["d_in"] = 11
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="W_enc"):
        S.load_sae(tmp_path)


@pytest.mark.parametrize("arch", ["topk", "standard"])
def test_saelens_loads_our_sae(tmp_path, arch):
    sae_lens = pytest.importorskip("sae_lens", reason="sae_lens is not installed; the SAELens interop test needs it")
    sae = _random_sae(arch)
    S.save_sae(sae, tmp_path)
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))
    assert theirs.cfg.architecture() == arch and theirs.cfg.d_sae == 24
    x = torch.randn(40, 10)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x))
        torch.testing.assert_close(theirs.encode(x), sae.encode(x))


def test_we_load_saelens_written_sae(tmp_path):
    sae_lens = pytest.importorskip("sae_lens", reason="sae_lens is not installed; the SAELens interop test needs it")
    from sae_lens import TopKSAE, TopKSAEConfig

    theirs = TopKSAE(TopKSAEConfig(d_in=8, d_sae=16, k=3))
    with torch.no_grad():
        theirs.b_enc.normal_()
        theirs.b_dec.normal_()
        theirs.W_dec.div_(theirs.W_dec.norm(dim=1, keepdim=True))
    theirs.save_model(str(tmp_path))
    ours = S.load_sae(tmp_path)
    x = torch.randn(30, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


def test_cached_training_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path))
    x, _ = planted(3000, 8, 16, 2, seed=3)
    kw = dict(d_sae=16, k=2, n_steps=40, batch_size=128, seed=0)
    a, ha = S.train_sae_cached(x, **kw)
    b, hb = S.train_sae_cached(x, **kw)
    assert ha["cache_hit"] is False and hb["cache_hit"] is True
    assert hb["final_ev"] == pytest.approx(ha["final_ev"])
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    # different data or config → a different entry
    _, hc = S.train_sae_cached(x + 1.0, **kw)
    _, hd = S.train_sae_cached(x, **{**kw, "seed": 1})
    assert hc["cache_hit"] is False and hd["cache_hit"] is False
    entries = list((tmp_path / "sae").iterdir())
    assert len(entries) == 3
    assert all((e / "cfg.json").exists() and (e / "history.json").exists() for e in entries)


def test_fingerprint_depends_on_content():
    x = torch.randn(20, 4)
    y = x.clone()
    assert S.activations_fingerprint(x) == S.activations_fingerprint(y)
    y[3, 2] += 1e-6
    assert S.activations_fingerprint(x) != S.activations_fingerprint(y)
    assert S.activations_fingerprint(x) == S.activations_fingerprint(x.numpy())


def test_normalize_folding_is_exact():
    """Training on scaled data: the returned SAE reads raw activations (scale folded back)."""
    x, _ = planted(4000, 8, 16, 2, seed=4)
    big = 1000.0 * x
    a, ha = S.train_sae(x, d_sae=16, k=2, n_steps=60, batch_size=128, seed=0, b_dec_init="mean")
    b, hb = S.train_sae(big, d_sae=16, k=2, n_steps=60, batch_size=128, seed=0, b_dec_init="mean")
    assert hb["scale"] == pytest.approx(ha["scale"] / 1000.0, rel=1e-4)
    assert hb["final_ev"] == pytest.approx(ha["final_ev"], abs=1e-3)
    torch.testing.assert_close(b.b_dec / 1000.0, a.b_dec, atol=1e-3, rtol=1e-3)
