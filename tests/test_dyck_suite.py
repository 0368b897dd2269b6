"""Tests for polyrot_utils.tasks.dyck.suite: paired, disjoint fit/eval activations and the controls."""

from __future__ import annotations

import pytest
import torch

from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.suite import (
    _pick_strings,
    distinct_resid_sites,
    dyck_activations,
    member_name,
    short_site,
)
from polyrot_utils.tasks.dyck.toy import build_toy

CFG = dyck.DyckConfig(n_train=60, n_heldout=120, n_ood=10, max_len=10, ood_min_len=12, ood_max_len=14, seed=3)


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return {0: build_toy(0), 1: build_toy(1)}


@pytest.fixture(scope="module")
def split():
    return dyck.make_split(CFG, "heldout")


def test_shapes_names_sites(models, split):
    s = dyck_activations(models, split, n_fit=100, n_eval=80, seed=0)
    assert s.members == ["seed0", "seed1"] and member_name(7) == "seed7"
    assert s.sites == distinct_resid_sites(models[0])
    assert "blocks.1.hook_resid_pre" not in s.sites and "blocks.0.hook_resid_pre" in s.sites
    for m in s.members:
        for site in s.sites:
            assert s.fit[m][site].shape == (100, 64) and s.eval[m][site].shape == (80, 64)
            assert s.fit[m][site].dtype == torch.float32
    assert s.info["fit_strings"] > 0 and s.info["eval_strings"] > 0


def test_rows_paired_and_deterministic(models, split):
    a = dyck_activations(models, split, n_fit=64, n_eval=64, seed=5, sites=["blocks.0.hook_resid_pre"])
    b = dyck_activations(models, split, n_fit=64, n_eval=64, seed=5, sites=["blocks.0.hook_resid_pre"])
    site = "blocks.0.hook_resid_pre"
    assert torch.equal(a.fit["seed0"][site], b.fit["seed0"][site])
    c = dyck_activations(models, split, n_fit=64, n_eval=64, seed=6, sites=[site])
    assert not torch.equal(a.fit["seed0"][site], c.fit["seed0"][site])
    # pairing: the same model twice under two names gives identical rows
    same = dyck_activations({"x": models[0], "y": models[0]}, split, n_fit=64, n_eval=64, seed=5, sites=[site])
    assert torch.equal(same.fit["x"][site], same.fit["y"][site])


def test_fit_and_eval_strings_disjoint(split):
    fit_idx, eval_idx = _pick_strings(split, 50, 50, seed=1)
    assert set(fit_idx.tolist()).isdisjoint(eval_idx.tolist())
    counts = split.mask.sum(1)
    assert int(counts[fit_idx].sum()) >= 50 and int(counts[eval_idx].sum()) >= 50
    assert int(counts[fit_idx[:-1]].sum()) < 50  # no more strings than needed


def test_controls(models, split):
    s = dyck_activations(models, split, n_fit=80, n_eval=80, seed=2, controls=("untrained", "rotated"))
    assert set(s.models) == {"seed0", "seed1", "control:untrained", "control:rotated"}
    assert s.controls == ["untrained", "rotated"] and s.control("rotated") == "control:rotated"
    with pytest.raises(KeyError, match="controls"):
        s.control("shuffled")
    assert s.members == ["seed0", "seed1"]
    src, R = s.planted["control:rotated"]
    assert src == "seed0"
    Rt = torch.as_tensor(R, dtype=torch.float32)
    for site in s.sites:
        assert torch.allclose(s.eval["seed0"][site] @ Rt, s.eval["control:rotated"][site], atol=1e-4)
    assert not torch.allclose(s.eval["control:untrained"][s.sites[-1]], s.eval["seed0"][s.sites[-1]])


def test_split_by_name_needs_config(models):
    with pytest.raises(ValueError, match="data_config"):
        dyck_activations(models, "heldout", n_fit=10, n_eval=10)
    s = dyck_activations(models, "heldout", n_fit=10, n_eval=10, data_config=CFG, sites=["blocks.0.hook_resid_mid"])
    assert s.info["split"] == "heldout" and s.sites == ["blocks.0.hook_resid_mid"]


def test_bad_input(models, split):
    with pytest.raises(ValueError, match="exceed"):
        dyck_activations(models, split, n_fit=10**6, n_eval=10)
    with pytest.raises(ValueError, match="controls"):
        dyck_activations(models, split, n_fit=10, n_eval=10, controls=("shuffled",))
    with pytest.raises(ValueError, match="n_fit"):
        dyck_activations(models, split, n_fit=1, n_eval=10)
    with pytest.raises(ValueError, match="cohort_or_models"):
        dyck_activations({}, split)
    with pytest.raises(KeyError):
        dyck_activations(models, split, n_fit=10, n_eval=10, sites=["blocks.9.hook_resid_pre"])
    with pytest.raises(ValueError, match="already named"):
        dyck_activations({"control:untrained": models[0]}, split, n_fit=10, n_eval=10, controls=("untrained",))


def test_short_site():
    assert short_site("blocks.1.hook_resid_mid") == "b1.resid_mid"
    assert short_site("unembed.hook_in") == "final"
    assert short_site("ln_final.hook_normalized") == "final"


def test_cohort_premise_reads_convergence_records_and_flags_unconverged_seeds():
    from types import SimpleNamespace

    from polyrot_utils.tasks.dyck.suite import cohort_premise

    rec = lambda conv, acc: {"convergence": {"converged": conv, "min_accuracy": acc}}  # noqa: E731
    good = SimpleNamespace(histories={0: rec(True, 0.99995), 1: rec(True, 1.0)})
    bad = SimpleNamespace(histories={0: rec(True, 0.99995), 1: rec(False, 0.9991)})
    assert cohort_premise(good)["meets"] is True and "2/2" in cohort_premise(good)["summary"]
    p = cohort_premise(bad)
    assert p["meets"] is False and p["n_converged"] == 1 and p["worst_min_accuracy"] == 0.9991
    trained_here = SimpleNamespace(histories={0: {"final": {"heldout": {"acc_type": 1.0, "acc_depth": 0.97,
                                                                         "acc_invalid": 0.99, "acc_string": 0.5}}}})
    p = cohort_premise(trained_here)
    assert p["meets"] is False and p["worst_min_accuracy"] == 0.97
    assert cohort_premise({0: object()})["meets"] is None
