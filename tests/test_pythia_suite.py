"""Tests for the Pythia rung's glue (polyrot_utils.tasks.pythia.suite) and the generic tables it feeds
(analysis.map_ev_table)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.book import runner as book
from polyrot_utils.core import haar
from polyrot_utils.experiments import analysis
from polyrot_utils.models.activations import collect_activations
from polyrot_utils.models.neox import StandinConfig, SuiteConfig, standin_suite
from polyrot_utils.tasks.pythia.suite import (
    TEXT_CONTRASTS,
    checkpoint_activations,
    contrast_masks,
    distinctive_next_tokens,
    next_token_set_behaviour,
    pythia_activations,
    short_site,
    suite_config,
    token_classes,
)

PYTHIA_CHAPTERS = ["21_pythia_universality", "22_pythia_rotation", "23_pythia_haar", "24_pythia_steering",
                   "25_pythia_checkpoints"]
SUITE_PARAMS = ["suite_profile", "suite_overrides", "seed", "device"]
# a tiny suite (trained once, then cached): 2 seeds + 2 controls, a few steps each
TINY = dict(n_seeds=2, d_model=16, n_layers=1, n_heads=2, d_mlp=32, n_ctx=16, vocab_size=512, batch_size=4, n_steps=3,
            train_fraction=0.05, n_heldout_seqs=4, device="cpu")


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("stem", PYTHIA_CHAPTERS)
def test_suite_parameters_match_chapter_20(stem):
    """Every Pythia chapter declares chapter 20's suite parameters with the same defaults, so all
    of them hit the same cached models."""
    ref = book.declared_parameters("20_pythia_seeds")
    mine = book.declared_parameters(stem)
    for name in SUITE_PARAMS:
        assert name in mine, f"{stem} lacks suite parameter {name}"
        assert mine[name] == ref[name], f"{stem}: {name} = {mine[name]!r}, chapter 20 has {ref[name]!r}"


def test_chapters_21_22_share_sae_settings():
    """Chapter 22 reuses chapter 21's cached SAEs only if batches and SAE settings agree."""
    a, b = book.declared_parameters("21_pythia_universality"), book.declared_parameters("22_pythia_rotation")
    shared = ["anchor", "n_fit_seqs", "n_eval_seqs", "skip_positions", "sae_expansion", "sae_k", "sae_n_tokens", "sae_batch_size"]
    assert {k: a[k] for k in shared} == {k: b[k] for k in shared}
    for profile in ("smoke", "quick", "paper"):
        prof = book.load_profile(profile)["notebooks"]
        sa, sb = prof.get("21_pythia_universality", {}), prof.get("22_pythia_rotation", {})
        assert {k: sa.get(k) for k in shared + SUITE_PARAMS} == {k: sb.get(k) for k in shared + SUITE_PARAMS}, profile


def test_suite_config_is_chapter_20s():
    """The quick profile is SUITE_DEFAULTS (the stand-ins chapter 20 trains by default); a profile
    sets only what differs; an override wins over the profile."""
    from polyrot_utils.tasks.pythia.suite import (
        SUITE_DEFAULTS,
        SUITE_PROFILES,
        suite_from_parameters,
    )

    p = book.declared_parameters("20_pythia_seeds")
    cfg = suite_from_parameters(p["suite_profile"], p["suite_overrides"], seed=p["seed"], device=p["device"])
    d = SUITE_DEFAULTS
    base = StandinConfig(d_model=d["d_model"], n_layers=d["n_layers"], n_heads=d["n_heads"], d_mlp=d["d_mlp"],
                         n_ctx=d["n_ctx"], vocab_size=d["vocab_size"], batch_size=d["batch_size"], n_steps=d["n_steps"],
                         lr=d["lr"], train_fraction=d["train_fraction"])
    expected = SuiteConfig(base=base, n_seeds=d["n_seeds"], seed_offset=p["seed"], n_heldout_seqs=d["n_heldout_seqs"],
                           use_hub=False, model_names=(), revision=None, allow_download=False, device=p["device"])
    assert cfg == expected
    assert cfg.base.key() == expected.base.key()
    for name, prof in SUITE_PROFILES.items():
        assert all(d[k] != v for k, v in prof.items()), f"profile {name} repeats a default"
    assert suite_config("paper").base.d_model == 512 and suite_config("paper", d_model=256).base.d_model == 256
    assert suite_config("hub").use_hub


@pytest.mark.parametrize("overrides, match", [({"d_modle": 3}, "d_modle"), ({"seed": 3}, "chapter's own"),
                                              ([1], "mapping")])
def test_suite_overrides_refused_by_name(overrides, match):
    from polyrot_utils.tasks.pythia.suite import suite_from_parameters

    with pytest.raises(ValueError, match=match):
        suite_from_parameters("quick", overrides, seed=0, device="cpu")
    with pytest.raises(ValueError, match="profile"):
        suite_config("huge")


def test_suite_overrides_refused_by_the_runner_before_any_kernel():
    with pytest.raises(book.BookError, match="suite_overrides.*d_modle"):
        book.check_parameters("22_pythia_rotation", {"suite_overrides": {"d_modle": 3}}, "command line")


def test_short_site():
    assert short_site("blocks.3.hook_resid_post") == "b3.resid_post"
    assert short_site("unembed.hook_in") == "final"  # one name for the final site on both rungs


# ----------------------------------------------------------------------------- text contrasts
class FakeTokenizer:
    def __init__(self, pieces):
        self.pieces = pieces

    def __len__(self):
        return len(self.pieces)

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


PIECES = ["<eos>", " the", " of", ".", " ?", "12", " 1990", " nation", " The", "The", " war", ",", " x1", " ."]


def test_token_classes():
    c = token_classes(FakeTokenizer(PIECES), len(PIECES) + 2)  # ids beyond the tokenizer: all False
    assert np.flatnonzero(c["the"]).tolist() == [1]
    assert np.flatnonzero(c["of"]).tolist() == [2]
    assert np.flatnonzero(c["sentence_end"]).tolist() == [3, 4, 13]
    assert np.flatnonzero(c["number"]).tolist() == [5, 6]
    assert np.flatnonzero(c["word"]).tolist() == [1, 2, 7, 10]  # " The" is capitalised, " x1" has a digit
    assert all(v.shape == (len(PIECES) + 2,) for v in c.values())
    with pytest.raises(ValueError, match="vocab_size"):
        token_classes(FakeTokenizer(PIECES), 0)


def test_contrast_masks():
    c = token_classes(FakeTokenizer(PIECES), len(PIECES))
    toks = torch.tensor([[1, 7, 2, 1, 10], [3, 8, 5, 2, 7]])
    a, b = contrast_masks(toks, c, "the_vs_of")
    assert a.tolist() == [[True, False, False, True, False], [False] * 5]
    assert b.tolist() == [[False, False, True, False, False], [False, False, False, True, False]]
    a, b = contrast_masks(toks, c, "number_vs_word")
    assert a[1, 2] and a.sum() == 1
    with pytest.raises(ValueError, match="contrast"):
        contrast_masks(toks, c, "nope")
    with pytest.raises(ValueError, match="outside"):
        contrast_masks(torch.tensor([[99]]), c, "the_vs_of")
    assert set(TEXT_CONTRASTS) == {"the_vs_of", "sentence_end_vs_word", "number_vs_word"}


def test_distinctive_next_tokens_planted():
    # after token 1 comes 5 (or 6), after token 2 comes 7: S_A must start with 5, S_B with 7
    toks = torch.tensor([[1, 5, 2, 7, 1, 5, 2, 7, 1, 6], [2, 7, 1, 5, 2, 7, 0, 0, 1, 5]])
    a, b = toks == 1, toks == 2
    sa, sb = distinctive_next_tokens(toks, a, b, k=3, vocab_size=10)
    assert sa[0] == 5 and set(sa) == {5, 6}
    assert sb == [7]
    with pytest.raises(ValueError, match="mask_a"):
        distinctive_next_tokens(toks, toks == 9, b)


@settings(deadline=None, max_examples=20)
@given(st.integers(0, 2**31 - 1))
def test_next_token_set_behaviour_is_log_prob_difference(s):
    g = torch.Generator().manual_seed(s)
    logits = torch.randn(2, 5, 11, generator=g) * 3
    mask = torch.rand(2, 5, generator=g) > 0.3
    if not mask.any():
        mask[0, 0] = True
    sa, sb = [1, 4], [2, 3, 9]
    got = next_token_set_behaviour(sa, sb, mask)(logits)
    p = torch.softmax(logits.double(), -1)
    want = (p[..., sa].sum(-1).log() - p[..., sb].sum(-1).log())[mask]
    assert torch.allclose(got.double(), want, atol=1e-4)
    with pytest.raises(ValueError):
        next_token_set_behaviour([], sb)


# ----------------------------------------------------------------------------- activations on a tiny suite
@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    cfg = suite_config(**TINY)
    return standin_suite(cfg), cfg


def test_pythia_activations_paired_and_disjoint(tiny):
    suite, cfg = tiny
    acts = pythia_activations(suite, cfg, n_fit_seqs=6, n_eval_seqs=4)
    assert acts.members == ["seed1", "seed2"]
    assert set(acts.fit) == {"seed1", "seed2", "control:untrained", "control:shuffled"}
    T = acts.fit_tokens.shape[1]
    assert acts.fit_tokens.shape == (6, T) and acts.eval_tokens.shape == (4, T)
    # fit and eval windows are different text
    assert not any(torch.equal(f, e) for f in acts.fit_tokens for e in acts.eval_tokens)
    for m in acts.fit:
        for s in acts.sites:
            assert acts.fit[m][s].shape == (6 * T, 16) and acts.eval[m][s].shape == (4 * T, 16)
    # rows are the model's activations on exactly these tokens, in (sequence, position) order
    direct = collect_activations(suite.models["seed2"], acts.eval_tokens, acts.sites)
    for s in acts.sites:
        assert torch.equal(direct[s], acts.eval["seed2"][s])
    skipped = pythia_activations(suite, cfg, n_fit_seqs=6, n_eval_seqs=4, controls=(), skip_positions=2)
    s0 = acts.sites[1]
    assert torch.equal(skipped.fit["seed1"][s0], acts.fit["seed1"][s0].view(6, T, -1)[:, 2:].reshape(-1, 16))
    with pytest.raises(KeyError, match="controls"):
        pythia_activations(suite, cfg, n_fit_seqs=2, n_eval_seqs=2, controls=("nope",))
    with pytest.raises(ValueError, match="skip_positions"):
        pythia_activations(suite, cfg, n_fit_seqs=2, n_eval_seqs=2, controls=(), skip_positions=T)


def test_checkpoint_activations(tiny):
    suite, cfg = tiny
    acts = pythia_activations(suite, cfg, n_fit_seqs=3, n_eval_seqs=2, controls=())
    steps = sorted(suite.checkpoints["seed1"])
    fit, ev = checkpoint_activations(suite, "seed1", acts.fit_tokens, acts.eval_tokens, acts.sites,
                                     steps=[steps[0], steps[-1]], device="cpu")
    assert sorted(fit) == [steps[0], steps[-1]]
    # the final checkpoint is the suite's final model
    for s in acts.sites:
        assert torch.allclose(fit[steps[-1]][s], acts.fit["seed1"][s], atol=1e-5)
        assert ev[steps[0]][s].shape == acts.eval["seed1"][s].shape
    with pytest.raises(KeyError, match="no checkpoints"):
        checkpoint_activations(suite, "seed1", acts.fit_tokens, acts.eval_tokens, acts.sites, steps=[10**6])
    with pytest.raises(KeyError, match="seed_name"):
        checkpoint_activations(suite, "seed9", acts.fit_tokens, acts.eval_tokens, acts.sites)


def test_map_ev_table_planted():
    g = np.random.default_rng(0)
    d, n = 12, 400
    Q = haar.sample_haar(d, rng=g)
    src = torch.as_tensor(g.normal(size=(2 * n, d)) * np.linspace(0.5, 3, d), dtype=torch.float32)
    tgt = 2.5 * src @ torch.as_tensor(Q, dtype=torch.float32) + 1.0
    fit = {"a": {"s": src[:n]}, "b": {"s": tgt[:n]}}
    ev = {"a": {"s": src[n:]}, "b": {"s": tgt[n:]}}
    rows = analysis.map_ev_table(fit, ev, [("a", "b")], ["s"], methods=("identity", "rotation", "rotation_scaled", "affine"))
    by = {r["method"]: r for r in rows}
    assert by["rotation_scaled"]["map_ev"] > 0.9999 and by["affine"]["map_ev"] > 0.9999
    assert by["rotation_scaled"]["scale"] == pytest.approx(2.5, rel=1e-4)
    assert by["rotation"]["map_ev"] < by["rotation_scaled"]["map_ev"] - 0.1  # a rotation cannot rescale
    assert by["identity"]["map_ev"] < 0.5
    with pytest.raises(ValueError, match="methods"):
        analysis.map_ev_table(fit, ev, [("a", "b")], ["s"], methods=("nope",))
