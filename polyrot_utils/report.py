"""Tables built from the chapters' results files (never from numbers typed into prose).

The four-bar chapter and the conclusions read every ``<results_dir>/<chapter>.json`` through
these functions, so rebuilding a chapter with other parameters changes the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import _check_complete, load_all_results, results_dir

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

    Refuses (:class:`~polyrot_utils.results.IncompleteResultsError`) a results file its chapter
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
            })
    return rows


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per rung: how many claims pass and fail the paper's criterion and our stricter one."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        c = out.setdefault(r["rung"], {"claims": 0, "pass": 0, "fail": 0, "strict_pass": 0, "strict_fail": 0})
        c["claims"] += 1
        c["pass" if r["verdict"] == "pass" else "fail"] += 1
        if r["strict_verdict"] != "—":
            c["strict_pass" if r["strict_verdict"] == "pass" else "strict_fail"] += 1
    return out


def _sentence(r: dict[str, Any]) -> str:
    desc = r["description"] or r["claim"]
    strict = "" if r["strict_verdict"] == "—" else f"; our stricter criterion ({r['strict_criterion']}): {r['strict_verdict']}"
    p = "" if r["p_value"] == "—" else f"; p = {r['p_value']}"
    paper = "" if r["paper"] == "—" else f" (paper: {r['paper']})"
    return (f"**{desc}** — {r['rung']}, chapter `{r['chapter']}`: ours {r['ours']}{paper}, "
            f"paper's criterion {r['criterion']}: {r['verdict']}{strict}{p}.")


def conclusion_groups(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Sort claim rows into replicated / paper_only / failed (the paper's claims) and
    checks_passed / checks_failed (our instrument checks), as one sentence each."""
    groups: dict[str, list[str]] = {"replicated": [], "paper_only": [], "failed": [], "checks_passed": [],
                                    "checks_failed": []}
    for r in rows:
        if r.get("kind") == "check":
            groups["checks_passed" if r["verdict"] == "pass" else "checks_failed"].append(_sentence(r))
        elif r["verdict"] != "pass":
            groups["failed"].append(_sentence(r))
        elif r["strict_verdict"] == "FAIL":
            groups["paper_only"].append(_sentence(r))
        else:
            groups["replicated"].append(_sentence(r))
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
    """The verdict table's rows for one rung and kind, with only the columns a reader needs:
    the claim, the paper's value, ours, and each criterion with its verdict in one cell."""
    out = []
    for r in rows:
        if r["rung"] != rung or r.get("kind", "paper") != kind:
            continue
        strict = "—" if r["strict_verdict"] == "—" else f"{r['strict_verdict']} ({r['strict_criterion']})"
        out.append({
            "claim": r["description"] or r["claim"],
            "chapter": r["chapter"],
            "paper": r["paper"],
            "ours": r["ours"] + ("" if r["p_value"] == "—" else f" (p = {r['p_value']})"),
            "paper's bar": f"{r['verdict']} ({r['criterion']})",
            "our stricter bar": strict,
        })
    return out
