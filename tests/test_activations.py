"""collect_activations: only requested hooks, padding dropped, batching invariant, bad names."""

import pytest
import torch

from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.models.activations import collect_activations, resid_sites, validate_sites
from polyrot_utils.tasks.dyck.toy import build_toy

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return build_toy(0, init_scale=0.1)


@pytest.fixture(scope="module")
def split():
    return dyck.make_split(dyck.DyckConfig(n_train=50, n_heldout=10, n_ood=10, max_len=16), "train")


def test_resid_sites(model):
    sites = resid_sites(model)
    assert sites == [f"blocks.{l}.hook_resid_{k}" for l in range(2) for k in ("pre", "mid", "post")] + [
        "unembed.hook_in"
    ]
    assert "unembed.hook_in" not in resid_sites(model, include_final=False)


def test_final_site_is_the_full_norm_output_and_early_sites_stop_early(model, split):
    acts = collect_activations(model, split.tokens, ["unembed.hook_in", "blocks.0.hook_resid_pre"], mask=split.mask)
    with torch.no_grad():
        _, cache = model.run_with_cache(split.tokens)
    expected = model.ln_final(cache["blocks.1.hook_resid_post"])[split.mask]
    torch.testing.assert_close(acts["unembed.hook_in"], expected, rtol=1e-5, atol=1e-5)
    calls = []
    handle = model.blocks[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        collect_activations(model, split.tokens, ["blocks.0.hook_resid_post"], mask=split.mask)
    finally:
        handle.remove()
    assert not calls, "a site in block 0 must not run block 1"


def test_matches_run_with_cache_and_drops_padding(model, split):
    sites = ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_post", "blocks.0.attn.hook_z"]
    acts = collect_activations(model, split.tokens, sites, batch_size=7, mask=split.mask)
    n_valid = int(split.mask.sum())
    with torch.no_grad():
        _, cache = model.run_with_cache(split.tokens, names_filter=lambda n: n in sites)
    for s in sites:
        ref = cache[s][split.mask].reshape(n_valid, -1)
        assert acts[s].shape == ref.shape and acts[s].dtype == torch.float32
        assert torch.allclose(acts[s], ref, atol=1e-5)
    assert acts["blocks.0.attn.hook_z"].shape == (n_valid, 64)
    # no mask: every position; batch size does not matter
    full = collect_activations(model, split.tokens, "blocks.0.hook_resid_pre", batch_size=50)
    assert full["blocks.0.hook_resid_pre"].shape == (split.tokens.numel(), 64)
    other = collect_activations(model, split.tokens, ["blocks.0.hook_resid_pre"], batch_size=3)
    assert torch.allclose(full["blocks.0.hook_resid_pre"], other["blocks.0.hook_resid_pre"])


def test_only_requested_hooks_run(model, split):
    calls = []
    orig = model.run_with_hooks

    def spy(*args, fwd_hooks=(), **kw):
        calls.append([name for name, _ in fwd_hooks])
        return orig(*args, fwd_hooks=fwd_hooks, **kw)

    model.run_with_hooks = spy
    try:
        collect_activations(model, split.tokens, ["blocks.1.hook_resid_pre"], batch_size=25)
    finally:
        del model.run_with_hooks
    assert calls == [["blocks.1.hook_resid_pre"]] * 2
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())  # hooks removed afterwards


def test_bad_input(model, split):
    with pytest.raises(KeyError, match="valid names"):
        collect_activations(model, split.tokens, ["blocks.9.hook_resid_pre"])
    with pytest.raises(ValueError, match="at least one"):
        validate_sites(model, [])
    with pytest.raises(ValueError, match="mask"):
        collect_activations(model, split.tokens, ["hook_embed"], mask=split.mask[:, :-1])
    with pytest.raises(ValueError, match=r"\(n, T\)"):
        collect_activations(model, split.tokens[0], ["hook_embed"])
