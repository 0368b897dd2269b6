"""Tables built from the chapters' results files (never from numbers typed into prose).

The four-bar chapter and the conclusions read every ``<results_dir>/<chapter>.json`` through
these functions, so rebuilding a chapter with other parameters changes the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import load_all_results

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


def claims_table(directory: Path | str | None = None, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per recorded claim of every chapter: rung, chapter, claim, paper's value, ours,
    the paper's criterion and verdict, our stricter criterion and verdict, p-value."""
    rows = []
    for chapter, data in load_all_results(directory).items():
        if chapter in exclude:
            continue
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
