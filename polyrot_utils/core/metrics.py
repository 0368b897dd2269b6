"""Scores shared by the chapters: reconstruction, dictionary similarity, output agreement.

- :func:`explained_variance` — EV = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² (glossary: *Explained variance*), x̄
  the mean of
  the evaluated activations ``x``. 0 is "predict the mean", negative is worse than that.
- :func:`mean_max_cosine`, :func:`matched_cosine` — similarity of two SAE decoder dictionaries
  given as ``(n_features, d)`` rows (one feature direction per row).
- :func:`kl_divergence`, :func:`top1_agreement` — do two models say the same thing? Logits are
  ``(..., vocab)``; every leading index is a position.

All functions accept numpy arrays or torch tensors (any device), compute in float64, and return
Python floats. Bad input raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polyrot_utils.core.validate import ArrayLike, as_tensor

__all__ = [
    "explained_variance",
    "kl_divergence",
    "matched_cosine",
    "mean_max_cosine",
    "pairwise_agreement",
    "top1_agreement",
]


def explained_variance(x: ArrayLike, x_hat: ArrayLike) -> float:
    """EV of ``x`` by ``x_hat``: ``1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²``, x̄ the row mean of ``x``.

    Args:
        x: the evaluated activations, ``(n, d)`` or ``(..., d)`` (leading dims are flattened).
        x_hat: a reconstruction / prediction of the same shape.

    Returns ``nan``-free float; raises ``ValueError`` if ``x`` has zero variance.
    """
    a = as_tensor(x, "x", min_ndim=2, dtype=torch.float64)
    b = as_tensor(x_hat, "x_hat", min_ndim=2, dtype=torch.float64).to(a.device)
    if a.shape != b.shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = a.reshape(-1, a.shape[-1])
    b = b.reshape(-1, b.shape[-1])
    if a.shape[0] < 2:
        raise ValueError(f"x needs at least 2 rows to have a variance, got {a.shape[0]}")
    total = float(((a - a.mean(0, keepdim=True)) ** 2).sum())
    if total == 0.0:
        raise ValueError("x has zero variance; explained variance is undefined")
    resid = float(((a - b) ** 2).sum())
    return 1.0 - resid / total


def explained_variance_scalar(x: ArrayLike, x_hat: ArrayLike) -> float:
    """The paper's EV: ``1 − mean((x − x̂)²) / var(x)`` with ``var`` the *scalar* variance of all
    entries of ``x`` about their one grand mean (``torch.Tensor.var()``, unbiased), as its
    ``sae_metrics`` computes it (exp1d_rotation_audit.py, scale/common.py). Differs from
    :func:`explained_variance` (per-dimension centring) by counting the spread of the
    per-dimension means as variance, which raises EV where dimensions have offsets."""
    a = as_tensor(x, "x", min_ndim=2, dtype=torch.float64)
    b = as_tensor(x_hat, "x_hat", min_ndim=2, dtype=torch.float64).to(a.device)
    if a.shape != b.shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.numel() < 2:
        raise ValueError("x needs at least 2 entries to have a variance")
    var = float(a.var())
    if var == 0.0:
        raise ValueError("x has zero variance; explained variance is undefined")
    return 1.0 - float(((a - b) ** 2).mean()) / var


def _unit_rows(d: torch.Tensor, name: str) -> torch.Tensor:
    norms = d.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"{name} has an all-zero row (feature); cosine is undefined")
    return d / norms


def _dicts(d1: Any, d2: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = as_tensor(d1, "D1", min_ndim=2, dtype=torch.float64)
    b = as_tensor(d2, "D2", min_ndim=2, dtype=torch.float64).to(a.device)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"D1 and D2 must be 2-D (n_features, d); got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"D1 and D2 must have the same d (columns); got {a.shape[1]} and {b.shape[1]}"
        )
    return _unit_rows(a, "D1"), _unit_rows(b, "D2")


def mean_max_cosine(D1: ArrayLike, D2: ArrayLike, absolute: bool = False) -> float:
    """Mean over rows of ``D1`` of the best cosine with any row of ``D2`` (not one-to-one).

    Dictionaries are ``(n_features, d)``: each row is a decoder direction. ``absolute=True``
    scores |cos| (sign-blind). Not symmetric in its arguments.
    """
    a, b = _dicts(D1, D2)
    cos = a @ b.T
    if absolute:
        cos = cos.abs()
    return float(cos.max(dim=1).values.mean())


def matched_cosine(
    D1: ArrayLike, D2: ArrayLike, absolute: bool = False, return_matching: bool = False
) -> Any:
    """Mean cosine over a one-to-one matching of rows of ``D1`` to rows of ``D2``.

    The matching maximises the total cosine (linear assignment,
    ``scipy.optimize.linear_sum_assignment``); with unequal sizes, ``min(n1, n2)`` pairs are
    matched. ``return_matching=True`` also returns ``(rows, cols, cosines)`` numpy arrays.
    """
    from scipy.optimize import linear_sum_assignment

    a, b = _dicts(D1, D2)
    cos = (a @ b.T).cpu().numpy()
    score = np.abs(cos) if absolute else cos
    rows, cols = linear_sum_assignment(score, maximize=True)
    vals = score[rows, cols]
    mean = float(vals.mean())
    if return_matching:
        return mean, (rows, cols, vals)
    return mean


def _logits_pair(
    logits_p: Any, logits_q: Any, mask: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    p = as_tensor(logits_p, "logits_p", min_ndim=1, dtype=torch.float64)
    q = as_tensor(logits_q, "logits_q", min_ndim=1, dtype=torch.float64).to(p.device)
    if p.shape != q.shape:
        raise ValueError(
            f"logits_p and logits_q must have the same shape (..., vocab); got {tuple(p.shape)} "
            f"and {tuple(q.shape)}"
        )
    m = None
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask).to(p.device)
        if m.shape != p.shape[:-1]:
            raise ValueError(
                f"mask must have the logits' leading shape {tuple(p.shape[:-1])}, got "
                f"{tuple(m.shape)}"
            )
        m = m.to(torch.bool)
        if not bool(m.any()):
            raise ValueError("mask selects no positions")
    return p, q, m


def _masked_mean(v: torch.Tensor, m: torch.Tensor | None) -> float:
    if m is None:
        return float(v.mean())
    return float(v[m].mean())


def kl_divergence(logits_p: ArrayLike, logits_q: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean over positions of KL(p ‖ q) in nats, p = softmax(logits_p), q = softmax(logits_q).

    Args:
        logits_p, logits_q: ``(..., vocab)``; every leading index is one position.
        mask: optional boolean ``(...)`` (the leading shape): average only where True.
    """
    p, q, m = _logits_pair(logits_p, logits_q, mask)
    lp = torch.log_softmax(p, dim=-1)
    lq = torch.log_softmax(q, dim=-1)
    kl = (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)
    return _masked_mean(kl, m)


def top1_agreement(
    logits_p: ArrayLike, logits_q: ArrayLike, mask: ArrayLike | None = None
) -> float:
    """Fraction of positions where the two models' argmax tokens agree (``(..., vocab)`` logits)."""
    p, q, m = _logits_pair(logits_p, logits_q, mask)
    agree = (p.argmax(-1) == q.argmax(-1)).to(torch.float64)
    return _masked_mean(agree, m)


def pairwise_agreement(
    logits: list[ArrayLike], mask: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """KL and top-1 agreement of every ordered pair of several models' logits on the same inputs.

    Equal to calling :func:`kl_divergence` and :func:`top1_agreement` for every pair, but each
    model's log-softmax (float64) and argmax are computed once: ``m`` passes over the logits
    instead of ``4 m (m − 1)``, which matters for a language model's ``(n, T, vocab)`` logits.

    Returns ``(kl, top1)``, both ``(m, m)``: ``kl[i, j]`` = mean KL(p_i ‖ p_j) in nats (0 on the
    diagonal), ``top1[i, j]`` the fraction of positions whose argmaxes agree (1 on the diagonal).
    """
    if len(logits) < 1:
        raise ValueError("logits must hold at least one model's logits")
    first = as_tensor(logits[0], "logits[0]", min_ndim=1, dtype=torch.float64)
    _, _, m = _logits_pair(first, first, mask)
    lps, tops = [], []
    for i, lg in enumerate(logits):
        t = (
            first
            if i == 0
            else as_tensor(lg, f"logits[{i}]", min_ndim=1, dtype=torch.float64).to(first.device)
        )
        if t.shape != first.shape:
            raise ValueError(
                f"logits[{i}] has shape {tuple(t.shape)}, expected {tuple(first.shape)} like "
                "logits[0]"
            )
        lps.append(torch.log_softmax(t, dim=-1))
        tops.append(t.argmax(-1))
    k = len(logits)
    kl = np.zeros((k, k))
    top1 = np.ones((k, k))
    for i in range(k):
        p_i = lps[i].exp()
        for j in range(k):
            if i != j:
                kl[i, j] = _masked_mean((p_i * (lps[i] - lps[j])).sum(-1).clamp_min(0.0), m)
                top1[i, j] = _masked_mean((tops[i] == tops[j]).to(torch.float64), m)
    return kl, top1
