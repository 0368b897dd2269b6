"""Tests of polyrot_utils.experiments.checkpoints (planted rotations); the Dyck steering helpers
are tested in tests/test_steering.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrot_utils.book import runner
from polyrot_utils.experiments import checkpoints as ck
from polyrot_utils.models.activations import PairedActs
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.core import haar
from polyrot_utils.core.procrustes import alignment_report, fit_alignment

torch.set_num_threads(1)


def test_checkpoint_pairs():
    assert ck.checkpoint_pairs([0, 10, 20], "successive") == [(0, 10), (10, 20)]
    assert ck.checkpoint_pairs([20, 0, 10], "to_final") == [(0, 20), (10, 20)]
    with pytest.raises(ValueError, match="at least 2"):
        ck.checkpoint_pairs([5])
    with pytest.raises(ValueError, match="kind"):
        ck.checkpoint_pairs([0, 1], "bogus")


def test_analog_step_is_the_inner_checkpoint_nearest_the_fraction():
    assert ck.analog_step([0, 80, 160, 240, 320, 400], ck.PAPER["dyck"].fraction) == 240
    assert ck.analog_step([0, 1, 2, 4, 8, 16, 150], ck.PAPER["pythia"].fraction) == 4
    assert ck.analog_step([0, 10], 0.5) == 0
    with pytest.raises(ValueError, match="at least 2"):
        ck.analog_step([3], 0.5)


def test_paper_sites():
    sites = [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_mid",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "unembed.hook_in",
    ]
    assert ck.paper_sites("dyck", sites) == sites[:4]
    assert ck.paper_sites("pythia", sites) == ["blocks.1.hook_resid_post"]
    deep = [f"blocks.{i}.hook_resid_post" for i in range(6)]
    assert ck.paper_sites("pythia", deep) == ["blocks.3.hook_resid_post"]
    with pytest.raises(ValueError, match="rung"):
        ck.paper_sites("gpt", sites)


def test_checkpoint_models_missing_step():
    member = SimpleNamespace(checkpoints={0: "a", 10: "b"}, load_checkpoint=lambda s: f"model{s}")
    assert ck.checkpoint_models(member) == {0: "model0", 10: "model10"}
    with pytest.raises(KeyError, match="saved steps"):
        ck.checkpoint_models(member, steps=[5])


def test_cohort_checkpoint_models_keeps_common_steps():
    a = SimpleNamespace(checkpoints={0: 1, 10: 1, 20: 1}, load_checkpoint=lambda s: f"a{s}")
    b = SimpleNamespace(checkpoints={0: 1, 20: 1}, load_checkpoint=lambda s: f"b{s}")
    assert ck.cohort_checkpoint_models({"seed0": a, "seed1": b}) == {
        0: {"seed0": "a0", "seed1": "b0"},
        20: {"seed0": "a20", "seed1": "b20"},
    }
    with pytest.raises(ValueError, match="at least 2"):
        ck.cohort_checkpoint_models({"seed0": a, "seed1": SimpleNamespace(checkpoints={5: 1})})


def test_paired_by_step_common_steps():
    x = {"s": torch.zeros(3, 2)}
    per_run = {
        "seed1": ({0: x, 5: x, 9: x}, {0: x, 5: x, 9: x}),
        "seed2": ({0: x, 9: x}, {0: x, 9: x}),
    }
    out = ck.paired_by_step(per_run, ["s"])
    assert sorted(out) == [0, 9] and out[9].members == ["seed1", "seed2"] and out[0].sites == ["s"]
    with pytest.raises(ValueError, match="per_run"):
        ck.paired_by_step({}, ["s"])


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_rotation_row_planted(seed):
    g = torch.Generator().manual_seed(seed)
    d = 16
    x = torch.randn(400, d, generator=g, dtype=torch.float64) * torch.linspace(
        0.5, 2, d, dtype=torch.float64
    )
    R = torch.as_tensor(haar.sample_haar(d, rng=seed))
    y = x @ R + 1.0
    row = ck.rotation_row(x[:200], y[:200], x[200:], y[200:], n_null=0)
    assert row["frob_ratio"] == pytest.approx(
        float(torch.linalg.norm(R - torch.eye(d)) / np.sqrt(2 * d)), abs=1e-8
    )
    assert row["ev_rotation"] == pytest.approx(1.0, abs=1e-10)
    assert row["ev_rotation_scaled"] == pytest.approx(1.0, abs=1e-10) and row[
        "scale"
    ] == pytest.approx(1.0)
    assert row["ev_affine"] == pytest.approx(1.0, abs=1e-6)
    assert row["ev_identity"] < 0.9
    same = ck.rotation_row(x[:200], x[:200], x[200:], x[200:], n_null=0)
    assert same["frob_ratio"] < 1e-8 and same["ev_identity"] == pytest.approx(1.0)


def test_rotation_row_scaled_rotation_absorbs_norm_growth():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(400, 8, generator=g, dtype=torch.float64)
    R = torch.as_tensor(haar.sample_haar(8, rng=3))
    row = ck.rotation_row(x[:200], 3 * x[:200] @ R, x[200:], 3 * x[200:] @ R, n_null=0)
    assert row["scale"] == pytest.approx(3.0) and row["ev_rotation_scaled"] == pytest.approx(1.0)
    assert row["ev_rotation"] < 0.9


def test_affine_ev_matches_fit_alignment():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    y = x @ torch.randn(8, 8, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        300, 8, generator=g, dtype=torch.float64
    )
    ref = alignment_report(fit_alignment(x[:200], y[:200], "affine"), x[200:], y[200:]).ev
    assert ck.affine_ev(x[:200], y[:200], x[200:], y[200:]) == pytest.approx(ref, abs=1e-6)


def test_rotation_row_haar_p_is_a_probability():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    row = ck.rotation_row(x[:150], x[:150], x[150:], x[150:], n_null=19, seed=0)
    assert 0 < row["haar_p"] <= 1 and row["haar_p"] == pytest.approx(
        0.05
    )  # identity: the most extreme


# ---------------------------------------------------------------------- the analysis, planted
D = 8
SITES = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
RUNS = ["seed0", "seed1"]
STEPS = [0, 10, 20, 40]


def _planted(unrelated_step: int | None = None) -> tuple[dict[int, PairedActs], PairedActs]:
    """Two runs whose checkpoint at every step is an exact rotation of the final one (the final
    step's R is the identity); ``unrelated_step``: that checkpoint is fresh noise instead."""
    g = torch.Generator().manual_seed(0)
    scale = torch.linspace(0.5, 2, D)
    base = {
        w: {r: {s: torch.randn(300, D, generator=g) * scale + 1 for s in SITES} for r in RUNS}
        for w in ("fit", "eval")
    }
    Rs = {st: torch.as_tensor(haar.sample_haar(D, rng=st + 1), dtype=torch.float32) for st in STEPS}
    Rs[STEPS[-1]] = torch.eye(D)

    def at(st: int, w: str) -> dict:
        if st == unrelated_step:
            return {r: {s: torch.randn(300, D, generator=g) * scale for s in SITES} for r in RUNS}
        return {r: {s: base[w][r][s] @ Rs[st] for s in SITES} for r in RUNS}

    by_step = {st: PairedActs(at(st, "fit"), at(st, "eval"), SITES, {}, list(RUNS)) for st in STEPS}
    return by_step, by_step[STEPS[-1]]


@pytest.fixture(scope="module")
def planted_result():
    by_step, ref = _planted()
    return ck.checkpoint_analysis(by_step, ref, rung="dyck", n_null=19, sae_k=2, sae_n_tokens=600)


def test_analysis_recovers_planted_rotations(planted_result):
    res = planted_result
    t = res.table
    assert res.steps == STEPS and res.runs == RUNS and res.analog_step == 20
    assert set(t.pair_kind) == {"successive", "to_final", "cross_seed"}
    assert len(t) == len(RUNS) * 2 * (len(STEPS) - 1) * len(SITES) + len(SITES)
    ck_rows = t[t.pair_kind != "cross_seed"]
    assert (ck_rows.ev_rotation > 1 - 1e-5).all() and (ck_rows.ev_affine > 1 - 1e-5).all()
    assert t.full_rank.all()
    pr = res.per_run.set_index("run")
    assert (pr.successive_affine_deficit.abs() < 1e-5).all()
    assert (pr.rotation_gain > 0.5).all()  # the identity explains little of a Haar-rotated copy
    assert len(res.cross_seed) == 1 and len(res.site_summary()) == len(SITES)


def test_analysis_detects_an_unrelated_checkpoint():
    by_step, ref = _planted(unrelated_step=10)  # the Pythia analog of STEPS (2 % of training)
    res = ck.checkpoint_analysis(by_step, ref, rung="pythia", n_null=0, sae_k=2, sae_n_tokens=600)
    assert res.analog_step == 10
    pr = res.per_run.set_index("run")
    assert (pr.rotation_ev < 0.2).all()  # noise at the analog step: no rotation explains the final
    assert (
        pr.successive_affine_deficit > 0.05
    ).all()  # the claim "successive pairs are rotations" fails
    t = res.table
    bad = t[(t.pair_kind == "to_final") & (t.a_step == 10)]
    good = t[(t.pair_kind == "to_final") & (t.a_step == 20)]
    assert (bad.ev_rotation < 0.2).all() and (good.ev_rotation > 1 - 1e-5).all()
    assert (bad.ev_affine < 0.2).all()


class _Results:
    def __init__(self):
        self.values, self.claims = {}, {}

    def record(self, name, value):
        self.values[name] = value

    def claim(self, name, **kw):
        self.claims[name] = kw
        return True


@pytest.mark.parametrize("rung", ["dyck", "pythia"])
def test_record_claims_same_names_on_both_rungs(planted_result, rung):
    res = planted_result
    res_rung = ck.CheckpointResult(
        rung,
        res.steps,
        res.runs,
        res.sites,
        res.d,
        res.analog_step,
        res.table,
        res.paper_sae,
        res.per_run,
        res.cross_seed,
        res.params,
    )
    r = _Results()
    table = ck.record_claims(r, res_rung)
    shared = {
        "ckpt_post_rotation_sae_ev",
        "ckpt_rotation_lifts_sae_ev",
        "ckpt_rotation_ev",
        "ckpt_rotation_improves_on_identity",
        "ckpt_successive_are_rotations",
        "ckpt_haar_pmin",
    }
    only = {"dyck": "ckpt_frob_falls_with_depth", "pythia": "ckpt_naive_sae_ev_negative"}
    assert set(r.claims) == shared | {only[rung]} == set(table.index)
    for name, kw in r.claims.items():
        assert kw["interval"].n == len(RUNS), name
        assert kw["value"] == pytest.approx(kw["interval"].point)
    assert r.claims["ckpt_successive_are_rotations"]["threshold"] == 0.05
    assert r.claims["ckpt_haar_pmin"]["threshold"] == pytest.approx(0.05 / len(SITES))
    assert "cross_seed_frob_ratio" in r.values and len(r.values["rotation_table"]) == len(res.table)


def test_analysis_input_errors_name_the_argument():
    by_step, ref = _planted()
    with pytest.raises(ValueError, match="by_step"):
        ck.checkpoint_analysis({0: by_step[0]}, rung="dyck")
    with pytest.raises(ValueError, match="rung"):
        ck.checkpoint_analysis(by_step, rung="gpt")
    with pytest.raises(ValueError, match="alpha"):
        ck.checkpoint_analysis(by_step, rung="dyck", alpha=1.5)
    with pytest.raises(ValueError, match="sae_k"):
        ck.checkpoint_analysis(by_step, rung="dyck", sae_k=0)
    short = dict(by_step)
    short[10] = PairedActs(
        {r: {s: x[:100] for s, x in v.items()} for r, v in by_step[10].fit.items()},
        by_step[10].eval,
        SITES,
        {},
        list(RUNS),
    )
    with pytest.raises(ValueError, match="rows must pair"):
        ck.checkpoint_analysis(short, rung="dyck")
    with pytest.raises(ValueError, match="reference"):
        ck.checkpoint_analysis(
            by_step, PairedActs(ref.fit, ref.eval, SITES, {}, ["seed0"]), rung="dyck"
        )


def test_rank_deficient_site_is_not_haar_tested():
    by_step, _ = _planted()
    flat = {}
    for step, a in by_step.items():
        fit = {
            r: {**v, SITES[0]: torch.cat([v[SITES[0]][:, :3], torch.zeros(300, D - 3)], 1)}
            for r, v in a.fit.items()
        }
        flat[step] = PairedActs(fit, a.eval, SITES, {}, list(RUNS))
    res = ck.checkpoint_analysis(flat, rung="dyck", n_null=19, sae_k=2, sae_n_tokens=600)
    t = res.table
    assert (
        not t[t.site == "b0.resid_pre"].full_rank.any()
        and t[t.site == "b0.resid_post"].full_rank.all()
    )
    assert (res.per_run.n_haar_sites == 1).all()


def test_chapters_declare_the_same_experiment_parameters():
    """Chapters 15 and 25 run one analysis: its parameters have the same names, defaults and
    specs in both, and the defaults are checkpoint_analysis's."""
    import inspect

    dyck_p = runner.parameter_specs("15_dyck_checkpoints")
    pythia_p = runner.parameter_specs("25_pythia_checkpoints")
    defaults = {
        k: v.default for k, v in inspect.signature(ck.checkpoint_analysis).parameters.items()
    }
    for name in ck.EXPERIMENT_PARAMETERS:
        assert name in dyck_p and name in pythia_p, name
        a, b = dyck_p[name], pythia_p[name]
        assert (a.default, a.type, a.nullable, a.bounds, a.choices) == (
            b.default,
            b.type,
            b.nullable,
            b.bounds,
            b.choices,
        ), name
        assert dyck_p[name].default == defaults[name], name


def test_chapter_outputs_names_what_both_chapters_place(planted_result):
    """chapter_outputs returns the page's table and figure, built by the module's own functions,
    and each chapter places every name it returns (``{glue}`` / ``{glue:figure}``) and no other."""
    import re
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.figure import Figure

    calls = []

    def new_figure(*args, height, **kw):  # book.figures.column_figure's signature
        calls.append((args, dict(kw, height=height)))
        return plt.subplots(*args, figsize=(6.9, height), **kw)

    out = ck.chapter_outputs(planted_result, new_figure)
    try:
        assert set(out) == {"site_summary", "checkpoints_figure"}
        pd.testing.assert_frame_equal(out["site_summary"], planted_result.site_summary())
        fig = out["checkpoints_figure"]
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        assert calls == [((2, 1), {"height": 5.6, "sharex": True})]
        assert fig.axes[1].get_ylabel() == "held-out EV of final"
    finally:
        plt.close("all")
    root = Path(__file__).resolve().parents[1] / "notebooks"
    for stem in ("15_dyck_checkpoints", "25_pythia_checkpoints"):
        text = (root / f"{stem}.py").read_text()
        placed = set(re.findall(r"^# ```\{glue(?::figure)?\} (\w+)$", text, flags=re.M))
        assert placed == set(out), stem
        assert "checkpoints.chapter_outputs(res, figures.column_figure)" in text, stem
