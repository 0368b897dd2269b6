"""Tables built from the chapters' results files (never from numbers typed into prose).

The verdict chapter (``90_verdict``) and the conclusions (``91_conclusions``) read every
``<results_dir>/<chapter>.json`` through these functions, so rebuilding a chapter with other
parameters changes the tables.

**How a claim is classified.** A claim of kind ``paper`` is the paper's own statistic; its
*status* is decided by the paper's own bar first (:func:`claim_status`):

- :data:`HOLDS` ("replicated"): our value meets (or misses) the paper's criterion exactly as the
  paper reports its own value does, and no stricter check of ours contradicts it;
- :data:`HOLDS_PAPER_ONLY`: it replicates on the paper's terms, but our stricter version of it
  fails — a check naming it in ``check_of``, the claim's own strict criterion, or the
  calibrated p-value attached to a "not rejected at α" criterion;
- :data:`EXCEEDS`: the paper reports missing its own bar (``paper_verdict=False``: bar P,
  cross-seed C ≡ Pr) and our models *meet* it — better than the paper, not a failure;
- :data:`FAILS`: the paper reports meeting its bar and our value, with its statistic, misses it;
- :data:`NOT_COMPUTED`: the value is NaN (stored as null): nothing was measured.

A claim of kind ``check`` (or one whose description starts "ours" / "stricter", whatever kind it
was recorded with) is our own and is never counted among the paper's claims. Its outcome
(:func:`check_outcome`) is pass / fail, or :data:`CHECK_PAPER_BAR_ONLY` when it passes a
"p > α" criterion while its own calibrated ``p_value`` rejects. A check that **tests one of the
paper's tests** on a planted answer (chapter 02: "the paper's KS does not reject a signed
permutation") reads the other way round: its "pass" means the paper's test failed to detect a
matrix known not to be Haar — bad news for that test — and it is reported as
:data:`TEST_BLIND` / :data:`TEST_DETECTS`, never as a green pass. Such claims are recognised by
name (:data:`TEST_OF_A_TEST_MARKERS`) or listed by their chapter in the ``claim_meta`` value.

**Per-chapter metadata** (optional): a chapter may record
``results.record("claim_meta", {claim_name: {"target": "ch16-bar-p", "tests_a_test": True}})``;
``target`` is a MyST label in that chapter that the verdict links to (instead of the chapter).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polyrot_utils.book.results import _check_complete, load_all_results, results_dir

__all__ = [
    "CHECK_FAIL",
    "CHECK_ORDER",
    "CHECK_PAPER_BAR_ONLY",
    "CHECK_PASS",
    "EXCEEDS",
    "FAILS",
    "HOLDS",
    "HOLDS_PAPER_ONLY",
    "NOT_COMPUTED",
    "RUNGS",
    "STATUS_ORDER",
    "TEST_BLIND",
    "TEST_DETECTS",
    "TEST_OF_A_TEST_MARKERS",
    "calibrated_p_rejects",
    "chapter_link",
    "check_outcome",
    "checks_of",
    "claim_status",
    "claims_table",
    "compact_claims",
    "conclusion_groups",
    "counts_figure",
    "interval_methods",
    "interval_text",
    "is_check",
    "md_escape",
    "open_questions",
    "paper_claims_view",
    "provenance",
    "rung_of",
    "verdict_counts",
    "verdict_tables",
]

RUNGS = (
    ("0", "planted / foundations"),
    ("1", "Dyck-3 toy"),
    ("2", "Pythia architecture"),
    ("9", "synthesis"),
)

#: the statuses of a paper claim, in the order the verdict and conclusions show them
HOLDS = "replicated"
HOLDS_PAPER_ONLY = "holds on the paper's terms; fails ours"
EXCEEDS = "meets a bar the paper reports missing"
FAILS = "did not replicate on the paper's terms"
NOT_COMPUTED = "not computed in this build"
STATUS_ORDER = (HOLDS, HOLDS_PAPER_ONLY, EXCEEDS, FAILS, NOT_COMPUTED)

#: the outcomes of one of our checks
CHECK_PASS = "our check passes"
CHECK_PAPER_BAR_ONLY = "passes the paper's test; our calibrated test rejects"
CHECK_FAIL = "our check fails"
TEST_BLIND = "the paper's test is blind: it accepts a planted non-Haar matrix"
TEST_DETECTS = "the paper's test detects the planted non-Haar matrix"
CHECK_ORDER = (CHECK_PASS, CHECK_PAPER_BAR_ONLY, CHECK_FAIL, TEST_DETECTS, TEST_BLIND, NOT_COMPUTED)

#: claim-name fragments of checks that test one of the paper's tests on a planted answer (a
#: matrix known not to be Haar), where "passed" means the paper's test did NOT detect it
TEST_OF_A_TEST_MARKERS = (
    "_accepts_",
    "accepts_signed_permutation",
    "frobenius_within_0.1pct_signed_permutation",
    "frobenius_within_0.1pct_two_haar_blocks",
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
#: a criterion "value > threshold" with threshold at most this is a significance level: "p > α"
_ALPHA_MAX = 0.2


def rung_of(chapter: str) -> str:
    """Chapters are numbered by rung: 0x foundations, 1x Dyck-3, 2x Pythia, 9x synthesis."""
    for prefix, name in RUNGS:
        if chapter.startswith(prefix):
            return name
    return "other"


def _fmt(value: Any) -> str:
    """A number for a table cell (3 significant digits, see ``figures.format_number``)."""
    from polyrot_utils.book.figures import format_number

    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return format_number(value, 3)


def _is_test_of_a_test(name: str, meta: Mapping[str, Any]) -> bool:
    if "tests_a_test" in meta:
        return bool(meta["tests_a_test"])
    return any(m in name for m in TEST_OF_A_TEST_MARKERS)


def claims_table(
    directory: Path | str | None = None,
    exclude: tuple[str, ...] = (),
    *,
    require_complete: bool = True,
) -> list[dict[str, Any]]:
    """One row per recorded claim of every chapter: rung, chapter, claim, paper's value, ours,
    the paper's criterion and verdict, our stricter criterion and verdict, p-value, interval
    across seeds (``None`` when the claim carries none), kind, and where to link to.

    Refuses (:class:`~polyrot_utils.book.results.IncompleteResultsError`) a results file its chapter
    did not finish, unless ``require_complete=False``."""
    rows = []
    for chapter, data in load_all_results(directory).items():
        if chapter in exclude:
            continue
        if require_complete:
            _check_complete(data, Path(directory or results_dir()) / f"{chapter}.json")
        metas = (data.get("values") or {}).get("claim_meta") or {}
        for name, c in data.get("claims", {}).items():
            meta = {
                **(metas.get(name) or {}),
                **{k: c[k] for k in ("target", "tests_a_test") if k in c},
            }
            desc = c.get("description", "") or ""
            kind = c.get("kind", "paper")
            if kind == "paper" and desc.strip().lower().startswith(("ours", "stricter")):
                kind = "check"  # a row that says it is ours is never counted as the paper's claim
            rows.append(
                {
                    "rung": rung_of(chapter),
                    "chapter": chapter,
                    "claim": name,
                    "description": desc,
                    "paper": _fmt(c.get("paper_value")),
                    "ours": _fmt(c.get("value")),
                    "criterion": f"{c.get('op')} {_fmt(c.get('threshold'))}",
                    "op": c.get("op"),
                    "threshold": c.get("threshold"),
                    "verdict": "pass" if c.get("passed") else "FAIL",
                    "strict_criterion": (
                        f"{c['strict_op']} {_fmt(c['strict_threshold'])}"
                        if "strict_threshold" in c
                        else "—"
                    ),
                    "strict_verdict": ("pass" if c.get("strict_passed") else "FAIL")
                    if "strict_threshold" in c
                    else "—",
                    "p_value": _fmt(c.get("p_value")),
                    "p": c.get("p_value"),
                    "profile": data.get("profile"),
                    "kind": kind,
                    "source": c.get("source") or "—",
                    "paper_verdict": c.get("paper_verdict", True),
                    "check_of": c.get("check_of"),
                    "why_stricter": c.get("why_stricter") or "",
                    "passed": bool(c.get("passed")),
                    "value": c.get("value"),
                    "interval": c.get("interval"),
                    "target": meta.get("target"),
                    "tests_a_test": kind == "check" and _is_test_of_a_test(name, meta),
                }
            )
    return rows


def is_check(row: Mapping[str, Any]) -> bool:
    """Whether a row is our own (kind ``check``), not a claim of the paper."""
    return row.get("kind", "paper") == "check"


def checks_of(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """Our checks (kind ``check``) that name this paper claim in ``check_of``, same chapter."""
    return [
        r
        for r in rows
        if is_check(r) and r.get("check_of") == row["claim"] and r["chapter"] == row["chapter"]
    ]


def calibrated_p_rejects(row: Mapping[str, Any]) -> bool:
    """Whether a claim that *passes* a "not rejected at α" criterion (``value > α`` with α ≤ 0.2)
    carries a calibrated ``p_value`` that fails the same criterion: its own better test rejects."""
    p, op, thr = row.get("p"), row.get("op"), row.get("threshold")
    if p is None or thr is None or op not in (">", ">=") or not 0 < float(thr) <= _ALPHA_MAX:
        return False
    return bool(row.get("passed")) and not _OPS[op](float(p), float(thr))


def _strict_fails(row: Mapping[str, Any]) -> bool:
    return row.get("strict_verdict") == "FAIL" or calibrated_p_rejects(row)


def check_outcome(row: Mapping[str, Any]) -> str:
    """The outcome of one of our checks (see the module docstring): :data:`CHECK_PASS`,
    :data:`CHECK_PAPER_BAR_ONLY`, :data:`CHECK_FAIL`, :data:`TEST_BLIND` / :data:`TEST_DETECTS`
    for a test of one of the paper's tests, or :data:`NOT_COMPUTED`."""
    if row.get("value") is None:
        return NOT_COMPUTED
    if row.get("tests_a_test"):
        return TEST_BLIND if row["passed"] else TEST_DETECTS
    if row["passed"]:
        return CHECK_PAPER_BAR_ONLY if _strict_fails(row) else CHECK_PASS
    return CHECK_FAIL


def claim_status(row: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """A paper claim's status, decided by the paper's own bar first (see the module docstring).

    ``checks`` are our checks of it (:func:`checks_of`); when the paper reports missing its own
    bar (``paper_verdict=False``), a check's bar points the other way, so checks are shown
    beside the claim but do not change its status. A check that was not computed is no
    evidence either way."""
    if row.get("value") is None:
        return NOT_COMPUTED
    paper_meets = bool(row.get("paper_verdict", True))
    if row["passed"] != paper_meets:
        return EXCEEDS if row["passed"] else FAILS
    if not paper_meets:
        return HOLDS
    ours_fail = _strict_fails(row) or any(
        check_outcome(c) in (CHECK_FAIL, CHECK_PAPER_BAR_ONLY) for c in checks
    )
    return HOLDS_PAPER_ONLY if ours_fail else HOLDS


def provenance(row: Mapping[str, Any]) -> str:
    """Where a row comes from: the paper's claim, our stricter version of one (with why), a test
    of one of the paper's tests on a planted answer, or our own check."""
    if not is_check(row):
        return "the paper's claim"
    if row.get("tests_a_test"):
        return "our test of the paper's test, on a matrix known not to be Haar"
    if row.get("check_of"):
        why = row.get("why_stricter") or ""
        return "our stricter version of the paper's claim" + (f": {why}" if why else "")
    return "our own check"


def interval_text(iv: Mapping[str, Any] | None) -> str:
    """``"point [lo, hi]"`` for an interval across seeds, ``"—"`` when the claim carries none."""
    if not iv:
        return "—"
    return (
        f"{_fmt(iv.get('point'))} [{_fmt(iv.get('lo'))}, {_fmt(iv.get('hi'))}] (n = {iv.get('n')})"
    )


def interval_methods(rows: list[dict[str, Any]]) -> list[str]:
    """The distinct interval methods of the rows, as ``"<method>, <level> %"`` strings."""
    out = []
    for r in rows:
        iv = r.get("interval")
        if iv:
            s = f"{iv.get('method')}, {100 * float(iv.get('level', 0)):.0f} % percentile interval"
            if s not in out:
                out.append(s)
    return out


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$#~])")


def md_escape(text: Any) -> str:
    """Text for a MyST table cell or list item: Markdown punctuation escaped (``|`` would end the
    cell, ``$`` start maths), newlines flattened, and a zero-width space after ``/ _ . :`` in
    long tokens so that a file path or identifier can wrap instead of widening the table."""
    s = " ".join(str(text).split())
    s = re.sub(r"\S{22,}", lambda m: re.sub(r"([/_.:,=])", "\\1\u200b", m.group(0)), s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def chapter_link(row: Mapping[str, Any]) -> str:
    """A MyST link to the claim's chapter (``{doc}``), or to its named target there (``{ref}``)
    when the chapter names one. Written for a page in ``notebooks/`` (the chapters' folder)."""
    chapter = row["chapter"]
    label = f"ch. {chapter.split('_')[0]}"
    if row.get("target"):
        return f"{{ref}}`{label} <{row['target']}>`"
    return f"{{doc}}`{label} <{chapter}>`"


def _ours_cell(r: Mapping[str, Any]) -> str:
    p = "" if r.get("p_value", "—") == "—" else f", calibrated p = {r['p_value']}"
    if r.get("value") is None:
        return "not computed (NaN)"
    if r.get("tests_a_test"):
        verdict = "accepted (blind)" if r["passed"] else "rejected (detects)"
        return f"{r['ours']}: the paper's test {verdict}{p}"
    return f"{r['ours']} ({r['criterion']}: {r['verdict']}{p})"


def paper_claims_view(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per paper claim with the three things side by side — what the paper reports, what
    this book gets with the paper's statistic (and the paper's criterion with its verdict), and
    our stricter check(s) — plus the status, sorted by the paper's own bar (status order
    :data:`STATUS_ORDER`, then rung and chapter), never by ours."""
    out = []
    for r in rows:
        if is_check(r):
            continue
        cs = checks_of(rows, r)
        ours_check = "; ".join(
            f"{c['verdict']}: {c['ours']} {c['criterion']} ({c['why_stricter']})" for c in cs
        )
        if r["strict_verdict"] != "—":
            ours_check = (
                ours_check + "; " if ours_check else ""
            ) + f"{r['strict_verdict']} ({r['strict_criterion']})"
        if calibrated_p_rejects(r):
            ours_check = (
                ours_check + "; " if ours_check else ""
            ) + f"FAIL (calibrated p = {r['p_value']})"
        expect = "meets" if r.get("paper_verdict", True) else "misses"
        out.append(
            {
                "status": claim_status(r, cs),
                "rung": r["rung"],
                "chapter": r["chapter"],
                "claim": r["description"] or r["claim"],
                "paper reports": f"{r['paper']} ({expect} its bar)",
                "this book, paper's statistic": (
                    f"{r['ours']} — {r['verdict']} ({r['criterion']})"
                    + ("" if r["p_value"] == "—" else f", p = {r['p_value']}")
                ),
                "across seeds": interval_text(r.get("interval")),
                "our stricter check": ours_check or "—",
                "source": r["source"],
            }
        )
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    rung_order = {name: i for i, (_, name) in enumerate(RUNGS)}
    out.sort(key=lambda x: (order[x["status"]], rung_order.get(x["rung"], 99), x["chapter"]))
    return out


_STATUS_KEY = {
    HOLDS: "replicated",
    HOLDS_PAPER_ONLY: "paper_terms_only",
    EXCEEDS: "exceeds",
    FAILS: "failed",
    NOT_COMPUTED: "not_computed",
}
_CHECK_KEY = {
    CHECK_PASS: "checks_pass",
    CHECK_PAPER_BAR_ONLY: "checks_paper_bar_only",
    CHECK_FAIL: "checks_fail",
    TEST_BLIND: "paper_test_blind",
    TEST_DETECTS: "paper_test_detects",
    NOT_COMPUTED: "checks_not_computed",
}


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per rung, the paper's claims counted by the paper's own bar (``replicated``,
    ``paper_terms_only``, ``exceeds``, ``failed``, ``not_computed``, total ``paper_claims``) and
    our checks by outcome (``checks_pass``, ``checks_paper_bar_only``, ``checks_fail``,
    ``checks_not_computed``), with the tests of the paper's tests apart
    (``paper_test_blind`` — bad news for the paper's test — and ``paper_test_detects``)."""
    out: dict[str, dict[str, int]] = {}
    keys = ["paper_claims", *_STATUS_KEY.values(), *_CHECK_KEY.values()]
    for r in rows:
        c = out.setdefault(r["rung"], dict.fromkeys(keys, 0))
        if is_check(r):
            c[_CHECK_KEY[check_outcome(r)]] += 1
            continue
        c["paper_claims"] += 1
        c[_STATUS_KEY[claim_status(r, checks_of(rows, r))]] += 1
    return out


#: the counts chart's segments: (count key, label, colour, hatch); red is kept for failures of
#: the paper's claims and for the paper's blind tests, never for good news
_SEGMENTS = {
    "paper": [
        ("replicated", "replicated", "#2e7d32", ""),
        ("paper_terms_only", "paper's terms only", "#f9a825", ""),
        ("exceeds", "ours meet a bar the paper misses", "#81c784", "//"),
        ("failed", "did not replicate", "#c62828", ""),
        ("not_computed", "not computed", "#9e9e9e", ""),
    ],
    "checks": [
        ("checks_pass", "our check: pass", "#64b5f6", ""),
        ("checks_paper_bar_only", "our check: paper's test only", "#ffcc80", "//"),
        ("checks_fail", "our check: fail", "#6a1b9a", ""),
        ("checks_not_computed", "not computed", "#bdbdbd", ""),
    ],
    "tests": [
        ("paper_test_detects", "paper's test detects", "#1565c0", ""),
        ("paper_test_blind", "paper's test blind", "#8d0000", "xx"),
    ],
}
_DARK = {"#2e7d32", "#c62828", "#6a1b9a", "#8d0000", "#1565c0"}


def counts_figure(counts: Mapping[str, Mapping[str, int]]):
    """A column-width horizontal stacked bar chart of :func:`verdict_counts`: per rung, one bar
    for the paper's claims (by the paper's own bar), one for our checks, and one for the tests
    of the paper's tests on planted answers (where "accepted" is bad news, drawn dark red and
    hatched, never green). Returns the figure (show it with ``figures.show``)."""
    from matplotlib.patches import Patch

    from polyrot_utils.book.figures import column_figure

    labels, parts = [], []
    short = {
        "planted / foundations": "planted",
        "Dyck-3 toy": "Dyck-3",
        "Pythia architecture": "Pythia",
    }
    for rung, c in counts.items():
        for group, title in (
            ("paper", "paper's claims"),
            ("checks", "our checks"),
            ("tests", "paper's tests"),
        ):
            if sum(c.get(k, 0) for k, *_ in _SEGMENTS[group]):
                labels.append(f"{short.get(rung, rung)}: {title}")
                parts.append((group, c))
    fig, ax = column_figure(height=2.2 + 0.4 * max(1, len(labels)))
    used: dict[str, Any] = {}
    for i, (group, c) in enumerate(parts):
        left = 0
        for key, lab, colour, hatch in _SEGMENTS[group]:
            n = c.get(key, 0)
            if n:
                ax.barh(i, n, left=left, color=colour, hatch=hatch, edgecolor="white", height=0.7)
                ax.text(
                    left + n / 2,
                    i,
                    str(n),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if colour in _DARK else "black",
                    bbox=dict(boxstyle="round,pad=0.15", fc=colour, ec="none") if hatch else None,
                )
                used.setdefault(
                    lab, Patch(facecolor=colour, hatch=hatch, edgecolor="white", label=lab)
                )
                left += n
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("number of recorded claims")
    order = [lab for g in _SEGMENTS.values() for _, lab, *_ in g]
    handles = [used[lab] for lab in dict.fromkeys(order) if lab in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    return fig


def _md_table(header: list[str], widths: list[int], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("-" * w for w in widths) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _row_cells(r: dict[str, Any], premise_cell: str, with_paper: bool) -> list[str]:
    cells = [
        md_escape(r["description"] or r["claim"]) + " — " + chapter_link(r),
        md_escape(provenance(r)),
    ]
    if with_paper:
        paper = "—"
        if not is_check(r):
            paper = md_escape(
                f"{r['paper']} ({'meets' if r.get('paper_verdict', True) else 'misses'} its bar)"
            )
        cells.append(paper)
    return [
        *cells,
        md_escape(_ours_cell(r)),
        md_escape(interval_text(r.get("interval"))),
        md_escape(premise_cell),
    ]


_COLUMNS = [
    ("claim (and its chapter)", 26),
    ("provenance", 14),
    ("the paper reports", 16),
    ("ours: value (criterion: verdict)", 16),
    ("across seeds", 12),
    ("premise", 12),
]


def verdict_tables(
    rows: list[dict[str, Any]], premise_cell: Callable[[str], str], max_rows: int = 15
) -> list[tuple[str, str, str, str]]:
    """The verdict page's tables, as ``(rung, kind, heading, MyST table)``: per rung, one group
    per status of the paper's claims (kind ``"paper"``; each paper claim followed by our stricter
    versions of it), then the tests of the paper's tests (kind ``"test"``), then our own checks
    by outcome (kind ``"check"``, without the paper's column); groups longer than ``max_rows``
    are split ("continued"). ``premise_cell(rung)`` gives the premise column's text. Render the
    tables with the cell's ``markdown_format`` set to ``myst`` (their links are MyST roles)."""
    rung_order = [name for _, name in RUNGS]
    out: list[tuple[str, str, str, str]] = []
    for rung in sorted(
        {r["rung"] for r in rows}, key=lambda x: rung_order.index(x) if x in rung_order else 99
    ):
        mine = [r for r in rows if r["rung"] == rung]
        groups: list[tuple[str, str, list[dict[str, Any]]]] = []
        attached: set[tuple[str, str]] = set()
        for status in STATUS_ORDER:
            body = []
            for r in mine:
                if not is_check(r) and claim_status(r, checks_of(rows, r)) == status:
                    body.append(r)
                    for c in checks_of(rows, r):
                        body.append(c)
                        attached.add((c["chapter"], c["claim"]))
            if body:
                groups.append(("paper", f"the paper's claims: {status}", body))
        for outcome in (
            TEST_BLIND,
            TEST_DETECTS,
            *(o for o in CHECK_ORDER if o not in (TEST_BLIND, TEST_DETECTS)),
        ):
            body = [
                r
                for r in mine
                if is_check(r)
                and (r["chapter"], r["claim"]) not in attached
                and check_outcome(r) == outcome
            ]
            if body:
                kind = "test" if outcome in (TEST_BLIND, TEST_DETECTS) else "check"
                groups.append(
                    (kind, outcome if outcome != NOT_COMPUTED else "our checks: not computed", body)
                )
        for kind, heading, body in groups:
            with_paper = kind == "paper"
            cols = [c for c in _COLUMNS if with_paper or c[0] != "the paper reports"]
            chunks = [body[i : i + max_rows] for i in range(0, len(body), max_rows)]
            for k, chunk in enumerate(chunks):
                h = heading + (f" (continued, {k + 1} of {len(chunks)})" if k else "")
                table = _md_table(
                    [c for c, _ in cols],
                    [w for _, w in cols],
                    [_row_cells(r, premise_cell(rung), with_paper) for r in chunk],
                )
                out.append((rung, kind, h, table))
    return out


def _sentence(
    r: dict[str, Any], checks: list[dict[str, Any]] | None = None, premise: str = ""
) -> str:
    """One claim as a Markdown list item for the conclusions: what it is, where it comes from
    (with a link to its chapter), the numbers, and the premise of its rung. MyST syntax."""
    desc = md_escape(r["description"] or r["claim"])
    link = chapter_link(r)
    seeds = (
        "" if not r.get("interval") else f"; across seeds {md_escape(interval_text(r['interval']))}"
    )
    prem = f" *Premise: {md_escape(premise)}.*" if premise else ""
    p = "" if r["p_value"] == "—" else f"; calibrated p = {md_escape(r['p_value'])}"
    if not is_check(r):
        strict = (
            ""
            if r["strict_verdict"] == "—"
            else (
                f"; our stricter criterion ({md_escape(r['strict_criterion'])}): "
                f"{r['strict_verdict']}"
            )
        )
        for c in checks or []:
            strict += (
                f"; our stricter check ({md_escape(c['why_stricter'])}): {md_escape(c['ours'])} "
                f"{md_escape(c['criterion'])}, {c['verdict']}"
            )
        own = "meets" if r.get("paper_verdict", True) else "misses"
        return (
            f"**{desc}** ({link}; the paper's claim) — the paper reports {md_escape(r['paper'])} "
            f"({own} its bar "
            f"{md_escape(r['criterion'])}); this book, with the paper's statistic: "
            f"{md_escape(r['ours'])}, "
            f"{r['verdict']}{p}{seeds}{strict}. Source: {md_escape(r['source'])}.{prem}"
        )
    return (
        f"**{desc}** ({link}; {md_escape(provenance(r))}) — "
        f"{md_escape(_ours_cell(r))}{seeds}.{prem}"
    )


def conclusion_groups(
    rows: list[dict[str, Any]], premise_of: Callable[[str], str] | None = None
) -> dict[str, list[str]]:
    """One MyST sentence per claim, grouped: the paper's claims by the paper's own bar
    (``replicated``, ``paper_only``, ``exceeds``, ``failed``, ``not_computed``); our checks that
    pass the paper's test but fail our calibrated one (``checks_paper_bar_only``); the tests of
    the paper's tests (``tests_blind``, ``tests_detect``); the rest of our checks
    (``checks_passed``, ``checks_failed``, ``checks_not_computed``). ``premise_of(rung)`` adds the
    rung's premise to each paper claim's sentence."""
    groups: dict[str, list[str]] = {
        k: []
        for k in (
            "replicated",
            "paper_only",
            "exceeds",
            "failed",
            "not_computed",
            "checks_paper_bar_only",
            "tests_blind",
            "tests_detect",
            "checks_passed",
            "checks_failed",
            "checks_not_computed",
        )
    }
    key = {
        HOLDS: "replicated",
        HOLDS_PAPER_ONLY: "paper_only",
        EXCEEDS: "exceeds",
        FAILS: "failed",
        NOT_COMPUTED: "not_computed",
    }
    ckey = {
        CHECK_PASS: "checks_passed",
        CHECK_PAPER_BAR_ONLY: "checks_paper_bar_only",
        CHECK_FAIL: "checks_failed",
        TEST_BLIND: "tests_blind",
        TEST_DETECTS: "tests_detect",
        NOT_COMPUTED: "checks_not_computed",
    }
    for r in rows:
        if is_check(r):
            groups[ckey[check_outcome(r)]].append(_sentence(r))
        else:
            cs = checks_of(rows, r)
            prem = premise_of(r["rung"]) if premise_of else ""
            groups[key[claim_status(r, cs)]].append(_sentence(r, cs, prem))
    return groups


def open_questions(rows: list[dict[str, Any]], profile: str | None) -> list[str]:
    """What a build with these results did not test, derived from the profile and the rows."""
    chapters = {r["chapter"] for r in rows}
    out = []
    if profile != "paper":
        out.append(
            f"This build ran the `{profile}` profile: small models and budgets on a CPU. "
            "The `paper` profile (the paper's training budgets, d_model 512 stand-ins, GPU) may "
            "change "
            "numbers that depend on how well the models are trained."
        )
    if not any(c.startswith("2") for c in chapters):
        out.append("The Pythia rung recorded no claims in this build.")
    n_nc = sum(1 for r in rows if r.get("value") is None)
    if n_nc:
        out.append(
            f"{n_nc} recorded claim(s) could not be computed in this build (NaN); they are listed "
            "as "
            "not computed, never as failures."
        )
    out.append(
        "The real PolyPythias need a Hugging Face cache or network (`use_hub: true`); the offline "
        "default "
        "analyses locally trained GPT-NeoX stand-ins with Pythia-70m's architecture choices, "
        "which are "
        "much weaker language models than Pythia-70m."
    )
    out.append("Frontier-scale (10B+) replication remains open, as the paper itself says.")
    return out


def compact_claims(
    rows: list[dict[str, Any]], rung: str, kind: str = "paper"
) -> list[dict[str, str]]:
    """The verdict table's rows for one rung and kind, with only the columns a reader needs: for
    paper claims the claim, the paper's value, ours, and each criterion with its verdict in one
    cell; for checks the check, the paper claim it checks, why it differs, ours and its verdict."""
    out = []
    for r in rows:
        if r["rung"] != rung or ("check" if is_check(r) else "paper") != kind:
            continue
        strict = (
            "—"
            if r["strict_verdict"] == "—"
            else f"{r['strict_verdict']} ({r['strict_criterion']})"
        )
        ours = r["ours"] + ("" if r["p_value"] == "—" else f" (p = {r['p_value']})")
        if kind == "check":
            out.append(
                {
                    "check": r["description"] or r["claim"],
                    "chapter": r["chapter"],
                    "checks paper claim": r.get("check_of") or "—",
                    "why it differs": r.get("why_stricter") or "—",
                    "ours": ours,
                    "verdict": f"{r['verdict']} ({r['criterion']})",
                }
            )
            continue
        out.append(
            {
                "claim": r["description"] or r["claim"],
                "chapter": r["chapter"],
                "paper": r["paper"],
                "ours": ours,
                "paper's bar": f"{r['verdict']} ({r['criterion']})",
                "our stricter bar": strict,
            }
        )
    return out
