"""Tests for polyrot_utils.experiments.alignment: planted answers on synthetic PairedActs (an
exact rotation gives gap ~0 and is detected; an unrelated control is not), the claims, the
figures, input errors named, and the two chapters declaring the same experiment parameters."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from polyrot_utils.book import figures
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.book.runner import parameter_specs
from polyrot_utils.core import haar
from polyrot_utils.experiments import alignment, universality, analysis
from polyrot_utils.models.activations import PairedActs
from polyrot_utils.sae.autoencoder import transfer_sae

D = 8
SITES = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLYROT_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("POLYROT_RESULTS_WRITE_DIR", raising=False)
    torch.set_num_threads(1)


def _cloud(n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 0.3, D)
    z = torch.randn(n, D, generator=g) * scales * (torch.rand(n, D, generator=g) < 0.4)
    return ((z + 2.0) * scale).float()


def _dense(n: int, seed: int) -> torch.Tensor:
    """An unrelated cloud: dense, isotropic, no sparse directions."""
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)).float()


def _rot(seed: int) -> torch.Tensor:
    return torch.as_tensor(haar.sample_haar(D, rng=seed), dtype=torch.float32)


def _planted(n_fit: int = 600, n_eval: int = 300, b_scale: float = 1.0):
    """Seed A; seed B = b_scale * A @ R_B exactly; control "rotated" = A @ R_c (planted);
    control "untrained" = an unrelated cloud."""
    fit, ev = {}, {}
    for batch, n, off in ((fit, n_fit, 0), (ev, n_eval, 100)):
        a = {s: _cloud(n, off + i) for i, s in enumerate(SITES)}
        batch["A"] = a
        batch["B"] = {s: b_scale * a[s] @ _rot(10 + i) for i, s in enumerate(SITES)}
        batch["control:rotated"] = {s: a[s] @ _rot(20 + i) for i, s in enumerate(SITES)}
        batch["control:untrained"] = {s: _dense(n, off + 50 + i) for i, s in enumerate(SITES)}
    models = {k: None for k in fit}
    planted = {"control:rotated": ("A", None)}
    return PairedActs(
        fit, ev, list(SITES), models, ["A", "B"], planted, {"premise": {"rung": "dyck"}}
    )


def _saes(acts: PairedActs, b_scale: float = 1.0):
    """A's and the untrained control's SAEs trained; B's and the copy's are A's moved exactly."""
    trained, _ = analysis.train_saes(
        acts.fit,
        d_sae=16,
        k=3,
        n_tokens=3000,
        batch_size=128,
        seed=analysis.model_seeds(list(acts.fit)),
        models=["A", "control:untrained"],
    )
    out = dict(trained)
    out["B"] = {s: transfer_sae(trained["A"][s], _rot(10 + i)) for i, s in enumerate(SITES)}
    out["control:rotated"] = {
        s: transfer_sae(trained["A"][s], _rot(20 + i)) for i, s in enumerate(SITES)
    }
    return out


SAE_KW = dict(sae_expansion=2, sae_k=3, sae_n_tokens=3000, sae_batch_size=128)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("POLYROT_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)
    try:
        acts = _planted()
        return alignment.alignment_study(
            {"shared_io": acts}, **SAE_KW, curve_points=4, saes={"shared_io": _saes(acts)}
        )
    finally:
        mp.undo()


def test_exact_rotation_gives_zero_gap_and_is_detected(study):
    t = study.table.set_index(["site", "method"])
    for s in study.sites:
        assert abs(t.loc[(s, "rotation"), "gap"]) < 1e-3
        assert t.loc[(s, "rotation"), "map_ev"] > 0.999
        # a generic rotation is no signed permutation: the permutation falls short
        assert t.loc[(s, "signed_permutation"), "gap"] > 0.05
    ctrl = study.controls[study.controls.method == "rotation"].set_index(["control", "site"])
    assert ctrl.loc["rotated: exactly rotated copy"].gap.abs().max() < 1e-3
    assert set(ctrl.loc["rotated: exactly rotated copy"].index) == set(study.sites)
    # the unrelated control and the unpaired rows do not align: the rotation explains nothing
    for label in ("untrained as target", "untrained as source", "unpaired fit rows"):
        assert ctrl.loc[label].map_ev.max() < 0, label
    # and the moved SAE falls short of the target's own (as target, an isotropic cloud is
    # reconstructed about as well by any dictionary: see the claims test)
    for label in ("untrained as source", "unpaired fit rows"):
        assert ctrl.loc[label].gap.min() > 0.05, label
    kinds = study.controls.drop_duplicates("control").set_index("control").kind
    assert (
        kinds["rotated: exactly rotated copy"] == "positive"
        and kinds["untrained as target"] == "negative"
    )


def test_scale_mismatch_hurts_map_ev_not_sae_ev(tmp_path):
    """B = 0.4 · A R: the rotation's map EV collapses, the scaled rotation's does not (s ≈ 0.4),
    and the moved SAE barely cares (a TopK SAE is close to scale-equivariant)."""
    acts = _planted(b_scale=0.4)
    saes = _saes(acts)
    res = alignment.alignment_study(acts, **SAE_KW, curve_points=3, saes={"seeds": saes})
    mev = res.method_table("map_ev")
    assert (mev["rotation"] < 0).all()
    assert (mev["rotation × s"] > 0.999).all()
    np.testing.assert_allclose(mev["s"], 0.4, atol=1e-3)
    assert list(res.method_table("gap").index) == res.sites  # one group: the group level is dropped


def test_fit_size_curve_and_stable_rule(study):
    cur = study.curve[study.curve.site == study.sites[0]]
    assert list(cur.n_fit) == alignment.fit_sizes(D, 600, 4)
    assert cur.gap.iloc[-1] < 1e-3
    assert set(study.stable.site) == set(study.sites)
    rows = [
        {"n_fit": 8, "sae_ev": 0.2},
        {"n_fit": 32, "sae_ev": 0.895},
        {"n_fit": 64, "sae_ev": 0.9},
    ]
    assert alignment.stable_fit_size(rows) == 32
    assert alignment.stable_fit_size(rows, tol=0.001) == 64
    with pytest.raises(ValueError, match="rows"):
        alignment.stable_fit_size([])
    with pytest.raises(ValueError, match="curve_points"):
        alignment.fit_sizes(64, 100, 1)


def test_claims_recorded_once_for_both_rungs(study):
    res = ChapterResults("12_test_alignment")
    summary = alignment.record_alignment_claims(res, study)
    claims = res.data["claims"]
    assert set(summary.index) == set(claims)
    assert {
        "rotation_gap_paper",
        "rotation_gap_max",
        "rotation_beats_signed_permutation",
        "rotation_within_margin_of_affine",
        "negative_controls_do_not_align",
        "positive_control_gap",
    } <= set(claims)
    assert claims["rotation_gap_max"]["passed"] and claims["positive_control_gap"]["passed"]
    # the isotropic "untrained" target is reconstructed as well by A's moved SAE as by its own:
    # the margin check sees that this control does not stand apart from the seeds
    assert not claims["negative_controls_do_not_align"]["passed"]
    assert claims["rotation_beats_signed_permutation"]["passed"]
    assert claims["rotation_gap_max"]["threshold"] == 0.025
    paper = claims["rotation_gap_paper"]
    assert (
        paper["kind"] == "paper"
        and paper["interval"]["lo"] <= paper["value"] <= paper["interval"]["hi"]
    )
    assert "alignment_rows" in res.data["values"]


def test_unrelated_seeds_fail_the_checks(tmp_path):
    """Seed B unrelated to A: the rotation explains nothing of B, far less than an affine map."""
    acts = _planted()
    for batch in (acts.fit, acts.eval):
        batch["B"] = {s: _dense(batch["A"][s].shape[0], 300 + i) for i, s in enumerate(SITES)}
    saes = _saes(acts)
    saes["B"] = saes["control:untrained"]
    res = alignment.alignment_study(acts, **SAE_KW, curve_points=3, saes={"seeds": saes})
    out = ChapterResults("12_test_unrelated")
    summary = alignment.record_alignment_claims(out, res)
    assert (res.method_table("map_ev")["rotation"] < 0).all()
    assert summary.loc["rotation_within_margin_of_affine", "passed"] == "FAIL"
    assert "rotation_gap_paper" not in summary.index  # claimed for Cohort A (shared_io) only


def test_figures_are_legible(study):
    figures.use_book_style()
    for plot in (alignment.plot_gaps, alignment.plot_controls, alignment.plot_fit_size):
        fig = plot(study, figures.column_figure)
        assert figures.legibility_problems(fig) == []
        assert fig.get_size_inches()[0] <= figures.COLUMN_WIDTH_IN
        for ax in fig.axes:
            assert ax.get_yscale() == "linear"  # the gap against 0.025 on a linear axis
            lo, hi = ax.get_ylim()
            assert lo < 0.025 < hi
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "paper's bar 0.025" in labels
        fig.canvas.draw()  # the layout holds: no panel collapses
        assert all(ax.get_position().height > 0.2 for ax in fig.axes)
        matplotlib.pyplot.close(fig)
    fig = alignment.plot_controls(study, figures.column_figure)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {
        "real pair",
        "untrained as target",
        "untrained as source",
        "unpaired fit rows",
        "rotated: exactly rotated copy",
    } <= set(labels)  # every control its own bar


def test_input_errors_are_named():
    acts = _planted()
    with pytest.raises(ValueError, match="paper_gap"):
        alignment.alignment_study(acts, **SAE_KW, paper_gap=-1)
    with pytest.raises(ValueError, match="affine_margin"):
        alignment.alignment_study(acts, **SAE_KW, affine_margin=float("nan"))
    with pytest.raises(ValueError, match="curve_points"):
        alignment.alignment_study(acts, **SAE_KW, curve_points=1)
    with pytest.raises(ValueError, match="anchor"):
        alignment.alignment_study(acts, **SAE_KW, anchor="Z")
    with pytest.raises(ValueError, match="rung"):
        alignment.alignment_study(acts, **SAE_KW, rung="mnist")
    with pytest.raises(ValueError, match="acts"):
        alignment.alignment_study({}, **SAE_KW)
    with pytest.raises(ValueError, match="sae_k"):
        universality.train_universality_saes(acts, **{**SAE_KW, "sae_k": 0})
    one = PairedActs(
        acts.fit, acts.eval, SITES, acts.models, ["A"], {}, {"premise": {"rung": "dyck"}}
    )
    with pytest.raises(ValueError, match="seed"):
        alignment.alignment_study(one, **SAE_KW)


def test_both_chapters_declare_the_same_experiment_parameters():
    dyck, pythia = parameter_specs("12_dyck_rotation"), parameter_specs("22_pythia_rotation")
    for name, default in alignment.EXPERIMENT_DEFAULTS.items():
        assert dyck[name].default == default == pythia[name].default, name
    shared = ["seed", "anchor", "sae_expansion", "sae_k", "sae_n_tokens", "sae_batch_size"]
    assert all(n in dyck and n in pythia for n in shared)
    # the rows differ by rung only: the toy counts rows, the Pythia rung windows
    assert {"n_fit", "n_eval"} <= set(dyck) and {"n_fit_seqs", "n_eval_seqs"} <= set(pythia)
    for old in ("k", "d_sae", "sae_tokens", "sae_batch", "gap_bar", "fit_sizes"):
        assert old not in dyck, old
