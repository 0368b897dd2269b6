"""Training, caching, loading and evaluating the Dyck-3 toy model.

One call trains (or loads from the cache) one model::

    toy = train_toy(ToyTrainConfig(seed=0, steps=600, batch_size=64))
    toy.model            # HookedTransformer (eval mode, CPU unless config.device says otherwise)
    toy.history          # {"step", "lr", "loss", "acc_type", ...} lists + "eval" + "final"
    toy.checkpoints      # {step: path to safetensors}
    toy.load_checkpoint(step)

Determinism: ``seed`` fixes the initial weights, ``data_seed`` (default: ``seed``) fixes the
order in which the fixed training pool (``data``, itself fixed by ``data.seed``) is visited.
Loss = Σ over the three readouts of the mean cross-entropy over non-PAD positions (BOS, content
and EOS count, as in the paper). AdamW (β = 0.9, 0.95; weight decay 1e-4) with linear warm-up
then cosine decay to ``min_lr_ratio · lr``, gradient clipping at 1.0 — the paper's recipe at
fewer steps — or SGD with momentum (``optimizer="sgd"``).

Cache: ``artifact_dir("dyck_toy", config)`` holds ``model.safetensors`` (named parameters),
``ckpt_XXXXXX.safetensors`` and ``history.json``, then ``manifest.json`` (sizes and SHA-256s,
checked on every load). A second call with the same config loads; a damaged entry is reported
and retrained (see :func:`polyrot_utils.core.cache.cached_entry`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from polyrot_utils.core import cache
from polyrot_utils.core.device import default_device
from polyrot_utils.core.progress import report
from polyrot_utils.core.schedule import checkpoint_steps, warmup_cosine_lr
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.toy import (
    SHARED_IO_KEYS,
    build_toy,
    load_parameter_dict,
    parameter_dict,
    split_readouts,
)

__all__ = [
    "CACHE_KIND",
    "OPTIMIZERS",
    "TRAIN_THREADS",
    "ToyTrainConfig",
    "TrainedToy",
    "config_dict",
    "evaluate_toy",
    "load_toy",
    "lr_at",
    "readout_logits",
    "readout_loss",
    "train_toy",
]

CACHE_KIND = "dyck_toy"
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class ToyTrainConfig:
    """Everything that determines a trained toy model (hashed for the cache).

    ``shared_io_from``: the config of a model whose ``shared_io_keys`` tensors are copied in
    at initialisation and frozen (the paper's Cohort A). ``n_checkpoints`` evenly spaced
    checkpoints are saved besides step 0 and the final step. ``device``: "auto", "cpu",
    "cuda"; resolved before hashing, so CPU and GPU runs are cached separately.
    """

    seed: int = 0
    data_seed: int | None = None
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    optimizer: str = "adamw"
    momentum: float = 0.9
    init_scale: float = 0.02
    data: dyck.DyckConfig = field(default_factory=dyck.DyckConfig)
    n_checkpoints: int = 4
    eval_every: int = 100
    eval_size: int = 512
    log_every: int = 10
    shared_io_from: ToyTrainConfig | None = None
    shared_io_keys: tuple[str, ...] = SHARED_IO_KEYS
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("steps", "batch_size", "eval_every", "eval_size", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.warmup_steps > self.steps:
            raise ValueError(
                f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.n_checkpoints < 0:
            raise ValueError(f"n_checkpoints must be >= 0, got {self.n_checkpoints}")
        if not isinstance(self.data, dyck.DyckConfig):
            raise ValueError(f"data must be a DyckConfig, got {type(self.data).__name__}")
        if self.shared_io_from is not None and not isinstance(self.shared_io_from, ToyTrainConfig):
            raise ValueError(
                "shared_io_from must be a ToyTrainConfig or None, got "
                f"{type(self.shared_io_from).__name__}"
            )

    @property
    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed is None else int(self.data_seed)

    def resolved(self) -> ToyTrainConfig:
        """The config with ``device`` resolved ("auto" -> "cpu"/"cuda"), recursively."""
        dev = default_device(self.device).type
        src = self.shared_io_from.resolved() if self.shared_io_from is not None else None
        return replace(self, device=dev, shared_io_from=src)

    def with_(self, **overrides: Any) -> ToyTrainConfig:
        """A copy with fields replaced; ``data_<field>=`` overrides a field of ``data``."""
        data_kw = {
            k[5:]: overrides.pop(k)
            for k in list(overrides)
            if k.startswith("data_") and k != "data_seed"
        }
        bad = set(overrides) - set(ToyTrainConfig.__dataclass_fields__)
        if bad:
            raise ValueError(
                f"unknown ToyTrainConfig fields {sorted(bad)}; valid: "
                f"{sorted(ToyTrainConfig.__dataclass_fields__)}"
            )
        cfg = replace(self, **overrides)
        if data_kw:
            cfg = replace(cfg, data=dyck.with_overrides(cfg.data, **data_kw))
        return cfg


@dataclass
class TrainedToy:
    """A trained (or cache-loaded) toy model with its history and checkpoints."""

    model: Any
    config: ToyTrainConfig
    history: dict
    checkpoints: dict[int, Path]
    path: Path
    from_cache: bool
    train_seconds: float

    def load_checkpoint(self, step: int):
        """The model as it was after ``step`` optimiser updates (a saved checkpoint step)."""
        if step not in self.checkpoints:
            raise KeyError(f"no checkpoint at step {step}; saved steps: {sorted(self.checkpoints)}")
        return _model_from_file(self.checkpoints[step], self.config)


# --------------------------------------------------------------------------------------------
# loss, evaluation
# --------------------------------------------------------------------------------------------


def readout_loss(
    logits: torch.Tensor, batch: dyck.DyckSplit
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over readouts of the mean masked cross-entropy; also per-readout loss and accuracy."""
    total = logits.new_zeros(())
    stats: dict[str, float] = {}
    for name, lg in split_readouts(logits).items():
        m = batch.readout_mask(name)
        y = batch.labels[name]
        lg_m, y_m = lg[m], y[m]
        loss = F.cross_entropy(lg_m.float(), y_m)
        total = total + loss
        stats[f"loss_{name}"] = float(loss.detach())
        stats[f"acc_{name}"] = float((lg_m.argmax(-1) == y_m).float().mean())
    return total, stats


@torch.no_grad()
def readout_logits(
    model, split: dyck.DyckSplit, batch_size: int = 512, device: str | torch.device | None = None
) -> dict[str, torch.Tensor]:
    """Per-readout logits at every non-PAD position of ``split``: ``{name: (n_positions, k)}``
    (float32, CPU), rows in split order then position order — the same rows for any model."""
    dev = default_device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in dyck.READOUT_SIZES}
    for b in split.batches(batch_size):
        b = b.to(dev)
        logits = model(b.tokens)
        for name, lg in split_readouts(logits).items():
            out[name].append(lg[b.mask].float().cpu())
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def evaluate_toy(
    model, split: dyck.DyckSplit, batch_size: int = 512, device: str | torch.device | None = None
) -> dict[str, float]:
    """Per-token accuracy per readout (``acc_type``, ``acc_depth``, ``acc_invalid``), ``acc_all``
    (all three right), ``acc_string`` (every position of a string right), and per-readout loss.
    Positions whose label is ``IGNORE`` do not count for that readout."""
    logits = readout_logits(model, split, batch_size, device)
    out: dict[str, float] = {}
    all_right: torch.Tensor | None = None
    for name, lg in logits.items():
        y = split.labels[name][split.mask]
        ok = y != dyck.IGNORE
        right = (lg.argmax(-1) == y) | ~ok
        all_right = right if all_right is None else all_right & right
        out[f"acc_{name}"] = float(right[ok].float().mean())
        out[f"loss_{name}"] = float(F.cross_entropy(lg[ok], y[ok]))
    if all_right is None:
        raise ValueError("the model has no readouts to evaluate")
    out["acc_all"] = float(all_right.float().mean())
    row_of = torch.arange(len(split)).unsqueeze(1).expand_as(split.mask)[split.mask]
    wrong_rows = torch.zeros(len(split), dtype=torch.bool)
    wrong_rows[row_of[~all_right]] = True
    out["acc_string"] = float((~wrong_rows).float().mean())
    return out


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def lr_at(step: int, config: ToyTrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr_ratio·lr``
    at ``steps`` (:func:`~polyrot_utils.core.schedule.warmup_cosine_lr`)."""
    return warmup_cosine_lr(
        step,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.steps,
        min_lr_ratio=config.min_lr_ratio,
    )


def _model_from_file(path: Path, config: ToyTrainConfig):
    model = _fresh_model(config, device="cpu")
    load_parameter_dict(model, cache.load_safetensors(path))
    model.eval()
    return model.to(
        config.device if config.device != "auto" else default_device(), print_details=False
    )


def _fresh_model(config: ToyTrainConfig, device):
    model = build_toy(config.seed, init_scale=config.init_scale, device=device)
    if config.shared_io_from is not None:
        for key in config.shared_io_keys:
            p = dict(model.named_parameters())[key]
            p.requires_grad_(False)
    return model


def _history_path(path: Path) -> Path:
    return path / "history.json"


_REQUIRED = ("model.safetensors", "history.json")


def _legacy_check(path: Path) -> None:
    """Entries written before manifests: accept them only if every file loads."""
    history = json.loads(_history_path(path).read_text())
    cache.load_safetensors(path / "model.safetensors")
    for s in history["checkpoint_steps"]:
        cache.load_safetensors(path / f"ckpt_{int(s):06d}.safetensors")


def load_toy(config: ToyTrainConfig) -> TrainedToy:
    """Load a trained model from the cache; ``FileNotFoundError`` if it was never trained or its
    entry is damaged (the message names the file; :func:`train_toy` rebuilds it)."""
    config = config.resolved()
    path = cache.artifact_dir(CACHE_KIND, config)
    problem = cache.check_entry(path, _REQUIRED, _legacy_check)
    if problem == "absent":
        raise FileNotFoundError(
            f"no cached toy model for this config at {path}; call train_toy(config) first"
        )
    if problem is not None:
        raise FileNotFoundError(
            f"damaged cached toy model: {problem}; train_toy(config) rebuilds it"
        )
    history = json.loads(_history_path(path).read_text())
    ckpts = {int(s): path / f"ckpt_{int(s):06d}.safetensors" for s in history["checkpoint_steps"]}
    return TrainedToy(
        model=_model_from_file(path / "model.safetensors", config),
        config=config,
        history=history,
        checkpoints=ckpts,
        path=path,
        from_cache=True,
        train_seconds=float(history.get("train_seconds", float("nan"))),
    )


#: CPU threads used while training a toy model (restored afterwards). The model is so small that
#: one thread is fastest; on a shared 2-core machine two threads were ~9x slower (oversubscription).
TRAIN_THREADS = 1


def train_toy(
    config: ToyTrainConfig | None = None, *, force: bool = False, verbose: bool = False
) -> TrainedToy:
    """Train one toy model per ``config`` or load it from the cache (see the module docstring).

    On CPU, training runs with :data:`TRAIN_THREADS` torch threads (not part of the cache key).
    """
    config = (config or ToyTrainConfig()).resolved()
    trained: list[TrainedToy] = []

    def build(path: Path) -> None:
        prev_threads = torch.get_num_threads()
        if config.device == "cpu" and TRAIN_THREADS:
            torch.set_num_threads(TRAIN_THREADS)
        try:
            trained.append(_train(config, path, verbose))
        finally:
            torch.set_num_threads(prev_threads)

    # verified (size + SHA-256 manifest), rebuilt if damaged, built once under a file lock
    cache.cached_entry(
        CACHE_KIND, config, build, _REQUIRED, legacy_check=_legacy_check, force=force
    )
    return trained[0] if trained else load_toy(config)


def _train(config: ToyTrainConfig, path: Path, verbose: bool) -> TrainedToy:
    device = torch.device(config.device)
    t0 = time.perf_counter()
    model = _fresh_model(config, device)
    if config.shared_io_from is not None:
        source = train_toy(config.shared_io_from, verbose=verbose).model
        src = dict(source.named_parameters())
        dst = dict(model.named_parameters())
        bad = [k for k in config.shared_io_keys if k not in dst]
        if bad:
            raise ValueError(
                f"shared_io_keys {bad} are not parameters of the toy; valid: {sorted(dst)}"
            )
        with torch.no_grad():
            for key in config.shared_io_keys:
                dst[key].copy_(src[key].to(device))
    t0 = time.perf_counter()  # do not count the source model's training

    train = dyck.make_split(config.data, "train").to(device)
    heldout_full = dyck.make_split(config.data, "heldout")
    heldout = heldout_full.subset(slice(0, config.eval_size)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if config.optimizer == "adamw":
        opt = torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    gen = torch.Generator().manual_seed(config.effective_data_seed)
    order = torch.randperm(len(train), generator=gen)
    cursor = 0
    # 0, n_checkpoints evenly spaced inner steps, the final step
    ck_steps = checkpoint_steps(config.steps, config.n_checkpoints + 1, powers_of_two=False)
    ckpts: dict[int, Path] = {}
    hist: dict[str, Any] = {
        "step": [],
        "lr": [],
        "loss": [],
        **{f"acc_{k}": [] for k in dyck.READOUT_SIZES},
        "eval": [],
    }

    def save_ckpt(step: int) -> None:
        p = path / f"ckpt_{step:06d}.safetensors"
        cache.atomic_save_safetensors(p, parameter_dict(model), {"step": str(step)})
        ckpts[step] = p

    def run_eval(step: int) -> None:
        stats = evaluate_toy(model, heldout, batch_size=512)
        report(f"toy seed {config.seed}: step {step} of {config.steps}")
        hist["eval"].append({"step": step, **stats})
        model.train()
        if verbose:
            print(
                f"[seed {config.seed}] step {step}: heldout "
                + " ".join(f"{k}={v:.4f}" for k, v in stats.items() if k.startswith("acc"))
            )

    model.train()
    save_ckpt(0)
    for step in range(config.steps):
        if cursor + config.batch_size > len(train):
            order = torch.randperm(len(train), generator=gen)
            cursor = 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        batch = train.subset(idx.to(device))
        lr = lr_at(step, config)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(batch.tokens)
        loss, stats = readout_loss(logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        done = step + 1
        if step % config.log_every == 0 or done == config.steps:
            hist["step"].append(done)
            hist["lr"].append(lr)
            hist["loss"].append(float(loss.detach()))
            for k in dyck.READOUT_SIZES:
                hist[f"acc_{k}"].append(stats[f"acc_{k}"])
        if done % config.eval_every == 0 and done != config.steps:
            run_eval(done)
        if done in ck_steps:
            save_ckpt(done)
    model.eval()
    train_seconds = time.perf_counter() - t0
    run_eval(config.steps)
    hist["final"] = {
        "heldout": evaluate_toy(model, heldout_full.to(device)),
        "ood": evaluate_toy(model, dyck.make_split(config.data, "ood").to(device)),
    }
    hist["checkpoint_steps"] = sorted(ckpts)
    hist["train_seconds"] = train_seconds
    hist["steps_per_second"] = config.steps / train_seconds
    cache.atomic_save_safetensors(
        path / "model.safetensors", parameter_dict(model), {"steps": str(config.steps)}
    )
    cache.atomic_write_json(_history_path(path), hist)
    return TrainedToy(model, config, hist, ckpts, path, False, train_seconds)


def config_dict(config: ToyTrainConfig) -> dict:
    """The config as plain JSON types (for results files)."""
    return json.loads(json.dumps(asdict(config), default=str))
