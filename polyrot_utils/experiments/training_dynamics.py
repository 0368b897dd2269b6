"""The paper's claims as training proceeds: which of them appear only once the seeds converge.

From checkpoints of one cohort — ``{step: {seed_name: model}}``, the same steps for every
seed — and the tokens each step had seen, :func:`claims_over_training` measures, per step:

- ``min_accuracy``: the worst seed's minimum accuracy over evaluation sets x readouts (given by
  the caller, from the training record; the paper's convergence criterion is ``>= 0.9999``);
- ``cross_seed_kl`` / ``cross_seed_top1``: the seeds' functional agreement (mean over ordered
  pairs, from the caller's ``agreement`` function) — the paper's premise is a KL near 0;
- ``unaligned_ev``: how much of seed B's activations seed A's explain with no map at all
  (the identity; mean over pairs at ``site``);
- ``aligned_ev``: the same through the fitted Procrustes rotation (``x_B ≈ x_A @ R``, row
  vectors, centred);
- ``rotation_distance``: ``‖R − I‖_F / √(2d)``, 0 for the identity and about 1 for a Haar draw
  (the paper's Frobenius check compares it with the Haar expectation);
- ``sae_gap``: the paper's SAE-transfer gap at ``site``: the target seed's own SAE EV minus the
  EV of the source seed's SAE moved by R (mean over pairs; the paper's bar is 0.025);
- ``haar_p``: our calibrated Haar test's p-value for R (smallest over pairs; the chapter 02
  instrument) — small means "not Haar".

Activations come from the caller's ``build_acts(models) -> PairedActs`` (each rung builds its
own), so the function is rung-agnostic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from polyrot_utils.core import haar, procrustes
from polyrot_utils.experiments import analysis
from polyrot_utils.models.activations import PairedActs

__all__ = ["COLUMNS", "claims_over_training", "plot_claims_over_training"]

#: the measured columns, in the order the chapter shows them
COLUMNS = (
    "min_accuracy",
    "cross_seed_kl",
    "cross_seed_top1",
    "unaligned_ev",
    "aligned_ev",
    "rotation_distance",
    "sae_gap",
    "haar_p",
)


def _check(
    checkpoints: Mapping[int, Mapping[str, Any]], tokens_seen: Mapping[int, int]
) -> list[int]:
    if not isinstance(checkpoints, Mapping) or not checkpoints:
        raise ValueError("checkpoints must be a non-empty {step: {seed_name: model}} mapping")
    steps = sorted(int(s) for s in checkpoints)
    names = None
    for s in steps:
        models = checkpoints[s]
        if not isinstance(models, Mapping) or len(models) < 2:
            raise ValueError(f"checkpoints[{s}] must map >= 2 seed names to models, got {models!r}")
        if names is None:
            names = sorted(models)
        elif sorted(models) != names:
            raise ValueError(
                f"checkpoints[{s}] has seeds {sorted(models)}, step {steps[0]} has {names}"
            )
    missing = [s for s in steps if s not in tokens_seen]
    if missing:
        raise ValueError(f"tokens_seen lacks steps {missing}")
    return steps


def claims_over_training(
    checkpoints: Mapping[int, Mapping[str, Any]],
    tokens_seen: Mapping[int, int],
    build_acts: Callable[[Mapping[str, Any]], PairedActs],
    agreement: Callable[[Mapping[str, Any]], tuple[float, float]],
    *,
    site: str,
    min_accuracy: Mapping[int, float] | None = None,
    sae_expansion: int = 2,
    sae_k: int = 8,
    sae_n_tokens: int = 16_384,
    sae_batch_size: int = 256,
    n_null: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per checkpoint step: ``step``, ``tokens`` and :data:`COLUMNS` (module docstring).

    ``agreement(models) -> (mean KL nats, mean top-1 agreement)`` over ordered pairs;
    ``site`` must be one of ``build_acts``' sites. ``ValueError`` naming the argument on bad
    input, before any work."""
    steps = _check(checkpoints, tokens_seen)
    for name, v, lo in (
        ("sae_expansion", sae_expansion, 1),
        ("sae_k", sae_k, 1),
        ("sae_n_tokens", sae_n_tokens, 1),
        ("sae_batch_size", sae_batch_size, 1),
        ("n_null", n_null, 10),
    ):
        if int(v) < lo:
            raise ValueError(f"{name} must be >= {lo}, got {v}")
    rows = []
    for step in steps:
        models = checkpoints[step]
        acts = build_acts(models)
        if site not in acts.sites:
            raise ValueError(f"site {site!r} is not among the activations' sites {acts.sites}")
        members = list(acts.members)
        d = int(acts.fit[members[0]][site].shape[1])
        saes, _ = analysis.train_saes(
            acts.fit,
            d_sae=int(sae_expansion) * d,
            k=int(sae_k),
            n_tokens=int(sae_n_tokens),
            batch_size=int(sae_batch_size),
            seed=analysis.model_seeds(members, base=seed),
            models=members,
            sites=[site],
        )
        pairs = list(itertools.combinations(members, 2))
        table = pd.DataFrame(
            analysis.alignment_table(
                acts.fit, acts.eval, saes, pairs, [site], methods=("identity", "rotation")
            )
        )
        dist, pvals = [], []
        for a, b in pairs:
            fit = procrustes.fit_alignment(acts.fit[a][site], acts.fit[b][site], method="rotation")
            R = np.asarray(fit.matrix, dtype=np.float64)
            dist.append(float(np.linalg.norm(R - np.eye(d)) / math.sqrt(2 * d)))
            if np.linalg.det(R) > 0:
                pvals.append(float(haar.haar_test(R, n_null=int(n_null), seed=int(seed)).pvalue))
        kl, top1 = agreement(models)
        rot = table[table.method == "rotation"]
        ident = table[table.method == "identity"]
        rows.append(
            {
                "step": int(step),
                "tokens": int(tokens_seen[step]),
                "min_accuracy": float(min_accuracy[step])
                if min_accuracy and step in min_accuracy
                else float("nan"),
                "cross_seed_kl": float(kl),
                "cross_seed_top1": float(top1),
                "unaligned_ev": float(ident.map_ev.mean()),
                "aligned_ev": float(rot.map_ev.mean()),
                "rotation_distance": float(np.mean(dist)),
                "sae_gap": float(rot.gap.mean()),
                "haar_p": float(min(pvals)) if pvals else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def plot_claims_over_training(
    timeline: pd.DataFrame, new_figure: Callable[..., Any], gap_bar: float = 0.025
) -> Any:
    """Three panels of :func:`claims_over_training`'s table against tokens seen (log axes):
    error left (``1 − min_accuracy``) and cross-seed KL; unaligned EV, aligned EV and the SAE
    gap beside the paper's ``gap_bar``; the rotation's distance from the identity and the Haar
    p-value. ``new_figure``: ``book.figures.column_figure``."""
    fig, axes = new_figure(1, 3, height=2.9)
    x = timeline.tokens
    axes[0].plot(x, (1 - timeline.min_accuracy).clip(lower=1e-6), "o-", label="1 − min acc")
    axes[0].plot(x, timeline.cross_seed_kl.clip(lower=1e-9), "s--", label="cross-seed KL")
    axes[0].set(xscale="log", yscale="log", xlabel="tokens")
    axes[1].plot(x, timeline.unaligned_ev, "o-", label="unaligned EV")
    axes[1].plot(x, timeline.aligned_ev, "s-", label="aligned EV")
    axes[1].plot(x, timeline.sae_gap, "^--", label="SAE gap")
    axes[1].axhline(gap_bar, color="grey", ls=":", label=f"gap bar {gap_bar:g}")
    axes[1].set(xscale="log", xlabel="tokens")
    axes[2].plot(x, timeline.rotation_distance, "o-", label="‖R−I‖/√(2d)")
    axes[2].plot(x, timeline.haar_p, "s--", label="Haar p")
    axes[2].set(xscale="log", xlabel="tokens", ylim=(-0.05, 1.6))
    for ax in axes:
        ax.legend(fontsize=9, loc="best")
    return fig
