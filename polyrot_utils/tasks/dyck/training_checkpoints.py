"""One Dyck cohort's models as training proceeds: ``{step: {seed_name: model}}`` plus the tokens
each step had seen and the worst seed's minimum accuracy, for
:func:`polyrot_utils.experiments.training_dynamics.claims_over_training`.

Two sources, chosen by the cohort:

- a cohort loaded from the committed reference weights (``CohortConfig.source == "reference"``):
  the checkpoints the reference run kept (``reference/dyck/checkpoints/``: Cohort B seeds
  100-102 after 250, 500, 1,000, 2,000 and 4,000 updates; tokens and accuracy from the
  manifest's curve) and, as the last point, the converged final weights (labelled with the
  seeds' mean total steps and tokens);
- a cohort trained in this build: its saved checkpoints (steps common to every seed); tokens
  seen = updates x batch size x the training pool's mean tokens per string (the trainer draws
  strings uniformly from that pool), accuracy = the held-out accuracy recorded at that step
  when there is one, else NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyrot_utils.core import cache
from polyrot_utils.models.activations import PairedActs
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck import reference as ref
from polyrot_utils.tasks.dyck.cohorts import functional_agreement
from polyrot_utils.tasks.dyck.suite import dyck_activations, member_name
from polyrot_utils.tasks.dyck.toy import build_toy, load_parameter_dict

__all__ = ["CohortTimeline", "cohort_timeline", "timeline_probes"]

CohortTimeline = tuple[dict[int, dict[str, Any]], dict[int, int], dict[int, float]]


def _reference_timeline(cohort: Any, folder: Path) -> CohortTimeline:
    man = ref.load_manifest(folder)
    seeds = [s for s in ref.CHECKPOINT_SEEDS if s in cohort.seeds]
    if cohort.config.kind != ref.CHECKPOINT_COHORT or len(seeds) < 2:
        raise ValueError(
            f"the reference run kept checkpoints of cohort {ref.CHECKPOINT_COHORT!r} seeds "
            f"{ref.CHECKPOINT_SEEDS}; got cohort {cohort.config.kind!r} seeds {cohort.seeds}"
        )
    curve = {
        (r["seed"], r["step"]): r for r in man["curve"] if r["cohort"] == ref.CHECKPOINT_COHORT
    }
    models: dict[int, dict[str, Any]] = {}
    tokens: dict[int, int] = {}
    accuracy: dict[int, float] = {}
    for step in ref.CHECKPOINT_STEPS:
        rel = [f"{ref.CHECKPOINT_DIR}/{ref.checkpoint_name(s, step)}" for s in seeds]
        if not all(r in man["files"] for r in rel) or not all((s, step) in curve for s in seeds):
            continue
        models[step] = {}
        for s, r in zip(seeds, rel, strict=True):
            if ref.sha256(folder / r) != man["files"][r]:
                raise ValueError(f"{folder / r}: SHA-256 does not match the manifest")
            m = build_toy(s)
            load_parameter_dict(m, cache.load_safetensors(folder / r))
            models[step][member_name(s)] = m.eval()
        tokens[step] = int(np.mean([curve[(s, step)]["tokens"] for s in seeds]))
        accuracy[step] = float(min(curve[(s, step)]["min_accuracy"] for s in seeds))
    recs = {r["seed"]: r for r in man["convergence"] if r["cohort"] == ref.CHECKPOINT_COHORT}
    final_step = int(np.mean([recs[s]["total_steps"] for s in seeds]))
    models[final_step] = {member_name(s): cohort.models[s] for s in seeds}
    tokens[final_step] = int(np.mean([recs[s]["total_tokens"] for s in seeds]))
    accuracy[final_step] = float(min(recs[s]["min_accuracy"] for s in seeds))
    return models, tokens, accuracy


def _trained_timeline(cohort: Any) -> CohortTimeline:
    members = cohort.members
    steps = sorted(set.intersection(*(set(t.checkpoints) for t in members.values())))
    if not steps:
        raise ValueError("the cohort's members share no checkpoint step")
    cfg = next(iter(members.values())).config
    pool = dyck.make_split(cfg.data, "train")
    per_string = float(pool.mask.sum()) / len(pool)
    models = {
        s: {member_name(seed): t.load_checkpoint(s).eval() for seed, t in members.items()}
        for s in steps
    }
    tokens = {s: round(s * cfg.batch_size * per_string) for s in steps}
    accuracy: dict[int, float] = {}
    for s in steps:
        vals = []
        for t in members.values():
            ev = {int(r["step"]): r for r in t.history.get("eval", []) if "step" in r}
            if s in ev and "min_accuracy" in ev[s]:
                vals.append(float(ev[s]["min_accuracy"]))
        accuracy[s] = min(vals) if len(vals) == len(members) else float("nan")
    return models, tokens, accuracy


def cohort_timeline(cohort: Any, folder: Path | str = ref.REFERENCE_DIR) -> CohortTimeline:
    """``(checkpoints, tokens_seen, min_accuracy)`` for ``cohort`` (a
    :class:`polyrot_utils.tasks.dyck.cohorts.Cohort`): ``{step: {seed_name: model}}``,
    ``{step: int}`` and ``{step: float}``; see the module docstring."""
    if getattr(cohort.config, "source", "train") == "reference":
        return _reference_timeline(cohort, Path(folder))
    return _trained_timeline(cohort)


def timeline_probes(
    split: dyck.DyckSplit, *, n_fit: int, n_eval: int, seed: int
) -> tuple[
    Callable[[Mapping[str, Any]], PairedActs], Callable[[Mapping[str, Any]], tuple[float, float]]
]:
    """The two per-checkpoint measurements that
    :func:`~polyrot_utils.experiments.training_dynamics.claims_over_training` takes, for Dyck
    models scored on ``split``: ``build({name: model})``, their paired residual activations
    (:func:`~polyrot_utils.tasks.dyck.suite.dyck_activations`, ``n_fit`` + ``n_eval`` rows,
    ``seed``), and ``agreement({name: model})``, ``(mean KL, mean top-1 agreement)`` over every
    pair and readout (:func:`~polyrot_utils.tasks.dyck.cohorts.functional_agreement`)."""

    def build(models: Mapping[str, Any]) -> PairedActs:
        return dyck_activations(dict(models), split, n_fit=n_fit, n_eval=n_eval, seed=seed)

    def agreement(models: Mapping[str, Any]) -> tuple[float, float]:
        rows = pd.DataFrame(functional_agreement(dict(models), split))
        kl, top1 = rows[["kl_ab", "top1_agreement"]].mean()
        return float(kl), float(top1)

    return build, agreement
