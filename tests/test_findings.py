"""The findings page's numbers come from the results files: hand-made results, known answers."""

from __future__ import annotations

import math

from polyrot_utils.book import findings
from polyrot_utils.book.report import FAILS, HOLDS, HOLDS_PAPER_ONLY


def _results() -> dict:
    conv = [
        {"cohort": "shared_io", "seed": 0, "converged": True, "accuracy": {"train": {"tok": 1.0, "depth": 0.99995}}},
        {"cohort": "independent", "seed": 100, "converged": False, "accuracy": {"long": {"invalid": 0.98}}},
    ]
    return {
        "10_dyck_model_and_cohorts": {
            "values": {"convergence": conv},
            "claims": {"cross_seed_kl_max": {"value": 2e-5, "kind": "check"}},
        },
        "20_pythia_seeds": {"values": {"arch_n_params": 1_450_000, "training_tokens": 307_000,
                                        "heldout_loss_nats_mean": 5.3, "cross_seed_kl_mean": 0.28,
                                        "cross_seed_top1_mean": 0.65}},
        "02_is_r_haar": {"values": {
            "size_power_d16": {"alternative": ["haar", "signed_permutation"], "combined": [0.05, 0.5]},
            "size_power_d64": {"alternative": ["haar", "signed_permutation"], "combined": [0.04, 1.0]},
            "frobenius_rejects_haar_d64": 0.92,
            "iid_ks_power_signed_permutation_d64": 0.0,
            "paper_ks_test_d64": {"signed_permutation": {"statistic": 0.01, "pvalue": 0.99}},
        }},
    }


def test_premise_reads_convergence_and_agreement():
    p = findings.premise(_results())
    assert p["dyck_n_seeds"] == 2 and p["dyck_n_converged"] == 1
    assert p["dyck_min_accuracy"] == 0.98
    assert p["dyck_meets_premise"] is False  # one seed has not converged
    assert p["dyck_cross_seed_kl_max"] == 2e-5
    assert p["pythia_cross_seed_kl"] == 0.28 and p["pythia_meets_premise"] is False


def test_premise_missing_chapters_are_none():
    p = findings.premise({})
    assert p["dyck_n_seeds"] is None and p["dyck_meets_premise"] is None and p["pythia_loss_nats"] is None


def test_haar_instruments_use_the_largest_dimension():
    h = findings.haar_instruments(_results())
    assert h["d"] == 64
    assert h["frobenius_rejects_haar"] == 0.92
    assert h["paper_ks_p_signed_perm"] == 0.99
    assert h["calibrated_power_signed_perm"] == 1.0
    assert findings.haar_instruments({})["d"] is None


def _row(chapter, claim, passed, kind="paper", strict="—", paper_verdict=True, check_of=None, verdict=None):
    return {"chapter": chapter, "claim": claim, "rung": "Dyck-3 toy" if chapter.startswith("1") else "Pythia architecture",
            "kind": kind, "passed": passed, "value": 1.0, "strict_verdict": strict, "paper_verdict": paper_verdict,
            "check_of": check_of, "verdict": verdict or ("pass" if passed else "FAIL")}


def test_status_by_theme_counts_by_the_papers_bar():
    rows = [
        _row("12_dyck_rotation", "gap", True),                              # replicated
        _row("12_dyck_rotation", "gap_ours", False, kind="check", check_of="gap2"),
        _row("12_dyck_rotation", "gap2", True),                             # holds on paper's terms only
        _row("13_dyck_haar", "frob", False),                                # did not replicate
        _row("16_dyck_four_bars", "bar_P", False, paper_verdict=False),      # the paper reports it failing
        _row("22_pythia_rotation", "gap", False),
        _row("01_planted_rotations", "x", True),                            # no theme: not counted
    ]
    out = {(r["rung"], r["theme"]): r for r in findings.status_by_theme(rows)}
    rot = out[("Dyck-3 toy", "one rotation restores")]
    assert (rot[HOLDS], rot[HOLDS_PAPER_ONLY], rot[FAILS]) == (1, 1, 0)
    assert out[("Dyck-3 toy", "R is Haar")][FAILS] == 1
    assert out[("Dyck-3 toy", "the four bars")][HOLDS] == 1
    assert out[("Pythia architecture", "one rotation restores")][FAILS] == 1
    assert len(out) == 4


def test_fmt_never_prints_raw_floats_or_nan():
    assert findings.fmt(None) == "not computed in this build"
    assert findings.fmt(float("nan")) == "not computed in this build"
    assert findings.fmt(1_450_000) == "1,450,000"
    assert findings.fmt(104630.799103) == "1.05e+05"
    assert findings.fmt(0.123456) == "0.123"
    assert findings.fmt(True) == "yes"
    assert not math.isnan(float(findings.fmt(2e-5)))


def test_premise_note_says_whether_the_premise_holds():
    p = findings.premise(_results())
    assert "1/2 seeds" in findings.premise_note(p, "Dyck-3 toy") and "NOT" in findings.premise_note(p, "Dyck-3 toy")
    assert "NOT" in findings.premise_note(p, "Pythia architecture")
    assert "not recorded" in findings.premise_note(findings.premise({}), "Dyck-3 toy")
