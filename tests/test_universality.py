"""Tests for polyrot_utils.experiments.universality: planted answers on synthetic PairedActs
(seeds that are exact rotations of each other, an unrelated control), bad input named, the
claims recorded, and the two chapters (11 Dyck, 21 Pythia) declaring the same parameters."""

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
from polyrot_utils.experiments import universality
from polyrot_utils.models.activations import PairedActs

D = 16
SITES = [
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_post",
    "unembed.hook_in",
]
SAE = dict(sae_expansion=1, sae_k=1, sae_n_tokens=12_000, sae_batch_size=128)


def _sparse(n: int, dictionary: torch.Tensor, seed: int) -> torch.Tensor:
    """Rows made of one of the dictionary's features each, with a positive amplitude."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, dictionary.shape[0], (n,), generator=g)
    return ((1.0 + torch.rand(n, 1, generator=g)) * dictionary[idx]).float()


def _planted_acts(rung: str = "pythia") -> tuple[PairedActs, dict[str, dict[str, np.ndarray]]]:
    """Three seeds, each an exact Haar rotation of seed A (``acts[m] = acts[A] @ R_m``), and an
    'untrained' control made of another, unrelated dictionary."""
    g = torch.Generator().manual_seed(0)
    feats = {s: torch.nn.functional.normalize(torch.randn(D, D, generator=g), dim=1) for s in SITES}
    other = {s: torch.nn.functional.normalize(torch.randn(D, D, generator=g), dim=1) for s in SITES}
    base_fit = {s: _sparse(1500, feats[s], 1 + i) for i, s in enumerate(SITES)}
    base_eval = {s: _sparse(600, feats[s], 11 + i) for i, s in enumerate(SITES)}
    names = ["seedA", "seedB", "seedC"]
    rots = {
        m: {
            s: haar.sample_haar(D, rng=100 * j + i) if j else np.eye(D) for i, s in enumerate(SITES)
        }
        for j, m in enumerate(names)
    }
    fit = {
        m: {s: base_fit[s] @ torch.as_tensor(rots[m][s], dtype=torch.float32) for s in SITES}
        for m in names
    }
    ev = {
        m: {s: base_eval[s] @ torch.as_tensor(rots[m][s], dtype=torch.float32) for s in SITES}
        for m in names
    }
    fit["control:untrained"] = {s: _sparse(1500, other[s], 50 + i) for i, s in enumerate(SITES)}
    ev["control:untrained"] = {s: _sparse(600, other[s], 60 + i) for i, s in enumerate(SITES)}
    models = {m: None for m in names + ["control:untrained"]}
    info = {"premise": {"rung": rung, "meets": True, "summary": "planted"}}
    return PairedActs(fit, ev, list(SITES), models, names, {}, info), rots


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    import os

    old = os.environ.get("POLYROT_CACHE")
    os.environ["POLYROT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)
    try:
        acts, rots = _planted_acts()
        res = universality.measure(acts, seed=0, **SAE)
        saes, _ = universality.train_universality_saes(acts, seed=0, **SAE)  # from the cache
    finally:
        if old is None:
            os.environ.pop("POLYROT_CACHE", None)
        else:
            os.environ["POLYROT_CACHE"] = old
    return acts, rots, res, saes


def test_rotated_seeds_match_only_after_rotation(planted):
    """Planted answer: seeds are exact rotations of one another, so A's decoder @ R matches B's
    dictionary (as well as two SAEs of the same activations do) while the raw decoders sit near
    the random floor, and A's SAE on B's rows without alignment falls far below the ceiling."""
    _, _, res, _ = planted
    h = res.headline
    twin = res.pairs[res.pairs.kind == "same model"]["matched_cosine_live"].mean()
    assert h["matched_cosine_rotated_live"].point > h["matched_cosine_live"].point + 0.25
    assert h["matched_cosine_rotated_live"].point > twin - 0.1
    assert h["matched_cosine_live"].point < res.floor["matched_cosine_live"] + 0.15
    assert h["ev_within"].point > 0.6
    assert h["ev_unaligned"].point < h["ev_within"].point - 0.5
    for iv in h.values():
        assert iv.lo <= iv.point + 1e-12 and iv.point <= iv.hi + 1e-12


def test_unrelated_control_is_not_detected(planted):
    """The untrained control (unrelated noise) does not match the anchor's dictionary even after
    its own Procrustes rotation, and the anchor's SAE does not reconstruct it."""
    _, _, res, _ = planted
    ctl = res.pairs[res.pairs.kind == "control"]
    assert len(ctl) == len(SITES)
    seeds_rotated = res.headline["matched_cosine_rotated_live"].point
    assert ctl["matched_cosine_rotated_live"].mean() < seeds_rotated - 0.15
    assert (ctl["ev_unaligned"] < 0.3).all()


def test_pairs_are_every_pair_of_seeds(planted):
    _, _, res, _ = planted
    seeds = res.seed_rows()
    assert set(zip(seeds.source, seeds.target)) == {
        ("seedA", "seedB"),
        ("seedA", "seedC"),
        ("seedB", "seedC"),
    }
    assert res.sites == ["b0.resid_pre", "b0.resid_post", "b1.resid_post", "final"]
    assert res.d_sae == SAE["sae_expansion"] * D and res.anchor == "seedA"
    assert res.shared_seed is not None and len(res.shared_seed) == len(SITES)


def test_record_claims_values_and_paper_statistics(planted, tmp_path, monkeypatch):
    """The Pythia protocol's claims and our checks are recorded under one name each; the paper's
    identity-map EV of an exact rotation is what the rotation makes of it (well below 1)."""
    monkeypatch.setenv("POLYROT_RESULTS_DIR", str(tmp_path))
    _, _, res, _ = planted
    results = ChapterResults("21_test", params={})
    table = universality.record(results, res)
    claims = results.data["claims"]
    expected = {
        "decoder_cosine_fraction",
        "decoder_mean_max_cosine",
        "decoder_cosine_fraction_final_site",
        "unaligned_ev_negative",
        "decoder_matched_cosine_live",
        "decoder_cosine_above_untrained_control",
        "unaligned_ev_max",
    }
    assert set(claims) == expected and list(table["claim"]) == list(claims)
    for name in ("decoder_cosine_fraction", "decoder_mean_max_cosine", "unaligned_ev_negative"):
        assert claims[name]["kind"] == "paper" and "interval" in claims[name]
    values = results.data["values"]
    for name in (
        "ev_unaligned_mean",
        "ev_unaligned_largest_site_mean",
        "ev_unaligned_max_over_pairs_and_sites",
    ):
        assert name in values
    assert (
        values["ev_unaligned_max_over_pairs_and_sites"]
        >= values["ev_unaligned_largest_site_mean"] - 1e-12
    )
    assert values["ev_unaligned_largest_site_mean"] >= values["ev_unaligned_mean"] - 1e-12
    assert claims["unaligned_ev_max"]["value"] == values["ev_unaligned_max_over_pairs_and_sites"]


def test_record_suffixes_cohorts_and_dyck_protocol(planted, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_RESULTS_DIR", str(tmp_path))
    _, _, res, _ = planted
    import dataclasses

    a = dataclasses.replace(res, rung="dyck", cohort="shared_io")
    b = dataclasses.replace(res, rung="dyck", cohort="independent")
    acts, _, _, saes = planted
    a.paper, _ = universality._paper_inputs("dyck", "shared_io", acts, saes, "seedA")
    b.paper, _ = universality._paper_inputs("dyck", "independent", acts, saes, "seedA")
    results = ChapterResults("11_test", params={})
    universality.record(results, [a, b])
    names = set(results.data["claims"])
    assert {
        "decoder_cosine_fraction_shared_io",
        "unaligned_ev_negative_shared_io",
        "unaligned_ev_negative_independent",
        "unaligned_ev_max_independent",
    } <= names
    assert "decoder_cosine_fraction_independent" not in names
    assert (
        results.data["claims"]["unaligned_ev_max_shared_io"]["check_of"]
        == "unaligned_ev_negative_shared_io"
    )


def test_figure_is_legible(planted):
    _, _, res, _ = planted
    fig = universality.plot([res, res], figures.column_figure)
    assert figures.legibility_problems(fig) == []
    tab = universality.headline_table([res])
    assert len(tab) <= 15 and tab[res.title].str.contains(r"\[").any()


def test_chapter_outputs_names_every_table_and_figure(planted):
    """What chapters 11 and 21 glue: each table is the table function's own (no number moved),
    the figure is legible, a run without the shared-seed demo glues ``None`` in its place, and
    two cohorts give a cohort column."""
    import dataclasses

    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.figure import Figure

    _, _, res, _ = planted
    out = universality.chapter_outputs([res], figures.column_figure)
    assert list(out) == [
        "site_table",
        "paradox_figure",
        "headline_table",
        "ev_statistics_table",
        "shared_seed_table",
    ]
    pd.testing.assert_frame_equal(out["site_table"], universality.site_table([res]))
    pd.testing.assert_frame_equal(out["headline_table"], universality.headline_table([res]))
    pd.testing.assert_frame_equal(out["ev_statistics_table"], universality.ev_statistics([res]))
    assert res.shared_seed is not None
    pd.testing.assert_frame_equal(out["shared_seed_table"], universality.shared_seed_table([res]))
    assert isinstance(out["paradox_figure"], Figure)
    assert figures.legibility_problems(out["paradox_figure"]) == []
    plt.close(out["paradox_figure"])

    no_demo = dataclasses.replace(res, shared_seed=None, cohort="independent")
    two = universality.chapter_outputs([res, no_demo], figures.column_figure)
    plt.close(two["paradox_figure"])
    assert "cohort" in two["site_table"].columns
    assert len(two["site_table"]) == 2 * len(out["site_table"])
    assert (
        universality.chapter_outputs([no_demo], figures.column_figure)["shared_seed_table"] is None
    )
    plt.close("all")
    with pytest.raises(ValueError, match="results"):
        universality.chapter_outputs([], figures.column_figure)


def test_bad_input_is_named():
    acts, _ = _planted_acts()
    with pytest.raises(TypeError, match="PairedActs"):
        universality.measure({"a": {}}, seed=0, **SAE)
    with pytest.raises(ValueError, match="anchor"):
        universality.measure(acts, anchor="seedZ", seed=0, **SAE)
    with pytest.raises(ValueError, match="sae_k"):
        universality.measure(acts, seed=0, **{**SAE, "sae_k": 0})
    with pytest.raises(ValueError, match="sae_expansion"):
        universality.measure(acts, seed=0, **{**SAE, "sae_expansion": 0.01})
    one = PairedActs(
        {"a": acts.fit["seedA"]}, {"a": acts.eval["seedA"]}, list(SITES), {"a": None}, ["a"]
    )
    with pytest.raises(ValueError, match="two seeds"):
        universality.measure(one, seed=0, **SAE)
    with pytest.raises(ValueError, match="at least one"):
        universality.plot([], figures.column_figure)


#: the experiment's parameters: both chapters declare them; the analysis ones with one default
EXPERIMENT_PARAMS = (
    "seed",
    "sae_expansion",
    "sae_k",
    "sae_n_tokens",
    "sae_batch_size",
    "shared_seed_demo",
)
SAME_DEFAULT = ("seed", "shared_seed_demo")


def test_chapters_declare_the_same_experiment_parameters():
    """Chapters 11 and 21 name the experiment's parameters alike (the SAE sizes are the rung's
    own, sized to its activations; the analysis switches have one default)."""
    dyck, pythia = (
        parameter_specs("11_dyck_universality"),
        parameter_specs("21_pythia_universality"),
    )
    for name in EXPERIMENT_PARAMS:
        assert name in dyck and name in pythia, name
        assert dyck[name].type == pythia[name].type, name
    for name in SAME_DEFAULT:
        assert dyck[name].default == pythia[name].default, name
    for old in ("d_sae", "k", "sae_tokens", "sae_batch"):
        assert old not in dyck, f"chapter 11 still declares {old}"
