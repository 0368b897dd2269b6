"""Rotations between checkpoints of one training run (DESIGN.md §5.7).

For a run's saved checkpoints (:meth:`polyrot_utils.tasks.dyck.training.TrainedToy.load_checkpoint`) the
residual activations on the same strings are compared pairwise, per site, by one SO(d)
Procrustes ``R`` (``x_a @ R ≈ x_b``, centred, fitted on a fit batch) and asked:

- is ``R`` near the identity? ``frob_ratio = ‖R − I‖_F / √(2d)`` (0: identity; ≈ 1: Haar — or any
  orthogonal matrix with trace ≈ 0, so this number alone proves nothing) and ``trace / d``;
- is ``R`` Haar? the calibrated :func:`polyrot_utils.core.haar.haar_test` p-value (``haar_p``);
- does rotating help? held-out explained variance of ``b``'s activations by ``a``'s mapped with
  the identity (``ev_identity``: no alignment), the rotation (``ev_rotation``) and a least-squares
  affine map (``ev_affine``: the best linear account, a ceiling for any rotation).

Pairs: ``"successive"`` (each checkpoint to the next), ``"to_final"`` (each to the last) and,
for reference, any extra pairs of named models (e.g. two seeds' final models).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from polyrot_utils.core.haar import haar_test
from polyrot_utils.core.metrics import explained_variance
from polyrot_utils.core.procrustes import alignment_report, fit_alignment
from polyrot_utils.models.activations import collect_activations
from polyrot_utils.tasks.dyck import language as dyck


def checkpoint_models(member: Any, steps: Sequence[int] | None = None) -> dict[int, Any]:
    """``{step: model}`` for a :class:`polyrot_utils.tasks.dyck.training.TrainedToy`'s saved checkpoints
    (all of them unless ``steps``), in step order."""
    have = sorted(member.checkpoints)
    steps = have if steps is None else [int(s) for s in steps]
    bad = [s for s in steps if s not in member.checkpoints]
    if bad:
        raise KeyError(f"no checkpoints at steps {bad}; saved steps: {have}")
    return {s: member.load_checkpoint(s) for s in steps}


def checkpoint_pairs(steps: Sequence[int], kind: str = "successive") -> list[tuple[int, int]]:
    """``"successive"``: (s_i, s_{i+1}); ``"to_final"``: (s_i, s_last) for every earlier s_i."""
    steps = sorted(steps)
    if len(steps) < 2:
        raise ValueError(f"need at least 2 checkpoint steps, got {list(steps)}")
    if kind == "successive":
        return list(zip(steps[:-1], steps[1:]))
    if kind == "to_final":
        return [(s, steps[-1]) for s in steps[:-1]]
    raise ValueError(f"kind must be 'successive' or 'to_final', got {kind!r}")


def fit_eval_activations(models: Mapping[Any, Any], split: dyck.DyckSplit, sites: Sequence[str], n_fit_strings: int,
                         n_eval_strings: int, batch_size: int = 256) -> tuple[dict, dict]:
    """``(fit, eval)``, each ``{model key: {site: (n, d)}}``: the first ``n_fit_strings`` strings
    of ``split`` and the next ``n_eval_strings`` (disjoint), non-PAD positions, rows paired."""

    if n_fit_strings + n_eval_strings > len(split):
        raise ValueError(f"n_fit_strings + n_eval_strings = {n_fit_strings + n_eval_strings} exceeds the split's {len(split)} strings")
    fit = split.subset(slice(0, n_fit_strings))
    ev = split.subset(slice(n_fit_strings, n_fit_strings + n_eval_strings))
    out = []
    for part in (fit, ev):
        out.append({k: collect_activations(m, part.tokens, list(sites), batch_size=batch_size, mask=part.mask)
                    for k, m in models.items()})
    return out[0], out[1]


def rotation_row(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, *,
                 n_null: int = 200, seed: int = 0) -> dict[str, float]:
    """Compare one pair at one site (``x`` source, ``y`` target, rows paired): the module
    docstring's statistics. ``haar_p`` is NaN when ``n_null == 0`` (no test)."""

    d = x_fit.shape[1]
    maps = {m: fit_alignment(x_fit.double(), y_fit.double(), m) for m in ("identity", "rotation")}
    R = maps["rotation"].matrix
    row = {
        "frob_ratio": float(np.linalg.norm(R - np.eye(d)) / np.sqrt(2 * d)),
        "trace_over_d": float(np.trace(R) / d),
        **{f"ev_{m}": alignment_report(mp, x_eval.double(), y_eval.double()).ev for m, mp in maps.items()},
        "ev_affine": affine_ev(x_fit, y_fit, x_eval, y_eval),
    }
    row["haar_p"] = float(haar_test(R, n_null=n_null, seed=seed).pvalue) if n_null > 0 else float("nan")
    return row


def affine_ev(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, ridge: float = 1e-8) -> float:
    """Held-out EV of ``y_eval`` by the least-squares affine map fitted on ``(x_fit, y_fit)``
    (centred normal equations in float64 torch, a ``ridge`` relative to the mean eigenvalue for
    rank-deficient sites). Same number as ``fit_alignment(..., "affine")`` up to the ridge, without
    numpy's ``lstsq`` (which is slow under a busy multithreaded BLAS)."""

    X, Y = x_fit.double(), y_fit.double()
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc
    lam = ridge * float(torch.trace(G)) / G.shape[0] + 1e-300
    W = torch.linalg.solve(G + lam * torch.eye(G.shape[0], dtype=G.dtype), Xc.T @ Yc)
    pred = (x_eval.double() - mx) @ W + my
    return float(explained_variance(y_eval.double(), pred))


def rotation_table(acts_fit: Mapping[Any, Mapping[str, torch.Tensor]], acts_eval: Mapping[Any, Mapping[str, torch.Tensor]],
                   pairs: Sequence[tuple[Any, Any]], sites: Sequence[str], *, label: str = "", n_null: int = 200,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Rows ``{pair_kind, a, b, site, frob_ratio, trace_over_d, ev_identity, ev_rotation, ev_affine,
    haar_p}`` for every ``(a, b)`` in ``pairs`` (keys of ``acts_fit``) and site; ``label`` fills
    ``pair_kind``."""
    rows = []
    for a, b in pairs:
        for s in sites:
            rows.append({"pair_kind": label, "a": a, "b": b, "site": s,
                         **rotation_row(acts_fit[a][s], acts_fit[b][s], acts_eval[a][s], acts_eval[b][s], n_null=n_null, seed=seed)})
    return rows


__all__ = ["affine_ev", "checkpoint_models", "checkpoint_pairs", "fit_eval_activations", "rotation_row", "rotation_table"]
