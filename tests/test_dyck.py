"""Dyck-3 dataset invariants of the ``stack`` stress variant: balanced words are balanced, labels match the
plain-python spec. (The paper's task, the default, is tested in test_dyck_paper.py.)"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.tasks.dyck import language as dyck


def _content(row, length):
    return row[1 : 1 + length]


def test_valid_strings_are_balanced_and_corrupt_are_not():
    cfg = dyck.DyckConfig(n_train=3000, n_heldout=300, n_ood=300, max_depth=5, task="stack")
    sp = dyck.make_split(cfg, "train")
    toks, lens, kind = sp.tokens.numpy(), sp.lengths.numpy(), sp.kind.numpy()
    assert set(np.unique(kind)) == {0, 1, 2}
    for row, L, k in zip(toks, lens, kind):
        assert row[0] == dyck.BOS and row[L + 1] == dyck.EOS and (row[L + 2 :] == dyck.PAD).all()
        c = _content(row, L)
        assert set(c.tolist()) <= set(dyck.BRACKETS)
        if k == 0:
            assert L % 2 == 0 and dyck.is_balanced(c, max_depth=5)
        if k == 1:
            assert not dyck.is_balanced(c)
    # valid strings never flagged, corrupt strings always flagged by EOS
    eos = sp.tokens == dyck.EOS
    final_flag = sp.labels["invalid"][eos]
    assert (final_flag[sp.kind == 0] == 0).all()
    assert (final_flag[sp.kind == 1] == 1).all()
    valid_rows = (sp.kind == 0).unsqueeze(1) & sp.mask
    assert int(sp.labels["depth"][valid_rows].max()) == 5  # max_depth bounds (and is reached by) valid words


def test_lengths_and_splits():
    cfg = dyck.DyckConfig(min_len=4, max_len=12, ood_min_len=20, ood_max_len=30, n_train=2000, n_heldout=500, n_ood=400,
                          task="stack")
    ds = dyck.make_dataset(cfg)
    for name in ("train", "heldout"):
        L = ds[name].lengths
        assert int(L.min()) >= 4 and int(L.max()) <= 12
    assert int(ds["ood"].lengths.min()) >= 20 and int(ds["ood"].lengths.max()) <= 30
    assert len(ds["ood"]) == 400
    train_rows = {r.numpy().tobytes() for r in ds["train"].tokens}
    assert not any(r.numpy().tobytes() in train_rows for r in ds["heldout"].tokens)
    # deterministic
    again = dyck.make_split(dyck.with_overrides(cfg, n_train=2000), "train")
    assert torch.equal(again.tokens, ds["train"].tokens)
    other = dyck.make_split(dyck.with_overrides(cfg, seed=1), "train")
    assert not torch.equal(other.tokens, ds["train"].tokens)


@pytest.mark.parametrize("mode", dyck.DEPTH_AFTER_INVALID)
def test_vectorised_labels_match_reference(mode):
    cfg = dyck.DyckConfig(n_train=800, n_heldout=10, n_ood=10, depth_after_invalid=mode, task="stack")
    sp = dyck.make_split(cfg, "train")
    for i in range(len(sp)):
        ref = dyck.label_reference(sp.tokens[i].tolist(), mode)
        for k in dyck.READOUT_SIZES:
            assert sp.labels[k][i].tolist() == ref[k], (k, dyck.decode(sp.tokens[i]))


@settings(deadline=None, max_examples=60)
@given(st.lists(st.lists(st.sampled_from([3, 4, 5, 6, 7, 8]), min_size=0, max_size=20), min_size=1, max_size=6),
       st.sampled_from(dyck.DEPTH_AFTER_INVALID))
def test_labels_property_arbitrary_strings(contents, mode):
    T = 23
    toks = np.zeros((len(contents), T), dtype=np.int64)
    for i, c in enumerate(contents):
        seq = [dyck.BOS, *c, dyck.EOS]
        toks[i, : len(seq)] = seq
    lab = dyck.label_tokens(toks, mode)
    for i in range(len(contents)):
        ref = dyck.label_reference(toks[i].tolist(), mode)
        for k in dyck.READOUT_SIZES:
            assert lab[k][i].tolist() == ref[k]
        # sticky flag never goes back to 0
        inv = lab["invalid"][i][lab["mask"][i]]
        assert (np.diff(inv) >= 0).all()
        assert inv[-1] == (0 if dyck.is_balanced(contents[i]) else 1)


def test_known_labels():
    toks = dyck.encode("^([)]$")
    ref = dyck.label_reference(toks)
    assert ref["depth"] == [0, 1, 2, 2, 2, 2]
    assert ref["invalid"] == [0, 0, 0, 1, 1, 1]
    assert dyck.label_reference(toks, "ignore")["depth"] == [0, 1, 2, -1, -1, -1]
    deep = dyck.encode("^" + "(" * 9 + ")" * 9 + "$")
    r = dyck.label_reference(deep)
    assert max(r["depth"]) == 8 and r["invalid"][9] == 1 and r["invalid"][8] == 0
    assert dyck.label_reference(dyck.encode("^(($"))["invalid"] == [0, 0, 0, 1]
    assert dyck.decode(dyck.encode("^{}_")) == "^{}"


def test_bad_input():
    with pytest.raises(ValueError, match="max_len"):
        dyck.DyckConfig(max_len=70)
    with pytest.raises(ValueError, match="depth_after_invalid"):
        dyck.DyckConfig(depth_after_invalid="clamp")
    with pytest.raises(ValueError, match="which"):
        dyck.make_split(dyck.DyckConfig(), "test")
    with pytest.raises(ValueError, match="2-D"):
        dyck.label_tokens(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="text"):
        dyck.encode("(a)")
    with pytest.raises(ValueError, match="task"):
        dyck.DyckConfig(task="dyck")
    with pytest.raises(ValueError, match="which"):
        dyck.make_split(dyck.DyckConfig(task="stack"), "compositional")
    with pytest.raises(ValueError, match="unknown DyckConfig"):
        dyck.with_overrides(dyck.DyckConfig(), nope=1)


def test_batches_trim_padding():
    sp = dyck.make_split(dyck.DyckConfig(n_train=100, n_heldout=10, n_ood=10), "train")
    total = 0
    for b in sp.batches(32):
        assert b.mask[:, -1].any()
        total += int(b.mask.sum())
    assert total == int(sp.mask.sum())
