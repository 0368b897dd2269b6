"""The experiments every rung runs, written once over plain activation dictionaries.

Both the Dyck-3 rung and the Pythia rung reduce to the same objects:

- ``acts[model][site]``: a ``(n, d)`` float tensor of residual-stream activations, rows paired
  across models (the same token positions of the same inputs, in the same order);
- ``saes[model][site]``: an :class:`polyrot_utils.sae.autoencoder.SAE` trained on that model's
  activations.

A *pair* ``(source, target)`` names two models; every map goes source → target in the row
convention ``x_src @ R ≈ x_tgt`` (:mod:`polyrot_utils.core.procrustes`). Fits always use a
*fit* batch and are scored on a disjoint *eval* batch. The functions return lists of plain
dict rows (easy to tabulate, plot and record in a results file).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from polyrot_utils.core import basis as core_basis
from polyrot_utils.core import haar, metrics, procrustes
from polyrot_utils.core.progress import report
from polyrot_utils.sae.autoencoder import SAE, train_sae_cached, transfer_sae

__all__ = [
    "ALIGNMENT_METHODS",
    "EXTRA_METHODS",
    "alignment_table",
    "all_pairs",
    "cosine_match_fraction",
    "cycle_consistency",
    "distance_summary",
    "fit_map",
    "fit_maps",
    "fit_size_curve",
    "fixed_subspace",
    "fixed_subspace_table",
    "haar_table",
    "last_block_resid_post",
    "live_latents",
    "map_ev_table",
    "model_seeds",
    "paper_checkpoint_transfer",
    "paper_decoder_cosine_table",
    "paper_internal_sites",
    "paper_pythia_sites",
    "paper_rotation",
    "paper_toy_sites",
    "paper_transfer_table",
    "principal_angles",
    "random_dictionary_cosine",
    "rotations_from_maps",
    "sae_through_map",
    "signed_permutation_distance",
    "signed_permutation_distance_null",
    "site_geometry",
    "site_means",
    "span_basis",
    "split_rows",
    "train_saes",
    "universality_table",
    "with_unpaired",
    "without_matrices",
]

Acts = Mapping[str, Mapping[str, torch.Tensor]]
Saes = Mapping[str, Mapping[str, SAE]]

ALIGNMENT_METHODS = ("identity", "signed_permutation", "rotation", "rotation_O", "linear", "affine")
#: methods :func:`fit_map` knows beyond procrustes's: ``rotation_scaled`` = s·R, the SO(d)
#: Procrustes rotation times the least-squares global scale s = tr(Σ)/‖X_src − μ‖² (a similarity
#: transform: what is left when two models differ by a rotation *and* an overall norm).
EXTRA_METHODS = ("rotation_scaled",)


# ----------------------------------------------------------------------------- input checks
def _check_acts(acts: Acts, name: str, models: Iterable[str], sites: Iterable[str]) -> None:
    for m in models:
        if m not in acts:
            raise KeyError(f"{name} has no model {m!r}; it has {sorted(acts)}")
        for s in sites:
            if s not in acts[m]:
                raise KeyError(f"{name}[{m!r}] has no site {s!r}; it has {sorted(acts[m])}")


def _check_pairs(
    acts: Acts, name: str, pairs: Sequence[tuple[str, str]], sites: Sequence[str]
) -> None:
    models = sorted({m for p in pairs for m in p})
    _check_acts(acts, name, models, sites)
    for s in sites:
        for a, b in pairs:
            xa, xb = acts[a][s], acts[b][s]
            if xa.shape[0] != xb.shape[0]:
                raise ValueError(
                    f"{name}: models {a!r} and {b!r} have different numbers of rows at {s!r} "
                    f"({xa.shape[0]} vs {xb.shape[0]}); rows must be the same token positions"
                )
            if xa.shape[1] != xb.shape[1]:
                raise ValueError(
                    f"{name}: d_model mismatch at {s!r}: {a!r} has d={xa.shape[1]}, {b!r} has "
                    f"d={xb.shape[1]}"
                )


def all_pairs(models: Sequence[str], anchor: str | None = None) -> list[tuple[str, str]]:
    """Ordered pairs to compare: every unordered pair once, or ``(anchor, m)`` for every other m."""
    if anchor is not None:
        if anchor not in models:
            raise ValueError(f"anchor {anchor!r} is not among the models {list(models)}")
        return [(anchor, m) for m in models if m != anchor]
    return list(itertools.combinations(models, 2))


def split_rows(
    acts: Acts, fraction: float = 0.5
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, torch.Tensor]]]:
    """Split every ``(n, d)`` tensor into its first ``fraction`` of rows and the rest (the same
    split for all)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    first: dict[str, dict[str, torch.Tensor]] = {}
    second: dict[str, dict[str, torch.Tensor]] = {}
    for m, sites in acts.items():
        first[m], second[m] = {}, {}
        for s, x in sites.items():
            k = round(x.shape[0] * fraction)
            first[m][s], second[m][s] = x[:k], x[k:]
    return first, second


# ----------------------------------------------------------------------------- SAEs
def train_saes(
    acts_train: Acts,
    *,
    d_sae: int,
    k: int,
    n_tokens: int,
    batch_size: int = 512,
    seed: int | Mapping[str, int] = 0,
    device: str | torch.device | None = "cpu",
    models: Sequence[str] | None = None,
    sites: Sequence[str] | None = None,
) -> tuple[dict[str, dict[str, SAE]], list[dict[str, Any]]]:
    """One TopK SAE per model per site, through the artifact cache. Returns ``(saes, rows)``;
    each row holds the training figures (final EV on the training rows, seconds, cache hit).

    ``seed``: one SAE seed for every model, or ``{model: seed}``. Mind the difference: SAEs
    with the same seed start from the same random decoder, and latents that never learn keep
    it — identical rows in two "independent" dictionaries that inflate every cross-model cosine
    match (see :func:`universality_table`'s ``live_only``). :func:`model_seeds` gives each model
    its own seed."""
    saes: dict[str, dict[str, SAE]] = {}
    rows: list[dict[str, Any]] = []
    todo = [(m, s) for m in models or list(acts_train) for s in sites or list(acts_train[m])]
    for m in models or list(acts_train):
        saes[m] = {}
        if isinstance(seed, Mapping):
            if m not in seed:
                raise KeyError(f"seed has no entry for model {m!r}; it has {sorted(seed)}")
            m_seed = int(seed[m])
        else:
            m_seed = int(seed)
        for s in sites or list(acts_train[m]):
            report(f"SAE {len(rows) + 1} of {len(todo)}: {m} at {s}")
            sae, hist = train_sae_cached(
                acts_train[m][s],
                d_sae=d_sae,
                k=k,
                n_tokens=n_tokens,
                batch_size=batch_size,
                seed=m_seed,
                device=device,
                hook_name=s,
                model_name=m,
            )
            saes[m][s] = sae
            rows.append(
                {
                    "model": m,
                    "site": s,
                    "seed": m_seed,
                    "train_ev": float(hist.get("final_ev", float("nan"))),
                    "seconds": float(hist.get("train_seconds", 0.0)),
                    "cache_hit": bool(hist.get("cache_hit")),
                }
            )
    return saes, rows


def model_seeds(models: Sequence[str], base: int = 0) -> dict[str, int]:
    """``{model: base + i}``: a distinct SAE seed per model (see :func:`train_saes`)."""
    return {m: int(base) + i for i, m in enumerate(models)}


@torch.no_grad()
def live_latents(sae: SAE, x: torch.Tensor, min_fires: int = 1) -> torch.Tensor:
    """``(d_sae,)`` bool: the latents that fire (activation > 0) on at least ``min_fires`` rows
    of ``x``."""
    fires = torch.zeros(sae.d_sae, dtype=torch.long)
    for start in range(0, x.shape[0], 8192):
        fires += (sae.encode(x[start : start + 8192].to(sae.W_enc.device)) > 0).sum(0).cpu()
    return fires >= int(min_fires)


def _sae_ev(sae: SAE, x: torch.Tensor) -> float:
    return float(metrics.explained_variance(x, sae.reconstruct(x)))


def universality_table(
    saes: Saes,
    acts_eval: Acts,
    pairs: Sequence[tuple[str, str]],
    sites: Sequence[str],
    rotations: Mapping[tuple[str, str, str], np.ndarray] | None = None,
    live_only: bool = False,
) -> list[dict[str, Any]]:
    """The paradox in one table, per pair and site.

    Columns: ``mean_max_cosine`` and ``matched_cosine`` of the two decoders (rows = features),
    the SAE-universality metric; ``ev_within`` (target's own SAE on target eval rows, the
    ceiling); ``ev_unaligned`` (source's SAE applied unchanged to the target's rows). With
    ``rotations[(src, tgt, site)]`` also ``matched_cosine_rotated`` (source decoder @ R vs target).
    ``live_source`` / ``live_target``: the fraction of each SAE's latents that fire on its own
    model's eval rows. With ``live_only`` the cosines use live latents only (dead latents keep
    their random init, which two SAEs of the same seed share).
    """
    _check_pairs(acts_eval, "acts_eval", pairs, sites)
    rows = []
    for s in sites:
        for a, b in pairs:
            sa, sb = saes[a][s], saes[b][s]
            xa, xb = acts_eval[a][s], acts_eval[b][s]
            if sa.d_in != xb.shape[1]:
                raise ValueError(
                    f"SAE of {a!r} at {s!r} has d_in={sa.d_in} but {b!r}'s activations have "
                    f"d={xb.shape[1]}"
                )
            la, lb = live_latents(sa, xa), live_latents(sb, xb)
            Da, Db = sa.W_dec.detach().cpu(), sb.W_dec.detach().cpu()
            if live_only:
                if not (la.any() and lb.any()):
                    raise ValueError(
                        f"no live latents at {s!r} for {a!r} or {b!r}; cannot compare dictionaries"
                    )
                Da, Db = Da[la], Db[lb]
            row = {
                "site": s,
                "source": a,
                "target": b,
                "mean_max_cosine": metrics.mean_max_cosine(Da, Db),
                "matched_cosine": metrics.matched_cosine(Da, Db),
                "ev_within": _sae_ev(sb, xb),
                "ev_unaligned": _sae_ev(sa, xb),
                "live_source": float(la.float().mean()),
                "live_target": float(lb.float().mean()),
            }
            if rotations is not None and (a, b, s) in rotations:
                R = torch.as_tensor(rotations[(a, b, s)], dtype=Da.dtype)
                row["matched_cosine_rotated"] = metrics.matched_cosine(Da @ R, Db)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- alignment
def fit_map(
    source: torch.Tensor,
    target: torch.Tensor,
    method: str,
    *,
    rcond: float | None = 1e-3,
    allow_underdetermined: bool = False,
) -> procrustes.AlignmentMap:
    """:func:`polyrot_utils.core.procrustes.fit_alignment`, except that the least-squares methods
    (``linear``, ``affine``) drop the source's directions with singular value below ``rcond`` ×
    the largest (``np.linalg.lstsq``'s ``rcond``; ``None`` = procrustes's default, machine
    precision).

    Why: residual-stream activations are often rank-deficient (the toy's ``resid_pre`` spans ~11
    of 64 dimensions). With machine-precision cutoff, least squares fits the float noise of the
    near-null directions with huge weights, which then blow up on held-out rows (EVs of −1e7).
    Directions below 1e-3 of the top singular value carry < 1e-6 of the variance, so dropping
    them costs no EV. Rotations are unaffected (an orthogonal map cannot amplify)."""
    if method == "rotation_scaled":
        rot = procrustes.fit_alignment(
            source, target, method="rotation", allow_underdetermined=allow_underdetermined
        )
        x = source.detach().cpu().double().numpy() - rot.source_mean
        y = target.detach().cpu().double().numpy() - rot.target_mean
        scale = float(np.einsum("ij,ij->", x @ rot.matrix, y) / max(float((x * x).sum()), 1e-300))
        return procrustes.AlignmentMap(
            "rotation_scaled",
            scale * rot.matrix,
            rot.source_mean,
            rot.target_mean,
            info={"scale": scale},
        )
    if method not in ("linear", "affine"):
        return procrustes.fit_alignment(
            source, target, method=method, allow_underdetermined=allow_underdetermined
        )
    return procrustes.fit_alignment(
        source,
        target,
        method=method,
        rcond=rcond,
        allow_underdetermined=allow_underdetermined or rcond is not None,
    )


def fit_maps(
    acts_fit: Acts,
    pairs: Sequence[tuple[str, str]],
    sites: Sequence[str],
    methods: Sequence[str] = ALIGNMENT_METHODS,
    n_fit: int | None = None,
    rcond: float | None = 1e-3,
) -> dict[tuple[str, str, str, str], procrustes.AlignmentMap]:
    """Fit every method for every pair and site, in both directions.

    Keys ``(source, target, site, method)``; both ``(a, b, …)`` and ``(b, a, …)`` are fitted, so
    an SAE can be pulled back and pushed forward with the same method. ``n_fit`` uses the first
    ``n_fit`` rows only. ``rcond``: the least-squares cutoff of :func:`fit_map`.
    """
    _check_pairs(acts_fit, "acts_fit", pairs, sites)
    unknown = [m for m in methods if m not in ALIGNMENT_METHODS + EXTRA_METHODS]
    if unknown:
        raise ValueError(
            f"methods {unknown} unknown; choose from {ALIGNMENT_METHODS + EXTRA_METHODS}"
        )
    maps = {}
    for s in sites:
        for a, b in pairs:
            xa, xb = acts_fit[a][s], acts_fit[b][s]
            if n_fit is not None:
                xa, xb = xa[:n_fit], xb[:n_fit]
            for method in methods:
                maps[(a, b, s, method)] = fit_map(xa, xb, method, rcond=rcond)
                maps[(b, a, s, method)] = fit_map(xb, xa, method, rcond=rcond)
    return maps


def sae_through_map(
    sae: SAE,
    to_source: procrustes.AlignmentMap,
    to_target: procrustes.AlignmentMap,
    x_target: torch.Tensor,
) -> float:
    """EV on target rows of a source SAE used through a pair of maps: pull the rows back to the
    source frame, reconstruct there, push the reconstruction forward. For rotations this equals
    the EV of :func:`polyrot_utils.sae.autoencoder.transfer_sae`'s new weights (a test checks
    it)."""
    pulled = to_source.apply(x_target.double()).float()
    recon = to_target.apply(sae.reconstruct(pulled).double()).float()
    return float(metrics.explained_variance(x_target, recon))


def alignment_table(
    acts_fit: Acts,
    acts_eval: Acts,
    saes: Saes,
    pairs: Sequence[tuple[str, str]],
    sites: Sequence[str],
    methods: Sequence[str] = ALIGNMENT_METHODS,
    maps: Mapping | None = None,
) -> list[dict[str, Any]]:
    """Per site, pair and method, on held-out rows: ``map_ev`` (how much of the target's activations
    the mapped source explains) and ``sae_ev`` (the source's SAE used in the target frame through
    the map), beside ``ceiling`` (the target's own SAE) and ``gap = ceiling − sae_ev``. For
    ``rotation`` the SAE is moved as new weights with :func:`transfer_sae`."""
    _check_pairs(acts_eval, "acts_eval", pairs, sites)
    maps = maps if maps is not None else fit_maps(acts_fit, pairs, sites, methods)
    rows = []
    for s in sites:
        for a, b in pairs:
            xa, xb = acts_eval[a][s], acts_eval[b][s]
            ceiling = _sae_ev(saes[b][s], xb)
            for method in methods:
                fwd, back = maps[(a, b, s, method)], maps[(b, a, s, method)]
                map_ev = float(metrics.explained_variance(xb, fwd.apply(xa.double()).float()))
                if method == "rotation":
                    moved = transfer_sae(
                        saes[a][s],
                        fwd.matrix,
                        source_mean=fwd.source_mean,
                        target_mean=fwd.target_mean,
                    )
                    sae_ev = _sae_ev(moved, xb)
                else:
                    sae_ev = sae_through_map(saes[a][s], back, fwd, xb)
                rows.append(
                    {
                        "site": s,
                        "source": a,
                        "target": b,
                        "method": method,
                        "map_ev": map_ev,
                        "sae_ev": sae_ev,
                        "ceiling": ceiling,
                        "gap": ceiling - sae_ev,
                    }
                )
    return rows


def fit_size_curve(
    acts_fit: Acts,
    acts_eval: Acts,
    saes: Saes,
    pair: tuple[str, str],
    site: str,
    sizes: Sequence[int],
) -> list[dict[str, Any]]:
    """How many rows one rotation fit needs: SAE-transfer EV and map EV on held-out rows vs fit
    size."""
    a, b = pair
    _check_pairs(acts_fit, "acts_fit", [pair], [site])
    n_avail = acts_fit[a][site].shape[0]
    rows = []
    xb = acts_eval[b][site]
    ceiling = _sae_ev(saes[b][site], xb)
    for n in sizes:
        if n > n_avail:
            raise ValueError(f"sizes asks for n={n} rows but acts_fit has {n_avail}")
        fit = procrustes.fit_alignment(
            acts_fit[a][site][:n],
            acts_fit[b][site][:n],
            method="rotation",
            allow_underdetermined=True,
        )
        moved = transfer_sae(
            saes[a][site], fit.matrix, source_mean=fit.source_mean, target_mean=fit.target_mean
        )
        rows.append(
            {
                "n_fit": int(n),
                "sae_ev": _sae_ev(moved, xb),
                "ceiling": ceiling,
                "map_ev": float(
                    metrics.explained_variance(xb, fit.apply(acts_eval[a][site].double()).float())
                ),
            }
        )
    return rows


def rotations_from_maps(
    maps: Mapping[tuple[str, str, str, str], procrustes.AlignmentMap],
    method: str = "rotation",
    pairs: Sequence[tuple[str, str]] | None = None,
) -> dict[tuple[str, str, str], np.ndarray]:
    """``{(source, target, site): R}`` for one method's fitted maps (both directions, as
    :func:`fit_maps` fits them, unless ``pairs`` keeps only those ordered pairs)."""
    keep = None if pairs is None else {tuple(p) for p in pairs}
    return {
        (a, b, s): m.matrix
        for (a, b, s, meth), m in maps.items()
        if meth == method and (keep is None or (a, b) in keep)
    }


def cycle_consistency(
    acts_fit: Acts, triple: tuple[str, str, str], sites: Sequence[str]
) -> list[dict[str, Any]]:
    """Does R_AB R_BC ≈ R_AC? A pure rotation story says yes, up to fit noise.

    ``cycle_error`` = ‖R_AB R_BC − R_AC‖_F / √(2d); ``fit_noise`` = the same distance between two
    fits of R_AC on disjoint halves of the rows (what the error would be from sampling alone);
    ``ratio`` = cycle_error / fit_noise (≈ 1 consistent, ≫ 1 not)."""
    a, b, c = triple
    _check_pairs(acts_fit, "acts_fit", [(a, b), (b, c), (a, c)], sites)
    rows = []
    for s in sites:
        d = acts_fit[a][s].shape[1]
        norm = np.sqrt(2 * d)
        r_ab = procrustes.fit_rotation(acts_fit[a][s].double(), acts_fit[b][s].double()).numpy()
        r_bc = procrustes.fit_rotation(acts_fit[b][s].double(), acts_fit[c][s].double()).numpy()
        r_ac = procrustes.fit_rotation(acts_fit[a][s].double(), acts_fit[c][s].double()).numpy()
        half = acts_fit[a][s].shape[0] // 2
        r1 = procrustes.fit_rotation(
            acts_fit[a][s][:half].double(),
            acts_fit[c][s][:half].double(),
            allow_underdetermined=True,
        ).numpy()
        r2 = procrustes.fit_rotation(
            acts_fit[a][s][half:].double(),
            acts_fit[c][s][half:].double(),
            allow_underdetermined=True,
        ).numpy()
        err = float(np.linalg.norm(r_ab @ r_bc - r_ac) / norm)
        noise = float(np.linalg.norm(r1 - r2) / norm)
        rows.append(
            {
                "site": s,
                "triple": f"{a}->{b}->{c}",
                "cycle_error": err,
                "fit_noise": noise,
                "ratio": err / noise if noise > 0 else float("inf"),
            }
        )
    return rows


def distance_summary(R: np.ndarray) -> dict[str, float]:
    """Plain geometry of one fitted matrix: ‖R − I‖_F / √(2d), trace / d, det, largest
    |entry|·√d."""
    R = np.asarray(R, dtype=np.float64)
    d = R.shape[0]
    return {
        "frobenius_ratio": float(np.linalg.norm(R - np.eye(d)) / np.sqrt(2 * d)),
        "trace_over_d": float(np.trace(R) / d),
        "det": float(np.linalg.det(R)),
        "max_abs_entry_sqrt_d": float(np.abs(R).max() * np.sqrt(d)),
    }


# ----------------------------------------------------------------------------- controls
def with_unpaired(
    acts_fit: Acts,
    acts_eval: Acts,
    saes: Saes,
    model: str,
    *,
    seed: int = 0,
    name: str | None = None,
) -> tuple[dict, dict, dict, str]:
    """A negative control that needs no new model: ``model``'s *fit* rows shuffled, so a map
    fitted on them sees the right marginal distribution but no pairing with any other model.

    Returns new ``(acts_fit, acts_eval, saes, name)`` dicts holding everything of the inputs plus
    ``name`` (default ``"<model> (unpaired)"``): its fit rows permuted (the same permutation at
    every site), its eval rows and SAEs those of ``model`` (an SAE does not care about row
    order). A rotation fitted on unpaired rows explains the target no better than a random one:
    whatever a real fit gains over this control came from the pairing."""
    if model not in acts_fit or model not in acts_eval:
        raise KeyError(
            f"model {model!r} must be in acts_fit and acts_eval; acts_fit has {sorted(acts_fit)}"
        )
    name = name or f"{model} (unpaired)"
    if name in acts_fit:
        raise ValueError(f"a model named {name!r} exists already")
    n = next(iter(acts_fit[model].values())).shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    fit = {m: dict(v) for m, v in acts_fit.items()}
    ev = {m: dict(v) for m, v in acts_eval.items()}
    fit[name] = {s: x[perm] for s, x in acts_fit[model].items()}
    ev[name] = dict(acts_eval[model])
    new_saes = {m: dict(v) for m, v in saes.items()}
    if model in saes:
        new_saes[name] = dict(saes[model])
    return fit, ev, new_saes, name


# ----------------------------------------------------------------------------- geometry
def site_geometry(
    acts: Acts, sites: Sequence[str], models: Sequence[str] | None = None, rank_tol: float = 1e-3
) -> list[dict[str, Any]]:
    """How many dimensions each model's activations use, per site: ``rank`` (singular values of
    the centred rows above ``rank_tol`` × the largest) and ``participation_ratio``
    (Σλ)²/Σλ² of the covariance eigenvalues λ. A rotation is only identifiable on the span."""
    models = list(models or acts)
    _check_acts(acts, "acts", models, sites)
    rows = []
    for m in models:
        for s in sites:
            x = acts[m][s].double()
            sv = torch.linalg.svdvals(x - x.mean(0))
            lam = sv**2
            rows.append(
                {
                    "model": m,
                    "site": s,
                    "d": int(x.shape[1]),
                    "rank": int((sv > sv[0] * rank_tol).sum()) if sv[0] > 0 else 0,
                    "participation_ratio": float(lam.sum() ** 2 / (lam**2).sum())
                    if lam.sum() > 0
                    else 0.0,
                }
            )
    return rows


def _orthogonal(R: Any, name: str = "R", atol: float = 1e-4) -> np.ndarray:
    a = np.asarray(R.detach().cpu() if isinstance(R, torch.Tensor) else R, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {a.shape}")
    err = float(np.abs(a.T @ a - np.eye(a.shape[0])).max())
    if err > atol:
        raise ValueError(f"{name} must be orthogonal (max |RᵀR − I| <= {atol}), got {err:.3g}")
    return a


def signed_permutation_distance(R: Any) -> float:
    """min over signed permutations P of ‖R − P‖_F / √(2d) (the paper's ‖R − P_best‖_F, scaled).

    ‖R − P‖²_F = 2d − 2 Σ_i s_i R_{i,π(i)}, so the best P maximises Σ_i |R_{i,π(i)}| (linear
    assignment on |R|) with s_i = sign R_{i,π(i)}. Haar R sits a little below 1; a signed
    permutation at 0; a near-identity rotation near 0."""
    from scipy.optimize import linear_sum_assignment

    a = _orthogonal(R)
    d = a.shape[0]
    absr = np.abs(a)
    rows, cols = linear_sum_assignment(absr, maximize=True)
    return float(np.sqrt(max(2 * d - 2 * absr[rows, cols].sum(), 0.0) / (2 * d)))


def signed_permutation_distance_null(d: int, n: int = 200, seed: int = 0) -> np.ndarray:
    """:func:`signed_permutation_distance` of ``n`` Haar SO(d) samples (seeded by ``(seed, d)``)."""

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    qs = haar.sample_haar(int(d), int(n), rng=np.random.default_rng([int(seed), int(d), 31]))
    return np.array([signed_permutation_distance(q) for q in qs])


def fixed_subspace(R: Any, tol: float = 0.1) -> np.ndarray:
    """:func:`polyrot_utils.core.basis.fixed_subspace` (the glossary's definition, ``tol`` in
    radians) as **columns** ``(d, k)``: row vectors ``x`` in its span satisfy ``x @ R ≈ x``."""
    return core_basis.fixed_subspace(_orthogonal(R), tol).T


def principal_angles(A: Any, B: Any) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spans of ``A (d, p)`` and
    ``B (d, q)``; ``min(rank)`` of them. 0 = a shared direction, π/2 = orthogonal."""
    from scipy.linalg import subspace_angles

    a, b = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"A and B must be (d, p) and (d, q) with the same d, got {a.shape} and {b.shape}"
        )
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros(0)
    return np.sort(subspace_angles(a, b))


def haar_table(
    rotations: Mapping[tuple[str, str, str], Any],
    *,
    n_null: int = 200,
    seed: int = 0,
    fixed_tol: float = 1e-5,
    perm_null: int = 200,
) -> list[dict[str, Any]]:
    """The calibrated Haar tests of :func:`polyrot_utils.core.haar.haar_test` for every
    ``rotations[(source, target, site)]`` (SO(d)), beside the paper's numbers: per row the
    Frobenius ratio, the iid-KS p (the paper's per-matrix reading), the calibrated KS p, the
    kurtosis / max-entry / trace / fixed-dimension p's, the combined ``pvalue``, and the distance
    to the best signed permutation with its own Haar null (``signed_perm_pvalue``: lower tail,
    small = closer to a signed permutation than Haar matrices are)."""

    rows = []
    nulls: dict[int, np.ndarray] = {}
    for (a, b, s), R in rotations.items():
        res = haar.haar_test(R, n_null=n_null, seed=seed, fixed_tol=fixed_tol)
        d = res.d
        if d not in nulls:
            nulls[d] = signed_permutation_distance_null(d, perm_null, seed)
        dist = signed_permutation_distance(R)
        rows.append(
            {
                "source": a,
                "target": b,
                "site": s,
                "d": d,
                "frobenius_ratio": res.frobenius_ratio,
                "trace": res.trace,
                "ks_statistic": res.ks_statistic,
                "ks_pvalue_iid": res.ks_pvalue_iid,
                "ks_pvalue_calibrated": res.ks_pvalue_calibrated,
                "kurtosis": res.kurtosis,
                "kurtosis_pvalue": res.kurtosis_pvalue,
                "max_entry": res.max_entry,
                "max_entry_pvalue": res.max_entry_pvalue,
                "trace_pvalue": res.trace_pvalue,
                "fixed_dim": res.fixed_dim,
                "fixed_dim_pvalue": res.fixed_dim_pvalue,
                "pvalue": res.pvalue,
                "signed_perm_distance": dist,
                "signed_perm_null_mean": float(nulls[d].mean()),
                "signed_perm_pvalue": float((1 + (nulls[d] <= dist).sum()) / (1 + len(nulls[d]))),
            }
        )
    return rows


def random_dictionary_cosine(n_a: int, n_b: int, d: int, seed: int = 0) -> dict[str, float]:
    """The universality metrics of two *unrelated* dictionaries: ``n_a`` and ``n_b`` random unit
    rows in d dimensions (Gaussian directions). What ``mean_max_cosine`` / ``matched_cosine``
    give with no shared structure at all: the floor a "universality" number must be read against."""
    if min(n_a, n_b, d) < 1:
        raise ValueError(f"n_a, n_b and d must be >= 1, got {n_a}, {n_b}, {d}")
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(int(n_a), int(d), generator=g, dtype=torch.float64)
    b = torch.randn(int(n_b), int(d), generator=g, dtype=torch.float64)
    return {
        "mean_max_cosine": metrics.mean_max_cosine(a, b),
        "matched_cosine": metrics.matched_cosine(a, b),
    }


# =============================================================================================
# steering transfer over given vectors and behaviours (appended by the Pythia-rung helper;
# generic: any rung that supplies diff-of-means vectors and behaviours can use it)
# =============================================================================================
def map_ev_table(
    acts_fit: Acts,
    acts_eval: Acts,
    pairs: Sequence[tuple[Any, Any]],
    sites: Sequence[str],
    methods: Sequence[str] = ("identity", "rotation", "affine"),
    rcond: float | None = 1e-3,
) -> list[dict[str, Any]]:
    """Held-out ``map_ev`` of each method's map (no SAE involved), one row per (pair, site, method):
    the fraction of the target's eval variance that the source's eval rows, mapped by the map
    fitted on the fit rows (:func:`fit_map`, source → target only), explain. Model keys may be
    any hashable (e.g. checkpoint steps)."""
    _check_pairs(acts_fit, "acts_fit", pairs, sites)
    _check_pairs(acts_eval, "acts_eval", pairs, sites)
    unknown = [m for m in methods if m not in ALIGNMENT_METHODS + EXTRA_METHODS]
    if unknown:
        raise ValueError(
            f"methods {unknown} unknown; choose from {ALIGNMENT_METHODS + EXTRA_METHODS}"
        )
    rows = []
    for a, b in pairs:
        for s in sites:
            for method in methods:
                fitted = fit_map(acts_fit[a][s], acts_fit[b][s], method, rcond=rcond)
                ev = float(
                    metrics.explained_variance(
                        acts_eval[b][s], fitted.apply(acts_eval[a][s].double()).float()
                    )
                )
                row = {"source": a, "target": b, "site": s, "method": method, "map_ev": ev}
                if "scale" in fitted.info:
                    row["scale"] = float(fitted.info["scale"])
                rows.append(row)
    return rows


def span_basis(M: Any, rank_tol: float = 1e-6) -> np.ndarray:
    """Orthonormal basis ``(d, r)`` of the column span of ``M (d, k)`` (singular values above
    ``rank_tol`` × the largest). For the rows of an embedding ``W_E (vocab, d)`` pass ``W_E.T``."""
    a = np.asarray(M.detach().cpu() if isinstance(M, torch.Tensor) else M, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"M must be a 2-D (d, k) matrix, got shape {a.shape}")
    u, sv, _ = np.linalg.svd(a, full_matrices=False)
    if sv.size == 0 or sv[0] == 0:
        return u[:, :0]
    return u[:, sv > rank_tol * sv[0]]


def fixed_subspace_table(
    rotations: Mapping[tuple[str, str, str], Any],
    spans: Mapping[str, Any] | None = None,
    *,
    tol: float = 0.1,
    n_null: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """R's (near-)fixed subspace per ``rotations[(source, target, site)]``: its dimension at angle
    ``tol`` (:func:`fixed_subspace`) beside the Haar SO(d) mean of the same count
    (``haar_fixed_dim``, from ``n_null`` samples), and for every named span (``spans[name]`` an
    orthonormal ``(d, r)`` basis, e.g. :func:`span_basis` of shared embedding rows) the fraction
    of that span lying inside the fixed subspace, ``overlap_<name>`` = ‖Fᵀ Q‖²_F / r (1 = the
    whole span is left in place by R; a Haar R gives about fixed_dim / d), and ``rank_<name>``."""

    spans = dict(spans or {})
    rows, null_mean = [], {}
    for (a, b, s), R in rotations.items():
        F = fixed_subspace(R, tol)
        d = F.shape[0]
        if d not in null_mean:
            qs = haar.sample_haar(d, int(n_null), rng=np.random.default_rng([int(seed), d, 53]))
            cos = np.linalg.eigvalsh((qs + np.transpose(qs, (0, 2, 1))) / 2)
            null_mean[d] = float((cos >= np.cos(tol) - 1e-12).sum(1).mean())
        row = {
            "source": a,
            "target": b,
            "site": s,
            "d": d,
            "tol": tol,
            "fixed_dim": int(F.shape[1]),
            "haar_fixed_dim": null_mean[d],
        }
        for name, Q in spans.items():
            Q = np.asarray(Q, dtype=np.float64)
            if Q.ndim != 2 or Q.shape[0] != d:
                raise ValueError(f"spans[{name!r}] must be a (d={d}, r) basis, got shape {Q.shape}")
            r = Q.shape[1]
            row[f"rank_{name}"] = int(r)
            row[f"overlap_{name}"] = float(np.linalg.norm(F.T @ Q) ** 2 / r) if r else float("nan")
        rows.append(row)
    return rows


def cosine_match_fraction(D1: Any, D2: Any, threshold: float = 0.5) -> float:
    """Fraction of the rows of ``D1 (n1, d)`` whose best cosine with any row of ``D2 (n2, d)``
    exceeds ``threshold``: the paper's "decoder cosine ≥ 98 %" statistic (its
    ``decoder_cosine_fraction_above_0.5``), beside
    :func:`polyrot_utils.core.metrics.mean_max_cosine`."""
    a = torch.as_tensor(
        np.asarray(D1.detach().cpu() if isinstance(D1, torch.Tensor) else D1), dtype=torch.float64
    )
    b = torch.as_tensor(
        np.asarray(D2.detach().cpu() if isinstance(D2, torch.Tensor) else D2), dtype=torch.float64
    )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) == 0:
        raise ValueError(
            "D1 and D2 must be non-empty (n, d) dictionaries with the same d, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-30)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return float(((a @ b.T).max(dim=1).values > float(threshold)).double().mean())


# ------------------------------------------------------------------------- the paper's statistics
# The statistics below are the paper's own, computed as its repository computes them
# (github.com/JordanMcCann/polymorphism-is-rotation): one batch, in-sample (R fitted and scored on
# the same rows), O(d) Procrustes (U Vᵀ, no determinant fix), scalar-variance EV, signed
# many-to-one decoder cosine. Our stricter versions (held-out rows, per-dimension EV, SO(d),
# one-to-one matching, live latents) live in the functions above.


def paper_rotation(source: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """The paper's ``best_orthogonal(source, target)``: centre both, SVD of ``srcᵀ tgt``, R = U Vᵀ
    in O(d) (no determinant fix), so that ``(x_src − μ_src) R ≈ x_tgt − μ_tgt``."""
    return np.asarray(
        procrustes.fit_rotation(
            source.detach().cpu().double().numpy(),
            target.detach().cpu().double().numpy(),
            special=False,
            allow_underdetermined=True,
        ),
        dtype=np.float64,
    )


def paper_toy_sites(sites: Sequence[str]) -> list[str]:
    """The toy sites the paper reports, as distinct tensors: its ``resid_pre_0, resid_mid_0,
    resid_post_0 (= resid_pre_1), resid_mid_1, resid_post_1 (= resid_pre_2)``. Our ``final``
    site (the final norm's output) is not one of them; ``resid_pre`` of block l ≥ 1 is the
    same tensor as ``resid_post`` of block l − 1 and is counted once."""
    return [
        s
        for s in sites
        if s.startswith("blocks.")
        and not (s.endswith("hook_resid_pre") and not s.startswith("blocks.0."))
    ]


def paper_pythia_sites(sites: Sequence[str]) -> list[str]:
    """The 7 Pythia sites of the paper (``hidden_states[0..6]``): ``blocks.0.hook_resid_pre``,
    ``blocks.{0..L-2}.hook_resid_post`` and, for its last "layer5_resid_post", the final
    LayerNorm's output (HF's last hidden state is normalised) — our ``unembed.hook_in`` (or
    ``ln_final.hook_normalized``). ``blocks.{L-1}.hook_resid_post`` is *not* a paper site. Without
    a final-norm site the last ``resid_post`` is kept in its place."""
    finals = [s for s in ("unembed.hook_in", "ln_final.hook_normalized") if s in sites]
    posts = [s for s in sites if s.endswith("hook_resid_post")]
    last_post = max(posts, key=lambda s: int(s.split(".")[1])) if posts else None
    keep = [
        s
        for s in sites
        if s == "blocks.0.hook_resid_pre" or (s.endswith("hook_resid_post") and s != last_post)
    ]
    return keep + (finals[:1] if finals else ([last_post] if last_post else []))


def paper_decoder_cosine_table(
    saes: Saes, pairs: Sequence[tuple[str, str]], sites: Sequence[str], threshold: float = 0.5
) -> list[dict[str, Any]]:
    """The paper's decoder-cosine universality (``cross_seed_feature_stability`` /
    ``decoder_cosine_histogram``): for every latent of the *first* model of a pair, its maximum
    **signed** decoder cosine with any latent of the second (many-to-one, no matching, all
    latents, dead ones included); ``fraction`` = share above ``threshold``, ``mean_max_cosine``
    = their mean. One row per (pair, site)."""
    rows = []
    for s in sites:
        for a, b in pairs:
            Da, Db = saes[a][s].W_dec.detach().cpu(), saes[b][s].W_dec.detach().cpu()
            rows.append(
                {
                    "site": s,
                    "source": a,
                    "target": b,
                    "fraction": cosine_match_fraction(Da, Db, threshold),
                    "mean_max_cosine": metrics.mean_max_cosine(Da, Db),
                }
            )
    return rows


def _paper_sae_ev(sae: SAE, x: torch.Tensor) -> float:
    return metrics.explained_variance_scalar(x, sae.reconstruct(x.float()).detach())


def paper_transfer_table(
    acts: Acts, pairs: Sequence[tuple[str, str]], sites: Sequence[str], saes: Saes | None = None
) -> list[dict[str, Any]]:
    """The paper's rotation audit on one batch ``acts`` (in-sample), one row per (pair, site),
    ``pair = (anchor, other)``; R maps the other model onto the anchor (:func:`paper_rotation`).

    Map EVs (``procrustes_metrics``; variance = mean square of the centred anchor rows):
    ``raw_map_ev`` (identity map, the paper's Pythia "raw EV") and ``rot_map_ev`` (its Pythia
    "post-rotation EV"). ``frob`` = ‖R − I‖_F, ``frob_ratio`` = frob / √(2d). With ``saes``
    (the anchor's SAE is used), the SAE EVs of exp1d/panel C (scalar variance of the input):
    ``sae_ev_self`` (anchor SAE on anchor rows: the ceiling), ``sae_ev_raw`` (on the other
    model's rows unchanged), ``sae_ev_rot`` (on ``x_other R + (μ_anchor − μ_other R)``) and
    ``sae_gap = sae_ev_self − sae_ev_rot``. ``R`` holds the matrix (drop it before recording)."""
    _check_pairs(acts, "acts", pairs, sites)
    rows = []
    for s in sites:
        for anchor, other in pairs:
            xa, xo = acts[anchor][s].double(), acts[other][s].double()
            R = paper_rotation(xo, xa)
            Rt = torch.from_numpy(R)
            xa_c, xo_c = xa - xa.mean(0, keepdim=True), xo - xo.mean(0, keepdim=True)
            var_t = float((xa_c**2).mean())
            d = R.shape[0]
            frob = float(np.linalg.norm(R - np.eye(d)))
            row = {
                "site": s,
                "anchor": anchor,
                "other": other,
                "d": d,
                "raw_map_ev": 1.0 - float(((xo_c - xa_c) ** 2).mean()) / max(var_t, 1e-12),
                "rot_map_ev": 1.0 - float(((xo_c @ Rt - xa_c) ** 2).mean()) / max(var_t, 1e-12),
                "frob": frob,
                "frob_ratio": frob / float(np.sqrt(2 * d)),
                "R": R,
            }
            if saes is not None:
                sae = saes[anchor][s]
                moved = xo @ Rt + (xa.mean(0) - xo.mean(0) @ Rt)
                row["sae_ev_self"] = _paper_sae_ev(sae, xa.float())
                row["sae_ev_raw"] = _paper_sae_ev(sae, xo.float())
                row["sae_ev_rot"] = _paper_sae_ev(sae, moved.float())
                row["sae_gap"] = row["sae_ev_self"] - row["sae_ev_rot"]
            rows.append(row)
    return rows


def paper_checkpoint_transfer(
    sae_early: SAE, x_early: torch.Tensor, x_late: torch.Tensor
) -> dict[str, float]:
    """The paper's cross-checkpoint SAE transfer (cross_ckpt.py variant a/b): an SAE trained on
    the *earlier* checkpoint's activations, scored (scalar-variance EV, one batch, in-sample R)
    on its own rows (``ev_self``), on the later checkpoint's rows unchanged (``ev_naive``) and
    after rotating them onto the earlier frame (``ev_rot``: ``x_late R + (μ_early − μ_late R)``,
    R = :func:`paper_rotation` late → early); ``frob`` = ‖R − I‖_F."""
    xe, xl = x_early.double(), x_late.double()
    R = torch.from_numpy(paper_rotation(xl, xe))
    moved = xl @ R + (xe.mean(0) - xl.mean(0) @ R)
    return {
        "ev_self": _paper_sae_ev(sae_early, xe.float()),
        "ev_naive": _paper_sae_ev(sae_early, xl.float()),
        "ev_rot": _paper_sae_ev(sae_early, moved.float()),
        "frob": float(np.linalg.norm(R.numpy() - np.eye(R.shape[0]))),
    }


def paper_internal_sites(sites: Sequence[str]) -> list[str]:
    """:func:`paper_toy_sites` without ``blocks.0.hook_resid_pre`` (the embedding; in the
    shared-I/O cohort the same tensor in every seed): the paper's "internal" toy sites."""
    return [s for s in paper_toy_sites(sites) if s != "blocks.0.hook_resid_pre"]


def last_block_resid_post(sites: Sequence[str]) -> str:
    """The last ``blocks.{l}.hook_resid_post`` among ``sites`` (the toy's ``resid_post_1`` =
    ``resid_pre_2``, where the paper reports its ≥ 98 % decoder-cosine number)."""
    posts = [s for s in sites if s.startswith("blocks.") and s.endswith("hook_resid_post")]
    if not posts:
        raise ValueError(f"no blocks.*.hook_resid_post among sites {list(sites)}")
    return max(posts, key=lambda s: int(s.split(".")[1]))


def site_means(
    rows: Sequence[Mapping[str, Any]], key: str, sites: Sequence[str] | None = None
) -> dict[str, float]:
    """``{site: mean of row[key] over the pairs}`` for the rows of one of the tables above (the
    paper reports its numbers per site as means over pairs), restricted to ``sites`` if given,
    in the rows' site order."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if sites is None or r["site"] in sites:
            out.setdefault(r["site"], []).append(float(r[key]))
    if sites is not None and not out:
        raise ValueError(f"no rows at sites {list(sites)}")
    return {s: float(np.mean(v)) for s, v in out.items()}


def without_matrices(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows without their ``R`` matrices (for a results file)."""
    return [{k: v for k, v in r.items() if k != "R"} for r in rows]
