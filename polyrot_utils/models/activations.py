"""Collect activations at named hook sites, batched, without caching every hook.

Works for any model exposing TransformerLens-style hooks: a ``hook_dict`` mapping names to
hook points and ``run_with_hooks(tokens, fwd_hooks=[(name, fn)])`` (``HookedTransformer`` and
``TransformerBridge`` both do). Only the requested sites get a hook; the model runs in
``torch.no_grad()``; activations come back as float32 CPU tensors with padded positions
dropped, rows in (sequence, position) order — the same rows for every model given the same
tokens and mask, so two models' activations pair up row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.device import default_device

__all__ = [
    "CONTROL_PREFIX",
    "PairedActs",
    "collect_activations",
    "resid_sites",
    "short_site",
    "validate_sites",
]

#: model keys of controls in a :class:`PairedActs` start with this (``"control:untrained"``)
CONTROL_PREFIX = "control:"


@dataclass
class PairedActs:
    """Paired residual-stream activations of several models: the one input type of every
    analysis in :mod:`polyrot_utils.experiments`, built by each rung its own way
    (:func:`polyrot_utils.tasks.dyck.suite.dyck_activations`,
    :func:`polyrot_utils.tasks.pythia.suite.pythia_activations`).

    ``fit`` / ``eval``: ``{model: {site: (n, d)}}`` float32 CPU tensors, rows = token positions
    (row vectors), row ``i`` the same token of the same input for every model; the two batches
    come from disjoint inputs. ``sites`` in forward order; ``models``: ``{name: HookedTransformer}``
    (members, then controls keyed ``"control:<name>"``); ``members``: the seeds' names in order;
    ``planted``: ``{control key: (source name, R)}`` for controls built by an exact rotation
    (``acts[source] @ R == acts[control]``); ``info``: sizes and provenance.
    """

    fit: dict[str, dict[str, torch.Tensor]]
    eval: dict[str, dict[str, torch.Tensor]]
    sites: list[str]
    models: dict[str, Any]
    members: list[str]
    planted: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def controls(self) -> list[str]:
        """The controls' short names (``["untrained", "rotated"]``), in model order."""
        return [k[len(CONTROL_PREFIX) :] for k in self.models if k.startswith(CONTROL_PREFIX)]

    def control(self, name: str) -> str:
        """The model key of control ``name`` (``"untrained"`` -> ``"control:untrained"``);
        ``KeyError`` naming the controls there are."""
        key = name if name.startswith(CONTROL_PREFIX) else CONTROL_PREFIX + name
        if key not in self.models:
            raise KeyError(f"no control {name!r}; this batch has controls {self.controls}")
        return key


def short_site(site: str) -> str:
    """The one short name of a residual site, used by both rungs: ``blocks.1.hook_resid_mid`` ->
    ``b1.resid_mid``; the final-norm output (``unembed.hook_in``, ``ln_final.hook_normalized``)
    -> ``final``."""
    if site in ("unembed.hook_in", "ln_final.hook_normalized"):
        return "final"
    return site.replace("blocks.", "b").replace("hook_", "")


def resid_sites(model: Any, include_final: bool = True) -> list[str]:
    """Every residual-stream site in forward order: ``blocks.{l}.hook_resid_pre``,
    ``hook_resid_mid`` (when the model has it; parallel attention+MLP models do not),
    ``hook_resid_post``; then, when ``include_final``, ``unembed.hook_in``: the final norm's
    full output (gain and bias applied), i.e. what the unembedding reads and what HF calls the
    last hidden state. (``ln_final.hook_normalized`` fires before the gain/bias, so it is not.)"""
    names = set(model.hook_dict)
    out: list[str] = []
    n_layers = int(model.cfg.n_layers)
    for layer in range(n_layers):
        for kind in ("resid_pre", "resid_mid", "resid_post"):
            name = f"blocks.{layer}.hook_{kind}"
            if name in names:
                out.append(name)
    if include_final and "unembed.hook_in" in names:
        out.append("unembed.hook_in")
    return out


def _forward_plan(model: Any, sites: list[str]) -> tuple[Any, int | None]:
    """``(return_type, stop_at_layer)`` that runs no more of the model than the sites need:
    stop after the last block a site lives in; run the unembedding only for ``unembed.*`` hooks
    (with ``return_type=None`` HookedTransformer returns before the unembedding)."""
    if any(s.startswith("unembed.") for s in sites):
        return "logits", None
    if any(not s.startswith("blocks.") for s in sites):
        return None, None
    last = max(int(s.split(".")[1]) for s in sites)
    n_layers = int(model.cfg.n_layers)
    return None, (last + 1 if last + 1 < n_layers else None)


def validate_sites(model: Any, sites: Iterable[str]) -> list[str]:
    """``sites`` as a list; ``KeyError`` naming the valid hook names if any is unknown."""
    if isinstance(sites, str):
        sites = [sites]
    sites = list(sites)
    if not sites:
        raise ValueError("sites must name at least one hook point")
    known = model.hook_dict
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise KeyError(f"unknown hook sites {unknown}; valid names: {sorted(known)}")
    if len(set(sites)) != len(sites):
        raise ValueError(f"sites must be distinct, got {sites}")
    return sites


@torch.no_grad()
def collect_activations(
    model: Any,
    tokens: torch.Tensor,
    sites: Sequence[str] | str,
    *,
    batch_size: int = 256,
    mask: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Activations ``{site: (n_valid_tokens, d)}`` (float32 unless ``dtype``, CPU) at the named hook
    sites.

    Args:
        model: a HookedTransformer-like model (``hook_dict``, ``run_with_hooks``).
        tokens: ``(n, T)`` token ids.
        sites: hook names (see :func:`resid_sites`); unknown names raise ``KeyError``.
        batch_size: sequences per forward pass.
        mask: optional ``(n, T)`` bool; only True positions are kept (e.g. non-PAD). Default:
            every position.
        device: where to run (default: the model's device).
        dtype: dtype of the returned tensors (float32 by default; float64 for exactness checks
            on a float64 model).

    Activations with extra dimensions (e.g. ``(batch, pos, head, d_head)``) are flattened to
    ``(n_valid_tokens, -1)``.
    """
    sites = validate_sites(model, sites)
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (n, T), got shape {tuple(tokens.shape)}")
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != tokens.shape:
            raise ValueError(
                f"mask must have the tokens' shape {tuple(tokens.shape)}, got {tuple(mask.shape)}"
            )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = default_device(device) if device is not None else next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    store: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(act: torch.Tensor, hook: Any = None) -> None:
            store[name] = act.detach()
            return None

        return hook

    fwd_hooks = [(s, make_hook(s)) for s in sites]
    return_type, stop_at_layer = _forward_plan(model, sites)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        for start in range(0, tokens.shape[0], batch_size):
            tb = tokens[start : start + batch_size].to(dev)
            mb = mask[start : start + batch_size].to(dev) if mask is not None else None
            store.clear()
            kwargs = {"stop_at_layer": stop_at_layer} if stop_at_layer is not None else {}
            model.run_with_hooks(tb, fwd_hooks=fwd_hooks, return_type=return_type, **kwargs)
            for s in sites:
                act = store[s]
                act = act.reshape(act.shape[0], act.shape[1], -1)
                kept = act[mb] if mb is not None else act.reshape(-1, act.shape[-1])
                out[s].append(kept.to(dtype).cpu())
    finally:
        model.train(was_training)
    return {s: torch.cat(v) for s, v in out.items()}
