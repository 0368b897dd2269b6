"""Sparse autoencoders: a TopK SAE (default) and a ReLU+L1 SAE, a fast trainer, rotation
transfer, and SAELens-format save/load.

Architecture and conventions (the same as SAELens v6, so a saved SAE loads there unchanged):

- parameters ``W_enc (d_in, d_sae)``, ``b_enc (d_sae,)``, ``W_dec (d_sae, d_in)``,
  ``b_dec (d_in,)``; activations are row vectors ``x (..., d_in)``;
- ``pre = (x - b_dec) @ W_enc + b_enc`` (SAELens's ``apply_b_dec_to_input=True``);
- TopK: ``f = relu(topk_k(pre))`` — keep the k largest pre-activations, ReLU them, zero the
  rest (SAELens's ``TopK`` module: topk first, then ReLU; the same values as
  ``topk(relu(pre))``);
- standard: ``f = relu(pre)``;
- ``decode(f) = f @ W_dec + b_dec``; decoder rows have unit norm (the trainer projects them
  back after every step), so ``rescale_acts_by_decoder_norm`` is ``False`` in the saved config.

Why TopK is the default (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):
k fixes the sparsity (L0) directly instead of through an L1 coefficient that has to be tuned
per site and per model; there is no L1 shrinkage of the activations, so no bias towards small
codes; there are fewer hyperparameters (k, width, lr); and dead latents, the usual failure at
small scale, are handled by the optional AuxK loss (the top ``k_aux`` dead latents are trained to
reconstruct the residual of the live ones). Comparing SAEs across seeds at equal k also makes
"same sparsity" exact, which the cross-seed comparisons of this book need.

Speed: the TopK trainer computes its gradients by hand. Only the encoder's forward matmul
``(B, d_in) @ (d_in, d_sae)`` is dense; decoding, the decoder gradient, the encoder gradient and
the bias gradients touch only the ``k`` selected latents per row (``O(B k d_in)`` instead of
``O(B d_sae d_in)`` each), which is several times faster than autograd through a dense decode.
Adam is applied to these exact gradients; the result equals autograd's up to float rounding
(see ``tests/test_sae.py``).

Rotation transfer (row vectors, ``x_src @ R ≈ x_tgt`` as in :mod:`polyrot_utils.core.procrustes`):
see :func:`transfer_sae`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polyrot_utils.core.cache import (
    atomic_save_safetensors,
    atomic_write_json,
    cached_entry,
    config_hash,
    load_safetensors,
)
from polyrot_utils.core.device import default_device, seed_everything
from polyrot_utils.core.metrics import explained_variance
from polyrot_utils.core.validate import as_tensor

Architecture = Literal["topk", "standard"]

SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
HISTORY_FILENAME = "history.json"
# The SAELens version whose on-disk format we write (``metadata.sae_lens_version``): SAELens
# treats configs without a version >= 6 as legacy (pre-6.0) and rewrites their keys.
SAELENS_FORMAT_VERSION = "6.54.12"

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _dtype_name(dtype: torch.dtype) -> str:
    for name, dt in _DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype}")


@dataclass
class SAEConfig:
    """Shape and metadata of an SAE (the fields SAELens's ``cfg.json`` needs).

    ``architecture`` is ``"topk"`` (``k`` latents active per row) or ``"standard"`` (ReLU; ``k``
    is ignored). ``hook_name`` / ``model_name`` record where the activations came from.
    """

    d_in: int
    d_sae: int
    architecture: Architecture = "topk"
    k: int | None = 8
    dtype: str = "float32"
    apply_b_dec_to_input: bool = True
    hook_name: str | None = None
    model_name: str | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def k_active(self) -> int:
        """``k`` of a TopK SAE (checked at construction); ``ValueError`` for a standard SAE."""
        if self.architecture != "topk" or self.k is None:
            raise ValueError(f"a {self.architecture!r} SAE has no k")
        return int(self.k)

    def __post_init__(self) -> None:
        for name in ("d_in", "d_sae"):
            val = getattr(self, name)
            if not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"{name} must be a positive integer, got {val!r}")
        if self.architecture not in ("topk", "standard"):
            raise ValueError(
                f"architecture must be 'topk' or 'standard', got {self.architecture!r}"
            )
        if self.architecture == "topk" and (
            self.k is None
            or not isinstance(self.k, (int, np.integer))
            or not 1 <= self.k <= self.d_sae
        ):
            raise ValueError(
                f"k must be an integer in [1, d_sae={self.d_sae}] for a TopK SAE, got {self.k!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")


class SAE(nn.Module):
    """A sparse autoencoder with SAELens's parameter names and forward convention.

    Shapes: ``x (..., d_in)`` → ``encode`` → ``f (..., d_sae)`` → ``decode`` → ``x_hat (...,
    d_in)``.
    Construct with random unit-norm decoder rows and ``W_enc = W_decᵀ`` (tied init), zero biases.
    """

    def __init__(
        self,
        cfg: SAEConfig,
        *,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = "cpu",
    ):
        super().__init__()
        self.cfg = cfg
        dtype = _DTYPES[cfg.dtype]
        w = torch.randn(cfg.d_sae, cfg.d_in, generator=generator, dtype=torch.float32)
        w = w / w.norm(dim=1, keepdim=True)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.W_dec = nn.Parameter(w.to(dtype=dtype, device=dev))
        self.W_enc = nn.Parameter(w.T.clone().contiguous().to(dtype=dtype, device=dev))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype, device=dev))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype, device=dev))

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    def _check_in(self, x: Tensor, name: str = "x") -> Tensor:
        if not isinstance(x, Tensor):  # a tensor keeps its autograd graph
            x = as_tensor(x, name, finite=False)
        if x.ndim < 1 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(
                f"{name} has last dimension {tuple(x.shape)[-1] if x.ndim else 'scalar'} (shape "
                f"{tuple(x.shape)}), "
                f"but this SAE has d_in={self.cfg.d_in}"
            )
        return x.to(device=self.W_enc.device, dtype=self.W_enc.dtype)

    # -- forward --------------------------------------------------------------------------------
    def pre_activations(self, x: Tensor) -> Tensor:
        """``(x - b_dec) @ W_enc + b_enc`` (or ``x @ W_enc + b_enc`` if not apply_b_dec_to_input),
        shape (..., d_sae).
        """
        x = self._check_in(x)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations ``f (..., d_sae)``; TopK keeps the k largest
        pre-activations, then ReLU.
        """
        pre = self.pre_activations(x)
        if self.cfg.architecture == "topk":
            vals, idx = torch.topk(pre, self.cfg.k_active, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
        return pre.relu()

    def decode(self, f: Tensor) -> Tensor:
        """``f @ W_dec + b_dec``, shape (..., d_in)."""
        if f.shape[-1] != self.cfg.d_sae:
            raise ValueError(
                f"f has last dimension {f.shape[-1]}, but this SAE has d_sae={self.cfg.d_sae}"
            )
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction ``decode(encode(x))``, shape (..., d_in)."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, batch_size: int = 8192) -> Tensor:
        """Reconstruction of ``x (n, d_in)`` in batches, without gradients;
        returned on x's device.
        """
        x = self._check_in(x)
        outs = [self.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(outs) if outs else x.clone()

    @torch.no_grad()
    def explained_variance(self, x: Tensor, batch_size: int = 8192) -> float:
        """EV of this SAE's reconstruction of ``x (n, d_in)`` (glossary *Explained variance*:
        1 − SSE / SS about x̄).
        """

        x = self._check_in(x)
        return float(explained_variance(x, self.reconstruct(x, batch_size=batch_size)))

    @torch.no_grad()
    def l0(self, x: Tensor, batch_size: int = 8192) -> float:
        """Mean number of non-zero latents per row of ``x``."""
        x = self._check_in(x)
        tot = 0.0
        for i in range(0, x.shape[0], batch_size):
            tot += float((self.encode(x[i : i + batch_size]) != 0).sum())
        return tot / max(x.shape[0], 1)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm, folding the norms into the encoder so outputs do not
        change.

        Each latent i is scaled by n_i = ‖W_dec[i]‖: ``W_dec[i] /= n_i``, ``W_enc[:, i] *= n_i``,
        ``b_enc[i] *= n_i``; relu and top-k commute with a positive per-latent scale only when all
        n_i are equal, so for TopK this is exact only for uniform norms (use at init or for
        ``standard`` SAEs).
        """
        n = self.W_dec.norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(n[:, None])
        self.W_enc.mul_(n[None, :])
        self.b_enc.mul_(n)

    def clone(self) -> SAE:
        new = SAE(
            replace(self.cfg, extra_metadata=dict(self.cfg.extra_metadata)),
            device=self.W_enc.device,
        )
        new.load_state_dict({k: v.detach().clone() for k, v in self.state_dict().items()})
        return new


# =============================================================================================
# Training
# =============================================================================================


@dataclass
class TrainConfig:
    """Everything that determines a trained SAE, given the activations (also the cache key).

    ``n_tokens`` rows are seen in total (``n_steps = ceil(n_tokens / batch_size)``), in shuffled
    epochs over the activations. ``lr=None`` picks ``2e-3 * sqrt(2**12 / d_sae)`` clipped to
    [2e-4, 4e-3] (Gao et al.'s 1/sqrt(width) scaling, calibrated on inputs normalised to
    mean squared norm d_in, which ``normalize=True`` does). The lr decays linearly to 0 over the
    last ``decay_frac`` of the steps. AuxK (TopK only): a latent is dead when it has not fired for
    ``dead_tokens`` rows (None: ``max(10 * batch_size, n_tokens // 20)``); ``aux_coef`` (Gao:
    1/32) times the top ``k_aux`` (None: ``d_in // 2``) dead latents' reconstruction of the
    residual is added to the loss; ``aux_coef=0`` turns it off. ``l1_coef`` is for ``standard``.
    """

    d_sae: int
    k: int | None = 8
    architecture: Architecture = "topk"
    lr: float | None = None
    n_tokens: int = 200_000
    batch_size: int = 1024
    seed: int = 0
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    normalize: bool = True
    decay_frac: float = 0.2
    aux_coef: float = 1.0 / 32.0
    k_aux: int | None = None
    dead_tokens: int | None = None
    l1_coef: float = 5e-3
    log_every: int = 50
    hook_name: str | None = None
    model_name: str | None = None

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return float(min(4e-3, max(2e-4, 2e-3 * math.sqrt(2**12 / self.d_sae))))


def geometric_median(x: Tensor, n_iter: int = 50, eps: float = 1e-6) -> Tensor:
    """Geometric median of the rows of ``x (n, d)`` by Weiszfeld's iteration
    (float64), shape (d,).
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (n, d) matrix, got shape {tuple(x.shape)}")
    xd = x.double()
    m = xd.mean(0)
    for _ in range(n_iter):
        w = 1.0 / (xd - m).norm(dim=1).clamp_min(eps)
        m_new = (w[:, None] * xd).sum(0) / w.sum()
        if (m_new - m).norm() <= eps * (1.0 + m.norm()):
            m = m_new
            break
        m = m_new
    return m.to(x.dtype)


def _check_activations(activations: Any, name: str = "activations") -> Tensor:
    """Training data: a real ``(n, d)`` matrix with n >= 2 rows (see :mod:`.validate`)."""
    x = as_tensor(activations, name, ndim=2, shape="(n, d) with n >= 2", min_size=1, finite=False)
    if x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (n, d) with n >= 2, got {tuple(x.shape)}")
    return x


def topk_indices(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact top-k (values, indices) along the last dim of ``pre (B, m)``, unsorted; faster than
    ``torch.topk`` on CPU when ``64 k > m`` (torch's slow nth_element path).

    Two stages: split each row into ``g`` chunks of ``c`` entries; a top-k entry must lie in one of
    the k chunks with the largest maxima (else k chunk maxima would exceed it), so take those k
    chunks (``k c`` entries) and run top-k on them. Same values as ``torch.topk``; with ties, any
    valid top-k set.
    """
    B, m = pre.shape
    if pre.device.type != "cpu" or 64 * k <= m:
        return torch.topk(pre, k, dim=-1, sorted=False)
    c = 1 << max(0, round(math.log2(max(1.0, math.sqrt(m / k)))))
    g = -(-m // c)
    if c < 2 or g < 2 * k:
        return torch.topk(pre, k, dim=-1, sorted=False)
    if g * c != m:
        pre = torch.cat([pre, pre.new_full((B, g * c - m), float("-inf"))], 1)
    chunks = pre.view(B, g, c)
    _, cidx = torch.topk(chunks.amax(-1), k, dim=-1, sorted=False)
    sel = torch.gather(chunks, 1, cidx[:, :, None].expand(B, k, c)).reshape(B, k * c)
    vals, j = torch.topk(sel, k, dim=-1, sorted=False)
    idx = cidx.gather(1, torch.div(j, c, rounding_mode="floor")) * c + j % c
    return vals, idx


def _decode_sparse(W_dec: Tensor, idx: Tensor, act: Tensor) -> Tensor:
    """``Σ_j act_bj W_dec[idx_bj]`` for idx/act (B, k): shape (B, d),
    without a dense (B, d_sae) code.
    """
    return torch.nn.functional.embedding_bag(idx, W_dec, per_sample_weights=act, mode="sum")


def _sparse_grads(
    W_enc: Tensor,
    W_dec: Tensor,
    xc: Tensor,
    idx: Tensor,
    act: Tensor,
    g_out: Tensor,
    grads: dict[str, Tensor],
) -> None:
    """Accumulate the gradients of ``L`` given ``g_out = dL/d(out)`` where ``out = Σ_j act_j
    W_dec[idx_j]``
    and ``act = relu(pre[idx])``, ``pre = xc @ W_enc + b_enc``, ``xc = x - b_dec``.

    Shapes: xc (B, d), idx/act (B, k), g_out (B, d). Every term costs O(B k d) (plus O(d d_sae)).
    """
    B, k = idx.shape
    d = xc.shape[1]
    flat = idx.reshape(-1)
    # decoder: dL/dW_dec[i] = Σ_{b,j: idx=i} act_bj g_out_b
    grads["W_dec"].index_add_(0, flat, (act[:, :, None] * g_out[:, None, :]).reshape(-1, d))
    # latent activations: dL/dact_bj = g_out_b · W_dec[idx_bj]; through relu
    W_sel = W_dec.index_select(0, flat).view(B, k, d)
    g_act = torch.bmm(W_sel, g_out[:, :, None]).squeeze(2) * (act > 0)
    g_b = torch.zeros_like(grads["b_enc"]).index_add_(0, flat, g_act.reshape(-1))
    grads["b_enc"].add_(g_b)
    # encoder: dL/dW_enc[:, i] = Σ g_act_bj xc_b  (accumulated transposed, (d_sae, d))
    grads["W_encT"].index_add_(0, flat, (g_act[:, :, None] * xc[:, None, :]).reshape(-1, d))
    # input-side b_dec: pre = (x − b_dec) W_enc + b_enc → dL/db_dec −= W_enc (dL/db_enc)
    grads["b_dec"].sub_(W_enc @ g_b)


@dataclass(frozen=True)
class _Schedule:
    """The batching and learning-rate plan both SAE trainers share.

    ``batch_size = min(cfg.batch_size, n)`` rows a step, ``n_steps = ceil(n_tokens / batch_size)``
    (at least 1), peak ``lr = cfg.resolved_lr()``, decaying linearly to 0 from step
    ``decay_start = int(n_steps * (1 - decay_frac))`` on.
    """

    batch_size: int
    n_steps: int
    lr: float
    decay_start: int

    @classmethod
    def plan(cls, n: int, cfg: TrainConfig) -> _Schedule:
        B = min(cfg.batch_size, n)
        n_steps = max(1, math.ceil(cfg.n_tokens / B))
        return cls(B, n_steps, cfg.resolved_lr(), int(n_steps * (1.0 - cfg.decay_frac)))

    def batches(
        self, x: Tensor, gen: torch.Generator, device: torch.device
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(step, xb)`` for every step: ``xb (batch_size, d)`` are the next rows of a
        ``gen`` permutation of ``x``'s rows; a new permutation when too few rows are left."""
        n, B = x.shape[0], self.batch_size
        perm = torch.randperm(n, generator=gen).to(device)
        pos = 0
        for step in range(self.n_steps):
            if pos + B > n:
                perm = torch.randperm(n, generator=gen).to(device)
                pos = 0
            yield step, x.index_select(0, perm[pos : pos + B])
            pos += B

    def optimizer_step(self, opt: torch.optim.Optimizer, sae: SAE, step: int) -> None:
        """Set ``step``'s lr (linear decay), step ``opt``, and rescale the decoder rows back
        to unit norm."""
        if step >= self.decay_start and self.n_steps > 1:
            for group in opt.param_groups:
                group["lr"] = self.lr * max(
                    0.0, (self.n_steps - step) / max(1, self.n_steps - self.decay_start)
                )
        opt.step()
        with torch.no_grad():
            sae.W_dec.data.div_(sae.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def log_due(self, step: int, log_every: int) -> bool:
        return (step + 1) % log_every == 0 or step == self.n_steps - 1

    def log(
        self, history: dict[str, Any], step: int, opt: torch.optim.Optimizer, **metrics: float
    ) -> None:
        """Append ``{step, tokens, **metrics, lr}`` (after ``step + 1`` steps) to
        ``history["steps"]``."""
        history["steps"].append(
            {
                "step": step + 1,
                "tokens": (step + 1) * self.batch_size,
                **metrics,
                "lr": opt.param_groups[0]["lr"],
            }
        )

    def finish(self, history: dict[str, Any]) -> None:
        history["n_steps"] = self.n_steps
        history["n_tokens_seen"] = self.n_steps * self.batch_size
        history["lr"] = self.lr


def _train_topk(
    sae: SAE,
    x: Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    history: dict[str, Any],
) -> None:
    n, d = x.shape
    sched = _Schedule.plan(n, cfg)
    B = sched.batch_size
    k = int(cfg.k)  # type: ignore[arg-type]
    k_aux = int(cfg.k_aux) if cfg.k_aux is not None else max(1, d // 2)
    dead_tokens = (
        cfg.dead_tokens if cfg.dead_tokens is not None else max(10 * B, cfg.n_tokens // 20)
    )
    params = [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec]
    opt = torch.optim.Adam(params, lr=sched.lr, betas=(0.9, 0.999), eps=1e-8)
    grads = {
        "W_encT": torch.zeros(sae.d_sae, d, device=device, dtype=x.dtype),
        "b_enc": torch.zeros(sae.d_sae, device=device, dtype=x.dtype),
        "W_dec": torch.zeros(sae.d_sae, d, device=device, dtype=x.dtype),
        "b_dec": torch.zeros(d, device=device, dtype=x.dtype),
    }
    since_fired = torch.zeros(
        sae.d_sae + 1, dtype=torch.long, device=device
    )  # last slot: sink for inactive picks
    var_total = float(((x - x.mean(0)) ** 2).sum(1).mean())  # per-row variance of the data
    log_loss, log_aux, log_count = 0.0, 0.0, 0
    for step, xb in sched.batches(x, gen, device):
        for g in grads.values():
            g.zero_()
        with torch.no_grad():
            W_enc, W_dec, b_enc, b_dec = (
                sae.W_enc.data,
                sae.W_dec.data,
                sae.b_enc.data,
                sae.b_dec.data,
            )
            xc = xb - b_dec
            pre = torch.addmm(b_enc, xc, W_enc)
            vals, idx = topk_indices(pre, k)
            act = vals.relu()
            recon = _decode_sparse(W_dec, idx, act) + b_dec
            err = recon - xb  # (B, d)
            g_out = err * (2.0 / B)  # d/d recon of mean_b Σ_d err²
            grads["b_dec"].add_(g_out.sum(0))
            _sparse_grads(W_enc, W_dec, xc, idx, act, g_out, grads)
            mse = float((err * err).sum()) / B
            since_fired += B
            since_fired.index_fill_(0, torch.where(act > 0, idx, sae.d_sae).reshape(-1), 0)
            aux_val = 0.0
            if cfg.aux_coef > 0:
                dead = since_fired[:-1] > dead_tokens
                n_dead = int(dead.sum())
                if n_dead > 0:
                    ka = min(k_aux, n_dead)
                    scale = min(n_dead / k_aux, 1.0)
                    pre_dead = pre.masked_fill(~dead[None, :], float("-inf"))
                    avals, aidx = topk_indices(pre_dead, ka)
                    aact = avals.relu()
                    arec = _decode_sparse(W_dec, aidx, aact)
                    resid = -err  # x - recon, treated as a constant
                    aerr = arec - resid
                    aux_val = float((aerr * aerr).sum()) / B
                    c = cfg.aux_coef * scale
                    _sparse_grads(W_enc, W_dec, xc, aidx, aact, aerr * (2.0 * c / B), grads)
                    aux_val *= c
            # decoder-norm projection of the gradient: remove the component along each row
            Wd = W_dec
            grads["W_dec"].sub_((grads["W_dec"] * Wd).sum(1, keepdim=True) * Wd)
            sae.W_enc.grad = grads["W_encT"].T
            sae.b_enc.grad = grads["b_enc"]
            sae.W_dec.grad = grads["W_dec"]
            sae.b_dec.grad = grads["b_dec"]
        sched.optimizer_step(opt, sae, step)
        log_loss += mse
        log_aux += aux_val
        log_count += 1
        if sched.log_due(step, cfg.log_every):
            sched.log(
                history,
                step,
                opt,
                fvu=log_loss / log_count / var_total,
                aux_loss=log_aux / log_count / var_total,
                n_dead=int((since_fired[:-1] > dead_tokens).sum()),
            )
            log_loss, log_aux, log_count = 0.0, 0.0, 0
    sched.finish(history)


def _train_standard(
    sae: SAE,
    x: Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    history: dict[str, Any],
) -> None:
    """ReLU + L1 (Σ_i f_i ‖W_dec[i]‖, = Σ f_i with unit-norm rows), autograd,
    Adam, norm projection.
    """
    n, d = x.shape
    sched = _Schedule.plan(n, cfg)
    opt = torch.optim.Adam(sae.parameters(), lr=sched.lr)
    var_total = float(((x - x.mean(0)) ** 2).sum(1).mean())
    log_loss, log_l0, log_count = 0.0, 0.0, 0
    for step, xb in sched.batches(x, gen, device):
        f = sae.encode(xb)
        recon = sae.decode(f)
        mse = ((recon - xb) ** 2).sum(1).mean()
        loss = mse + cfg.l1_coef * d * f.sum(1).mean() / math.sqrt(d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            Wd, g = sae.W_dec.data, sae.W_dec.grad
            if g is not None:  # keep the step tangent to the unit-norm constraint
                g.sub_((g * Wd).sum(1, keepdim=True) * Wd)
        sched.optimizer_step(opt, sae, step)
        log_loss += float(mse.detach())
        log_l0 += float((f.detach() > 0).float().sum(1).mean())
        log_count += 1
        if sched.log_due(step, cfg.log_every):
            sched.log(
                history,
                step,
                opt,
                fvu=log_loss / log_count / var_total,
                l0=log_l0 / log_count,
            )
            log_loss, log_l0, log_count = 0.0, 0.0, 0
    sched.finish(history)


def train_sae(
    activations: Tensor | np.ndarray,
    *,
    d_sae: int,
    k: int | None = 8,
    architecture: Architecture = "topk",
    lr: float | None = None,
    n_tokens: int | None = None,
    n_steps: int | None = None,
    batch_size: int = 1024,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    eval_activations: Tensor | np.ndarray | None = None,
    **options: Any,
) -> tuple[SAE, dict[str, Any]]:
    """Train an SAE on ``activations (n, d)``; return ``(sae, history)``.

    Give the budget as ``n_tokens`` (rows seen) or ``n_steps`` (``n_tokens = n_steps *
    batch_size``);
    default 200k tokens. Other options are :class:`TrainConfig` fields (``b_dec_init``,
    ``normalize``, ``decay_frac``, ``aux_coef``, ``k_aux``, ``dead_tokens``, ``l1_coef``,
    ``log_every``, ``hook_name``, ``model_name``).

    ``normalize=True`` trains on ``c * x`` with ``c = sqrt(d / E‖x − mean‖²)`` (so a default lr
    works at any activation scale) and folds ``c`` back into the weights at the end: the returned
    SAE reads and writes the raw activations with unit-norm decoder rows.

    History: per-``log_every`` dicts in ``history["steps"]`` (batch FVU = 1 − EV, AuxK loss,
    dead latents, lr), ``train_seconds``, ``tokens_per_second``, ``final_ev`` (on
    ``eval_activations`` if given, else on the training activations), ``config``.
    Deterministic given ``seed`` on CPU.
    """
    x = _check_activations(activations)
    if n_tokens is not None and n_steps is not None:
        raise ValueError("give n_tokens or n_steps, not both")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_steps is not None:
        n_tokens = int(n_steps) * min(batch_size, x.shape[0])
    cfg = TrainConfig(
        d_sae=d_sae,
        k=k if architecture == "topk" else None,
        architecture=architecture,
        lr=lr,
        n_tokens=int(n_tokens) if n_tokens is not None else TrainConfig.n_tokens,
        batch_size=batch_size,
        seed=seed,
        **options,
    )
    if cfg.n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {cfg.n_tokens}")
    return _train_from_config(x, cfg, device=device, eval_activations=eval_activations)


def _train_from_config(
    x: Tensor, cfg: TrainConfig, *, device: str | torch.device | None, eval_activations: Any = None
) -> tuple[SAE, dict[str, Any]]:
    dev = default_device(device)
    n, d = x.shape
    sae_cfg = SAEConfig(
        d_in=d,
        d_sae=cfg.d_sae,
        architecture=cfg.architecture,
        k=cfg.k if cfg.architecture == "topk" else None,
        hook_name=cfg.hook_name,
        model_name=cfg.model_name,
    )
    gen = seed_everything(cfg.seed)
    sae = SAE(sae_cfg, generator=gen).to(dev)
    xt = x.detach().to(device=dev, dtype=torch.float32)
    # scale
    mu = xt.mean(0)
    msq = float(((xt - mu) ** 2).sum(1).mean())
    c = math.sqrt(d / msq) if (cfg.normalize and msq > 0) else 1.0
    xs = xt * c if c != 1.0 else xt
    # b_dec init
    with torch.no_grad():
        if cfg.b_dec_init == "geometric_median":
            sub = xs[torch.randperm(n, generator=gen)[: min(n, 8192)].to(dev)]
            sae.b_dec.copy_(geometric_median(sub))
        elif cfg.b_dec_init == "mean":
            sae.b_dec.copy_(xs.mean(0))
        elif cfg.b_dec_init != "zeros":
            raise ValueError(
                f"b_dec_init must be 'geometric_median', 'mean' or 'zeros', got {cfg.b_dec_init!r}"
            )
    history: dict[str, Any] = {"config": asdict(cfg), "steps": [], "scale": c}
    t0 = time.perf_counter()
    if cfg.architecture == "topk":
        _train_topk(sae, xs, cfg, gen, dev, history)
    else:
        _train_standard(sae, xs, cfg, gen, dev, history)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    history["train_seconds"] = secs
    history["tokens_per_second"] = history["n_tokens_seen"] / max(secs, 1e-9)
    # fold the scale back: f = f'/c exactly (relu/topk are positively homogeneous)
    with torch.no_grad():
        sae.b_enc.div_(c)
        sae.b_dec.div_(c)
    sae.zero_grad(set_to_none=True)
    sae = sae.cpu() if dev.type != "cpu" else sae
    ev_x = eval_activations if eval_activations is not None else x
    history["final_ev"] = sae.explained_variance(
        _check_activations(ev_x, "eval_activations").float()
    )
    history["final_l0"] = sae.l0(_check_activations(ev_x, "eval_activations").float())
    return sae, history


# =============================================================================================
# Cache
# =============================================================================================


def activations_fingerprint(activations: Tensor | np.ndarray) -> str:
    """sha256 (first 32 hex digits) of an activation matrix's shape, dtype and bytes."""
    arr = (
        activations.detach().cpu().contiguous().numpy()
        if isinstance(activations, Tensor)
        else np.ascontiguousarray(activations)
    )
    h = hashlib.sha256()
    h.update(repr((arr.shape, str(arr.dtype))).encode())
    h.update(arr.data.cast("B"))
    return h.hexdigest()[:32]


def train_sae_cached(
    activations: Tensor | np.ndarray,
    *,
    fingerprint: str | None = None,
    kind: str = "sae",
    device: str | torch.device | None = "cpu",
    eval_activations: Tensor | np.ndarray | None = None,
    **train_kwargs: Any,
) -> tuple[SAE, dict[str, Any]]:
    """:func:`train_sae` through the artifact cache.

    Key: ``config_hash`` of the resolved :class:`TrainConfig` plus the activations' fingerprint
    (``fingerprint`` if the caller already has a content key, e.g. the activation artifact's
    config hash; else :func:`activations_fingerprint`) and of ``eval_activations``. The device
    is not part of the key. The artifact directory is itself a SAELens-loadable SAE directory
    (``cfg.json`` + ``sae_weights.safetensors``) plus ``history.json``, which is written last and
    marks the entry complete. ``history["cache_hit"]`` says whether it was loaded.
    """
    x = _check_activations(activations)
    n_steps = train_kwargs.pop("n_steps", None)
    if n_steps is not None:
        if train_kwargs.get("n_tokens") is not None:
            raise ValueError("give n_tokens or n_steps, not both")
        train_kwargs["n_tokens"] = int(n_steps) * min(
            train_kwargs.get("batch_size", 1024), x.shape[0]
        )
    if train_kwargs.get("architecture", "topk") != "topk":
        train_kwargs["k"] = None
    cfg = TrainConfig(**train_kwargs)
    key = {
        "train": asdict(cfg),
        "activations": fingerprint or activations_fingerprint(x),
        "eval": None
        if eval_activations is None
        else activations_fingerprint(_check_activations(eval_activations)),
        "d_in": int(x.shape[1]),
        "format": 1,
    }
    trained: list[tuple[SAE, dict[str, Any]]] = []

    def build(entry: Path) -> None:
        sae_, history_ = _train_from_config(
            x, cfg, device=device, eval_activations=eval_activations
        )
        save_sae(sae_, entry)
        atomic_write_json(entry / HISTORY_FILENAME, history_)
        trained.append((sae_, history_))

    def legacy_check(entry: Path) -> None:
        load_sae(entry)
        json.loads((entry / HISTORY_FILENAME).read_text())

    # manifest-checked (size + SHA-256); a damaged entry is reported and retrained, once (file lock)
    path = cached_entry(
        kind,
        key,
        build,
        (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, HISTORY_FILENAME),
        legacy_check=legacy_check,
    )
    if not trained:
        sae = load_sae(path)
        history = json.loads((path / HISTORY_FILENAME).read_text())
        history["cache_hit"] = True
        return sae, history
    sae, history = trained[0]
    history = dict(history)
    history["cache_hit"] = False
    history["cache_key"] = config_hash(key)
    return sae, history


# =============================================================================================
# Rotation transfer
# =============================================================================================


def transfer_sae(
    sae: SAE,
    R: Tensor | np.ndarray,
    *,
    source_mean: Tensor | np.ndarray | None = None,
    target_mean: Tensor | np.ndarray | None = None,
    atol: float = 1e-4,
) -> SAE:
    """Move an SAE trained on source activations to the target frame; return a new ordinary SAE.

    R (d, d), orthogonal, maps source onto target: ``x_src @ R ≈ x_tgt``
    (:mod:`polyrot_utils.core.procrustes`). If the
    rotation was fitted on centred activations, ``(x_src − μ_src) R ≈ x_tgt − μ_tgt``, i.e.
    ``x_src ≈ (x_tgt − μ_tgt) Rᵀ + μ_src``; pass both means (uncentred fit: pass neither, μ = 0).

    Derivation. The transferred SAE must encode x_tgt as the source SAE encodes its source image
    x̃ = (x_tgt − μ_tgt) Rᵀ + μ_src, and decode by mapping the source reconstruction forward,
    x̂_tgt = (x̂_src − μ_src) R + μ_tgt. Decoder: x̂_tgt = f (W_dec R) + (b_dec − μ_src) R + μ_tgt,
    so ``W_dec' = W_dec R`` and ``b_dec' = (b_dec − μ_src) R + μ_tgt``. Encoder (with
    apply_b_dec_to_input): (x̃ − b_dec) W_enc = ((x_tgt − μ_tgt) Rᵀ − (b_dec − μ_src)) W_enc
    = (x_tgt − μ_tgt − (b_dec − μ_src) R) Rᵀ W_enc = (x_tgt − b_dec') Rᵀ W_enc, using R Rᵀ = I;
    so ``W_enc' = Rᵀ W_enc`` and ``b_enc' = b_enc`` exactly. (Without apply_b_dec_to_input:
    ``b_enc' = b_enc + (μ_src − μ_tgt Rᵀ) W_enc``.) Unit decoder norms are preserved, so TopK
    selects the same latents: ``transfer(sae).encode(x_tgt) == sae.encode(x̃)``.
    """
    Rt = as_tensor(R, "R", dtype=torch.float64).cpu()
    d = sae.d_in
    if Rt.shape != (d, d):
        raise ValueError(
            f"R must have shape (d_in, d_in) = ({d}, {d}) for this SAE, got {tuple(Rt.shape)}"
        )
    dev_orth = float((Rt @ Rt.T - torch.eye(d, dtype=torch.float64)).abs().max())
    if dev_orth > atol:
        raise ValueError(f"R must be orthogonal (max |R Rᵀ − I| <= {atol}), got {dev_orth:.3g}")
    if (source_mean is None) != (target_mean is None):
        raise ValueError(
            "pass both source_mean and target_mean (a centred fit) or neither (an uncentred fit)"
        )

    def _vec(v: Any, name: str) -> Tensor:
        if v is None:
            return torch.zeros(d, dtype=torch.float64)
        t = as_tensor(v, name, dtype=torch.float64).cpu().reshape(-1)
        if t.shape != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {tuple(t.shape)}")
        return t

    mu_s, mu_t = _vec(source_mean, "source_mean"), _vec(target_mean, "target_mean")
    dtype = sae.W_enc.dtype
    W_enc = sae.W_enc.detach().cpu().double()
    W_dec = sae.W_dec.detach().cpu().double()
    b_enc = sae.b_enc.detach().cpu().double()
    b_dec = sae.b_dec.detach().cpu().double()
    new_b_dec = (b_dec - mu_s) @ Rt + mu_t
    new_b_enc = b_enc if sae.cfg.apply_b_dec_to_input else b_enc + (mu_s - mu_t @ Rt.T) @ W_enc
    new = SAE(replace(sae.cfg, extra_metadata=dict(sae.cfg.extra_metadata, transferred=True)))
    with torch.no_grad():
        new.W_enc.copy_((Rt.T @ W_enc).to(dtype))
        new.W_dec.copy_((W_dec @ Rt).to(dtype))
        new.b_enc.copy_(new_b_enc.to(dtype))
        new.b_dec.copy_(new_b_dec.to(dtype))
    return new.to(sae.W_enc.device)


# =============================================================================================
# SAELens on-disk format
# =============================================================================================


def sae_cfg_dict(sae: SAE) -> dict[str, Any]:
    """The SAELens v6 ``cfg.json`` dict for ``sae`` (keys as ``SAE.save_model`` writes them)."""
    c = sae.cfg
    metadata: dict[str, Any] = {
        "sae_lens_version": SAELENS_FORMAT_VERSION,
        "sae_lens_training_version": None,
        "written_by": "polyrot_utils.sae",
    }
    if c.model_name is not None:
        metadata["model_name"] = c.model_name
    if c.hook_name is not None:
        metadata["hook_name"] = c.hook_name
    metadata.update(c.extra_metadata)
    out: dict[str, Any] = {
        "d_in": int(c.d_in),
        "d_sae": int(c.d_sae),
        "dtype": _dtype_name(sae.W_enc.dtype),
        "device": "cpu",
        "apply_b_dec_to_input": bool(c.apply_b_dec_to_input),
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if c.architecture == "topk":
        out["k"] = int(c.k)  # type: ignore[arg-type]
        out["rescale_acts_by_decoder_norm"] = False
    out["architecture"] = c.architecture
    return out


def save_sae(sae: SAE, directory: str | Path) -> Path:
    """Write ``sae`` to ``directory`` in SAELens's format: ``sae_weights.safetensors`` (tensors
    ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``) then ``cfg.json``, each atomically (the config is
    written last, so a directory with a ``cfg.json`` has complete weights). Returns the directory.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: getattr(sae, name).detach().cpu().contiguous()
        for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }
    atomic_save_safetensors(path / SAE_WEIGHTS_FILENAME, tensors, metadata={"format": "pt"})
    atomic_write_json(path / SAE_CFG_FILENAME, sae_cfg_dict(sae))
    return path


def load_sae(directory: str | Path, device: str | torch.device = "cpu") -> SAE:
    """Read an SAE written by :func:`save_sae` or by SAELens (v6 ``save_model``; legacy pre-6
    configs with ``activation_fn``/``activation_fn_kwargs`` too) for the ``standard`` and
    ``topk`` architectures. Refuses configs this class cannot reproduce exactly
    (activation normalisation, hook_z reshaping, decoder-norm rescaling with non-unit rows).
    """
    path = Path(directory)
    cfg_path, w_path = path / SAE_CFG_FILENAME, path / SAE_WEIGHTS_FILENAME
    if not cfg_path.exists():
        raise FileNotFoundError(f"no {SAE_CFG_FILENAME} in {path}")
    if not w_path.exists():
        raise FileNotFoundError(f"no {SAE_WEIGHTS_FILENAME} in {path}")
    try:
        raw = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{cfg_path} is damaged (not valid JSON: {exc}); delete {path} and save or download "
            "the SAE again"
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"{cfg_path} must hold a JSON object, got {type(raw).__name__}; delete {path} and save "
            "the SAE again"
        )
    meta = dict(raw.get("metadata") or {})
    arch = raw.get("architecture")
    k = raw.get("k")
    if arch is None:  # legacy (< 6.0) config
        if raw.get("activation_fn", raw.get("activation_fn_str")) == "topk":
            arch, k = "topk", (raw.get("activation_fn_kwargs") or {}).get("k")
        else:
            arch = "standard"
        for key in ("model_name", "hook_name"):
            if key in raw:
                meta.setdefault(key, raw[key])
        if "hook_point" in raw:
            meta.setdefault("hook_name", raw["hook_point"])
    if arch not in ("topk", "standard"):
        raise ValueError(
            f"cfg.json architecture must be 'topk' or 'standard' to load here, got {arch!r}"
        )
    norm = raw.get("normalize_activations", "none")
    if norm not in ("none", None):
        raise ValueError(f"cfg.json normalize_activations={norm!r} is not supported (only 'none')")
    if raw.get("reshape_activations", "none") not in ("none", None):
        raise ValueError(
            f"cfg.json reshape_activations={raw.get('reshape_activations')!r} is not supported"
        )
    dtype_name = str(raw.get("dtype", "float32")).replace("torch.", "")
    if dtype_name not in _DTYPES:
        raise ValueError(
            f"{cfg_path}: dtype {raw.get('dtype')!r} is not supported; expected one of "
            f"{sorted(_DTYPES)}"
        )
    try:
        tensors = load_safetensors(w_path)
    except Exception as exc:  # safetensors raises its own SafetensorError for a truncated file
        raise ValueError(
            f"{w_path} is damaged ({type(exc).__name__}: {exc}); delete {path} and save or "
            "download the SAE again"
        ) from None
    missing = {"W_enc", "W_dec", "b_dec"} - set(tensors)
    if missing:
        raise KeyError(f"{w_path} lacks tensors {sorted(missing)}")
    known = {
        "model_name",
        "hook_name",
        "sae_lens_version",
        "sae_lens_training_version",
        "written_by",
    }
    cfg = SAEConfig(
        d_in=int(raw["d_in"]),
        d_sae=int(raw["d_sae"]),
        architecture="topk" if arch == "topk" else "standard",
        k=int(k) if (arch == "topk" and k is not None) else None,
        dtype=dtype_name,
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        hook_name=meta.get("hook_name"),
        model_name=meta.get("model_name"),
        extra_metadata={kk: v for kk, v in meta.items() if kk not in known},
    )
    sae = SAE(cfg)
    d_in, d_sae = cfg.d_in, cfg.d_sae
    expect = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,), "b_enc": (d_sae,)}
    state = {name: tensors.get(name, torch.zeros(d_sae)) for name in expect}
    for name, shape in expect.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(
                f"tensor {name} in {w_path} has shape {tuple(state[name].shape)}, expected {shape} "
                "from cfg.json"
            )
    if arch == "topk" and raw.get("rescale_acts_by_decoder_norm", False):
        norms = state["W_dec"].float().norm(dim=1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
            raise ValueError(
                "cfg.json has rescale_acts_by_decoder_norm=true with non-unit decoder rows; fold "
                "the norms first"
            )
    sae.load_state_dict({kk: v.to(_DTYPES[cfg.dtype]) for kk, v in state.items()})
    return sae.to(device)


__all__ = [
    "SAE",
    "SAEConfig",
    "TrainConfig",
    "activations_fingerprint",
    "geometric_median",
    "load_sae",
    "sae_cfg_dict",
    "save_sae",
    "train_sae",
    "train_sae_cached",
    "transfer_sae",
]
