"""The Dyck rung's activations in one call: a cohort's residual stream at every site, for a fit
batch and a disjoint eval batch of held-out strings, rows paired across models.

::

    suite = dyck_activations(cohort, "heldout", n_fit=4096, n_eval=4096, seed=0,
                             controls=("untrained", "rotated"))
    suite.fit["seed0"]["blocks.0.hook_resid_post"]      # (4096, 64) float32
    suite.eval[...]                                       # (4096, 64), other strings
    suite.planted                                 # {"control:rotated": ("seed0", R)}
    suite.fit["control:untrained"]                # the controls' activations

Everything downstream (SAEs, alignment maps, Haar tests) lives in
:mod:`polyrot_utils.experiments.analysis`,
which works on the plain ``acts[model][site]`` dictionaries this module returns (and which the
Pythia rung builds its own way).

Rows: held-out strings are shuffled with ``seed``; the first strings give the fit batch, the
following ones the eval batch, so no string contributes to both. Only non-PAD positions are
kept (``split.mask``), in (string, position) order; every model sees the same tokens, so row
``i`` is the same token of the same string for every model. Each batch is cut to exactly
``n_fit`` / ``n_eval`` rows.

Controls (extra models beside the cohort's, named by the ``controls`` argument):

- ``"untrained"`` — :func:`polyrot_utils.tasks.dyck.toy.build_toy` at a seed no cohort uses: the
  same
  architecture, never trained (a *negative* control: nothing to align with);
- ``"rotated"`` — :func:`polyrot_utils.tasks.dyck.toy.rotate_residual` of the cohort's first member
  by a Haar ``R`` drawn from ``seed``: the same function in an exactly rotated basis (a
  *positive* control: a perfect alignment method recovers it with zero gap). ``R`` is in
  ``planted["control:rotated"]`` as ``(source_name, R)`` with ``acts[source] @ R =
  acts["control:rotated"]``.

Controls are keyed ``"control:<name>"`` in ``models``, ``fit`` and ``eval``, as on the Pythia rung.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from polyrot_utils.core import haar
from polyrot_utils.models.activations import (
    CONTROL_PREFIX,
    PairedActs,
    collect_activations,
    resid_sites,
    short_site,
    validate_sites,
)
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.toy import build_toy, rotate_residual

CONTROLS = ("untrained", "rotated")
#: build_toy seed of the untrained control (+ the suite seed); no cohort uses seeds this large
UNTRAINED_SEED_OFFSET = 90_000


#: the Dyck rung's name for :class:`~polyrot_utils.models.activations.PairedActs`
SuiteActs = PairedActs


def cohort_premise(cohort: Any) -> dict[str, Any]:
    """How far a cohort meets the paper's premise (its seeds compute the same function, trained
    to the paper's criterion: min accuracy >= 0.9999 over the three evaluation sets and the three
    readouts). ``{"rung": "dyck", "meets": bool | None, "summary": str}``; ``meets`` is ``None``
    for a plain ``{name: model}`` dict (nothing recorded)."""
    hist = getattr(cohort, "histories", None)
    if not hist:
        return {
            "rung": "dyck",
            "meets": None,
            "summary": "models given directly: training not recorded",
        }
    recs = [h.get("convergence") for h in hist.values()]
    if all(recs):
        n_conv = sum(bool(r["converged"]) for r in recs)
        worst = min(float(r["min_accuracy"]) for r in recs)
        meets = n_conv == len(recs)
        summary = (
            f"{n_conv}/{len(recs)} seeds meet the paper's convergence criterion (min accuracy over "
            f"sets x readouts >= 0.9999; worst seed {worst:.5f})"
        )
        return {
            "rung": "dyck",
            "meets": meets,
            "summary": summary,
            "n_converged": n_conv,
            "n_seeds": len(recs),
            "worst_min_accuracy": worst,
        }
    accs = [
        min(
            v
            for k, v in h["final"]["heldout"].items()
            if k in ("acc_type", "acc_depth", "acc_invalid")
        )
        for h in hist.values()
        if h.get("final")
    ]
    worst = min(accs) if accs else float("nan")
    return {
        "rung": "dyck",
        "meets": False,
        "n_converged": 0,
        "n_seeds": len(hist),
        "worst_min_accuracy": worst,
        "summary": f"trained in this build, not to the paper's criterion (worst held-out readout "
        "accuracy "
        f"{worst:.4f} < 0.9999)",
    }


def member_name(seed: int) -> str:
    """The name a cohort member gets in the activation dicts: ``"seed<seed>"``."""
    return f"seed{int(seed)}"


def distinct_resid_sites(model: Any, include_final: bool = True) -> list[str]:
    """:func:`polyrot_utils.models.activations.resid_sites` without the duplicates:
    ``blocks.{l}.hook_resid_pre``
    for ``l >= 1`` holds the same tensor as ``blocks.{l-1}.hook_resid_post`` and is dropped."""
    return [
        s
        for s in resid_sites(model, include_final)
        if not (s.endswith("hook_resid_pre") and not s.startswith("blocks.0."))
    ]


def _named_models(cohort_or_models: Any) -> dict[str, Any]:
    models = getattr(cohort_or_models, "models", cohort_or_models)
    if not isinstance(models, Mapping) or not models:
        raise ValueError(
            "cohort_or_models must be a Cohort (with .models) or a non-empty {name_or_seed: model} "
            "dict, "
            f"got {type(cohort_or_models).__name__}"
        )
    out = {}
    for k, m in models.items():
        name = member_name(int(k)) if isinstance(k, (int, np.integer)) else str(k)
        if not hasattr(m, "hook_dict"):
            raise ValueError(f"model {k!r} is not a HookedTransformer-like model (no hook_dict)")
        out[name] = m
    return out


def control_models(
    source: Any, controls: Sequence[str], seed: int = 0
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The control models for ``source`` (a trained toy): ``({name: model}, {name: R})``. See the
    module docstring; ``R`` is a Haar SO(d) draw from ``seed`` (only for ``"rotated"``)."""

    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise ValueError(f"controls {bad} unknown; choose from {CONTROLS}")
    out, planted = {}, {}
    device = next(source.parameters()).device
    for c in controls:
        if c == "untrained":
            out[c] = build_toy(UNTRAINED_SEED_OFFSET + int(seed), device=device)
        else:
            R = haar.sample_haar(int(source.cfg.d_model), rng=int(seed))
            out[c] = rotate_residual(source, torch.as_tensor(R, dtype=torch.float32, device=device))
            planted[c] = R
    return out, planted


def _pick_strings(
    split: dyck.DyckSplit, n_fit: int, n_eval: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    counts = split.mask.sum(1)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(int(seed)))
    cum = torch.cumsum(counts[order], 0)
    total = int(cum[-1]) if len(cum) else 0
    n_fit_strings = int(torch.searchsorted(cum, torch.tensor(n_fit)).item()) + 1
    fit_tokens = int(cum[n_fit_strings - 1]) if n_fit_strings <= len(cum) else total
    if fit_tokens + n_eval > total:
        raise ValueError(
            f"n_fit={n_fit} + n_eval={n_eval} tokens exceed what the split offers ({total} non-PAD "
            "tokens "
            f"in {len(split)} strings); ask for fewer or use a larger split"
        )
    rest = cum[n_fit_strings:] - fit_tokens
    n_eval_strings = int(torch.searchsorted(rest, torch.tensor(n_eval)).item()) + 1
    return order[:n_fit_strings], order[n_fit_strings : n_fit_strings + n_eval_strings]


def dyck_activations(
    cohort_or_models: Any,
    split: dyck.DyckSplit | str = "heldout",
    sites: Sequence[str] | None = None,
    *,
    n_fit: int = 4096,
    n_eval: int = 4096,
    seed: int = 0,
    controls: Sequence[str] = (),
    data_config: dyck.DyckConfig | None = None,
    batch_size: int = 256,
) -> SuiteActs:
    """Activations of every model of a cohort (plus ``controls``) at ``sites``, fit and eval
    batches.

    Args:
        cohort_or_models: a :class:`polyrot_utils.tasks.dyck.cohorts.Cohort` (members are named
            ``"seed<s>"``) or a ``{name: model}`` dict (integer keys become ``"seed<k>"``).
        split: a :class:`~polyrot_utils.tasks.dyck.language.DyckSplit`, or a split name
            (``"heldout"``, ``"ood"``)
            of ``data_config`` (default: the cohort's training data config).
        sites: hook names; default :func:`distinct_resid_sites` of the first model.
        n_fit, n_eval: rows (non-PAD token positions) in each batch; disjoint strings.
        seed: shuffles the strings and draws the control rotation.
        controls: any of :data:`CONTROLS`; built from the first member.

    Returns a :class:`SuiteActs`. ``ValueError`` if the split has too few tokens.
    """
    models = _named_models(cohort_or_models)
    members = list(models)
    if int(n_fit) < 2 or int(n_eval) < 2:
        raise ValueError(f"n_fit and n_eval must be >= 2, got n_fit={n_fit}, n_eval={n_eval}")
    if isinstance(split, str):
        if data_config is None:
            config = getattr(cohort_or_models, "config", None)
            if config is None:
                raise ValueError(
                    "split given by name needs data_config= (or pass a Cohort, whose data config "
                    "is used)"
                )
            data_config = config.train.data
        split = dyck.make_split(data_config, split)
    if not isinstance(split, dyck.DyckSplit):
        raise ValueError(f"split must be a DyckSplit or a split name, got {type(split).__name__}")
    first = models[members[0]]
    sites = validate_sites(first, sites) if sites is not None else distinct_resid_sites(first)
    extra, planted = control_models(first, controls, seed) if controls else ({}, {})
    extra = {CONTROL_PREFIX + c: m for c, m in extra.items()}
    for name in extra:
        if name in models:
            raise ValueError(f"a model is already named {name!r}; rename it to use that control")
    models.update(extra)
    fit_idx, eval_idx = _pick_strings(split, int(n_fit), int(n_eval), seed)
    batches: dict[str, dict[str, dict[str, torch.Tensor]]] = {"fit": {}, "eval": {}}
    for which, idx, n in (("fit", fit_idx, int(n_fit)), ("eval", eval_idx, int(n_eval))):
        sub = split.subset(idx)
        for name, model in models.items():
            acts = collect_activations(
                model, sub.tokens, sites, batch_size=batch_size, mask=sub.mask
            )
            batches[which][name] = {s: a[:n].contiguous() for s, a in acts.items()}
    info = {
        "premise": cohort_premise(cohort_or_models),
        "split": split.name,
        "n_fit": int(n_fit),
        "n_eval": int(n_eval),
        "fit_strings": len(fit_idx),
        "eval_strings": len(eval_idx),
        "seed": int(seed),
    }
    return SuiteActs(
        batches["fit"],
        batches["eval"],
        list(sites),
        models,
        members,
        {CONTROL_PREFIX + c: (members[0], R) for c, R in planted.items()},
        info,
    )


__all__ = [
    "CONTROLS",
    "SuiteActs",
    "cohort_premise",
    "control_models",
    "distinct_resid_sites",
    "dyck_activations",
    "member_name",
    "short_site",
]
