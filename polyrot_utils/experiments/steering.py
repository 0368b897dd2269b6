"""Steering vectors: diff-of-means, transfer through a rotation, TransformerLens hooks, and the
clean / partial / inverted / none regime classification (DESIGN.md §3, §5.6).

Conventions: activations are row vectors ``(n, d)`` (or ``(batch, pos, d)``); a rotation R maps
source onto target, ``x_src @ R ≈ x_tgt``, so a source direction ``v`` becomes ``v @ R`` in the
target frame. A steering run adds ``alpha * v`` to the residual stream at one hook site of a
TransformerLens model (any ``HookedRootModule`` with ``run_with_hooks``/``hook_dict``).

Regimes. With ``r = transferred_effect / native_effect`` (the behaviour change caused by the
transferred vector on the target, over that caused by the target's own diff-of-means vector),
:func:`classify_transfer` returns ``"clean"`` for ``r >= clean_ratio`` (default 0.7),
``"partial"`` for ``none_ratio <= r < clean_ratio`` (default 0.2), ``"none"`` for
``|r| < none_ratio`` and ``"inverted"`` for ``r <= -none_ratio``. The paper's predictor of the
regime is the overlap of ``v`` with R's fixed (invariant) subspace, :func:`fixed_subspace_overlap`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from polyrot_utils.core.procrustes import fit_rotation
from polyrot_utils.models.activations import collect_activations
from polyrot_utils.models.steering_hooks import (
    _as_tensor,
    _check_site,
    _mask,
    diff_of_means,
    run_with_steering,
    steering_hook,
    transfer_vector,
)
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.toy import READOUT_SLICES


Behaviour = Callable[[Tensor], Tensor | float]


def kl_steering_effect(model: Any, tokens: Tensor, site: str, v: Tensor, alpha: float, *, batch_size: int = 16) -> float:
    """The paper's Pythia steering effect (pythia_rotation.py ``measure_steering_effect``): the
    mean over every (sequence, position) of KL(clean ‖ steered) over **all** next-token logits,
    ``alpha · v`` added at ``site`` (every position)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (batch, seq), got shape {tuple(tokens.shape)}")
    total, n = 0.0, 0
    for i in range(0, tokens.shape[0], int(batch_size)):
        t = tokens[i:i + int(batch_size)]
        lc = torch.log_softmax(run_with_steering(model, t, site, None, 0.0).double(), dim=-1)
        ls = torch.log_softmax(run_with_steering(model, t, site, v, alpha).double(), dim=-1)
        kl = (lc.exp() * (lc - ls)).sum(-1)
        total += float(kl.sum())
        n += int(kl.numel())
    return total / max(n, 1)


def paper_transfer_ratios(models: Mapping[Any, Any], anchor: Any, tokens: Tensor, site: str,
                          vectors: Mapping[str, Tensor], alphas: Sequence[float]) -> list[dict[str, Any]]:
    """The paper's Pythia transfer ratio (pythia_rotation.py ``panel_d_steering``): for each of the
    anchor's vectors and each α, ``within`` = :func:`kl_steering_effect` of the vector on the
    anchor, ``cross`` = its mean over the other models (the vector applied unchanged), ``ratio =
    cross / within``; the paper's "inverted" regime is ratio > 1 (1.8–10.0 in its Table)."""
    if anchor not in models:
        raise ValueError(f"anchor {anchor!r} is not among the models {list(models)}")
    others = [m for m in models if m != anchor]
    if not others:
        raise ValueError("need at least one model besides the anchor")
    rows = []
    for name, v in vectors.items():
        for a in alphas:
            w = kl_steering_effect(models[anchor], tokens, site, v, float(a))
            c = float(np.mean([kl_steering_effect(models[m], tokens, site, v, float(a)) for m in others]))
            rows.append({"vector": name, "alpha": float(a), "within": w, "cross": c, "ratio": c / max(w, 1e-12)})
    return rows


def _scalar(b: Tensor | float) -> float:
    return float(b.detach().float().mean()) if isinstance(b, Tensor) else float(b)


def steering_effect(
    model: Any,
    tokens: Tensor,
    site: str,
    v: Tensor,
    alpha: float,
    behaviour: Behaviour,
    *,
    positions: int | Sequence[int] | slice | None = None,
    clean_logits: Tensor | None = None,
) -> float:
    """``behaviour(steered logits) − behaviour(clean logits)`` (a tensor behaviour is averaged)."""
    clean = clean_logits if clean_logits is not None else run_with_steering(model, tokens, site, None, 0.0)
    steered = run_with_steering(model, tokens, site, v, alpha, positions=positions)
    return _scalar(behaviour(steered)) - _scalar(behaviour(clean))


def logit_diff_behaviour(target: int, baseline: int | None = None, readout: slice | None = None, mask: Tensor | None = None) -> Behaviour:
    """Behaviour: mean over (batch, pos[, mask]) of ``logit[target] − logit[baseline]`` within the
    readout slice of the last dim (``baseline=None``: minus the mean logit of the other classes)."""

    def f(logits: Tensor) -> Tensor:
        z = logits[..., readout] if readout is not None else logits
        if baseline is None:
            others = (z.sum(-1) - z[..., target]) / (z.shape[-1] - 1)
            diff = z[..., target] - others
        else:
            diff = z[..., target] - z[..., baseline]
        return diff[mask] if mask is not None else diff

    return f


def class_prob_behaviour(target: int, readout: slice | None = None, mask: Tensor | None = None) -> Behaviour:
    """Behaviour: mean probability of class ``target`` under a softmax over the readout slice."""

    def f(logits: Tensor) -> Tensor:
        z = logits[..., readout] if readout is not None else logits
        p = torch.softmax(z.float(), -1)[..., target]
        return p[mask] if mask is not None else p

    return f


@dataclass
class TransferEffects:
    """Effects on the target model of: its own vector (native), the source vector unchanged
    (unaligned), and the source vector through R (transferred); ratios to native; regimes."""

    native: float
    unaligned: float
    transferred: float
    ratio_unaligned: float
    ratio_transferred: float
    regime_unaligned: str
    regime_transferred: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def transfer_effects(
    target_model: Any,
    tokens: Tensor,
    site: str,
    v_source: Tensor,
    v_native: Tensor,
    R: Tensor | np.ndarray,
    alpha: float,
    behaviour: Behaviour,
    *,
    positions: int | Sequence[int] | slice | None = None,
    **thresholds: float,
) -> TransferEffects:
    """Native vs unaligned vs transferred steering effects on ``target_model`` (see module doc).

    ``v_source`` is the source model's diff-of-means vector, ``v_native`` the target's own;
    ``R`` maps source onto target. ``thresholds`` go to :func:`classify_transfer`.
    """
    clean = run_with_steering(target_model, tokens, site, None, 0.0)
    kw = dict(positions=positions, clean_logits=clean)
    native = steering_effect(target_model, tokens, site, v_native, alpha, behaviour, **kw)
    unaligned = steering_effect(target_model, tokens, site, v_source, alpha, behaviour, **kw)
    transferred = steering_effect(target_model, tokens, site, transfer_vector(v_source, R), alpha, behaviour, **kw)
    ru = unaligned / native if native != 0 else float("nan")
    rt = transferred / native if native != 0 else float("nan")
    return TransferEffects(
        native=native,
        unaligned=unaligned,
        transferred=transferred,
        ratio_unaligned=ru,
        ratio_transferred=rt,
        regime_unaligned=classify_transfer(native, unaligned, **thresholds),
        regime_transferred=classify_transfer(native, transferred, **thresholds),
    )


def classify_transfer(
    native_effect: float,
    transferred_effect: float,
    *,
    clean_ratio: float = 0.7,
    none_ratio: float = 0.2,
    min_native: float = 1e-6,
) -> str:
    """Regime of a transfer from ``r = transferred_effect / native_effect``.

    ``"clean"`` if r ≥ clean_ratio; ``"partial"`` if none_ratio ≤ r < clean_ratio; ``"none"`` if
    |r| < none_ratio; ``"inverted"`` if r ≤ −none_ratio. Defaults 0.7 / 0.2. Raises ValueError if
    ``|native_effect| < min_native`` (no behaviour to transfer: the ratio means nothing) or the
    thresholds are not ``0 < none_ratio < clean_ratio``.
    """
    if not 0 < none_ratio < clean_ratio:
        raise ValueError(f"need 0 < none_ratio < clean_ratio, got none_ratio={none_ratio}, clean_ratio={clean_ratio}")
    native_effect, transferred_effect = float(native_effect), float(transferred_effect)
    if not np.isfinite(native_effect) or not np.isfinite(transferred_effect):
        raise ValueError(f"effects must be finite, got native={native_effect}, transferred={transferred_effect}")
    if abs(native_effect) < min_native:
        raise ValueError(f"|native_effect| = {abs(native_effect):.3g} < min_native = {min_native}: nothing to transfer")
    r = transferred_effect / native_effect
    if r >= clean_ratio:
        return "clean"
    if r >= none_ratio:
        return "partial"
    if r > -none_ratio:
        return "none"
    return "inverted"


def fixed_subspace(R: Tensor | np.ndarray, tol: float = 1e-5) -> Tensor:
    """Orthonormal basis ``(k, d)`` (rows) of R's fixed subspace ``{v : v @ R = v}``.

    Computed as the left null space of ``R − I`` from its SVD ``R − I = U S Vᵀ``: the columns of U
    with singular value ≤ ``tol`` (for orthogonal R this equals Null(R − I), since Rv = v ⇔ Rᵀv = v).
    An estimated rotation is never exactly fixed anywhere: pass a larger ``tol`` (e.g. 0.1, i.e.
    directions moved by at most 0.1 of their length) for fitted R. Returns ``(0, d)`` if none.
    """
    Rt = _as_tensor(R, "R").detach().cpu().to(torch.float64)
    if Rt.ndim != 2 or Rt.shape[0] != Rt.shape[1]:
        raise ValueError(f"R must be a square (d, d) matrix, got {tuple(Rt.shape)}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    d = Rt.shape[0]
    U, S, _ = torch.linalg.svd(Rt - torch.eye(d, dtype=torch.float64))
    return U[:, S <= tol].T.contiguous().float()


def fixed_subspace_overlap(v: Tensor | np.ndarray, basis: Tensor | np.ndarray) -> float:
    """``‖P v‖ / ‖v‖`` with P the orthogonal projector onto the row span of ``basis (k, d)``
    (orthonormal rows, e.g. from :func:`fixed_subspace`); in [0, 1]; 0 for an empty basis."""
    vt = _as_tensor(v, "v").detach().cpu().to(torch.float64).reshape(-1)
    B = _as_tensor(basis, "basis").detach().cpu().to(torch.float64)
    if B.ndim != 2 or B.shape[1] != vt.shape[0]:
        raise ValueError(f"basis must have shape (k, {vt.shape[0]}) to match v, got {tuple(B.shape)}")
    nv = float(vt.norm())
    if nv == 0:
        raise ValueError("v is the zero vector")
    if B.shape[0] == 0:
        return 0.0
    return float((B @ vt).norm()) / nv


def rotation_cosine(v: Tensor | np.ndarray, R: Tensor | np.ndarray) -> float:
    """``cos(v, v @ R)``: how much R moves v. 1 for v in the fixed subspace; the unaligned transfer's
    ratio for a purely linear readout of v's direction."""
    vt = _as_tensor(v, "v").detach().cpu().to(torch.float64).reshape(-1)
    w = transfer_vector(vt, _as_tensor(R, "R").detach().cpu().to(torch.float64))
    return float(vt @ w / (vt.norm() * w.norm()))


__all__ = [
    "TransferEffects",
    "kl_steering_effect",
    "paper_transfer_ratios",
    "class_prob_behaviour",
    "classify_transfer",
    "diff_of_means",
    "fixed_subspace",
    "fixed_subspace_overlap",
    "logit_diff_behaviour",
    "rotation_cosine",
    "run_with_steering",
    "steering_effect",
    "steering_hook",
    "transfer_effects",
    "transfer_vector",
]


# --------------------------------------------------------------------------------------------
# steering experiments on the Dyck-3 toy (appended: contrasts, behaviours, a transfer table)
# --------------------------------------------------------------------------------------------

#: Interpretable contrasts of the Dyck-3 task. Each names the two groups of positions whose
#: residual means give ``v = mean(A) − mean(B)``, the readout it should move, and the classes whose
#: mean logit minus the other group's mean logit is the behaviour, measured at the B positions
#: (where adding ``v`` should push the readout from B towards A).
DYCK_CONTRASTS: dict[str, dict[str, Any]] = {
    "closer": dict(readout="type", classes_a=(4, 6, 8), classes_b=(3, 5, 7),
                   description="closing vs opening bracket token; type readout: closer − opener logits at openers"),
    "depth": dict(readout="depth", classes_a=(3, 4, 5, 6, 7, 8), classes_b=(0, 1),
                  description="depth ≥ 3 vs depth ≤ 1; depth readout: high − low depth logits at depth ≤ 1"),
    "invalid": dict(readout="invalid", classes_a=(1,), classes_b=(0,),
                    description="invalid vs valid prefix; invalid readout: logit[1] − logit[0] at valid prefixes"),
}


def dyck_contrast_masks(split: Any, contrast: str) -> tuple[Tensor, Tensor]:
    """``(mask_a, mask_b)``, each ``(n, T)`` bool over the non-PAD positions of a
    :class:`polyrot_utils.tasks.dyck.language.DyckSplit`, for one of :data:`DYCK_CONTRASTS`."""

    if contrast not in DYCK_CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(DYCK_CONTRASTS)}, got {contrast!r}")
    m = split.mask
    if contrast == "closer":
        return m & torch.isin(split.tokens, torch.tensor(dyck.CLOSERS)), m & torch.isin(split.tokens, torch.tensor(dyck.OPENERS))
    if contrast == "depth":
        d = split.labels["depth"]
        return m & (d >= 3), m & (d >= 0) & (d <= 1)
    inv = split.labels["invalid"]
    return m & (inv == 1), m & (inv == 0)


def group_logit_diff_behaviour(classes_a: Sequence[int], classes_b: Sequence[int], readout: slice | None = None,
                               mask: Tensor | None = None) -> Behaviour:
    """Behaviour: mean logit of ``classes_a`` minus mean logit of ``classes_b`` (indices within the
    ``readout`` slice of the last dim), at the ``mask`` positions (``(batch, pos)`` bool)."""
    ia, ib = list(classes_a), list(classes_b)
    if not ia or not ib:
        raise ValueError("classes_a and classes_b must be non-empty")

    def f(logits: Tensor) -> Tensor:
        z = logits[..., readout] if readout is not None else logits
        diff = z[..., ia].float().mean(-1) - z[..., ib].float().mean(-1)
        return diff[mask.to(diff.device)] if mask is not None else diff

    return f


def dyck_contrast_behaviour(split: Any, contrast: str) -> Behaviour:
    """The behaviour of :data:`DYCK_CONTRASTS` ``[contrast]`` on ``split``, at its B positions."""

    spec = DYCK_CONTRASTS[contrast]
    lo, hi = READOUT_SLICES[spec["readout"]]
    _, mask_b = dyck_contrast_masks(split, contrast)
    return group_logit_diff_behaviour(spec["classes_a"], spec["classes_b"], slice(lo, hi), mask_b)


def steering_transfer_rows(
    models: dict[Any, Any],
    fit_split: Any,
    eval_split: Any,
    site: str,
    pairs: Sequence[tuple[Any, Any]],
    contrasts: Sequence[str] = tuple(DYCK_CONTRASTS),
    *,
    alpha: float = 1.0,
    fixed_tol: float = 0.5,
    batch_size: int = 256,
    **thresholds: float,
) -> list[dict[str, Any]]:
    """Cross-seed steering transfer on Dyck-3 models: one row per (source, target, contrast).

    Per model, diff-of-means vectors at ``site`` from ``fit_split``'s positions
    (:func:`dyck_contrast_masks`); per pair ``R`` = centred SO(d) Procrustes of the source's
    ``fit_split`` activations onto the target's (``x_src @ R ≈ x_tgt``). On ``eval_split`` (other
    strings) the behaviour change (:func:`dyck_contrast_behaviour`) caused by adding ``alpha · u``
    at every position of the target, for

    - ``native``: ``u = v_tgt`` (the target's own vector);
    - ``unaligned``: ``u = v_src`` as is (the paper's protocol: the same coordinates, same size);
    - ``transferred``: ``u = v_src @ R``;
    - ``unaligned_normed`` / ``transferred_normed``: the same directions rescaled to ``‖v_tgt‖``,
      which separates "wrong direction" from "wrong dose" (seeds' residual streams differ in scale).

    ``ratio_<x> = <x> / native`` and ``regime_<x>`` (:func:`classify_transfer`, ``thresholds``;
    "n/a" when the native effect is ~0). Predictors: ``overlap`` = :func:`fixed_subspace_overlap`
    of ``v_src`` with :func:`fixed_subspace` ``(R, fixed_tol)`` (directions R moves by at most
    ``fixed_tol`` of their length; ``fixed_dim`` its dimension), ``rotation_cosine`` = cos(v_src,
    v_src R), ``cos_native`` = cos(v_src, v_tgt), ``cos_transferred`` = cos(v_src R, v_tgt),
    ``norm_ratio`` = ‖v_src‖ / ‖v_tgt‖.
    """

    acts = {k: collect_activations(m, fit_split.tokens, [site], batch_size=batch_size, mask=fit_split.mask)[site]
            for k, m in models.items()}
    vecs: dict[tuple[Any, str], Tensor] = {}
    for c in contrasts:
        ma, mb = dyck_contrast_masks(fit_split, c)
        for k in models:
            vecs[(k, c)] = diff_of_means(acts[k], ma[fit_split.mask], mb[fit_split.mask])
    behaviours = {c: dyck_contrast_behaviour(eval_split, c) for c in contrasts}
    tokens = eval_split.tokens
    clean = {k: run_with_steering(models[k], tokens, site, None, 0.0) for k in {t for _, t in pairs}}
    native: dict[tuple[Any, str], float] = {}
    rows = []
    for src, tgt in pairs:
        R = torch.as_tensor(fit_rotation(acts[src].double(), acts[tgt].double())).float()
        basis = fixed_subspace(R, fixed_tol)
        for c in contrasts:
            v_s, v_t = vecs[(src, c)], vecs[(tgt, c)]

            def effect(u: Tensor) -> float:
                return steering_effect(models[tgt], tokens, site, u, alpha, behaviours[c], clean_logits=clean[tgt])

            if (tgt, c) not in native:
                native[(tgt, c)] = effect(v_t)
            v_r = transfer_vector(v_s, R)
            scale = float(v_t.norm() / v_s.norm().clamp_min(1e-30))
            eff = {"native": native[(tgt, c)], "unaligned": effect(v_s), "transferred": effect(v_r),
                   "unaligned_normed": effect(v_s * scale), "transferred_normed": effect(v_r * scale)}
            row = {"source": src, "target": tgt, "site": site, "contrast": c, "alpha": alpha,
                   "v_norm": float(v_s.norm()), "norm_ratio": 1.0 / scale, "fixed_dim": int(basis.shape[0]),
                   "overlap": fixed_subspace_overlap(v_s, basis), "rotation_cosine": rotation_cosine(v_s, R),
                   "cos_native": float(torch.nn.functional.cosine_similarity(v_s.double(), v_t.double(), dim=0)),
                   "cos_transferred": float(torch.nn.functional.cosine_similarity(v_r.double(), v_t.double(), dim=0)),
                   **eff}
            for k in ("unaligned", "transferred", "unaligned_normed", "transferred_normed"):
                row[f"ratio_{k}"] = eff[k] / eff["native"] if eff["native"] != 0 else float("nan")
                try:
                    row[f"regime_{k}"] = classify_transfer(eff["native"], eff[k], **thresholds)
                except ValueError:
                    row[f"regime_{k}"] = "n/a"
            rows.append(row)
    return rows


__all__ += [
    "DYCK_CONTRASTS", "dyck_contrast_behaviour", "dyck_contrast_masks", "group_logit_diff_behaviour", "steering_transfer_rows",
]


# --------------------------------------------------------------------------------------------
# the paper's toy steering statistic (exp2_steering.py)
# --------------------------------------------------------------------------------------------

#: The paper's three toy vectors (exp2_steering.py ``build_steering_vectors``), each with the
#: readout it should move, its sign (the sticky-invalid vector is *subtracted*) and the positions
#: where its effect is read (``cond_masks``).
PAPER_TOY_VECTORS = ("sticky_invalid_d4", "depth_4_to_5", "closer_signal")


def _capture(model: Any, tokens: Tensor, site: str) -> Tensor:
    out: dict[str, Tensor] = {}

    def hook(x: Tensor, hook: Any = None) -> Tensor:
        out["x"] = x.detach()
        return x

    _check_site(model, site)
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(site, hook)])
    return out["x"]


def paper_toy_masks(split: Any) -> dict[str, tuple[Tensor, Tensor, Tensor, str, float]]:
    """For each of :data:`PAPER_TOY_VECTORS`: ``(pos_mask, neg_mask, cond_mask, readout, sign)``
    over ``split`` (a :class:`polyrot_utils.tasks.dyck.language.DyckSplit`): sticky-invalid at depth 4
    (invalid = 1 vs 0 at depth 4; subtracted; read on the invalid readout where invalid = 1 at
    depth 4), depth 5 vs depth 4 (read on the depth readout at depth 4), closer vs opener tokens
    (read on the token-type readout at closers)."""

    m = split.mask
    depth, inv, tok = split.labels["depth"], split.labels["invalid"], split.tokens
    closer = m & torch.isin(tok, torch.tensor(dyck.CLOSERS))
    opener = m & torch.isin(tok, torch.tensor(dyck.OPENERS))
    return {
        "sticky_invalid_d4": (m & (inv == 1) & (depth == 4), m & (inv == 0) & (depth == 4),
                              m & (inv == 1) & (depth == 4), "invalid", -1.0),
        "depth_4_to_5": (m & (depth == 5), m & (depth == 4), m & (depth == 4), "depth", 1.0),
        "closer_signal": (closer, opener, closer, "type", 1.0),
    }


def _cond_accuracy(logits: Tensor, split: Any, readout: str, cond: Tensor) -> float:

    lo, hi = READOUT_SLICES[readout]
    pred = logits[..., lo:hi].argmax(-1)
    ok = (pred == split.labels[readout])[cond]
    return float(ok.double().mean()) if ok.numel() else float("nan")


def paper_toy_steering(models: Mapping[Any, Any], anchor: Any, split: Any, site: str, alphas: Sequence[float],
                       min_count: int = 6) -> list[dict[str, Any]]:
    """The paper's toy steering transfer (exp2_steering.py ``run``): the anchor's three
    diff-of-means vectors at ``site`` (the paper: ``resid_mid_1`` = ``blocks.1.hook_resid_mid``)
    on ``split``, each added (``sign · α · v``, every position) unchanged to every model; effect =
    conditional-accuracy *drop* of the target readout at the condition positions (base − steered);
    ``within`` = the anchor's drop, ``cross`` = the mean over the other models, ``ratio = cross /
    within`` (the paper's cross-to-within ratio: 1.02 for depth at α = 2, 8.43 for the closer
    signal at α = 1; "inverted" = cross > within). A vector with fewer than ``min_count`` positive
    or negative positions is skipped, as the paper's (> 5) does."""
    if anchor not in models:
        raise ValueError(f"anchor {anchor!r} is not among the models {list(models)}")
    others = [m for m in models if m != anchor]
    if not others:
        raise ValueError("need at least one model besides the anchor")
    acts = _capture(models[anchor], split.tokens, site)
    rows = []
    for name, (pos, neg, cond, readout, sign) in paper_toy_masks(split).items():
        if int(pos.sum()) < min_count or int(neg.sum()) < min_count or not bool(cond.any()):
            continue
        v = acts[pos].double().mean(0) - acts[neg].double().mean(0)
        base = {m: _cond_accuracy(run_with_steering(models[m], split.tokens, site, None, 0.0), split, readout, cond)
                for m in models}
        for a in alphas:
            drop = {m: base[m] - _cond_accuracy(run_with_steering(models[m], split.tokens, site, (sign * v).float(),
                                                                  float(a)), split, readout, cond) for m in models}
            w = drop[anchor]
            c = float(np.mean([drop[m] for m in others]))
            rows.append({"vector": name, "alpha": float(a), "within": w, "cross": c,
                         "ratio": c / w if abs(w) > 1e-12 else (float("inf") if c > 0 else float("nan")),
                         "n_pos": int(pos.sum()), "n_neg": int(neg.sum()), "n_cond": int(cond.sum())})
    return rows


__all__ += ["PAPER_TOY_VECTORS", "paper_toy_masks", "paper_toy_steering"]
