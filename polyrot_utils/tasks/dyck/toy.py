"""The Dyck-3 toy transformer as a TransformerLens ``HookedTransformer``, and exact residual
rotation.

Architecture (the paper's toy, chapter ``10_dyck_model_and_cohorts``): 2 pre-norm blocks, d_model
64, 4 heads × 16,
d_mlp 256, ReLU, RMSNorm with a gain (``normalization_type="RMS"``: TransformerLens's
``RMSNorm`` with weight ``w``; "RMSPre" would have no gain to fold), untied embedding, vocab
40, context 64, and one unembedding ``W_U (64, 51)`` holding the three readouts side by side:

=========  ===========  ==========================================
readout    columns      classes
=========  ===========  ==========================================
type       0:40         token id at the position (the paper's "tok")
depth      40:49        unmatched openers 0..8
invalid    49:51        sticky violation flag 0/1
=========  ===========  ==========================================

TransformerLens always creates biases (``b_Q, b_K, b_V, b_O, b_in, b_out, b_U``); the toy has
none, so :func:`build_toy` zeroes them and sets ``requires_grad=False``. The positional
embedding uses TL's "standard" additive ``pos_embed.W_pos`` filled with the paper's structured,
non-learned features (dims 0..5: pos/n_ctx, 1/(pos+1), log(pos+1)/log(n_ctx), is-BOS,
cos and sin of 2π pos/n_ctx; the other 58 dims zero) and frozen.

Parameter count, the paper's way (every weight and gain; no biases, no positional buffer)::

    embed 40·64 = 2,560
    per block: attn 4·(3·64·16 + 16·64) = 16,384; mlp 2·64·256 = 32,768; gains 2·64 = 128
    2 blocks = 98,560;   final gain 64;   unembed 64·51 = 3,264
    total = 104,448

(:func:`count_parameters` returns it, plus the zero frozen biases and W_pos that TL carries.)

:func:`rotate_residual` builds the same function in a rotated residual basis (see there).
Training lives in :mod:`polyrot_utils.tasks.dyck.training`; cohorts in
:mod:`polyrot_utils.tasks.dyck.cohorts`.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch

from polyrot_utils.core.procrustes import fit_rotation, nearest_orthogonal
from polyrot_utils.models.activations import collect_activations, resid_sites
from polyrot_utils.tasks.dyck import language as dyck

__all__ = [
    "D_VOCAB_OUT",
    "PAPER_PARAM_COUNT",
    "READOUT_SLICES",
    "SHARED_IO_KEYS",
    "TOY_ARCH",
    "build_toy",
    "copy_model",
    "count_parameters",
    "load_parameter_dict",
    "parameter_dict",
    "planted_rotation_check",
    "readout_log_probs",
    "rotate_residual",
    "split_readouts",
    "structured_positional_features",
    "to_float64",
    "toy_config",
]

#: the toy's input and output weights (token embedding, unembedding): what the members of a
#: shared-I/O cohort (the paper's Cohort A) copy from one model and freeze
SHARED_IO_KEYS: tuple[str, ...] = ("embed.W_E", "unembed.W_U")

#: readout name -> (start, stop) columns of the 51 output logits
READOUT_SLICES: dict[str, tuple[int, int]] = {}
_start = 0
for _name, _size in dyck.READOUT_SIZES.items():
    READOUT_SLICES[_name] = (_start, _start + _size)
    _start += _size
D_VOCAB_OUT = _start  # 51
PAPER_PARAM_COUNT = 104_448

TOY_ARCH = dict(
    n_layers=2,
    d_model=64,
    n_heads=4,
    d_head=16,
    d_mlp=256,
    act_fn="relu",
    normalization_type="RMS",
    d_vocab=dyck.VOCAB_SIZE,
    d_vocab_out=D_VOCAB_OUT,
    n_ctx=64,
    positional_embedding_type="standard",
    attention_dir="causal",
)

_BIAS_SUFFIXES = ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U", "b_gate")


def structured_positional_features(n_ctx: int = 64, d_model: int = 64) -> torch.Tensor:
    """The paper's fixed positional features, ``(n_ctx, d_model)``; only dims 0..5 are non-zero."""
    if d_model < 6:
        raise ValueError(f"d_model must be >= 6 for the 6 structured features, got {d_model}")
    pos = torch.arange(n_ctx, dtype=torch.float32)
    enc = torch.zeros(n_ctx, d_model)
    enc[:, 0] = pos / n_ctx
    enc[:, 1] = 1.0 / (pos + 1.0)
    enc[:, 2] = torch.log(pos + 1.0) / math.log(n_ctx)
    enc[:, 3] = (pos == 0).float()
    enc[:, 4] = torch.cos(2 * math.pi * pos / n_ctx)
    enc[:, 5] = torch.sin(2 * math.pi * pos / n_ctx)
    return enc


def toy_config(**overrides):
    """The toy's ``HookedTransformerConfig`` (keys of :data:`TOY_ARCH` may be overridden)."""
    from transformer_lens import HookedTransformerConfig

    kw: dict[str, Any] = dict(TOY_ARCH)
    kw.update(overrides)
    return HookedTransformerConfig(**kw)


def _new_hooked(cfg):
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # built on the CPU without TransformerLens's "Moving model to device" print; callers move it
        return HookedTransformer(cfg, move_to_device=False)


def build_toy(
    seed: int | None = 0,
    *,
    init_scale: float = 0.02,
    device: str | torch.device | None = "cpu",
    **arch,
):
    """A freshly initialised toy model (deterministic given ``seed``).

    Weights ~ N(0, init_scale²) (the paper's 0.02), gains 1, biases 0 and frozen, ``W_pos`` the
    structured features and frozen. ``arch`` overrides :data:`TOY_ARCH` entries.
    """
    if init_scale <= 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale}")
    cfg = toy_config(**arch)
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    model = _new_hooked(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in _BIAS_SUFFIXES:
                p.zero_()
                p.requires_grad_(False)
            elif leaf == "W_pos":
                p.copy_(structured_positional_features(cfg.n_ctx, cfg.d_model))
                p.requires_grad_(False)
            elif leaf in ("w",):  # norm gains
                p.fill_(1.0)
            elif leaf == "b":  # LayerNorm biases, if an override asks for LN
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * init_scale)
    return model.to(torch.device(device) if device is not None else "cpu", print_details=False)


def split_readouts(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """``logits (..., 51)`` -> ``{"type": (..., 40), "depth": (..., 9), "invalid":
    (..., 2)}`` (views).
    """
    if logits.shape[-1] != D_VOCAB_OUT:
        raise ValueError(
            f"logits must have last dimension {D_VOCAB_OUT}, got shape {tuple(logits.shape)}"
        )
    return {name: logits[..., a:b] for name, (a, b) in READOUT_SLICES.items()}


def readout_log_probs(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-readout log-softmax of :func:`split_readouts` (each readout is its own distribution)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return {k: torch.log_softmax(v, dim=-1) for k, v in split_readouts(logits).items()}


def count_parameters(model) -> dict[str, int]:
    """Parameter counts. ``paper`` counts every weight and gain (trainable or frozen) but not
    TL's zero biases nor the structured ``W_pos`` — the paper's convention (104,448 for the toy).
    """
    out = {"trainable": 0, "frozen": 0, "biases": 0, "pos": 0, "paper": 0}
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        n = p.numel()
        out["trainable" if p.requires_grad else "frozen"] += n
        if leaf in _BIAS_SUFFIXES:
            out["biases"] += n
        elif leaf == "W_pos":
            out["pos"] += n
        else:
            out["paper"] += n
    return out


def copy_model(model):
    """A deep copy (same config, same weights, same ``requires_grad`` flags, no hooks)."""
    new = _new_hooked(copy.deepcopy(model.cfg))
    new.load_state_dict(model.state_dict())
    for (_, p_new), (_, p_old) in zip(
        new.named_parameters(), model.named_parameters(), strict=True
    ):
        p_new.requires_grad_(p_old.requires_grad)
    return new.to(next(model.parameters()).device, print_details=False)


def parameter_dict(model) -> dict[str, torch.Tensor]:
    """Named parameters as detached CPU tensors (what the cache stores as safetensors)."""
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters()}


def load_parameter_dict(model, params: dict[str, torch.Tensor]) -> None:
    """Copy ``params`` into ``model`` in place; the names must match exactly."""
    names = dict(model.named_parameters())
    missing, extra = set(names) - set(params), set(params) - set(names)
    if missing or extra:
        raise ValueError(
            f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    with torch.no_grad():
        for k, p in names.items():
            if p.shape != params[k].shape:
                raise ValueError(
                    f"parameter {k}: expected shape {tuple(p.shape)}, got {tuple(params[k].shape)}"
                )
            p.copy_(params[k].to(p.device, p.dtype))


# --------------------------------------------------------------------------------------------
# exact rotation of the residual basis
# --------------------------------------------------------------------------------------------

_SUPPORTED_NORMS = (None, "RMS", "RMSPre", "LN", "LNPre")


def _check_rotation(R: torch.Tensor, d: int, atol: float) -> torch.Tensor:
    if not isinstance(R, torch.Tensor):
        R = torch.as_tensor(R)
    if R.ndim != 2 or R.shape != (d, d):
        raise ValueError(
            f"R must be ({d}, {d}) to match the model's d_model={d}, got shape {tuple(R.shape)}"
        )
    R64 = R.double()
    err = (R64.T @ R64 - torch.eye(d, dtype=torch.float64)).abs().max().item()
    if err > atol:
        raise ValueError(f"R must be orthogonal (max |RᵀR − I| <= {atol}), got {err:.3g}")
    return R64


def rotate_residual(model, R: torch.Tensor, *, atol: float = 1e-4):
    """A new ``HookedTransformer`` computing the same function with residual stream ``x @ R``.

    ``R (d_model, d_model)`` orthogonal, row-vector convention: every residual activation of the
    new model equals the original's times ``R`` (``resid_pre/mid/post``, ``hook_embed +
    hook_pos_embed``, the norms' ``hook_normalized``), and the logits are unchanged.

    How: norm gains (and LayerNorm biases) are first folded into the weights that read the
    normalised stream (``W_Q, W_K, W_V``, ``W_in``/``W_gate``, ``W_U``) and set to 1 (0); then
    writers are right-multiplied (``W_E R``, ``W_pos R``, ``W_O R``, ``b_O R``, ``W_out R``,
    ``b_out R``) and readers left-multiplied by ``Rᵀ`` (``Rᵀ W_Q``, ..., ``Rᵀ W_U``). Hook names
    and the config are unchanged (the rotated model keeps its norm type, with unit gains).

    RMSNorm has no centring, so any orthogonal R is a symmetry. LayerNorm centres, so R must fix
    the all-ones direction (``1ᵀ R = 1ᵀ``); otherwise ``ValueError``. Supported: standard or
    rotary positions, attn-only, gated MLPs, parallel attention+MLP, norms None/RMS/RMSPre/
    LN/LNPre; anything else (MoE, grouped-query attention, post-embedding LN, ...) raises.
    """
    cfg = model.cfg
    d = cfg.d_model
    if cfg.normalization_type not in _SUPPORTED_NORMS:
        raise ValueError(
            f"normalization_type {cfg.normalization_type!r} not supported; expected one of "
            f"{_SUPPORTED_NORMS}"
        )
    unsupported = {
        "num_experts": getattr(cfg, "num_experts", None) is not None,
        "n_key_value_heads": getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads),
        "post_embedding_ln": bool(getattr(cfg, "post_embedding_ln", False)),
        "use_normalization_before_and_after": bool(
            getattr(cfg, "use_normalization_before_and_after", False)
        ),
        "use_qk_norm": bool(getattr(cfg, "use_qk_norm", False)),
        "positional_embedding_type": cfg.positional_embedding_type not in ("standard", "rotary"),
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"rotate_residual does not support models with {bad}")
    R64 = _check_rotation(R, d, atol)
    centring = cfg.normalization_type in ("LN", "LNPre")
    if centring:
        ones = torch.ones(d, dtype=torch.float64)
        dev = (ones @ R64 - ones).abs().max().item()
        if dev > atol:
            raise ValueError(
                f"model uses {cfg.normalization_type} (centres the residual stream), so R must fix "
                "the "
                f"all-ones direction (1ᵀR = 1ᵀ); max |1ᵀR − 1ᵀ| = {dev:.3g}"
            )

    new = copy_model(model)
    flags = {k: p.requires_grad for k, p in new.named_parameters()}
    params = {k: v.detach().double().clone() for k, v in new.named_parameters()}
    Rt = R64.T

    def fold(norm: str, readers: list[str]) -> None:
        """Fold gain ``norm.w`` (and bias ``norm.b``) into reader weights
        ``(..., d_model, out)``.
        """
        w, b = params.get(f"{norm}.w"), params.get(f"{norm}.b")
        for r in readers:
            W = params[r]
            bias_name = r.replace("W_", "b_")
            if b is not None and bias_name in params:
                params[bias_name] = params[bias_name] + torch.einsum("d,...do->...o", b, W)
            elif b is not None and b.abs().max() > 0:
                raise ValueError(f"cannot fold {norm}.b into {r}: the model has no {bias_name}")
            if w is not None:
                params[r] = W * w.view(*([1] * (W.ndim - 2)), d, 1)
        if w is not None:
            params[f"{norm}.w"] = torch.ones_like(w)
        if b is not None:
            params[f"{norm}.b"] = torch.zeros_like(b)

    for layer in range(cfg.n_layers):
        pre = f"blocks.{layer}"
        attn_readers = [f"{pre}.attn.W_Q", f"{pre}.attn.W_K", f"{pre}.attn.W_V"]
        mlp_readers = (
            []
            if cfg.attn_only
            else [f"{pre}.mlp.W_in"] + ([f"{pre}.mlp.W_gate"] if cfg.gated_mlp else [])
        )
        if cfg.parallel_attn_mlp or cfg.attn_only:
            fold(f"{pre}.ln1", attn_readers + (mlp_readers if cfg.parallel_attn_mlp else []))
        else:
            fold(f"{pre}.ln1", attn_readers)
            fold(f"{pre}.ln2", mlp_readers)
        for r in attn_readers + mlp_readers:
            params[r] = torch.einsum("ed,...do->...eo", Rt, params[r])
        for wname in [f"{pre}.attn.W_O", f"{pre}.attn.b_O"] + (
            [] if cfg.attn_only else [f"{pre}.mlp.W_out", f"{pre}.mlp.b_out"]
        ):
            if wname in params:
                params[wname] = params[wname] @ R64
    fold("ln_final", ["unembed.W_U"])
    params["unembed.W_U"] = Rt @ params["unembed.W_U"]
    params["embed.W_E"] = params["embed.W_E"] @ R64
    if "pos_embed.W_pos" in params:
        params["pos_embed.W_pos"] = params["pos_embed.W_pos"] @ R64
    leftover = [
        k for k in params if k.endswith((".w", ".b")) and not k.startswith(("blocks", "ln_final"))
    ]
    if leftover:  # pragma: no cover - guarded by the checks above
        raise ValueError(f"unhandled normalisation parameters {leftover}")
    dtype = next(model.parameters()).dtype
    load_parameter_dict(new, {k: v.to(dtype) for k, v in params.items()})
    for k, p in new.named_parameters():
        p.requires_grad_(flags[k])
    return new


# --------------------------------------------------------------------------------------------
# re-exports: training and loading live in polyrot_utils.tasks.dyck.training
# --------------------------------------------------------------------------------------------


def to_float64(model):
    """A float64 copy of a HookedTransformer (its config's dtype set too, so norms stay float64)."""
    new = copy_model(model)
    new.cfg.dtype = torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return new.to(torch.float64, print_details=False)


def planted_rotation_check(
    model,
    R: torch.Tensor,
    tokens: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    sites: list[str] | None = None,
    batch_size: int = 256,
    rank_tol: float = 1e-3,
    float64: bool = True,
) -> list[dict]:
    """Plant ``R`` with :func:`rotate_residual` and ask a Procrustes fit to find it, per site.

    Rows (one per residual site, dicts):

    - ``act_err``: max |acts_rot − acts @ R| (is the planted model exact?);
    - ``logprob_err``: max |Δ log-prob| of the per-readout distributions (:func:`readout_log_probs`
      when the output has 51 columns, else the log-softmax over all outputs) at ``mask`` positions;
    - ``rank``: singular values of the centred source activations above ``rank_tol`` × the largest;
    - ``R_err``: max |R_fit − R| over all of R, R_fit from
      :func:`polyrot_utils.core.procrustes.fit_rotation` (SO(d), centred — so pass ``R`` in SO(d));
    - ``R_err_subspace``: max |V (R_fit − R)| with V the top-``rank`` right singular vectors.
      R is only identifiable on the span of the activations (``blocks.0.hook_resid_pre`` of the
      toy spans at most 9 used tokens + 6 positional dims).

    ``float64`` (default): run both models in float64 copies, so the errors show the
    construction's exactness rather than float32 rounding (float32 gives ~1e-4 on log-probs of
    a trained model whose logits reach tens); ``R`` is then replaced by its nearest orthogonal
    matrix in float64 (a change of ~1e-7 for a float32 R) and the errors refer to that matrix.
    """

    if sites is None:
        # the residual stream proper, plus the final norm *before* its gain: rotate_residual folds
        # the gain into W_U, so the gained output (unembed.hook_in) maps by diag(1/w) R, not by R
        sites = resid_sites(model, include_final=False)
        if "ln_final.hook_normalized" in model.hook_dict:
            sites.append("ln_final.hook_normalized")
    dtype = torch.float64 if float64 else next(model.parameters()).dtype
    base = to_float64(model) if float64 else model
    R64 = torch.as_tensor(R).double().cpu()
    if float64:  # a float32 R is orthogonal only to ~1e-7: use its nearest orthogonal matrix
        R64 = torch.as_tensor(nearest_orthogonal(R64))
    rotated = rotate_residual(base, R64.to(dtype))
    a = collect_activations(
        base, tokens, sites, batch_size=batch_size, mask=mask, dtype=torch.float64
    )
    b = collect_activations(
        rotated, tokens, sites, batch_size=batch_size, mask=mask, dtype=torch.float64
    )
    lp_err = 0.0
    with torch.no_grad():
        dev = next(base.parameters()).device
        for start in range(0, tokens.shape[0], batch_size):
            tb = tokens[start : start + batch_size].to(dev)
            mb = (
                mask[start : start + batch_size].to(dev)
                if mask is not None
                else torch.ones_like(tb, dtype=torch.bool)
            )
            l0, l1 = base(tb).double(), rotated(tb).double()
            if l0.shape[-1] == D_VOCAB_OUT:
                p0, p1 = readout_log_probs(l0), readout_log_probs(l1)
                diffs = [(p0[k] - p1[k])[mb].abs().max() for k in p0]
            else:
                diffs = [(torch.log_softmax(l0, -1) - torch.log_softmax(l1, -1))[mb].abs().max()]
            lp_err = max(lp_err, max(float(d) for d in diffs))
    rows = []
    for s in sites:
        X, Y = a[s], b[s]
        Xc = X - X.mean(0)
        _, sv, Vh = torch.linalg.svd(Xc, full_matrices=False)
        rank = int((sv > sv[0] * rank_tol).sum()) if sv[0] > 0 else 0
        R_fit = torch.as_tensor(fit_rotation(X, Y)).double()
        rows.append(
            {
                "site": s,
                "act_err": float((X @ R64 - Y).abs().max()),
                "logprob_err": lp_err,
                "rank": rank,
                "R_err": float((R_fit - R64).abs().max()),
                "R_err_subspace": float((Vh[:rank] @ (R_fit - R64)).abs().max())
                if rank
                else float("nan"),
            }
        )
    return rows
