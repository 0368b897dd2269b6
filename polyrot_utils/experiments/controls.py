"""Negative controls for the Haar test: does a Procrustes rotation between *unrelated* clouds
also "look Haar"?

The paper reads "R between two seeds is Haar" as evidence about the seeds. That reading needs a
control: fit R the same way between activations that share **no** structure, and run the same
calibrated test. If the control's R passes as Haar too, "looks Haar" says little about the seeds.
(It often will: for independent isotropic clouds the cross-covariance is a Gaussian matrix, whose
orthogonal polar factor is exactly Haar.)

:func:`haar_negative_controls` fits, on the same tokens and with the same code as the real pair:

* ``pair``       — seed A → seed B (the comparison under test; when ``target`` is given);
* ``untrained``  — seed A → an untrained model of the same architecture;
* ``shuffled``   — seed A → seed A itself with its rows shuffled, so that the token pairing
  (row *i* of the source with row *i* of the target) is destroyed while both marginals are
  exactly the seed's own.

Each fit uses the first ``1 − eval_fraction`` of the rows; ``map_ev`` is the explained variance of
the held-out target rows by the rotated held-out source rows (a control should be near or below 0:
there is nothing to align). The fitted R goes through :func:`polyrot_utils.core.haar.haar_test`
unchanged (calibrated p-values against ``n_null`` Haar SO(d) samples; the paper's own Frobenius
ratio and iid-KS p alongside).

Conventions: rows are samples, ``X_src @ R ≈ X_tgt``, R in SO(d) (Kabsch), centred fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from polyrot_utils.core import haar, metrics, procrustes

__all__ = ["HaarControlResult", "controls_table", "fit_and_test", "haar_negative_controls"]


@dataclass
class HaarControlResult:
    """One fitted R and its Haar test. ``pvalue`` is the calibrated verdict (small = not Haar)."""

    name: str
    d: int
    n_fit: int
    n_eval: int
    map_ev: float
    frobenius_ratio: float
    ks_pvalue_iid: float
    pvalue: float
    fixed_dim: int
    looks_haar: bool
    test: haar.HaarTestResult

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the full :class:`~polyrot_utils.core.haar.HaarTestResult` under
        ``test``)."""
        return asdict(self)


def _rows(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) array of activations, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def fit_and_test(
    source: Any,
    target: Any,
    *,
    name: str = "pair",
    eval_fraction: float = 0.5,
    alpha: float = 0.05,
    n_null: int = 500,
    seed: int = 0,
    null: Mapping[str, np.ndarray] | None = None,
) -> HaarControlResult:
    """Fit R (SO(d), centred) on the first rows of ``source``/``target``, score it on the rest,
    and run the calibrated Haar test on it.

    Args:
        source, target: ``(n, d)`` activations on the same tokens, row-aligned.
        name: label of the comparison (kept in the result).
        eval_fraction: fraction of the rows held out for ``map_ev``, in (0, 1).
        alpha: level for ``looks_haar = pvalue > alpha``.
        n_null, seed, null: passed to :func:`polyrot_utils.core.haar.haar_test`.
    """
    X, Y = _rows(source, "source"), _rows(target, "target")
    if X.shape != Y.shape:
        raise ValueError(
            f"source and target must have the same shape (same tokens, same d), got {X.shape} and "
            f"{Y.shape}"
        )
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n, d = X.shape
    n_fit = round(n * (1 - eval_fraction))
    need = procrustes.min_samples(d)
    if n_fit < need or n - n_fit < 2:
        raise ValueError(
            f"source has {n} rows: {n_fit} to fit (need ≥ {need} for d = {d}) and {n - n_fit} to "
            "evaluate "
            "(need ≥ 2); pass more rows or change eval_fraction"
        )
    fit = procrustes.fit_alignment(X[:n_fit], Y[:n_fit], method="rotation")
    R = np.asarray(fit.matrix, dtype=np.float64)
    ev = float(metrics.explained_variance(Y[n_fit:], fit.apply(X[n_fit:])))
    t = haar.haar_test(R, n_null=n_null, seed=seed, null=null)
    return HaarControlResult(
        name=name,
        d=d,
        n_fit=n_fit,
        n_eval=n - n_fit,
        map_ev=ev,
        frobenius_ratio=t.frobenius_ratio,
        ks_pvalue_iid=t.ks_pvalue_iid,
        pvalue=t.pvalue,
        fixed_dim=t.fixed_dim,
        looks_haar=bool(t.pvalue > alpha),
        test=t,
    )


def haar_negative_controls(
    source: Any,
    untrained: Any,
    target: Any | None = None,
    *,
    shuffle_seed: int = 0,
    eval_fraction: float = 0.5,
    alpha: float = 0.05,
    n_null: int = 500,
    seed: int = 0,
) -> dict[str, HaarControlResult]:
    """The real pair beside its two negative controls, each fitted and Haar-tested the same way.

    Args:
        source: ``(n, d)`` activations of one seed at one site (rows = tokens).
        untrained: ``(n, d)`` activations of an untrained model of the same architecture on the
            same tokens (row-aligned with ``source``).
        target: optional ``(n, d)`` activations of another seed on the same tokens: the pair under
            test, reported as ``"pair"``.
        shuffle_seed: seeds the row permutation of the ``"shuffled"`` control.
        eval_fraction, alpha, n_null, seed: see :func:`fit_and_test`; one Haar null sample (of
            the common d) is shared by all three tests.

    Returns ``{"pair"?, "untrained", "shuffled"}`` → :class:`HaarControlResult`. Read: if the
    controls' ``looks_haar`` is True while their ``map_ev`` is ≤ 0, a Haar-looking R is what
    Procrustes returns for clouds with nothing to align, and the pair's "Haar" verdict carries no
    information about the seeds.
    """
    X = _rows(source, "source")
    U = _rows(untrained, "untrained")
    if U.shape != X.shape:
        raise ValueError(
            f"untrained must have the source's shape {X.shape} (same tokens), got {U.shape}"
        )
    d = X.shape[1]
    null = haar.null_features(d, n_null, seed)
    out: dict[str, HaarControlResult] = {}

    def fit(src: np.ndarray, tgt: np.ndarray, name: str) -> HaarControlResult:
        return fit_and_test(
            src,
            tgt,
            name=name,
            eval_fraction=eval_fraction,
            alpha=alpha,
            n_null=n_null,
            seed=seed,
            null=null,
        )

    if target is not None:
        T = _rows(target, "target")
        if T.shape != X.shape:
            raise ValueError(
                f"target must have the source's shape {X.shape} (same tokens), got {T.shape}"
            )
        out["pair"] = fit(X, T, "pair")
    out["untrained"] = fit(X, U, "untrained")
    perm = np.random.default_rng([int(shuffle_seed), 20260]).permutation(X.shape[0])
    out["shuffled"] = fit(X, X[perm], "shuffled")
    return out


def controls_table(results: Mapping[str, HaarControlResult]):
    """One row per comparison: map_ev, the paper's two statistics, the calibrated p, the verdict."""
    import pandas as pd

    return pd.DataFrame(
        {
            name: {
                "map_ev": r.map_ev,
                "‖R−I‖/√(2d) (paper)": r.frobenius_ratio,
                "KS p, iid (paper)": r.ks_pvalue_iid,
                "calibrated p": r.pvalue,
                "looks Haar": r.looks_haar,
            }
            for name, r in results.items()
        }
    ).T
