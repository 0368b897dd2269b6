"""Tables built from the chapters' results files (never from numbers typed into prose).

The four-bar chapter and the conclusions read every ``<results_dir>/<chapter>.json`` through
these functions, so rebuilding a chapter with other parameters changes the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyrot_utils.book.results import _check_complete, load_all_results, results_dir


__all__ = [
    "FAILS",
    "HOLDS",
    "HOLDS_PAPER_ONLY",
    "RUNGS",
    "STATUS_ORDER",
    "checks_of",
    "claim_status",
    "claims_table",
    "compact_claims",
    "conclusion_groups",
    "open_questions",
    "paper_claims_view",
    "rung_of",
    "verdict_counts",
]

RUNGS = (("0", "planted / foundations"), ("1", "Dyck-3 toy"), ("2", "Pythia architecture"), ("9", "synthesis"))


def rung_of(chapter: str) -> str:
    """Chapters are numbered by rung: 0x foundations, 1x Dyck-3, 2x Pythia, 9x synthesis."""
    for prefix, name in RUNGS:
        if chapter.startswith(prefix):
            return name
    return "other"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def claims_table(
    directory: Path | str | None = None, exclude: tuple[str, ...] = (), *, require_complete: bool = True
) -> list[dict[str, Any]]:
    """One row per recorded claim of every chapter: rung, chapter, claim, paper's value, ours,
    the paper's criterion and verdict, our stricter criterion and verdict, p-value.

    Refuses (:class:`~polyrot_utils.book.results.IncompleteResultsError`) a results file its chapter
    did not finish, unless ``require_complete=False``."""
    rows = []
    for chapter, data in load_all_results(directory).items():
        if chapter in exclude:
            continue
        if require_complete:
            _check_complete(data, Path(directory or results_dir()) / f"{chapter}.json")
        for name, c in data.get("claims", {}).items():
            rows.append({
                "rung": rung_of(chapter),
                "chapter": chapter,
                "claim": name,
                "description": c.get("description", ""),
                "paper": _fmt(c.get("paper_value")),
                "ours": _fmt(c.get("value")),
                "criterion": f"{c.get('op')} {_fmt(c.get('threshold'))}",
                "verdict": "pass" if c.get("passed") else "FAIL",
                "strict_criterion": (f"{c['strict_op']} {_fmt(c['strict_threshold'])}" if "strict_threshold" in c else "—"),
                "strict_verdict": ("pass" if c.get("strict_passed") else "FAIL") if "strict_threshold" in c else "—",
                "p_value": _fmt(c.get("p_value")),
                "profile": data.get("profile"),
                "kind": c.get("kind", "paper"),
                "source": c.get("source") or "—",
                "paper_verdict": c.get("paper_verdict", True),
                "check_of": c.get("check_of"),
                "why_stricter": c.get("why_stricter") or "",
                "passed": bool(c.get("passed")),
                "value": c.get("value"),
            })
    return rows


HOLDS = "replicated"
HOLDS_PAPER_ONLY = "holds on the paper's terms; fails ours"
FAILS = "did not replicate on the paper's terms"
#: order of the statuses in the verdict and conclusions: by the paper's own bar first
STATUS_ORDER = (HOLDS, HOLDS_PAPER_ONLY, FAILS)


def checks_of(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """Our checks (kind ``check``) that name this paper claim in ``check_of``, same chapter."""
    return [r for r in rows if r.get("kind") == "check" and r.get("check_of") == row["claim"]
            and r["chapter"] == row["chapter"]]


def claim_status(row: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """A paper claim's status, decided by the paper's own bar first: it *replicates* when our
    value, computed with the paper's statistic, meets the paper's criterion the way the paper
    says its own value does (``paper_verdict``); a replicated claim whose stricter checks (or
    old-style strict criterion) fail "holds on the paper's terms; fails ours". A claim whose value
    could not be computed (NaN, stored as null) never replicates."""
    agrees = row["passed"] == bool(row.get("paper_verdict", True)) and row.get("value") is not None
    if not agrees:
        return FAILS
    if not row.get("paper_verdict", True):
        # the paper reports failing its own bar (bar P, cross-seed C ≡ Pr, within-seed B): a check's
        # bar points the other way, so checks are shown beside the claim but do not change its status
        return HOLDS
    strict_fail = row["strict_verdict"] == "FAIL" or any(c["verdict"] != "pass" for c in checks)
    return HOLDS_PAPER_ONLY if strict_fail else HOLDS


def paper_claims_view(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per paper claim with the three things side by side — what the paper reports, what
    this book gets with the paper's statistic (and the paper's criterion with its verdict), and
    our stricter check(s) — plus the status, sorted by the paper's own bar (status order
    :data:`STATUS_ORDER`, then rung and chapter), never by ours."""
    out = []
    for r in rows:
        if r.get("kind", "paper") != "paper":
            continue
        cs = checks_of(rows, r)
        ours_check = "; ".join(f"{c['verdict']}: {c['ours']} {c['criterion']} ({c['why_stricter']})" for c in cs)
        if r["strict_verdict"] != "—":
            ours_check = (ours_check + "; " if ours_check else "") + f"{r['strict_verdict']} ({r['strict_criterion']})"
        expect = "meets" if r.get("paper_verdict", True) else "misses"
        out.append({
            "status": claim_status(r, cs),
            "rung": r["rung"],
            "chapter": r["chapter"],
            "claim": r["description"] or r["claim"],
            "paper reports": f"{r['paper']} ({expect} its bar)",
            "this book, paper's statistic": (f"{r['ours']} — {r['verdict']} ({r['criterion']})"
                                             + ("" if r["p_value"] == "—" else f", p = {r['p_value']}")),
            "our stricter check": ours_check or "—",
            "source": r["source"],
        })
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    rung_order = {name: i for i, (_, name) in enumerate(RUNGS)}
    out.sort(key=lambda x: (order[x["status"]], rung_order.get(x["rung"], 99), x["chapter"]))
    return out


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per rung, the paper's claims counted by the paper's own bar: ``replicated``,
    ``paper_terms_only`` (holds on the paper's terms, fails ours) and ``failed`` (does not
    replicate on the paper's terms); ``checks_pass`` / ``checks_fail`` count our checks."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        c = out.setdefault(r["rung"], {"paper_claims": 0, "replicated": 0, "paper_terms_only": 0, "failed": 0,
                                       "checks_pass": 0, "checks_fail": 0})
        if r.get("kind", "paper") == "check":
            c["checks_pass" if r["verdict"] == "pass" else "checks_fail"] += 1
            continue
        c["paper_claims"] += 1
        st = claim_status(r, checks_of(rows, r))
        c[{HOLDS: "replicated", HOLDS_PAPER_ONLY: "paper_terms_only", FAILS: "failed"}[st]] += 1
    return out


def _sentence(r: dict[str, Any], checks: list[dict[str, Any]] | None = None) -> str:
    desc = r["description"] or r["claim"]
    strict = "" if r["strict_verdict"] == "—" else f"; our stricter criterion ({r['strict_criterion']}): {r['strict_verdict']}"
    for c in checks or []:
        strict += f"; our check `{c['claim']}` ({c['why_stricter']}): {c['ours']} {c['criterion']}, {c['verdict']}"
    p = "" if r["p_value"] == "—" else f"; p = {r['p_value']}"
    if r.get("kind", "paper") == "paper":
        own = "meets" if r.get("paper_verdict", True) else "misses"
        return (f"**{desc}** — {r['rung']}, chapter `{r['chapter']}`: the paper reports {r['paper']} ({own} its "
                f"bar {r['criterion']}); this book, with the paper's statistic: {r['ours']}, {r['verdict']}{p}{strict}. "
                f"Source: {r['source']}.")
    why = f" ({r['why_stricter']})" if r.get("why_stricter") else ""
    return (f"**{desc}**{why} — {r['rung']}, chapter `{r['chapter']}`: ours {r['ours']}, "
            f"criterion {r['criterion']}: {r['verdict']}{p}.")


def conclusion_groups(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Sort the paper's claims by the paper's own bar into replicated / paper_only ("holds on the
    paper's terms; fails ours") / failed (does not replicate on the paper's terms), and our
    checks into checks_passed / checks_failed, as one sentence each."""
    groups: dict[str, list[str]] = {"replicated": [], "paper_only": [], "failed": [], "checks_passed": [],
                                    "checks_failed": []}
    key = {HOLDS: "replicated", HOLDS_PAPER_ONLY: "paper_only", FAILS: "failed"}
    for r in rows:
        if r.get("kind") == "check":
            groups["checks_passed" if r["verdict"] == "pass" else "checks_failed"].append(_sentence(r))
        else:
            cs = checks_of(rows, r)
            groups[key[claim_status(r, cs)]].append(_sentence(r, cs))
    return groups


def open_questions(rows: list[dict[str, Any]], profile: str | None) -> list[str]:
    """What a build with these results did not test, derived from the profile and the rows."""
    chapters = {r["chapter"] for r in rows}
    out = []
    if profile != "paper":
        out.append(f"This build ran the `{profile}` profile: small models and budgets on a CPU. "
                   "The `paper` profile (the paper's training budgets, d_model 512 stand-ins, GPU) may change "
                   "numbers that depend on how well the models are trained.")
    if not any(c.startswith("2") for c in chapters):
        out.append("The Pythia rung recorded no claims in this build.")
    out.append("The real PolyPythias need a Hugging Face cache or network (`use_hub: true`); the offline default "
               "analyses locally trained GPT-NeoX stand-ins with Pythia-70m's architecture choices, which are "
               "much weaker language models than Pythia-70m.")
    out.append("Frontier-scale (10B+) replication remains open, as the paper itself says.")
    return out


def compact_claims(rows: list[dict[str, Any]], rung: str, kind: str = "paper") -> list[dict[str, str]]:
    """The verdict table's rows for one rung and kind, with only the columns a reader needs: for
    paper claims the claim, the paper's value, ours, and each criterion with its verdict in one
    cell; for checks the check, the paper claim it checks, why it differs, ours and its verdict."""
    out = []
    for r in rows:
        if r["rung"] != rung or r.get("kind", "paper") != kind:
            continue
        strict = "—" if r["strict_verdict"] == "—" else f"{r['strict_verdict']} ({r['strict_criterion']})"
        ours = r["ours"] + ("" if r["p_value"] == "—" else f" (p = {r['p_value']})")
        if kind == "check":
            out.append({
                "check": r["description"] or r["claim"],
                "chapter": r["chapter"],
                "checks paper claim": r.get("check_of") or "—",
                "why it differs": r.get("why_stricter") or "—",
                "ours": ours,
                "verdict": f"{r['verdict']} ({r['criterion']})",
            })
            continue
        out.append({
            "claim": r["description"] or r["claim"],
            "chapter": r["chapter"],
            "paper": r["paper"],
            "ours": ours,
            "paper's bar": f"{r['verdict']} ({r['criterion']})",
            "our stricter bar": strict,
        })
    return out
