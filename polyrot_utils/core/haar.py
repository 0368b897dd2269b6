"""Haar measure on SO(d): facts, and tests of "is this rotation Haar?" that are honest about power.

Facts (the book's chapter *Is R Haar?*, ``notebooks/02_is_r_haar``). For R Haar on SO(d), d ≥ 2:

- E‖R − I‖²_F = 2d exactly (E R = 0), so ‖R − I‖_F/√(2d) ≈ 1 — for *any* orthogonal matrix
  with trace near 0 as well (a signed permutation gives 1.000). Reported, never relied on.
- The eigenvalues are e^{±iθ_j}, θ_j ∈ [0, π], j = 1..N = ⌊d/2⌋, plus a forced 1 for odd d. The
  one-angle marginal density (:func:`eigenangle_density`) is
  ``[(2N−1) + sin((2N−1)θ)/sin θ]/(2πN)`` for d = 2N and ``[2N − sin(2Nθ)/sin θ]/(2πN)`` for
  d = 2N+1; the CDF (:func:`eigenangle_cdf`) is the closed form obtained by expanding the
  Dirichlet-type kernels as cosine sums:
  d = 2N: ``F(θ) = [2Nθ + Σ_{k=1}^{N−1} sin(2kθ)/k]/(2πN)``;
  d = 2N+1: ``F(θ) = [2Nθ − 2Σ_{k=1}^{N} sin((2k−1)θ)/(2k−1)]/(2πN)``.
- The angles of one matrix repel (a determinantal process), so a KS test of one matrix's N
  angles against that density *as if iid* is grossly conservative: p ≈ 1 for Haar matrices and
  for signed permutations and half-fixed rotations alike.

Eigenangles are computed from the symmetric part: for orthogonal (normal) R the eigenvalues of
``(R + Rᵀ)/2`` are exactly ``Re λ = cos|arg λ|`` for every eigenvalue λ of R, so
``arccos(eigvalsh((R+Rᵀ)/2))`` gives |arg λ| for all d eigenvalues, each conjugate pair twice
(the paper's convention, :func:`abs_eigenangles`). For R ∈ SO(d) the cosines come in equal pairs
plus, for odd d, the forced 1: dropping the largest value (for odd d) and averaging adjacent
sorted values recovers one angle per pair (:func:`eigenangles`) — this handles repeated ±1
eigenvalues (permutations) with no pairing heuristics. ``eigvalsh`` is ~10x faster than a
general eigensolver; the price is an angle error ≲ √(d·ε) ≈ 1e-7 within ~1e-7 of 0 and π.

The calibrated test (:func:`haar_test`) computes for R and for ``n_null`` Haar samples of the
same d the component statistics

- ``ks``: the KS distance of R's N angles from the one-angle CDF (the paper's statistic),
- ``kurtosis``: mean of (√d R_ij)⁴ = Σ R_ij⁴ (Haar: 3d/(d+2); a permutation: d), two-sided,
- ``max_entry``: √d·max|R_ij| (upper tail),
- ``traces``: Σ_{k=1..K} (tr R^k − μ_k)²/σ_k² (Diaconis–Shahshahani), μ_k, σ_k estimated from
  the pooled set {R} ∪ null (so the statistic is exchangeable), upper tail,
- ``fixed_dim``: the number of eigenvalues within ``fixed_tol`` (in angle) of 1 (upper tail),

and turns each into a Monte-Carlo p-value ``#{s ∈ pooled : s ≥ s_R}/(n_null + 1)``. The verdict
``pvalue`` is the min-p over components, calibrated the same way: every member of the pooled
set {R} ∪ null gets its component p-values by the same rank rule, hence its min-p, and
``pvalue = #{members with min-p ≤ R's}/(n_null + 1)`` (ties in min-p broken by Fisher's
−Σ log p over the components, see ``_combined``). Under H0 (R Haar, independent of the null
sample) all n_null + 1 members are exchangeable, so every p-value here is exactly valid
(P(p ≤ α) ≤ α), ties included.

Null samples are cached per (d, n_null, seed, n_powers, fixed_tol) as npz under
``artifact_dir("haar_null", {...})``, so many matrices of one d share one null.

Heavy linear algebra runs through ``torch.linalg`` on the CPU (it honours
``torch.set_num_threads``; numpy's threaded OpenBLAS degrades badly on a busy machine).
Random numbers come from a seeded ``numpy.random.Generator``: results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.cache import atomic_save_npz, cached_entry, load_npz
from polyrot_utils.core.progress import report
from polyrot_utils.core.validate import as_array

__all__ = [
    "COMPONENTS",
    "HaarTestResult",
    "PaperKSResult",
    "PooledHaarResult",
    "abs_eigenangles",
    "block_diagonal_rotation",
    "block_identity_rotation",
    "check_orthogonal",
    "default_alternatives",
    "eigenangle_cdf",
    "eigenangle_density",
    "eigenangles",
    "expected_frobenius_distance",
    "frobenius_ratio",
    "givens_product",
    "haar_test",
    "haar_test_pooled",
    "matrix_features",
    "near_identity_rotation",
    "null_features",
    "paper_haar_pool",
    "paper_ks_test",
    "random_signed_permutation",
    "sample_haar",
    "size_and_power",
]

COMPONENTS = ("ks", "kurtosis", "max_entry", "traces", "fixed_dim")
_SIDES = {
    "ks": "upper",
    "kurtosis": "two-sided",
    "max_entry": "upper",
    "traces": "upper",
    "fixed_dim": "upper",
}
_NULL_VERSION = 1


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError(
            "rng must be a numpy Generator or an integer seed (results must be reproducible)"
        )
    return np.random.default_rng(rng)


def _check_d(d: Any, minimum: int = 2) -> int:
    if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < minimum:
        raise ValueError(f"d must be an integer >= {minimum}, got {d!r}")
    return int(d)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def sample_haar(
    d: int,
    size: int | None = None,
    *,
    rng: np.random.Generator | int | None = 0,
    special: bool = True,
) -> np.ndarray:
    """Haar-random orthogonal matrices: ``(d, d)``, or ``(size, d, d)`` when ``size`` is given.

    QR of a Gaussian matrix with the sign fix Q ← Q·diag(sign(diag R)) gives Haar O(d)
    (Mezzadri 2007); for SO(d) (``special=True``) the first column is negated when det = −1,
    a bijection of the two cosets that keeps left-invariance, hence Haar SO(d).
    ``rng``: a ``numpy.random.Generator`` or an integer seed.
    """
    d = _check_d(d, 1)
    g = _rng(rng)
    m = 1 if size is None else int(size)
    if m < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    z = torch.from_numpy(g.standard_normal((m, d, d)))
    q, r = torch.linalg.qr(z)
    s = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    s[s == 0] = 1.0
    q = q * s[:, None, :]
    if special:
        sign, _ = torch.linalg.slogdet(q)
        q[:, :, 0] *= sign[:, None]
    out = q.numpy()
    return out[0] if size is None else out


# --------------------------------------------------------------------------------------------
# eigenangles and the one-angle law
# --------------------------------------------------------------------------------------------


def _as_stack(R: Any, name: str = "R") -> np.ndarray:
    """``R`` as float64 numpy: one square ``(d, d)`` matrix or a ``(m, d, d)`` stack, d >= 2."""
    return as_array(
        R,
        name,
        ndim=(2, 3),
        square=True,
        min_size=2,
        shape="a square (d, d) matrix or a (m, d, d) stack",
    )


def _sym_cos(stack: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of (R + Rᵀ)/2 for a (m, d, d) stack: Re λ of every eigenvalue."""
    t = torch.from_numpy(np.ascontiguousarray(stack))
    s = 0.5 * (t + t.transpose(-1, -2))
    return np.clip(torch.linalg.eigvalsh(s).numpy(), -1.0, 1.0)


def _pair_angles_from_cos(c: np.ndarray, d: int) -> np.ndarray:
    """One angle per conjugate pair from ascending cosines ``(m,
    d)`` of SO(d) matrices → ``(m, N)`` ascending.
    """
    if d % 2 == 1:
        c = c[:, :-1]  # the forced eigenvalue 1 is (numerically) the largest cosine
    paired = 0.5 * (c[:, 0::2] + c[:, 1::2])
    return np.arccos(paired)[:, ::-1].copy()  # cos descending → angles ascending


def check_orthogonal(
    R: Any, name: str = "R", atol: float = 1e-4, special: bool = True
) -> np.ndarray:
    """Return ``R`` as float64 numpy after checking RᵀR ≈ I (max-abs error ≤ ``atol``) and,
    when ``special``, det R = +1. Raises ``ValueError`` naming ``name`` otherwise."""
    a = _as_stack(R, name)
    stack = a[None] if a.ndim == 2 else a
    d = stack.shape[-1]
    t = torch.from_numpy(np.ascontiguousarray(stack))
    err = (t.transpose(-1, -2) @ t - torch.eye(d, dtype=torch.float64)).abs().amax(dim=(-1, -2))
    worst = float(err.max()) if len(err) else 0.0
    if worst > atol:
        raise ValueError(f"{name} is not orthogonal: max |RᵀR − I| = {worst:.3g} > atol = {atol:g}")
    if special and len(stack):
        sign, _ = torch.linalg.slogdet(t)
        if bool((sign < 0).any()):
            raise ValueError(
                f"{name} has determinant −1 (it is in O(d) but not SO(d)); fit with special=True, "
                f"or use paper_ks_test for O(d) fits"
            )
    return a


def eigenangles(R: Any, *, atol: float = 1e-4) -> np.ndarray:
    """Eigenangles of R ∈ SO(d) in [0, π], one per conjugate pair: ``(N,)`` ascending, N = ⌊d/2⌋.

    The forced eigenvalue 1 of odd d is dropped; repeated ±1 eigenvalues (e.g. permutations)
    are paired correctly (see the module docstring). A ``(m, d, d)`` stack gives ``(m, N)``.
    """
    a = check_orthogonal(R, "R", atol=atol, special=True)
    stack = a[None] if a.ndim == 2 else a
    out = _pair_angles_from_cos(_sym_cos(stack), stack.shape[-1])
    return out[0] if a.ndim == 2 else out


def abs_eigenangles(R: Any, *, atol: float = 1e-4) -> np.ndarray:
    """|arg λ| ∈ [0, π] for *all* d eigenvalues λ of an orthogonal R (O(d) allowed): ``(d,)``
    ascending, each conjugate pair counted twice — the paper's convention."""
    a = check_orthogonal(R, "R", atol=atol, special=False)
    stack = a[None] if a.ndim == 2 else a
    out = np.arccos(_sym_cos(stack))[:, ::-1].copy()
    return out[0] if a.ndim == 2 else out


def eigenangle_density(theta: Any, d: int) -> np.ndarray:
    """One-angle marginal density ρ(θ) on [0, π] of Haar SO(d) (zero outside), evaluated
    stably as a cosine sum (no division by sin θ)."""
    d = _check_d(d)
    th = np.asarray(theta, dtype=np.float64)
    n = d // 2
    if d % 2 == 0:
        k = np.arange(1, n)  # sin((2N−1)θ)/sinθ = 1 + 2 Σ_{k=1}^{N−1} cos(2kθ)
        kern = (
            1.0 + 2.0 * np.cos(np.multiply.outer(th, 2 * k)).sum(-1) if n > 1 else np.ones_like(th)
        )
        rho = ((2 * n - 1) + kern) / (2 * np.pi * n)
    else:
        k = np.arange(1, n + 1)  # sin(2Nθ)/sinθ = 2 Σ_{k=1}^{N} cos((2k−1)θ)
        kern = 2.0 * np.cos(np.multiply.outer(th, 2 * k - 1)).sum(-1)
        rho = (2 * n - kern) / (2 * np.pi * n)
    return np.where((th >= 0) & (th <= np.pi), rho, 0.0)


def eigenangle_cdf(theta: Any, d: int) -> np.ndarray:
    """Closed-form CDF of the one-angle marginal on [0, π] (0 below, 1 above)."""
    d = _check_d(d)
    th = np.clip(np.asarray(theta, dtype=np.float64), 0.0, np.pi)
    n = d // 2
    if d % 2 == 0:
        k = np.arange(1, n)
        s = (np.sin(np.multiply.outer(th, 2 * k)) / k).sum(-1) if n > 1 else np.zeros_like(th)
        f = (2 * n * th + s) / (2 * np.pi * n)
    else:
        k = np.arange(1, n + 1)
        s = (np.sin(np.multiply.outer(th, 2 * k - 1)) / (2 * k - 1)).sum(-1)
        f = (2 * n * th - 2.0 * s) / (2 * np.pi * n)
    return np.clip(f, 0.0, 1.0)


def frobenius_ratio(R: Any) -> float:
    """‖R − I‖_F / √(2d): ≈ 1 for Haar SO(d) — and for any orthogonal matrix with trace ≈ 0."""
    a = _as_stack(R)
    if a.ndim != 2:
        raise ValueError(f"R must be a single (d, d) matrix, got shape {a.shape}")
    d = a.shape[0]
    return float(np.linalg.norm(a - np.eye(d)) / math.sqrt(2 * d))


def expected_frobenius_distance(
    d: int, method: str = "approx", n: int = 2000, seed: int = 0
) -> float:
    """E‖R − I‖_F for Haar SO(d).

    The second moment is exact: E‖R − I‖²_F = 2d. The first moment:

    - ``method="approx"``: exact for d = 2 (4√2/π) and d = 3 (16√2/(3π)), from
      ‖R − I‖_F = 2√2 sin(θ/2) and the one-angle law; for d ≥ 4 the expansion of
      √(2d − 2 tr R) = √(2d)·√(1 − u), u = tr R/d, to fourth order, using that the first four
      moments of tr R under Haar SO(d), d ≥ 4, are those of N(0, 1) (Diaconis–Shahshahani):
      √(2d)·(1 − 1/(8d²) − 15/(128d⁴)). Checked against Monte Carlo in the tests (≤ 3e-4
      relative at d = 4).
    - ``method="mc"``: the Monte-Carlo mean over ``n`` Haar samples (seeded).
    """
    d = _check_d(d)
    if method == "approx":
        if d == 2:
            return 4 * math.sqrt(2) / math.pi
        if d == 3:
            return 16 * math.sqrt(2) / (3 * math.pi)
        return math.sqrt(2 * d) * (1.0 - 1.0 / (8.0 * d * d) - 15.0 / (128.0 * d**4))
    if method == "mc":
        g = np.random.default_rng(seed)
        tot, done = 0.0, 0
        while done < n:
            m = min(_chunk(d), n - done)
            qs = sample_haar(d, m, rng=g)
            tot += float(np.linalg.norm(qs - np.eye(d), axis=(1, 2)).sum())
            done += m
        return tot / n
    raise ValueError(f"method must be 'approx' or 'mc', got {method!r}")


# --------------------------------------------------------------------------------------------
# per-matrix statistics
# --------------------------------------------------------------------------------------------


def _chunk(d: int) -> int:
    return max(1, min(256, (1 << 22) // (d * d)))


def _ks_stat(angles: np.ndarray, d: int) -> np.ndarray:
    """One-sample KS distance of each row of sorted ``angles`` ``(m, N)`` from the one-angle CDF."""
    _m, n = angles.shape
    f = eigenangle_cdf(angles, d)
    i = np.arange(1, n + 1)
    return np.maximum((i / n - f).max(1), (f - (i - 1) / n).max(1))


def _features_stack(stack: np.ndarray, n_powers: int, fixed_tol: float) -> dict[str, np.ndarray]:
    d = stack.shape[-1]
    c = _sym_cos(stack)  # (m, d) ascending
    theta_all = np.arccos(c)  # |arg λ| of every eigenvalue
    pair = _pair_angles_from_cos(c, d)
    k = np.arange(1, n_powers + 1)
    traces = np.cos(theta_all[:, :, None] * k[None, None, :]).sum(1)  # tr R^k = Σ_λ cos(k|arg λ|)
    sq = stack * stack
    sumsq = sq.sum((1, 2))
    tr = np.trace(stack, axis1=1, axis2=2)
    return {
        "ks": _ks_stat(pair, d),
        "kurtosis": (sq * sq).sum((1, 2)),
        "max_entry": np.sqrt(d * sq.max((1, 2))),
        "traces": traces,
        "fixed_dim": (theta_all <= fixed_tol).sum(1).astype(np.float64),
        "trace": tr,
        # ‖R − I‖²_F = ‖R‖²_F − 2 tr R + d
        "frobenius_ratio": np.sqrt(np.maximum(sumsq - 2 * tr + d, 0.0) / (2 * d)),
    }


def matrix_features(R: Any, n_powers: int = 8, fixed_tol: float = 1e-5) -> dict[str, np.ndarray]:
    """Statistics of one SO(d) matrix (or a ``(m, d, d)`` stack): arrays keyed like
    :data:`COMPONENTS` plus ``trace`` and ``frobenius_ratio``; ``traces`` is ``(m, n_powers)``."""
    a = _as_stack(R)
    stack = a[None] if a.ndim == 2 else a
    out: dict[str, list[np.ndarray]] = {}
    step = _chunk(stack.shape[-1])
    for i in range(0, len(stack), step):
        for key, v in _features_stack(stack[i : i + step], n_powers, fixed_tol).items():
            out.setdefault(key, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def _haar_features(
    d: int, n: int, rng: np.random.Generator, n_powers: int, fixed_tol: float
) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < n:
        m = min(_chunk(d), n - done)
        for key, v in _features_stack(sample_haar(d, m, rng=rng), n_powers, fixed_tol).items():
            out.setdefault(key, []).append(v)
        done += m
    return {k: np.concatenate(v) for k, v in out.items()}


def null_features(
    d: int,
    n_null: int = 500,
    seed: int = 0,
    n_powers: int = 8,
    fixed_tol: float = 1e-5,
    cache: bool = True,
) -> dict[str, np.ndarray]:
    """Component statistics of ``n_null`` Haar SO(d) samples (see :func:`matrix_features`).

    Seeded by ``(seed, d)``; cached as ``features.npz`` under
    ``artifact_dir("haar_null", {"d", "n_null", "seed", "n_powers", "fixed_tol", "version"})``.
    """

    d = _check_d(d)
    if n_null < 1:
        raise ValueError(f"n_null must be >= 1, got {n_null}")
    cfg = {
        "d": d,
        "n_null": int(n_null),
        "seed": int(seed),
        "n_powers": int(n_powers),
        "fixed_tol": float(fixed_tol),
        "version": _NULL_VERSION,
    }
    if not cache:
        return _haar_features(
            d, n_null, np.random.default_rng([int(seed), d, 7]), n_powers, fixed_tol
        )
    built: dict[str, np.ndarray] = {}

    def build(entry: Path) -> None:
        report(f"Haar null at d = {d}: {n_null} samples")
        built.update(
            _haar_features(d, n_null, np.random.default_rng([int(seed), d, 7]), n_powers, fixed_tol)
        )
        atomic_save_npz(entry / "features.npz", **built)

    # manifest-checked; a damaged features.npz is reported and recomputed (same seed, same numbers)
    entry = cached_entry(
        "haar_null",
        cfg,
        build,
        ("features.npz",),
        legacy_check=lambda e: load_npz(e / "features.npz"),
    )
    return built if built else load_npz(entry / "features.npz")


# --------------------------------------------------------------------------------------------
# calibration machinery
# --------------------------------------------------------------------------------------------


def _rank_p(s: np.ndarray, side: str) -> np.ndarray:
    """Monte-Carlo p-value of every member of an exchangeable set ``s`` (m,) against the set."""
    m = len(s)
    srt = np.sort(s)
    upper = (m - np.searchsorted(srt, s, side="left")) / m  # #{s_j >= s_i}/m
    if side == "upper":
        return upper
    lower = np.searchsorted(srt, s, side="right") / m  # #{s_j <= s_i}/m
    if side == "lower":
        return lower
    return np.minimum(1.0, 2.0 * np.minimum(upper, lower))


def _trace_stat(traces: np.ndarray) -> np.ndarray:
    """Σ_k (t_k − μ_k)²/σ_k² with μ, σ from the set itself (symmetric in its members)."""
    mu = traces.mean(0)
    sd = traces.std(0, ddof=1)
    sd[sd == 0] = 1.0
    return (((traces - mu) / sd) ** 2).sum(1)


def _component_pvalues(feats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Component p-values of every member of the exchangeable set ``feats`` (arrays of length m)."""
    out = {}
    for comp in COMPONENTS:
        s = (
            _trace_stat(feats["traces"])
            if comp == "traces"
            else np.asarray(feats[comp], dtype=np.float64)
        )
        out[comp] = _rank_p(s, _SIDES[comp])
    return out


def _combined(pvals: Mapping[str, np.ndarray], idx: np.ndarray | None = None) -> np.ndarray:
    """Calibrated min-p of members ``idx`` (default all): #{j: key_j at least as extreme as
    key_i}/m.

    The key is (min-p, then −Σ_c log p_c to break ties): Monte-Carlo p-values are discrete, and
    without the tie-break every member whose most extreme component sits at the floor 1/m
    would tie, capping the verdict's resolution at ~(#components)/m.
    """
    stack = np.stack([pvals[c] for c in COMPONENTS])
    minp = stack.min(0)
    fisher = -np.log(stack).sum(0)
    sel = np.arange(len(minp)) if idx is None else np.asarray(idx)
    a, f = minp[sel, None], fisher[sel, None]
    extreme = (minp[None, :] < a) | ((minp[None, :] == a) & (fisher[None, :] >= f))
    return extreme.sum(1) / len(minp)


def _concat(obs: Mapping[str, np.ndarray], null: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(obs[k]), np.asarray(null[k])]) for k in COMPONENTS}


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------


@dataclass
class HaarTestResult:
    """Outcome of :func:`haar_test` on one matrix. p-values are calibrated by Monte Carlo against
    ``n_null`` Haar SO(d) samples (smallest possible: 1/(n_null + 1)), except ``ks_pvalue_iid``."""

    d: int
    n_null: int
    frobenius_ratio: float
    trace: float
    ks_statistic: float
    ks_pvalue_iid: float
    ks_pvalue_calibrated: float
    kurtosis: float
    kurtosis_pvalue: float
    max_entry: float
    max_entry_pvalue: float
    trace_powers: list[float]
    trace_statistic: float
    trace_pvalue: float
    fixed_dim: int
    fixed_dim_pvalue: float
    pvalue: float
    component_pvalues: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result_from(
    obs: Mapping[str, np.ndarray], null: Mapping[str, np.ndarray], d: int
) -> HaarTestResult:
    from scipy.stats import kstwo

    pooled = _concat(obs, null)
    pv = _component_pvalues(pooled)
    comb = _combined(pv, np.array([0]))
    n_null = len(null["ks"])
    ks = float(obs["ks"][0])
    return HaarTestResult(
        d=d,
        n_null=n_null,
        frobenius_ratio=float(obs["frobenius_ratio"][0]),
        trace=float(obs["trace"][0]),
        ks_statistic=ks,
        ks_pvalue_iid=float(kstwo.sf(ks, d // 2)),
        ks_pvalue_calibrated=float(pv["ks"][0]),
        kurtosis=float(obs["kurtosis"][0]),
        kurtosis_pvalue=float(pv["kurtosis"][0]),
        max_entry=float(obs["max_entry"][0]),
        max_entry_pvalue=float(pv["max_entry"][0]),
        trace_powers=[float(x) for x in obs["traces"][0]],
        trace_statistic=float(_trace_stat(pooled["traces"])[0]),
        trace_pvalue=float(pv["traces"][0]),
        fixed_dim=int(obs["fixed_dim"][0]),
        fixed_dim_pvalue=float(pv["fixed_dim"][0]),
        pvalue=float(comb[0]),
        component_pvalues={c: float(pv[c][0]) for c in COMPONENTS},
    )


def haar_test(
    R: Any,
    *,
    n_null: int = 500,
    seed: int = 0,
    n_powers: int = 8,
    fixed_tol: float = 1e-5,
    orth_tol: float = 1e-4,
    cache: bool = True,
    null: Mapping[str, np.ndarray] | None = None,
) -> HaarTestResult:
    """Is ``R`` (one ``(d, d)`` matrix in SO(d)) a draw from Haar SO(d)? See the module docstring.

    Args:
        R: the rotation (numpy or torch), orthogonal to ``orth_tol`` (max-abs of RᵀR − I) with
           det +1; otherwise ``ValueError`` naming ``R``.
        n_null: Haar samples of the same d for calibration (the smallest p is 1/(n_null+1)).
        seed: seeds the null sample (with d), which is cached (``cache=False`` to recompute).
        n_powers: K, the number of trace powers tr R^k, k = 1..K.
        fixed_tol: an eigenvalue counts as fixed (= 1) when its angle is ≤ this.
        null: precomputed :func:`null_features` to use instead (must match d and settings).

    Returns a :class:`HaarTestResult`; ``pvalue`` is the calibrated min-p verdict.

    A Haar draw is not rejected; a signed permutation (in SO(d)) is, at the smallest p the null
    allows, ``1 / (n_null + 1)``:

    >>> import numpy as np
    >>> R = sample_haar(8, rng=np.random.default_rng(0))
    >>> haar_test(R, n_null=199, seed=0, cache=False).pvalue
    0.84
    >>> P = np.eye(8)[np.random.default_rng(1).permutation(8)]
    >>> P[0] *= np.sign(np.linalg.det(P))            # make det P = +1
    >>> res = haar_test(P, n_null=199, seed=0, cache=False)
    >>> res.pvalue, res.component_pvalues["max_entry"], res.fixed_dim
    (0.005, 0.005, 2)
    """
    a = check_orthogonal(R, "R", atol=orth_tol, special=True)
    if a.ndim != 2:
        raise ValueError(
            f"R must be a single (d, d) matrix, got shape {a.shape}; use haar_test_pooled for "
            "several"
        )
    d = a.shape[0]
    if null is None:
        null = null_features(d, n_null, seed, n_powers, fixed_tol, cache=cache)
    elif np.asarray(null["traces"]).shape[1] != n_powers:
        raise ValueError("null was computed with a different n_powers")
    obs = matrix_features(a, n_powers, fixed_tol)
    return _result_from(obs, null, d)


@dataclass
class PooledHaarResult:
    """Pooled test over several matrices: Fisher's −2Σlog p of the per-matrix calibrated p's,
    with its null simulated directly (``pvalue``), per component and combined."""

    n_matrices: int
    dims: list[int]
    per_matrix: list[HaarTestResult]
    fisher_statistic: float
    pvalue: float
    component_pvalues: dict[str, float]
    n_resample: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out


def haar_test_pooled(
    Rs: Sequence[Any],
    *,
    n_null: int = 500,
    seed: int = 0,
    n_powers: int = 8,
    fixed_tol: float = 1e-5,
    orth_tol: float = 1e-4,
    n_resample: int = 5000,
    cache: bool = True,
) -> PooledHaarResult:
    """Pooled test that *all* of ``Rs`` (e.g. one rotation per model pair) are Haar.

    Each matrix gets its calibrated per-matrix p-values (:func:`haar_test`, null per d). The
    pooled statistic is Fisher's F = −2 Σ log p_i — but since the p_i are discrete Monte-Carlo
    p-values that share one null sample, F is *not* χ²_{2m} under H0. Its null is simulated
    directly: each null sample's leave-one-out p-value (the same rank rule applied within the
    null set) stands in for an observed p; ``n_resample`` times, m of them (per d, without
    replacement) are drawn and F recomputed. ``pvalue = (1 + #{F_null ≥ F})/(1 + n_resample)``.
    Done for the combined verdict and for each component. Requires ``n_null`` ≥ the number of
    matrices of any one d. Approximately calibrated (the sharing of one null set by the
    observed p's is mimicked, not reproduced exactly); its size is measured in the tests.
    """
    if isinstance(Rs, np.ndarray) and Rs.ndim == 3:
        Rs = list(Rs)
    if not isinstance(Rs, Sequence) or len(Rs) == 0:
        raise ValueError("Rs must be a non-empty sequence of (d, d) rotation matrices")
    mats = [check_orthogonal(r, f"Rs[{i}]", atol=orth_tol, special=True) for i, r in enumerate(Rs)]
    for i, m in enumerate(mats):
        if m.ndim != 2:
            raise ValueError(f"Rs[{i}] must be a single (d, d) matrix, got shape {m.shape}")
    dims = [m.shape[0] for m in mats]
    per, loo, nulls = [], {}, {}
    for d in sorted(set(dims)):
        if dims.count(d) > n_null:
            raise ValueError(
                f"n_null = {n_null} is smaller than the {dims.count(d)} matrices of d = {d}"
            )
        nulls[d] = null_features(d, n_null, seed, n_powers, fixed_tol, cache=cache)
        pv = _component_pvalues(nulls[d])
        pv["combined"] = _combined(pv)
        loo[d] = pv
    for m in mats:
        per.append(
            haar_test(
                m, n_powers=n_powers, fixed_tol=fixed_tol, orth_tol=orth_tol, null=nulls[m.shape[0]]
            )
        )
    g = np.random.default_rng([int(seed), 99])
    keys = [*list(COMPONENTS), "combined"]
    obs_p = {
        k: np.array([r.pvalue if k == "combined" else r.component_pvalues[k] for r in per])
        for k in keys
    }
    f_obs = {k: float(-2 * np.log(obs_p[k]).sum()) for k in keys}
    f_null = {k: np.zeros(n_resample) for k in keys}
    for d in sorted(set(dims)):
        cnt = dims.count(d)
        idx = np.argsort(g.random((n_resample, n_null)), axis=1)[:, :cnt]  # without replacement
        for k in keys:
            f_null[k] += -2 * np.log(loo[d][k][idx]).sum(1)
    pvals = {k: float((1 + (f_null[k] >= f_obs[k] - 1e-12).sum()) / (1 + n_resample)) for k in keys}
    return PooledHaarResult(
        n_matrices=len(mats),
        dims=dims,
        per_matrix=per,
        fisher_statistic=f_obs["combined"],
        pvalue=pvals["combined"],
        component_pvalues={k: pvals[k] for k in COMPONENTS},
        n_resample=n_resample,
    )


@dataclass
class PaperKSResult:
    """The paper's test: two-sample KS of pooled |eigenangles| (pairs counted twice) of the
    given matrices against those of as many Haar SO(d) samples (seeded)."""

    statistic: float
    pvalue: float
    n_angles: int
    n_haar_angles: int


def paper_haar_pool(d: int, n: int = 10, seed: int = 31) -> np.ndarray:
    """The paper's fixed Haar reference pool (eigenvalue_spectrum.py ``main``): ``n`` matrices
    from ``np.random.default_rng(seed)``, each the Q of ``np.linalg.qr`` of a standard normal
    d×d matrix with the Mezzadri sign fix ``Q * sign(diag(R))`` — Haar on **O(d)**, not SO(d)
    (half have det −1) — and the pooled ``|arg λ|`` of all their d eigenvalues each
    (``n·d`` angles; 10 × 512 = 5,120 in the paper)."""
    d = _check_d(d)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = np.random.default_rng(int(seed))
    pool = []
    for _ in range(int(n)):
        q, r = np.linalg.qr(g.standard_normal((d, d)))
        q = q * np.sign(np.diag(r))
        pool.append(np.abs(np.angle(np.linalg.eigvals(q))))
    return np.concatenate(pool)


def paper_ks_test(
    Rs: Sequence[Any] | Any, seed: int = 31, n_haar: int = 10, orth_tol: float = 1e-4
) -> PaperKSResult:
    """Reproduce the paper's pooled Haar test exactly (for comparison; it has little power).

    As eigenvalue_spectrum.py does: pools ``|arg λ|`` over all d eigenvalues of every matrix in
    ``Rs`` (``np.abs(np.angle(np.linalg.eigvals(R)))``: each conjugate pair counted twice; the
    fits are O(d) Procrustes ``U Vᵀ`` with no determinant fix, so det −1 is allowed) and runs
    ``scipy.stats.ks_2samp`` against :func:`paper_haar_pool` — ``n_haar`` QR-with-sign-fix
    matrices (Haar on O(d)) from ``default_rng(seed)``; the paper's pool is 10 matrices, seed 31.
    The paper runs it on Pythia only (56 matrices at d = 512: 28,672 angles vs 5,120).
    """
    from scipy.stats import ks_2samp

    if isinstance(Rs, (np.ndarray, torch.Tensor)) and np.ndim(Rs) == 2:
        Rs = [Rs]
    mats = [check_orthogonal(r, f"Rs[{i}]", atol=orth_tol, special=False) for i, r in enumerate(Rs)]
    if not mats:
        raise ValueError("Rs must hold at least one matrix")
    obs = np.concatenate([np.abs(np.angle(np.linalg.eigvals(m))).ravel() for m in mats])
    dims = sorted({m.shape[-1] for m in mats})
    ref = np.concatenate([paper_haar_pool(d, n=n_haar, seed=seed) for d in dims])
    res = ks_2samp(obs, ref)
    return PaperKSResult(float(res.statistic), float(res.pvalue), len(obs), len(ref))


# --------------------------------------------------------------------------------------------
# alternatives for power studies
# --------------------------------------------------------------------------------------------


def random_signed_permutation(
    d: int, rng: np.random.Generator | int, special: bool = True
) -> np.ndarray:
    """A uniformly random signed permutation matrix; with ``special`` one sign is flipped if
    needed so that det = +1 (so it is in SO(d), like the null)."""
    d, g = _check_d(d), _rng(rng)
    perm = g.permutation(d)
    signs = g.choice([-1.0, 1.0], size=d)
    if special and _perm_parity(perm) * np.prod(signs) < 0:  # det = sign(π)·Π signs
        signs[0] = -signs[0]
    p = np.zeros((d, d))
    p[np.arange(d), perm] = signs
    return p


def _perm_parity(perm: np.ndarray) -> int:
    """+1 for an even permutation, −1 for odd: (−1)^(d − #cycles)."""
    seen = np.zeros(len(perm), dtype=bool)
    cycles = 0
    for i in range(len(perm)):
        if not seen[i]:
            cycles += 1
            j = i
            while not seen[j]:
                seen[j] = True
                j = perm[j]
    return 1 if (len(perm) - cycles) % 2 == 0 else -1


def block_identity_rotation(
    d: int, k: int, rng: np.random.Generator | int, basis: str = "random"
) -> np.ndarray:
    """Haar SO(k) on a k-dim subspace, identity on its complement (a (d−k)-dim fixed subspace).

    ``basis="coordinate"``: the first k coordinates (visible in the entries too);
    ``basis="random"``: a Haar-random subspace (Q B Qᵀ, only the spectrum shows it).
    """
    d, g = _check_d(d), _rng(rng)
    if not 2 <= k <= d:
        raise ValueError(f"k must be in [2, d], got {k}")
    b = np.eye(d)
    b[:k, :k] = sample_haar(k, rng=g)
    if basis == "coordinate":
        return b
    if basis == "random":
        q = sample_haar(d, rng=g, special=False)
        return q @ b @ q.T
    raise ValueError(f"basis must be 'random' or 'coordinate', got {basis!r}")


def block_diagonal_rotation(d: int, n_blocks: int, rng: np.random.Generator | int) -> np.ndarray:
    """Block-diagonal rotation: independent Haar SO(d_b) blocks on ``n_blocks`` consecutive
    coordinate blocks of (nearly) equal size. Every block is an *invariant* (not fixed)
    subspace: the spectrum looks Haar-like and the trace is ≈ 0, but most entries are exactly 0."""
    d, g = _check_d(d), _rng(rng)
    sizes = [len(a) for a in np.array_split(np.arange(d), int(n_blocks))]
    if int(n_blocks) < 1 or min(sizes) < 2:
        raise ValueError(f"n_blocks must be in [1, d // 2], got {n_blocks} for d = {d}")
    r = np.zeros((d, d))
    start = 0
    for size in sizes:
        r[start : start + size, start : start + size] = sample_haar(size, rng=g)
        start += size
    return r


def near_identity_rotation(d: int, eps: float, rng: np.random.Generator | int) -> np.ndarray:
    """exp(ε A), A skew-symmetric with A = (G − Gᵀ)/√(2d), G Gaussian (so A's spectrum is
    ~[−2i, 2i]: the angles are ≲ 2ε)."""
    d, g = _check_d(d), _rng(rng)
    z = g.standard_normal((d, d))
    a = (z - z.T) / math.sqrt(2 * d)
    return torch.linalg.matrix_exp(torch.from_numpy(eps * a)).numpy()


def givens_product(d: int, m: int, rng: np.random.Generator | int) -> np.ndarray:
    """Product of ``m`` Givens rotations in random coordinate planes with uniform angles."""
    d, g = _check_d(d), _rng(rng)
    r = np.eye(d)
    for _ in range(int(m)):
        i, j = g.choice(d, size=2, replace=False)
        th = g.uniform(0, 2 * np.pi)
        c, s = math.cos(th), math.sin(th)
        ri, rj = r[:, i].copy(), r[:, j].copy()
        r[:, i], r[:, j] = c * ri - s * rj, s * ri + c * rj
    return r


def default_alternatives(d: int) -> dict[str, Callable[[np.random.Generator], np.ndarray]]:
    """The named non-Haar alternatives of chapter 02 (*Is R Haar?*), as ``name → generator(rng) ->
    (d, d)``, all in SO(d):

    - ``signed_permutation``: a uniformly random signed permutation (det fixed to +1);
    - ``two_haar_blocks``: diag(Haar SO(d/2), Haar SO(d/2)) — two invariant halves;
    - ``half_fixed``: Haar on a random d/2-dim subspace, identity on its complement;
    - ``fixed_8``: identity on a random 8-dim subspace, Haar on the rest;
    - ``near_identity_eps0.5``: exp(0.5·A), A skew Gaussian (angles ≲ 1);
    - ``givens_d``: a product of d Givens rotations in random coordinate planes.
    """
    d = _check_d(d)
    alts = {
        "signed_permutation": lambda g: random_signed_permutation(d, g),
        "two_haar_blocks": lambda g: block_diagonal_rotation(d, 2, g),
        "half_fixed": lambda g: block_identity_rotation(d, max(2, d // 2), g, basis="random"),
        "fixed_8": lambda g: block_identity_rotation(d, d - 8, g, basis="random"),
        "near_identity_eps0.5": lambda g: near_identity_rotation(d, 0.5, g),
        "givens_d": lambda g: givens_product(d, d, g),
    }
    if d < 4:
        alts.pop("two_haar_blocks")
    if d < 10:
        alts.pop("fixed_8")
    return alts


# --------------------------------------------------------------------------------------------
# size and power
# --------------------------------------------------------------------------------------------

TESTS = (
    "ks_iid",
    "ks_calibrated",
    "kurtosis",
    "max_entry",
    "traces",
    "fixed_dim",
    "combined",
    "frobenius_0.1pct",
)


def size_and_power(
    d: int,
    alternatives: Mapping[str, Callable[[np.random.Generator], np.ndarray]] | None = None,
    n_trials: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    n_null: int = 500,
    n_powers: int = 8,
    fixed_tol: float = 1e-5,
    cache: bool = True,
) -> dict[str, list]:
    """Measured rejection rates at level ``alpha``: on fresh Haar SO(d) samples (size, row
    ``"haar"``) and on each alternative (power), ``n_trials`` matrices each.

    Returns a table as a dict of lists: ``alternative``, ``d``, ``n_trials``, one column per test
    in :data:`TESTS` (rejection rate), plus ``mean_frobenius_ratio`` and ``mean_kurtosis``.
    ``ks_iid`` is the paper-style iid KS p-value; ``frobenius_0.1pct`` "rejects" when
    |‖R−I‖_F/√(2d) − 1| > 0.001 (the paper's criterion read as a test); the rest are calibrated.
    """
    from scipy.stats import kstwo

    d = _check_d(d)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    alts = dict(default_alternatives(d) if alternatives is None else alternatives)
    null = null_features(d, n_null, seed, n_powers, fixed_tol, cache=cache)
    g = np.random.default_rng([int(seed), d, 11])
    table: dict[str, list] = {"alternative": [], "d": [], "n_trials": []}
    for t in TESTS:
        table[t] = []
    table["mean_frobenius_ratio"] = []
    table["mean_kurtosis"] = []
    sources: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("haar", lambda: sample_haar(d, n_trials, rng=g))
    ]

    def stacked(gen: Callable[[np.random.Generator], np.ndarray]) -> Callable[[], np.ndarray]:
        return lambda: np.stack([gen(g) for _ in range(n_trials)])

    sources += [(name, stacked(gen)) for name, gen in alts.items()]
    for name, make in sources:
        mats = make()
        check_orthogonal(mats, f"alternatives[{name!r}]", atol=1e-6, special=True)
        feats = matrix_features(mats, n_powers, fixed_tol)
        rej = {t: 0 for t in TESTS}
        for i in range(n_trials):
            obs = {k: v[i : i + 1] for k, v in feats.items()}
            pooled = _concat(obs, null)
            pv = _component_pvalues(pooled)
            comb = _combined(pv, np.array([0]))
            rej["ks_iid"] += kstwo.sf(obs["ks"][0], d // 2) <= alpha
            rej["ks_calibrated"] += pv["ks"][0] <= alpha
            for c in ("kurtosis", "max_entry", "traces", "fixed_dim"):
                rej[c] += pv[c][0] <= alpha
            rej["combined"] += comb[0] <= alpha
            rej["frobenius_0.1pct"] += abs(obs["frobenius_ratio"][0] - 1) > 1e-3
        table["alternative"].append(name)
        table["d"].append(d)
        table["n_trials"].append(n_trials)
        for t in TESTS:
            table[t].append(float(rej[t]) / n_trials)
        table["mean_frobenius_ratio"].append(float(feats["frobenius_ratio"].mean()))
        table["mean_kurtosis"].append(float(feats["kurtosis"].mean()))
    return table
