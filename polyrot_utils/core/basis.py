"""Is the residual basis privileged? Outlier dimensions and where a fitted rotation sends them.

Adam-trained language models grow a few residual dimensions with huge, heavy-tailed activations
(outlier dimensions): the optimizer's per-coordinate step sizes single out the coordinate axes.
If two seeds' outlier dimensions are mapped onto each other by the fitted R, then R is far from
a uniformly random rotation — a Haar R would spread each basis vector evenly over all d
coordinates. These functions measure that, with a Monte-Carlo null from Haar rotations.

Conventions: activations ``(n, d)`` rows; ``R`` maps source rows to target rows
(``x_src @ R ≈ x_tgt``), so basis vector ``e_i`` of the source goes to row ``R[i, :]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from polyrot_utils.core import haar
from polyrot_utils.core.validate import as_array

__all__ = [
    "FIXED_TOL",
    "OutlierAlignment",
    "dimension_kurtosis",
    "fixed_subspace",
    "outlier_alignment",
    "outlier_dimensions",
]

#: The book's tolerance (radians) for the fixed subspace of a *fitted* rotation (glossary).
FIXED_TOL = 0.1


def fixed_subspace(R: Any, tol: float = FIXED_TOL, *, atol: float = 1e-4) -> np.ndarray:
    """Orthonormal basis, as **rows** ``(k, d)``, of the fixed subspace of R at tolerance ``tol``.

    Definition (the book's glossary, "Fixed subspace"): the span of R's invariant planes (and real
    eigenvectors) whose eigenangle is at most ``tol`` radians — the directions R moves by at most
    ``2 sin(tol / 2) ≈ tol`` of their length; at ``tol = 0`` the eigenspace of eigenvalue +1.
    For orthogonal R these are the eigenvectors of the symmetric part ``(R + Rᵀ)/2`` with
    eigenvalue ``cos θ``, ``θ <= tol``; the count ``k`` equals the Haar test's ``fixed_dim``
    (:func:`polyrot_utils.core.haar.matrix_features` with ``fixed_tol=tol``).

    Conventions: row vectors, ``x @ R`` (so a row ``b`` of the result has ``b @ R ≈ b``);
    the tolerance is an *angle*, not a singular value of ``R − I`` (a singular-value cutoff
    ``s`` corresponds to the angle ``2 arcsin(s / 2)``). The book uses ``tol = 0.1`` for fitted
    rotations and ``1e-5`` for numerically exact fixed directions.

    Args:
        R: ``(d, d)`` orthogonal matrix, numpy or torch; O(d) allowed; orthogonal to ``atol``
            in max |RᵀR − I|.
        tol: the angle tolerance in radians, ``0 <= tol < π``.

    Returns:
        ``(k, d)`` float64 numpy, orthonormal rows; ``(0, d)`` when nothing is fixed.

    >>> import numpy as np
    >>> c, s = np.cos(0.5), np.sin(0.5)
    >>> R = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # turns the (e0, e1) plane
    >>> np.abs(fixed_subspace(R, tol=0.1)).round(6)                   # e2 stays put
    array([[0., 0., 1.]])
    >>> fixed_subspace(R, tol=0.6).shape                             # within 0.6 rad: all of it
    (3, 3)
    """
    if not 0 <= tol < np.pi:
        raise ValueError(f"tol must be an angle in radians in [0, π), got {tol}")
    a = haar.check_orthogonal(R, "R", atol=atol, special=False)
    if a.ndim != 2:
        raise ValueError(f"R must be a single (d, d) matrix, got shape {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a))
    w, v = torch.linalg.eigh(0.5 * (t + t.T))
    keep = torch.arccos(w.clamp(-1.0, 1.0)) <= tol
    return v[:, keep].T.contiguous().numpy()


def dimension_kurtosis(acts: Any) -> np.ndarray:
    """Per-dimension (Pearson) kurtosis of ``acts (n, d)``: 3 for a Gaussian coordinate; outlier
    dimensions of language models reach tens to thousands."""
    x = as_array(acts, "acts", ndim=2, shape="(n, d)")
    if x.shape[0] < 4:
        raise ValueError(f"acts needs at least 4 rows to estimate kurtosis, got {x.shape[0]}")
    xc = x - x.mean(0)
    var = (xc**2).mean(0)
    var = np.where(var > 0, var, np.finfo(float).tiny)
    return (xc**4).mean(0) / var**2


def outlier_dimensions(acts: Any, k: int = 4) -> np.ndarray:
    """Indices of the ``k`` dimensions with the largest kurtosis, largest first."""
    kurt = dimension_kurtosis(acts)
    if not 1 <= k <= kurt.shape[0]:
        raise ValueError(f"k must be in [1, d={kurt.shape[0]}], got {k}")
    return np.argsort(-kurt)[:k]


def _mass_on(R: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Mean over source rows ``i`` of Σ_{j∈cols} R[i, j]²: how much of e_i R lands on ``cols``."""
    return float((R[np.ix_(rows, cols)] ** 2).sum(1).mean())


@dataclass
class OutlierAlignment:
    """Where R sends the source's outlier axes.

    ``mass``: mean fraction of each source outlier axis's image that lands on the target's
    outlier axes; ``expected_haar`` = k_tgt / d; ``p_value``: one-sided Monte-Carlo p of a mass
    at least this large under Haar R; ``best_match``: for each source outlier, the target
    coordinate its image loads on most, and ``best_abs_entry`` that |R[i, j]|.
    """

    mass: float
    expected_haar: float
    p_value: float
    n_null: int
    source_outliers: list[int]
    target_outliers: list[int]
    best_match: list[int]
    best_abs_entry: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outlier_alignment(
    R: Any, source_outliers: Any, target_outliers: Any, *, n_null: int = 500, seed: int = 0
) -> OutlierAlignment:
    """Does R map the source's outlier axes onto the target's? Calibrated against Haar R."""
    R = haar.check_orthogonal(R, "R", atol=1e-4, special=False)
    if R.ndim != 2:
        raise ValueError(f"R must be a single (d, d) matrix, got shape {R.shape}")
    d = R.shape[0]
    src = np.asarray(source_outliers, dtype=int).ravel()
    tgt = np.asarray(target_outliers, dtype=int).ravel()
    for name, idx in (("source_outliers", src), ("target_outliers", tgt)):
        if idx.size == 0 or idx.min() < 0 or idx.max() >= d:
            raise ValueError(f"{name} must be non-empty indices in [0, {d}), got {idx.tolist()}")
    if n_null < 10:
        raise ValueError(f"n_null must be >= 10, got {n_null}")
    observed = _mass_on(R, src, tgt)
    rng = np.random.default_rng(seed)
    null = np.empty(n_null)
    for start in range(0, n_null, 256):  # batched sampling: one QR call per chunk
        chunk = haar.sample_haar(d, min(256, n_null - start), rng=rng)
        null[start : start + len(chunk)] = (chunk[:, src][:, :, tgt] ** 2).sum(2).mean(1)
    p = float((1 + np.sum(null >= observed)) / (1 + n_null))
    best = np.abs(R[src]).argmax(1)
    return OutlierAlignment(
        mass=observed,
        expected_haar=tgt.size / d,
        p_value=p,
        n_null=n_null,
        source_outliers=src.tolist(),
        target_outliers=tgt.tolist(),
        best_match=best.tolist(),
        best_abs_entry=np.abs(R[src, best]).tolist(),
    )
