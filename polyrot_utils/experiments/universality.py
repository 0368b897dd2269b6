"""The universality paradox, once for both rungs (chapters 11 and 21).

The paper's paradox: SAEs trained on two seeds look *universal* by the decoder-cosine metric
(their decoder rows match across seeds), yet one seed's SAE reconstructs another seed's
activations at negative explained variance. This module measures both halves on a
:class:`~polyrot_utils.models.activations.PairedActs` (either rung builds one), with the
references a reader needs to judge them:

- the **within-seed ceiling**: each seed's own SAE on its own held-out rows;
- **cross-seed transfer without alignment**: seed A's SAE, unchanged, on seed B's held-out rows;
- **feature matching across seeds**: decoder cosines (mean max cosine, one-to-one matched cosine,
  on all latents and on live latents), before and after rotating A's decoder by the Procrustes
  R fitted on the fit batch (row convention ``x_A @ R ≈ x_B``, so A's decoder rows move as
  ``D_A @ R``);
- **references**: two unrelated random dictionaries (the floor), the anchor's own activations
  with an SAE from another SAE seed (the "same features" reference), SAEs that share one SAE
  seed (does the metric read the shared random init?), and the controls of the batch
  (``control:untrained`` and whatever else the rung built).

Every cross-seed number is per *pair of seeds* (all unordered pairs, source = the first seed
of the pair) and site, so the headline means carry a bootstrap interval over seeds
(:func:`polyrot_utils.core.intervals.pair_interval`). The paper's own statistics (its sites,
anchor pairs, scalar-variance EV, signed many-to-one cosine over all latents) are computed by
:mod:`polyrot_utils.experiments.analysis`'s ``paper_*`` functions under :data:`PAPER_CLAIMS`,
which says for each rung (and Dyck cohort) what the paper claims and where.

Use::

    res = universality.measure(acts, sae_expansion=2, sae_k=8, sae_n_tokens=16_384,
                               sae_batch_size=256, seed=0, cohort="shared_io")
    universality.record(results, [res])      # claims and values into a ChapterResults
    figures.show(universality.plot([res], figures.column_figure))
    # a chapter: every table and figure by name, for its prose to place
    figures.glue_outputs(universality.chapter_outputs([res], figures.column_figure))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polyrot_utils.core import metrics
from polyrot_utils.core.intervals import Interval, pair_interval, seed_interval
from polyrot_utils.experiments import analysis
from polyrot_utils.models.activations import PairedActs, short_site
from polyrot_utils.sae.autoencoder import SAE

__all__ = [
    "COHORT_TITLES",
    "CONTROL_MARGIN",
    "COSINE_THRESHOLD",
    "FLOOR_MARGIN",
    "HEADLINES",
    "PAPER_CLAIMS",
    "PaperClaim",
    "UniversalityResult",
    "chapter_outputs",
    "ev_statistics",
    "headline_table",
    "measure",
    "plot",
    "record",
    "shared_seed_table",
    "site_table",
    "train_universality_saes",
]

#: the paper's decoder-cosine cut: a latent "matches" when its best cosine exceeds this
COSINE_THRESHOLD = 0.5
#: ours: the live matched cosine must beat two random dictionaries by this much
FLOOR_MARGIN = 0.1
#: ours: the seeds' mean max cosine must beat the anchor-vs-untrained-model cosine by this much
CONTROL_MARGIN = 0.1
#: SAE seed of the anchor's second SAE ("same model, other SAE seed"): ``seed + TWIN_SEED_OFFSET``
TWIN_SEED_OFFSET = 1000
#: the embedding site, left out of "internal" sites (Cohort A: the same tensor in every seed)
EMBED_SITE = "blocks.0.hook_resid_pre"

SaeDict = dict[str, dict[str, SAE]]
#: what a reader sees for a cohort kind (the glossary's names)
COHORT_TITLES = {
    "shared_io": "Cohort A (shared I/O)",
    "independent": "Cohort B (independent)",
    "same_init": "same-init cohort",
    "sgd": "SGD cohort",
    "pythia": "Pythia-architecture seeds",
}


# ----------------------------------------------------------------------------- the paper's claims
@dataclass(frozen=True)
class PaperClaim:
    """One claim the paper makes about universality on one rung, and how to compute it.

    ``statistic``: ``"fraction"`` (share of latents with max signed decoder cosine > 0.5),
    ``"mean_max_cosine"``, or a column of :func:`analysis.paper_transfer_table`
    (``"sae_ev_raw"``: the anchor's SAE on another seed's rows; ``"raw_map_ev"``: the identity
    map's EV). ``sites(paper_sites) -> judged sites``; ``pairs``: ``"to_anchor"`` (each seed
    vs the anchor, the paper's toy code), ``"from_anchor"`` (anchor vs each seed) or ``"all"``;
    ``over_pairs``: ``"min"`` (every pair must pass) or ``"mean"``; ``over_sites``: how the
    per-site values combine (``"min"``, ``"max"``). The value is ``over_sites`` of
    ``over_pairs``, compared with ``threshold`` by ``op``."""

    name: str
    statistic: str
    sites: Callable[[list[str]], list[str]]
    pairs: str
    over_pairs: str
    over_sites: str
    threshold: float
    op: str
    paper_value: str
    source: str
    description: str


def _late(ps: list[str]) -> list[str]:
    return [analysis.last_block_resid_post(ps)]


_SRC_TOY_COS = (
    "§7.1 'The SAE decoder-cosine number'; analysis/lens2_saes.py:cross_seed_feature_stability"
)
_SRC_PY_COS = (
    "§8.3 'Decoder cosine reproduces the 98% number'; "
    "experiments/scale/pythia_rotation.py:panel_a_decoder_cosine"
)
_TOY_EV = (
    "shared-I/O",
    "negative at every internal site (×8 SAE; ×32 down to −6.56 at resid_mid_0)",
    "§8.1 'naive SAE transfer fails'; experiments/cross_seed/exp1d_rotation_audit.py:sae_metrics",
)
_TOY_EV_B = (
    "independent",
    "naive raw EV in [−1.53, −0.58]",
    (
        "§8.4 'Independent-init at toy scale'; "
        "experiments/independent_init/analyze_indep.py:run_rotation_audit"
    ),
)


def _toy_ev_claim(cohort: str, paper_value: str, source: str) -> PaperClaim:
    return PaperClaim(
        "unaligned_ev_negative",
        "sae_ev_raw",
        analysis.paper_internal_sites,
        "from_anchor",
        "mean",
        "max",
        0.0,
        "<",
        paper_value,
        source,
        f"{cohort} cohort: the anchor's SAE on another seed's activations, unchanged, EV = 1 − "
        "MSE / scalar "
        "variance on one batch; mean over pairs with the anchor, largest over the internal sites",
    )


#: what the paper claims, per rung (``acts.info["premise"]["rung"]``) and, on the Dyck rung, per
#: cohort: the same claim names on both rungs, each computed the paper's way for that rung
PAPER_CLAIMS: dict[str, tuple[PaperClaim, ...]] = {
    "dyck:shared_io": (
        PaperClaim(
            "decoder_cosine_fraction",
            "fraction",
            _late,
            "to_anchor",
            "min",
            "min",
            0.98,
            ">=",
            "≥ 98 % of features in every cross-seed pair (resid_post_1 = resid_pre_2)",
            _SRC_TOY_COS,
            "shared-I/O cohort, last block's resid_post: fraction of each seed's SAE latents "
            "whose max "
            "signed decoder cosine with any anchor latent exceeds 0.5 (all latents), worst pair",
        ),
        PaperClaim(
            "decoder_mean_max_cosine",
            "mean_max_cosine",
            _late,
            "to_anchor",
            "mean",
            "min",
            0.89,
            ">=",
            "mean max-cosine 0.89 (resid_post_1)",
            _SRC_TOY_COS,
            "shared-I/O cohort, last block's resid_post: mean over latents of the max signed "
            "decoder "
            "cosine with the anchor's latents (all latents), mean over pairs",
        ),
        _toy_ev_claim(*_TOY_EV),
    ),
    "dyck:independent": (_toy_ev_claim(*_TOY_EV_B),),
    "pythia": (
        PaperClaim(
            "decoder_cosine_fraction",
            "fraction",
            lambda ps: ps[1:-1],
            "all",
            "mean",
            "min",
            0.99,
            ">=",
            "≥ 99 % at intermediate layers (36 pairs per site; the abstract's 98 %)",
            _SRC_PY_COS,
            "fraction of one seed's SAE latents whose max signed decoder cosine with another "
            "seed's "
            "exceeds 0.5, mean over all pairs, smallest over the intermediate sites",
        ),
        PaperClaim(
            "decoder_mean_max_cosine",
            "mean_max_cosine",
            lambda ps: ps[1:-1],
            "all",
            "mean",
            "min",
            0.91,
            ">=",
            "0.91–0.93 per site",
            _SRC_PY_COS,
            "mean over latents of the max signed decoder cosine, mean over all pairs, smallest "
            "over "
            "the intermediate sites",
        ),
        PaperClaim(
            "decoder_cosine_fraction_final_site",
            "fraction",
            lambda ps: ps[-1:],
            "all",
            "mean",
            "min",
            0.99,
            "<",
            "drops to 62 % at the final site (the final LayerNorm's output)",
            _SRC_PY_COS,
            "the same fraction at the final site, mean over all pairs: below the intermediate 99 %",
        ),
        PaperClaim(
            "unaligned_ev_negative",
            "raw_map_ev",
            lambda ps: ps[3:] or ps[-1:],
            "from_anchor",
            "mean",
            "max",
            0.0,
            "<",
            "mean raw EV in [−2.11, +0.75] across sites; negative from layer2_resid_post on",
            "§8.3 'Naive cross-seed activation transfer is catastrophic'; experiments/scale/"
            "pythia_panel_c_fast.py:main (common.py:procrustes_metrics raw_EV)",
            "identity-map EV of another seed's activations for the anchor's (one batch, "
            "centred), mean "
            "over pairs with the anchor, largest over the sites from the third paper site on",
        ),
    ),
}


def _paper_key(rung: str, cohort: str | None) -> str:
    return f"{rung}:{cohort}" if rung == "dyck" else rung


def _paper_sites(rung: str, sites: Sequence[str]) -> list[str]:
    return analysis.paper_toy_sites(sites) if rung == "dyck" else analysis.paper_pythia_sites(sites)


# ----------------------------------------------------------------------------- the result
@dataclass
class UniversalityResult:
    """What :func:`measure` found for one set of paired activations (one cohort).

    ``pairs``: one row per (source, target, site) — ``kind`` is ``"seed"`` (two seeds),
    ``"control"`` (anchor vs a control) or ``"same model"`` (the anchor vs itself with an SAE
    from another SAE seed); columns ``frac_above_0.5``, ``mean_max_cosine``, ``matched_cosine``,
    ``matched_cosine_rotated`` (all latents), the same with ``_live`` (latents that fire on their
    model's eval rows), ``ev_within`` (the target's own SAE: the ceiling), ``ev_unaligned`` (the
    source's SAE on the target's rows), ``live_source``/``live_target``; sites are short names.
    ``floor``: random dictionaries of ``d_sae`` rows (``mean_max_cosine``, ``matched_cosine``)
    and of the mean live count (``*_live``). ``shared_seed``: per site, matched cosine (all
    latents) of the anchor's SAE against the second seed's, SAE seeds shared vs own. ``paper``:
    the paper-claim inputs ``{claim: {"value", "per_pair", "site"}}``. ``sae_table``: one row
    per trained SAE; ``ceiling``: each seed's own SAE on its own eval rows (``model``, ``site``,
    ``ev_within``). ``headline``: :data:`HEADLINES` with their intervals over seeds."""

    rung: str
    cohort: str | None
    anchor: str
    members: list[str]
    sites: list[str]
    d_model: int
    d_sae: int
    pairs: pd.DataFrame
    floor: dict[str, float]
    shared_seed: pd.DataFrame | None
    paper: dict[str, dict[str, Any]]
    paper_rows: dict[str, list[dict[str, Any]]]
    sae_table: pd.DataFrame
    ceiling: pd.DataFrame
    headline: dict[str, Interval] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The cohort's name, or the rung's when it has one set of seeds (used in value names)."""
        return self.cohort or self.rung

    @property
    def title(self) -> str:
        """The name a reader sees: the glossary's cohort names (``Cohort A (shared I/O)``)."""
        return COHORT_TITLES.get(self.label, self.label)

    def seed_rows(self) -> pd.DataFrame:
        return self.pairs[self.pairs["kind"] == "seed"]


# ----------------------------------------------------------------------------- SAEs
def _d_sae(sae_expansion: float, d_model: int) -> int:
    d_sae = int(sae_expansion * d_model)
    if d_sae < 1:
        raise ValueError(
            f"sae_expansion={sae_expansion} gives an SAE of {d_sae} latents at d_model {d_model}"
        )
    return d_sae


def _check_settings(
    sae_expansion: float, sae_k: int, sae_n_tokens: int, sae_batch_size: int
) -> None:
    for name, v in (
        ("sae_expansion", sae_expansion),
        ("sae_k", sae_k),
        ("sae_n_tokens", sae_n_tokens),
        ("sae_batch_size", sae_batch_size),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")


def train_universality_saes(
    acts: PairedActs,
    *,
    sae_expansion: float,
    sae_k: int,
    sae_n_tokens: int,
    sae_batch_size: int,
    seed: int = 0,
) -> tuple[SaeDict, list[dict[str, Any]]]:
    """One TopK SAE per model of ``acts`` (seeds, then controls) per site, on the fit batch,
    through the artifact cache: ``d_sae = int(sae_expansion * d_model)``, SAE seed ``seed + i``
    for the i-th model (:func:`analysis.model_seeds`), on CPU. Chapters 12 and 22 reuse these
    from the cache with the same call."""
    _check_settings(sae_expansion, sae_k, sae_n_tokens, sae_batch_size)
    names = list(acts.fit)
    d = int(acts.fit[names[0]][acts.sites[0]].shape[1])
    return analysis.train_saes(
        acts.fit,
        d_sae=_d_sae(sae_expansion, d),
        k=int(sae_k),
        n_tokens=int(sae_n_tokens),
        batch_size=int(sae_batch_size),
        seed=analysis.model_seeds(names, base=seed),
        device="cpu",
        models=names,
        sites=acts.sites,
    )


# ----------------------------------------------------------------------------- measuring
def _validate(acts: Any, anchor: str | None) -> str:
    if not isinstance(acts, PairedActs):
        raise TypeError(
            "acts must be a PairedActs (dyck_activations / pythia_activations), got "
            f"{type(acts).__name__}"
        )
    if len(acts.members) < 2:
        raise ValueError(
            f"acts must hold at least two seeds to compare, got members {acts.members}"
        )
    if anchor is None:
        return acts.members[0]
    if anchor not in acts.members:
        raise ValueError(f"anchor {anchor!r} is not one of the seeds {acts.members}")
    return anchor


def _rung(acts: PairedActs) -> str:
    rung = ((acts.info or {}).get("premise") or {}).get("rung")
    return rung if rung in ("dyck", "pythia") else "dyck"


def _cosine_rows(
    saes: SaeDict,
    acts_eval: Mapping,
    compare: list[tuple[str, str]],
    sites: list[str],
    rotations: Mapping,
) -> pd.DataFrame:
    full = pd.DataFrame(
        analysis.universality_table(saes, acts_eval, compare, sites, rotations=rotations)
    )
    live = pd.DataFrame(
        analysis.universality_table(
            saes, acts_eval, compare, sites, rotations=rotations, live_only=True
        )
    )
    for col in ("mean_max_cosine", "matched_cosine", "matched_cosine_rotated"):
        if col in live:
            full[f"{col}_live"] = live[col].to_numpy()
    full["frac_above_0.5"] = [
        analysis.cosine_match_fraction(
            saes[r.source][r.site].W_dec, saes[r.target][r.site].W_dec, COSINE_THRESHOLD
        )
        for r in full.itertuples()
    ]
    return full


def _paper_inputs(
    rung: str, cohort: str | None, acts: PairedActs, saes: SaeDict, anchor: str
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    claims = PAPER_CLAIMS.get(_paper_key(rung, cohort), ())
    psites = _paper_sites(rung, acts.sites)
    others = [m for m in acts.members if m != anchor]
    pair_sets = {
        "to_anchor": [(m, anchor) for m in others],
        "from_anchor": [(anchor, m) for m in others],
        "all": analysis.all_pairs(acts.members),
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, dict[str, Any]] = {}
    for c in claims:
        pairs = pair_sets[c.pairs]
        if c.statistic in ("fraction", "mean_max_cosine"):
            key = f"decoder_cosine_{c.pairs}"
            if key not in rows:
                rows[key] = analysis.paper_decoder_cosine_table(
                    saes, pairs, psites, COSINE_THRESHOLD
                )
        else:
            key = f"transfer_{c.pairs}"
            if key not in rows:
                rows[key] = analysis.without_matrices(
                    analysis.paper_transfer_table(acts.eval, pairs, psites, saes=saes)
                )
        judged = c.sites(psites)
        if not judged:
            raise ValueError(
                f"the paper's claim {c.name!r} ({rung}) is judged at sites that these activations "
                f"lack: paper sites {psites}; collect more residual sites"
            )
        per_site: dict[str, float] = {}
        per_pair: dict[str, dict[Any, float]] = {}
        for s in judged:
            vals = {
                (r.get("source", r.get("anchor")), r.get("target", r.get("other"))): float(
                    r[c.statistic]
                )
                for r in rows[key]
                if r["site"] == s
            }
            per_pair[s] = vals
            per_site[s] = (
                min(vals.values()) if c.over_pairs == "min" else float(np.mean(list(vals.values())))
            )
        pick = min if c.over_sites == "min" else max
        site = pick(per_site, key=lambda k: per_site[k])
        out[c.name] = {
            "value": per_site[site],
            "site": short_site(site),
            "per_pair": per_pair[site],
            "per_site": {short_site(s): v for s, v in per_site.items()},
        }
    return out, rows


def measure(
    acts: PairedActs,
    *,
    sae_expansion: float,
    sae_k: int,
    sae_n_tokens: int,
    sae_batch_size: int,
    seed: int = 0,
    anchor: str | None = None,
    cohort: str | None = None,
    shared_seed_demo: bool = True,
) -> UniversalityResult:
    """Both halves of the paradox and their references on ``acts`` (see the module docstring).

    Args:
        acts: a rung's paired activations: SAEs and the rotations are fitted on ``acts.fit``,
            everything is scored on ``acts.eval``.
        sae_expansion, sae_k, sae_n_tokens, sae_batch_size: the SAEs
            (:func:`train_universality_saes`).
        seed: base SAE seed (model i gets ``seed + i``) and the random dictionaries' seed.
        anchor: the seed the paper's statistics and the references are anchored on (default: the
            first seed).
        cohort: the Dyck cohort kind (``"shared_io"``, ``"independent"``, …) — selects the
            paper's claims for it from :data:`PAPER_CLAIMS`; ``None`` on the Pythia rung.
        shared_seed_demo: also train the second seed's SAEs with the anchor's SAE seed, to show
            what a shared SAE initialisation does to the metric.
    """
    anchor = _validate(acts, anchor)
    _check_settings(sae_expansion, sae_k, sae_n_tokens, sae_batch_size)
    rung, sites, members = _rung(acts), list(acts.sites), list(acts.members)
    saes, sae_rows = train_universality_saes(
        acts,
        sae_expansion=sae_expansion,
        sae_k=sae_k,
        sae_n_tokens=sae_n_tokens,
        sae_batch_size=sae_batch_size,
        seed=seed,
    )
    d = int(acts.fit[anchor][sites[0]].shape[1])
    d_sae = _d_sae(sae_expansion, d)
    settings: dict[str, Any] = dict(
        d_sae=d_sae,
        k=int(sae_k),
        n_tokens=int(sae_n_tokens),
        batch_size=int(sae_batch_size),
        device="cpu",
        sites=sites,
    )
    twin = f"{anchor}:sae-seed-2"
    twin_saes, _ = analysis.train_saes(
        {twin: acts.fit[anchor]}, seed={twin: seed + TWIN_SEED_OFFSET}, **settings
    )
    all_saes = {**saes, **twin_saes}
    eval_acts = {**acts.eval, twin: acts.eval[anchor]}
    seed_pairs = analysis.all_pairs(members)
    controls = [acts.control(c) for c in acts.controls]
    control_pairs = [(anchor, c) for c in controls]
    maps = analysis.fit_maps(acts.fit, seed_pairs + control_pairs, sites, methods=("rotation",))
    rotations = analysis.rotations_from_maps(maps, "rotation", pairs=seed_pairs + control_pairs)
    table = _cosine_rows(
        all_saes, eval_acts, seed_pairs + control_pairs + [(anchor, twin)], sites, rotations
    )
    table["kind"] = np.select(
        [table["target"].isin(controls), table["target"] == twin], ["control", "same model"], "seed"
    )
    table["site"] = table["site"].map(short_site)
    live = table.loc[table.kind == "seed", ["live_source", "live_target"]].to_numpy()
    n_live = max(1, round(float(live.mean()) * d_sae))
    floor = analysis.random_dictionary_cosine(d_sae, d_sae, d, seed=seed)
    floor_live = analysis.random_dictionary_cosine(n_live, n_live, d, seed=seed)
    floor.update({f"{k}_live": v for k, v in floor_live.items()}, n_live=n_live)
    shared = None
    if shared_seed_demo:
        other = next(m for m in members if m != anchor)
        same_key = f"{other}:anchor-sae-seed"
        same, _ = analysis.train_saes(
            {same_key: acts.fit[other]}, seed={same_key: seed}, **settings
        )
        rows = []
        for s in sites:
            da = saes[anchor][s].W_dec.detach().cpu()
            rows.append(
                {
                    "site": short_site(s),
                    "own SAE seeds": metrics.matched_cosine(
                        da, saes[other][s].W_dec.detach().cpu()
                    ),
                    "one shared SAE seed": metrics.matched_cosine(
                        da, same[same_key][s].W_dec.detach().cpu()
                    ),
                }
            )
        shared = pd.DataFrame(rows)
    paper, paper_rows = _paper_inputs(rung, cohort, acts, saes, anchor)
    sae_table = pd.DataFrame(sae_rows)
    sae_table["site"] = sae_table["site"].map(short_site)
    ceiling = pd.DataFrame(
        [
            {
                "model": m,
                "site": short_site(s),
                "ev_within": float(
                    metrics.explained_variance(
                        acts.eval[m][s], saes[m][s].reconstruct(acts.eval[m][s])
                    )
                ),
            }
            for m in members
            for s in sites
        ]
    )
    res = UniversalityResult(
        rung,
        cohort,
        anchor,
        members,
        [short_site(s) for s in sites],
        d,
        d_sae,
        table,
        floor,
        shared,
        paper,
        paper_rows,
        sae_table,
        ceiling,
    )
    res.headline = _headline(res, seed)
    return res


# ----------------------------------------------------------------------------- headline numbers
def _internal(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["site"] != short_site(EMBED_SITE)]


def _per_pair(df: pd.DataFrame, col: str) -> dict[Any, float]:
    return {
        k: float(v) for k, v in df.groupby(["source", "target"], sort=False)[col].mean().items()
    }


#: headline quantities: name -> (column, what it is), each a mean over the internal sites per pair
HEADLINES: dict[str, tuple[str, str]] = {
    "ev_within": ("ev_within", "within-seed ceiling (own SAE, EV)"),
    "ev_unaligned": ("ev_unaligned", "cross-seed transfer, no alignment (EV)"),
    "matched_cosine_live": ("matched_cosine_live", "feature matching (matched cos, live)"),
    "matched_cosine_rotated_live": (
        "matched_cosine_rotated_live",
        "feature matching after R (matched cos)",
    ),
    "mean_max_cosine": ("mean_max_cosine", "mean max cosine, all latents (usual metric)"),
}


def _headline(res: UniversalityResult, seed: int) -> dict[str, Interval]:
    rows = _internal(res.seed_rows())
    out: dict[str, Interval] = {}
    for name, (col, _) in HEADLINES.items():
        if name == "ev_within":  # a per-seed quantity: each seed's own SAE on its own rows
            own = _internal(res.ceiling).groupby("model", sort=False)["ev_within"].mean()
            out[name] = seed_interval({m: float(v) for m, v in own.items()}, seed=seed)
        else:
            out[name] = pair_interval(_per_pair(rows, col), seed=seed)
    return out


def _num(x: float | None) -> str:
    """A number for a table cell: 3 significant digits, "–" for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):.3g}".replace("-", "−")


def _with_interval(iv: Interval | Mapping[str, Any] | None, value: float) -> str:
    if iv is None:
        return _num(value)
    d = iv.as_dict() if isinstance(iv, Interval) else iv
    return f"{_num(value)} [{_num(d['lo'])}, {_num(d['hi'])}]"


# ----------------------------------------------------------------------------- tables
def site_table(results: Sequence[UniversalityResult]) -> pd.DataFrame:
    """Per cohort and site, means over the pairs of seeds: the cosines (all and live latents,
    after R) and the EVs (ceiling, unaligned). One row per (cohort, site)."""
    cols = {
        "mean_max_cosine": "mean max cos",
        "matched_cosine_live": "matched cos",
        "matched_cosine_rotated_live": "matched cos after R",
        "ev_within": "ceiling EV",
        "ev_unaligned": "unaligned EV",
    }
    frames = []
    for r in results:
        t = (
            r.seed_rows()
            .groupby("site", sort=False)[list(cols)]
            .mean()
            .reset_index()
            .rename(columns=cols)
        )
        if len(results) > 1:
            t.insert(0, "cohort", r.title)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def headline_table(results: Sequence[UniversalityResult]) -> pd.DataFrame:
    """What an interpretability reader looks for: one row per :data:`HEADLINES` quantity and per
    reference, one column per cohort, each "value [lo, hi]" (mean over the internal sites and the
    pairs of seeds; interval: bootstrap over seeds, 90 %). References: the same model with another
    SAE seed, and two random dictionaries (matched cosine, live latents)."""
    table: dict[str, dict[str, str]] = {}
    for r in results:
        col = {}
        for name, (_, what) in HEADLINES.items():
            iv = r.headline[name]
            col[what] = _with_interval(iv, iv.point)
        ref = _internal(r.pairs)
        col["reference: same model, another SAE seed (matched cos)"] = _num(
            float(ref[ref.kind == "same model"]["matched_cosine_live"].mean())
        )
        col["reference: two random dictionaries (matched cos)"] = _num(
            r.floor["matched_cosine_live"]
        )
        table[r.title] = col
    out = pd.DataFrame(table)
    out.index.name = "quantity"
    return out.reset_index()


def ev_statistics(results: Sequence[UniversalityResult]) -> pd.DataFrame:
    """The three statistics of unaligned cross-seed EV a reader meets, named apart (issue 14:
    the chapter's text and the verdict once quoted different ones as "the" number): per cohort,
    the mean over pairs and internal sites, the largest per-site mean over pairs, and the largest
    single (pair, site) value — the one the check ``unaligned_ev_max`` tests."""
    rows = []
    for r in results:
        seeds = _internal(r.seed_rows())
        by_site = seeds.groupby("site", sort=False)["ev_unaligned"].mean()
        rows.append(
            {
                "cohort": r.title,
                "mean over pairs and sites [lo, hi]": _with_interval(
                    r.headline["ev_unaligned"], r.headline["ev_unaligned"].point
                ),
                "largest site mean (site)": f"{_num(float(by_site.max()))} ({by_site.idxmax()})",
                "largest single pair and site": _num(float(seeds["ev_unaligned"].max())),
            }
        )
    return pd.DataFrame(rows)


def shared_seed_table(results: Sequence[UniversalityResult]) -> pd.DataFrame | None:
    """Per cohort and site: matched decoder cosine (all latents) between the anchor's SAE and the
    second seed's, when the two SAEs have their own SAE seeds vs one shared SAE seed (``None``
    when no result ran the demo)."""
    frames = [r.shared_seed.assign(cohort=r.title) for r in results if r.shared_seed is not None]
    if not frames:
        return None
    cols = ["cohort", "site", "own SAE seeds", "one shared SAE seed"]
    out = pd.concat(frames, ignore_index=True)[cols]
    return out if len(frames) > 1 else out.drop(columns="cohort")


# ----------------------------------------------------------------------------- claims
def _check(
    results: Any,
    name: str,
    value: float,
    threshold: float,
    op: str,
    description: str,
    check_of: str | None,
    why: str,
    interval: Interval | None = None,
) -> bool:
    return results.claim(
        name,
        value=value,
        threshold=threshold,
        op=op,
        kind="check",
        description=description,
        check_of=check_of,
        why_stricter=why if check_of else None,
        interval=interval,
    )


def _named(of: Mapping[str, str], name: str) -> str | None:
    return name + of[name] if name in of else None


def record(results: Any, res: Sequence[UniversalityResult] | UniversalityResult) -> pd.DataFrame:
    """Record every value and claim of ``res`` (one result per cohort) into ``results`` (a
    :class:`polyrot_utils.book.results.ChapterResults`); return one row per claim for the page
    (claim, kind, value [lo, hi], bar, passed).

    Names: a chapter with one set of seeds (the Pythia rung) records ``<name>``; a chapter with
    several cohorts (the Dyck rung) records ``<name>_<cohort>``. Claims: the paper's, from
    :data:`PAPER_CLAIMS` for that rung and cohort (``decoder_cosine_fraction``,
    ``decoder_mean_max_cosine``, ``decoder_cosine_fraction_final_site``,
    ``unaligned_ev_negative``), and our checks on every cohort: ``decoder_matched_cosine_live``
    (one-to-one matched cosine on live latents above the random floor + :data:`FLOOR_MARGIN`),
    ``decoder_cosine_above_untrained_control`` (seeds above the untrained control by
    :data:`CONTROL_MARGIN`), ``unaligned_ev_max`` (the largest unaligned EV over pairs and
    internal sites below 0). Values (issue 14: each named by its statistic):
    ``ev_unaligned_mean`` (mean over pairs and internal sites), ``ev_unaligned_largest_site_mean``
    (largest, over internal sites, of the mean over pairs),
    ``ev_unaligned_max_over_pairs_and_sites``
    (largest single pair at any internal site), and ``<headline>_interval`` for every headline."""
    res_list = [res] if isinstance(res, UniversalityResult) else list(res)
    if not res_list:
        raise ValueError("res must hold at least one UniversalityResult")
    many = len(res_list) > 1
    out = []
    for r in res_list:
        sfx = f"_{r.label}" if many else ""
        seeds = _internal(r.seed_rows())
        by_site = seeds.groupby("site", sort=False)["ev_unaligned"].mean()
        values = {
            "universality_rows": r.pairs.to_dict("records"),
            "universality_per_site": site_table([r]).to_dict("records"),
            "sae_train_ev": r.sae_table.to_dict("records"),
            "random_dictionary_floor": r.floor,
            "paper_rows": r.paper_rows,
            "ev_unaligned_mean": float(seeds["ev_unaligned"].mean()),
            "ev_unaligned_by_site": by_site.to_dict(),
            "ev_unaligned_largest_site_mean": float(by_site.max()),
            "ev_unaligned_max_over_pairs_and_sites": float(seeds["ev_unaligned"].max()),
            "shared_seed_demo": None if r.shared_seed is None else r.shared_seed.to_dict("records"),
            **{f"{k}_interval": iv.as_dict() for k, iv in r.headline.items()},
        }
        for k, v in values.items():
            results.record(k + sfx, v)
        names = {c.name for c in PAPER_CLAIMS.get(_paper_key(r.rung, r.cohort), ())}
        for c in PAPER_CLAIMS.get(_paper_key(r.rung, r.cohort), ()):
            p = r.paper[c.name]
            iv = pair_interval(p["per_pair"]) if len(p["per_pair"]) else None
            ok = results.claim(
                c.name + sfx,
                value=p["value"],
                threshold=c.threshold,
                op=c.op,
                kind="paper",
                paper_value=c.paper_value,
                source=c.source,
                interval=iv,
                description=f"{c.description} (judged at {p['site']}; interval: mean over pairs)",
            )
            out.append((c.name + sfx, "paper", p["value"], iv, f"{c.op} {c.threshold:g}", ok))
        of = dict.fromkeys(names, sfx)  # paper claim -> its name in this chapter
        mc = r.headline["matched_cosine_live"]
        bar = r.floor["matched_cosine_live"] + FLOOR_MARGIN
        ok = _check(
            results,
            "decoder_matched_cosine_live" + sfx,
            mc.point,
            bar,
            ">=",
            "one-to-one (Hungarian) matched decoder cosine on live latents, mean over pairs of "
            "seeds and "
            "internal sites, against two random dictionaries of as many latents + "
            f"{FLOOR_MARGIN:g}",
            _named(of, "decoder_cosine_fraction"),
            "one-to-one matching on live latents, every pair and internal site, must beat the "
            "random floor "
            "(the paper's many-to-one max counts a latent matched twice, and dead latents)",
            mc,
        )
        out.append(
            ("decoder_matched_cosine_live" + sfx, "check", mc.point, mc, f">= {bar:.3g}", ok)
        )
        ctl = seeds.iloc[:0]
        if "untrained" in [k.split(":", 1)[-1] for k in r.pairs.target.unique()]:
            ctl = _internal(
                r.pairs[r.pairs.target.str.endswith(":untrained") & (r.pairs.kind == "control")]
            )
        if not ctl.empty:
            diff = float(seeds["mean_max_cosine"].mean() - ctl["mean_max_cosine"].mean())
            ok = _check(
                results,
                "decoder_cosine_above_untrained_control" + sfx,
                diff,
                CONTROL_MARGIN,
                ">=",
                "seeds' mean max decoder cosine minus the anchor-vs-untrained-model one "
                "(internal sites)",
                _named(of, "decoder_mean_max_cosine"),
                f"the metric must tell trained seeds from an untrained model by {CONTROL_MARGIN:g}",
            )
            out.append(
                (
                    "decoder_cosine_above_untrained_control" + sfx,
                    "check",
                    diff,
                    None,
                    f">= {CONTROL_MARGIN:g}",
                    ok,
                )
            )
        ev_max = values["ev_unaligned_max_over_pairs_and_sites"]
        ok = _check(
            results,
            "unaligned_ev_max" + sfx,
            ev_max,
            0.0,
            "<",
            "largest held-out EV of one seed's SAE applied unchanged to another seed, over every "
            "pair of "
            "seeds and every internal site (not a mean)",
            _named(of, "unaligned_ev_negative"),
            "the SAE on held-out rows, per-dimension variance, every pair and internal site (the "
            "largest)",
        )
        out.append(("unaligned_ev_max" + sfx, "check", ev_max, None, "< 0", ok))
    return pd.DataFrame(
        [
            {
                "claim": n,
                "kind": k,
                "value [lo, hi]": _with_interval(iv, v),
                "bar": b,
                "passed": "yes" if ok else "no",
            }
            for n, k, v, iv, b, ok in out
        ]
    )


# ----------------------------------------------------------------------------- the chapters
def chapter_outputs(
    results: Sequence[UniversalityResult], new_figure: Callable[..., Any]
) -> dict[str, Any]:
    """Everything chapters 11 and 21 show, by name, for ``book.figures.glue_outputs``: the
    tables ``site_table`` (:func:`site_table`), ``headline_table`` (:func:`headline_table`),
    ``ev_statistics_table`` (:func:`ev_statistics`) and ``shared_seed_table``
    (:func:`shared_seed_table`; ``None`` when no result ran the shared-seed demo), and the
    figure ``paradox_figure`` (:func:`plot`). ``results``: one :class:`UniversalityResult` per
    cohort, as :func:`measure` returns them; ``new_figure``: ``book.figures.column_figure``.
    Records nothing: the chapter's claims table is :func:`record`'s."""
    res_list = list(results)
    if not res_list:
        raise ValueError("results must hold at least one UniversalityResult")
    return {
        "site_table": site_table(res_list),
        "paradox_figure": plot(res_list, new_figure),
        "headline_table": headline_table(res_list),
        "ev_statistics_table": ev_statistics(res_list),
        "shared_seed_table": shared_seed_table(res_list),
    }


# ----------------------------------------------------------------------------- the figure
#: lowest EV drawn; values below are drawn at the edge with a downward marker
EV_AXIS_FLOOR = -3.0


def plot(results: Sequence[UniversalityResult], new_figure: Callable[..., Any]):
    """The paradox per site, one row per cohort: left, decoder cosines between seeds (one-to-one,
    live latents; mean over pairs, bars = range over pairs) before and after rotating A's decoder
    by R, beside the same-model reference, the untrained control and the random floor; right, the
    held-out EV of each seed's own SAE (ceiling) and of seed A's SAE on seed B unchanged (and on
    the untrained control). ``new_figure(nrows, ncols, height=...)`` makes the figure (the book
    passes :func:`polyrot_utils.book.figures.column_figure`). Returns the figure."""
    res_list = list(results)
    if not res_list:
        raise ValueError("results must hold at least one UniversalityResult")
    fig, axes = new_figure(len(res_list), 2, height=2.9 * len(res_list) + 1.3, squeeze=False)
    for row, r in zip(axes, res_list, strict=True):
        _plot_cosines(row[0], r)
        _plot_evs(row[1], r)
    handles, labels = {}, []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center", ncol=2)
    return fig


def _xy(ax: Any, sites: list[str]) -> np.ndarray:
    x = np.arange(len(sites))
    ax.set_xticks(x, sites, rotation=40, ha="right")
    return x


def _series(
    ax: Any, x: np.ndarray, df: pd.DataFrame, sites: list[str], col: str, dx: float, **kw: Any
) -> None:
    g = df.groupby("site", sort=False)[col]
    mean, lo, hi = (g.agg(f).reindex(sites).to_numpy(dtype=float) for f in ("mean", "min", "max"))
    ax.errorbar(x + dx, mean, yerr=[mean - lo, hi - mean], capsize=2, **kw)


def _plot_cosines(ax: Any, r: UniversalityResult) -> None:
    x, seeds = _xy(ax, r.sites), r.seed_rows()
    _series(
        ax,
        x,
        seeds,
        r.sites,
        "matched_cosine_live",
        -0.15,
        fmt="o-",
        color="C0",
        label="seed vs seed",
    )
    _series(
        ax,
        x,
        seeds,
        r.sites,
        "matched_cosine_rotated_live",
        0.0,
        fmt="s--",
        color="C1",
        label="seed vs seed, A's decoder @ R",
    )
    twin = r.pairs[r.pairs.kind == "same model"]
    _series(
        ax,
        x,
        twin,
        r.sites,
        "matched_cosine_live",
        0.15,
        fmt="*",
        ms=9,
        color="C2",
        label="same model, another SAE seed",
    )
    ctl = r.pairs[r.pairs.target.str.endswith(":untrained")]
    if not ctl.empty:
        _series(
            ax,
            x,
            ctl,
            r.sites,
            "matched_cosine_live",
            0.3,
            fmt="v",
            color="C3",
            label="untrained control (anchor vs it)",
        )
    ax.axhline(
        r.floor["matched_cosine_live"], color="grey", ls=":", label="two random dictionaries"
    )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("matched decoder cosine")
    ax.set_title(f"{r.title}:\ndo the features match?")


def _plot_evs(ax: Any, r: UniversalityResult) -> None:
    x, seeds = _xy(ax, r.sites), r.seed_rows()
    own = r.ceiling.rename(columns={"model": "target"})
    frames = {"own": own, "unaligned": seeds}
    ctl = r.pairs[r.pairs.target.str.endswith(":untrained")]
    lo = min(
        float(own.ev_within.min()),
        float(seeds.ev_unaligned.min()),
        float(ctl.ev_unaligned.min()) if not ctl.empty else 0.0,
    )
    bottom = max(EV_AXIS_FLOOR, min(-0.1, lo - 0.1))

    def clip(df: pd.DataFrame, col: str) -> pd.DataFrame:
        return df.assign(**{col: df[col].clip(lower=bottom + 0.05)})

    _series(
        ax,
        x,
        clip(frames["own"], "ev_within"),
        r.sites,
        "ev_within",
        -0.15,
        fmt="o:",
        color="C0",
        label="own SAE (ceiling)",
    )
    _series(
        ax,
        x,
        clip(seeds, "ev_unaligned"),
        r.sites,
        "ev_unaligned",
        0.0,
        fmt="s-",
        color="C1",
        label="seed A's SAE on seed B, no alignment",
    )
    if not ctl.empty:
        _series(
            ax,
            x,
            clip(ctl, "ev_unaligned"),
            r.sites,
            "ev_unaligned",
            0.15,
            fmt="v",
            color="C3",
            label="untrained control (anchor vs it)",
        )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylim(bottom, 1.05)
    ax.set_ylabel("held-out EV" + (f" (clipped at {bottom:g})" if lo < bottom else ""))
    ax.set_title(f"{r.title}:\ndoes A's SAE fit B?")
