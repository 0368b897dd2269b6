"""The paper's Dyck-3 task: vectorised labels equal the plain-python reference, edge cases by hand,
sampler determinism and distribution, the three evaluation sets."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.tasks.dyck import language as dyck, paper_task as dp

CFG = dp.PaperTaskConfig(min_len=2, max_len=12)


def _labels(text: str) -> dict[str, str]:
    lab = dp.label_paper(np.array([dyck.encode(text)]))
    m = lab["mask"][0]
    return {k: "".join(str(int(v)) for v in lab[k][0][m]) for k in ("depth", "invalid")}


def _check_against_reference(tokens: np.ndarray) -> None:
    lab = dp.label_paper(tokens)
    for i, row in enumerate(tokens):
        ref = dp.label_paper_reference(row.tolist())
        for k in ("type", "depth", "invalid"):
            assert lab[k][i].tolist() == ref[k], (k, dyck.decode(row, strip_pad=False))
        assert lab["mask"][i].tolist() == [t != dyck.PAD for t in row.tolist()]


def test_vectorised_labels_match_reference_on_sampled_strings():
    rng = np.random.default_rng(0)
    for cfg in (CFG, dp.PaperTaskConfig(max_len=62)):
        _check_against_reference(dp.sample_tokens(1500, cfg, rng))
        _check_against_reference(dp.compositional_tokens(100, cfg, rng))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=1, max_size=30))
def test_vectorised_labels_match_reference_on_arbitrary_tokens(seq):
    # any ids 0..8 in any order (PAD/BOS/EOS anywhere), not only well-formed strings
    _check_against_reference(np.array([seq, seq[::-1]]))


def test_hand_made_edge_cases():
    # open at depth 8 fails at that token; depth frozen at 8, flag rises there
    assert _labels("^((((((((($") == {"depth": "0123456788" + "8", "invalid": "0000000001" + "1"}
    # close on an empty stack
    assert _labels("^)()$") == {"depth": "00000", "invalid": "01111"}
    # family mismatch: depth frozen at the value before the failing token
    assert _labels("^([)]$") == {"depth": "012222", "invalid": "000111"}
    # unbalanced EOS is NOT a failure (the paper's rule; the "stack" variant flags it)
    assert _labels("^(($") == {"depth": "0122", "invalid": "0000"}
    assert dyck.label_tokens(np.array([dyck.encode("^(($")]))["invalid"][0].tolist() == [0, 0, 0, 1]
    # balanced string
    assert _labels("^([]{})$") == {"depth": "01212100", "invalid": "00000000"}
    # PAD positions: masked, labels 0
    lab = dp.label_paper(np.array([dyck.encode("^(($__")]))
    assert lab["mask"][0].tolist() == [True] * 4 + [False] * 2
    assert lab["depth"][0, 4:].tolist() == [0, 0] and lab["invalid"][0, 4:].tolist() == [0, 0]
    assert lab["type"][0].tolist() == [1, 3, 3, 2, 0, 0]
    # nothing after a failure changes the labels (sticky flag, frozen depth)
    assert _labels("^)((((($") == {"depth": "00000000", "invalid": "01111111"}


def test_sampler_is_deterministic_and_follows_the_recipe():
    a = dp.sample_tokens(4000, CFG, dp.batch_rng(7))
    b = dp.sample_tokens(4000, CFG, dp.batch_rng(7))
    c = dp.sample_tokens(4000, CFG, dp.batch_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    tok, walk = dp.sample_tokens_with_kind(4000, CFG, dp.batch_rng(7))
    assert np.array_equal(tok, a)
    assert 0.45 < walk.mean() < 0.55  # p_valid = 0.5
    lab = dp.label_paper(tok)
    lengths = lab["mask"].sum(1) - 2
    assert lengths.min() == 2 and lengths.max() == 12
    assert (tok[:, 0] == dyck.BOS).all() and (tok[np.arange(len(tok)), lengths + 1] == dyck.EOS).all()
    # random walks never fail (depth capped at 8 by closing, closes always match) but may end unbalanced
    assert (lab["invalid"][walk] == 0).all()
    final_depth = lab["depth"][np.arange(len(tok)), lengths + 1]
    assert (final_depth[walk] > 0).mean() > 0.3
    # open probability 0.55 away from the boundaries
    content = np.where(walk[:, None] & (tok >= 3), tok, 0)
    opens = np.isin(content, dyck.OPENERS).sum()
    assert 0.55 < opens / (content > 0).sum() < 0.7  # forced opens at depth 0 push it above 0.55
    # uniform random strings usually fail
    assert lab["invalid"][~walk].max(1).mean() > 0.8


def test_eval_sets():
    sets = dp.eval_sets(CFG, 512, seed=0)
    assert list(sets) == list(dp.EVAL_SPLITS)
    assert CFG.long_range == (10, 12) and dp.PaperTaskConfig().long_range == (50, 60)
    assert CFG.compositional_depths == (3, 5) and dp.PaperTaskConfig().compositional_depths == (3, 8)
    L = sets["long"].lengths
    assert int(L.min()) >= 10 and int(L.max()) <= 12
    comp = sets["compositional"]
    assert (comp.labels["invalid"] == 0).all()  # balanced, never fails
    eos = comp.tokens == dyck.EOS
    assert (comp.labels["depth"][eos] == 0).all()
    assert int(comp.labels["depth"].max()) == 5 and int(comp.labels["depth"].amax(1).min()) == 3
    assert (comp.lengths >= 11).all()  # filled to max_len (or max_len - 1)
    again = dp.eval_sets(CFG, 512, seed=0)
    assert all(torch.equal(sets[k].tokens, again[k].tokens) for k in sets)
    other = dp.eval_sets(CFG, 512, seed=1)
    assert not torch.equal(sets["train"].tokens, other["train"].tokens)


def test_dyck_config_paper_splits():
    cfg = dyck.DyckConfig(max_len=12, n_train=300, n_heldout=200, n_ood=100)
    assert cfg.task == "paper"
    ds = dyck.make_dataset(cfg)
    assert int(ds["ood"].lengths.min()) >= 10
    assert not torch.equal(ds["train"].tokens[:50], ds["heldout"].tokens[:50])
    sp = ds["heldout"]
    _check_against_reference(sp.tokens.numpy())
    assert set(sp.kind.unique().tolist()) == {0, 2}
    comp = dyck.make_split(cfg, "compositional")
    assert len(comp) == 100 and (comp.labels["invalid"] == 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match="min_len"):
        dp.PaperTaskConfig(min_len=1)
    with pytest.raises(ValueError, match="n_ctx"):
        dp.PaperTaskConfig(max_len=63)
    with pytest.raises(ValueError, match="2-D"):
        dp.label_paper(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="length_range"):
        dp.sample_tokens(4, CFG, np.random.default_rng(0), length_range=(2, 20))
    with pytest.raises(ValueError, match="n must be"):
        dp.eval_sets(CFG, 0)


def test_torch_sampler_and_labeller_match_the_numpy_definitions():
    g = torch.Generator().manual_seed(0)
    tok = dp.sample_tokens_torch(3000, CFG, g)
    lab_t = dp.label_paper_torch(tok)
    lab_n = dp.label_paper(tok.numpy())
    for k in ("type", "depth", "invalid", "mask"):
        assert np.array_equal(lab_t[k].numpy(), lab_n[k]), k
    _check_against_reference(tok.numpy()[:500])
    # same distribution as the numpy sampler (walk share, length range, walks never fail)
    lengths = lab_n["mask"].sum(1) - 2
    assert lengths.min() == 2 and lengths.max() == 12
    failed = lab_n["invalid"].max(1)
    assert 0.4 < (failed == 0).mean() < 0.65
    ref = dp.label_paper(dp.sample_tokens(3000, CFG, np.random.default_rng(0)))["invalid"].max(1)
    assert abs((failed == 0).mean() - (ref == 0).mean()) < 0.05
    rand = np.random.default_rng(1).integers(0, 9, size=(300, 20))
    lt = dp.label_paper_torch(torch.from_numpy(rand))
    assert all(np.array_equal(lt[k].numpy(), dp.label_paper(rand)[k]) for k in ("depth", "invalid"))


class _Oracle(torch.nn.Module):
    """Outputs the reference labeller's labels as one-hot logits, except that on strings of
    content length ``plant_len`` ending in ``)`` it drops the invalid flag at EOS (a planted
    error); counts the strings it corrupted."""

    def __init__(self, plant_len: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.plant_len, self.corrupted = plant_len, 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from polyrot_utils.tasks.dyck.toy import READOUT_SLICES

        n, T = tokens.shape
        out = torch.full((n, T, 51), -10.0)
        for i, row in enumerate(tokens.tolist()):
            ref = dp.label_paper_reference(row)
            content = [t for t in row if t not in (dyck.PAD, dyck.BOS, dyck.EOS)]
            eos = row.index(dyck.EOS)
            plant = len(content) == self.plant_len and content[-1] == dyck.RPAREN
            self.corrupted += plant
            for t in range(T):
                for name, (a, _b) in READOUT_SLICES.items():
                    y = ref[name][t]
                    if plant and name == "invalid" and t == eos:
                        y = 1 - y
                    out[i, t, a + y] = 10.0
        return out


def test_errors_by_length_finds_planted_errors_at_their_length_only():
    from types import SimpleNamespace

    from polyrot_utils.tasks.dyck.cohorts import errors_by_length

    cfg = dp.PaperTaskConfig(min_len=2, max_len=8)
    oracle = _Oracle(plant_len=7)
    rows = errors_by_length({"A": SimpleNamespace(models={0: oracle})}, cfg, lengths=(5, 7), n_per_length=300)
    by_len = {r["length"]: r for r in rows}
    assert by_len[5]["wrong_strings"] == 0
    assert by_len[7]["wrong_strings"] == oracle.corrupted > 0
    assert by_len[7]["string_error_rate"] == oracle.corrupted / 300
    again = errors_by_length({"A": SimpleNamespace(models={0: _Oracle(7)})}, cfg, lengths=(7,), n_per_length=300)
    assert again[0]["wrong_strings"] == by_len[7]["wrong_strings"]  # the same strings every call
    with pytest.raises(ValueError, match="within 2..8"):
        errors_by_length({}, cfg, lengths=(9,))
    with pytest.raises(ValueError, match="n_per_length"):
        errors_by_length({}, cfg, n_per_length=0)
