"""Rotations between checkpoints of one training run: one analysis for both rungs.

The paper's abstract: "the same rotation account holds across training checkpoints within a
single run" (§8.6). :func:`checkpoint_analysis` asks it of activations keyed by training step,
``{step: PairedActs}``: at every step the same runs (members such as ``"seed100"``), the same
sites, and rows paired across steps and runs (the same token of the same input). Each rung
builds that mapping its own way:

- Dyck: ``{step: dyck_activations(models, split, n_fit=..., n_eval=..., seed=...)}`` over a
  ``{step: {seed_name: model}}`` mapping (:func:`cohort_checkpoint_models` for a cohort trained
  in the build, or any other saved checkpoints);
- Pythia: :func:`paired_by_step` over
  :func:`polyrot_utils.tasks.pythia.suite.checkpoint_activations` of each run.

Per run and site, one SO(d) Procrustes ``R`` (row vectors, ``x_a @ R ≈ x_b``, centred, fitted
on the fit batch) for each pair of checkpoints: ``successive`` (each to the next) and
``to_final`` (each to the run's last); and, given ``reference`` (the final models of the rung's
seeds, rows paired with the checkpoints'), ``cross_seed`` (every pair of seeds). Per pair and
site (:func:`rotation_row`):

- is ``R`` near the identity? ``frob_ratio = ‖R − I‖_F / √(2d)`` (0: identity; ≈ 1: Haar — or any
  orthogonal matrix with trace ≈ 0, so this number alone proves nothing) and ``trace / d``;
- is ``R`` Haar? the calibrated :func:`polyrot_utils.core.haar.haar_test` p-value (``haar_p``);
- does rotating help? held-out explained variance of ``b``'s eval rows by ``a``'s mapped with the
  identity (``ev_identity``: no alignment), the rotation (``ev_rotation``), the rotation times one
  least-squares global scale (``ev_rotation_scaled``: residual norms grow during training, a
  rotation cannot rescale) and a least-squares affine map (``ev_affine``: the ceiling of any
  linear account).

The paper's own statistic (its ``cross_ckpt.py``): an SAE trained on an *earlier* checkpoint's
activations, scored with scalar-variance EV on one batch (our eval rows) of the final
checkpoint's activations unchanged (``ev_naive``) and rotated onto the earlier frame by an
in-sample O(d) ``R`` (``ev_rot``), with ``‖R − I‖_F`` (:func:`analysis.paper_checkpoint_transfer`).
The earlier checkpoint is the inner one nearest the paper's fraction of training for the rung
(:data:`PAPER`: Dyck step 30,000 of 58,000, Pythia step 3,000 of 143,000); the sites are the
paper's (Dyck: every distinct block site; Pythia: ``layer3_resid_post``, the last block if fewer).

:func:`record_claims` turns a :class:`CheckpointResult` into the chapter's claims, the same
names on both rungs; each value is a mean over runs with its bootstrap interval over seeds.
:func:`plot_checkpoints` draws the chapter's figure; :func:`chapter_outputs` names everything
the two chapters show.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from polyrot_utils.core.haar import haar_test
from polyrot_utils.core.intervals import Interval, pair_interval, seed_interval
from polyrot_utils.core.metrics import explained_variance
from polyrot_utils.core.procrustes import fit_alignment
from polyrot_utils.experiments import analysis
from polyrot_utils.models.activations import PairedActs, short_site

__all__ = [
    "EXPERIMENT_PARAMETERS",
    "PAPER",
    "CheckpointResult",
    "PaperCheckpoints",
    "affine_ev",
    "analog_step",
    "chapter_outputs",
    "checkpoint_analysis",
    "checkpoint_models",
    "checkpoint_pairs",
    "cohort_checkpoint_models",
    "paired_by_step",
    "paper_sites",
    "plot_checkpoints",
    "record_claims",
    "rotation_row",
]

#: the chapter parameters that are this analysis's (the rest say how activations are built);
#: both chapters declare them with the same defaults, those of :func:`checkpoint_analysis`
EXPERIMENT_PARAMETERS = (
    "seed",
    "n_null",
    "alpha",
    "affine_margin",
    "sae_expansion",
    "sae_k",
    "sae_n_tokens",
)
#: the paper's Pythia site for its checkpoint statistic: ``layer3_resid_post``
PYTHIA_PAPER_LAYER = 3
#: singular values below this fraction of the largest count as zero when deciding whether R is
#: determined at a site (a rank-deficient site, like the toy's embedding, leaves R arbitrary on
#: the rest, so its Haar test says nothing)
RANK_TOL = 1e-4


@dataclass(frozen=True)
class PaperCheckpoints:
    """What the paper reports about checkpoints on one rung (§8.6): its earlier checkpoint as a
    fraction of training, its claims' bars and reported values, and where they come from."""

    fraction: float
    source: str
    post_rotation_op: str
    post_rotation_bar: float
    post_rotation: str
    lift: str
    naive_negative: str | None = None
    frob_with_depth: str | None = None
    frob: str = ""


PAPER: dict[str, PaperCheckpoints] = {
    "dyck": PaperCheckpoints(
        fraction=30_000 / 58_000,
        source="§8.6 'Cross-checkpoint rotation', variant (a); "
        "experiments/cross_checkpoint/cross_ckpt.py:variant_a_local_dyck",
        post_rotation_op=">=",
        post_rotation_bar=0.98,
        post_rotation="post-rotation EV in [0.98, 0.999] across all sites (step 30,000 → 58,000)",
        lift="naive EV [0.90, 0.95] → post-rotation [0.98, 0.999]",
        frob_with_depth="‖R − I‖_F falls with depth, 10.4 at the embedding → 2.9–3.0 at late sites",
        frob="‖R − I‖_F 10.4 → 2.9 (ratio 0.92 → 0.26 at d = 64)",
    ),
    "pythia": PaperCheckpoints(
        fraction=3_000 / 143_000,
        source="§8.6 'Cross-checkpoint rotation', variant (b); "
        "experiments/cross_checkpoint/cross_ckpt.py:variant_b_pythia",
        post_rotation_op=">",
        post_rotation_bar=0.0,
        post_rotation="+0.73",
        lift="+1.59 (−0.86 → +0.73)",
        naive_negative="naive EV −0.86 (SAE self-EV 0.907)",
        frob="‖R − I‖_F = 16.81 ≈ 0.53 × √(2·512)",
    ),
}


# ----------------------------------------------------------------------------- inputs
def checkpoint_models(member: Any, steps: Sequence[int] | None = None) -> dict[int, Any]:
    """``{step: model}`` for a :class:`polyrot_utils.tasks.dyck.training.TrainedToy`'s saved
    checkpoints (all of them unless ``steps``), in step order."""
    have = sorted(member.checkpoints)
    steps = have if steps is None else [int(s) for s in steps]
    bad = [s for s in steps if s not in member.checkpoints]
    if bad:
        raise KeyError(f"no checkpoints at steps {bad}; saved steps: {have}")
    return {s: member.load_checkpoint(s) for s in steps}


def cohort_checkpoint_models(members: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """``{step: {name: model}}`` from ``{name: TrainedToy}`` (anything with ``checkpoints`` and
    ``load_checkpoint``): every step that all members saved, in step order."""
    if not members:
        raise ValueError("members must name at least one trained run")
    common = sorted(set.intersection(*(set(m.checkpoints) for m in members.values())))
    if len(common) < 2:
        raise ValueError(
            f"members share {len(common)} checkpoint steps ({common}); need at least 2"
        )
    loaded = {name: checkpoint_models(m, common) for name, m in members.items()}
    return {s: {name: loaded[name][s] for name in members} for s in common}


def paired_by_step(
    per_run: Mapping[
        str,
        tuple[Mapping[int, Mapping[str, torch.Tensor]], Mapping[int, Mapping[str, torch.Tensor]]],
    ],
    sites: Sequence[str],
) -> dict[int, PairedActs]:
    """``{step: PairedActs}`` from ``{run: (fit, eval)}``, each ``{step: {site: (n, d)}}`` (what
    :func:`polyrot_utils.tasks.pythia.suite.checkpoint_activations` returns): the steps every run
    has, rows as given (the caller pairs them: the same tokens for every run and step)."""
    if not per_run:
        raise ValueError("per_run must name at least one run")
    steps = sorted(set.intersection(*(set(f) & set(e) for f, e in per_run.values())))
    if len(steps) < 2:
        raise ValueError(f"the runs share {len(steps)} checkpoint steps ({steps}); need at least 2")
    runs = list(per_run)
    return {
        s: PairedActs(
            {r: dict(per_run[r][0][s]) for r in runs},
            {r: dict(per_run[r][1][s]) for r in runs},
            list(sites),
            {},
            runs,
        )
        for s in steps
    }


def checkpoint_pairs(steps: Sequence[int], kind: str = "successive") -> list[tuple[int, int]]:
    """``"successive"``: (s_i, s_{i+1}); ``"to_final"``: (s_i, s_last) for every earlier s_i."""
    steps = sorted(steps)
    if len(steps) < 2:
        raise ValueError(f"need at least 2 checkpoint steps, got {list(steps)}")
    if kind == "successive":
        return list(itertools.pairwise(steps))
    if kind == "to_final":
        return [(s, steps[-1]) for s in steps[:-1]]
    raise ValueError(f"kind must be 'successive' or 'to_final', got {kind!r}")


def analog_step(steps: Sequence[int], fraction: float) -> int:
    """The inner checkpoint (neither the first nor the last) nearest ``fraction`` of the last
    step; the first one when there is no inner checkpoint."""
    steps = sorted(int(s) for s in steps)
    if len(steps) < 2:
        raise ValueError(f"need at least 2 checkpoint steps, got {steps}")
    inner = steps[1:-1]
    if not inner:
        return steps[0]
    return min(inner, key=lambda s: (abs(s - fraction * steps[-1]), s))


def paper_sites(rung: str, sites: Sequence[str]) -> list[str]:
    """The sites of the paper's checkpoint statistic among ``sites``: Dyck, every distinct block
    site (:func:`analysis.paper_toy_sites`); Pythia, ``blocks.3.hook_resid_post`` (the deepest
    ``resid_post`` at or above layer 3 when the model is shallower)."""
    _check_rung(rung)
    if rung == "dyck":
        out = analysis.paper_toy_sites(sites)
    else:
        posts = [s for s in sites if s.startswith("blocks.") and s.endswith("hook_resid_post")]
        below = [s for s in posts if int(s.split(".")[1]) <= PYTHIA_PAPER_LAYER]
        out = [max(below, key=lambda s: int(s.split(".")[1]))] if below else []
    if not out:
        raise ValueError(f"none of the sites {list(sites)} is a paper site for rung {rung!r}")
    return out


def _check_rung(rung: str) -> None:
    if rung not in PAPER:
        raise ValueError(f"rung must be one of {sorted(PAPER)}, got {rung!r}")


# ----------------------------------------------------------------------------- one pair
def affine_ev(
    x_fit: torch.Tensor,
    y_fit: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    ridge: float = 1e-8,
) -> float:
    """Held-out EV of ``y_eval`` by the least-squares affine map fitted on ``(x_fit, y_fit)``
    (centred normal equations in float64 torch, a ``ridge`` relative to the mean eigenvalue for
    rank-deficient sites). Same number as ``fit_alignment(..., "affine")`` up to the ridge."""
    X, Y = x_fit.double(), y_fit.double()
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc
    lam = ridge * float(torch.trace(G)) / G.shape[0] + 1e-300
    W = torch.linalg.solve(G + lam * torch.eye(G.shape[0], dtype=G.dtype), Xc.T @ Yc)
    pred = (x_eval.double() - mx) @ W + my
    return float(explained_variance(y_eval.double(), pred))


def rotation_row(
    x_fit: torch.Tensor,
    y_fit: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    n_null: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Compare one pair at one site (``x`` source, ``y`` target, rows paired; ``x @ R ≈ y``): the
    module docstring's statistics, plus ``scale`` (of the scaled rotation). ``haar_p`` is NaN
    when ``n_null == 0`` (no test)."""
    X, Y, Xe, Ye = (t.double() for t in (x_fit, y_fit, x_eval, y_eval))
    d = X.shape[1]
    rot = fit_alignment(X, Y, "rotation")
    R = torch.from_numpy(rot.matrix)
    mx, my = torch.from_numpy(rot.source_mean), torch.from_numpy(rot.target_mean)
    xc = X - mx
    scale = float(((xc @ R) * (Y - my)).sum() / max(float((xc * xc).sum()), 1e-300))
    moved = (Xe - mx) @ R
    row = {
        "frob_ratio": float(np.linalg.norm(rot.matrix - np.eye(d)) / np.sqrt(2 * d)),
        "trace_over_d": float(np.trace(rot.matrix) / d),
        "ev_identity": float(explained_variance(Ye, Xe)),
        "ev_rotation": float(explained_variance(Ye, moved + my)),
        "ev_rotation_scaled": float(explained_variance(Ye, scale * moved + my)),
        "ev_affine": affine_ev(X, Y, Xe, Ye),
        "scale": scale,
    }
    row["haar_p"] = (
        float(haar_test(rot.matrix, n_null=n_null, seed=seed).pvalue)
        if n_null > 0
        else float("nan")
    )
    return row


def _rank(x: torch.Tensor) -> int:
    s = torch.linalg.svdvals(x.double() - x.double().mean(0))
    return int((s > RANK_TOL * s[0]).sum()) if len(s) and float(s[0]) > 0 else 0


# ----------------------------------------------------------------------------- the analysis
@dataclass
class CheckpointResult:
    """What :func:`checkpoint_analysis` measured.

    ``table``: one row per (pair, site): ``pair_kind`` (``successive``, ``to_final``,
    ``cross_seed``), ``a_run``, ``a_step``, ``b_run``, ``b_step`` (cross-seed rows: both at
    ``final_step``), ``site`` (short name), ``full_rank`` (R is determined there) and the
    :func:`rotation_row` statistics. ``paper_sae``: per run and paper site, the paper's SAE
    statistic from ``analog_step`` to the final step (``ev_self``, ``ev_naive``, ``ev_rot``,
    ``frob``, ``frob_ratio``). ``per_run``: per run, the claims' inputs (see
    :func:`record_claims`); ``cross_seed``: the same for each pair of seeds' final models.
    """

    rung: str
    steps: list[int]
    runs: list[str]
    sites: list[str]
    d: int
    analog_step: int
    table: pd.DataFrame
    paper_sae: pd.DataFrame
    per_run: pd.DataFrame
    cross_seed: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def final_step(self) -> int:
        return self.steps[-1]

    def site_summary(self) -> pd.DataFrame:
        """One row per site (the page shows it): means over runs of the analog checkpoint → final
        statistics (``‖R−I‖/√2d``, the EVs, ``Haar p``) and, given a reference, means over seed
        pairs of the final models' ``‖R−I‖/√2d`` and ``Haar p`` (``… two seeds``)."""
        t = self.table
        ana = t[(t.pair_kind == "to_final") & (t.a_step == self.analog_step)].groupby(
            "site", sort=False
        )
        out = pd.DataFrame({"‖R−I‖/√2d": ana.frob_ratio.mean()})
        cs = t[t.pair_kind == "cross_seed"].groupby("site", sort=False)
        if (t.pair_kind == "cross_seed").any():
            out["‖R−I‖/√2d, two seeds"] = cs.frob_ratio.mean()
        out["EV identity"], out["EV rotation"] = ana.ev_identity.mean(), ana.ev_rotation.mean()
        out["EV affine"], out["Haar p"] = ana.ev_affine.mean(), ana.haar_p.mean()
        if (t.pair_kind == "cross_seed").any():
            out["Haar p, two seeds"] = cs.haar_p.mean()
        return out


def _check_by_step(by_step: Mapping[int, PairedActs]) -> tuple[list[int], list[str], list[str]]:
    if not isinstance(by_step, Mapping) or len(by_step) < 2:
        raise ValueError(
            "by_step must map at least 2 checkpoint steps to PairedActs, got "
            f"{type(by_step).__name__} of {len(by_step) if isinstance(by_step, Mapping) else 0}"
        )
    steps = sorted(int(s) for s in by_step)
    first = by_step[steps[0]]
    runs, sites = list(first.members), list(first.sites)
    if not runs:
        raise ValueError(f"by_step[{steps[0]}] has no members (runs)")
    n = {w: next(iter(getattr(first, w)[runs[0]].values())).shape[0] for w in ("fit", "eval")}
    for s in steps:
        a = by_step[s]
        if list(a.members) != runs or list(a.sites) != sites:
            raise ValueError(
                f"by_step[{s}] has members {a.members} and sites {a.sites}; by_step[{steps[0]}] "
                f"has {runs} and {sites}: every step needs the same runs and sites"
            )
        for w in ("fit", "eval"):
            for r in runs:
                rows = {x.shape[0] for x in getattr(a, w)[r].values()}
                if rows != {n[w]}:
                    raise ValueError(
                        f"by_step[{s}].{w}[{r!r}] has {sorted(rows)} rows; rows must pair "
                        f"across steps ({n[w]} at step {steps[0]})"
                    )
    return steps, runs, sites


def _check_params(
    n_null: int,
    alpha: float,
    affine_margin: float,
    sae_expansion: int,
    sae_k: int,
    sae_n_tokens: int,
) -> None:
    if int(n_null) < 0:
        raise ValueError(f"n_null must be >= 0, got {n_null}")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if float(affine_margin) < 0:
        raise ValueError(f"affine_margin must be >= 0, got {affine_margin}")
    for name, v in (
        ("sae_expansion", sae_expansion),
        ("sae_k", sae_k),
        ("sae_n_tokens", sae_n_tokens),
    ):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")


def checkpoint_analysis(
    by_step: Mapping[int, PairedActs],
    reference: PairedActs | None = None,
    *,
    rung: str,
    seed: int = 0,
    n_null: int = 200,
    alpha: float = 0.05,
    affine_margin: float = 0.05,
    sae_expansion: int = 2,
    sae_k: int = 16,
    sae_n_tokens: int = 40_000,
    sae_batch_size: int = 256,
    device: str = "cpu",
) -> CheckpointResult:
    """The module docstring's analysis of one or more runs' checkpoints.

    Args:
        by_step: ``{step: PairedActs}``: the same runs (``members``) and sites at every step, rows
            paired across steps; controls, if any, are ignored.
        reference: the final models of the rung's seeds (``members``; rows paired with
            ``by_step``'s): the ``cross_seed`` pairs. ``None``: no cross-seed rows.
        rung: ``"dyck"`` or ``"pythia"``: which of the paper's numbers (:data:`PAPER`) apply.
        seed: seeds the Haar null and the SAEs. n_null: Haar samples per test (0: no test).
        alpha: test level (the claims' Haar threshold is ``alpha`` / tested sites).
        affine_margin: ours: a rotation "accounts" for a change when its EV is within this of
            the affine map's.
        sae_expansion, sae_k, sae_n_tokens, sae_batch_size: the paper statistic's TopK SAE
            (width ``sae_expansion · d``).
    """
    _check_rung(rung)
    _check_params(n_null, alpha, affine_margin, sae_expansion, sae_k, sae_n_tokens)
    steps, runs, sites = _check_by_step(by_step)
    final = steps[-1]
    last = by_step[final]
    d = int(next(iter(last.fit[runs[0]].values())).shape[1])
    full_rank = {s: _rank(last.fit[runs[0]][s]) == d for s in sites}
    rows: list[dict[str, Any]] = []

    def add(kind: str, a: PairedActs, ar: str, sa: int, b: PairedActs, br: str, sb: int) -> None:
        for s in sites:
            stats = rotation_row(
                a.fit[ar][s], b.fit[br][s], a.eval[ar][s], b.eval[br][s], n_null=n_null, seed=seed
            )
            rows.append(
                {
                    "pair_kind": kind,
                    "a_run": ar,
                    "a_step": sa,
                    "b_run": br,
                    "b_step": sb,
                    "site": short_site(s),
                    "full_rank": full_rank[s],
                    **stats,
                }
            )

    for r in runs:
        for kind in ("successive", "to_final"):
            for sa, sb in checkpoint_pairs(steps, kind):
                add(kind, by_step[sa], r, sa, by_step[sb], r, sb)
    if reference is not None:
        _check_reference(reference, last, runs[0], sites)
        members = list(reference.members)
        for i, ra in enumerate(members):
            for rb in members[i + 1 :]:
                add("cross_seed", reference, ra, final, reference, rb, final)
    table = pd.DataFrame(rows)
    analog = analog_step(steps, PAPER[rung].fraction)
    paper_sae = _paper_sae(
        by_step[analog],
        last,
        runs,
        paper_sites(rung, sites),
        d,
        analog,
        seed=seed,
        sae_expansion=sae_expansion,
        sae_k=sae_k,
        sae_n_tokens=sae_n_tokens,
        sae_batch_size=sae_batch_size,
        device=device,
    )
    params = dict(
        seed=int(seed),
        n_null=int(n_null),
        alpha=float(alpha),
        affine_margin=float(affine_margin),
        sae_expansion=int(sae_expansion),
        sae_k=int(sae_k),
        sae_n_tokens=int(sae_n_tokens),
    )
    res = CheckpointResult(
        rung,
        steps,
        runs,
        sites,
        d,
        analog,
        table,
        paper_sae,
        pd.DataFrame(),
        pd.DataFrame(),
        params,
    )
    res.per_run, res.cross_seed = _claim_inputs(res)
    return res


def _check_reference(
    reference: PairedActs, last: PairedActs, run: str, sites: Sequence[str]
) -> None:
    if len(reference.members) < 2:
        raise ValueError(
            "reference needs at least 2 members (seeds) for cross-seed pairs, "
            f"got {reference.members}"
        )
    missing = [s for s in sites if s not in reference.sites]
    if missing:
        raise ValueError(f"reference lacks the checkpoints' sites {missing}")
    for w in ("fit", "eval"):
        n_ref = next(iter(getattr(reference, w)[reference.members[0]].values())).shape[0]
        n_ck = next(iter(getattr(last, w)[run].values())).shape[0]
        if n_ref != n_ck:
            raise ValueError(
                f"reference.{w} has {n_ref} rows, the checkpoints {n_ck}: "
                "build both on the same inputs"
            )


def _paper_sae(
    early: PairedActs,
    late: PairedActs,
    runs: Sequence[str],
    psites: Sequence[str],
    d: int,
    step: int,
    *,
    seed: int,
    sae_expansion: int,
    sae_k: int,
    sae_n_tokens: int,
    sae_batch_size: int,
    device: str,
) -> pd.DataFrame:
    acts = {f"{r}@{step}": {s: early.fit[r][s] for s in psites} for r in runs}
    saes, _ = analysis.train_saes(
        acts,
        d_sae=int(sae_expansion) * d,
        k=int(sae_k),
        n_tokens=int(sae_n_tokens),
        batch_size=int(sae_batch_size),
        seed=int(seed),
        device=device,
    )
    rows = []
    for r in runs:
        for s in psites:
            out = analysis.paper_checkpoint_transfer(
                saes[f"{r}@{step}"][s], early.eval[r][s], late.eval[r][s]
            )
            rows.append(
                {
                    "run": r,
                    "site": short_site(s),
                    **out,
                    "frob_ratio": out["frob"] / math.sqrt(2 * d),
                }
            )
    return pd.DataFrame(rows)


def _claim_inputs(res: CheckpointResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    t, p = res.table, res.paper_sae
    rows = []
    for r in res.runs:
        ana = t[(t.pair_kind == "to_final") & (t.a_run == r) & (t.a_step == res.analog_step)]
        succ = t[(t.pair_kind == "successive") & (t.a_run == r) & (t.a_step > res.steps[0])]
        tested = ana[ana.full_rank]
        pr = p[p.run == r]
        rows.append(
            {
                "run": r,
                "post_rotation_sae_ev": float(pr.ev_rot.min()),
                "sae_ev_lift": float((pr.ev_rot - pr.ev_naive).min()),
                "naive_sae_ev": float(pr.ev_naive.max()),
                "frob_depth_change": float(pr.frob.iloc[-1] - pr.frob.iloc[0])
                if len(pr) > 1
                else float("nan"),
                "rotation_ev": float(ana.ev_rotation.min()),
                "rotation_gain": float((ana.ev_rotation - ana.ev_identity).min()),
                "successive_affine_deficit": float((succ.ev_affine - succ.ev_rotation).max())
                if len(succ)
                else float("nan"),
                "frob_ratio_to_final": float(ana.frob_ratio.mean()),
                "haar_pmin": float(tested.haar_p.min()) if len(tested) else float("nan"),
                "n_haar_sites": len(tested),
            }
        )
    cs = t[t.pair_kind == "cross_seed"]
    cross = pd.DataFrame(
        [
            {
                "a_run": a,
                "b_run": b,
                "frob_ratio": float(g.frob_ratio.mean()),
                "haar_pmin": float(g[g.full_rank].haar_p.min())
                if g.full_rank.any()
                else float("nan"),
            }
            for (a, b), g in cs.groupby(["a_run", "b_run"], sort=False)
        ]
    )
    return pd.DataFrame(rows), cross


# ----------------------------------------------------------------------------- claims
def _interval(values: Mapping[Any, float], seed: int) -> Interval | None:
    vals = {k: v for k, v in values.items() if not math.isnan(v)}
    return seed_interval(vals, seed=seed) if vals else None


def record_claims(results: Any, res: CheckpointResult) -> pd.DataFrame:
    """Record the chapter's values and claims into a
    :class:`~polyrot_utils.book.results.ChapterResults`
    and return the claims as a table for the page (kind, value, its [lo, hi] over seeds, the test,
    passed).

    Every claim's value is the mean over runs of a per-run number (``res.per_run``), with
    :func:`~polyrot_utils.core.intervals.seed_interval` over the runs. The paper's
    (``kind="paper"``,
    bars and values from :data:`PAPER` for ``res.rung``; the SAE statistic at the analog
    checkpoint → final): ``ckpt_post_rotation_sae_ev`` (worst paper site),
    ``ckpt_rotation_lifts_sae_ev`` (rotated − naive EV, worst site), and where the paper makes them
    ``ckpt_naive_sae_ev_negative`` (Pythia) and ``ckpt_frob_falls_with_depth`` (Dyck). Ours
    (``kind="check"``, held-out map EVs at every site, no SAE): ``ckpt_rotation_ev``,
    ``ckpt_rotation_improves_on_identity``, ``ckpt_successive_are_rotations`` (affine − rotation EV
    over successive pairs after the first checkpoint <= ``affine_margin``) and ``ckpt_haar_pmin``
    (smallest calibrated Haar p over the full-rank sites > ``alpha`` / their number).
    """
    paper, pr, step = PAPER[res.rung], res.per_run.set_index("run"), res.analog_step
    seed = res.params.get("seed", 0)
    results.record("steps", res.steps)
    results.record("runs", res.runs)
    results.record("analog_step", step)
    results.record("rotation_table", res.table.to_dict(orient="records"))
    results.record("paper_checkpoint_transfer", res.paper_sae.to_dict(orient="records"))
    results.record("per_run", res.per_run.to_dict(orient="records"))
    results.record("cross_seed", res.cross_seed.to_dict(orient="records"))
    for kind in ("successive", "to_final", "cross_seed"):
        sub = res.table[(res.table.pair_kind == kind) & res.table.full_rank]
        results.record(
            f"frob_ratio_median_{kind}",
            float(sub.frob_ratio.median()) if len(sub) else float("nan"),
        )
        results.record(
            f"fraction_haar_rejected_{kind}",
            float((sub.haar_p < res.params["alpha"]).mean()) if len(sub) else float("nan"),
        )
    if len(res.cross_seed):
        iv = pair_interval(
            {
                (a, b): v
                for a, b, v in res.cross_seed[["a_run", "b_run", "frob_ratio"]].itertuples(
                    index=False
                )
            },
            seed=seed,
        )
        results.record("cross_seed_frob_ratio", iv.as_dict())
    sae_what = (
        f"SAE trained on checkpoint {step} at the paper's sites, applied to the final checkpoint's "
        "activations (scalar-variance EV on one batch, in-sample R)"
    )
    out: list[dict[str, Any]] = []

    def claim(name: str, col: str, threshold: float, op: str, **kw: Any) -> None:
        values = pr[col].to_dict()
        iv = _interval(values, seed)
        value = iv.point if iv is not None else float("nan")
        passed = results.claim(name, value=value, threshold=threshold, op=op, interval=iv, **kw)
        out.append(
            {
                "claim": name,
                "kind": kw.get("kind", "paper"),
                "value [lo, hi] over seeds": str(iv) if iv else "–",
                "test": f"{op} {threshold:.3g}",
                "passed": passed,
            }
        )

    src = dict(kind="paper", source=paper.source)
    claim(
        "ckpt_post_rotation_sae_ev",
        "post_rotation_sae_ev",
        paper.post_rotation_bar,
        paper.post_rotation_op,
        paper_value=paper.post_rotation,
        description=f"{sae_what}: EV after the rotation, worst site",
        **src,
    )
    claim(
        "ckpt_rotation_lifts_sae_ev",
        "sae_ev_lift",
        0.0,
        ">",
        paper_value=paper.lift,
        description=f"{sae_what}: EV after the rotation − before (naive), worst site",
        **src,
    )
    if paper.naive_negative:
        claim(
            "ckpt_naive_sae_ev_negative",
            "naive_sae_ev",
            0.0,
            "<",
            paper_value=paper.naive_negative,
            description=f"{sae_what}: EV without the rotation (naive), largest over sites",
            **src,
        )
    if paper.frob_with_depth:
        claim(
            "ckpt_frob_falls_with_depth",
            "frob_depth_change",
            0.0,
            "<",
            paper_value=paper.frob_with_depth,
            description=f"‖R − I‖_F of the paper's checkpoint {step} → final rotation "
            "at the last paper site "
            "− at the first (the embedding)",
            **src,
        )
    claim(
        "ckpt_rotation_ev",
        "rotation_ev",
        paper.post_rotation_bar,
        paper.post_rotation_op,
        kind="check",
        check_of="ckpt_post_rotation_sae_ev",
        why_stricter="held-out map EV of the rotation (R fitted on other inputs), "
        "per-dimension variance, "
        "every site, no SAE in between",
        description="held-out EV of the final checkpoint's activations from "
        f"checkpoint {step}'s through R, "
        "worst site",
    )
    claim(
        "ckpt_rotation_improves_on_identity",
        "rotation_gain",
        0.0,
        ">",
        kind="check",
        check_of="ckpt_rotation_lifts_sae_ev",
        why_stricter="held-out map EVs (rotation vs identity), per-dimension variance, "
        "every site, no SAE",
        description=f"EV(rotation) − EV(identity), checkpoint {step} → final, worst site",
    )
    margin = res.params["affine_margin"]
    claim(
        "ckpt_successive_are_rotations",
        "successive_affine_deficit",
        margin,
        "<=",
        kind="check",
        description="ours: largest (affine EV − rotation EV) over successive checkpoint pairs "
        "after the "
        f"first checkpoint and over sites <= {margin}: the change between checkpoints is a "
        "change of basis",
    )
    n_tested = int(pr.n_haar_sites.max()) if len(pr) else 0
    thr = res.params["alpha"] / max(1, n_tested)
    claim(
        "ckpt_haar_pmin",
        "haar_pmin",
        thr,
        ">",
        kind="check",
        description="ours, not a paper claim (the paper never says checkpoint rotations are "
        "Haar): smallest "
        f"calibrated Haar p over the {n_tested} full-rank sites, checkpoint {step} → final "
        f"(Bonferroni threshold {res.params['alpha']}/{n_tested})",
    )
    return pd.DataFrame(out).set_index("claim")


# ----------------------------------------------------------------------------- figure
def plot_checkpoints(res: CheckpointResult, axes: Sequence[Any]) -> None:
    """Draw the chapter's figure on two stacked axes (``figures.column_figure(2, 1, sharex=True)``:
    this layer does not import the book's). Top: ‖R − I‖_F/√(2d) of each checkpoint → final
    rotation per site (mean over runs), the mean over seed pairs of the final models (dotted) and
    the Haar level (≈ 1). Bottom: held-out EV of the final checkpoint's activations from each
    checkpoint's (mean over sites and runs) through the identity, the rotation, the scaled
    rotation and the affine map; the grey line marks the paper's checkpoint. EVs are clipped
    below at −1. Steps on a symlog axis when they span decades."""
    if len(axes) != 2:
        raise ValueError(f"axes must be two stacked axes, got {len(axes)}")
    ax1, ax2 = axes
    t = res.table
    tof = t[t.pair_kind == "to_final"]
    for i, (site, g) in enumerate(tof.groupby("site", sort=False)):
        m = g.groupby("a_step").frob_ratio.mean()
        ax1.plot(m.index, m.values, "-", marker="osD^vP*X"[i % 8], ms=4, label=site)
    cs = t[t.pair_kind == "cross_seed"]
    if len(cs):
        ax1.axhline(float(cs.frob_ratio.mean()), color="k", ls=":", label="two seeds' final models")
    ax1.axhline(1.0, color="grey", lw=3, alpha=0.4, label="Haar (≈ 1)")
    ax1.set_ylim(0, max(1.15, float(tof.frob_ratio.max()) + 0.05))
    ax1.set_ylabel("‖R − I‖_F / √(2d)")
    ax1.set_title("Checkpoint → final: distance of R from the identity")
    ax1.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    names = {
        "ev_identity": "identity",
        "ev_rotation": "rotation",
        "ev_rotation_scaled": "scaled rotation",
        "ev_affine": "affine map",
    }
    ev = tof.groupby("a_step")[list(names)].mean()
    for col, lab in names.items():
        ax2.plot(ev.index, ev[col].clip(lower=-1.0), "-o", ms=3, label=lab)
    ax2.axvline(
        res.analog_step, color="grey", lw=1, label=f"paper's checkpoint ({res.analog_step})"
    )
    ax2.set_ylim(max(-1.05, float(ev.min().min()) - 0.05), 1.05)
    ax2.set_ylabel("held-out EV of final")
    ax2.set_xlabel("step of the earlier checkpoint")
    ax2.set_title("Checkpoint → final: what each map explains")
    ax2.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    positive = [s for s in res.steps if s > 0]
    if positive and res.steps[-1] / min(positive) > 30:
        ax2.set_xscale("symlog", linthresh=max(1, min(positive)))
        ax2.set_xlabel("step of the earlier checkpoint (symlog)")


# ----------------------------------------------------------------------------- the chapters
def chapter_outputs(res: CheckpointResult, new_figure: Callable[..., Any]) -> dict[str, Any]:
    """Everything chapters 15 and 25 show, by name, for ``book.figures.glue_outputs``: the table
    ``site_summary`` (:meth:`CheckpointResult.site_summary`) and the figure
    ``checkpoints_figure`` (:func:`plot_checkpoints` on two stacked axes, 5.6 in high, sharing
    the step axis). ``new_figure``: ``book.figures.column_figure`` (``(nrows, ncols, *,
    height, **subplots_kw) -> (fig, axes)``; this layer does not import the book's). The claims
    table is not here: :func:`record_claims` also records the chapter's results, so the page
    calls it in a cell of its own."""
    fig, axes = new_figure(2, 1, height=5.6, sharex=True)
    plot_checkpoints(res, axes)
    return {"site_summary": res.site_summary(), "checkpoints_figure": fig}
