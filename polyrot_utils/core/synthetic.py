"""Synthetic activations with a planted rotation: the instrument check of the book's first rung.

Convention (the package's, :mod:`polyrot_utils.core.procrustes`): rows are samples; the target is
``Y = X @ R_star + noise``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyrot_utils.core import metrics, procrustes

__all__ = ["planted_noise_sweep", "planted_pair", "planted_sample_size_curve"]


def planted_pair(
    R_star: np.ndarray, n: int, *, noise: float, rng: np.random.Generator, basis_seed: int = 12345
) -> tuple[np.ndarray, np.ndarray]:
    """Source ``X (n, d)`` and target ``Y = X @ R_star + σ·s·ε`` with ``s`` the RMS per-coordinate
    standard deviation of the centred signal, so ``noise`` is relative. The activation
    distribution (spectrum, basis, mean) is fixed by ``basis_seed``; ``rng`` draws the samples."""
    R_star = np.asarray(R_star, dtype=np.float64)
    if R_star.ndim != 2 or R_star.shape[0] != R_star.shape[1]:
        raise ValueError(f"R_star must be a square (d, d) matrix, got shape {R_star.shape}")
    d = R_star.shape[0]
    dist_rng = np.random.default_rng(basis_seed)
    scales = np.exp(-0.05 * np.arange(d))
    basis, _ = np.linalg.qr(dist_rng.standard_normal((d, d)))
    mean = dist_rng.standard_normal(d)
    X = (rng.standard_normal((n, d)) * scales) @ basis + mean
    signal_scale = float(np.sqrt(np.mean(scales**2)))
    Y = X @ R_star + noise * signal_scale * rng.standard_normal((n, d))
    return X, Y


def planted_noise_sweep(
    R_star: np.ndarray, noise_levels: Sequence[float], *, n_fit: int, n_eval: int, seed: int
) -> list[dict[str, float]]:
    """For each noise level: fit on ``n_fit`` samples, score on ``n_eval`` held-out ones.

    Returns rows ``{noise, rel_error = ‖R̂−R⋆‖_F/√(2d), ev (held-out), ev_ceiling = 1/(1+σ²)}``.
    The ceiling is the EV of the true map: noise of relative variance σ² is unexplainable.
    """
    d = np.asarray(R_star).shape[0]
    rows = []
    for i, noise in enumerate(noise_levels):
        rng = np.random.default_rng([seed, i])
        X, Y = planted_pair(R_star, n_fit, noise=float(noise), rng=rng)
        Xe, Ye = planted_pair(R_star, n_eval, noise=float(noise), rng=rng)
        fit = procrustes.fit_alignment(X, Y, method="rotation")
        ev = metrics.explained_variance(Ye, fit.apply(Xe))
        rows.append(
            {
                "noise": float(noise),
                "rel_error": float(np.linalg.norm(fit.matrix - R_star) / np.sqrt(2 * d)),
                "ev": float(ev),
                "ev_ceiling": float(1.0 / (1.0 + float(noise) ** 2)),
            }
        )
    return rows


def planted_sample_size_curve(
    R_star: np.ndarray, sizes: Sequence[int], *, noise: float, n_eval: int, seed: int
) -> list[dict[str, float]]:
    """Error of one fit as a function of the fitting batch size, at a fixed noise level."""
    d = np.asarray(R_star).shape[0]
    rows = []
    for i, n in enumerate(sizes):
        rng = np.random.default_rng([seed, 1000 + i])
        X, Y = planted_pair(R_star, int(n), noise=noise, rng=rng)
        Xe, Ye = planted_pair(R_star, n_eval, noise=noise, rng=rng)
        fit = procrustes.fit_alignment(X, Y, method="rotation")
        rows.append(
            {
                "n_fit": int(n),
                "rel_error": float(np.linalg.norm(fit.matrix - R_star) / np.sqrt(2 * d)),
                "ev": float(metrics.explained_variance(Ye, fit.apply(Xe))),
            }
        )
    return rows
