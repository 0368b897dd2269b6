"""Tests for the offline stand-ins: corpus split, tokenizer, training, caching, the suite."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from polyrot_utils.core.schedule import checkpoint_steps
from polyrot_utils.models import corpus
from polyrot_utils.models.neox import (
    StandinConfig,
    SuiteConfig,
    evaluate_loss,
    heldout_tokens,
    pairwise_output_agreement,
    standin_checkpoints,
    standin_suite,
    train_standin,
)
from polyrot_utils.models.tokenizer import (
    TokenizerConfig,
    encode_corpus,
    load_tokenizer,
    token_byte_lengths,
    train_tokenizer,
)

torch.set_num_threads(1)

TINY = dict(d_model=32, n_layers=2, n_heads=2, d_mlp=64, n_ctx=32, vocab_size=512, batch_size=8, n_steps=12, lr=5e-3, train_fraction=0.2)


@pytest.fixture(scope="module", autouse=True)
def temp_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("POLYROT_CACHE", str(tmp_path_factory.mktemp("polyrot_cache")))
    yield
    mp.undo()


def test_corpus_split_deterministic_and_disjoint():
    a, b = corpus.split_corpus(0.1, seed=3), corpus.split_corpus(0.1, seed=3)
    assert a == b
    assert not set(a.train_ids) & set(a.heldout_ids)
    assert set(a.train_ids) | set(a.heldout_ids) == set(corpus.speech_ids())
    assert len(a.heldout_ids) == round(0.1 * len(corpus.speech_ids()))
    assert corpus.split_corpus(0.1, seed=4).heldout_ids != a.heldout_ids
    info = corpus.corpus_info()
    assert info["n_speeches"] == 249 and 11e6 < info["n_bytes"] < 14e6 and "MIT" in info["licence"]
    with pytest.raises(ValueError, match="heldout_fraction"):
        corpus.split_corpus(1.5)


def test_tokenizer_round_trip_and_bytes():
    cfg = TokenizerConfig(vocab_size=512, train_fraction=0.2)
    path = train_tokenizer(cfg)
    assert train_tokenizer(cfg) == path  # cached
    tok = load_tokenizer(path)
    assert len(tok) == 512 and tok.eos_token_id == 0 and tok.pad_token_id == 1
    text = "Fellow-Citizens of the Senate — the Union is strong; café 1790!\n\nNew line."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    lengths = token_byte_lengths(tok)
    assert lengths[ids].sum() == len(text.encode("utf-8"))
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(path))(text, add_special_tokens=False)["input_ids"] == ids
    streams = encode_corpus(cfg)
    assert streams["train"].dtype == torch.int64 and int(streams["train"].max()) < 512
    assert (streams["heldout"] == 0).sum() == len(corpus.split_corpus(0.1, 0).heldout_ids)


def test_checkpoint_schedule():
    assert checkpoint_steps(16, n_even=4) == [0, 1, 2, 4, 8, 12, 16]
    assert checkpoint_steps(0) == [0]


def test_train_loss_decreases_and_cache_hit():
    from polyrot_utils.models.loading import load_model

    cfg = StandinConfig(seed=1, **TINY)
    run = train_standin(cfg)
    log = json.loads((run / "train_log.json").read_text())
    assert len(log["loss"]) == cfg.n_steps
    assert np.mean(log["loss"][-3:]) < log["loss"][0] - 0.5
    ckpts = standin_checkpoints(cfg)
    assert sorted(ckpts) == checkpoint_steps(cfg.n_steps)
    t0 = time.perf_counter()
    assert train_standin(cfg) == run  # cache hit: no training
    assert time.perf_counter() - t0 < 1.0
    tok = load_tokenizer(ckpts[cfg.n_steps])
    held = heldout_tokens(cfg.tokenizer_config, n_seqs=8, seq_len=cfg.n_ctx)
    first = load_model(run, revision="step0")
    last = load_model(run, revision=f"step{cfg.n_steps}")
    assert last.tokenizer is not None
    l0 = evaluate_loss(first, held, byte_lengths=token_byte_lengths(tok))
    l1 = evaluate_loss(last, held, byte_lengths=token_byte_lengths(tok))
    assert l1["nats_per_token"] < l0["nats_per_token"] - 0.3
    assert 0 < l1["bits_per_byte"] < l0["bits_per_byte"]
    # the same weights through transformers' own forward
    from transformers import GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM.from_pretrained(str(ckpts[cfg.n_steps])).eval()
    with torch.no_grad():
        torch.testing.assert_close(last(held).log_softmax(-1), hf(held).logits.log_softmax(-1), atol=1e-4, rtol=0)


def test_seeds_differ_only_by_seed_and_controls():
    suite = standin_suite(SuiteConfig(base=StandinConfig(**TINY), n_seeds=2, n_heldout_seqs=8, device="cpu"))
    assert list(suite.models) == ["seed1", "seed2"] and set(suite.controls) == {"untrained", "shuffled"}
    assert suite.heldout_tokens.shape == (8, TINY["n_ctx"])
    c1, c2 = suite.configs["seed1"], suite.configs["seed2"]
    assert {k for k in c1.key() if c1.key()[k] != c2.key()[k]} == {"seed"}
    w1 = suite.models["seed1"].W_E
    assert not torch.allclose(w1, suite.models["seed2"].W_E)
    # the untrained control is seed1's init, i.e. seed1's step-0 checkpoint
    from polyrot_utils.models.loading import load_model

    path, rev = suite.checkpoints["seed1"][0]
    torch.testing.assert_close(load_model(path, revision=rev).W_E, suite.controls["untrained"].W_E)
    agree = pairwise_output_agreement(suite.models, suite.heldout_tokens)
    assert agree["kl"].shape == (2, 2) and np.all(np.diag(agree["kl"]) == 0) and np.all(agree["kl"][~np.eye(2, dtype=bool)] > 0)
    assert np.all(np.diag(agree["top1"]) == 1)


def test_checkpoint_losses_standin():
    from polyrot_utils.models.neox import checkpoint_losses

    suite = standin_suite(SuiteConfig(base=StandinConfig(**TINY), n_seeds=1, n_heldout_seqs=4, controls=False, device="cpu"))
    curves = checkpoint_losses(suite, n_seqs=4)
    rows = curves["seed1"]
    assert [r["step"] for r in rows] == checkpoint_steps(TINY["n_steps"])
    assert rows[-1]["tokens"] == TINY["n_steps"] * TINY["batch_size"] * TINY["n_ctx"]
    assert rows[-1]["nats_per_token"] < rows[0]["nats_per_token"]


def test_hub_suite_from_fake_cache(tmp_path, monkeypatch):
    """use_hub=True goes through load_model's HF-cache path; nothing is downloaded."""
    import shutil

    from polyrot_utils.models.neox import build_standin, checkpoint_losses

    tok_dir = train_tokenizer(TokenizerConfig(vocab_size=512, train_fraction=0.2))
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    for i in (1, 2):
        repo = tmp_path / "hub" / f"models--EleutherAI--pythia-70m-seed{i}"
        snap = repo / "snapshots" / commit
        build_standin(StandinConfig(seed=i, **TINY)).save_pretrained(str(snap))
        for f in tok_dir.glob("tokenizer*.json"):
            shutil.copy(f, snap / f.name)
        (repo / "refs").mkdir(parents=True)
        for ref in ("main", "step0"):
            (repo / "refs" / ref).write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = standin_suite(SuiteConfig(use_hub=True, n_seeds=2, n_heldout_seqs=4, heldout_seq_len=32, device="cpu"))
    assert list(suite.models) == ["seed1", "seed2"] and list(suite.controls) == ["untrained"]
    assert suite.heldout_tokens.shape == (4, 32) and int(suite.heldout_tokens.max()) < 512
    assert len(suite.checkpoints["seed1"]) == 154
    curves = checkpoint_losses(suite, n_seqs=2, steps=[0])
    assert curves["seed2"][0]["step"] == 0 and curves["seed2"][0]["tokens"] == 0
    from polyrot_utils.models.loading import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="step1000"):
        checkpoint_losses(suite, n_seqs=2, steps=[1000])
    with pytest.warns(UserWarning, match="step1000"):
        assert [r["step"] for r in checkpoint_losses(suite, n_seqs=2, steps=[0, 1000], skip_missing=True)["seed1"]] == [0]
