"""The verdict's classifier, on hand-made claims: one for every group the verdict and the
conclusions show, written through the real claim API and read back through ``claims_table``."""

from __future__ import annotations

import json

import pytest

from polyrot_utils.book import findings, report
from polyrot_utils.book.results import ChapterResults


def _complete(tmp_path, chapter):
    path = tmp_path / f"{chapter}.json"
    data = json.loads(path.read_text())
    data["complete"] = True
    path.write_text(json.dumps(data))


@pytest.fixture
def rows(tmp_path, monkeypatch):
    """One claim per group, in a Dyck chapter (16), a Pythia chapter (23) and chapter 02."""
    monkeypatch.setenv("POLYROT_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("POLYROT_RESULTS_WRITE_DIR", raising=False)
    bars = ChapterResults("16_dyck_four_bars")
    iv = {
        "point": 0.02,
        "lo": 0.01,
        "hi": 0.03,
        "n": 3,
        "level": 0.9,
        "method": "bootstrap over seeds",
    }
    # replicated: meets the paper's bar as the paper says, and its stricter check passes
    bars.claim(
        "gap",
        value=0.02,
        threshold=0.025,
        op="<=",
        paper_value="within 0.025",
        source="§8.2",
        interval=iv,
    )
    bars.claim(
        "gap_heldout",
        value=0.02,
        threshold=0.025,
        op="<=",
        kind="check",
        check_of="gap",
        why_stricter="held-out rows",
    )
    # holds on the paper's terms only: the stricter check fails
    bars.claim(
        "gap2", value=0.02, threshold=0.025, op="<=", paper_value="within 0.025", source="§8.2"
    )
    bars.claim(
        "gap2_heldout",
        value=0.2,
        threshold=0.025,
        op="<=",
        kind="check",
        check_of="gap2",
        why_stricter="held-out rows",
    )
    # the paper reports failing bar P; ours fail too: replicated
    bars.claim(
        "bar_P_aligned_independent",
        value=7.0,
        threshold=1e-3,
        op="<",
        paper_value="6.8–8.6 (fails)",
        source="§8.4",
        paper_verdict=False,
    )
    # the paper reports failing bar P; ours pass: better than the paper, never "did not replicate"
    bars.claim(
        "bar_P_aligned_shared_io",
        value=1e-4,
        threshold=1e-3,
        op="<",
        paper_value="0.26–0.30 (fails)",
        source="§7",
        paper_verdict=False,
    )
    # the paper reports meeting its bar; ours miss it: did not replicate
    bars.claim("univ", value=0.5, threshold=0.98, op=">=", paper_value=0.98, source="§7.1")
    # not computed: NaN
    bars.claim("nan_claim", value=float("nan"), threshold=0.5, op=">", paper_value=0.9, source="§7")
    # a claim recorded as the paper's whose description says it is ours: counted as our check
    bars.claim(
        "mislabelled",
        value=1.0,
        threshold=0.5,
        op=">",
        paper_value=0.9,
        source="§7",
        description="ours: a stricter number",
    )
    # plain checks
    bars.claim(
        "planted_ok",
        value=1.0,
        threshold=0.9,
        op=">=",
        kind="check",
        description="planted answer found",
    )
    bars.claim(
        "control_bad", value=0.1, threshold=0.9, op=">=", kind="check", description="control fails"
    )
    bars.record("claim_meta", {"univ": {"target": "ch16-bar-b"}})
    _complete(tmp_path, "16_dyck_four_bars")

    haar = ChapterResults("23_pythia_haar")
    # the paper's pooled KS passes (p > α), but the calibrated p attached to it rejects
    haar.claim(
        "paper_pooled_ks_not_rejected",
        value=0.6,
        threshold=0.05,
        op=">",
        paper_value="p = 0.41",
        source="§9",
        p_value=2e-4,
    )
    # our check applying the paper's test: passes it, but its own calibrated p rejects
    haar.claim(
        "dyck_paper_ks_p_independent",
        value=0.6,
        threshold=0.05,
        op=">",
        kind="check",
        p_value=2e-4,
        description="ours: the paper's pooled KS applied here",
    )
    _complete(tmp_path, "23_pythia_haar")

    planted = ChapterResults("02_is_r_haar")
    # tests of a test: "passed" = the paper's test failed to detect a planted non-Haar matrix
    planted.claim(
        "iid_ks_accepts_signed_permutation_d64",
        value=0.9,
        threshold=0.05,
        op=">",
        kind="check",
        description="The paper's iid KS does not reject a signed permutation",
    )
    planted.claim(
        "frobenius_within_0.1pct_signed_permutation_d64",
        value=0.5,
        threshold=1e-3,
        op="<=",
        kind="check",
        description="A signed permutation meets the paper's Frobenius criterion",
    )
    planted.claim(
        "calibrated_power_signed_permutation_d64",
        value=1.0,
        threshold=0.9,
        op=">=",
        kind="check",
        description="Calibrated verdict rejects signed permutations",
    )
    _complete(tmp_path, "02_is_r_haar")
    return report.claims_table(tmp_path)


def _by(rows):
    return {r["claim"]: r for r in rows}


def test_every_paper_claim_status(rows):
    r = _by(rows)
    st = {
        n: report.claim_status(x, report.checks_of(rows, x))
        for n, x in r.items()
        if not report.is_check(x)
    }
    assert st == {
        "gap": report.HOLDS,
        "gap2": report.HOLDS_PAPER_ONLY,
        "bar_P_aligned_independent": report.HOLDS,
        "bar_P_aligned_shared_io": report.EXCEEDS,
        "univ": report.FAILS,
        "nan_claim": report.NOT_COMPUTED,
        "paper_pooled_ks_not_rejected": report.HOLDS_PAPER_ONLY,  # its own calibrated p rejects
    }


def test_checks_and_tests_of_tests(rows):
    r = _by(rows)
    assert (
        report.is_check(r["mislabelled"]) and report.provenance(r["mislabelled"]) == "our own check"
    )
    out = {n: report.check_outcome(x) for n, x in r.items() if report.is_check(x)}
    assert out["planted_ok"] == report.CHECK_PASS and out["control_bad"] == report.CHECK_FAIL
    assert out["gap2_heldout"] == report.CHECK_FAIL
    assert out["dyck_paper_ks_p_independent"] == report.CHECK_PAPER_BAR_ONLY
    # a passing test of the paper's test is bad news for that test, never a green pass
    assert out["iid_ks_accepts_signed_permutation_d64"] == report.TEST_BLIND
    assert out["frobenius_within_0.1pct_signed_permutation_d64"] == report.TEST_DETECTS
    assert (
        out["calibrated_power_signed_permutation_d64"] == report.CHECK_PASS
    )  # our test: pass is good news
    assert "planted" not in report.provenance(r["planted_ok"])
    assert report.provenance(r["iid_ks_accepts_signed_permutation_d64"]).startswith(
        "our test of the paper's test"
    )
    assert report.provenance(r["gap2_heldout"]).endswith("held-out rows")
    assert report.provenance(r["gap"]) == "the paper's claim"


def test_counts_never_count_checks_or_blind_tests_as_paper_passes(rows):
    c = report.verdict_counts(rows)
    dyck, pythia, planted = c["Dyck-3 toy"], c["Pythia architecture"], c["planted / foundations"]
    assert dyck["paper_claims"] == 6  # the mislabelled "ours:" row is not among them
    assert (
        dyck["replicated"],
        dyck["paper_terms_only"],
        dyck["exceeds"],
        dyck["failed"],
        dyck["not_computed"],
    ) == (2, 1, 1, 1, 1)
    assert (dyck["checks_pass"], dyck["checks_fail"]) == (
        3,
        2,
    )  # gap_heldout, planted_ok, mislabelled
    assert (
        pythia["paper_terms_only"] == 1
        and pythia["checks_paper_bar_only"] == 1
        and pythia["replicated"] == 0
    )
    assert (
        planted["paper_claims"] == 0
        and planted["paper_test_blind"] == 1
        and planted["paper_test_detects"] == 1
    )
    assert planted["checks_pass"] == 1


def test_conclusion_groups_are_all_filled_and_link(rows):
    g = report.conclusion_groups(rows, premise_of=lambda rung: f"premise of {rung}")
    sizes = {k: len(v) for k, v in g.items()}
    assert sizes == {
        "replicated": 2,
        "paper_only": 2,
        "exceeds": 1,
        "failed": 1,
        "not_computed": 1,
        "checks_paper_bar_only": 1,
        "tests_blind": 1,
        "tests_detect": 1,
        "checks_passed": 4,
        "checks_failed": 2,
        "checks_not_computed": 0,
    }
    assert any(
        "paper\\_pooled" not in s and "calibrated p = 2.00e-04" in s for s in g["paper_only"]
    )
    assert all(
        "{doc}`ch. 16 <16_dyck_four_bars>`" in s or "{ref}" in s or "ch. 23" in s
        for s in g["replicated"]
    )
    assert (
        "{ref}`ch. 16 <ch16-bar-b>`" in g["failed"][0]
    )  # the chapter names a target for this claim
    assert "premise of Dyck-3 toy" in g["failed"][0]
    assert "0.0200 \\[0.0100, 0.0300\\] (n = 3)" in next(
        s for s in g["replicated"] if "gap" in s or "within" in s
    )


def test_verdict_tables_group_split_and_escape(rows):
    tables = report.verdict_tables(rows, lambda rung: "met | fine", max_rows=2)
    heads = [(rung, h) for rung, _, h, _ in tables]
    assert ("Dyck-3 toy", f"the paper's claims: {report.HOLDS}") in heads
    assert ("Dyck-3 toy", f"the paper's claims: {report.EXCEEDS}") in heads
    assert ("planted / foundations", report.TEST_BLIND) in heads
    for _, _, _, md in tables:
        lines = md.splitlines()
        assert len(lines) - 2 <= 2  # max_rows
        n_cols = lines[0].count(" | ") + 1
        # every row has the header's number of cells: no '|' from the text leaks into a cell
        assert all(ln.replace("\\|", "").count("|") == n_cols + 1 for ln in lines)
    replicated = next(md for _, _, h, md in tables if h == f"the paper's claims: {report.HOLDS}")
    # each paper claim is followed by our stricter versions of it
    assert replicated.index("held-out rows") > replicated.index("within 0.025")
    assert any("continued" in h for _, _, h, _ in tables)
    kinds = {h: k for _, k, h, _ in tables}
    assert kinds[report.TEST_BLIND] == "test" and kinds[report.CHECK_PASS] == "check"
    # our own checks have no "the paper reports" column; the paper's claims do
    assert all(("the paper reports" in md) == (k == "paper") for _, k, _, md in tables)
    assert "0.0200 \\[0.0100, 0.0300\\] (n = 3)" in replicated
    assert report.interval_methods(rows) == ["bootstrap over seeds, 90 % percentile interval"]


def test_interval_and_escape_helpers():
    assert report.interval_text(None) == "—"
    assert (
        report.interval_text({"point": 0.5, "lo": 0.25, "hi": 0.75, "n": 4})
        == "0.500 [0.250, 0.750] (n = 4)"
    )
    s = report.md_escape("|x|_F $a$ experiments/independent_init/analyze_indep.py")
    assert "\\|x\\|" in s and "\\$a\\$" in s and "\u200b" in s and "\n" not in s


def test_status_by_theme_uses_the_same_classifier(rows):
    themes = {(t["rung"], t["theme"]): t for t in findings.status_by_theme(rows)}
    four = themes[("Dyck-3 toy", "the four bars")]
    assert (
        four[report.HOLDS],
        four[report.HOLDS_PAPER_ONLY],
        four[report.EXCEEDS],
        four[report.FAILS],
        four[report.NOT_COMPUTED],
    ) == (2, 1, 1, 1, 1)
    assert themes[("Pythia architecture", "R is Haar")][report.HOLDS_PAPER_ONLY] == 1


def test_counts_figure_is_legible(rows):
    import matplotlib

    matplotlib.use("Agg")
    from polyrot_utils.book import figures

    figures.use_book_style()
    fig = report.counts_figure(report.verdict_counts(rows))
    assert figures.legibility_problems(fig) == []
    labels = [x.get_text() for x in fig.legends[0].get_texts()]
    assert "replicated" in labels and any("blind" in lab for lab in labels)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][0] == "planted: our checks"
