"""polyrot_utils.experiments.haar_test: planted answers on synthetic PairedActs, input errors
named, claims recorded, and chapters 13 and 23 declaring the same experiment parameters."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from polyrot_utils.core import haar
from polyrot_utils.experiments import haar_test
from polyrot_utils.models.activations import PairedActs

SITES = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"]
D = 12
FAST = dict(n_null=40, n_resample=200, power_trials=3, outlier_null=40)


def _acts(kind: str, n_seeds: int = 3, n: int = 600, seed: int = 0) -> PairedActs:
    """Seeds that are exact rotated copies of seed0 (``kind``: "haar" draws R from Haar SO(d),
    "perm" a signed permutation), plus an untrained control unrelated to them."""
    g = np.random.default_rng(seed)
    scale = np.linspace(0.5, 3.0, D)
    fit: dict = {}
    base = {s: g.standard_normal((n, D)) * scale for s in SITES}
    for k in range(n_seeds):
        fit[f"seed{k}"] = {}
        for s in SITES:
            if k == 0:
                R = np.eye(D)
            elif kind == "haar":
                R = haar.sample_haar(D, rng=g)
            else:
                R = haar.random_signed_permutation(D, g)
            fit[f"seed{k}"][s] = torch.tensor(base[s] @ R, dtype=torch.float32)
    fit["control:untrained"] = {
        s: torch.tensor(g.standard_normal((n, D)) * scale, dtype=torch.float32) for s in SITES
    }
    members = [f"seed{k}" for k in range(n_seeds)]
    models = {m: types.SimpleNamespace() for m in list(fit)}
    return PairedActs(fit=fit, eval=fit, sites=list(SITES), models=models, members=members)


@pytest.fixture(scope="module")
def haar_res():
    return haar_test.haar_experiment({"a": _acts("haar"), "b": _acts("perm", seed=1)}, **FAST)


def test_planted_haar_not_rejected_and_signed_permutation_detected(haar_res):
    g = haar_res.groups.set_index("group")
    # exact Haar rotations between the seeds: the calibrated test does not reject
    assert g.loc["a", "calibrated_p"] > 0.05
    # signed permutations: the calibrated test rejects, the paper's two checks do not see it
    assert g.loc["b", "calibrated_p"] <= 0.05
    assert g.loc["b", "per_pair_rejected"] >= g.loc["b", "n_matrices"] / 2
    b = haar_res.pairs[haar_res.pairs.group == "b"]
    assert (b.signed_perm_distance < 1e-5).all() and (b.signed_perm_pvalue <= 1 / 40).all()
    # its null is sized so that the Bonferroni-corrected claim can fail
    assert g.loc["b", "signed_perm_p_bonf"] <= 0.05 < g.loc["a", "signed_perm_p_bonf"]
    assert g.loc["b", "paper_ks_pvalue"] > 0.05
    # every R is an exact rotated copy: the fixed subspace of a signed permutation has
    # its fixed points, Haar has about as many as the Haar mean
    assert (haar_res.pairs.identified).all()
    assert set(haar_res.site_names) == {"b0.resid_pre", "b0.resid_mid", "b0.resid_post"}


def test_controls_present_and_unrelated_control_does_not_align(haar_res):
    c = haar_res.controls
    assert set(c.comparison) == {"pair", "untrained", "shuffled"}
    pair_ev = c[c.comparison == "pair"].map_ev
    ctrl_ev = c[c.comparison != "pair"].map_ev
    assert (pair_ev > 0.99).all()  # the exact rotated copy is found
    assert (ctrl_ev < 0.2).all()  # the unrelated clouds are not aligned


def test_deterministic(haar_res):
    again = haar_test.haar_experiment({"a": _acts("haar"), "b": _acts("perm", seed=1)}, **FAST)
    assert again.groups.equals(haar_res.groups)


def test_record_claims_same_names_with_group_suffix(haar_res, tmp_path, monkeypatch):
    from polyrot_utils.book.results import ChapterResults

    monkeypatch.setenv("POLYROT_RESULTS_WRITE_DIR", str(tmp_path))
    results = ChapterResults("13_dyck_haar_test", params={})
    table = haar_test.record_claims(haar_res, results)
    names = set(results.data["claims"])
    for base in (
        "frobenius_mean_within_0.1pct",
        "paper_pooled_ks_not_rejected",
        "calibrated_pooled_haar_not_rejected",
        "negative_controls_rejected",
    ):
        assert {f"{base}_a", f"{base}_b"} <= names
    assert results.data["claims"]["calibrated_pooled_haar_not_rejected_b"]["passed"] is False
    assert len(table) <= 15
    for name in ("frobenius_mean_within_0.1pct_a", "paper_pooled_ks_not_rejected_b"):
        c = results.data["claims"][name]
        # the interval is over seeds, around the claim's own value
        assert c["interval"]["point"] == pytest.approx(c["value"], abs=1e-12)
        assert c["interval"]["lo"] <= c["interval"]["hi"]


def test_bootstrap_recomputes_the_paper_ks_exactly(haar_res):
    """The seed bootstrap of the pooled KS uses the same |eigenphases| as haar.paper_ks_test."""
    from scipy.stats import ks_2samp

    ph = haar_res.paper_phases["b"]
    p = ks_2samp(np.concatenate(list(ph.values())), haar.paper_haar_pool(D)).pvalue
    row = haar_res.groups.set_index("group").loc["b"]
    assert p == pytest.approx(row.paper_ks_pvalue, rel=1e-6)


def test_rejection_sentence_states_the_contradiction(haar_res):
    s = haar_test.rejection_sentence(haar_res, haar_expected=["b"])
    assert "**b**" in s and "contradicted" in s
    assert "what the theory predicts" in haar_test.rejection_sentence(haar_res, ["a"])


def test_plot_is_legible(haar_res):
    from polyrot_utils.book import figures

    figures.use_book_style()
    fig, axes = figures.column_figure(2, 1, height=5.6, sharex=True)
    haar_test.plot_haar(haar_res, axes)
    assert figures.legibility_problems(fig) == []


def test_fixed_subspace_wrapper_glossary_tolerance():
    R = haar.block_identity_rotation(10, 4, 0)  # 6 directions fixed exactly
    assert haar_test.fixed_subspace(R, 0.1).shape[1] >= 6
    assert haar_test.fixed_subspace(np.eye(6), 1e-5).shape == (6, 6)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(alpha=1.5), "alpha"),
        (dict(n_null=0), "n_null"),
        (dict(power_trials=0), "power_trials"),
        (dict(fixed_tol=0.0), "fixed_tol"),
        (dict(full_rank_frac=0.0), "full_rank_frac"),
        (dict(n_resample=True), "n_resample"),
    ],
)
def test_bad_parameters_named(kw, name):
    with pytest.raises(ValueError, match=name):
        haar_test.haar_experiment(_acts("haar"), **kw)


def test_bad_acts_named():
    with pytest.raises(ValueError, match="acts"):
        haar_test.haar_experiment({})
    with pytest.raises(ValueError, match="acts"):
        haar_test.haar_experiment({"x": _acts("haar", n_seeds=1)})


def test_chapters_declare_the_same_experiment_parameters():
    from polyrot_utils.book.runner import parameter_specs

    shared = (
        "n_null",
        "n_resample",
        "alpha",
        "power_trials",
        "fixed_tol",
        "full_rank_frac",
        "n_outliers",
        "outlier_null",
        "seed",
    )
    dyck = parameter_specs("13_dyck_haar")
    pythia = parameter_specs("23_pythia_haar")
    for p in shared:
        assert p in dyck and p in pythia, p
        assert dyck[p].default == pythia[p].default, p


def test_chapter_outputs_names_and_values(haar_res):
    """Every output chapters 13 and 23 glue, read from the result without recomputing it."""
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.figure import Figure

    from polyrot_utils.book import figures

    figures.use_book_style()
    out = haar_test.chapter_outputs(
        haar_res, figures.column_figure, haar_expected=["a"], noun="cohort"
    )
    tables = haar_test.summary_tables(haar_res)
    assert set(out) == {
        "groups_table",
        "rejection_sentence",
        "sites_table",
        "haar_figure",
        "fixed_table",
        "power_table",
    }
    for name in ("groups", "sites", "fixed", "power"):
        pd.testing.assert_frame_equal(out[f"{name}_table"], tables[name])
    fig = out["haar_figure"]
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert figures.legibility_problems(fig) == []
    plt.close(fig)
    # the glued sentence is plain text ({glue:text} does not parse Markdown), else the same
    s = out["rejection_sentence"]
    assert "**" not in s and "what the theory predicts" in s
    bold = haar_test.rejection_sentence(haar_res, ["a"], "cohort")
    assert s == bold.replace("**", "")


def test_records_include_the_frobenius_pass_fraction(haar_res):
    rec = haar_res.records()
    assert rec["frobenius_pass_fraction"] == haar_res.haar_frobenius_pass_fraction
    assert rec["groups"] == haar_res.groups.to_dict(orient="records")
