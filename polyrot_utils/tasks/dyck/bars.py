"""The paper's four pre-registered bars, cross-seed, for the Dyck-3 toy (glossary *Four bars*;
chapter ``16_dyck_four_bars``).

- **B, behavioural** — mean KL between two seeds' output distributions, per readout
  (:func:`behaviour_bar`; the paper's bar: mean KL < 1e-4 nats).
- **P, parametric** — per-tensor, per-entry weight MSE after aligning one seed's weights to the
  other's (:func:`parametric_bar`; the paper's bar: max per-tensor MSE < 1e-3). Alignment levels,
  each adding to the previous one:

  1. ``"none"``      — both models' norm gains folded into the weights that read them, nothing else;
  2. ``"rotation"``  — source rotated into the target's residual basis by a rotation ``R`` fitted on
     activations (:func:`polyrot_utils.tasks.dyck.toy.rotate_residual`; ``x_src @ R ≈ x_tgt``);
  3. ``"permutation"`` — plus the discrete symmetries: heads permuted within each layer
     (:func:`match_heads`) and MLP neurons permuted (:func:`match_neurons`);
  4. ``"head_orthogonal"`` — plus, per head, an orthogonal ``(d_head, d_head)`` change of basis of
     the query/key space (one ``M`` for ``W_Q, W_K``) and of the value space (one ``N`` for
     ``W_V, W_O``), each fitted by Procrustes on the stacked weights. (The full symmetry of a head
     is GL(d_head), and ReLU neurons may also be rescaled; those continuous parts are not searched.)

- **C, causal** — Pearson r between *predicted* and *measured* effects of patching components
  (every head's ``hook_z`` slice and every ``hook_mlp_out``). Protocol (:func:`causal_table`):
  clean strings from the held-out split; each is corrupted by replacing one content bracket by a
  different bracket (:func:`corrupt_tokens`, same length, same positions); the component's clean
  activation is replaced by the corrupted run's (activation patching); the effect is the change
  of the summed readout loss on the *clean* labels. Predictions: attribution patching (AtP,
  gradient at the clean run times the activation difference) and integrated gradients (IG,
  midpoint rule with ``n_steps`` points along the straight path from clean to patched
  activation, all points in one batched forward/backward). Within a seed this checks the
  instrument (the paper's per-seed bar: r > 0.99; it reports 0.9995 with IG). Cross-seed
  (the paper's §8: 0.52–0.69): seed A's IG prediction against seed B's measured effect,
  components matched by :func:`match_heads` (never by the effects themselves).
- **Pr, predictive** — Pearson r between predicted and measured single-component
  *mean-ablation* loss changes (:func:`ablation_effects`), the prediction taken from the other
  seed: does seed A's measured ablation profile predict seed B's (matched components)?
  (The paper's code reports its cross-seed Pr as an alias of its cross-seed C.)

Conventions: activations are row vectors; a rotation maps source onto target, ``x_src @ R ≈ x_tgt``.
Every model here is a TransformerLens ``HookedTransformer`` of the toy's architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.procrustes import fit_rotation, nearest_orthogonal
from polyrot_utils.core.validate import as_tensor
from polyrot_utils.models.activations import collect_activations, resid_sites
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import functional_agreement
from polyrot_utils.tasks.dyck.toy import rotate_residual, to_float64
from polyrot_utils.tasks.dyck.training import readout_logits, readout_loss

#: alignment levels of the P bar, in order (each adds to the previous one)
P_LEVELS = ("none", "rotation", "permutation", "head_orthogonal")
#: the paper's thresholds (its verification code): B mean KL, P max per-tensor MSE, C and Pr r
PAPER_BARS = {"B": 1e-4, "P": 1e-3, "C": 0.99, "Pr": 0.99}


# --------------------------------------------------------------------------------------------
# components and hooks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One patchable component: a head (``kind="head"``, its slice of ``blocks.{l}.attn.hook_z``)
    or an MLP (``kind="mlp"``, ``blocks.{l}.hook_mlp_out``)."""

    layer: int
    kind: str
    head: int | None = None

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}" if self.kind == "head" else f"L{self.layer}MLP"

    @property
    def hook(self) -> str:
        return (
            f"blocks.{self.layer}.attn.hook_z"
            if self.kind == "head"
            else f"blocks.{self.layer}.hook_mlp_out"
        )

    def take(self, act: torch.Tensor) -> torch.Tensor:
        """This component's slice of its hook's activation ``(B, T, ...)``."""
        return act[:, :, self.head] if self.kind == "head" else act

    def put(self, act: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``act`` with this component's slice replaced by ``value`` (broadcast), a new tensor."""
        if self.kind == "head":
            out = act.clone()
            out[:, :, self.head] = value
            return out
        return value.expand_as(act).clone() if value.shape != act.shape else value


def components(model: Any) -> list[Component]:
    """Every head then the MLP of each layer, in forward order (attn-only models: heads only)."""
    cfg = model.cfg
    out: list[Component] = []
    for layer in range(cfg.n_layers):
        out += [Component(layer, "head", h) for h in range(cfg.n_heads)]
        if not cfg.attn_only:
            out.append(Component(layer, "mlp"))
    return out


def _grad(leaf: torch.Tensor) -> torch.Tensor:
    """``leaf.grad`` after a backward pass that reached it."""
    if leaf.grad is None:
        raise RuntimeError("the patched activation received no gradient: is its hook on the path?")
    return leaf.grad


def _batch_loss(model: Any, logits: torch.Tensor, batch: dyck.DyckSplit) -> torch.Tensor:

    return readout_loss(logits, batch)[0]


class _frozen_params:
    """Context: parameters stop requiring gradients (restored on exit)."""

    def __init__(self, model: Any):
        self.model = model

    def __enter__(self):
        self.flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc):
        for n, p in self.model.named_parameters():
            p.requires_grad_(self.flags[n])


@torch.no_grad()
def hook_activations(
    model: Any, tokens: torch.Tensor, comps: Sequence[Component]
) -> dict[str, torch.Tensor]:
    """``{component name: activation slice (B, T, ...)}`` of a plain forward pass on ``tokens``."""
    store: dict[str, torch.Tensor] = {}
    hooks = sorted({c.hook for c in comps})

    def mk(name):
        def f(act, hook=None):
            store[name] = act.detach().clone()

        return f

    model.run_with_hooks(tokens, fwd_hooks=[(h, mk(h)) for h in hooks], return_type=None)
    return {c.name: c.take(store[c.hook]) for c in comps}


@torch.no_grad()
def component_means(
    model: Any,
    split: dyck.DyckSplit,
    comps: Sequence[Component] | None = None,
    batch_size: int = 512,
) -> dict[str, torch.Tensor]:
    """Mean activation of each component over the non-PAD positions of ``split``:
    ``{name: (d_head,) or (d_model,)}`` — what mean ablation puts in its place."""
    comps = list(comps) if comps is not None else components(model)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for b in split.batches(batch_size):
        acts = hook_activations(model, b.tokens, comps)
        for c in comps:
            s = acts[c.name][b.mask].double().sum(0)
            sums[c.name] = sums[c.name] + s if c.name in sums else s
        n += int(b.mask.sum())
    if n == 0:
        raise ValueError("split has no non-PAD positions")
    return {k: (v / n).float() for k, v in sums.items()}


def measured_effects(
    model: Any,
    batch: dyck.DyckSplit,
    patch: Mapping[str, torch.Tensor],
    comps: Sequence[Component] | None = None,
) -> dict[str, float]:
    """Measured effect of patching each component: ``loss(patched) − loss(clean)``, where the
    component's activation is replaced by ``patch[name]`` (a mean ``(d,)``, broadcast over
    positions, or per-position ``(B, T, d)`` values from another run) and ``loss`` is the summed
    readout loss on ``batch``'s labels."""
    comps = list(comps) if comps is not None else components(model)
    with torch.no_grad():
        base = float(_batch_loss(model, model(batch.tokens), batch))
        out = {}
        for c in comps:
            val = patch[c.name].to(batch.tokens.device)
            fn = lambda act, hook=None, c=c, val=val: c.put(act, val.to(act.dtype))  # noqa: E731
            logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(c.hook, fn)])
            out[c.name] = float(_batch_loss(model, logits, batch)) - base
    return out


def predicted_effects(
    model: Any,
    batch: dyck.DyckSplit,
    patch: Mapping[str, torch.Tensor],
    comps: Sequence[Component] | None = None,
    n_steps: int = 1,
) -> dict[str, float]:
    """Linearised prediction of :func:`measured_effects`.

    ``n_steps == 1``: attribution patching (AtP) — ``Σ ∂loss/∂a |_clean · (patch − a_clean)``, all
    components from one forward/backward. ``n_steps > 1``: integrated gradients per component,
    midpoint rule: ``Σ_k ∂loss/∂a |_{a_clean + α_k Δ} · Δ / n_steps`` with ``α_k = (k +
    ½)/n_steps``,
    the ``n_steps`` points run as one batch (``n_steps`` copies of ``batch``). The midpoint rule
    integrates a linear gradient exactly, so IG is exact for any ``n_steps`` when the loss is
    quadratic (or linear) along the path; AtP only when it is linear.
    """
    comps = list(comps) if comps is not None else components(model)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    clean = hook_activations(model, batch.tokens, comps)
    deltas = {
        c.name: (patch[c.name].to(clean[c.name].device).expand_as(clean[c.name]) - clean[c.name])
        for c in comps
    }
    out: dict[str, float] = {}
    with _frozen_params(model), torch.enable_grad():
        if n_steps == 1:
            leaves: dict[str, torch.Tensor] = {}

            def mk(hook_name):
                def f(act, hook=None):
                    new = act
                    for c in comps:
                        if c.hook == hook_name:
                            leaf = c.take(act).detach().clone().requires_grad_(True)
                            leaves[c.name] = leaf
                            new = c.put(new, leaf)
                    return new

                return f

            hooks = sorted({c.hook for c in comps})
            logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(h, mk(h)) for h in hooks])
            _batch_loss(model, logits, batch).backward()
            for c in comps:
                out[c.name] = float((_grad(leaves[c.name]) * deltas[c.name]).sum())
            return out
        alphas = (torch.arange(n_steps, dtype=torch.float32) + 0.5) / n_steps
        big = _repeat_batch(batch, n_steps)
        B = batch.tokens.shape[0]
        for c in comps:
            a0, d = clean[c.name], deltas[c.name]
            al = (
                alphas.repeat_interleave(B).view(-1, *([1] * (a0.ndim - 1))).to(a0.device, a0.dtype)
            )
            path = a0.repeat(n_steps, *([1] * (a0.ndim - 1))) + al * d.repeat(
                n_steps, *([1] * (d.ndim - 1))
            )
            leaf = path.detach().requires_grad_(True)
            fn = lambda act, hook=None, c=c, leaf=leaf: c.put(act, leaf)  # noqa: E731
            logits = model.run_with_hooks(big.tokens, fwd_hooks=[(c.hook, fn)])
            # readout_loss averages over all n_steps·B rows, i.e. (1/n_steps) Σ_k loss_k
            _batch_loss(model, logits, big).backward()
            out[c.name] = float((_grad(leaf) * d.repeat(n_steps, *([1] * (d.ndim - 1)))).sum())
    return out


def _repeat_batch(batch: dyck.DyckSplit, k: int) -> dyck.DyckSplit:
    return dyck.DyckSplit(
        batch.tokens.repeat(k, 1),
        {n: v.repeat(k, 1) for n, v in batch.labels.items()},
        batch.mask.repeat(k, 1),
        batch.lengths.repeat(k),
        batch.kind.repeat(k),
        batch.name,
    )


def integrated_gradients(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, x1: torch.Tensor, n_steps: int = 16
) -> float:
    """Midpoint-rule integrated gradients of a scalar function ``f`` from ``x0`` to ``x1``:
    ``Σ_k ∇f(x0 + α_k (x1 − x0)) · (x1 − x0) / n_steps`` ≈ ``f(x1) − f(x0)`` (``n_steps = 1`` with
    ``α = 0`` instead is attribution patching; see :func:`attribution_patching`). Exact for
    quadratic ``f``."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    d = (x1 - x0).detach()
    total = 0.0
    for k in range(n_steps):
        x = (x0 + (k + 0.5) / n_steps * d).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x), x)
        total += float((g * d).sum()) / n_steps
    return total


def attribution_patching(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, x1: torch.Tensor
) -> float:
    """First-order prediction of ``f(x1) − f(x0)``: ``∇f(x0) · (x1 − x0)``."""
    x = x0.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x)
    return float((g * (x1 - x0).detach()).sum())


# --------------------------------------------------------------------------------------------
# corrupted inputs
# --------------------------------------------------------------------------------------------


def corrupt_tokens(tokens: torch.Tensor, mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A copy of ``tokens (n, T)`` with one content bracket per string replaced by a different
    bracket (uniform position among the brackets, uniform replacement among the 5 others).
    Strings without a bracket are unchanged. Same shape and PAD layout as the input."""
    if tokens.shape != mask.shape:
        raise ValueError(
            f"tokens and mask must have the same shape, got {tuple(tokens.shape)} and "
            f"{tuple(mask.shape)}"
        )
    g = torch.Generator().manual_seed(int(seed))
    out = tokens.clone()
    brackets = torch.tensor(dyck.BRACKETS)
    is_br = torch.isin(tokens.cpu(), brackets) & mask.cpu()
    for i in range(tokens.shape[0]):
        pos = torch.nonzero(is_br[i]).flatten()
        if len(pos) == 0:
            continue
        p = int(pos[torch.randint(len(pos), (1,), generator=g)])
        old = int(tokens[i, p])
        choices = [b for b in dyck.BRACKETS if b != old]
        out[i, p] = choices[int(torch.randint(len(choices), (1,), generator=g))]
    return out


def relabel(
    batch: dyck.DyckSplit, tokens: torch.Tensor, depth_after_invalid: str = "ignore"
) -> dyck.DyckSplit:
    """``batch`` with ``tokens`` in place of its tokens and labels recomputed for them."""
    lab = dyck.label_tokens(tokens.cpu().numpy(), depth_after_invalid)
    labels = {
        k: torch.as_tensor(np.asarray(lab[k])).long().to(tokens.device) for k in dyck.READOUT_SIZES
    }
    return dyck.DyckSplit(tokens, labels, tokens != dyck.PAD, batch.lengths, batch.kind, batch.name)


# --------------------------------------------------------------------------------------------
# component correspondence across seeds
# --------------------------------------------------------------------------------------------


def _w(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().double().cpu() for k, v in model.named_parameters()}


def _quiet():
    """Silence TransformerLens's "Moving model to device" / "Changing model dtype" prints."""
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def fold_gains(model: Any):
    """The same function with every norm gain folded into the weights that read it (gains = 1):
    :func:`polyrot_utils.tasks.dyck.toy.rotate_residual` with the identity."""

    d = model.cfg.d_model
    with _quiet():
        return rotate_residual(model, torch.eye(d, dtype=next(model.parameters()).dtype))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


def head_similarity(model_a: Any, model_b: Any, layer: int) -> np.ndarray:
    """``(n_heads, n_heads)``: cosine of the heads' OV circuits ``W_V W_O (d, d)`` plus cosine of
    their QK circuits ``W_Q W_Kᵀ (d, d)``; both models' weights as given (pass a source already
    rotated into the target's basis and both gain-folded). Invariant to a head's internal basis."""
    wa, wb = _w(model_a), _w(model_b)
    p = f"blocks.{layer}.attn."
    ov_a = torch.einsum("hdk,hke->hde", wa[p + "W_V"], wa[p + "W_O"])
    ov_b = torch.einsum("hdk,hke->hde", wb[p + "W_V"], wb[p + "W_O"])
    qk_a = torch.einsum("hdk,hek->hde", wa[p + "W_Q"], wa[p + "W_K"])
    qk_b = torch.einsum("hdk,hek->hde", wb[p + "W_Q"], wb[p + "W_K"])
    H = ov_a.shape[0]
    return np.array(
        [[_cos(ov_a[i], ov_b[j]) + _cos(qk_a[i], qk_b[j]) for j in range(H)] for i in range(H)]
    )


def match_heads(model_a: Any, model_b: Any) -> dict[int, list[int]]:
    """``{layer: perm}``: head ``i`` of ``model_a`` corresponds to head ``perm[i]`` of ``model_b``
    (linear assignment maximising :func:`head_similarity`). Weights only — never effects."""
    from scipy.optimize import linear_sum_assignment

    out = {}
    for layer in range(model_a.cfg.n_layers):
        sim = head_similarity(model_a, model_b, layer)
        rows, cols = linear_sum_assignment(sim, maximize=True)
        out[layer] = [int(c) for c in cols[np.argsort(rows)]]
    return out


def match_neurons(model_a: Any, model_b: Any, layer: int) -> list[int]:
    """MLP neuron ``i`` of ``model_a`` ↔ neuron ``perm[i]`` of ``model_b``: linear assignment on the
    cosine of the concatenated ``[W_in[:, i]; W_out[i, :]]`` (source already in the target
    basis)."""
    from scipy.optimize import linear_sum_assignment

    wa, wb = _w(model_a), _w(model_b)
    p = f"blocks.{layer}.mlp."
    fa = torch.cat([wa[p + "W_in"].T, wa[p + "W_out"]], 1)
    fb = torch.cat([wb[p + "W_in"].T, wb[p + "W_out"]], 1)
    fa = fa / fa.norm(dim=1, keepdim=True).clamp_min(1e-30)
    fb = fb / fb.norm(dim=1, keepdim=True).clamp_min(1e-30)
    rows, cols = linear_sum_assignment((fa @ fb.T).numpy(), maximize=True)
    return [int(c) for c in cols[np.argsort(rows)]]


def component_correspondence(
    model_a: Any, model_b: Any, R: torch.Tensor | np.ndarray | None = None, how: str = "matched"
) -> dict[str, str]:
    """``{name in model_a: name in model_b}``. ``how="identity"``: same index; ``"matched"``:
    heads by :func:`match_heads` after rotating ``model_a`` by ``R`` (default identity) into
    ``model_b``'s basis, gains folded in both. MLPs correspond layer by layer."""
    comps = components(model_a)
    if how == "identity":
        return {c.name: c.name for c in comps}
    if how != "matched":
        raise ValueError(f"how must be 'identity' or 'matched', got {how!r}")
    a, b = aligned_pair(model_a, model_b, R)
    perms = match_heads(a, b)
    return {
        c.name: (
            Component(c.layer, "head", perms[c.layer][c.head]).name
            if c.kind == "head" and c.head is not None
            else c.name
        )
        for c in comps
    }


def aligned_pair(model_a: Any, model_b: Any, R: torch.Tensor | np.ndarray | None = None):
    """``(model_a rotated by R, gains folded; model_b, gains folded)`` — float64 copies."""

    a64, b64 = _f64(model_a), _f64(model_b)
    d = model_a.cfg.d_model
    R64 = (
        torch.eye(d, dtype=torch.float64)
        if R is None
        else torch.as_tensor(nearest_orthogonal(as_tensor(R, "R", dtype=torch.float64).cpu()))
    )
    with _quiet():
        return rotate_residual(a64, R64), fold_gains(b64)


# --------------------------------------------------------------------------------------------
# P bar
# --------------------------------------------------------------------------------------------

#: the weight matrices compared by the P bar (gains are 1 after folding; biases are zero)
P_TENSORS = (
    "embed.W_E",
    "attn.W_Q",
    "attn.W_K",
    "attn.W_V",
    "attn.W_O",
    "mlp.W_in",
    "mlp.W_out",
    "unembed.W_U",
)


def _permute(
    params: dict[str, torch.Tensor],
    n_layers: int,
    head_perms: Mapping[int, Sequence[int]],
    neuron_perms: Mapping[int, Sequence[int]],
) -> dict[str, torch.Tensor]:
    """Reorder source params so that index ``j`` of the target corresponds:
    ``new[perm[i]] = old[i]``.
    """
    out = dict(params)
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        inv = np.argsort(np.asarray(head_perms[layer]))
        for k in ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O"):
            out[p + k] = params[p + k][inv]
        if layer in neuron_perms:
            invn = np.argsort(np.asarray(neuron_perms[layer]))
            out[p + "mlp.W_in"] = params[p + "mlp.W_in"][:, invn]
            out[p + "mlp.W_out"] = params[p + "mlp.W_out"][invn]
    return out


def _procrustes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The orthogonal ``T`` (O(d), uncentred) minimising ‖a T − b‖_F: rows of a onto rows of b."""
    return torch.as_tensor(
        fit_rotation(a, b, special=False, center=False, allow_underdetermined=True)
    )


def _head_orthogonal(
    params: dict[str, torch.Tensor], target: dict[str, torch.Tensor], n_layers: int
) -> dict[str, torch.Tensor]:
    out = dict(params)
    for layer in range(n_layers):
        p = f"blocks.{layer}.attn."
        for h in range(params[p + "W_Q"].shape[0]):
            # QK: W_Q M, W_K M (M orthogonal keeps W_Q W_Kᵀ); OV: W_V N, Nᵀ W_O
            M = _procrustes(
                torch.cat([params[p + "W_Q"][h], params[p + "W_K"][h]]),
                torch.cat([target[p + "W_Q"][h], target[p + "W_K"][h]]),
            )
            N = _procrustes(
                torch.cat([params[p + "W_V"][h], params[p + "W_O"][h].T]),
                torch.cat([target[p + "W_V"][h], target[p + "W_O"][h].T]),
            )
            for k, T in (("W_Q", M), ("W_K", M), ("W_V", N)):
                out[p + k] = out[p + k].clone()
                out[p + k][h] = params[p + k][h] @ T
            out[p + "W_O"] = out[p + "W_O"].clone()
            out[p + "W_O"][h] = N.T @ params[p + "W_O"][h]
    return out


def _tensor_names(model: Any) -> list[str]:
    names = ["embed.W_E"]
    for layer in range(model.cfg.n_layers):
        names += [f"blocks.{layer}.{k}" for k in P_TENSORS if k.startswith(("attn", "mlp"))]
    return [*names, "unembed.W_U"]


def parametric_bar(
    model_a: Any,
    model_b: Any,
    R: torch.Tensor | np.ndarray | None,
    levels: Sequence[str] = P_LEVELS,
) -> list[dict[str, Any]]:
    """Per-tensor weight MSE of ``model_a`` aligned to ``model_b`` at each alignment level.

    ``R (d, d)`` maps ``model_a``'s residual basis onto ``model_b``'s (``x_a @ R ≈ x_b``; e.g. a
    Procrustes fit on activations). Rows ``{level, tensor, mse, rel_mse, numel}`` with
    ``rel_mse = mse / mean(W_b²)`` (0: equal; 1: as far as predicting zero; 2: uncorrelated of
    equal size). The ``"none"`` level ignores ``R``. Both models are gain-folded float64 copies.
    """
    bad = [lv for lv in levels if lv not in P_LEVELS]
    if bad:
        raise ValueError(f"levels {bad} unknown; choose from {P_LEVELS}")
    names = _tensor_names(model_a)
    target_model = fold_gains(_f64(model_b))
    tgt = _w(target_model)
    rows = []
    a_plain, _ = aligned_pair(model_a, model_b, None)
    a_rot, _ = aligned_pair(model_a, model_b, R) if R is not None else (a_plain, None)
    cache: dict[str, dict[str, torch.Tensor]] = {}
    for lv in levels:
        if lv == "none":
            src = _w(a_plain)
        else:
            src = _w(a_rot)
            if lv in ("permutation", "head_orthogonal"):
                if "perm" not in cache:
                    hp = match_heads(a_rot, target_model)
                    npm = {
                        layer: match_neurons(a_rot, target_model, layer)
                        for layer in range(model_a.cfg.n_layers)
                        if not model_a.cfg.attn_only
                    }
                    cache["perm"] = _permute(src, model_a.cfg.n_layers, hp, npm)
                src = cache["perm"]
            if lv == "head_orthogonal":
                src = _head_orthogonal(src, tgt, model_a.cfg.n_layers)
        for n in names:
            diff = src[n] - tgt[n]
            ms = float((diff**2).mean())
            rows.append(
                {
                    "level": lv,
                    "tensor": n,
                    "mse": ms,
                    "rel_mse": ms / max(float((tgt[n] ** 2).mean()), 1e-30),
                    "numel": int(diff.numel()),
                }
            )
    return rows


def _f64(model: Any):
    """A float64 copy (TransformerLens prints a line when it changes dtype: silenced)."""

    with _quiet():
        return to_float64(model)


# --------------------------------------------------------------------------------------------
# fitting one R for the whole residual stream
# --------------------------------------------------------------------------------------------


def stream_rotation(
    model_a: Any,
    model_b: Any,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    sites: Sequence[str] | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """One SO(d) Procrustes rotation for the whole residual stream: rows of every residual site
    stacked (each site centred separately), ``x_a @ R ≈ x_b``. ``(d, d)`` float64 numpy."""

    sites = (
        list(sites) if sites is not None else [s for s in resid_sites(model_a, include_final=False)]
    )
    xa = collect_activations(
        model_a, tokens, sites, batch_size=batch_size, mask=mask, dtype=torch.float64
    )
    xb = collect_activations(
        model_b, tokens, sites, batch_size=batch_size, mask=mask, dtype=torch.float64
    )
    A = torch.cat([xa[s] - xa[s].mean(0) for s in sites])
    B = torch.cat([xb[s] - xb[s].mean(0) for s in sites])
    return np.asarray(fit_rotation(A.numpy(), B.numpy(), center=False))


# --------------------------------------------------------------------------------------------
# B bar
# --------------------------------------------------------------------------------------------


def behaviour_bar(
    models: Mapping[Any, Any], split: dyck.DyckSplit, pairs: Sequence[tuple[Any, Any]] | None = None
) -> list[dict[str, Any]]:
    """Rows ``{a, b, readout, kl_ab, kl_ba, top1_agreement}`` for each pair (default: all pairs)
    plus a ``readout="mean"`` row averaging the three readouts (the paper's ``mean_kl`` pools all
    positions of all readouts: the same number when every readout is defined at every position)."""

    rows = []
    pairs = list(pairs) if pairs is not None else None
    for r in functional_agreement(dict(models), split):
        if pairs is None or (r["a"], r["b"]) in pairs or (r["b"], r["a"]) in pairs:
            rows.append(r)
    out = list(rows)
    keys = sorted({(r["a"], r["b"]) for r in rows}, key=str)
    for a, b in keys:
        sub = [r for r in rows if (r["a"], r["b"]) == (a, b)]
        out.append(
            {
                "a": a,
                "b": b,
                "readout": "mean",
                "top1_agreement": float(np.mean([r["top1_agreement"] for r in sub])),
                "kl_ab": float(np.mean([r["kl_ab"] for r in sub])),
                "kl_ba": float(np.mean([r["kl_ba"] for r in sub])),
            }
        )
    return out


def label_kl_bar(
    model: Any,
    splits: Mapping[str, dyck.DyckSplit],
    weights: Mapping[str, float] | None = None,
    eps: float = 1e-6,
    batch_size: int = 512,
) -> dict[str, Any]:
    """The paper's within-seed bar B (verification/bar_behavioral.py): mean KL(spec ‖ model) over
    (position, readout), the spec being the true label one-hot smoothed to ``1 − eps`` with
    ``eps/(K − 1)`` on every other class (its ``spec_distribution_log``); positions where a
    readout is undefined are skipped.

    The paper samples its batches 60/20/20 from train / compositional / long strings; pass the
    splits and ``weights`` (default equal) of the mixture this book has: the result is the
    weighted mean of each split's pooled mean. Returns ``{"mean_kl", "per_readout", "per_split"}``.
    """

    if not splits:
        raise ValueError("splits must name at least one DyckSplit")
    w = {k: float((weights or {}).get(k, 1.0)) for k in splits}
    if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    per_split, per_readout = {}, {name: 0.0 for name in dyck.READOUT_SIZES}
    for name_s, split in splits.items():
        logits = readout_logits(model, split, batch_size)
        tot, n = 0.0, 0
        for name, K in dyck.READOUT_SIZES.items():
            valid = split.readout_mask(name)[split.mask]
            lab = split.labels[name][split.mask][valid]
            logq = torch.log_softmax(logits[name][valid].double(), dim=-1)
            p = torch.full((len(lab), K), eps / (K - 1), dtype=torch.float64)
            p.scatter_(1, lab.view(-1, 1), 1.0 - eps)
            kl = (p * (p.log() - logq)).sum(-1)
            tot += float(kl.sum())
            n += int(kl.numel())
            per_readout[name] += w[name_s] * float(kl.mean()) if kl.numel() else 0.0
        per_split[name_s] = tot / max(n, 1)
    z = sum(w.values())
    return {
        "mean_kl": sum(w[k] * v for k, v in per_split.items()) / z,
        "per_readout": {k: v / z for k, v in per_readout.items()},
        "per_split": per_split,
    }


# --------------------------------------------------------------------------------------------
# C and Pr bars
# --------------------------------------------------------------------------------------------


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r of two equal-length sequences; NaN if either is constant or shorter than 2."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.shape} and {b.shape}")
    if len(a) < 2 or a.std() < 1e-15 or b.std() < 1e-15:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def causal_table(
    model: Any, batch: dyck.DyckSplit, corrupted_tokens: torch.Tensor, n_steps: int = 8
) -> list[dict[str, Any]]:
    """Per component: ``measured`` (loss change when its activation is patched from the corrupted
    run into the clean run), ``atp`` and ``ig`` (predictions; see :func:`predicted_effects`)."""
    comps = components(model)
    with torch.no_grad():
        patch = hook_activations(model, corrupted_tokens, comps)
    return _effects_table(model, batch, patch, comps, n_steps)


def ablation_effects(
    model: Any, batch: dyck.DyckSplit, means: Mapping[str, torch.Tensor], n_steps: int = 8
) -> list[dict[str, Any]]:
    """Per component: ``measured`` loss change under mean ablation (activation replaced by
    ``means[name]`` at every position), and its ``atp`` / ``ig`` predictions."""
    return _effects_table(model, batch, means, components(model), n_steps)


def _effects_table(
    model: Any,
    batch: dyck.DyckSplit,
    patch: Mapping[str, torch.Tensor],
    comps: Sequence[Component],
    n_steps: int,
) -> list[dict[str, Any]]:
    """The rows of :func:`causal_table` / :func:`ablation_effects`: per component of ``comps``,
    the ``measured`` loss change when its activation is replaced by ``patch[name]``, and the
    ``atp`` (one step) and ``ig`` (``n_steps``; = ``atp`` when ``n_steps <= 1``) predictions."""
    meas = measured_effects(model, batch, patch, comps)
    atp = predicted_effects(model, batch, patch, comps, n_steps=1)
    ig = predicted_effects(model, batch, patch, comps, n_steps=n_steps) if n_steps > 1 else atp
    return [
        {"component": c.name, "measured": meas[c.name], "atp": atp[c.name], "ig": ig[c.name]}
        for c in comps
    ]


def cross_seed_r(
    table_a: Sequence[Mapping[str, Any]],
    table_b: Sequence[Mapping[str, Any]],
    correspondence: Mapping[str, str],
    predicted: str = "ig",
    measured: str = "measured",
) -> float:
    """Pearson r between ``table_a[predicted]`` (seed A) and ``table_b[measured]`` (seed B) over
    corresponding components (``correspondence``: A name → B name)."""
    a = {r["component"]: r for r in table_a}
    b = {r["component"]: r for r in table_b}
    names = [n for n in a if correspondence.get(n) in b]
    return pearson(
        [a[n][predicted] for n in names], [b[correspondence[n]][measured] for n in names]
    )


__all__ = [
    "PAPER_BARS",
    "P_LEVELS",
    "P_TENSORS",
    "Component",
    "ablation_effects",
    "aligned_pair",
    "attribution_patching",
    "behaviour_bar",
    "causal_table",
    "component_correspondence",
    "component_means",
    "components",
    "corrupt_tokens",
    "cross_seed_r",
    "fold_gains",
    "head_similarity",
    "hook_activations",
    "integrated_gradients",
    "label_kl_bar",
    "match_heads",
    "match_neurons",
    "measured_effects",
    "parametric_bar",
    "pearson",
    "predicted_effects",
    "relabel",
    "stream_rotation",
]
