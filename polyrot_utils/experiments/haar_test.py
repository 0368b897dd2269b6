"""Is the rotation between two seeds Haar? One analysis for both rungs (chapters 13 and 23).

:func:`haar_experiment` takes one or several :class:`~polyrot_utils.models.activations.PairedActs`
(a Dyck cohort each, or one Pythia suite) and computes, per group:

* **the paper's two checks, the paper's way** — R fitted over O(d) (``U Vᵀ``, no determinant fix)
  from every other seed onto the first seed (the anchor), on one batch, at the paper's sites
  (:func:`polyrot_utils.experiments.analysis.paper_internal_sites` on the toy,
  :func:`~polyrot_utils.experiments.analysis.paper_pythia_sites` on Pythia):
  ``|mean ‖R − I‖_F/√(2d) − 1|`` against its 0.1 % criterion, and the pooled two-sample KS of
  the |eigenphases| against the paper's Haar pool (:func:`polyrot_utils.core.haar.paper_ks_test`);
* **the calibrated Haar test** (:func:`polyrot_utils.core.haar.haar_test`, Monte-Carlo against
  ``n_null`` Haar SO(d) samples) of the SO(d) fit of every unordered pair of seeds at every site,
  pooled per group (:func:`~polyrot_utils.core.haar.haar_test_pooled`) over all sites and over the
  *identified* sites only (activations of rank ≥ ``full_rank_frac`` · d: elsewhere the data do not
  determine R), with the distance to the nearest signed permutation against its Haar null, and
  the test's **size and power** at this d (:func:`~polyrot_utils.core.haar.size_and_power`);
* **the fixed subspace** in the glossary's sense (book/glossary.md, "Fixed subspace"): the span of
  R's invariant planes whose eigenangle is at most ``fixed_tol`` radians (:func:`fixed_subspace`),
  its dimension beside the Haar mean of the same count, and the fraction of the first seed's
  embedding / positional / unembedding spans lying inside it (spans of rank d are skipped: they
  contain every subspace);
* **outlier dimensions**: does R send each seed's ``n_outliers`` most kurtotic coordinates onto
  the other's more than a Haar R would (:func:`polyrot_utils.core.basis.outlier_alignment`);
* **cycle consistency** (three or more seeds): ‖R_AB R_BC − R_AC‖ against the fit noise;
* **the negative controls** (:func:`polyrot_utils.experiments.controls.haar_negative_controls`): R
  from the first seed to an untrained model (``acts.control("untrained")``) and to its own rows
  with the token pairing shuffled, fitted and tested the same way, at every site.

:func:`record_claims` writes the claims (same names on both rungs; with several groups each name
gets the suffix ``_<group>``), :func:`plot_haar` draws the chapter's figure,
:func:`rejection_sentence` says in words which groups the calibrated test rejects.

Conventions: rows are samples, ``X_src @ R ≈ X_tgt``; p-values are small when R is *not* Haar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polyrot_utils.core import basis, haar, intervals
from polyrot_utils.experiments import analysis, controls
from polyrot_utils.models.activations import PairedActs, short_site
from polyrot_utils.tasks.pythia.suite import PythiaActs

__all__ = [
    "FROBENIUS_CRITERION",
    "HaarExperiment",
    "chapter_outputs",
    "fixed_subspace",
    "haar_experiment",
    "plot_haar",
    "record_claims",
    "rejection_sentence",
    "summary_tables",
]

#: the paper's Frobenius criterion: |‖R − I‖_F / √(2d) − 1| within 0.1 %
FROBENIUS_CRITERION = 1e-3
#: the paper's toy claim (§8.4): Cohort B's ‖R − I‖_F within 5 % of √(2d)
TOY_FROBENIUS_CRITERION = 0.05


def fixed_subspace(R: Any, tol: float) -> np.ndarray:
    """Orthonormal basis ``(d, k)`` (columns) of R's fixed subspace at tolerance ``tol`` radians
    (the glossary's definition: invariant planes with eigenangle ≤ ``tol``; row vectors ``x`` in
    it satisfy ``x @ R ≈ x``).

    A view of the library's one definition, :func:`polyrot_utils.core.basis.fixed_subspace`
    (through :func:`polyrot_utils.experiments.analysis.fixed_subspace`, which gives columns).
    """
    return analysis.fixed_subspace(R, tol)


@dataclass
class HaarExperiment:
    """What :func:`haar_experiment` measured. Tables are pandas DataFrames (sites short-named).

    ``pairs``: one row per (group, pair, site): the calibrated test's components and verdict
    ``pvalue``, ``frobenius_ratio``, ``ks_pvalue_iid`` (the paper's per-matrix reading), the
    signed-permutation distance and p, ``identified``, ``fixed_dim`` (at ``fixed_tol``), outlier
    mass and p. ``groups``: one row per group (pooled numbers, the claims' inputs). ``sites``:
    one row per site, per-group medians. ``fixed``: one row per group: fixed-subspace dimension
    and span overlaps. ``controls``: one row per (group, site, comparison). ``power``: size and
    power at this d. ``paper``: the paper's rows (group, anchor, other, site, frob_ratio, R
    dropped). ``cycle``: cycle consistency per (group, site).
    """

    rung: str
    d: int
    alpha: float
    fixed_tol: float
    group_names: list[str]
    site_names: list[str]
    pairs: pd.DataFrame
    groups: pd.DataFrame
    sites: pd.DataFrame
    fixed: pd.DataFrame
    controls: pd.DataFrame
    power: pd.DataFrame
    paper: pd.DataFrame
    cycle: pd.DataFrame
    haar_frobenius_pass_fraction: float
    paper_phases: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def records(self) -> dict[str, Any]:
        """What a chapter records (``ChapterResults.record``, each under ``haar_<name>``): the
        full tables, JSON-ready, then ``frobenius_pass_fraction``
        (:attr:`haar_frobenius_pass_fraction`)."""
        tables = ("pairs", "groups", "sites", "fixed", "controls", "power", "paper", "cycle")
        out: dict[str, Any] = {
            name: getattr(self, name).to_dict(orient="records") for name in tables
        }
        out["frobenius_pass_fraction"] = self.haar_frobenius_pass_fraction
        return out


def _check(
    groups: Mapping[str, PairedActs],
    alpha: float,
    ints: Mapping[str, int],
    fixed_tol: float,
    full_rank_frac: float,
) -> None:
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("acts must be a PairedActs or a non-empty {group: PairedActs} mapping")
    for g, a in groups.items():
        if not isinstance(a, PairedActs):
            raise ValueError(f"acts[{g!r}] must be a PairedActs, got {type(a).__name__}")
        if len(a.members) < 2:
            raise ValueError(f"acts[{g!r}] has {len(a.members)} seed(s); the Haar test needs >= 2")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, v in ints.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not 0 < float(fixed_tol) < math.pi:
        raise ValueError(f"fixed_tol must be an angle in (0, π) radians, got {fixed_tol!r}")
    if not 0 < float(full_rank_frac) <= 1:
        raise ValueError(f"full_rank_frac must be in (0, 1], got {full_rank_frac!r}")


def _io_spans(model: Any, d: int) -> dict[str, np.ndarray]:
    """Spans of the model's embedding (``W_E`` rows), learned positions and unembedding in the
    residual basis, as ``(d, r)`` bases; spans of rank d (uninformative) and absent ones skipped."""
    out = {}
    cfg = getattr(model, "cfg", None)
    mats = {"W_E": lambda: model.W_E.detach().T, "W_U": lambda: model.W_U.detach()}
    if getattr(cfg, "positional_embedding_type", None) == "standard":
        mats["W_pos"] = lambda: model.W_pos.detach().T
    for name, get in mats.items():
        try:
            q = analysis.span_basis(get())
        except AttributeError:
            continue
        if q.shape[0] == d and 0 < q.shape[1] < d:
            out[name] = q
    return out


def _haar_fixed_mean(d: int, tol: float, n: int, seed: int) -> float:
    qs = haar.sample_haar(d, n, rng=np.random.default_rng([int(seed), d, 53]))
    return float(np.mean([fixed_subspace(q, tol).shape[1] for q in qs]))


def _outlier_rows(
    a: PairedActs,
    rots: Mapping[tuple[str, str, str], np.ndarray],
    n_outliers: int,
    outlier_null: int,
    seed: int,
) -> dict[tuple[str, str, str], dict[str, float]]:
    out = {}
    for (s, t, site), R in rots.items():
        k = min(n_outliers, R.shape[0] - 1)
        src = basis.outlier_dimensions(a.fit[s][site], k=k)
        tgt = basis.outlier_dimensions(a.fit[t][site], k=k)
        res = basis.outlier_alignment(R, src, tgt, n_null=max(10, outlier_null), seed=seed)
        out[(s, t, site)] = {
            "outlier_mass": res.mass,
            "outlier_mass_haar": res.expected_haar,
            "outlier_pvalue": res.p_value,
            "max_kurtosis": float(
                max(
                    basis.dimension_kurtosis(a.fit[s][site]).max(),
                    basis.dimension_kurtosis(a.fit[t][site]).max(),
                )
            ),
        }
    return out


def _control_rows(
    name: str, a: PairedActs, ident: Mapping[str, bool], *, n_null: int, alpha: float, seed: int
) -> list[dict[str, Any]]:
    """The negative controls at every site, from the first seed (when ``a`` has an
    ``"untrained"`` control): one row per (site, comparison)."""
    members = a.members
    crow = []
    if "untrained" in a.controls:
        unt = a.control("untrained")
        for site in a.sites:
            neg = controls.haar_negative_controls(
                a.fit[members[0]][site],
                a.fit[unt][site],
                a.fit[members[1]][site],
                n_null=n_null,
                seed=seed,
                alpha=alpha,
                shuffle_seed=seed,
            )
            crow += [
                {
                    "group": name,
                    "site": site,
                    "comparison": k,
                    "identified": ident[site],
                    "map_ev": r.map_ev,
                    "frobenius_ratio": r.frobenius_ratio,
                    "ks_pvalue_iid": r.ks_pvalue_iid,
                    "pvalue": r.pvalue,
                    "looks_haar": r.looks_haar,
                }
                for k, r in neg.items()
            ]
    return crow


def _fixed_row(
    name: str,
    a: PairedActs,
    table: pd.DataFrame,
    rots: Mapping[tuple[str, str, str], np.ndarray],
    fixed_tol: float,
    d: int,
) -> dict[str, Any]:
    """Mean fixed-subspace dimension (all / identified sites) and the share of each of the
    first seed's I/O spans lying inside the fixed subspace, averaged over pairs and sites."""
    spans = _io_spans(a.models[a.members[0]], d)
    fixed = {
        "group": name,
        "fixed_dim": float(table.fixed_dim_tau.mean()),
        "fixed_dim_identified": float(table.fixed_dim_tau[table.identified].mean())
        if table.identified.any()
        else float("nan"),
    }
    for sname, q in spans.items():
        ov = [
            float(np.linalg.norm(fixed_subspace(R, fixed_tol).T @ q) ** 2 / q.shape[1])
            for R in rots.values()
        ]
        fixed[f"overlap_{sname}"] = float(np.mean(ov))
        fixed[f"rank_{sname}"] = int(q.shape[1])
    return fixed


def _group(
    name: str,
    a: PairedActs,
    *,
    rung: str,
    n_null: int,
    n_resample: int,
    alpha: float,
    fixed_tol: float,
    full_rank_frac: float,
    n_outliers: int,
    outlier_null: int,
    seed: int,
) -> dict[str, Any]:
    sites, members = list(a.sites), list(a.members)
    d = int(a.fit[members[0]][sites[0]].shape[1])
    pairs = analysis.all_pairs(members)
    maps = analysis.fit_maps(a.fit, pairs, sites, methods=("rotation",))
    rots = analysis.rotations_from_maps(maps, "rotation", pairs=pairs)
    geo = pd.DataFrame(analysis.site_geometry(a.fit, sites, models=members))
    rank = geo.groupby("site")["rank"].min().to_dict()
    ident = {s: bool(rank[s] >= full_rank_frac * d) for s in sites}
    # the signed-permutation null must be large enough for its Bonferroni bound to reach α
    n_bonf = sum(ident[site] for (_, _, site) in rots) or len(rots)
    perm_null = max(n_null, math.ceil(2 * n_bonf / alpha))
    table = pd.DataFrame(analysis.haar_table(rots, n_null=n_null, seed=seed, perm_null=perm_null))
    outl = _outlier_rows(a, rots, n_outliers, outlier_null, seed)
    table["fixed_dim_tau"] = [fixed_subspace(R, fixed_tol).shape[1] for R in rots.values()]
    for key in ("outlier_mass", "outlier_mass_haar", "outlier_pvalue", "max_kurtosis"):
        table[key] = [outl[k][key] for k in rots]
    table.insert(0, "group", name)
    table["identified"] = table.site.map(ident)
    table["rank"] = table.site.map(rank)
    # the paper's way: O(d) one-batch R of every other seed onto the anchor, the paper's sites
    psites = (
        analysis.paper_pythia_sites(sites)
        if rung == "pythia"
        else analysis.paper_internal_sites(sites)
    ) or sites
    prows = analysis.paper_transfer_table(
        a.fit, analysis.all_pairs(members, anchor=members[0]), psites
    )
    paper_ks = haar.paper_ks_test([r["R"] for r in prows])
    # |eigenphases| per other seed, as paper_ks_test pools them: for the bootstrap over seeds
    phases = {
        o: np.concatenate(
            [np.abs(np.angle(np.linalg.eigvals(r["R"]))) for r in prows if r["other"] == o]
        )
        for o in members[1:]
    }
    paper = pd.DataFrame(
        [{"group": name, **{k: v for k, v in r.items() if k != "R"}} for r in prows]
    )
    mats = list(rots.values())
    pooled = haar.haar_test_pooled(mats, n_null=n_null, seed=seed, n_resample=n_resample)
    id_mats = [R for (s, t, site), R in rots.items() if ident[site]]
    pooled_id = (
        haar.haar_test_pooled(id_mats, n_null=n_null, seed=seed, n_resample=n_resample)
        if id_mats
        else None
    )
    crow = _control_rows(name, a, ident, n_null=n_null, alpha=alpha, seed=seed)
    cyc = (
        analysis.cycle_consistency(a.fit, (members[0], members[1], members[2]), sites)
        if len(members) >= 3
        else []
    )
    fixed = _fixed_row(name, a, table, rots, fixed_tol, d)
    ctrl = pd.DataFrame(crow)
    ctrl_id = ctrl[ctrl.identified] if len(ctrl) and ctrl.identified.any() else ctrl
    neg_p = float(ctrl_id[ctrl_id.comparison != "pair"].pvalue.max()) if len(ctrl) else float("nan")
    n_tests = len(table)
    tested = table[table.identified] if table.identified.any() else table
    row = {
        "group": name,
        "n_seeds": len(members),
        "n_matrices": n_tests,
        "n_identified": len(id_mats),
        "paper_frob_mean_dev": abs(float(paper.frob_ratio.mean()) - 1.0),
        "paper_ks_statistic": paper_ks.statistic,
        "paper_ks_pvalue": paper_ks.pvalue,
        "frob_dev_max": float((table.frobenius_ratio - 1).abs().max()),
        "calibrated_p": pooled.pvalue,
        "calibrated_p_identified": pooled_id.pvalue if pooled_id else float("nan"),
        "per_pair_rejected": int((table.pvalue <= alpha).sum()),
        "signed_perm_p_bonf": float(min(1.0, tested.signed_perm_pvalue.min() * len(tested))),
        "outlier_p_bonf": float(min(1.0, tested.outlier_pvalue.min() * len(tested))),
        "n_bonferroni": len(tested),
        "controls_max_p": neg_p,
        "cycle_ratio_median": float(np.median([r["ratio"] for r in cyc])) if cyc else float("nan"),
        **{f"calibrated_p_{k}": v for k, v in pooled.component_pvalues.items()},
    }
    return {
        "table": table,
        "row": row,
        "paper": paper,
        "controls": ctrl,
        "fixed": fixed,
        "cycle": pd.DataFrame([{"group": name, **r} for r in cyc]),
        "d": d,
        "sites": sites,
        "phases": phases,
    }


def haar_experiment(
    acts: PairedActs | Mapping[str, PairedActs],
    *,
    n_null: int = 200,
    n_resample: int = 2000,
    alpha: float = 0.05,
    power_trials: int = 12,
    fixed_tol: float = 0.1,
    full_rank_frac: float = 0.9,
    n_outliers: int = 4,
    outlier_null: int = 500,
    seed: int = 0,
) -> HaarExperiment:
    """Every Haar check of chapters 13 and 23 on ``acts`` (see the module docstring).

    Args:
        acts: one :class:`PairedActs` (one group, named after the rung) or ``{group: PairedActs}``
            (e.g. one per Dyck cohort), all of one rung and one d; a group with an
            ``"untrained"`` control also gets the negative controls.
        n_null: Haar samples calibrating every per-matrix test (and the controls'); the
            signed-permutation null gets at least 2 × (its tests) / α samples, so that its
            Bonferroni-corrected p can fall below α (``outlier_null`` is used as given).
        n_resample: resamples calibrating the pooled Fisher statistic.
        alpha: the level of every test.
        power_trials: matrices per row of the size/power table at this d.
        fixed_tol: the fixed subspace's tolerance τ in radians (glossary: τ = 0.1 for fits).
        full_rank_frac: a site is *identified* when its activations' rank ≥ this × d.
        n_outliers, outlier_null: outlier dimensions per seed, and the Haar samples of their test.
        seed: seeds every null sample and the shuffled control; same seed, same numbers.
    """
    if isinstance(acts, PairedActs):
        rung0 = "pythia" if isinstance(acts, PythiaActs) else "dyck"
        groups: Mapping[str, PairedActs] = {rung0: acts}
    else:
        groups = acts
    _check(
        groups,
        alpha,
        dict(
            n_null=n_null,
            n_resample=n_resample,
            power_trials=power_trials,
            n_outliers=n_outliers,
            outlier_null=outlier_null,
        ),
        fixed_tol,
        full_rank_frac,
    )
    rungs = {"pythia" if isinstance(a, PythiaActs) else "dyck" for a in groups.values()}
    if len(rungs) != 1:
        raise ValueError(f"acts mixes rungs {sorted(rungs)}; pass one rung's activations")
    rung = rungs.pop()
    out = {
        g: _group(
            g,
            a,
            rung=rung,
            n_null=n_null,
            n_resample=n_resample,
            alpha=alpha,
            fixed_tol=fixed_tol,
            full_rank_frac=full_rank_frac,
            n_outliers=n_outliers,
            outlier_null=outlier_null,
            seed=seed,
        )
        for g, a in groups.items()
    }
    ds = {o["d"] for o in out.values()}
    if len(ds) != 1:
        raise ValueError(f"acts has groups of different d {sorted(ds)}; pass one d")
    d = ds.pop()
    names = list(out)
    sites = out[names[0]]["sites"]
    pairs = pd.concat([o["table"] for o in out.values()], ignore_index=True)
    haar_fixed = _haar_fixed_mean(d, fixed_tol, n_null, seed)
    site_rows = []
    for s in sites:
        at = pairs[pairs.site == s]
        row: dict[str, Any] = {"site": short_site(s), "rank": int(at["rank"].min())}
        for g in names:
            sub = at[at.group == g]
            tail = f" ({g})" if len(names) > 1 else ""
            row["median p" + tail] = float(sub.pvalue.median())
        for g in names:
            sub = at[at.group == g]
            tail = f" ({g})" if len(names) > 1 else ""
            row["fixed dim" + tail] = float(sub.fixed_dim_tau.mean())
        row["Haar fixed dim"] = haar_fixed
        site_rows.append(row)
    fixed = pd.DataFrame([o["fixed"] for o in out.values()])
    fixed.insert(2, "haar_fixed_dim", haar_fixed)
    null_frob = haar.null_features(d, n_null, seed)["frobenius_ratio"]
    power = pd.DataFrame(
        haar.size_and_power(d, n_trials=power_trials, alpha=alpha, seed=seed, n_null=n_null)
    )
    for df in (pairs,):
        df["site"] = df.site.map(short_site)
    ctrl = pd.concat([o["controls"] for o in out.values()], ignore_index=True)
    cyc = pd.concat([o["cycle"] for o in out.values()], ignore_index=True)
    paper = pd.concat([o["paper"] for o in out.values()], ignore_index=True)
    for df in (ctrl, cyc, paper):
        if len(df):
            df["site"] = df.site.map(short_site)
    return HaarExperiment(
        rung=rung,
        d=d,
        alpha=float(alpha),
        fixed_tol=float(fixed_tol),
        group_names=names,
        site_names=[short_site(s) for s in sites],
        pairs=pairs,
        groups=pd.DataFrame([o["row"] for o in out.values()]),
        sites=pd.DataFrame(site_rows),
        fixed=fixed,
        controls=ctrl,
        power=power,
        paper=paper,
        cycle=cyc,
        haar_frobenius_pass_fraction=float((np.abs(null_frob - 1) <= FROBENIUS_CRITERION).mean()),
        paper_phases={g: o["phases"] for g, o in out.items()},
    )


# ------------------------------------------------------------------------------------ claims
_PYTHIA_FROB = dict(
    paper_value="mean ‖R − I‖_F = 31.99 vs √(2·512) = 32.00: within 0.1 % (p10–p90 31.94–32.03), "
    "56 (pair, site)",
    source="§8.3; experiments/scale/pythia_panel_c_fast.py:main (all_pair_frob_histogram mean)",
)
_PYTHIA_KS = dict(
    paper_value="KS statistic 0.0027, p = 1.000 (28,672 eigenvalues vs 5,120 Haar)",
    source="§8.3; experiments/scale/eigenvalue_spectrum.py:main, ks_test_uniform",
)
_TOY_FROB = dict(
    paper_value="‖R − I‖_F in [10.80, 11.25] vs √(2·64) = 11.31: within 5 %",
    source="§8.4 'Independent-init at toy scale'; "
    "experiments/independent_init/analyze_indep.py:run_rotation_audit",
)
#: the Dyck cohort the paper's toy Frobenius claim is about (Cohort B)
TOY_CLAIM_GROUP = "independent"


def _seed_bootstrap(
    others: Sequence[str],
    stat: Any,
    value: float,
    seed: int,
    what: str,
    n_boot: int = 1000,
    level: float = 0.9,
) -> intervals.Interval:
    """Percentile interval of a pooled statistic over the seeds: the seeds compared with the
    anchor (``others``) are drawn with replacement and ``stat(drawn seeds)`` recomputed; the
    point is the statistic on the seeds as they are (``value``). With one such seed the interval
    is that one value."""
    others = list(others)
    if len(others) < 2:
        return intervals.Interval(
            float(value),
            float(value),
            float(value),
            len(others),
            level,
            f"one seed against the anchor: no spread ({what})",
        )
    rng = np.random.default_rng([int(seed), 7013])
    draws = [
        stat([others[i] for i in rng.integers(0, len(others), len(others))]) for _ in range(n_boot)
    ]
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return intervals.Interval(
        float(value),
        float(lo),
        float(hi),
        len(others),
        level,
        f"bootstrap over the seeds compared with the anchor ({what})",
    )


def _paper_intervals(res: HaarExperiment, g: str, seed: int) -> dict[str, intervals.Interval]:
    """Intervals over seeds of the paper's three statistics for group ``g``: the Frobenius mean
    deviation, the pooled KS p, and the toy claim's largest per-site deviation."""
    from scipy.stats import ks_2samp

    paper = res.paper[res.paper.group == g]
    others = list(dict.fromkeys(paper.other))
    by = {o: paper[paper.other == o] for o in others}
    ref = haar.paper_haar_pool(res.d)
    row = res.groups.set_index("group").loc[g]

    def frob(sel: Sequence[str]) -> float:
        return abs(float(np.mean(np.concatenate([by[o].frob_ratio.to_numpy() for o in sel]))) - 1)

    def ks(sel: Sequence[str]) -> float:
        return float(ks_2samp(np.concatenate([res.paper_phases[g][o] for o in sel]), ref).pvalue)

    def toy(sel: Sequence[str]) -> float:
        rows = pd.concat([by[o] for o in sel])
        return float((rows.groupby("site").frob_ratio.mean() - 1).abs().max())

    toy_value = float((paper.groupby("site").frob_ratio.mean() - 1).abs().max())
    return {
        "frob": _seed_bootstrap(others, frob, row.paper_frob_mean_dev, seed, "|mean − 1|"),
        "ks": _seed_bootstrap(others, ks, row.paper_ks_pvalue, seed, "pooled KS p"),
        "toy": _seed_bootstrap(others, toy, toy_value, seed, "largest site deviation"),
    }


def record_claims(res: HaarExperiment, results: Any, *, seed: int = 0) -> pd.DataFrame:
    """Record the chapter's claims into ``results`` (a ``ChapterResults``) and return their
    summary: one row per claim, one column per group, ``value [lo, hi]`` and pass/FAIL.

    Names (suffix ``_<group>`` when there are several groups): ``frobenius_mean_within_0.1pct``
    and ``paper_pooled_ks_not_rejected`` (the paper's two checks; ``kind="paper"`` on the Pythia
    rung, where the paper makes them, with an interval over seed pairs; ``kind="check"`` on the
    toy), ``frobenius_ratio_within_0.1pct``, ``calibrated_pooled_haar_not_rejected``,
    ``not_closer_to_signed_permutation``, ``outliers_not_mapped_to_outliers``,
    ``negative_controls_rejected`` (checks); on the toy also the paper's
    ``dyck_indep_frobenius_within_5pct`` for Cohort B when it is among the groups.
    """
    a, d, multi = res.alpha, res.d, len(res.group_names) > 1
    pythia = res.rung == "pythia"
    shown: dict[str, dict[str, str]] = {}

    def claim(base: str, g: str, **kw: Any) -> None:
        name = f"{base}_{g}" if multi and base != "dyck_indep_frobenius_within_5pct" else base
        passed = results.claim(name, **kw)
        iv = kw.get("interval")
        txt = f"{kw['value']:.3g}" + (f" [{iv.lo:.3g}, {iv.hi:.3g}]" if iv is not None else "")
        shown.setdefault(base, {})[g] = f"{txt} ({'pass' if passed else 'FAIL'})"

    def not_rejected(base: str, g: str, p: float, **kw: Any) -> None:
        """A check that a test does not reject at ``alpha``: value and p-value are its ``p``."""
        claim(base, g, value=p, threshold=a, op=">", kind="check", p_value=p, **kw)

    haar_pass = res.haar_frobenius_pass_fraction
    for g in res.group_names:
        row = res.groups.set_index("group").loc[g]
        ivs = _paper_intervals(res, g, seed)
        frob_iv, ks_iv = ivs["frob"], ivs["ks"]
        who = f"{g}: " if multi else ""
        if not pythia and g == TOY_CLAIM_GROUP:
            claim(
                "dyck_indep_frobenius_within_5pct",
                g,
                value=ivs["toy"].point,
                threshold=TOY_FROBENIUS_CRITERION,
                op="<=",
                kind="paper",
                **_TOY_FROB,
                interval=ivs["toy"],
                description=f"Cohort B: |mean ‖R − I‖_F/√(2d) − 1| (O(d) fit onto the anchor, one "
                f"batch, mean over pairs), largest over internal sites, d = {d}",
            )
        toy_ref = (
            {
                "check_of": "dyck_indep_frobenius_within_5pct",
                "why_stricter": "the paper's Pythia 0.1 % criterion applied at the toy's d",
            }
            if not pythia and TOY_CLAIM_GROUP in res.group_names
            else {}
        )
        frob_desc = (
            f"{who}|mean ‖R − I‖_F/√(2d) − 1| over anchor pairs × the paper's sites (O(d) "
            f"R, one batch), d = {d}; only {haar_pass:.0%} of Haar SO({d}) samples meet "
            "0.1 % one by one"
        )
        # the paper's two checks: its own claims on the Pythia rung, our checks on the toy
        kind, ours = ("paper", "") if pythia else ("check", "ours: ")
        claim(
            "frobenius_mean_within_0.1pct",
            g,
            value=row.paper_frob_mean_dev,
            threshold=FROBENIUS_CRITERION,
            op="<=",
            kind=kind,
            interval=frob_iv,
            description=ours + frob_desc,
            **(_PYTHIA_FROB if pythia else toy_ref),
        )
        claim(
            "paper_pooled_ks_not_rejected",
            g,
            value=row.paper_ks_pvalue,
            threshold=a,
            op=">",
            kind=kind,
            interval=ks_iv,
            **(_PYTHIA_KS if pythia else {"p_value": row.calibrated_p}),
            description="two-sample KS of the pooled |eigenphases| of the O(d) fits (anchor "
            "pairs × the paper's sites) against the paper's 10-matrix Haar pool"
            if pythia
            else f"ours: {who}the paper's pooled KS (O(d) fits, its Haar pool) on the "
            "toy — the paper runs it on Pythia only; p_value = calibrated p",
        )
        claim(
            "frobenius_ratio_within_0.1pct",
            g,
            value=row.frob_dev_max,
            threshold=FROBENIUS_CRITERION,
            op="<=",
            kind="check",
            check_of="frobenius_mean_within_0.1pct" if pythia else None,
            why_stricter="the worst single SO(d) matrix, not the mean over pairs"
            if pythia
            else None,
            description=f"ours: {who}largest |‖R − I‖_F/√(2d) − 1| over pairs and sites",
        )
        not_rejected(
            "calibrated_pooled_haar_not_rejected",
            g,
            row.calibrated_p,
            check_of="paper_pooled_ks_not_rejected" if pythia else None,
            why_stricter="calibrated pooled test with measured power, where the paper's KS has "
            "almost none"
            if pythia
            else None,
            description=f"ours: {who}calibrated pooled Haar test (every pair of seeds and site) "
            "does not reject",
        )
        not_rejected(
            "not_closer_to_signed_permutation",
            g,
            row.signed_perm_p_bonf,
            description=f"ours: {who}R no closer to a signed permutation than Haar rotations "
            f"(smallest lower-tail p × {int(row.n_bonferroni)} tests, identified sites)",
        )
        not_rejected(
            "outliers_not_mapped_to_outliers",
            g,
            row.outlier_p_bonf,
            description=f"ours: {who}R does not send one seed's most kurtotic dimensions onto the "
            f"other's more than Haar R (smallest p × {int(row.n_bonferroni)} tests, "
            "identified sites)",
        )
        if not math.isnan(row.controls_max_p):
            claim(
                "negative_controls_rejected",
                g,
                value=row.controls_max_p,
                threshold=a,
                op="<=",
                kind="check",
                description=f"ours: {who}the calibrated test rejects R fitted to an untrained "
                "model and to shuffled token pairs (largest p over the identified "
                "sites): if not, 'looks Haar' is uninformative",
            )
    return pd.DataFrame(shown).T.rename_axis("claim")


def rejection_sentence(
    res: HaarExperiment,
    haar_expected: Sequence[str] = (),
    noun: str = "group",
    *,
    bold: bool = True,
) -> str:
    """One Markdown sentence, computed from ``res``: which groups the calibrated pooled test
    rejects at the identified sites (at ``res.alpha``), and — when ``haar_expected`` names the
    groups a theory predicts to be Haar — whether the verdicts agree with that prediction.
    ``bold=False``: the group names without Markdown emphasis (plain text, e.g. for MyST-NB's
    ``{glue:text}``, which does not parse Markdown)."""
    g = res.groups.set_index("group")
    col = "calibrated_p_identified"
    p = {
        k: (g.loc[k, col] if not math.isnan(g.loc[k, col]) else g.loc[k, "calibrated_p"])
        for k in res.group_names
    }
    rej = [k for k in res.group_names if p[k] <= res.alpha]
    keep = [k for k in res.group_names if p[k] > res.alpha]

    def names(ks: Sequence[str]) -> str:
        em = "**" if bold else ""
        return ", ".join(f"{em}{k}{em} (p = {p[k]:.3g})" for k in ks)

    head = f"At the identified sites the calibrated pooled test (α = {res.alpha:g})"
    if len(res.group_names) == 1:
        k = res.group_names[0]
        out = f"{head} {'rejects' if rej else 'does not reject'} Haar (p = {p[k]:.3g})."
    elif rej and keep:
        out = f"{head} rejects Haar for {names(rej)}; it does not reject for {names(keep)}."
    elif rej:
        out = f"{head} rejects Haar for every {noun}: {names(rej)}."
    else:
        out = f"{head} rejects Haar for no {noun}: {names(keep)}."
    expected = [k for k in haar_expected if k in res.group_names]
    if expected:
        bad = [k for k in expected if k in rej]
        extra = [k for k in keep if k not in expected]
        if not bad and not extra:
            out += " That is what the theory predicts: only " + ", ".join(expected) + " look Haar."
        else:
            out += (
                " The theory predicts Haar only for " + ", ".join(expected) + "; it is "
                "contradicted here: "
                + "; ".join(
                    ([f"{', '.join(bad)} is rejected"] if bad else [])
                    + ([f"{', '.join(extra)} is not"] if extra else [])
                )
                + "."
            )
    return out


# ------------------------------------------------------------------------------------ figure
def plot_haar(res: HaarExperiment, axes: Sequence[Any]) -> None:
    """Draw the chapter's figure on two matplotlib axes (top, bottom; e.g. from
    ``polyrot_utils.book.figures.column_figure(2, 1, sharex=True)``): per site, the calibrated p
    of the seeds' pairs (median over pairs, one line per group; top) and of the negative controls
    (median over groups; bottom), against α, on a log axis. Hollow markers: sites where R is not
    identified."""
    if len(axes) != 2:
        raise ValueError(f"axes must be two matplotlib axes (top, bottom), got {len(axes)}")
    xs = np.arange(len(res.site_names))
    floor = 1.0
    for i, g in enumerate(res.group_names):
        at = res.pairs[res.pairs.group == g].groupby("site", sort=False)
        y = at.pvalue.median().reindex(res.site_names).to_numpy()
        ident = at.identified.all().reindex(res.site_names).to_numpy()
        floor = min(floor, np.nanmin(y))
        x = xs + 0.15 * (i - (len(res.group_names) - 1) / 2)
        ls, mk = ("-", "--", "-.", ":")[i % 4], "os^D"[i % 4]
        axes[0].plot(x, y, ls=ls, color=f"C{i}", label=g, marker=mk, markerfacecolor="none")
        axes[0].scatter(x[ident], y[ident], color=f"C{i}", marker=mk, zorder=3)
    styles = {"pair": ("C0", "o"), "untrained": ("C3", "s"), "shuffled": ("C7", "^")}
    if len(res.controls):
        med = res.controls.groupby(["comparison", "site"], sort=False).pvalue.median()
        for i, (k, (c, m)) in enumerate(styles.items()):
            if k not in med.index.get_level_values(0):
                continue
            y = med.loc[k].reindex(res.site_names).to_numpy()
            floor = min(floor, np.nanmin(y))
            axes[1].plot(
                xs + 0.15 * (i - 1),
                y,
                ("-", "--", "-.")[i],
                marker=m,
                color=c,
                label={"pair": "two seeds"}.get(k, k),
            )
    for ax in axes:
        ax.axhline(res.alpha, color="k", ls=":", lw=1.2, label=f"α = {res.alpha:g}")
        ax.set_yscale("log")
        ax.set_ylim(max(floor, 1e-4) / 1.5, 1.5)
        ax.set_ylabel("calibrated p")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[0].set_title("seeds' rotations (median over pairs)")
    axes[1].set_title("negative controls from the first seed")
    axes[1].set_xticks(xs, res.site_names, rotation=30, ha="right")
    axes[1].set_xlabel("residual site")


def summary_tables(res: HaarExperiment) -> dict[str, pd.DataFrame]:
    """The page's small tables: ``groups`` (one row per group: the paper's two checks, the
    calibrated verdicts, controls, cycle), ``sites`` (one row per site), ``fixed`` (fixed subspace
    per group) and ``power`` (size and power at this d)."""
    cols = {
        "paper_frob_mean_dev": "paper: |mean ratio − 1|",
        "paper_ks_pvalue": "paper: pooled KS p",
        "calibrated_p": "calibrated p (all sites)",
        "calibrated_p_identified": "calibrated p (identified)",
        "per_pair_rejected": "pairs × sites rejected",
        "n_matrices": "of",
        "signed_perm_p_bonf": "signed-perm. p",
        "outlier_p_bonf": "outlier p",
        "controls_max_p": "controls: largest p",
        "cycle_ratio_median": "cycle err / noise",
    }
    groups = res.groups.set_index("group")[list(cols)].rename(columns=cols).astype(object)
    fixed = res.fixed.set_index("group")
    names = {
        "fixed_dim": "fixed dim",
        "haar_fixed_dim": "Haar",
        "fixed_dim_identified": "fixed dim (identified)",
    }
    for c in fixed.columns:
        if c.startswith("overlap_"):
            span = c[len("overlap_") :]
            names[c] = f"share of {span} fixed (rank {int(fixed[f'rank_{span}'].iloc[0])})"
    fixed = fixed[[c for c in fixed.columns if not c.startswith("rank_")]].rename(columns=names)
    power = res.power.set_index("alternative")[
        [
            "ks_iid",
            "frobenius_0.1pct",
            "ks_calibrated",
            "kurtosis",
            "max_entry",
            "traces",
            "combined",
        ]
    ].rename(
        columns={
            "ks_iid": "iid KS",
            "frobenius_0.1pct": "Frob. 0.1 %",
            "ks_calibrated": "cal. KS",
            "max_entry": "max entry",
            "combined": "verdict",
        }
    )
    # the per-cohort fixed dimensions per site stay in the results file (``haar_sites``); the
    # page shows the p-values, which fit the column
    sites = res.sites.set_index("site")
    sites = sites[[c for c in sites.columns if not c.startswith("fixed dim (")]]
    return {
        "groups": groups.T,
        "sites": sites,
        "fixed": fixed.astype(object),
        "power": power,
    }


def chapter_outputs(
    res: HaarExperiment,
    new_figure: Callable[..., Any],
    *,
    haar_expected: Sequence[str] = (),
    noun: str = "group",
) -> dict[str, Any]:
    """Everything chapters 13 and 23 show, by name, for ``book.figures.glue_outputs``.

    Tables (:func:`summary_tables`): ``groups_table`` (the paper's checks beside the calibrated
    test, one column per group), ``sites_table`` (per site), ``fixed_table`` (fixed subspace per
    group) and ``power_table`` (size and power at this d; the chapters write it with 2
    significant digits, the others with 3). The figure ``haar_figure`` (:func:`plot_haar` on
    ``new_figure(2, 1, height=5.6, sharex=True)``; ``new_figure``:
    ``book.figures.column_figure``). The sentence ``rejection_sentence``
    (:func:`rejection_sentence` with ``haar_expected`` and ``noun``, plain text: no Markdown
    emphasis). Nothing is recomputed: every value is read from ``res``.
    """
    tables = summary_tables(res)
    fig, axes = new_figure(2, 1, height=5.6, sharex=True)
    plot_haar(res, axes)
    return {
        "groups_table": tables["groups"],
        "rejection_sentence": rejection_sentence(res, haar_expected, noun, bold=False),
        "sites_table": tables["sites"],
        "haar_figure": fig,
        "fixed_table": tables["fixed"],
        "power_table": tables["power"],
    }
