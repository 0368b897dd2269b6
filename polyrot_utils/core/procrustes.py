"""Rotation fitting between two activation spaces, and the baselines it is compared with.

Convention (glossary: *Procrustes*; the whole package uses it): activations are row vectors, a batch
is ``(n, d)``, and every map
sends *source* rows onto *target* rows from the right::

    source @ R ≈ target            (scipy.linalg.orthogonal_procrustes(source, target))

With centring (the default) the fit is done on mean-removed data and the map is affine::

    apply(x) = (x − μ_src) @ R + μ_tgt

Orthogonal Procrustes: with M = X_srcᵀ X_tgt = U Σ Vᵀ (centred unless ``center=False``),
``R = U Vᵀ`` minimises ‖X_src R − X_tgt‖_F over O(d). Over SO(d) (``special=True``, the default)
the last singular direction is flipped when det(U Vᵀ) < 0 (Kabsch).

What lives here:

- :func:`fit_rotation` — one-shot fit from two in-memory batches (float64 accumulation).
- :class:`CrossCovariance` — streaming, mergeable accumulator (batch by batch, across
  processes with ``torch.distributed``), solved once at the end. Memory O(d²).
- :class:`AlignmentMap` and :func:`fit_alignment` — a fitted map with ``.apply(x)``; methods
  ``identity``, ``rotation`` (SO(d)), ``rotation_O`` (O(d)), ``signed_permutation``,
  ``linear`` (least squares, no intercept) and ``affine`` (least squares with intercept,
  i.e. model stitching).
- :func:`alignment_report` — held-out explained variance of the target by the mapped source,
  and the gap to a within-model ceiling.

Sample-size rule (a choice, enforced everywhere a rotation is solved): a rotation needs
``n >= d + 1`` samples when centred and ``n >= d`` when not, i.e. enough for the
cross-covariance to have full rank; below that the optimal R is not unique (any rotation of
the unseen directions fits equally well) and the result would be arbitrary. Pass
``allow_underdetermined=True`` to get one of the optimal solutions anyway. Every fit needs
``n >= 2``.

Inputs may be numpy arrays or torch tensors (any device); results come back as the same kind
(numpy in → numpy out, torch in → torch out on the input's device). Bad input raises
``ValueError`` naming the argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch

from polyrot_utils.core.metrics import explained_variance
from polyrot_utils.core.validate import ArrayLike, as_array, as_tensor, is_numpy_input

__all__ = [
    "METHODS",
    "AlignmentMap",
    "AlignmentReport",
    "CrossCovariance",
    "alignment_report",
    "fit_alignment",
    "fit_rotation",
    "min_samples",
    "nearest_orthogonal",
]

METHODS = ("identity", "rotation", "rotation_O", "signed_permutation", "linear", "affine")


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


_ROWS = "(n, d) (rows are samples)"


def _rows(x: Any, name: str, finite: bool = True) -> torch.Tensor:
    """``x`` checked as a real ``(n, d)`` matrix of row samples (see :mod:`.validate`)."""
    return as_tensor(x, name, ndim=2, shape=_ROWS, finite=finite)


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.shape != target.shape:
        raise ValueError(
            f"source and target must have the same shape (n, d) (paired rows, same d); got source "
            f"{tuple(source.shape)} and target {tuple(target.shape)}"
        )
    if source.shape[0] < 2:
        raise ValueError(f"source needs at least 2 samples (rows), got n = {source.shape[0]}")


def min_samples(d: int, center: bool = True) -> int:
    """Fewest rows that determine a rotation uniquely: ``d + 1`` when centred, else ``d``."""
    return max(2, d + (1 if center else 0))


def _check_enough(
    n: int, d: int, center: bool, allow_underdetermined: bool, name: str = "source"
) -> None:
    need = min_samples(d, center)
    if n < need and not allow_underdetermined:
        raise ValueError(
            f"{name} has n = {n} samples for d = {d}; a {'centred ' if center else ''}rotation "
            "needs "
            f"n >= {need} to be determined (pass allow_underdetermined=True to accept one of many "
            "optimal fits)"
        )


def _out(t: torch.Tensor, was_numpy: bool, dtype: torch.dtype, device: torch.device) -> ArrayLike:
    if was_numpy:
        return t.detach().cpu().numpy().astype(_np_dtype(dtype), copy=False)
    return t.to(device=device, dtype=dtype)


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


def _result_dtype(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    dt = torch.promote_types(a.dtype, b.dtype)
    return dt if dt.is_floating_point else torch.float64


def _polar(m: torch.Tensor, special: bool) -> torch.Tensor:
    """U Vᵀ from M = U Σ Vᵀ (float64), with the Kabsch fix when ``special``."""
    u, _, vh = torch.linalg.svd(m.to(torch.float64), full_matrices=False)
    r = u @ vh
    if special and float(torch.linalg.det(r)) < 0:
        u = u.clone()
        u[:, -1] = -u[:, -1]
        r = u @ vh
    return r


# Without torch and numpy installed (a lint-only environment, ignore_missing_imports) Tensor
# and ndarray are Any and these overloads look overlapping; with them installed they are
# distinct, hence `unused-ignore` alongside (see pyproject's [tool.mypy]).
@overload
def nearest_orthogonal(m: torch.Tensor, *, special: bool = False) -> torch.Tensor: ...
@overload
def nearest_orthogonal(m: np.ndarray, *, special: bool = False) -> np.ndarray: ...  # type: ignore[overload-cannot-match, unused-ignore]
@overload
def nearest_orthogonal(m: Any, *, special: bool = False) -> ArrayLike: ...  # type: ignore[overload-cannot-match, unused-ignore]


def nearest_orthogonal(m: Any, *, special: bool = False) -> ArrayLike:
    """The orthogonal matrix nearest to ``m`` in Frobenius norm: ``U Vᵀ`` for ``m = U Σ Vᵀ``.

    This is the one nearest-orthogonal solver of the package; every Procrustes fit ends in it
    (:func:`fit_rotation` applies it to the cross-covariance ``X_srcᵀ X_tgt``). Use it to clean a
    nearly orthogonal matrix (a float32 R, a rotation read from a file) before exact algebra.

    Args:
        m: a ``(p, q)`` real matrix; for ``p != q`` the result has orthonormal columns
            (``p > q``) or rows (``p < q``).
        special: square ``m`` only: the nearest matrix in SO(d) (Kabsch: the last singular
            direction is flipped when det(U Vᵀ) < 0) instead of O(d).

    Returns:
        ``(p, q)`` float64, numpy for numpy (or array_like) input, torch on ``m``'s device for
        torch input; computed in float64.

    >>> import numpy as np
    >>> q = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0]
    >>> noisy = q + 1e-4 * np.random.default_rng(1).standard_normal((4, 4))
    >>> bool(np.allclose(nearest_orthogonal(noisy), q, atol=1e-3))
    True
    >>> r = nearest_orthogonal(noisy)
    >>> float(np.abs(r.T @ r - np.eye(4)).max()) < 1e-12
    True
    """
    t = as_tensor(m, "m", ndim=2, shape="(p, q)")
    if special and t.shape[0] != t.shape[1]:
        raise ValueError(f"special=True needs a square m, got shape {tuple(t.shape)}")
    r = _polar(t, special)
    return r.cpu().numpy() if is_numpy_input(m) else r


# --------------------------------------------------------------------------------------------
# one-shot fit
# --------------------------------------------------------------------------------------------


# Without torch and numpy installed (a lint-only environment, ignore_missing_imports) Tensor
# and ndarray are Any and these overloads look overlapping (see nearest_orthogonal).
@overload
def fit_rotation(
    source: torch.Tensor,
    target: Any,
    *,
    special: bool = True,
    center: bool = True,
    allow_underdetermined: bool = False,
) -> torch.Tensor: ...
@overload
def fit_rotation(  # type: ignore[overload-cannot-match, unused-ignore]
    source: np.ndarray,
    target: Any,
    *,
    special: bool = True,
    center: bool = True,
    allow_underdetermined: bool = False,
) -> np.ndarray: ...
@overload
def fit_rotation(  # type: ignore[overload-cannot-match, unused-ignore]
    source: Any,
    target: Any,
    *,
    special: bool = True,
    center: bool = True,
    allow_underdetermined: bool = False,
) -> ArrayLike: ...


def fit_rotation(
    source: Any,
    target: Any,
    *,
    special: bool = True,
    center: bool = True,
    allow_underdetermined: bool = False,
) -> ArrayLike:
    """Orthogonal Procrustes: the R minimising ‖X_src R − X_tgt‖_F (centred unless told not to).

    Args:
        source: ``(n, d)`` source activations (rows are samples).
        target: ``(n, d)`` target activations, row i paired with source row i.
        special: ``True`` → R ∈ SO(d) (Kabsch sign fix); ``False`` → R ∈ O(d), exactly
            ``scipy.linalg.orthogonal_procrustes(source, target)[0]`` when ``center=False``.
        center: remove each side's mean before fitting (the mean is not a rotation's business);
            apply the result as ``(x − μ_src) @ R + μ_tgt`` (see :func:`fit_alignment`).
        allow_underdetermined: accept ``n < d (+1)`` (see the module docstring).

    Returns:
        ``(d, d)`` R with ``source @ R ≈ target``; numpy in → numpy out, torch in → torch out on
        the source's device; dtype is the promoted input dtype (float64 for integer inputs).
        The cross-covariance and SVD are computed in float64 whatever the input dtype.

    A planted rotation (and offset) is recovered exactly, in one shot or streamed batch by batch
    through :class:`CrossCovariance`:

    >>> import numpy as np
    >>> from polyrot_utils.core.haar import sample_haar
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 6))
    >>> R = sample_haar(6, rng=rng)
    >>> Y = X @ R + 3.0
    >>> float(np.abs(fit_rotation(X, Y) - R).max()) < 1e-12
    True
    >>> acc = CrossCovariance()
    >>> for i in range(0, 500, 128):
    ...     _ = acc.update(X[i : i + 128], Y[i : i + 128])
    >>> float(np.abs(acc.rotation().numpy() - R).max()) < 1e-12
    True
    >>> fit = acc.alignment_map()
    >>> round(alignment_report(fit, X, Y).ev, 12)
    1.0
    """
    s, s_np = _rows(source, "source"), is_numpy_input(source)
    t = _rows(target, "target")
    _check_pair(s, t)
    _check_enough(s.shape[0], s.shape[1], center, allow_underdetermined)
    dtype, device = _result_dtype(s, t), s.device
    s64 = s.to(torch.float64)
    t64 = t.to(device=s.device, dtype=torch.float64)
    if center:
        s64 = s64 - s64.mean(0, keepdim=True)
        t64 = t64 - t64.mean(0, keepdim=True)
    r = _polar(s64.T @ t64, special)
    return _out(r, s_np, dtype, device)


# --------------------------------------------------------------------------------------------
# streaming accumulator
# --------------------------------------------------------------------------------------------


class CrossCovariance:
    """Streaming, mergeable accumulator of means and the centred cross-covariance.

    State (float64 torch tensors on ``device``): ``n``; the means ``mean_source`` and
    ``mean_target`` ``(d,)``; the centred co-moment ``comoment = Σ_i (x_i − x̄)ᵀ (y_i − ȳ)``
    ``(d, d)`` (rows index source dimensions, columns target dimensions).

    Each batch is centred on its own mean before its one GEMM (in the input precision, float32 at
    least: float16/bfloat16 are widened, so their sums cannot overflow), the rounding of that mean
    is corrected exactly in float64 (``C_b = (X−m̃)ᵀ(Y−ñ) − r_x r_yᵀ / b`` with
    ``r = Σ(x − m̃)``), and batches are merged in float64 with Chan et al.'s pairwise formula:
    ``C ← C_a + C_b + (n_a n_b / n)(x̄_a − x̄_b)(ȳ_a − ȳ_b)ᵀ``. So large constant offsets cost
    nothing (no cancellation within or across batches) and finite float16 data cannot overflow.
    ``precise_centering`` is accepted for compatibility; centring is now always precise.

    Precision otherwise: for float64 input everything is float64 and :meth:`rotation` equals
    :func:`fit_rotation` on the concatenated data to ~1e-12.

    Usage::

        acc = CrossCovariance()
        for xs, xt in batches:
            acc.update(xs, xt)
        acc.all_reduce()               # optional: sum over a torch.distributed process group
        R = acc.rotation(special=True)  # torch float64 (d, d) on acc.device
    """

    def __init__(
        self,
        d: int | None = None,
        device: str | torch.device | None = None,
        precise_centering: bool = False,
    ):
        self.precise_centering = bool(precise_centering)
        self.d: int | None = None
        self.device = torch.device(device) if device is not None else None
        self.n: int = 0
        # empty until d is known (first batch, merge, or d=...)
        self.mean_source = torch.zeros(0, dtype=torch.float64)
        self.mean_target = torch.zeros(0, dtype=torch.float64)
        self.comoment = torch.zeros(0, 0, dtype=torch.float64)
        if d is not None:
            self._init_state(int(d), self.device or torch.device("cpu"))

    # -- state ------------------------------------------------------------------------------
    def _init_state(self, d: int, device: torch.device) -> None:
        if d < 1:
            raise ValueError(f"d must be a positive integer, got {d}")
        self.d = d
        self.device = device
        self.mean_source = torch.zeros(d, dtype=torch.float64, device=device)
        self.mean_target = torch.zeros(d, dtype=torch.float64, device=device)
        self.comoment = torch.zeros(d, d, dtype=torch.float64, device=device)

    def _merge_stats(
        self, n_b: int, mx_b: torch.Tensor, my_b: torch.Tensor, c_b: torch.Tensor
    ) -> None:
        """Chan et al. pairwise merge of (n_b, means, co-moment) into self."""
        n_a = self.n
        if n_b == 0:
            return
        if n_a == 0:
            self.n = n_b
            self.mean_source = mx_b.clone()
            self.mean_target = my_b.clone()
            self.comoment = c_b.clone()
            return
        n = n_a + n_b
        dx = mx_b - self.mean_source
        dy = my_b - self.mean_target
        self.comoment += c_b
        self.comoment.add_(torch.outer(dx, dy), alpha=n_a * n_b / n)
        self.mean_source += dx * (n_b / n)
        self.mean_target += dy * (n_b / n)
        self.n = n

    # -- public API -------------------------------------------------------------------------
    def update(self, source_batch: ArrayLike, target_batch: ArrayLike) -> CrossCovariance:
        """Add a batch of paired rows: ``source_batch`` and ``target_batch`` both ``(b, d)``.

        The batch is moved to the accumulator's device (the first batch's device if none was
        given). Returns ``self``.
        """
        s = _rows(source_batch, "source_batch", finite=False)  # checked below, cheaply
        t = _rows(target_batch, "target_batch", finite=False)
        if s.shape != t.shape:
            raise ValueError(
                "source_batch and target_batch must have the same shape (b, d); got "
                f"{tuple(s.shape)} and {tuple(t.shape)}"
            )
        b, d = s.shape
        if self.d is None:
            self._init_state(d, self.device or s.device)
        elif d != self.d:
            raise ValueError(f"source_batch has d = {d} but this accumulator holds d = {self.d}")
        if b == 0:
            return self
        s = s.to(self.device)
        t = t.to(self.device)
        # Exact for any finite input of any float dtype: each batch is centred on its own mean m̃
        # (in the working precision: float32 at least, so float16/bfloat16 sums cannot overflow)
        # before the GEMM, and the rounding of m̃ is corrected exactly in float64:
        #     C_b = (X − m̃)ᵀ(Y − ñ) − r_x r_yᵀ / b,   r = Σ(x − m̃),   x̄ = m̃ + r_x / b.
        # No cancellation against the offsets, however large; batches merge with Chan et al.
        work = torch.promote_types(torch.promote_types(s.dtype, t.dtype), torch.float32)
        s = s.to(work)
        t = t.to(work)
        sx = s.sum(0)
        sy = t.sum(0)
        # A NaN/inf anywhere in a column makes that column's sum non-finite: an O(d) check.
        if not (bool(torch.isfinite(sx).all()) and bool(torch.isfinite(sy).all())):
            if not bool(torch.isfinite(s).all()):
                raise ValueError("source_batch contains NaN or infinite values")
            if not bool(torch.isfinite(t).all()):
                raise ValueError("target_batch contains NaN or infinite values")
            s, t = s.double(), t.double()  # finite values whose column sums overflow: widen
            sx, sy = s.sum(0), t.sum(0)
        mx_w = sx / b
        my_w = sy / b
        sc = s - mx_w
        tc = t - my_w
        rx = sc.sum(0).to(torch.float64)
        ry = tc.sum(0).to(torch.float64)
        mx = mx_w.to(torch.float64) + rx / b
        my = my_w.to(torch.float64) + ry / b
        gemm = sc.T @ tc
        if not bool(torch.isfinite(gemm).all()):  # finite data whose co-moments overflow: widen
            gemm = sc.double().T @ tc.double()
        c = gemm.to(torch.float64) - torch.outer(rx, ry) / b
        self._merge_stats(b, mx, my, c)
        return self

    def merge(self, other: CrossCovariance) -> CrossCovariance:
        """Fold ``other``'s statistics into ``self`` (in place) and return ``self``."""
        if not isinstance(other, CrossCovariance):
            raise ValueError(f"other must be a CrossCovariance, got {type(other).__name__}")
        if other.n == 0:
            return self
        if self.d is None:
            self._init_state(other.comoment.shape[0], self.device or other.comoment.device)
        elif other.d != self.d:
            raise ValueError(f"other holds d = {other.d} but this accumulator holds d = {self.d}")
        dev = self.device
        self._merge_stats(
            other.n, other.mean_source.to(dev), other.mean_target.to(dev), other.comoment.to(dev)
        )
        return self

    def copy(self) -> CrossCovariance:
        new = CrossCovariance(device=self.device, precise_centering=self.precise_centering)
        new.d, new.n = self.d, self.n
        if self.d is not None:
            new.mean_source = self.mean_source.clone()
            new.mean_target = self.mean_target.clone()
            new.comoment = self.comoment.clone()
        return new

    def __add__(self, other: CrossCovariance) -> CrossCovariance:
        return self.copy().merge(other)

    def all_reduce(self, group: Any = None) -> CrossCovariance:
        """Combine the accumulators of every process in ``group`` (default: the world), in place.

        Two ``all_reduce(SUM)`` calls: first ``[n, n·x̄, n·ȳ]`` to get the global means, then each
        process's co-moment re-expressed about the global means,
        ``C_p + n_p (x̄_p − x̄)(ȳ_p − ȳ)ᵀ``, which is additive. Every process must have seen at
        least one batch (so that ``d`` is known) or have been built with ``CrossCovariance(d=...)``.
        With NCCL the accumulator must live on the process's GPU. Afterwards every process holds
        identical statistics. Returns ``self``.
        """
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("all_reduce needs an initialised torch.distributed process group")
        if self.d is None:
            raise ValueError(
                "this accumulator has no data and no d; build it with CrossCovariance(d=...)"
            )
        d = self.d
        head = torch.empty(1 + 2 * d, dtype=torch.float64, device=self.device)
        head[0] = float(self.n)
        head[1 : 1 + d] = self.mean_source * self.n
        head[1 + d :] = self.mean_target * self.n
        dist.all_reduce(head, op=dist.ReduceOp.SUM, group=group)
        n_tot = round(float(head[0]))
        if n_tot == 0:
            return self
        gx = head[1 : 1 + d] / n_tot
        gy = head[1 + d :] / n_tot
        local = self.comoment + self.n * torch.outer(self.mean_source - gx, self.mean_target - gy)
        dist.all_reduce(local, op=dist.ReduceOp.SUM, group=group)
        self.n, self.mean_source, self.mean_target, self.comoment = (
            n_tot,
            gx.clone(),
            gy.clone(),
            local,
        )
        return self

    def cross_covariance(self, center: bool = True) -> torch.Tensor:
        """``(d, d)`` float64: the centred co-moment Σ(x−x̄)ᵀ(y−ȳ),
        or the raw Σxᵀy when not ``center``.
        """
        if self.n == 0:
            raise ValueError(
                "the accumulator is empty: call update() with at least one batch first"
            )
        if center:
            return self.comoment
        return self.comoment + self.n * torch.outer(self.mean_source, self.mean_target)

    def rotation(
        self, special: bool = True, center: bool = True, allow_underdetermined: bool = False
    ) -> torch.Tensor:
        """The Procrustes R (``(d, d)`` float64 torch tensor on the accumulator's device).

        Same conventions as :func:`fit_rotation`: ``source @ R ≈ target``; SO(d) when ``special``.
        """
        m = self.cross_covariance(center)
        if self.n < 2:
            raise ValueError(f"source needs at least 2 samples (rows), got n = {self.n}")
        d = m.shape[0]
        _check_enough(self.n, d, center, allow_underdetermined, name="accumulated data")
        return _polar(m, special)

    def alignment_map(self, special: bool = True, center: bool = True) -> AlignmentMap:
        """The fitted rotation as an :class:`AlignmentMap` (numpy float64)."""
        r = self.rotation(special=special, center=center).cpu().numpy()
        name = "rotation" if special else "rotation_O"
        if center:
            return AlignmentMap(
                name, r, self.mean_source.cpu().numpy(), self.mean_target.cpu().numpy()
            )
        return AlignmentMap(name, r)

    def __repr__(self) -> str:
        return (
            f"CrossCovariance(d={self.d}, n={self.n}, device={self.device}, "
            f"precise_centering={self.precise_centering})"
        )


# --------------------------------------------------------------------------------------------
# maps and baselines
# --------------------------------------------------------------------------------------------


@dataclass
class AlignmentMap:
    """A fitted map from source rows to target rows: ``apply(x) = (x − source_mean) @ matrix +
    target_mean``.

    ``matrix`` is ``(d_src, d_tgt)`` float64 numpy; a mean that is ``None`` counts as zero (the
    map is then linear with no centring). ``name`` is the method that produced it.
    """

    name: str
    matrix: np.ndarray
    source_mean: np.ndarray | None = None
    target_mean: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def centered(self) -> bool:
        return self.source_mean is not None or self.target_mean is not None

    # Tensor and ndarray are Any without torch and numpy installed (see nearest_orthogonal).
    @overload
    def apply(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def apply(self, x: np.ndarray) -> np.ndarray: ...  # type: ignore[overload-cannot-match, unused-ignore]
    @overload
    def apply(self, x: ArrayLike) -> ArrayLike: ...  # type: ignore[overload-cannot-match, unused-ignore]

    def apply(self, x: ArrayLike) -> ArrayLike:
        """Map ``x`` ``(n, d_src)`` (numpy or torch) to ``(n, d_tgt)``,
        same kind/device/dtype as ``x``.
        """
        t, was_np = _rows(x, "x", finite=False), is_numpy_input(x)
        if t.shape[1] != self.matrix.shape[0]:
            raise ValueError(
                f"x has d = {t.shape[1]} but this map expects d = {self.matrix.shape[0]}"
            )
        dtype, dev = t.dtype, t.device
        m = torch.as_tensor(self.matrix, dtype=dtype, device=dev)
        if self.source_mean is not None:
            t = t - torch.as_tensor(self.source_mean, dtype=dtype, device=dev)
        out = t @ m
        if self.target_mean is not None:
            out = out + torch.as_tensor(self.target_mean, dtype=dtype, device=dev)
        return out.cpu().numpy() if was_np else out

    __call__ = apply


def fit_alignment(
    source: ArrayLike,
    target: ArrayLike,
    method: str = "rotation",
    *,
    allow_underdetermined: bool = False,
    rcond: float | None = None,
) -> AlignmentMap:
    """Fit one alignment map ``source → target`` (rows paired). Returns an :class:`AlignmentMap`.

    Methods (all in the ``x @ W`` convention; "centred" means ``(x − μ_src) W + μ_tgt``):

    - ``identity``: W = I, no centring (the "no alignment" baseline: x ↦ x).
    - ``rotation``: centred orthogonal Procrustes over SO(d) (Kabsch).
    - ``rotation_O``: centred orthogonal Procrustes over O(d) (what the paper fits).
    - ``signed_permutation``: centred; the permutation maximising Σ|C_{i,π(i)}| over the centred
      cross-covariance C (linear assignment, ``scipy.optimize.linear_sum_assignment``), each
      matched entry carrying the sign of C there.
    - ``linear``: least-squares W (``np.linalg.lstsq``), no intercept, no centring.
    - ``affine``: least-squares W on centred data plus intercept (model stitching); source and
      target may then have different d.

    Sample sizes: rotations follow :func:`min_samples`; least-squares maps need ``n >= d_src``
    (``+1`` for affine) unless ``allow_underdetermined`` (then the minimum-norm solution).

    ``rcond`` (least-squares methods only): drop source directions with singular value below
    ``rcond`` × the largest. Residual streams are often rank-deficient; with the default
    machine-precision cutoff least squares fits the float noise of near-null directions with huge
    weights that blow up on held-out rows. 1e-3 drops < 1e-6 of the variance.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = as_array(source, "source", ndim=2, shape=_ROWS)
    y = as_array(target, "target", ndim=2, shape=_ROWS)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"source and target must have the same number of rows; got {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"source needs at least 2 samples (rows), got n = {x.shape[0]}")
    n, d = x.shape
    if method != "affine" and x.shape[1] != y.shape[1]:
        raise ValueError(
            f"source and target must have the same d for method {method!r}; got {x.shape[1]} and "
            f"{y.shape[1]}"
        )
    if method == "identity":
        return AlignmentMap("identity", np.eye(d))
    if method in ("rotation", "rotation_O"):
        r = fit_rotation(
            x, y, special=method == "rotation", allow_underdetermined=allow_underdetermined
        )
        return AlignmentMap(method, r, x.mean(0), y.mean(0))
    mx, my = x.mean(0), y.mean(0)
    if method == "signed_permutation":
        from scipy.optimize import linear_sum_assignment

        c = (x - mx).T @ (y - my)
        rows, cols = linear_sum_assignment(np.abs(c), maximize=True)
        p = np.zeros((d, d))
        signs = np.sign(c[rows, cols])
        signs[signs == 0] = 1.0
        p[rows, cols] = signs
        return AlignmentMap("signed_permutation", p, mx, my, info={"permutation": cols.tolist()})
    center = method == "affine"
    need = d + (1 if center else 0)
    if n < need and not allow_underdetermined:
        raise ValueError(
            f"source has n = {n} samples for d = {d}; a least-squares {method} map needs n >= "
            f"{need} "
            f"(pass allow_underdetermined=True for the minimum-norm solution)"
        )
    if rcond is not None and not 0 < rcond < 1:
        raise ValueError(f"rcond must be in (0, 1) or None, got {rcond}")
    if center:
        w, rank = _lstsq(x - mx, y - my, rcond)
        return AlignmentMap("affine", w, mx, my, info={"rcond": rcond, "rank": rank})
    w, rank = _lstsq(x, y, rcond)
    return AlignmentMap("linear", w, info={"rcond": rcond, "rank": rank})


def _lstsq(a: np.ndarray, b: np.ndarray, rcond: float | None = None) -> tuple[np.ndarray, int]:
    """Minimum-norm least squares ``argmin_W ‖a W − b‖`` in float64 through torch (numpy's
    threaded LAPACK was ~100× slower on a loaded 2-core machine). Returns ``(W, rank)``.

    ``rcond``: drop directions of ``a`` with singular value below ``rcond`` × the largest
    (truncated SVD); ``None`` keeps everything above machine precision."""
    ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
    u, sv, vh = torch.linalg.svd(ta, full_matrices=False)
    cut = (rcond if rcond is not None else max(ta.shape) * torch.finfo(torch.float64).eps) * (
        sv[0] if sv.numel() else 0
    )
    keep = sv > cut
    w = vh[keep].T @ ((u[:, keep].T @ tb) / sv[keep, None])
    return w.numpy(), int(keep.sum())


# --------------------------------------------------------------------------------------------
# residual report
# --------------------------------------------------------------------------------------------


@dataclass
class AlignmentReport:
    """Held-out quality of a map. ``ev``: explained variance of the target by the mapped source
    (glossary: *Explained variance*); ``mse``: mean squared error per row; ``relative_error``:
    ‖mapped − target‖_F / ‖target − mean‖_F = √(1 − ev); ``gap``: ``ceiling − ev`` when a
    ceiling (e.g. the within-model EV of an SAE, or of a fit of the target onto itself on a
    disjoint batch) is given, else ``None``."""

    method: str
    ev: float
    mse: float
    relative_error: float
    n: int
    ceiling: float | None = None
    gap: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def alignment_report(
    map: AlignmentMap,
    source_heldout: ArrayLike,
    target_heldout: ArrayLike,
    ceiling: float | None = None,
) -> AlignmentReport:
    """How much of the held-out target the mapped held-out source explains.

    Args:
        map: a fitted :class:`AlignmentMap` (from :func:`fit_alignment` or
            :meth:`CrossCovariance.alignment_map`).
        source_heldout, target_heldout: ``(n, d)`` paired held-out rows, not used for fitting.
        ceiling: a within-model EV to compare with; the report's ``gap`` is ``ceiling − ev``.
    """

    if not isinstance(map, AlignmentMap):
        raise ValueError(f"map must be an AlignmentMap, got {type(map).__name__}")
    x = as_array(source_heldout, "source_heldout", ndim=2, shape=_ROWS)
    y = as_array(target_heldout, "target_heldout", ndim=2, shape=_ROWS)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            "source_heldout and target_heldout must have the same number of rows; got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"source_heldout needs at least 2 rows, got {x.shape[0]}")
    y_hat = map.apply(x)
    if y_hat.shape != y.shape:
        raise ValueError(
            f"target_heldout has shape {y.shape} but the mapped source has shape {y_hat.shape}"
        )
    ev = explained_variance(y, y_hat)
    mse = float(((y - y_hat) ** 2).sum(1).mean())
    rel = float(np.sqrt(max(0.0, 1.0 - ev)))
    gap = None if ceiling is None else float(ceiling) - ev
    return AlignmentReport(
        map.name, ev, mse, rel, int(x.shape[0]), None if ceiling is None else float(ceiling), gap
    )
