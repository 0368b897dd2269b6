"""Steering primitives: diff-of-means directions, transfer through a rotation (``v @ R``, row-
vector convention ``x_src @ R ≈ x_tgt``) and TransformerLens hooks that add ``alpha * v`` at one
site.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polyrot_utils.core.validate import as_tensor

__all__ = ["diff_of_means", "run_with_steering", "steering_hook", "transfer_vector"]


def _as_tensor(x: Any, name: str) -> Tensor:
    """Kept for :mod:`polyrot_utils.experiments.steering`, which imports it; new code calls
    :func:`polyrot_utils.core.validate.as_tensor` directly."""
    return as_tensor(x, name)


def _mask(m: Any, n: int, name: str) -> Tensor:
    t = (m.detach() if isinstance(m, Tensor) else torch.from_numpy(np.asarray(m))).reshape(-1)
    if t.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean mask, got dtype {t.dtype}")
    if t.numel() != n:
        raise ValueError(f"{name} must have one entry per activation row ({n}), got {t.numel()}")
    return t


def diff_of_means(acts: Tensor | np.ndarray, mask_a: Any, mask_b: Any | None = None) -> Tensor:
    """``v = mean(x | A) − mean(x | B)``, shape (d,), computed in float64 and returned as float32.

    ``acts`` is ``(n, d)`` or ``(..., d)`` (leading dims flattened); ``mask_a`` / ``mask_b`` are
    boolean masks over the same leading dims. ``mask_b=None`` means "not A". Raises ValueError if
    a group is empty.
    """
    x = as_tensor(acts, "acts")
    if x.ndim < 2:
        raise ValueError(f"acts must have shape (n, d) or (..., d), got {tuple(x.shape)}")
    x = x.reshape(-1, x.shape[-1]).to(torch.float64)
    a = _mask(mask_a, x.shape[0], "mask_a").to(x.device)
    b = ~a if mask_b is None else _mask(mask_b, x.shape[0], "mask_b").to(x.device)
    if int(a.sum()) == 0:
        raise ValueError("mask_a selects no rows")
    if int(b.sum()) == 0:
        raise ValueError("mask_b selects no rows")
    return (x[a].mean(0) - x[b].mean(0)).float()


def transfer_vector(v: Tensor | np.ndarray, R: Tensor | np.ndarray) -> Tensor:
    """A source-frame direction ``v (d,)`` (or rows ``(n, d)``) in the target frame: ``v @ R``."""
    vt = as_tensor(v, "v")
    Rt = as_tensor(R, "R").to(device=vt.device)
    d = vt.shape[-1]
    if Rt.shape != (d, d):
        raise ValueError(
            f"R must have shape ({d}, {d}) to match v's last dimension {d}, got {tuple(Rt.shape)}"
        )
    dtype = torch.promote_types(vt.dtype, Rt.dtype)
    return (vt.to(dtype) @ Rt.to(dtype)).to(vt.dtype)


def steering_hook(
    v: Tensor, alpha: float, positions: int | Sequence[int] | slice | None = None
) -> Callable[[Tensor, Any], Tensor]:
    """A TransformerLens forward hook ``(act, hook) -> act + alpha * v``.

    ``act`` is ``(batch, pos, d)`` (or ``(..., d)``); ``positions`` restricts the addition to those
    sequence positions (dim 1); ``None`` adds at every position. Returns a new tensor.
    """
    vt = as_tensor(v, "v")
    if vt.ndim != 1:
        raise ValueError(f"v must be a vector of shape (d,), got {tuple(vt.shape)}")

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        if act.shape[-1] != vt.shape[0]:
            name = getattr(hook, "name", "the hook site")
            raise ValueError(
                f"v has dimension {vt.shape[0]} but activations at {name} have {act.shape[-1]}"
            )
        delta = (alpha * vt).to(device=act.device, dtype=act.dtype)
        if positions is None:
            return act + delta
        out = act.clone()
        out[:, positions] = out[:, positions] + delta
        return out

    return hook


def _check_site(model: Any, site: str) -> None:
    hook_dict = getattr(model, "hook_dict", None)
    if hook_dict is not None and site not in hook_dict:
        resid = [h for h in hook_dict if "resid" in h][:8]
        raise KeyError(
            f"site {site!r} is not a hook point of this model; residual sites include {resid}"
        )


def run_with_steering(
    model: Any,
    tokens: Tensor,
    site: str,
    v: Tensor | None,
    alpha: float,
    *,
    positions: int | Sequence[int] | slice | None = None,
) -> Tensor:
    """Logits of ``model(tokens)`` with ``alpha * v`` added at hook ``site`` (no hook if v is None
    or alpha == 0). Uses ``model.run_with_hooks``; no gradients."""
    _check_site(model, site)
    with torch.no_grad():
        if v is None or alpha == 0:
            return model(tokens)
        return model.run_with_hooks(tokens, fwd_hooks=[(site, steering_hook(v, alpha, positions))])
