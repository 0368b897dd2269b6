"""Align two of your own TransformerLens models site by site, and move an SAE between them.

The package's public entry point for researchers (re-exported at ``polyrot_utils``):

- :func:`fit_rotations` — the Procrustes rotation per residual site from model A's activations
  onto model B's, on any number of tokens: activations are collected batch by batch and only the
  ``(d, d)`` cross-covariances are kept (:class:`polyrot_utils.core.procrustes.CrossCovariance`).
- :func:`align_models` — :func:`fit_rotations` on fit tokens, then on held-out tokens the aligned
  EV per site (streamed too) and the calibrated Haar test of each fitted R
  (:func:`polyrot_utils.core.haar.haar_test`).
- :func:`move_sae` — an SAE trained on model A at one site (ours, or SAELens-format files read
  by :func:`polyrot_utils.sae.autoencoder.load_sae`) as an ordinary SAE for model B, written in
  SAELens's format when given a directory.

Conventions: activations are row vectors; a site's map is the centred rotation
``x_B ≈ (x_A − μ_A) @ R + μ_B`` (:class:`~polyrot_utils.core.procrustes.AlignmentMap`), with
``R`` in SO(d). Two models are compared position by position on the same tokens, so they must
share a tokenizer (the same token ids mean the same text) and their sites must have equal widths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

from polyrot_utils.core.haar import HaarTestResult, haar_test
from polyrot_utils.core.procrustes import AlignmentMap, CrossCovariance
from polyrot_utils.models.activations import collect_activations, resid_sites, validate_sites
from polyrot_utils.sae.autoencoder import SAE, load_sae, save_sae, transfer_sae

__all__ = ["ModelAlignment", "SiteReport", "align_models", "fit_rotations", "move_sae"]

Tokens: TypeAlias = torch.Tensor | Iterable[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]


def _batches(
    tokens: Tokens, batch_size: int, mask: torch.Tensor | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(tokens (b, T), mask (b, T) | None)`` chunks of a tensor, or of an iterable of chunks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (n, T) token ids, got shape {tuple(tokens.shape)}")
        for i in range(0, tokens.shape[0], batch_size):
            yield tokens[i : i + batch_size], None if mask is None else mask[i : i + batch_size]
        return
    if mask is not None:
        raise ValueError("mask goes with a tokens tensor; an iterable yields (tokens, mask) pairs")
    for item in tokens:
        yield (item[0], item[1]) if isinstance(item, tuple) else (item, None)


def _sites(model_a: Any, model_b: Any, sites: Sequence[str] | str | None) -> list[str]:
    chosen = resid_sites(model_a) if sites is None else validate_sites(model_a, sites)
    validate_sites(model_b, chosen)
    return chosen


def _paired(
    model_a: Any, model_b: Any, tb: torch.Tensor, mb: torch.Tensor | None, sites: list[str]
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    kw: dict[str, Any] = {"batch_size": tb.shape[0], "mask": mb, "dtype": torch.float64}
    xa = collect_activations(model_a, tb, sites, **kw)
    xb = collect_activations(model_b, tb, sites, **kw)
    for s in sites:
        if xa[s].shape != xb[s].shape:
            raise ValueError(
                f"site {s}: model_a gives activations of shape {tuple(xa[s].shape)}, model_b "
                f"{tuple(xb[s].shape)}; the models must have equal widths at every site"
            )
        yield s, xa[s], xb[s]


def fit_rotations(
    model_a: Any,
    model_b: Any,
    tokens: Tokens,
    *,
    sites: Sequence[str] | str | None = None,
    batch_size: int = 32,
    mask: torch.Tensor | None = None,
) -> dict[str, AlignmentMap]:
    """The centred SO(d) rotation per site mapping model A's activations onto model B's.

    Args:
        model_a, model_b: TransformerLens-style models (``hook_dict``, ``run_with_hooks``).
        tokens: ``(n, T)`` token ids, or an iterable of ``(b, T)`` batches (or of
            ``(tokens, mask)`` pairs) of any total length: only the per-site cross-covariances
            are kept, so memory does not grow with the number of tokens.
        sites: hook names; default every residual site (:func:`resid_sites` of model A).
        batch_size: sequences per forward pass when ``tokens`` is a tensor.
        mask: ``(n, T)`` bool, True at the positions to use (e.g. not padding).

    Returns:
        ``{site: AlignmentMap}``; ``m.matrix`` is R (``(d, d)`` float64 numpy) and
        ``m.apply(x_a) ≈ x_b``. ``ValueError`` if a site has fewer than ``d + 1`` token positions.
    """
    chosen = _sites(model_a, model_b, sites)
    acc = {s: CrossCovariance() for s in chosen}
    for tb, mb in _batches(tokens, batch_size, mask):
        for s, xa, xb in _paired(model_a, model_b, tb, mb, chosen):
            acc[s].update(xa, xb)
    return {s: a.alignment_map(special=True) for s, a in acc.items()}


class _EV:
    """Streaming explained variance of targets ``y`` by predictions: 1 − SSE / Σ‖y − ȳ‖²."""

    def __init__(self) -> None:
        self.n, self.sse, self.m2 = 0, 0.0, 0.0
        self.mean: torch.Tensor | None = None

    def update(self, y: torch.Tensor, y_hat: torch.Tensor) -> None:
        b = y.shape[0]
        if b == 0:
            return
        self.sse += float(((y - y_hat) ** 2).sum())
        mb = y.mean(0)
        m2b = float(((y - mb) ** 2).sum())
        if self.mean is None:
            self.n, self.mean, self.m2 = b, mb, m2b
            return
        n = self.n + b  # Chan et al.'s merge of two (n, mean, M2) summaries
        self.m2 += m2b + float(((mb - self.mean) ** 2).sum()) * self.n * b / n
        self.mean = self.mean + (mb - self.mean) * (b / n)
        self.n = n

    def value(self) -> float:
        if self.n < 2 or self.m2 == 0.0:
            raise ValueError("the evaluation activations have no variance; pass more tokens")
        return 1.0 - self.sse / self.m2


@dataclass
class SiteReport:
    """One site of :func:`align_models`: ``ev`` is the held-out EV of B's activations by A's
    mapped through the fitted map (``gap = 1 − ev``: 0 when the models differ by exactly this
    rotation); ``haar`` the calibrated test of R (``haar.pvalue``: small = R is not Haar)."""

    site: str
    ev: float
    n_eval: int
    haar: HaarTestResult | None

    @property
    def gap(self) -> float:
        return 1.0 - self.ev

    def as_dict(self) -> dict[str, Any]:
        out = {"site": self.site, "ev": self.ev, "gap": self.gap, "n_eval": self.n_eval}
        if self.haar is not None:
            out["haar_pvalue"] = self.haar.pvalue
        return out


@dataclass
class ModelAlignment:
    """What :func:`align_models` found: the map and the report of every site."""

    maps: dict[str, AlignmentMap]
    reports: dict[str, SiteReport]
    info: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per site: ``site, ev, gap, n_eval`` and ``haar_pvalue`` when tested."""
        return [r.as_dict() for r in self.reports.values()]

    def rotation(self, site: str) -> np.ndarray:
        """``R (d, d)`` of ``site``: ``(x_a − μ_a) @ R + μ_b ≈ x_b``."""
        return self.maps[site].matrix


def align_models(
    model_a: Any,
    model_b: Any,
    fit_tokens: Tokens,
    eval_tokens: Tokens,
    *,
    sites: Sequence[str] | str | None = None,
    batch_size: int = 32,
    haar_test_sites: bool = True,
    n_null: int = 500,
    seed: int = 0,
    cache: bool = True,
) -> ModelAlignment:
    """Fit the rotation per site on ``fit_tokens``; report aligned EV and the Haar test per site.

    ``fit_tokens`` and ``eval_tokens`` are as ``tokens`` in :func:`fit_rotations` (a tensor or an
    iterable of batches; both streamed) and must not overlap. ``n_null`` Haar samples calibrate
    each test (p >= 1 / (n_null + 1)); ``seed`` seeds them and ``cache`` keeps them on disk
    (:mod:`polyrot_utils.core.cache`). ``haar_test_sites=False`` skips the tests.
    """
    maps = fit_rotations(model_a, model_b, fit_tokens, sites=sites, batch_size=batch_size)
    chosen = list(maps)
    evs = {s: _EV() for s in chosen}
    for tb, mb in _batches(eval_tokens, batch_size, None):
        for s, xa, xb in _paired(model_a, model_b, tb, mb, chosen):
            evs[s].update(xb, torch.as_tensor(maps[s].apply(xa)))
    reports = {
        s: SiteReport(
            s,
            evs[s].value(),
            evs[s].n,
            haar_test(maps[s].matrix, n_null=n_null, seed=seed, cache=cache)
            if haar_test_sites
            else None,
        )
        for s in chosen
    }
    return ModelAlignment(maps, reports, {"n_null": n_null, "seed": seed})


def move_sae(
    sae: SAE | str | Path,
    alignment: ModelAlignment | AlignmentMap,
    *,
    site: str | None = None,
    out: str | Path | None = None,
    model_name: str | None = None,
) -> SAE:
    """An SAE of model A's ``site`` as an ordinary SAE of model B (exact for rotated models).

    Args:
        sae: an :class:`~polyrot_utils.sae.autoencoder.SAE`, or a directory of SAELens-format
            files (``cfg.json`` + ``sae_weights.safetensors``, from SAELens or ``save_sae``).
        alignment: the result of :func:`align_models` (then ``site`` picks the map, default the
            SAE's own ``hook_name``), or one site's ``AlignmentMap`` from :func:`fit_rotations`.
        out: if given, the moved SAE is also written there in SAELens's format.
        model_name: recorded as the moved SAE's ``model_name`` (model B).

    Returns the moved SAE: ``W_dec' = W_dec R``, ``W_enc' = Rᵀ W_enc``, biases through the map's
    means (:func:`polyrot_utils.sae.autoencoder.transfer_sae`), so it encodes B's activations as
    the original encodes their preimage under the map.
    """
    src = sae if isinstance(sae, SAE) else load_sae(sae)
    if isinstance(alignment, ModelAlignment):
        key = site or src.cfg.hook_name
        if key not in alignment.maps:
            raise KeyError(
                f"site {key!r} is not in the alignment (sites: {sorted(alignment.maps)}); pass "
                "site= (the SAE's hook_name is used by default)"
            )
        amap = alignment.maps[key]
    elif isinstance(alignment, AlignmentMap):
        amap = alignment
    else:
        raise ValueError(
            f"alignment must be a ModelAlignment or an AlignmentMap, got {type(alignment).__name__}"
        )
    moved = transfer_sae(
        src, amap.matrix, source_mean=amap.source_mean, target_mean=amap.target_mean
    )
    if site is not None:
        moved.cfg.hook_name = site
    if model_name is not None:
        moved.cfg.model_name = model_name
    if out is not None:
        save_sae(moved, out)
    return moved
