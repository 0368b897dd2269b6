"""The book's findings, read from the chapters' results files (never typed into prose).

The findings page glues every number it states from these functions, so a rebuild with other
parameters rewrites the prose. Each function takes the mapping returned by
:func:`polyrot_utils.book.results.load_all_results` (chapter stem → results file) and returns plain
numbers; a quantity that a build did not compute comes back as ``None``, and the page says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from polyrot_utils.book.report import STATUS_ORDER, checks_of, claim_status, is_check
from polyrot_utils.tasks.dyck.bars import PAPER_BARS

__all__ = [
    "THEMES",
    "fmt",
    "haar_instruments",
    "premise",
    "premise_banner",
    "premise_note",
    "premise_short",
    "status_by_theme",
    "theme_of",
]

Results = Mapping[str, Mapping[str, Any]]

#: chapter suffix → theme of its claims (x0 premise, x1 universality, … on both rungs)
THEMES: dict[str, str] = {
    "0": "same function?",
    "1": "decoder-cosine paradox",
    "2": "one rotation restores",
    "3": "R is Haar",
    "4": "steering transfer",
    "5": "checkpoints",
    "6": "the four bars",
}


def theme_of(chapter: str) -> str | None:
    """The theme of a rung chapter (``1x`` Dyck, ``2x`` Pythia) from its second digit."""
    if len(chapter) >= 2 and chapter[0] in "12" and chapter[1] in THEMES:
        return THEMES[chapter[1]]
    return None


def _value(res: Results, chapter: str, name: str) -> Any:
    return (res.get(chapter) or {}).get("values", {}).get(name)


def _claim_value(res: Results, chapter: str, name: str) -> float | None:
    c = (res.get(chapter) or {}).get("claims", {}).get(name)
    return None if c is None or c.get("value") is None else float(c["value"])


def premise(res: Results) -> dict[str, Any]:
    """How well each rung's models are trained: the paper's premise is that seeds compute the
    same function. Dyck (chapter 10): seeds meeting the paper's convergence criterion and the
    worst accuracy; the largest cross-seed KL. Pythia stand-ins (chapter 20): size, training
    tokens, held-out loss, cross-seed KL and top-1 agreement."""
    out: dict[str, Any] = {}
    conv = _value(res, "10_dyck_model_and_cohorts", "convergence") or []
    out["dyck_n_seeds"] = len(conv) or None
    out["dyck_n_converged"] = sum(bool(r.get("converged")) for r in conv) if conv else None
    accs = [v for r in conv for split in (r.get("accuracy") or {}).values() for v in split.values()]
    out["dyck_min_accuracy"] = min(accs) if accs else None
    out["dyck_cross_seed_kl_max"] = _claim_value(
        res, "10_dyck_model_and_cohorts", "cross_seed_kl_max"
    )
    out["pythia_n_params"] = _value(res, "20_pythia_seeds", "arch_n_params")
    out["pythia_training_tokens"] = _value(res, "20_pythia_seeds", "training_tokens")
    out["pythia_loss_nats"] = _value(res, "20_pythia_seeds", "heldout_loss_nats_mean")
    out["pythia_cross_seed_kl"] = _value(res, "20_pythia_seeds", "cross_seed_kl_mean")
    out["pythia_cross_seed_top1"] = _value(res, "20_pythia_seeds", "cross_seed_top1_mean")
    kl_bar = PAPER_BARS["B"]  # the paper's bar B: the tightest KL it reports (chapter 16)
    out["paper_bar_b"] = kl_bar
    out["dyck_meets_premise"] = (
        None if out["dyck_n_converged"] is None else out["dyck_n_converged"] == out["dyck_n_seeds"]
    )
    out["pythia_meets_premise"] = (
        None if out["pythia_cross_seed_kl"] is None else out["pythia_cross_seed_kl"] <= kl_bar
    )
    return out


def _largest_d(values: Mapping[str, Any], prefix: str) -> int | None:
    ds = [int(m.group(1)) for k in values if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", k))]
    return max(ds) if ds else None


def haar_instruments(res: Results) -> dict[str, Any]:
    """What chapter 02 measured about the paper's two Haar checks, at its largest dimension:
    the fraction of genuine Haar rotations the 0.1 % Frobenius criterion rejects, the paper's
    pooled KS p-value for signed permutations (a privileged basis, not Haar), and the power of
    our calibrated test against signed permutations."""
    v = (res.get("02_is_r_haar") or {}).get("values", {})
    d = _largest_d(v, "size_power_d")
    out: dict[str, Any] = {
        "d": d,
        "frobenius_rejects_haar": None,
        "paper_ks_p_signed_perm": None,
        "calibrated_power_signed_perm": None,
        "iid_ks_power_signed_perm": None,
    }
    if d is None:
        return out
    out["frobenius_rejects_haar"] = v.get(f"frobenius_rejects_haar_d{d}")
    out["iid_ks_power_signed_perm"] = v.get(f"iid_ks_power_signed_permutation_d{d}")
    ks = v.get(f"paper_ks_test_d{d}") or {}
    out["paper_ks_p_signed_perm"] = (ks.get("signed_permutation") or {}).get("pvalue")
    table = v.get(f"size_power_d{d}") or {}
    alts = table.get("alternative") or []
    if "signed_permutation" in alts and "combined" in table:
        out["calibrated_power_signed_perm"] = table["combined"][alts.index("signed_permutation")]
    return out


def status_by_theme(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claims counted by the paper's own bar, per rung and theme: one row per
    (rung, theme) with the count of each status of
    :data:`polyrot_utils.book.report.STATUS_ORDER` (replicated / holds on the paper's terms only /
    meets a bar the paper reports missing / did not replicate / not computed), classified by
    :func:`polyrot_utils.book.report.claim_status` — the verdict's classifier. Our checks (and
    rows that say they are ours) are not counted. ``rows`` is
    :func:`polyrot_utils.book.report.claims_table`'s output."""
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if is_check(r):
            continue
        theme = theme_of(r["chapter"])
        if theme is None:
            continue
        key = (r["rung"], theme)
        c = counts.setdefault(
            key, {"rung": r["rung"], "theme": theme, **dict.fromkeys(STATUS_ORDER, 0)}
        )
        c[claim_status(r, checks_of(rows, r))] += 1
    order = list(THEMES.values())
    return sorted(counts.values(), key=lambda c: (c["rung"], order.index(c["theme"])))


def fmt(x: Any, sig: int = 3) -> str:
    """A number for prose: ``sig`` significant digits, percentages for fractions are the caller's
    business; ``None`` and NaN read "not computed in this build"."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "not computed in this build"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    x = float(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.{sig - 1}e}"
    return f"{x:.{sig}g}"


def premise_note(p: Mapping[str, Any], rung: str) -> str:
    """One line for the verdict's premise column: how far a rung's models meet the paper's
    premise (same function), from :func:`premise`'s output. ``rung`` is a name from
    :data:`polyrot_utils.book.report.RUNGS`."""
    if rung.startswith("Dyck"):
        if p.get("dyck_n_seeds") is None:
            return "convergence not recorded in this build"
        evidence = (
            f"{p['dyck_n_converged']}/{p['dyck_n_seeds']} seeds at the paper's criterion (worst "
            f"accuracy {fmt(p.get('dyck_min_accuracy'), 5)}); cross-seed KL ≤ "
            f"{fmt(p.get('dyck_cross_seed_kl_max'))}"
        )
        meets = p.get("dyck_meets_premise")
    elif rung.startswith("Pythia"):
        if p.get("pythia_cross_seed_kl") is None:
            return "functional agreement not recorded in this build"
        evidence = (
            f"stand-ins of {fmt(p.get('pythia_n_params'))} parameters, loss "
            f"{fmt(p.get('pythia_loss_nats'))} nats; "
            f"cross-seed KL {fmt(p.get('pythia_cross_seed_kl'))}, top-1 "
            f"{fmt(p.get('pythia_cross_seed_top1'))}"
        )
        meets = p.get("pythia_meets_premise")
    else:
        return "planted answers: the premise holds by construction"
    return f"{evidence}: {'meets the premise' if meets else 'does NOT meet the premise'}"


def premise_banner(acts: Any) -> Any:
    """The box every rung chapter shows before its first result: whether the models whose
    activations ``acts`` holds meet the paper's premise (``acts.info["premise"]``, set by
    :func:`polyrot_utils.tasks.dyck.suite.dyck_activations` and
    :func:`polyrot_utils.tasks.pythia.suite.pythia_activations`): the theme's admonition box
    (note when the premise is met, warning otherwise), as IPython HTML."""
    import html

    from IPython.display import HTML

    p = (getattr(acts, "info", {}) or {}).get("premise") or {}
    if not p:
        return HTML("")
    kind = "note" if p.get("meets") else "warning"
    head = (
        "The models meet the paper's premise"
        if p.get("meets")
        else "The models do not meet the paper's premise"
    )
    tail = (
        ""
        if p.get("meets")
        else (
            " Read every number below as a measurement on these models, not as a "
            "verdict on the paper."
        )
    )
    return HTML(
        f'<div class="admonition {kind}"><p class="admonition-title">{html.escape(head)}</p>'
        f"<p>{html.escape(str(p['summary']))}.{html.escape(tail)}</p></div>"
    )


def premise_short(p: Mapping[str, Any], rung: str) -> str:
    """The premise column's cell: a rung's functional-agreement figures in a few words and
    whether they meet the paper's premise (same function), from :func:`premise`'s output."""
    if rung.startswith("Dyck"):
        if p.get("dyck_n_seeds") is None:
            return "not recorded in this build"
        met = "met" if p.get("dyck_meets_premise") else "NOT met"
        return (
            f"{met}: {p['dyck_n_converged']}/{p['dyck_n_seeds']} converged; "
            f"KL ≤ {fmt(p.get('dyck_cross_seed_kl_max'))}"
        )
    if rung.startswith("Pythia"):
        if p.get("pythia_cross_seed_kl") is None:
            return "not recorded in this build"
        met = "met" if p.get("pythia_meets_premise") else "NOT met"
        return (
            f"{met}: KL {fmt(p.get('pythia_cross_seed_kl'))} (bar {fmt(p.get('paper_bar_b'))}); "
            f"top-1 {fmt(p.get('pythia_cross_seed_top1'))}"
        )
    return "by construction"
