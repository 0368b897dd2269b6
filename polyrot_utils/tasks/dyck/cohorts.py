"""Cohorts of toy models: several seeds trained under one rule, and their functional agreement.

Cohort kinds (``CohortConfig.kind``):

- ``"shared_io"``  — the paper's Cohort A: the first seed is trained normally; its embedding
  ``embed.W_E`` and readout ``unembed.W_U`` (``shared_io_keys``; add ``"ln_final.w"`` to share
  the final gain too — the paper does not) are copied into every other seed at initialisation
  and frozen. The first seed's model is the same cached artifact as an independent model of
  that seed.
- ``"independent"`` — the paper's Cohort B: every seed its own init and its own data order.
- ``"same_init"``   — every member starts from the init of the first seed; member ``s`` visits
  the training data in the order of ``data_seed = s`` (so only SGD noise differs).
- ``"sgd"``         — independent seeds trained with SGD + momentum instead of AdamW. SGD's
  update commutes with a rotation of the residual basis (and the Gaussian init is isotropic),
  so the law of the learned basis is rotation-invariant and R between seeds should be Haar;
  Adam(W)'s per-coordinate normalisation privileges the coordinate axes, so it need not be.
  This cohort lets the Haar chapter test that prediction.

Profiles (:data:`TOY_PROFILES`) fix the training recipe so every chapter that asks for the
same ``(kind, profile, n_seeds)`` gets the same cached models. All profiles use the paper's task
(``DyckConfig.task="paper"``). Where a profile says ``reference=True`` (``quick``) and
``reference/dyck/`` holds a *complete* reference run, the ``shared_io`` and ``independent``
cohorts are not trained: their members are the committed reference weights
(:mod:`polyrot_utils.tasks.dyck.reference`, trained by the ensemble trainer to the
paper's convergence criterion, content lengths 2..8) — ``CohortConfig.source == "reference"``.
A chapter that needs training checkpoints asks for ``source="train"``::

    cohort = train_cohort(cohort_config("independent", profile="quick", n_seeds=3))
    cohort.models          # {seed: HookedTransformer}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.metrics import kl_divergence, top1_agreement
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohort_training import ensemble_accuracy
from polyrot_utils.tasks.dyck.convergence import min_accuracy
from polyrot_utils.tasks.dyck.ensemble import stack_models
from polyrot_utils.tasks.dyck.paper_task import PaperTaskConfig, eval_sets, sample_tokens, to_split
from polyrot_utils.tasks.dyck.toy import SHARED_IO_KEYS
from polyrot_utils.tasks.dyck.training import (
    ToyTrainConfig,
    TrainedToy,
    evaluate_toy,
    readout_logits,
    train_toy,
)

COHORT_KINDS = ("shared_io", "independent", "same_init", "sgd")
#: default seeds of each kind (the paper: Cohort A 0–4, Cohort B 100–104)
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {
    "shared_io": (0, 1, 2, 3, 4),
    "independent": (100, 101, 102, 103, 104),
    "same_init": (200, 201, 202, 203, 204),
    "sgd": (300, 301, 302, 303, 304),
}

#: the reference weights' task: the paper's, content lengths 2..8 ("ood" = the long set 6..8)
_QUICK_DATA = dict(
    task="paper",
    min_len=2,
    max_len=8,
    ood_min_len=6,
    ood_max_len=8,
    n_train=20_000,
    n_heldout=2_048,
    n_ood=2_048,
)
#: cohort kinds whose quick-profile members are the committed reference weights
REFERENCE_KINDS = ("shared_io", "independent")
#: training recipes by profile; ``sgd_lr`` replaces ``lr`` in the "sgd" cohort; ``reference``:
#: True = the shared_io/independent cohorts load the committed reference weights
#: (:mod:`polyrot_utils.tasks.dyck.reference`); "ensemble" = they are trained here by the ensemble
#: trainer at the paper's recipe (``reference_dyck.PAPER_RECIPE``, to the convergence criterion,
#: cached); False = the per-seed trainer at the profile's recipe.
TOY_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        steps=60,
        batch_size=32,
        lr=1e-2,
        warmup_steps=10,
        eval_every=30,
        eval_size=256,
        n_checkpoints=2,
        data=dict(_QUICK_DATA, n_train=2_000, n_heldout=500, n_ood=500),
        sgd_lr=0.1,
        reference=False,
    ),
    "quick": dict(
        steps=400,
        batch_size=64,
        lr=1e-2,
        warmup_steps=30,
        eval_every=100,
        eval_size=512,
        n_checkpoints=4,
        data=dict(_QUICK_DATA),
        sgd_lr=0.1,
        reference=True,
    ),
    "paper": dict(
        steps=30_000,
        batch_size=512,
        lr=3e-3,
        warmup_steps=500,
        eval_every=1_000,
        eval_size=2_048,
        n_checkpoints=30,
        data=dict(
            task="paper",
            min_len=2,
            max_len=62,
            ood_min_len=50,
            ood_max_len=60,
            n_train=262_144,
            n_heldout=8_192,
            n_ood=8_192,
        ),
        sgd_lr=0.1,
        device="auto",
        reference="ensemble",
    ),
}
COHORT_SOURCES = ("train", "reference", "ensemble")


def toy_train_config(profile: str = "quick", **overrides: Any) -> ToyTrainConfig:
    """The :class:`ToyTrainConfig` of a profile; ``overrides`` replace fields (``data_<name>=``
    replaces a :class:`~polyrot_utils.tasks.dyck.language.DyckConfig` field; ``None`` values are
    ignored, so a
    notebook may pass ``steps=None`` for "the profile's value")."""
    if profile not in TOY_PROFILES:
        raise ValueError(f"profile must be one of {sorted(TOY_PROFILES)}, got {profile!r}")
    spec = dict(TOY_PROFILES[profile])
    spec.pop("sgd_lr")
    spec.pop("reference")
    data = dyck.DyckConfig(**spec.pop("data"))
    cfg = ToyTrainConfig(data=data, **spec)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return cfg.with_(**overrides) if overrides else cfg


@dataclass(frozen=True)
class CohortConfig:
    """A cohort: ``kind`` (see module docstring), ``seeds``, and the per-model ``train`` recipe
    (its ``seed``/``data_seed``/``optimizer``/``shared_io_from`` are set per member).
    ``source="reference"``: the members are the committed reference weights (``train`` then
    only supplies the data config the chapters evaluate on)."""

    kind: str = "independent"
    seeds: tuple[int, ...] = (100, 101, 102)
    train: ToyTrainConfig = field(default_factory=ToyTrainConfig)
    sgd_lr: float = 0.1
    shared_io_keys: tuple[str, ...] = SHARED_IO_KEYS
    source: str = "train"

    def __post_init__(self) -> None:
        if self.kind not in COHORT_KINDS:
            raise ValueError(f"kind must be one of {COHORT_KINDS}, got {self.kind!r}")
        if self.source not in COHORT_SOURCES:
            raise ValueError(f"source must be one of {COHORT_SOURCES}, got {self.source!r}")
        if self.source != "train" and self.kind not in REFERENCE_KINDS:
            raise ValueError(
                f"source={self.source!r} exists only for kinds {REFERENCE_KINDS}, got kind "
                f"{self.kind!r}"
            )
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"seeds must be a non-empty tuple of distinct integers, got {self.seeds!r}"
            )

    def member_configs(self) -> dict[int, ToyTrainConfig]:
        """``{seed: ToyTrainConfig}`` of every member, in ``seeds`` order."""
        base = self.train
        first = self.seeds[0]
        out: dict[int, ToyTrainConfig] = {}
        for s in self.seeds:
            if self.kind == "independent":
                out[s] = replace(base, seed=s, data_seed=None, shared_io_from=None)
            elif self.kind == "sgd":
                out[s] = replace(
                    base,
                    seed=s,
                    data_seed=None,
                    shared_io_from=None,
                    optimizer="sgd",
                    lr=self.sgd_lr,
                )
            elif self.kind == "same_init":
                out[s] = replace(base, seed=first, data_seed=s, shared_io_from=None)
            else:  # shared_io
                source = replace(base, seed=first, data_seed=None, shared_io_from=None)
                out[s] = (
                    source
                    if s == first
                    else replace(
                        base,
                        seed=s,
                        data_seed=None,
                        shared_io_from=source,
                        shared_io_keys=self.shared_io_keys,
                    )
                )
        return out


def cohort_config(
    kind: str,
    profile: str = "quick",
    n_seeds: int | None = None,
    seeds: tuple[int, ...] | None = None,
    source: str | None = None,
    **overrides: Any,
) -> CohortConfig:
    """One-line cohort config: ``kind``'s default seeds (first ``n_seeds``), the profile's recipe,
    ``overrides`` as in :func:`toy_train_config`. ``source``: ``None`` = the profile's choice —
    ``"reference"`` for the reference kinds of a ``reference=True`` profile when no recipe
    override (other than ``device``) is given, the seeds are the default ones and the reference
    folder holds them all (otherwise it says so and trains), else ``"train"``."""
    if kind not in COHORT_KINDS:
        raise ValueError(f"kind must be one of {COHORT_KINDS}, got {kind!r}")
    if n_seeds is not None and (
        isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1
    ):
        # 0 used to mean "all five" and a negative number sliced silently; both are refused now
        raise ValueError(
            "n_seeds must be a positive integer (or None for the kind's default seeds), got "
            f"{n_seeds!r}"
        )
    if profile not in TOY_PROFILES:
        raise ValueError(f"profile must be one of {sorted(TOY_PROFILES)}, got {profile!r}")
    if source is None:
        recipe_overrides = {k for k, v in overrides.items() if v is not None and k != "device"}
        default_seeds = seeds is None and (n_seeds is None or n_seeds <= len(DEFAULT_SEEDS[kind]))
        ref = TOY_PROFILES[profile]["reference"]
        source = (
            ("ensemble" if ref == "ensemble" else "reference")
            if ref and kind in REFERENCE_KINDS and not recipe_overrides and default_seeds
            else "train"
        )
        if source == "reference":
            from polyrot_utils.tasks.dyck.reference import reference_available

            want = (
                seeds
                if seeds is not None
                else DEFAULT_SEEDS[kind][
                    : (len(DEFAULT_SEEDS[kind]) if n_seeds is None else n_seeds)
                ]
            )
            if not reference_available(kind, tuple(want)):
                print(
                    f"[cohorts] no reference weights for {kind} seeds {tuple(want)}; training them "
                    "here instead"
                )
                source = "train"
    if seeds is None:
        seeds = DEFAULT_SEEDS[kind][: (len(DEFAULT_SEEDS[kind]) if n_seeds is None else n_seeds)]
        if n_seeds is not None and n_seeds > len(DEFAULT_SEEDS[kind]):
            seeds = tuple(DEFAULT_SEEDS[kind][0] + i for i in range(n_seeds))
    return CohortConfig(
        kind=kind,
        seeds=tuple(int(s) for s in seeds),
        train=toy_train_config(profile, **overrides),
        sgd_lr=TOY_PROFILES[profile]["sgd_lr"],
        source=source,
    )


@dataclass
class Cohort:
    """Trained members of a cohort, keyed by seed (the data seed for ``same_init``)."""

    config: CohortConfig
    members: dict[int, TrainedToy]

    @property
    def models(self) -> dict[int, Any]:
        return {s: t.model for s, t in self.members.items()}

    @property
    def histories(self) -> dict[int, dict]:
        return {s: t.history for s, t in self.members.items()}

    @property
    def checkpoints(self) -> dict[int, dict[int, Path]]:
        return {s: t.checkpoints for s, t in self.members.items()}

    @property
    def train_seconds(self) -> dict[int, float]:
        return {s: t.train_seconds for s, t in self.members.items()}

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.members)


def train_cohort(config: CohortConfig, *, verbose: bool = False) -> Cohort:
    """Train (or load from the cache) every member of ``config``; ``source="reference"`` loads
    the committed reference weights instead
    (:func:`polyrot_utils.tasks.dyck.reference.reference_members`)."""
    if config.source == "reference":
        from polyrot_utils.tasks.dyck.reference import reference_members

        return Cohort(config, reference_members(config))
    if config.source == "ensemble":
        from polyrot_utils.tasks.dyck.reference import (
            PAPER_RECIPE,
            ensemble_folder,
            reference_members,
        )

        folder = ensemble_folder(
            PAPER_RECIPE, n_seeds=len(DEFAULT_SEEDS[config.kind]), device=config.train.device
        )
        return Cohort(config, reference_members(config, folder))
    members = {s: train_toy(c, verbose=verbose) for s, c in config.member_configs().items()}
    return Cohort(config, members)


def accuracy_table(
    cohorts: dict[str, Cohort], splits: tuple[str, ...] = ("heldout", "ood")
) -> list[dict]:
    """Rows ``{cohort, seed, split, acc_type, acc_depth, acc_invalid, acc_all, acc_string}``
    from each member's final evaluation (computed at training time on the full splits)."""
    rows = []
    for name, c in cohorts.items():
        for s, t in c.members.items():
            for sp in splits:
                rows.append(
                    {
                        "cohort": name,
                        "seed": s,
                        "split": sp,
                        **{k: v for k, v in t.history["final"][sp].items() if k.startswith("acc")},
                    }
                )
    return rows


def convergence_table(
    cohorts: dict[str, Cohort], threshold: float = 0.9999, eval_size: int = 2_048
) -> list[dict]:
    """One convergence record per member (:mod:`polyrot_utils.tasks.dyck.convergence` schema)::

        {cohort, seed, task, converged, steps, tokens, seconds, accuracy: {split: {readout: value}},
        ...}

    Reference members: the record written when they were trained (the paper's rule applied
    during training). Members trained here by the per-seed trainer (no stopping rule): measured
    now on the paper's three evaluation sets at the cohort's lengths (``eval_size`` strings
    each); ``converged`` says whether the final model meets ``threshold``, ``steps`` is the
    fixed step budget, ``tokens`` is ``None`` (not counted) and ``rule_applied`` is False.
    ``cohort`` is the key of ``cohorts``."""

    rows = []
    for name, c in cohorts.items():
        for s, t in c.members.items():
            rec = t.history.get("convergence")
            if rec is not None:
                rows.append({**rec, "cohort": name, "rule_applied": True})
                continue
            data = t.config.data
            if data.task != "paper":
                raise ValueError(
                    f"convergence_table: cohort {name!r} is on task {data.task!r}; the criterion "
                    "is the paper task's"
                )
            sets = eval_sets(dyck.paper_task_config(data), eval_size, 0)
            acc = ensemble_accuracy(stack_models([t.model], [s]).params, sets)[0]  # copies to CPU
            rows.append(
                {
                    "cohort": name,
                    "seed": int(s),
                    "task": data.task,
                    "converged": min_accuracy(acc) >= threshold,
                    "steps": t.config.steps,
                    "tokens": None,
                    "seconds": t.train_seconds,
                    "min_accuracy": min_accuracy(acc),
                    "accuracy": acc,
                    "rule_applied": False,
                }
            )
    return rows


@torch.no_grad()
def errors_by_length(
    cohorts: dict[str, Cohort],
    config: PaperTaskConfig,
    lengths: tuple[int, ...] | None = None,
    n_per_length: int = 4096,
    seed: int = 0,
) -> list[dict]:
    """Where a cohort's remaining errors are: for each content length ``L`` (default every length
    of ``config``), ``n_per_length`` fresh strings of the paper's training distribution at exactly
    that length, and per member the number of strings with at least one wrong position (any
    readout, BOS to EOS). Rows ``{cohort, seed, length, n_strings, wrong_strings,
    string_error_rate}``. The same strings for every member (RNG ``[seed, 7919, L]``, a stream
    apart from the evaluation sets and training batches)."""
    if isinstance(n_per_length, bool) or not isinstance(n_per_length, int) or n_per_length < 1:
        raise ValueError(f"n_per_length must be a positive integer, got {n_per_length!r}")
    lengths = tuple(range(config.min_len, config.max_len + 1)) if lengths is None else lengths
    bad = [L for L in lengths if not config.min_len <= int(L) <= config.max_len]
    if not lengths or bad:
        raise ValueError(
            f"lengths must be non-empty and within {config.min_len}..{config.max_len}, "
            f"got {lengths}"
        )
    rows = []
    for L in lengths:
        rng = np.random.default_rng([int(seed), 7919, int(L)])
        split = to_split(sample_tokens(n_per_length, config, rng, length_range=(L, L)))
        split = split.subset(slice(None))
        for name, c in cohorts.items():
            for s, model in c.models.items():
                wrong = round((1.0 - evaluate_toy(model, split)["acc_string"]) * n_per_length)
                rows.append(
                    {
                        "cohort": name,
                        "seed": s,
                        "length": int(L),
                        "n_strings": n_per_length,
                        "wrong_strings": int(wrong),
                        "string_error_rate": wrong / n_per_length,
                    }
                )
    return rows


@torch.no_grad()
def functional_agreement(
    models: dict[Any, Any], split: dyck.DyckSplit, batch_size: int = 512
) -> list[dict]:
    """Output agreement for every pair of ``models`` on the same strings, per readout.

    Rows ``{a, b, readout, top1_agreement, kl_ab, kl_ba}``: the fraction of positions where the
    two argmaxes agree and the mean KL (nats) both ways, over the positions where that readout
    is defined (non-PAD, label not IGNORE).
    """

    if len(models) < 2:
        raise ValueError(f"need at least 2 models to compare, got {len(models)}")
    logits = {s: readout_logits(m, split, batch_size) for s, m in models.items()}
    valid = {name: split.readout_mask(name)[split.mask] for name in dyck.READOUT_SIZES}
    rows = []
    for a, b in combinations(models, 2):
        for name in dyck.READOUT_SIZES:
            la, lb, m = logits[a][name], logits[b][name], valid[name]
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "readout": name,
                    "top1_agreement": top1_agreement(la, lb, mask=m),
                    "kl_ab": kl_divergence(la, lb, mask=m),
                    "kl_ba": kl_divergence(lb, la, mask=m),
                }
            )
    return rows


def shared_tensors_equal(cohort: Cohort, keys: tuple[str, ...] | None = None) -> dict[str, bool]:
    """For a ``shared_io`` cohort: is each shared tensor bit-identical across all members?"""
    keys = keys or cohort.config.shared_io_keys
    out = {}
    models = list(cohort.models.values())
    for k in keys:
        ref = dict(models[0].named_parameters())[k]
        out[k] = all(
            torch.equal(ref.cpu(), dict(m.named_parameters())[k].cpu()) for m in models[1:]
        )
    return out


__all__ = [
    "COHORT_KINDS",
    "COHORT_SOURCES",
    "DEFAULT_SEEDS",
    "REFERENCE_KINDS",
    "TOY_PROFILES",
    "Cohort",
    "CohortConfig",
    "accuracy_table",
    "cohort_config",
    "convergence_table",
    "errors_by_length",
    "evaluate_toy",
    "functional_agreement",
    "shared_tensors_equal",
    "toy_train_config",
    "train_cohort",
]
