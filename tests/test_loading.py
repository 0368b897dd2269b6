"""Tests for polyrot_utils.models.loading: local directories, a fake HF cache, offline failure, sites."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from polyrot_utils.models.loading import (
    PYTHIA_REVISIONS,
    ModelNotAvailableError,
    check_pair,
    load_model,
    pythia_sites,
    validate_revision,
)

torch.set_num_threads(1)


def _tiny_hf(seed: int = 0, d: int = 32, vocab: int = 128):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=d,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=4 * d,
        rotary_pct=0.25,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        max_position_embeddings=64,
        hidden_act="gelu",
        architectures=["GPTNeoXForCausalLM"],
    )
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(cfg).eval()
    with torch.no_grad():  # make LayerNorm gains/biases non-trivial so processing modes differ
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "neox"
    _tiny_hf().save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 128, (3, 40), generator=torch.Generator().manual_seed(1))


def _hf_forward(path: Path, tokens: torch.Tensor):
    from transformers import GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    with torch.no_grad():
        return hf(tokens, output_hidden_states=True)


def test_local_dir_matches_transformers(tiny_dir, tokens):
    out = _hf_forward(tiny_dir, tokens)
    model = load_model(tiny_dir, device="cpu")
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits.log_softmax(-1), out.logits.log_softmax(-1), atol=1e-4, rtol=0)
    sites = pythia_sites(model)
    assert sites == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "unembed.hook_in",
    ]
    # layer-0 input, layer-1 input (= layer-0 output) and the final LayerNorm's output are HF's
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], out.hidden_states[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], out.hidden_states[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["unembed.hook_in"], out.hidden_states[-1], atol=1e-5, rtol=0)


def test_processing_modes(tiny_dir, tokens):
    ref = load_model(tiny_dir, processing="none", device="cpu")
    with torch.no_grad():
        l0, c0 = ref.run_with_cache(tokens)
        for mode in ("fold_ln", "tl_default"):
            m = load_model(tiny_dir, processing=mode, device="cpu")
            l1, c1 = m.run_with_cache(tokens)
            torch.testing.assert_close(l1.log_softmax(-1), l0.log_softmax(-1), atol=1e-4, rtol=0)
            same_resid = torch.allclose(c1["blocks.1.hook_resid_post"], c0["blocks.1.hook_resid_post"], atol=1e-5)
            # fold_ln keeps the residual basis; tl_default (center_writing_weights) does not
            assert same_resid == (mode == "fold_ln")
    with pytest.raises(ValueError, match="processing"):
        load_model(tiny_dir, processing="fold")


def test_hooks_read_and_steer(tiny_dir, tokens):
    model = load_model(tiny_dir, device="cpu")
    seen = {}
    site = "blocks.0.hook_resid_post"

    def grab(act, hook):
        seen[hook.name] = act.detach().clone()

    with torch.no_grad():
        base = model(tokens)
        model.run_with_hooks(tokens, fwd_hooks=[(s, grab) for s in pythia_sites(model)])
        assert set(seen) == set(pythia_sites(model)) and seen[site].shape == (3, 40, 32)
        v = torch.randn(32)

        def add(act, hook):
            return act + 3.0 * v

        steered = model.run_with_hooks(tokens, fwd_hooks=[(site, add)])
        again = {}
        model.run_with_hooks(tokens, fwd_hooks=[(site, add), ("blocks.1.hook_resid_pre", lambda a, hook: again.setdefault("x", a.clone()))])
    assert not torch.allclose(steered, base)
    torch.testing.assert_close(again["x"], seen[site] + 3.0 * v)
    assert not model.hook_dict[site].fwd_hooks  # run_with_hooks removes its hooks


def _fake_cache(root: Path, tiny_dir: Path, name: str = "EleutherAI/pythia-70m-seed1", ref: str = "main") -> Path:
    repo = root / "hub" / ("models--" + name.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / commit
    shutil.copytree(tiny_dir, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / ref).write_text(commit)
    return snap


def test_hub_name_from_fake_cache(tiny_dir, tokens, tmp_path, monkeypatch):
    snap = _fake_cache(tmp_path, tiny_dir)
    (snap.parent.parent / "refs" / "step3000").write_text(snap.name)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model("EleutherAI/pythia-70m-seed1", device="cpu")
    assert model.polyrot_source["path"] == str(snap)
    out = _hf_forward(tiny_dir, tokens)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).log_softmax(-1), out.logits.log_softmax(-1), atol=1e-4, rtol=0)
    assert load_model("EleutherAI/pythia-70m-seed1", revision="step3000").cfg.d_model == 32
    with pytest.raises(ModelNotAvailableError, match="step4000"):
        load_model("EleutherAI/pythia-70m-seed1", revision="step4000")


def test_hub_absent_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("EleutherAI/pythia-70m-seed3", revision="step143000")
    assert time.perf_counter() - t0 < 10
    msg = str(err.value)
    for part in ("EleutherAI/pythia-70m-seed3", "offline", "not", "huggingface-cli download", "local directory", "stand-in"):
        assert part in msg, part
    # allow_download with HF_HUB_OFFLINE set still fails at once, saying why
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        load_model("EleutherAI/pythia-70m-seed3", allow_download=True)


def test_hub_absent_fails_fast_without_offline_env(tmp_path):
    """No HF_HUB_OFFLINE and a (possibly) unreachable network: the default path never touches it."""
    code = (
        "import time\n"
        "from polyrot_utils.models.loading import load_model, ModelNotAvailableError\n"
        "t = time.perf_counter()\n"
        "try:\n    load_model('EleutherAI/pythia-70m-seed2')\nexcept ModelNotAvailableError as e:\n"
        "    print('OK', time.perf_counter()-t)\n"
    )
    env = {"HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.startswith("OK"), res.stderr[-2000:]
    assert float(res.stdout.split()[1]) < 10
    assert time.perf_counter() - t0 < 60


def test_revisions_validated():
    assert len(PYTHIA_REVISIONS) == 154
    assert {"step0", "step1", "step512", "step1000", "step143000"} <= set(PYTHIA_REVISIONS)
    for bad in ("step3", "step1500", "step144000", "final", ""):
        with pytest.raises(ValueError, match="revision"):
            validate_revision("EleutherAI/pythia-70m-seed1", bad)
    validate_revision("EleutherAI/pythia-70m-seed1", "step3000")
    validate_revision("EleutherAI/pythia-70m-seed1", "main")
    with pytest.raises(ValueError, match="step1500"):
        load_model("EleutherAI/pythia-70m-seed1", revision="step1500")


def test_local_revision_subdirectory(tiny_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "step8")
    shutil.copytree(tiny_dir, run / "step16")
    assert load_model(run, revision="step8").cfg.n_layers == 2
    assert load_model(run).polyrot_source["path"] == str(run / "step16")  # latest, like "main"
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="step9"):
        load_model(run, revision="step9")


def test_wrong_architecture(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(str(path))
    with pytest.raises(ValueError, match="GPT-NeoX"):
        load_model(path)


def test_check_pair(tiny_dir, tmp_path):
    other = tmp_path / "wide"
    _tiny_hf(d=64).save_pretrained(str(other))
    a, b = load_model(tiny_dir), load_model(other)
    check_pair(a, load_model(tiny_dir))
    with pytest.raises(ValueError, match="d_model"):
        check_pair(a, b)
