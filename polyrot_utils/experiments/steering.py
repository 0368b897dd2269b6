"""Steering vectors across seeds: diff-of-means vectors, their transfer through a fitted
rotation, the regimes, and the one steering experiment both rungs run (chapters 14 and 24).

Conventions: activations are row vectors ``(n, d)`` (or ``(batch, pos, d)``); a rotation R maps
source onto target, ``x_src @ R ≈ x_tgt``, so a source direction ``v`` becomes ``v @ R`` in the
target frame. A steering run adds ``alpha * v`` to the residual stream at one hook site of a
TransformerLens model (any ``HookedRootModule`` with ``run_with_hooks``/``hook_dict``).

Regimes (the book's glossary, "Regime"). With ``r = effect / native_effect`` (the behaviour
change caused by a foreign vector on the target, over that caused by the target's own
diff-of-means vector): ``"clean"`` for ``r >= 0.7``, ``"partial"`` for ``0.2 <= r < 0.7``,
``"none"`` for ``|r| < 0.2`` and ``"inverted"`` for ``r <= -0.2`` (:func:`classify_transfer`).
The paper's predictor of the regime is the overlap of ``v`` with R's fixed subspace
(:func:`fixed_subspace_overlap`).

The experiment (:func:`steering_transfer`) takes a
:class:`~polyrot_utils.models.activations.PairedActs` and a rung's :class:`SteeringSetup`
(contrasts and behaviour: :func:`dyck_steering_setup`, :func:`pythia_steering_setup`); the
paper's own statistic per rung is :func:`dyck_paper_inversion` / :func:`pythia_paper_inversion`;
:func:`record_steering_claims` writes the claims, :func:`plot_transfer_ratios` and
:func:`plot_predictors` draw the figures, and :func:`chapter_outputs` names every table and
figure a chapter shows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import Tensor

from polyrot_utils.core import basis as core_basis
from polyrot_utils.core.intervals import Interval, pair_interval, seed_interval
from polyrot_utils.core.procrustes import fit_rotation
from polyrot_utils.core.progress import report
from polyrot_utils.models.activations import PairedActs, short_site
from polyrot_utils.models.steering_hooks import (
    _as_tensor,
    _check_site,
    diff_of_means,
    run_with_steering,
    steering_hook,
    transfer_vector,
)
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.suite import _pick_strings
from polyrot_utils.tasks.dyck.toy import READOUT_SLICES
from polyrot_utils.tasks.pythia.suite import (
    TEXT_CONTRASTS,
    contrast_masks,
    distinctive_next_tokens,
    next_token_set_behaviour,
    token_classes,
)

Behaviour = Callable[[Tensor], Tensor | float]


def kl_steering_effect(
    model: Any, tokens: Tensor, site: str, v: Tensor, alpha: float, *, batch_size: int = 16
) -> float:
    """The paper's Pythia steering effect (pythia_rotation.py ``measure_steering_effect``): the
    mean over every (sequence, position) of KL(clean ‖ steered) over **all** next-token logits,
    ``alpha · v`` added at ``site`` (every position)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (batch, seq), got shape {tuple(tokens.shape)}")
    total, n = 0.0, 0
    for i in range(0, tokens.shape[0], int(batch_size)):
        t = tokens[i : i + int(batch_size)]
        lc = torch.log_softmax(run_with_steering(model, t, site, None, 0.0).double(), dim=-1)
        ls = torch.log_softmax(run_with_steering(model, t, site, v, alpha).double(), dim=-1)
        kl = (lc.exp() * (lc - ls)).sum(-1)
        total += float(kl.sum())
        n += int(kl.numel())
    return total / max(n, 1)


def paper_transfer_ratios(
    models: Mapping[Any, Any],
    anchor: Any,
    tokens: Tensor,
    site: str,
    vectors: Mapping[str, Tensor],
    alphas: Sequence[float],
) -> list[dict[str, Any]]:
    """The paper's Pythia transfer ratio (pythia_rotation.py ``panel_d_steering``): for each of the
    anchor's vectors and each α, ``within`` = :func:`kl_steering_effect` of the vector on the
    anchor, ``cross`` = its mean over the other models (the vector applied unchanged), ``ratio =
    cross / within`` (``ratio_by_target``: each other model's effect / within; their mean is
    ``ratio``); the paper's "inverted" regime is ratio > 1 (1.8–10.0 in its Table)."""
    if anchor not in models:
        raise ValueError(f"anchor {anchor!r} is not among the models {list(models)}")
    others = [m for m in models if m != anchor]
    if not others:
        raise ValueError("need at least one model besides the anchor")
    rows = []
    for name, v in vectors.items():
        for a in alphas:
            w = kl_steering_effect(models[anchor], tokens, site, v, float(a))
            by = {str(m): kl_steering_effect(models[m], tokens, site, v, float(a)) for m in others}
            c = float(np.mean(list(by.values())))
            rows.append(
                {
                    "vector": name,
                    "alpha": float(a),
                    "within": w,
                    "cross": c,
                    "ratio": c / max(w, 1e-12),
                    "ratio_by_target": {m: x / max(w, 1e-12) for m, x in by.items()},
                }
            )
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
    clean = (
        clean_logits
        if clean_logits is not None
        else run_with_steering(model, tokens, site, None, 0.0)
    )
    steered = run_with_steering(model, tokens, site, v, alpha, positions=positions)
    return _scalar(behaviour(steered)) - _scalar(behaviour(clean))


def logit_diff_behaviour(
    target: int,
    baseline: int | None = None,
    readout: slice | None = None,
    mask: Tensor | None = None,
) -> Behaviour:
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


def class_prob_behaviour(
    target: int, readout: slice | None = None, mask: Tensor | None = None
) -> Behaviour:
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

    def effect(v: Tensor) -> float:
        return steering_effect(
            target_model, tokens, site, v, alpha, behaviour, positions=positions, clean_logits=clean
        )

    native = effect(v_native)
    unaligned = effect(v_source)
    transferred = effect(transfer_vector(v_source, R))
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
        raise ValueError(
            f"need 0 < none_ratio < clean_ratio, got none_ratio={none_ratio}, "
            f"clean_ratio={clean_ratio}"
        )
    native_effect, transferred_effect = float(native_effect), float(transferred_effect)
    if not np.isfinite(native_effect) or not np.isfinite(transferred_effect):
        raise ValueError(
            f"effects must be finite, got native={native_effect}, transferred={transferred_effect}"
        )
    if abs(native_effect) < min_native:
        raise ValueError(
            f"|native_effect| = {abs(native_effect):.3g} < min_native = {min_native}: nothing to "
            "transfer"
        )
    r = transferred_effect / native_effect
    if r >= clean_ratio:
        return "clean"
    if r >= none_ratio:
        return "partial"
    if r > -none_ratio:
        return "none"
    return "inverted"


def fixed_subspace(R: Tensor | np.ndarray, tol: float = 1e-5) -> Tensor:
    """:func:`polyrot_utils.core.basis.fixed_subspace` (the glossary's definition: invariant
    planes turned by at most ``tol`` radians; the default keeps the exactly fixed directions,
    the chapters pass the glossary's 0.1) as a float32 torch tensor of rows ``(k, d)``."""
    Rt = _as_tensor(R, "R").detach().cpu().to(torch.float64)
    if Rt.ndim != 2 or Rt.shape[0] != Rt.shape[1]:
        raise ValueError(f"R must be a square (d, d) matrix, got {tuple(Rt.shape)}")
    return torch.as_tensor(core_basis.fixed_subspace(Rt.numpy(), tol)).float()


def fixed_subspace_overlap(v: Tensor | np.ndarray, basis: Tensor | np.ndarray) -> float:
    """``‖P v‖ / ‖v‖`` with P the orthogonal projector onto the row span of ``basis (k, d)``
    (orthonormal rows, e.g. from :func:`fixed_subspace`); in [0, 1]; 0 for an empty basis."""
    vt = _as_tensor(v, "v").detach().cpu().to(torch.float64).reshape(-1)
    B = _as_tensor(basis, "basis").detach().cpu().to(torch.float64)
    if B.ndim != 2 or B.shape[1] != vt.shape[0]:
        raise ValueError(
            f"basis must have shape (k, {vt.shape[0]}) to match v, got {tuple(B.shape)}"
        )
    nv = float(vt.norm())
    if nv == 0:
        raise ValueError("v is the zero vector")
    if B.shape[0] == 0:
        return 0.0
    return float((B @ vt).norm()) / nv


def rotation_cosine(v: Tensor | np.ndarray, R: Tensor | np.ndarray) -> float:
    """``cos(v, v @ R)``: how much R moves v. 1 for v in the fixed subspace; the unaligned
    transfer's ratio for a purely linear readout of v's direction."""
    vt = _as_tensor(v, "v").detach().cpu().to(torch.float64).reshape(-1)
    w = transfer_vector(vt, _as_tensor(R, "R").detach().cpu().to(torch.float64))
    return float(vt @ w / (vt.norm() * w.norm()))


__all__ = [
    "TransferEffects",
    "class_prob_behaviour",
    "classify_transfer",
    "diff_of_means",
    "fixed_subspace",
    "fixed_subspace_overlap",
    "kl_steering_effect",
    "logit_diff_behaviour",
    "paper_transfer_ratios",
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
    "closer": dict(
        readout="type",
        classes_a=(4, 6, 8),
        classes_b=(3, 5, 7),
        description="closing vs opening bracket token; type readout: closer − opener logits at "
        "openers",
    ),
    "depth": dict(
        readout="depth",
        classes_a=(3, 4, 5, 6, 7, 8),
        classes_b=(0, 1),
        description="depth ≥ 3 vs depth ≤ 1; depth readout: high − low depth logits at depth ≤ 1",
    ),
    "invalid": dict(
        readout="invalid",
        classes_a=(1,),
        classes_b=(0,),
        description="invalid vs valid prefix; invalid readout: logit[1] − logit[0] at valid "
        "prefixes",
    ),
}


def dyck_contrast_masks(split: Any, contrast: str) -> tuple[Tensor, Tensor]:
    """``(mask_a, mask_b)``, each ``(n, T)`` bool over the non-PAD positions of a
    :class:`polyrot_utils.tasks.dyck.language.DyckSplit`, for one of :data:`DYCK_CONTRASTS`."""

    if contrast not in DYCK_CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(DYCK_CONTRASTS)}, got {contrast!r}")
    m = split.mask
    if contrast == "closer":
        return m & torch.isin(split.tokens, torch.tensor(dyck.CLOSERS)), m & torch.isin(
            split.tokens, torch.tensor(dyck.OPENERS)
        )
    if contrast == "depth":
        d = split.labels["depth"]
        return m & (d >= 3), m & (d >= 0) & (d <= 1)
    inv = split.labels["invalid"]
    return m & (inv == 1), m & (inv == 0)


def group_logit_diff_behaviour(
    classes_a: Sequence[int],
    classes_b: Sequence[int],
    readout: slice | None = None,
    mask: Tensor | None = None,
) -> Behaviour:
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


__all__ += [
    "DYCK_CONTRASTS",
    "dyck_contrast_behaviour",
    "dyck_contrast_masks",
    "group_logit_diff_behaviour",
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
    over ``split`` (a :class:`polyrot_utils.tasks.dyck.language.DyckSplit`): sticky-invalid at depth
    4 (invalid = 1 vs 0 at depth 4; subtracted; read on the invalid readout where invalid = 1 at
    depth 4), depth 5 vs depth 4 (read on the depth readout at depth 4), closer vs opener tokens
    (read on the token-type readout at closers)."""

    m = split.mask
    depth, inv, tok = split.labels["depth"], split.labels["invalid"], split.tokens
    closer = m & torch.isin(tok, torch.tensor(dyck.CLOSERS))
    opener = m & torch.isin(tok, torch.tensor(dyck.OPENERS))
    return {
        "sticky_invalid_d4": (
            m & (inv == 1) & (depth == 4),
            m & (inv == 0) & (depth == 4),
            m & (inv == 1) & (depth == 4),
            "invalid",
            -1.0,
        ),
        "depth_4_to_5": (m & (depth == 5), m & (depth == 4), m & (depth == 4), "depth", 1.0),
        "closer_signal": (closer, opener, closer, "type", 1.0),
    }


def _cond_accuracy(logits: Tensor, split: Any, readout: str, cond: Tensor) -> float:

    lo, hi = READOUT_SLICES[readout]
    pred = logits[..., lo:hi].argmax(-1)
    ok = (pred == split.labels[readout])[cond]
    return float(ok.double().mean()) if ok.numel() else float("nan")


def paper_toy_steering(
    models: Mapping[Any, Any],
    anchor: Any,
    split: Any,
    site: str,
    alphas: Sequence[float],
    min_count: int = 6,
) -> list[dict[str, Any]]:
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
        base = {
            m: _cond_accuracy(
                run_with_steering(models[m], split.tokens, site, None, 0.0), split, readout, cond
            )
            for m in models
        }
        for a in alphas:
            drop = {
                m: base[m]
                - _cond_accuracy(
                    run_with_steering(models[m], split.tokens, site, (sign * v).float(), float(a)),
                    split,
                    readout,
                    cond,
                )
                for m in models
            }
            w = drop[anchor]
            c = float(np.mean([drop[m] for m in others]))
            by = {str(m): drop[m] / w if abs(w) > 1e-12 else float("nan") for m in others}
            rows.append(
                {
                    "vector": name,
                    "alpha": float(a),
                    "within": w,
                    "cross": c,
                    "ratio": c / w if abs(w) > 1e-12 else (float("inf") if c > 0 else float("nan")),
                    "ratio_by_target": by,
                    "n_pos": int(pos.sum()),
                    "n_neg": int(neg.sum()),
                    "n_cond": int(cond.sum()),
                }
            )
    return rows


__all__ += ["PAPER_TOY_VECTORS", "paper_toy_masks", "paper_toy_steering"]


# ============================================================================================
# One steering-transfer experiment for both rungs (chapters 14 and 24)
# ============================================================================================
#
# What is particular to a rung is only how its contrasts are defined and how its behaviour is
# read (a :class:`SteeringSetup` of :class:`Contrast` objects, built by
# :func:`dyck_steering_setup` or :func:`pythia_steering_setup`) and the paper's own statistic
# on that rung (:func:`dyck_paper_inversion`, :func:`pythia_paper_inversion`). The transfer
# itself (:func:`steering_transfer`), the claims (:func:`record_steering_claims`) and the
# figures (:func:`plot_transfer_ratios`, :func:`plot_predictors`) are written once.

#: what is added to the target beside its own vector (``native``), see :func:`steering_transfer`
TRANSFER_KINDS = ("unaligned", "transferred", "unaligned_normed", "transferred_normed", "random")
#: the glossary's regimes ("Regime", book/glossary.md): r = effect / native effect; clean r >= 0.7,
#: partial 0.2 <= r < 0.7, none |r| < 0.2, inverted r <= -0.2
CLEAN_RATIO, NONE_RATIO = 0.7, 0.2
#: the regimes, and "n/a" for a transfer whose native effect is below ``min_native``
REGIMES = ("clean", "partial", "none", "inverted", "n/a")
#: the readable names of :data:`TRANSFER_KINDS` in tables and figures
KIND_LABELS = {
    "unaligned": "v as is",
    "transferred": "v R",
    "unaligned_normed": "v as is, norm-matched",
    "transferred_normed": "v R, norm-matched",
    "random": "random, ‖v‖",
}


@dataclass(frozen=True)
class Contrast:
    """One steering contrast of a rung.

    ``fit_a`` / ``fit_b``: ``(n_fit,)`` bool over the rows of ``acts.fit[model][site]`` (the two
    groups; ``v = mean(x | A) − mean(x | B)``, row vectors). ``behaviour``: ``logits (batch, pos,
    vocab) -> tensor`` of a quantity read at the positions where the effect is measured (larger
    = more like A), on :attr:`SteeringSetup.tokens`. ``info``: what a reader's table shows."""

    name: str
    fit_a: Tensor
    fit_b: Tensor
    behaviour: Behaviour
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SteeringSetup:
    """What a rung hands :func:`steering_transfer`: ``tokens (n, T)``, the eval inputs the models
    are steered on; ``contrasts`` (:class:`Contrast`); ``skipped``: contrasts left out, with why."""

    tokens: Tensor
    contrasts: list[Contrast]
    skipped: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per contrast (used or skipped) with its ``info``."""
        rows = [{"contrast": c.name, "used": True, **c.info} for c in self.contrasts]
        rows += [{"contrast": k, "used": False, "why": v} for k, v in self.skipped.items()]
        return pd.DataFrame(rows).set_index("contrast")


def _regime(native: float, effect: float, min_native: float) -> str:
    if not native > min_native:
        return "n/a"
    return classify_transfer(native, effect, clean_ratio=CLEAN_RATIO, none_ratio=NONE_RATIO)


@dataclass
class SteeringResult:
    """What :func:`steering_transfer` measured on one cohort (or suite).

    ``rows``: one row per (site, source, target, contrast, α) with the effects (``native`` and
    each of :data:`TRANSFER_KINDS`), ``ratio_<kind>`` = effect / native, ``regime_<kind>``, and
    the predictors ``fixed_dim``, ``overlap``, ``rotation_cosine``, ``cos_native``,
    ``norm_ratio``. A row is *read* when its native effect exceeds ``min_native``."""

    rows: pd.DataFrame
    cohort: str
    members: list[str]
    min_native: float
    fixed_tol: float

    @property
    def read(self) -> pd.DataFrame:
        """The rows whose native effect exceeds ``min_native`` (the ratio means something)."""
        return self.rows[self.rows["native"] > self.min_native] if len(self.rows) else self.rows

    def regime_counts(self) -> pd.DataFrame:
        """Transfers per regime (rows) and kind (columns), over the read rows."""
        read = self.read
        out = {
            KIND_LABELS[k]: [
                int((read[f"regime_{k}"] == r).sum()) if len(read) else 0 for r in REGIMES[:4]
            ]
            for k in TRANSFER_KINDS
        }
        return pd.DataFrame(out, index=list(REGIMES[:4]))

    def pair_medians(self, kind: str = "transferred") -> dict[tuple[str, str], float]:
        """Median ``ratio_<kind>`` of each unordered pair of seeds (both directions, read rows)."""
        out: dict[tuple[str, str], float] = {}
        read = self.read
        for a, b in itertools.combinations(self.members, 2):
            sel = read[
                ((read.source == a) & (read.target == b))
                | ((read.source == b) & (read.target == a))
            ]
            if len(sel):
                out[(a, b)] = float(sel[f"ratio_{kind}"].median())
        return out

    def interval(self, kind: str = "transferred", seed: int = 0) -> Interval | None:
        """Mean over seed pairs of the pair's median ``ratio_<kind>``, with its bootstrap interval
        over seeds (:func:`polyrot_utils.core.intervals.pair_interval`); None if nothing is read."""
        med = self.pair_medians(kind)
        return pair_interval(med, seed=seed) if med else None

    def overlap_spearman(self, predictor: str = "overlap") -> tuple[float, float]:
        """Spearman ``(rho, p)`` between ``predictor`` and ``ratio_unaligned`` over the read rows
        (NaN when the predictor or the ratio is constant, e.g. no fixed subspace at all)."""
        read = self.read
        if len(read) < 3 or read[predictor].nunique() < 2 or read["ratio_unaligned"].nunique() < 2:
            return float("nan"), float("nan")
        r = spearmanr(read[predictor], read["ratio_unaligned"])
        return float(r.statistic), float(r.pvalue)

    def summary(self) -> pd.DataFrame:
        """Per kind: the median ratio over seed pairs [lo, hi] and the regime counts (read rows)."""
        counts = self.regime_counts()
        rows = []
        for k in TRANSFER_KINDS:
            iv = self.interval(k)
            rows.append(
                {
                    "vector applied": KIND_LABELS[k],
                    "ratio to native": iv.point if iv else float("nan"),
                    "lo": iv.lo if iv else float("nan"),
                    "hi": iv.hi if iv else float("nan"),
                    **{r: int(counts.loc[r, KIND_LABELS[k]]) for r in REGIMES[:4]},
                }
            )
        return pd.DataFrame(rows).set_index("vector applied")


def _check_setup(
    acts: PairedActs,
    setup: SteeringSetup,
    sites: Sequence[str],
    alphas: Sequence[float],
    fixed_tol: float,
    min_native: float,
) -> None:
    if len(acts.members) < 2:
        raise ValueError(f"acts must hold at least two members, got {acts.members}")
    unknown = [s for s in sites if s not in acts.sites]
    if not sites or unknown:
        raise ValueError(
            f"sites must be a non-empty subset of acts.sites {acts.sites}, got {list(sites)}"
        )
    if not alphas or not all(np.isfinite(float(a)) and float(a) != 0 for a in alphas):
        raise ValueError(
            f"alphas must be a non-empty list of finite non-zero numbers, got {list(alphas)}"
        )
    if not 0 < float(fixed_tol) < np.pi:
        raise ValueError(f"fixed_tol must be an angle in (0, π) radians, got {fixed_tol}")
    if not float(min_native) >= 0:
        raise ValueError(f"min_native must be >= 0, got {min_native}")
    if not setup.contrasts:
        raise ValueError(f"setup has no usable contrast (skipped: {setup.skipped})")
    n = next(iter(acts.fit[acts.members[0]].values())).shape[0]
    for c in setup.contrasts:
        if tuple(c.fit_a.shape) != (n,) or tuple(c.fit_b.shape) != (n,):
            raise ValueError(
                f"contrast {c.name!r}: fit_a / fit_b must be ({n},) masks over acts.fit rows"
            )


def steering_transfer(
    acts: PairedActs,
    setup: SteeringSetup,
    *,
    sites: Sequence[str] | None = None,
    alphas: Sequence[float] = (1.0,),
    fixed_tol: float = 0.1,
    min_native: float = 0.02,
    seed: int = 0,
    cohort: str = "",
) -> SteeringResult:
    """Cross-seed steering transfer over every ordered pair of ``acts.members``.

    Per site and member, one diff-of-means vector per contrast from ``acts.fit`` rows. Per pair
    (source A, target B), R = centred SO(d) Procrustes of A's fit rows onto B's (row vectors:
    ``x_A @ R ≈ x_B``). On ``setup.tokens`` the behaviour change of B caused by adding ``α · u``
    at the site at every position, for ``native`` (u = B's own vector), ``unaligned`` (A's vector
    as is: the same coordinates — the paper's protocol), ``transferred`` (``v_A @ R``), their
    ``_normed`` versions (rescaled to ‖v_B‖: wrong direction vs wrong dose), and ``random`` (a
    Gaussian direction of length ‖v_A‖, drawn from ``seed``). ``ratio_<kind>`` = effect / native;
    ``regime_<kind>`` the glossary's regime, "n/a" when the native effect is ≤ ``min_native``.

    Predictors: ``overlap`` = ‖P v_A‖ / ‖v_A‖ with P the projector onto R's fixed subspace at
    tolerance ``fixed_tol`` radians (the glossary's: R's invariant planes turned by at most τ,
    i.e. the directions R moves by at most 2 sin(τ/2) of their length; ``fixed_dim`` its
    dimension); ``rotation_cosine`` = cos(v_A, v_A R); ``cos_native`` = cos(v_A, v_B);
    ``norm_ratio`` = ‖v_A‖ / ‖v_B‖. Errors name the bad argument before any work.
    """
    sites = list(acts.sites if sites is None else sites)
    _check_setup(acts, setup, sites, alphas, fixed_tol, min_native)
    members, tokens = list(acts.members), setup.tokens
    gen = torch.Generator().manual_seed(int(seed))
    cos = torch.nn.functional.cosine_similarity
    rows: list[dict[str, Any]] = []
    for site in sites:
        vec = {
            (m, c.name): diff_of_means(acts.fit[m][site], c.fit_a, c.fit_b)
            for m in members
            for c in setup.contrasts
        }
        clean = {m: run_with_steering(acts.models[m], tokens, site, None, 0.0) for m in members}
        native: dict[tuple[str, str, float], float] = {}
        pairs = list(itertools.permutations(members, 2))
        for i, (src, tgt) in enumerate(pairs):
            where = f"{cohort or 'transfer'} at {short_site(site)}"
            report(f"steering {where}: pair {i + 1} of {len(pairs)}")
            R = torch.as_tensor(
                fit_rotation(acts.fit[src][site].double(), acts.fit[tgt][site].double())
            ).double()
            fixed = fixed_subspace(R, fixed_tol)
            for c in setup.contrasts:
                v_s, v_t = vec[(src, c.name)], vec[(tgt, c.name)]
                v_r = transfer_vector(v_s, R.float())
                scale = float(v_t.norm() / v_s.norm().clamp_min(1e-30))
                rnd = torch.randn(v_s.shape[0], generator=gen)
                us = {
                    "unaligned": v_s,
                    "transferred": v_r,
                    "unaligned_normed": v_s * scale,
                    "transferred_normed": v_r * scale,
                    "random": rnd / rnd.norm() * v_s.norm(),
                }
                base = {
                    "site": site,
                    "source": src,
                    "target": tgt,
                    "contrast": c.name,
                    "v_norm": float(v_s.norm()),
                    "norm_ratio": 1.0 / scale,
                    "fixed_dim": int(fixed.shape[0]),
                    "overlap": fixed_subspace_overlap(v_s, fixed),
                    "rotation_cosine": rotation_cosine(v_s, R),
                    "cos_native": float(cos(v_s.double(), v_t.double(), dim=0)),
                }
                for a in alphas:

                    def effect(
                        u: Tensor,
                        a: float = float(a),
                        model: Any = acts.models[tgt],
                        site: str = site,
                        behaviour: Behaviour = c.behaviour,
                        clean_logits: Tensor = clean[tgt],
                    ) -> float:
                        return steering_effect(
                            model, tokens, site, u, a, behaviour, clean_logits=clean_logits
                        )

                    if (tgt, c.name, float(a)) not in native:
                        native[(tgt, c.name, float(a))] = effect(v_t)
                    row: dict[str, Any] = {
                        **base,
                        "alpha": float(a),
                        "native": native[(tgt, c.name, float(a))],
                    }
                    for k, u in us.items():
                        row[k] = effect(u)
                        row[f"ratio_{k}"] = (
                            row[k] / row["native"] if row["native"] != 0 else float("nan")
                        )
                        row[f"regime_{k}"] = _regime(row["native"], row[k], float(min_native))
                    rows.append(row)
    return SteeringResult(
        pd.DataFrame(rows), str(cohort), members, float(min_native), float(fixed_tol)
    )


# --------------------------------------------------------------------------------------------
# the paper's own statistic, per rung, and the claims
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperInversion:
    """The paper's steering statistic on one rung: the anchor's vectors applied *unchanged* to
    the other seeds; ratio = mean cross-seed effect / within-seed effect; "inverted" in the
    paper's sense = ratio > 1. ``value``: the claim's number (``universal``: the smallest ratio
    over vectors and α — the paper says every transfer inverts; otherwise the one vector and α
    the paper reports); ``interval``: that row's per-target ratios, bootstrapped over seeds."""

    value: float
    interval: Interval | None
    rows: list[dict[str, Any]]
    universal: bool
    cohort: str
    paper_value: str
    source: str
    description: str


#: what the paper reports for its steering statistic, and where (:class:`PaperInversion`)
_DYCK_PAPER_INVERSION = dict(
    source="§8.7 'three regimes (toy)'; experiments/cross_seed/exp2_steering.py:run",
    paper_value="cross/within = 8.43 for the closer signal at α = 1: inverted",
)
_PYTHIA_PAPER_INVERSION = dict(
    source="§8.7 'Pythia: three regimes collapse to inverted universally'; "
    "experiments/scale/pythia_rotation.py:panel_d_steering",
    paper_value="transfer ratios 1.8–10.0 across all three vectors and α ∈ {0.5, 1, 2, 4}: "
    "all inverted",
)


def _paper_inversion(
    rows: list[dict[str, Any]],
    cohort: str,
    reported: tuple[str, float] | None,
    description: str,
    paper: Mapping[str, str],
) -> PaperInversion:
    """The :class:`PaperInversion` of ``rows`` (one per vector and α): its value is the ratio of
    the ``reported`` ``(vector, α)`` row, or, when ``reported`` is ``None`` (the paper's claim
    is universal), the smallest ratio; NaN and no interval when there is no such row."""
    if reported is None:
        row = min(rows, key=lambda r: r["ratio"]) if rows else None
    else:
        vector, alpha = reported
        row = next((r for r in rows if r["vector"] == vector and r["alpha"] == alpha), None)
    vals = {k: v for k, v in ((row or {}).get("ratio_by_target") or {}).items() if np.isfinite(v)}
    return PaperInversion(
        value=float(row["ratio"]) if row else float("nan"),
        interval=seed_interval(vals) if vals else None,
        rows=rows,
        universal=reported is None,
        cohort=cohort,
        paper_value=paper["paper_value"],
        source=paper["source"],
        description=description,
    )


def dyck_paper_inversion(
    acts: PairedActs,
    data_config: Any,
    alphas: Sequence[float],
    site: str = "blocks.1.hook_resid_mid",
    cohort: str = "shared_io",
) -> PaperInversion:
    """The paper's toy statistic (:func:`paper_toy_steering`, exp2_steering.py) on ``acts``'
    models, anchor = the first member, on the fit strings; the claim is its closer signal at
    α = 1 (8.43 in the paper: inverted). ``alphas`` must contain 1.0."""
    if 1.0 not in [float(a) for a in alphas]:
        raise ValueError(
            "alphas must contain 1.0 (the paper's reported closer-signal ratio), got "
            f"{list(alphas)}"
        )
    fit_split, _ = dyck_splits(acts, data_config)
    models = {m: acts.models[m] for m in acts.members}
    rows = paper_toy_steering(models, acts.members[0], fit_split, site, alphas)
    return _paper_inversion(
        rows,
        cohort,
        ("closer_signal", 1.0),
        f"{cohort} cohort: the first seed's closer-vs-opener vector at {short_site(site)}, α = 1, "
        "applied unchanged: mean cross-seed / within-seed drop of the token-type readout's "
        "accuracy at closers (> 1: 'inverted' in the paper's sense)",
        _DYCK_PAPER_INVERSION,
    )


def pythia_paper_inversion(
    acts: PairedActs,
    setup: SteeringSetup,
    site: str,
    alphas: Sequence[float],
    n_kl_seqs: int = 16,
    cohort: str = "independent",
) -> PaperInversion:
    """The paper's Pythia statistic (:func:`paper_transfer_ratios`, pythia_rotation.py
    ``panel_d_steering``): the first member's vectors at ``site`` (our contrasts), KL(clean ‖
    steered) over all logits on the first ``n_kl_seqs`` eval windows; the claim: every vector at
    every α inverted (value = the smallest ratio)."""
    if site not in acts.sites:
        raise ValueError(f"site {site!r} is not among acts.sites {acts.sites}")
    if int(n_kl_seqs) < 1:
        raise ValueError(f"n_kl_seqs must be >= 1, got {n_kl_seqs}")
    anchor = acts.members[0]
    vectors = {
        c.name: diff_of_means(acts.fit[anchor][site], c.fit_a, c.fit_b) for c in setup.contrasts
    }
    models = {m: acts.models[m] for m in acts.members}
    rows = paper_transfer_ratios(
        models, anchor, setup.tokens[: int(n_kl_seqs)], site, vectors, alphas
    )
    return _paper_inversion(
        rows,
        cohort,
        None,
        "smallest cross-seed / within-seed KL effect of the first seed's vectors at "
        f"{short_site(site)} over vectors and α (KL(clean ‖ steered) over all logits, mean over "
        "the other seeds): > 1 means every transfer is 'inverted' in the paper's sense",
        _PYTHIA_PAPER_INVERSION,
    )


def record_steering_claims(
    results: Any, measured: Sequence[SteeringResult], paper: PaperInversion | None = None
) -> None:
    """Record the steering claims into ``results`` (a ChapterResults), the same names on both
    rungs (the chapter id tells them apart):

    - ``paper_inversion`` (the paper's): :class:`PaperInversion` ``value > 1``;
    - ``shared_io_three_regimes`` (shared-I/O cohort): distinct regimes among clean / partial /
      inverted of the unaligned transfers ≥ 3 (the paper: all three);
    - ``independent_unaligned_inverted_fraction`` (independent cohort): fraction of unaligned
      transfers that flip sign (regime inverted) ≥ 1 — a check of ``paper_inversion`` when the
      paper's claim is universal;
    - ``<cohort>_transferred_ratio``: mean over seed pairs of the median ratio of ``v R`` ≥ 0.7
      (the clean threshold), with its interval;
    - ``<cohort>_overlap_predicts_regime``: Spearman ρ(overlap, unaligned ratio) ≥ 0.5.

    Also records ``<cohort>_transfers`` (every row), ``<cohort>_summary`` and the paper's rows."""
    if paper is not None:
        results.record("paper_inversion_rows", paper.rows)
        results.claim(
            "paper_inversion",
            value=paper.value,
            threshold=1.0,
            op=">",
            kind="paper",
            paper_value=paper.paper_value,
            source=paper.source,
            description=paper.description,
            interval=paper.interval,
        )
    for res in measured:
        c, read = res.cohort, res.read
        results.record(f"{c}_transfers", res.rows.to_dict(orient="records"))
        results.record(f"{c}_summary", res.summary().reset_index().to_dict(orient="records"))
        if c == "shared_io":
            n_reg = len(
                {
                    r
                    for r in read.get("regime_unaligned", [])
                    if r in ("clean", "partial", "inverted")
                }
            )
            results.claim(
                "shared_io_three_regimes",
                value=n_reg,
                threshold=3,
                op=">=",
                kind="check",
                description="ours, not the paper's protocol (its ratio: cross / within of the "
                "first seed's "
                "vector): distinct regimes among clean / partial / inverted of the unaligned "
                "(same-vector) transfers, shared-I/O cohort (paper: all three)",
            )
        if c == "independent":
            frac = (
                float((read["regime_unaligned"] == "inverted").mean())
                if len(read)
                else float("nan")
            )
            universal = paper is not None and paper.universal
            results.claim(
                "independent_unaligned_inverted_fraction",
                value=frac,
                threshold=1.0,
                op=">=",
                kind="check",
                check_of="paper_inversion" if universal else None,
                why_stricter="a sign flip relative to the target's own vector, on a next-token "
                "behaviour, not a larger KL effect"
                if universal
                else None,
                description="ours: fraction of unaligned transfers (the source's vector as is) "
                "between "
                "independent seeds that flip sign (regime inverted); the paper: with no "
                "shared I/O every transfer inverts",
            )
        iv = res.interval("transferred")
        results.claim(
            f"{c}_transferred_ratio",
            value=iv.point if iv else float("nan"),
            threshold=CLEAN_RATIO,
            op=">=",
            kind="check",
            interval=iv,
            description=f"ours (the paper does not move steering vectors through R), {c}: effect "
            "of v R on "
            "the target / effect of its own vector, median per seed pair, mean over pairs "
            "(≥ 0.7: clean)",
        )
        rho, p = res.overlap_spearman("overlap")
        results.claim(
            f"{c}_overlap_predicts_regime",
            value=rho,
            threshold=0.5,
            op=">=",
            kind="check",
            p_value=None if np.isnan(p) else p,
            description=f"ours (the paper states the overlap account without a correlation), {c}: "
            f"Spearman ρ between a vector's overlap with R's fixed subspace (τ = "
            f"{res.fixed_tol} rad) and its unaligned ratio",
        )


def summary_table(measured: Sequence[SteeringResult]) -> pd.DataFrame:
    """:meth:`SteeringResult.summary` of each result, stacked under the cohort's name."""
    return pd.concat(
        {_label(r.cohort): r.summary() for r in measured}, names=["cohort", "vector applied"]
    )


def _g(x: Any) -> str:
    if x is None or np.isnan(float(x)):
        return "–"
    if np.isinf(float(x)):  # e.g. the paper's ratio when the within-seed effect is 0
        return "∞" if float(x) > 0 else "−∞"
    return f"{float(x):.3g}"


def claims_frame(results: Any) -> pd.DataFrame:
    """The chapter's claims as a reader's table: value [lo, hi] (when the claim has an interval
    across seeds), the criterion, and whether it holds."""
    rows = []
    for name, c in results.data["claims"].items():
        iv = c.get("interval")
        val = _g(c["value"])
        if iv:
            val += f" [{_g(iv['lo'])}, {_g(iv['hi'])}]"
        rows.append(
            {
                "claim": name,
                "kind": "paper's" if c.get("kind") == "paper" else "ours",
                "value [lo, hi]": val,
                "criterion": f"{c['op']} {c['threshold']}",
                "holds": "yes" if c["passed"] else "no",
            }
        )
    return pd.DataFrame(rows).set_index("claim")


__all__ += [
    "CLEAN_RATIO",
    "KIND_LABELS",
    "NONE_RATIO",
    "REGIMES",
    "TRANSFER_KINDS",
    "Contrast",
    "PaperInversion",
    "SteeringResult",
    "SteeringSetup",
    "claims_frame",
    "dyck_paper_inversion",
    "pythia_paper_inversion",
    "record_steering_claims",
    "steering_transfer",
    "summary_table",
]


# --------------------------------------------------------------------------------------------
# the rungs' contrasts: what differs between chapters 14 and 24
# --------------------------------------------------------------------------------------------


def dyck_splits(acts: PairedActs, data_config: Any) -> tuple[Any, Any]:
    """The fit and eval strings behind Dyck ``acts`` (from
    :func:`polyrot_utils.tasks.dyck.suite.dyck_activations`, whose ``info`` names the split, the
    seed and the row counts): ``(fit_split, eval_split)``, :class:`DyckSplit` s whose non-PAD
    positions, in (string, position) order, are the rows of ``acts.fit`` / ``acts.eval`` (the
    fit split's first ``n_fit`` positions are exactly the fit rows)."""
    info = acts.info
    missing = [k for k in ("split", "n_fit", "n_eval", "seed") if k not in info]
    if missing:
        raise ValueError(
            f"acts.info lacks {missing}: build acts with tasks.dyck.suite.dyck_activations"
        )
    split = dyck.make_split(data_config, info["split"])
    fit_idx, eval_idx = _pick_strings(
        split, int(info["n_fit"]), int(info["n_eval"]), int(info["seed"])
    )
    return split.subset(fit_idx), split.subset(eval_idx)


def _first_rows(split: Any, mask: Tensor, n: int) -> Tensor:
    return mask[split.mask][:n].clone()


def dyck_steering_setup(
    acts: PairedActs,
    data_config: Any,
    contrasts: Sequence[str] = tuple(DYCK_CONTRASTS),
    *,
    min_count: int = 20,
) -> SteeringSetup:
    """The Dyck rung's :class:`SteeringSetup`: :data:`DYCK_CONTRASTS` on the strings behind
    ``acts`` (:func:`dyck_splits`); vectors from the fit rows, the behaviour
    (:func:`dyck_contrast_behaviour`: the readout's A-minus-B logit difference at the B
    positions) on the eval strings. A contrast with fewer than ``min_count`` positions in fit A,
    fit B or eval B is skipped."""
    bad = [c for c in contrasts if c not in DYCK_CONTRASTS]
    if bad:
        raise ValueError(f"contrasts {bad} unknown; choose from {sorted(DYCK_CONTRASTS)}")
    fit_split, eval_split = dyck_splits(acts, data_config)
    n_fit = int(acts.info["n_fit"])
    out, skipped = [], {}
    for c in contrasts:
        ma, mb = dyck_contrast_masks(fit_split, c)
        _, eb = dyck_contrast_masks(eval_split, c)
        fa, fb = _first_rows(fit_split, ma, n_fit), _first_rows(fit_split, mb, n_fit)
        counts = {"fit A": int(fa.sum()), "fit B": int(fb.sum()), "eval B": int(eb.sum())}
        if min(counts.values()) < int(min_count):
            skipped[c] = f"fewer than {min_count} positions: {counts}"
            continue
        info = {"readout": DYCK_CONTRASTS[c]["readout"], **counts}
        out.append(Contrast(c, fa, fb, dyck_contrast_behaviour(eval_split, c), info))
    return SteeringSetup(eval_split.tokens, out, skipped)


def pythia_steering_setup(
    acts: Any,
    tokenizer: Any,
    vocab_size: int,
    contrasts: Sequence[str] = tuple(TEXT_CONTRASTS),
    *,
    k_next: int = 10,
    min_count: int = 20,
) -> SteeringSetup:
    """The Pythia rung's :class:`SteeringSetup` (as
    :func:`polyrot_utils.tasks.pythia.suite.distinctive_next_tokens`):
    contrasts on the current token (:data:`~polyrot_utils.tasks.pythia.suite.TEXT_CONTRASTS`);
    the behaviour (:func:`~polyrot_utils.tasks.pythia.suite.next_token_set_behaviour`) is
    log p(next ∈ S_A) − log p(next ∈ S_B) at the B positions of the eval windows, S_A / S_B the
    ``k_next`` next tokens most typical of A / B in the fit windows. ``acts``: a
    :class:`~polyrot_utils.tasks.pythia.suite.PythiaActs`. A contrast with fewer than
    ``min_count`` A or B positions in either batch is skipped."""
    bad = [c for c in contrasts if c not in TEXT_CONTRASTS]
    if bad:
        raise ValueError(f"contrasts {bad} unknown; choose from {sorted(TEXT_CONTRASTS)}")
    classes = token_classes(tokenizer, int(vocab_size))
    fit_rows, eval_rows = acts.row_mask(acts.fit_tokens), acts.row_mask(acts.eval_tokens)
    out, skipped = [], {}
    for c in contrasts:
        fa, fb = (m & fit_rows for m in contrast_masks(acts.fit_tokens, classes, c))
        ea, eb = (m & eval_rows for m in contrast_masks(acts.eval_tokens, classes, c))
        counts = {
            "fit A": int(fa.sum()),
            "fit B": int(fb.sum()),
            "eval A": int(ea.sum()),
            "eval B": int(eb.sum()),
        }
        if min(counts.values()) < int(min_count):
            skipped[c] = f"fewer than {min_count} positions: {counts}"
            continue
        sa, sb = distinctive_next_tokens(
            acts.fit_tokens, fa, fb, k=int(k_next), vocab_size=int(vocab_size)
        )
        info = {
            **counts,
            "next after A": " | ".join(repr(tokenizer.decode([i])) for i in sa[:4]),
            "next after B": " | ".join(repr(tokenizer.decode([i])) for i in sb[:4]),
        }
        out.append(
            Contrast(c, fa[fit_rows], fb[fit_rows], next_token_set_behaviour(sa, sb, eb), info)
        )
    return SteeringSetup(acts.eval_tokens, out, skipped)


# --------------------------------------------------------------------------------------------
# figures (drawn into axes the chapter makes with polyrot_utils.book.figures.column_figure)
# --------------------------------------------------------------------------------------------

#: the glossary's cohort names, for titles and legends
COHORT_LABELS = {"shared_io": "Cohort A (shared I/O)", "independent": "Cohort B (independent)"}


def _label(cohort: str) -> str:
    return COHORT_LABELS.get(cohort, cohort)


#: ratios beyond this are drawn at the edge of the ratio axis (a ratio to a small native effect
#: can be huge; the point being made is where the bulk lies against the regime thresholds)
RATIO_LIMIT = 3.0


def plot_transfer_ratios(
    measured: Sequence[SteeringResult],
    axes: Sequence[Any],
    kinds: Sequence[str] = ("unaligned", "transferred", "random"),
) -> None:
    """One panel per result: each read transfer's ratio to the native effect, per kind (x),
    with the median per kind, the native level (1) and the regime thresholds (±0.2, 0.7)."""
    axes = list(np.atleast_1d(axes))
    if len(axes) != len(measured):
        raise ValueError(
            f"need one axes per result, got {len(axes)} axes for {len(measured)} results"
        )
    for ax, res in zip(axes, measured, strict=True):
        read = res.read
        for i, k in enumerate(kinds):
            y = (
                np.clip(read[f"ratio_{k}"].to_numpy(float), -RATIO_LIMIT, RATIO_LIMIT)
                if len(read)
                else np.zeros(0)
            )
            x = i + np.random.default_rng(i).uniform(-0.18, 0.18, len(y))
            ax.scatter(x, y, s=12, alpha=0.5, color="C0", label="one transfer" if i == 0 else None)
            if len(y):
                ax.plot(
                    [i - 0.3, i + 0.3],
                    [np.median(y)] * 2,
                    color="C3",
                    lw=2.5,
                    label="median" if i == 0 else None,
                )
        ax.axhline(1.0, color="k", lw=0.8, label="native (own vector)")
        ax.axhspan(-NONE_RATIO, NONE_RATIO, color="0.85", zorder=0, label="none band |r| < 0.2")
        ax.axhline(CLEAN_RATIO, color="C2", ls="--", lw=0.8, label="clean ≥ 0.7")
        ax.set_xticks(range(len(kinds)), [KIND_LABELS[k] for k in kinds])
        ax.set_ylim(-RATIO_LIMIT - 0.2, RATIO_LIMIT + 0.2)
        ax.set_title(f"{_label(res.cohort)}, {len(read)} transfers")
    axes[0].set_ylabel("effect / native effect")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9)


def plot_predictors(measured: Sequence[SteeringResult], axes: Sequence[Any]) -> None:
    """Two panels: the unaligned ratio against the vector's overlap with R's fixed subspace
    (left) and against cos(v, v R) (right), one point per read transfer, a colour per result."""
    axes = list(np.atleast_1d(axes))
    if len(axes) != 2:
        raise ValueError(f"need two axes, got {len(axes)}")
    for i, res in enumerate(measured):
        read = res.read
        y = (
            np.clip(read["ratio_unaligned"].to_numpy(float), -RATIO_LIMIT, RATIO_LIMIT)
            if len(read)
            else []
        )
        for ax, pred in zip(axes, ("overlap", "rotation_cosine"), strict=True):
            ax.scatter(
                read[pred] if len(read) else [],
                y,
                s=12,
                alpha=0.6,
                color=f"C{i}",
                label=_label(res.cohort),
            )
    for ax, xl in zip(axes, ("overlap with R's fixed subspace", "cos(v, v R)"), strict=True):
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xlabel(xl)
    axes[0].set_ylabel("unaligned effect / native")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(labels) > 1:
        axes[0].figure.legend(
            handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9
        )


def chapter_outputs(
    measured: Sequence[SteeringResult], setup: SteeringSetup, new_figure: Callable[..., Any]
) -> dict[str, Any]:
    """Everything chapters 14 and 24 show between their setup and their claims, by name, for
    ``book.figures.glue_outputs``: the tables ``contrast_table`` (``setup.table()``: the
    contrasts, their counts and readouts) and ``summary_table`` (:func:`summary_table` of
    ``measured``); the figures ``ratio_figure`` (:func:`plot_transfer_ratios`: one panel per
    result, sharing the ratio axis; a single result gets one panel at 0.7 of the column) and
    ``predictor_figure`` (:func:`plot_predictors`). ``measured``: the results of
    :func:`steering_transfer`, one per cohort (or suite); ``setup``: the setup whose contrasts
    the table shows (the Dyck chapter's first cohort's). ``new_figure``:
    ``book.figures.column_figure`` (``(nrows, ncols, *, height, width_fraction, **subplots_kw)
    -> (fig, axes)``)."""
    if not measured:
        raise ValueError("measured must hold at least one SteeringResult, got none")
    if len(measured) == 1:
        ratio_fig, ratio_axes = new_figure(1, 1, height=3.6, width_fraction=0.7)
    else:
        ratio_fig, ratio_axes = new_figure(1, len(measured), height=3.6, sharey=True)
    plot_transfer_ratios(measured, ratio_axes)
    pred_fig, pred_axes = new_figure(1, 2, height=3.2, sharey=True)
    plot_predictors(measured, pred_axes)
    return {
        "contrast_table": setup.table(),
        "summary_table": summary_table(measured),
        "ratio_figure": ratio_fig,
        "predictor_figure": pred_fig,
    }


__all__ += [
    "COHORT_LABELS",
    "RATIO_LIMIT",
    "chapter_outputs",
    "dyck_splits",
    "dyck_steering_setup",
    "plot_predictors",
    "plot_transfer_ratios",
    "pythia_steering_setup",
]
