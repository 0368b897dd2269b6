"""Several toy models as one vectorised ensemble: stacked weights, batched forward, per-member loss.

Convention: every parameter of the toy (:func:`polyrot_utils.tasks.dyck.toy.build_toy`) is stacked
along
a new leading *member* dimension ``E``; ``StackedToy.params[name]`` is ``(E, *shape)``. The
forward pass (:func:`ensemble_logits`) takes tokens ``(E, B, T)`` — each member its own batch —
and returns logits ``(E, B, T, 51)`` equal, to float tolerance, to each member's
``HookedTransformer`` on its batch (pre-norm RMSNorm with gain, eps from the model config;
causal attention with scale ``1/sqrt(d_head)``; ReLU MLP; no biases — :func:`stack_models`
refuses models whose biases are not zero). Weights are multiplied with batched GEMMs
(``torch.bmm``), attention runs through ``scaled_dot_product_attention`` over ``E·B`` sequences.

The loss of member ``e`` is the paper's: the sum over the three readouts of the mean
cross-entropy over that member's non-PAD positions; the ensemble loss is the sum over members,
so each member's gradient is exactly its own. :class:`EnsembleOptimizer` applies AdamW to the
stacked tensors (elementwise, hence per member), clips each member's gradient norm separately,
and keeps *frozen* member slices (``frozen[name]``: bool ``(E,)``, e.g. Cohort A's shared
``embed.W_E``/``unembed.W_U``) bit-identical by restoring them after every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from polyrot_utils.tasks.dyck.language import READOUT_SIZES
from polyrot_utils.tasks.dyck.toy import build_toy, load_parameter_dict

__all__ = [
    "EnsembleOptimizer",
    "StackedToy",
    "adamw_update",
    "ensemble_logits",
    "member_losses",
    "stack_models",
]

_BIAS_SUFFIXES = ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")


@dataclass
class StackedToy:
    """``E`` toy models as stacked tensors. ``seeds[e]`` is member ``e``'s init seed;
    ``trainable`` the parameter names that are optimised (template's ``requires_grad``);
    ``frozen[name]`` (bool ``(E,)``) marks members whose slice of a trainable tensor is fixed."""

    params: dict[str, torch.Tensor]
    seeds: tuple[int, ...]
    trainable: tuple[str, ...]
    frozen: dict[str, torch.Tensor] = field(default_factory=dict)
    n_layers: int = 2
    n_heads: int = 4
    eps: float = 1e-5

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def member_state(self, e: int) -> dict[str, torch.Tensor]:
        """Member ``e``'s parameters as a ``{name: tensor}`` dict (detached CPU float32 copies)."""
        return {k: v[e].detach().float().cpu().clone() for k, v in self.params.items()}

    def unstack(self, e: int, init_scale: float = 0.02):
        """Member ``e`` as an ordinary ``HookedTransformer`` (CPU, eval mode; ``requires_grad``
        flags as :func:`build_toy` sets them, frozen slices marked frozen)."""
        model = build_toy(self.seeds[e], init_scale=init_scale, device="cpu")
        load_parameter_dict(model, self.member_state(e))
        for name, p in model.named_parameters():
            if name in self.frozen and bool(self.frozen[name][e]):
                p.requires_grad_(False)
        return model.eval()


def stack_models(
    models: list,
    seeds: list[int] | tuple[int, ...],
    frozen: dict[str, list[bool]] | None = None,
    device: str | torch.device = "cpu",
) -> StackedToy:
    """Stack ``models`` (toy ``HookedTransformer``s of one architecture) into a :class:`StackedToy`.

    ``frozen``: ``{name: [bool per member]}`` — members whose tensor ``name`` is not trained."""
    if len(models) < 1 or len(models) != len(seeds):
        raise ValueError(
            f"models and seeds must be non-empty and of equal length, got {len(models)}, "
            f"{len(seeds)}"
        )
    named = [dict(m.named_parameters()) for m in models]
    names = list(named[0])
    for i, nm in enumerate(named):
        if list(nm) != names:
            raise ValueError(f"model {i} has different parameter names from model 0")
        for k, p in nm.items():
            if k.rsplit(".", 1)[-1] in _BIAS_SUFFIXES and bool(p.detach().abs().max() > 0):
                raise ValueError(
                    f"model {i}: bias {k} is not zero; the ensemble forward has no biases"
                )
    params = {k: torch.stack([nm[k].detach().cpu() for nm in named]).to(device) for k in names}
    trainable = tuple(k for k, p in named[0].items() if p.requires_grad)
    fz: dict[str, torch.Tensor] = {}
    for k, flags in (frozen or {}).items():
        if k not in params:
            raise ValueError(f"frozen names unknown parameter {k!r}; parameters: {names}")
        if len(flags) != len(models):
            raise ValueError(
                f"frozen[{k!r}] must have one flag per member ({len(models)}), got {len(flags)}"
            )
        if any(flags):
            fz[k] = torch.tensor([bool(f) for f in flags], device=device)
    cfg = models[0].cfg
    return StackedToy(
        params=params,
        seeds=tuple(int(s) for s in seeds),
        trainable=trainable,
        frozen=fz,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        eps=float(cfg.eps),
    )


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    # x (E, N, d), w (E, d)
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return (x / scale) * w[:, None, :]


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax(q kᵀ / sqrt(d_head) + causal mask) v with plain batched matmuls; ``(N, H, T, dh)``.
    (For T of a few dozen this is faster on CPU than ``scaled_dot_product_attention``.)"""
    _N, _H, T, dh = q.shape
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(causal, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def ensemble_logits(
    p: dict[str, torch.Tensor],
    tokens: torch.Tensor,
    n_layers: int = 2,
    n_heads: int = 4,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Logits ``(E, B, T, 51)`` of the stacked toy ``p`` on ``tokens (E, B, T)`` (member e reads
    ``tokens[e]``)."""
    E, B, T = tokens.shape
    W_E = p["embed.W_E"]
    d = W_E.shape[-1]
    ar = torch.arange(E, device=tokens.device)[:, None, None]
    x = W_E[ar, tokens] + p["pos_embed.W_pos"][:, None, :T, :]  # (E, B, T, d)
    x = x.reshape(E, B * T, d)
    for layer in range(n_layers):
        pre = f"blocks.{layer}."
        h = _rms(x, p[pre + "ln1.w"], eps)
        W_Q, W_K, W_V = (
            p[pre + "attn.W_Q"],
            p[pre + "attn.W_K"],
            p[pre + "attn.W_V"],
        )  # (E, H, d, dh)
        H, dh = W_Q.shape[1], W_Q.shape[-1]
        W_qkv = torch.cat(
            [W.permute(0, 2, 1, 3).reshape(E, d, H * dh) for W in (W_Q, W_K, W_V)], dim=-1
        )
        qkv = torch.bmm(h, W_qkv).view(E, B, T, 3, H, dh)
        q, k, v = (
            qkv[:, :, :, i].permute(0, 1, 3, 2, 4).reshape(E * B, H, T, dh) for i in range(3)
        )
        z = _causal_attention(q, k, v)  # (E*B, H, T, dh)
        z = z.view(E, B, H, T, dh).permute(0, 1, 3, 2, 4).reshape(E, B * T, H * dh)
        x = x + torch.bmm(z, p[pre + "attn.W_O"].reshape(E, H * dh, d))
        h = _rms(x, p[pre + "ln2.w"], eps)
        x = x + torch.bmm(torch.relu(torch.bmm(h, p[pre + "mlp.W_in"])), p[pre + "mlp.W_out"])
    x = _rms(x, p["ln_final.w"], eps)
    return torch.bmm(x, p["unembed.W_U"]).view(E, B, T, -1)


def member_losses(
    logits: torch.Tensor, labels: dict[str, torch.Tensor], mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-member loss ``(E,)`` (sum over readouts of the masked mean CE) and per-readout
    accuracy ``{name: (E,)}``. ``labels[name]`` and ``mask`` are ``(E, B, T)``."""
    E = logits.shape[0]
    m = mask.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
    denom = m.sum((1, 2)).clamp(min=1)
    ftype = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype
    total = logits.new_zeros(E, dtype=ftype)
    accs = {}
    start = 0
    for name, size in READOUT_SIZES.items():
        lg = logits[..., start : start + size].to(ftype)
        start += size
        y = labels[name]
        ce = F.cross_entropy(lg.reshape(-1, size), y.reshape(-1), reduction="none").view_as(m)
        total = total + (ce * m).sum((1, 2)) / denom
        with torch.no_grad():
            accs[name] = ((lg.argmax(-1) == y).float() * m).sum((1, 2)) / denom
    return total, accs


def adamw_update(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: torch.Tensor,
    lr: torch.Tensor,
    betas: tuple[float, float],
    weight_decay: float,
    eps: float = 1e-8,
) -> None:
    """In-place AdamW (torch's formula) on stacked tensors with a per-member ``step`` and ``lr``
    (both ``(E,)``, ``step`` already incremented). ``p, g, m, v`` are ``(E, ...)``."""
    b1, b2 = betas
    shape = (-1,) + (1,) * (p.ndim - 1)
    lr_ = lr.view(shape).to(p.dtype)
    bc1 = (1 - b1 ** step.double()).view(shape).to(p.dtype)
    bc2 = (1 - b2 ** step.double()).view(shape).to(p.dtype)
    p.mul_(1 - lr_ * weight_decay)
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    p.sub_(lr_ / bc1 * m / (v.sqrt() / bc2.sqrt() + eps))


class EnsembleOptimizer:
    """AdamW over the stacked trainable tensors, per member: its own step count and learning rate,
    its own gradient-norm clip, and frozen slices kept bit-identical.

    Equal (float tolerance) to ``torch.optim.AdamW`` + ``clip_grad_norm_`` run on each member
    separately: the update is elementwise; the clip factor ``min(1, max_norm / (‖g_e‖ + 1e-6))``
    uses member ``e``'s own gradient (frozen slices excluded). Members may be added
    (:meth:`add_members`, fresh state) or removed (:meth:`keep`) between steps."""

    def __init__(
        self,
        stacked: StackedToy,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 1e-4,
        grad_clip: float = 1.0,
    ) -> None:
        self.stacked = stacked
        self.betas = betas
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        dev = next(iter(stacked.params.values())).device
        for k, v in stacked.params.items():
            v.requires_grad_(k in stacked.trainable)
        self.m = {k: torch.zeros_like(stacked.params[k]) for k in stacked.trainable}
        self.v = {k: torch.zeros_like(stacked.params[k]) for k in stacked.trainable}
        self.steps = torch.zeros(stacked.n_members, dtype=torch.long, device=dev)

    def zero_grad(self) -> None:
        for k in self.stacked.trainable:
            self.stacked.params[k].grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> torch.Tensor:
        """One update with per-member learning rates ``lr (E,)``; returns per-member grad norms."""
        st = self.stacked
        E = st.n_members
        P = st.params
        grads = {k: g for k in st.trainable if (g := P[k].grad) is not None}
        for k, g in grads.items():
            if k in st.frozen:
                g[st.frozen[k]] = 0
        sq = sum(g.float().pow(2).reshape(E, -1).sum(1) for g in grads.values())
        norms = torch.as_tensor(sq).sqrt()
        coef = (
            (self.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            if self.grad_clip > 0
            else torch.ones_like(norms)
        )
        self.steps += 1
        for k in st.trainable:
            p = P[k]
            if p.grad is None:
                continue
            g = p.grad * coef.view((-1,) + (1,) * (p.ndim - 1)).to(p.dtype)
            if k in st.frozen:
                keep = p.data[st.frozen[k]].clone()
            adamw_update(
                p.data, g, self.m[k], self.v[k], self.steps, lr, self.betas, self.weight_decay
            )
            if k in st.frozen:
                p.data[st.frozen[k]] = keep
        return norms

    def keep(self, idx: list[int]) -> None:
        """Keep only members ``idx`` (in that order): weights, optimiser state,
        frozen flags, seeds.
        """
        st = self.stacked
        ix = torch.tensor(idx, dtype=torch.long, device=self.steps.device)
        for k in list(st.params):
            st.params[k] = st.params[k].detach()[ix].clone().requires_grad_(k in st.trainable)
        for k in self.m:
            self.m[k], self.v[k] = self.m[k][ix].clone(), self.v[k][ix].clone()
        st.frozen = {k: f[ix] for k, f in st.frozen.items() if bool(f[ix].any())}
        st.seeds = tuple(st.seeds[i] for i in idx)
        self.steps = self.steps[ix].clone()

    def add_members(self, other: StackedToy) -> None:
        """Append ``other``'s members (fresh optimiser state, step 0)."""
        st = self.stacked
        if set(other.params) != set(st.params) or other.trainable != st.trainable:
            raise ValueError(
                "add_members: the new members must have the same parameters and trainable set"
            )
        E0, E1 = st.n_members, other.n_members
        dev = self.steps.device
        for k in list(st.params):
            st.params[k] = torch.cat(
                [st.params[k].detach(), other.params[k].to(dev)]
            ).requires_grad_(k in st.trainable)
        for k in self.m:
            self.m[k] = torch.cat([self.m[k], torch.zeros_like(other.params[k]).to(dev)])
            self.v[k] = torch.cat([self.v[k], torch.zeros_like(other.params[k]).to(dev)])
        names = set(st.frozen) | set(other.frozen)

        def zeros(n: int) -> torch.Tensor:
            return torch.zeros(n, dtype=torch.bool, device=dev)

        st.frozen = {
            k: torch.cat([st.frozen.get(k, zeros(E0)), other.frozen.get(k, zeros(E1)).to(dev)])
            for k in names
        }
        st.seeds = st.seeds + other.seeds
        self.steps = torch.cat([self.steps, torch.zeros(E1, dtype=torch.long, device=dev)])
