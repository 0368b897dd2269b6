"""The claim API: paper claims carry the paper's number and its source; checks say why."""

import json

import pytest

from polyrot_utils.book import report
from polyrot_utils.book.results import ChapterResults, paper_claim_problems


@pytest.fixture
def res(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_RESULTS_DIR", str(tmp_path))
    return ChapterResults("99_test")


def test_paper_claim_needs_paper_value_and_source(res):
    with pytest.raises(ValueError, match="paper_value"):
        res.claim("a", value=1.0, threshold=0.0, op=">", kind="paper", source="§1")
    with pytest.raises(ValueError, match="paper_value"):
        res.claim("a", value=1.0, threshold=0.0, op=">", kind="paper", paper_value=" ", source="§1")
    with pytest.raises(ValueError, match="source"):
        res.claim("a", value=1.0, threshold=0.0, op=">", kind="paper", paper_value=0.5)
    with pytest.raises(ValueError, match="source"):
        res.claim("a", value=1.0, threshold=0.0, op=">", paper_value=0.5)  # the default kind is paper
    with pytest.raises(ValueError, match="check_of"):
        res.claim("a", value=1.0, threshold=0.0, op=">", paper_value=0.5, source="§1", check_of="b", why_stricter="x")


def test_check_of_needs_why_stricter(res):
    with pytest.raises(ValueError, match="why_stricter"):
        res.claim("c", value=1.0, threshold=0.0, op=">", kind="check", check_of="a")
    res.claim("c", value=1.0, threshold=0.0, op=">", kind="check")  # a plain instrument check is fine


def test_paper_verdict_and_status(res, tmp_path):
    # the paper reports its own bar P as failing; so do we: it replicates
    assert not res.claim("p", value=0.3, threshold=1e-3, op="<", kind="paper", paper_value="0.26–0.30 (fails)",
                         source="§7 table", paper_verdict=False)
    res.claim("p_ours", value=0.3, threshold=1e-3, op="<", kind="check", check_of="p", why_stricter="worst pair")
    res.claim("g", value=0.01, threshold=0.025, op="<=", kind="paper", paper_value=0.025, source="§8.2")
    res.claim("g_heldout", value=0.05, threshold=0.025, op="<=", kind="check", check_of="g",
              why_stricter="held-out rows")
    res.claim("f", value=0.5, threshold=0.98, op=">=", kind="paper", paper_value=0.98, source="§7.1")
    res.claim("n", value=float("nan"), threshold=1e-3, op="<", kind="paper", paper_value="fails", source="§7",
              paper_verdict=False)  # not computed: never "replicated", even where the paper reports a failure
    data = json.loads((tmp_path / "99_test.json").read_text())
    assert data["claims"]["p"]["replicates"] is True and data["claims"]["f"]["replicates"] is False
    assert data["claims"]["n"]["replicates"] is False
    assert paper_claim_problems(data) == []
    rows = report.claims_table(tmp_path, require_complete=False)  # written outside the runner
    view = {v["chapter"] + v["claim"]: v for v in report.paper_claims_view(rows)}
    statuses = [v["status"] for v in report.paper_claims_view(rows)]
    assert statuses == sorted(statuses, key=report.STATUS_ORDER.index)  # sorted by the paper's bar
    st = {r["claim"]: report.claim_status(r, report.checks_of(rows, r)) for r in rows if r["kind"] == "paper"}
    # not computed is its own status: never "replicated", and not a failure of the paper either
    assert st == {"p": report.HOLDS, "g": report.HOLDS_PAPER_ONLY, "f": report.FAILS, "n": report.NOT_COMPUTED}
    assert any("held-out rows" in v["our stricter check"] for v in view.values())
    counts = report.verdict_counts(rows)
    c = next(iter(counts.values()))
    assert (c["paper_claims"], c["replicated"], c["paper_terms_only"], c["failed"], c["not_computed"],
            c["checks_pass"]) == (4, 1, 1, 1, 1, 0)
    assert c["checks_fail"] == 2  # p_ours fails its bar as the paper's claim p does: p stays replicated
    groups = report.conclusion_groups(rows)
    assert len(groups["paper_only"]) == 1 and "paper reports" in groups["paper_only"][0]


def test_problems_flag_old_style_paper_claims():
    data = {"chapter": "x", "claims": {"old": {"value": 1, "paper_value": None}, "ok": {"kind": "check"}}}
    assert paper_claim_problems(data) == ["x: paper claim 'old' has no paper_value", "x: paper claim 'old' has no source"]


def test_compact_checks_name_the_claim_and_why(res, tmp_path):
    res.claim("g", value=0.01, threshold=0.025, op="<=", kind="paper", paper_value=0.025, source="§8.2")
    res.claim("g_heldout", value=0.05, threshold=0.025, op="<=", kind="check", check_of="g", why_stricter="held-out rows")
    rows = report.claims_table(tmp_path, require_complete=False)  # written outside the runner
    (c,) = report.compact_claims(rows, rows[0]["rung"], "check")
    assert c["checks paper claim"] == "g" and c["why it differs"] == "held-out rows" and c["verdict"].startswith("FAIL")
