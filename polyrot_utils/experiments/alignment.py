"""Does one rotation move a seed's SAE onto another seed? The alignment study of chapters 12
(Dyck-3 toy) and 22 (Pythia architecture), written once for both rungs.

Input: one :class:`polyrot_utils.models.activations.PairedActs` per group of seeds (the Dyck
chapter has one per cohort, the Pythia chapter one for its suite). Conventions: rows are token
positions (row vectors), every map goes source -> target, ``x_src @ R ≈ x_tgt`` with the map
fitted on the *fit* batch and every number scored on the disjoint *eval* batch.

Per group, pair of seeds and site, for each of :data:`METHODS`:

- ``sae_ev``: held-out explained variance (per-dimension variance) on the target's rows of the
  source's SAE used through the map (for ``rotation``: the SAE's weights moved by R, an ordinary
  SAE); ``ceiling``: the target's own SAE on the same rows; ``gap = ceiling − sae_ev``.
- ``map_ev``: how much of the target's held-out activations the mapped source activations
  explain. A rotation cannot rescale: when two seeds' streams differ in norm its ``map_ev`` can
  be far below 0 while its ``gap`` is small, because a TopK SAE reconstructs a scaled input as
  nearly the same scaled output. ``rotation_scaled`` (R times one least-squares scale ``s``,
  recorded in ``scale``) separates the two.

Controls, generic over what the rung builds (``acts.controls``): a control with an exact planted
rotation (``acts.planted``; the Dyck rung's ``rotated``) is a *positive* control (gap ≈ 0); every
other control (``untrained``; the Pythia rung's ``shuffled``) is a *negative* one, as target and
as source; and seed A with its fit rows shuffled (``unpaired fit rows``) is a negative control
that needs no model. The fit-size curve refits the rotation on the first n fit rows.

:func:`alignment_study` computes everything into an :class:`AlignmentResult`;
:func:`record_alignment_claims` records the claims (the paper's, per rung, and our checks, the
same in both chapters); :func:`plot_gaps` and :func:`plot_fit_size` draw the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polyrot_utils.core import intervals
from polyrot_utils.experiments import analysis, universality
from polyrot_utils.models.activations import PairedActs, short_site
from polyrot_utils.sae.autoencoder import SAE

__all__ = [
    "CONTROL_METHODS",
    "EXPERIMENT_DEFAULTS",
    "GAP_SHOWN",
    "METHODS",
    "PAPER_CLAIMS",
    "STABLE_TOL",
    "TIE_TOL",
    "AlignmentResult",
    "PaperClaim",
    "alignment_study",
    "chapter_outputs",
    "fit_sizes",
    "plot_controls",
    "plot_fit_size",
    "plot_gaps",
    "record_alignment_claims",
    "stable_fit_size",
]

Saes = Mapping[str, Mapping[str, SAE]]

#: every map the study fits, from no alignment to the most expressive linear account
METHODS = (
    "identity",
    "signed_permutation",
    "rotation",
    "rotation_scaled",
    "linear",
    "affine",
)
#: the maps fitted for the controls
CONTROL_METHODS = ("identity", "rotation", "affine")
#: short column names for the page's tables
SHORT = {
    "identity": "identity",
    "signed_permutation": "signed perm.",
    "rotation": "rotation",
    "rotation_scaled": "rotation × s",
    "linear": "linear",
    "affine": "affine",
}
#: the study's parameters that both chapters declare with these defaults (a test checks it)
EXPERIMENT_DEFAULTS: dict[str, Any] = {
    "paper_gap": 0.025,
    "affine_margin": 0.025,
    "curve_points": 8,
}
#: fit-size rule: the smallest fit whose held-out SAE EV is within this of the full fit's
STABLE_TOL = 0.01
#: "the rotation is no worse than the signed permutation" allows this much EV below: where two
#: seeds' activations are identical (the shared-I/O cohort's embedding site) both maps are the
#: identity and tie up to fit noise
TIE_TOL = 0.005


@dataclass(frozen=True)
class PaperClaim:
    """One claim the paper makes on a rung, computed its way (:func:`analysis.paper_transfer_table`:
    one batch, in-sample O(d) R, the anchor's SAE, scalar variance): ``statistic`` (a column of
    that table) averaged over the anchor pairs per site, then ``reduce`` ("max"/"min") over the
    paper's sites; ``group``: the cohort it is claimed for (None: every group, worst).
    ``threshold`` None means the study's ``paper_gap``."""

    name: str
    statistic: str
    reduce: str
    op: str
    threshold: float | None
    group: str | None
    paper_value: str
    source: str
    description: str


PAPER_CLAIMS: dict[str, tuple[PaperClaim, ...]] = {
    "dyck": (
        PaperClaim(
            "rotation_gap_paper",
            "sae_gap",
            "max",
            "<=",
            None,
            "shared_io",
            "within 0.025 of the self-baseline at every internal site "
            "(post-rotation EV 0.976–0.990)",
            "§8.2 'The rotation audit: a single batch suffices'; "
            "experiments/cross_seed/exp1d_rotation_audit.py:run",
            "Cohort A (shared I/O): anchor SAE's EV on its own rows − its EV on another seed's "
            "rows "
            "rotated onto the anchor (one batch, in-sample R, scalar variance); mean over pairs, "
            "largest over internal sites",
        ),
        PaperClaim(
            "post_rotation_sae_ev_paper",
            "sae_ev_rot",
            "min",
            ">=",
            0.965,
            "independent",
            "post-rotation EV in [0.965, 0.987]",
            "§8.4 'Independent-init at toy scale'; "
            "experiments/independent_init/analyze_indep.py:run_rotation_audit",
            "Cohort B (independent): anchor's SAE on another seed's rows rotated onto the anchor "
            "(one batch, in-sample R, scalar variance); mean over pairs, smallest over internal "
            "sites",
        ),
    ),
    "pythia": (
        PaperClaim(
            "post_rotation_ev_paper",
            "rot_map_ev",
            "min",
            ">=",
            0.85,
            None,
            "post-rotation EV 0.85–0.99 per site (worst at layer0_resid_pre)",
            "§8.3; experiments/scale/pythia_panel_c_fast.py:main "
            "(common.py:procrustes_metrics rot_EV)",
            "EV of the rotation map (another seed's activations rotated onto the anchor's, one "
            "batch, "
            "in-sample O(d) R, no SAE), mean over anchor pairs, smallest over the paper's sites",
        ),
    ),
}
_WHY_GAP = {
    "dyck": "",
    "pythia": "the toy's 0.025 SAE gap (the paper claims it for the toy only) "
    "applied to these seeds; ",
}


def _paper_sites(rung: str, sites: Sequence[str], table: bool = False) -> list[str]:
    """The paper's sites on a rung: the toy's internal sites for its claims (all its sites for
    the audit table, ``table``); Pythia's seven."""
    if rung == "dyck":
        return analysis.paper_toy_sites(sites) if table else analysis.paper_internal_sites(sites)
    return analysis.paper_pythia_sites(sites)


@dataclass
class AlignmentResult:
    """What :func:`alignment_study` measured. Tables are pandas DataFrames with ``site`` in the
    short naming (:func:`short_site`), ``group`` the cohort (Dyck) or suite (Pythia).

    ``table``: every (group, source, target, site, method): ``map_ev``, ``sae_ev``, ``ceiling``,
    ``gap`` and, for ``rotation_scaled``, ``scale``. ``controls``: the same columns for the
    control pairs (``control`` label, ``kind`` in positive / negative / pair). ``curve``: the
    fit-size curve of the first pair of each group at every site; ``stable``: the rows the
    rotation needs (:func:`stable_fit_size`). ``paper``: the paper's one-batch audit rows.
    """

    rung: str
    groups: list[str]
    sites: list[str]
    paper_sites: list[str]
    table: pd.DataFrame
    controls: pd.DataFrame
    curve: pd.DataFrame
    stable: pd.DataFrame
    paper: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def method_table(self, column: str = "gap") -> pd.DataFrame:
        """Mean over pairs of ``column`` per (group, site) × method (short column names); the
        ``map_ev`` table gains the rotation's fitted scale ``s``."""
        tab = self.table.pivot_table(
            index=["group", "site"],
            columns="method",
            values=column,
            aggfunc="mean",
            sort=False,
        )[list(METHODS)]
        if column == "map_ev":
            scaled = self.table[self.table.method == "rotation_scaled"]
            tab["s"] = scaled.groupby(["group", "site"], sort=False)["scale"].mean()
        return self._one_group(tab.rename(columns=SHORT))

    def control_table(self) -> pd.DataFrame:
        """The rotation's gap per control (rows, mean over groups) and site (columns)."""
        rot = self.controls[self.controls.method == "rotation"]
        tab = rot.pivot_table(
            index="control", columns="site", values="gap", aggfunc="mean", sort=False
        )
        return tab[[s for s in self.sites if s in tab.columns]]

    def stable_table(self) -> pd.DataFrame:
        """Rows the rotation needs (:func:`stable_fit_size`) per site (rows) and group (columns;
        one column ``rows needed`` when there is one group)."""
        tab = self.stable.pivot_table(index="site", columns="group", values="n_stable", sort=False)
        tab = tab.astype(int)
        return tab.set_axis(["rows needed"], axis=1) if len(self.groups) == 1 else tab

    def worst_rotation_map_ev(self) -> dict[str, Any]:
        """Where the rotation explains least of the target (mean over pairs): ``group``,
        ``site``, the rotation's ``map_ev`` and ``gap`` there, the scaled rotation's ``map_ev``
        and its scale ``s`` — the evidence that a low map EV beside a small gap is a scale
        mismatch (a rotation cannot rescale; the TopK SAE barely cares)."""
        mean = self.table.groupby(["group", "site", "method"], sort=False)[
            ["map_ev", "gap", "scale"]
        ].mean()
        rot = mean.xs("rotation", level="method")
        group, site = rot["map_ev"].idxmin()
        scaled = mean.loc[(group, site, "rotation_scaled")]
        return {
            "group": group,
            "site": site,
            "map_ev": float(rot.loc[(group, site), "map_ev"]),
            "gap": float(rot.loc[(group, site), "gap"]),
            "map_ev_scaled": float(scaled["map_ev"]),
            "s": float(scaled["scale"]),
        }

    def _one_group(self, tab: pd.DataFrame) -> pd.DataFrame:
        return tab.droplevel("group") if len(self.groups) == 1 else tab

    def records(self) -> dict[str, Any]:
        """The full tables as JSON-ready records (for ``ChapterResults.record``)."""
        return {
            "alignment_rows": self.table.to_dict("records"),
            "control_rows": self.controls.to_dict("records"),
            "fit_size_curve": self.curve.to_dict("records"),
            "tokens_for_stable_fit": self.stable.to_dict("records"),
            "paper_transfer_rows": self.paper.to_dict("records"),
        }


# ----------------------------------------------------------------------------- SAEs
def _d_model(acts: PairedActs) -> int:
    first = acts.members[0]
    return int(acts.fit[first][acts.sites[0]].shape[1])


# ----------------------------------------------------------------------------- the study
def fit_sizes(d: int, n_rows: int, points: int) -> list[int]:
    """``points`` distinct fit sizes, geometric from ``max(8, d // 4)`` to ``n_rows``."""
    if points < 2:
        raise ValueError(f"curve_points must be >= 2, got {points}")
    lo = min(max(8, d // 4), n_rows)
    return sorted({round(float(s)) for s in np.geomspace(lo, n_rows, int(points))})


def stable_fit_size(rows: Sequence[Mapping[str, Any]], tol: float = STABLE_TOL) -> int:
    """The smallest ``n_fit`` of a fit-size curve whose ``sae_ev`` is within ``tol`` of the
    largest fit's: beyond it more tokens buy nothing."""
    if not rows:
        raise ValueError("rows must hold at least one point of a fit-size curve")
    rows = sorted(rows, key=lambda r: r["n_fit"])
    full = float(rows[-1]["sae_ev"])
    return int(next(r["n_fit"] for r in rows if float(r["sae_ev"]) >= full - tol))


def _rows(group: str, rows: Sequence[Mapping[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    return [{"group": group, **extra, **r, "site": short_site(r["site"])} for r in rows]


def _control_pairs(acts: PairedActs, a: str, b: str, unpaired: str) -> list[tuple[str, str, tuple]]:
    """``(label, kind, (source, target))`` of every control of one group, generic over the rung:
    a control with a planted rotation is positive, every other one negative (as target and as
    source); the unpaired fit rows are negative; the real pair ``(a, b)`` is the reference."""
    out: list[tuple[str, str, tuple]] = [("real pair", "pair", (a, b))]
    for c in acts.controls:
        key = acts.control(c)
        if key in acts.planted:
            out.append((f"{c}: exactly rotated copy", "positive", (acts.planted[key][0], key)))
        else:
            out.append((f"{c} as target", "negative", (a, key)))
            out.append((f"{c} as source", "negative", (key, a)))
    out.append(("unpaired fit rows", "negative", (unpaired, b)))
    return out


def _group_study(
    group: str,
    acts: PairedActs,
    saes: Saes,
    rung: str,
    anchor: str | None,
    curve_points: int,
    seed: int,
) -> dict[str, list[dict[str, Any]]]:
    sites = acts.sites
    pairs = analysis.all_pairs(acts.members, anchor=anchor)
    maps = analysis.fit_maps(acts.fit, pairs, sites, METHODS)
    rows = analysis.alignment_table(acts.fit, acts.eval, saes, pairs, sites, METHODS, maps=maps)
    for r in rows:
        if r["method"] == "rotation_scaled":
            r["scale"] = float(
                maps[(r["source"], r["target"], r["site"], "rotation_scaled")].info["scale"]
            )
    a, b = pairs[0]
    fit, ev, sa, unpaired = analysis.with_unpaired(acts.fit, acts.eval, saes, a, seed=seed)
    ctrl = []
    for label, kind, pair in _control_pairs(acts, a, b, unpaired):
        found = analysis.alignment_table(fit, ev, sa, [pair], sites, CONTROL_METHODS)
        ctrl += _rows(group, found, control=label, kind=kind)
    sizes = fit_sizes(_d_model(acts), int(acts.fit[a][sites[0]].shape[0]), curve_points)
    curve, stable = [], []
    for s in sites:
        pts = analysis.fit_size_curve(acts.fit, acts.eval, saes, (a, b), s, sizes)
        curve += [
            {
                "group": group,
                "source": a,
                "target": b,
                "site": short_site(s),
                **p,
                "gap": p["ceiling"] - p["sae_ev"],
            }
            for p in pts
        ]
        stable.append({"group": group, "site": short_site(s), "n_stable": stable_fit_size(pts)})
    paper_anchor = anchor or acts.members[0]
    paper = analysis.paper_transfer_table(
        acts.eval,
        analysis.all_pairs(acts.members, anchor=paper_anchor),
        _paper_sites(rung, sites, table=True),
        saes=saes,
    )
    return {
        "table": _rows(group, rows),
        "controls": ctrl,
        "curve": curve,
        "stable": stable,
        "paper": _rows(group, analysis.without_matrices(paper)),
    }


def alignment_study(
    acts: PairedActs | Mapping[str, PairedActs],
    *,
    sae_expansion: float,
    sae_k: int,
    sae_n_tokens: int,
    sae_batch_size: int,
    seed: int = 0,
    anchor: str | None = None,
    paper_gap: float = EXPERIMENT_DEFAULTS["paper_gap"],
    affine_margin: float = EXPERIMENT_DEFAULTS["affine_margin"],
    curve_points: int = EXPERIMENT_DEFAULTS["curve_points"],
    rung: str | None = None,
    saes: Mapping[str, Saes] | None = None,
) -> AlignmentResult:
    """Every map at every site for every pair of seeds, the controls, the fit-size curve and the
    paper's one-batch audit, for one or several groups of seeds.

    Args:
        acts: one :class:`PairedActs` (group ``"seeds"``) or ``{group: PairedActs}`` (e.g. one
            per cohort); every group must have the same sites.
        sae_expansion, sae_k, sae_n_tokens, sae_batch_size, seed: the SAEs
            (:func:`universality.train_universality_saes`, shared with the universality
            chapter through the cache).
        anchor: pairs ``(anchor, other)`` as the paper; ``None``: every pair of seeds (the
            paper's audit then anchors on the first seed).
        paper_gap: the paper's bar on the gap (0.025); affine_margin: ours, how much more of
            the target an affine map may explain than the rotation.
        curve_points: fit sizes on the fit-size curve (:func:`fit_sizes`).
        rung: ``"dyck"`` or ``"pythia"`` (which paper claims and sites apply); default from
            ``acts.info["premise"]["rung"]``.
        saes: ``{group: {model: {site: SAE}}}`` to use instead of training (tests).

    Raises ``ValueError``/``KeyError`` naming the argument, before any work.
    """
    groups = {"seeds": acts} if isinstance(acts, PairedActs) else dict(acts)
    if not groups or not all(isinstance(g, PairedActs) for g in groups.values()):
        raise ValueError("acts must be a PairedActs or a non-empty {group: PairedActs} mapping")
    first = next(iter(groups.values()))
    for name, g in groups.items():
        if len(g.members) < 2:
            raise ValueError(f"acts[{name!r}] has {len(g.members)} seed(s); alignment needs >= 2")
        if list(g.sites) != list(first.sites):
            raise ValueError(f"acts[{name!r}] has sites {g.sites}, another group {first.sites}")
        if anchor is not None and anchor not in g.members:
            raise ValueError(f"anchor {anchor!r} is not a seed of group {name!r} ({g.members})")
    rung = rung or ((first.info or {}).get("premise") or {}).get("rung")
    if rung not in PAPER_CLAIMS:
        raise ValueError(
            f"rung must be one of {sorted(PAPER_CLAIMS)} (or set in acts.info['premise']), "
            f"got {rung!r}"
        )
    for name, v in (("paper_gap", paper_gap), ("affine_margin", affine_margin)):
        if not float(v) >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    if int(curve_points) < 2:
        raise ValueError(f"curve_points must be >= 2, got {curve_points}")
    if saes is not None and set(saes) != set(groups):
        raise KeyError(f"saes must have the groups {sorted(groups)}, got {sorted(saes)}")
    parts: dict[str, list[dict[str, Any]]] = {}
    for name, g in groups.items():
        if saes is not None:
            g_saes = saes[name]
        else:
            g_saes, _ = universality.train_universality_saes(
                g,
                sae_expansion=sae_expansion,
                sae_k=sae_k,
                sae_n_tokens=sae_n_tokens,
                sae_batch_size=sae_batch_size,
                seed=seed,
            )
        found = _group_study(name, g, g_saes, rung, anchor, int(curve_points), int(seed))
        for key, rows in found.items():
            parts.setdefault(key, []).extend(rows)
    frames = {k: pd.DataFrame(v) for k, v in parts.items()}
    params = {
        "paper_gap": float(paper_gap),
        "affine_margin": float(affine_margin),
        "curve_points": int(curve_points),
        "anchor": anchor,
    }
    return AlignmentResult(
        rung,
        list(groups),
        [short_site(s) for s in first.sites],
        [short_site(s) for s in _paper_sites(rung, first.sites)],
        frames["table"],
        frames["controls"],
        frames["curve"],
        frames["stable"],
        frames["paper"],
        params,
        {"d_model": _d_model(first)},
    )


# ----------------------------------------------------------------------------- claims
def _by_row(tab: pd.DataFrame, method: str, col: str) -> pd.Series:
    return tab[tab.method == method].set_index(["group", "source", "target", "site"])[col]


def _paper_value(res: AlignmentResult, pc: PaperClaim) -> tuple[float, intervals.Interval] | None:
    """The paper statistic and its interval over seed pairs at the deciding site."""
    rows = res.paper[res.paper.site.isin(res.paper_sites)]
    rows = rows if pc.group is None else rows[rows.group == pc.group]
    if rows.empty:
        return None
    means = rows.groupby(["group", "site"], sort=False)[pc.statistic].mean()
    group, site = means.idxmax() if pc.reduce == "max" else means.idxmin()
    at = rows[(rows.group == group) & (rows.site == site)]
    iv = intervals.pair_interval(
        {(r.anchor, r.other): float(getattr(r, pc.statistic)) for r in at.itertuples()}
    )
    return float(means[(group, site)]), iv


def record_alignment_claims(results: Any, res: AlignmentResult) -> pd.DataFrame:
    """Record the claims of an :class:`AlignmentResult` into ``results`` (a
    :class:`polyrot_utils.book.results.ChapterResults`) and the values behind them; return the
    page's summary (one row per claim: value with its interval across seeds where it has one,
    the bar, pass).

    The paper's claims are the rung's (:data:`PAPER_CLAIMS`, with an interval over seed pairs);
    our checks have the same names on both rungs: ``rotation_gap_max`` (worst held-out gap ≤
    ``paper_gap``), ``rotation_beats_signed_permutation`` (≥ −:data:`TIE_TOL`),
    ``rotation_within_margin_of_affine`` (≤ ``affine_margin``), ``negative_controls_do_not_align``
    (at every site each negative control's gap exceeds every seed pair's: margin > 0) and, where
    the rung has an exactly rotated copy, ``positive_control_gap`` (|gap| ≤ ``paper_gap``)."""
    bar, margin = res.params["paper_gap"], res.params["affine_margin"]
    t = res.table
    for key, value in res.records().items():
        results.record(key, value)
    summary: list[dict[str, Any]] = []

    def claim(
        name: str, value: float, threshold: float, op: str, iv: Any = None, **kw: Any
    ) -> None:
        passed = results.claim(name, value=value, threshold=threshold, op=op, interval=iv, **kw)
        summary.append(
            {
                "claim": name,
                "kind": kw["kind"],
                "value [lo, hi]": str(iv) if iv else f"{value:.3g}",
                "bar": f"{op} {threshold:g}",
                "passed": "pass" if passed else "FAIL",
            }
        )

    specs = PAPER_CLAIMS[res.rung]
    for pc in specs:
        found = _paper_value(res, pc)
        if found is not None:
            claim(
                pc.name,
                found[0],
                bar if pc.threshold is None else pc.threshold,
                pc.op,
                found[1],
                kind="paper",
                paper_value=pc.paper_value,
                source=pc.source,
                description=pc.description,
            )
    rot_gap = _by_row(t, "rotation", "gap")
    results.record(
        "rotation_gap_max_by_site",
        rot_gap.groupby(level="site", sort=False).max().to_dict(),
    )
    results.record("map_ev_mean_by_method", t.groupby("method")["map_ev"].mean().to_dict())
    aff_scaled = _by_row(t, "affine", "map_ev") - _by_row(t, "rotation_scaled", "map_ev")
    results.record("affine_minus_rotation_scaled_map_ev_max", float(aff_scaled.max()))
    claim(
        "rotation_gap_max",
        float(rot_gap.max()),
        bar,
        "<=",
        kind="check",
        check_of=specs[0].name,
        why_stricter=_WHY_GAP[res.rung] + "held-out rows (R fitted on other tokens), per-dimension "
        "variance, the target's own SAE as ceiling, worst group, pair and site",
        description="largest gap (ceiling − EV of the SAE moved by the SO(d) rotation) over "
        "groups, "
        "pairs and sites, held-out tokens",
    )
    beat = _by_row(t, "rotation", "sae_ev") - _by_row(t, "signed_permutation", "sae_ev")
    claim(
        "rotation_beats_signed_permutation",
        float(beat.min()),
        -TIE_TOL,
        ">=",
        kind="check",
        description="ours: smallest (SAE EV through the rotation − through the best signed "
        "permutation) "
        f"over pairs and sites; ties within {TIE_TOL} allowed where the activations are "
        "identical. Below: the basis is privileged, not rotated",
    )
    deficit = _by_row(t, "affine", "map_ev") - _by_row(t, "rotation", "map_ev")
    claim(
        "rotation_within_margin_of_affine",
        float(deficit.max()),
        margin,
        "<=",
        kind="check",
        description=f"ours: the affine map explains at most {margin} more of the target's held-out "
        "activations than the rotation (largest difference over pairs and sites)",
    )
    rot_c = res.controls[res.controls.method == "rotation"]
    neg = rot_c[rot_c.kind == "negative"].groupby(["group", "site"])["gap"].min()
    seeds = rot_gap.groupby(level=["group", "site"]).max()
    claim(
        "negative_controls_do_not_align",
        float((neg - seeds).min()),
        0.0,
        ">",
        kind="check",
        description="ours: at every site each negative control (untrained or other-function model, "
        "unpaired fit rows) leaves a larger rotation gap than every seed pair (smallest "
        "margin over groups and sites); else alignment proves nothing",
    )
    pos = rot_c[rot_c.kind == "positive"]
    if not pos.empty:
        claim(
            "positive_control_gap",
            float(pos.gap.abs().max()),
            bar,
            "<=",
            kind="check",
            description="ours: an exactly rotated copy passes the paper's bar at every site "
            "(|gap|; "
            "what remains is the difference between two SAEs trained in two bases)",
        )
    return pd.DataFrame(summary).set_index("claim")


# ----------------------------------------------------------------------------- figures
#: the glossary's names of the Dyck cohorts, for figure titles
GROUP_LABELS = {
    "shared_io": "Cohort A (shared I/O)",
    "independent": "Cohort B (independent)",
}
_COLORS = {
    "identity": "0.6",
    "signed_permutation": "C1",
    "rotation": "C0",
    "rotation_scaled": "C9",
    "linear": "C4",
    "affine": "C2",
}
GAP_SHOWN = ("identity", "signed_permutation", "rotation", "rotation_scaled", "affine")


def _bars(
    ax: Any,
    values: pd.DataFrame,
    colors: Sequence[str],
    low: float,
    top: float,
    labels: Sequence[str] | None,
) -> None:
    """Grouped bars (rows = x positions, columns = bars; ``labels`` None: not in a legend); bars
    beyond ``[low, top]`` are cut at the axis and marked with a white triangle."""
    x = np.arange(len(values.index))
    w = 0.84 / len(values.columns)
    for i, (col, color) in enumerate(zip(values.columns, colors, strict=True)):
        v = values[col].to_numpy(dtype=float)
        xs = x - 0.42 + w * (i + 0.5)
        ax.bar(
            xs,
            np.clip(v, low, top),
            w,
            color=color,
            label=labels[i] if labels else "_nolegend_",
        )
        for over, edge, mark in ((v > top, top, "v"), (v < low, low, "^")):
            (cut,) = ax.plot(
                xs[over],
                np.full(int(over.sum()), edge),
                mark,
                color="white",
                mec="black",
                ms=6,
                ls="none",
                clip_on=False,
                label="_nolegend_",
            )
            cut.set_in_layout(False)  # markers on the axis edge must not squeeze the layout
    if labels:
        ax.plot(
            [],
            [],
            "v",
            color="white",
            mec="black",
            ms=6,
            ls="none",
            label="cut at the axis",
        )


def _group_label(res: AlignmentResult, group: str) -> str:
    """The first line of a panel's y label: the group's name, when there are several."""
    return f"{GROUP_LABELS.get(group, group)}\n" if len(res.groups) > 1 else ""


def _legend(fig: Any, ax: Any, ncol: int) -> None:
    """One legend for the figure, above its panels (constrained layout makes room for it):
    the bars first, then the paper's bar and the cut marker."""
    handles, labels = ax.get_legend_handles_labels()
    last = ("paper's bar", "cut at the axis")
    order = sorted(
        range(len(labels)),
        key=lambda i: next((k + 1 for k, p in enumerate(last) if labels[i].startswith(p)), 0),
    )
    fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside upper left",
        ncol=ncol,
        fontsize=9,
        frameon=False,
        handlelength=1.4,
        columnspacing=1.0,
    )


def _gap_axis(res: AlignmentResult, values: np.ndarray, top: float | None) -> tuple[float, float]:
    """``(low, top)`` of a gap axis: up to 1.3 × the largest rotation / scaled-rotation gap (at
    least 6 × the bar), down to at most ``−top / 2``."""
    bar = res.params["paper_gap"]
    rot = res.table[res.table.method.isin(["rotation", "rotation_scaled"])]
    near = rot.groupby(["group", "site", "method"])["gap"].mean()
    top = float(top) if top is not None else max(6 * bar, 1.3 * float(near.max()))
    low = min(0.0, float(np.nanmin(values)))
    return max(low - 0.05 * top, -top / 2), top


def _bar_panel(ax: Any, res: AlignmentResult, low: float, top: float, ylabel: str) -> None:
    bar = res.params["paper_gap"]
    ax.axhline(bar, color="red", ls="--", lw=1.2, label=f"paper's bar {bar:g}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(low, top)
    ax.set_ylabel(ylabel, fontsize=9)


def plot_gaps(
    res: AlignmentResult, new_figure: Callable[..., Any], top: float | None = None
) -> Any:
    """The gap figure: one panel per group, bars per map and site (mean over pairs), on a
    **linear** axis with the paper's bar drawn and named. The axis runs to ``top`` (default: 1.3
    × the largest rotation / scaled-rotation gap, at least 6 × the bar) and down to at most
    ``−top / 2``, so that the bar stays readable; bars beyond are cut at the axis and marked ▽/△
    (their values are in the tables). ``new_figure``: ``book.figures.column_figure``."""
    gaps = res.method_table("gap")
    if len(res.groups) == 1:
        gaps = pd.concat({res.groups[0]: gaps}, names=["group"])
    cols = [SHORT[m] for m in GAP_SHOWN]
    low, top = _gap_axis(res, gaps[cols].to_numpy(dtype=float), top)
    n = len(res.groups)
    fig, axes = new_figure(n, 1, height=2.4 * n + 0.7, sharex=True)
    axes = np.atleast_1d(axes)
    for i, (ax, g) in enumerate(zip(axes, res.groups, strict=True)):
        n_pairs = res.table[res.table.group == g].groupby(["source", "target"]).ngroups
        _bars(
            ax,
            gaps.loc[g][cols],
            [_COLORS[m] for m in GAP_SHOWN],
            low,
            top,
            cols if i == 0 else None,
        )
        _bar_panel(
            ax,
            res,
            low,
            top,
            f"{_group_label(res, g)}gap, {n_pairs} pair{'s' if n_pairs > 1 else ''}",
        )
    _legend(fig, axes[0], 4)
    axes[-1].set_xticks(np.arange(len(res.sites)), res.sites, rotation=20)
    axes[-1].set_xlabel("residual site")
    return fig


def plot_controls(
    res: AlignmentResult, new_figure: Callable[..., Any], top: float | None = None
) -> Any:
    """The controls' figure: the rotation's gap per site for the real pair and each control
    (mean over groups), side by side, on the same axis as :func:`plot_gaps`."""
    ctrl = res.control_table().T
    low, top = _gap_axis(res, ctrl.to_numpy(dtype=float), top)
    fig, ax = new_figure(1, 1, height=3.4)
    colors = [
        "C0" if c == "real pair" else "C2" if "rotated" in c else f"C{3 + i}"
        for i, c in enumerate(ctrl.columns)
    ]
    _bars(ax, ctrl, colors, low, top, list(ctrl.columns))
    _bar_panel(ax, res, low, top, "gap of the rotation")
    _legend(fig, ax, 3)
    ax.set_xticks(np.arange(len(ctrl.index)), list(ctrl.index), rotation=20)
    ax.set_xlabel("residual site")
    return fig


def plot_fit_size(res: AlignmentResult, new_figure: Callable[..., Any]) -> Any:
    """The fit-size curve: the held-out gap of the rotation-moved SAE against the rows the
    rotation is fitted on (log axis), one panel per group, one line per site; the stable fit
    size of each site is the filled marker. Linear gap axis cut at 1.5 × the largest gap from
    the stable size on (at least 6 × the bar): smaller fits leave it at the top."""
    bar = res.params["paper_gap"]
    d = res.info["d_model"]
    fig, axes = new_figure(len(res.groups), 1, height=2.6 * len(res.groups) + 0.8, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, g in zip(axes, res.groups, strict=True):
        cur = res.curve[res.curve.group == g]
        stable = res.stable[res.stable.group == g].set_index("site")["n_stable"]
        tail = cur[cur.n_fit >= cur.site.map(stable)]
        low = min(0.0, float(tail.gap.min()))
        top = max(6 * bar, 1.5 * float(tail.gap.max()))
        for i, (site, sub) in enumerate(cur.groupby("site", sort=False)):
            ax.plot(sub.n_fit, sub.gap, "-", marker="o", ms=3, color=f"C{i}", label=site)
            at = sub[sub.n_fit == stable[site]]
            ax.plot(at.n_fit, at.gap, "o", ms=8, color=f"C{i}", mec="black")
        ax.axhline(bar, color="red", ls="--", lw=1.2, label=f"paper's bar {bar:g}")
        ax.axvline(d, color="grey", ls=":", lw=1, label=f"n = d = {d}")
        ax.set_xscale("log")
        ax.set_ylim(low - 0.06 * top, top)
        pair = cur.iloc[0]
        ax.set_ylabel(f"{_group_label(res, g)}gap, {pair.source} → {pair.target}", fontsize=9)
        if g == res.groups[0]:
            _legend(fig, ax, 4)
    axes[-1].set_xlabel("rows the rotation is fitted on")
    return fig


def chapter_outputs(res: AlignmentResult, new_figure: Callable[..., Any]) -> dict[str, Any]:
    """Everything chapters 12 and 22 show, by name, for ``book.figures.glue_outputs``: the
    tables ``gap_table``, ``map_ev_table``, ``control_table``, ``stable_table``; the figures
    ``gap_figure``, ``controls_figure``, ``fit_size_figure``; and the numbers of the sentence on
    the rotation's worst map EV, ``worst_site``, ``worst_group``, ``worst_map_ev``,
    ``worst_gap``, ``worst_s``, ``worst_map_ev_scaled`` (:meth:`AlignmentResult.
    worst_rotation_map_ev`). ``new_figure``: ``book.figures.column_figure``."""
    worst = res.worst_rotation_map_ev()
    return {
        "gap_table": res.method_table("gap"),
        "map_ev_table": res.method_table("map_ev"),
        **{f"worst_{k}": v for k, v in worst.items()},
        "gap_figure": plot_gaps(res, new_figure),
        "controls_figure": plot_controls(res, new_figure),
        "control_table": res.control_table(),
        "fit_size_figure": plot_fit_size(res, new_figure),
        "stable_table": res.stable_table(),
    }
