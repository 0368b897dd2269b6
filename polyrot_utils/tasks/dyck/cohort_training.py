"""Train several toy models at once on the paper's task, to the paper's convergence criterion.

All members (seeds of one or several cohorts) step together as one
:mod:`polyrot_utils.tasks.dyck.ensemble`
— each on its own fresh batch every step (``dyck_paper.batch_rng(data_seed)``), each with its
own step count and learning-rate schedule. A member stops when :class:`~polyrot_utils.
convergence.ConvergenceRule` says so and leaves the ensemble. A Cohort A follower (a member
with ``shared_from``) joins when its source member has stopped: it starts from
``build_toy(seed)`` with the source's final ``shared_io_keys`` tensors copied in and frozen
(the semantics of :mod:`polyrot_utils.tasks.dyck.cohorts`' ``"shared_io"`` kind).

Same seed → same initial weights as :func:`polyrot_utils.tasks.dyck.toy.build_toy` (and therefore as
:func:`polyrot_utils.tasks.dyck.training.train_toy`). Learning rate: linear warm-up over
``warmup_steps`` (``lr·(step+1)/warmup``) then cosine to ``min_lr_ratio·lr`` at
``rule.max_steps`` (the paper schedules over its cap too). On CUDA the forward runs under bf16
autocast (fp32 weights and optimiser state, as the paper).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from polyrot_utils.core import cache
from polyrot_utils.core.progress import report
from polyrot_utils.core.schedule import warmup_cosine_lr
from polyrot_utils.tasks.dyck import paper_task as dyck_paper
from polyrot_utils.tasks.dyck.convergence import ConvergenceRule, MemberProgress, min_accuracy
from polyrot_utils.tasks.dyck.ensemble import (
    EnsembleOptimizer,
    StackedToy,
    ensemble_logits,
    member_losses,
    stack_models,
)
from polyrot_utils.tasks.dyck.language import READOUT_SIZES
from polyrot_utils.tasks.dyck.toy import SHARED_IO_KEYS, build_toy

__all__ = [
    "SHARED_IO_KEYS",
    "EnsembleRecipe",
    "EnsembleRun",
    "MemberSpec",
    "ensemble_accuracy",
    "lr_at",
    "paper_cohort_members",
    "train_members",
]


@dataclass(frozen=True)
class EnsembleRecipe:
    """The training recipe shared by every member (hashable; stored in manifests)."""

    task: dyck_paper.PaperTaskConfig = field(
        default_factory=lambda: dyck_paper.PaperTaskConfig(min_len=2, max_len=12)
    )
    batch_size: int = 128
    lr: float = 1e-2
    warmup_steps: int = 200
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    init_scale: float = 0.02
    rule: ConvergenceRule = field(
        default_factory=lambda: ConvergenceRule(eval_every=250, extra_steps=1_000, max_steps=8_000)
    )
    eval_seed: int = 0
    shared_io_keys: tuple[str, ...] = SHARED_IO_KEYS

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(
                f"need batch_size >= 1, lr > 0, warmup_steps >= 0; got {self.batch_size}, "
                f"{self.lr}, {self.warmup_steps}"
            )
        if self.warmup_steps > self.rule.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be <= rule.max_steps "
                f"({self.rule.max_steps})"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["task"] = self.task.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EnsembleRecipe:
        task = {
            k: v
            for k, v in d["task"].items()
            if k in dyck_paper.PaperTaskConfig.__dataclass_fields__
        }
        rest: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in d.items()
            if k not in ("task", "rule")
        }
        return cls(
            task=dyck_paper.PaperTaskConfig(**task), rule=ConvergenceRule(**d["rule"]), **rest
        )


@dataclass(frozen=True)
class MemberSpec:
    """One model to train: its ``cohort`` label, init ``seed``, ``data_seed`` (default: ``seed``)
    and, for a Cohort A follower, ``shared_from = (cohort, seed)`` of its source member."""

    cohort: str
    seed: int
    data_seed: int | None = None
    shared_from: tuple[str, int] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.cohort, int(self.seed))


def paper_cohort_members(n_seeds: int = 5) -> list[MemberSpec]:
    """Cohort A (``"shared_io"``, seeds 0..n-1, seed 0 the I/O source) and Cohort B
    (``"independent"``, seeds 100..) — the paper's counts at ``n_seeds=5``."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    a = [MemberSpec("shared_io", 0)] + [
        MemberSpec("shared_io", s, shared_from=("shared_io", 0)) for s in range(1, n_seeds)
    ]
    b = [MemberSpec("independent", 100 + i) for i in range(n_seeds)]
    return a + b


def lr_at(step: int, recipe: EnsembleRecipe) -> float:
    """Learning rate of the update that follows ``step`` completed updates
    (:func:`~polyrot_utils.core.schedule.warmup_cosine_lr`, decaying until ``rule.max_steps``)."""
    return warmup_cosine_lr(
        step,
        lr=recipe.lr,
        warmup_steps=recipe.warmup_steps,
        total_steps=recipe.rule.max_steps,
        min_lr_ratio=recipe.min_lr_ratio,
    )


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def ensemble_accuracy(
    params: dict[str, torch.Tensor],
    sets: dict[str, dyck_paper.DyckSplit],
    chunk: int = 1024,
    n_layers: int = 2,
    n_heads: int = 4,
    eps: float = 1e-5,
) -> list[dict[str, dict[str, float]]]:
    """Per-member ``{split: {readout: accuracy}}`` of the stacked ``params`` on shared ``sets``
    (per-token accuracy over non-PAD positions)."""
    E = next(iter(params.values())).shape[0]
    dev = next(iter(params.values())).device
    out: list[dict[str, Any]] = [{} for _ in range(E)]
    for name, split in sets.items():
        right = {r: torch.zeros(E, dtype=torch.float64, device=dev) for r in READOUT_SIZES}
        total = 0
        for b in split.batches(chunk):
            b = b.to(dev)
            with _autocast(dev):
                lg = ensemble_logits(
                    params, b.tokens[None].expand(E, -1, -1), n_layers, n_heads, eps
                ).float()
            start = 0
            for r, size in READOUT_SIZES.items():
                pred = lg[..., start : start + size].argmax(-1)
                start += size
                right[r] += ((pred == b.labels[r][None]) & b.mask[None]).sum((1, 2)).double()
            total += int(b.mask.sum())
        for e in range(E):
            out[e][name] = {r: float(right[r][e] / total) for r in READOUT_SIZES}
    return out


@dataclass
class EnsembleRun:
    """What :func:`train_members` returns: each member's final weights (``{name: tensor}``),
    its convergence record, and the accuracy-vs-tokens curve (one row per evaluation)."""

    states: dict[tuple[str, int], dict[str, torch.Tensor]]
    records: list[dict]
    curve: list[dict]
    seconds: float
    recipe: EnsembleRecipe


class _Batches:
    """Fresh training batches of one member: numpy sampler on CPU (reproducible strings per
    ``data_seed``), torch sampler on accelerators (``chunk`` steps drawn per call; same
    distribution, torch's random stream). ``next()`` -> ``(tokens, labels, mask)`` ``(B, W)``."""

    def __init__(
        self,
        data_seed: int,
        recipe: EnsembleRecipe,
        device: torch.device,
        chunk: int = 64,
        use_torch: bool | None = None,
    ) -> None:
        self.recipe, self.device, self.chunk = recipe, device, chunk
        self.use_torch = device.type != "cpu" if use_torch is None else use_torch
        if not self.use_torch:
            self.rng = dyck_paper.batch_rng(data_seed)
        else:
            self.gen = torch.Generator(device=device).manual_seed(int(data_seed))
            self.buffer: list = []

    def next(self):
        B = self.recipe.batch_size
        if not self.use_torch:
            b = dyck_paper.sample_batch(B, self.recipe.task, self.rng)
            return b.tokens, b.labels, b.mask
        if not self.buffer:
            tok = dyck_paper.sample_tokens_torch(B * self.chunk, self.recipe.task, self.gen)
            lab = dyck_paper.label_paper_torch(tok)
            self.buffer = [
                (
                    tok[i * B : (i + 1) * B],
                    {r: lab[r][i * B : (i + 1) * B] for r in READOUT_SIZES},
                    lab["mask"][i * B : (i + 1) * B],
                )
                for i in range(self.chunk)
            ][::-1]
        return self.buffer.pop()


def _build(
    specs: list[MemberSpec], recipe: EnsembleRecipe, sources: dict, device: torch.device
) -> StackedToy:
    models: list[Any] = []
    frozen: dict[str, list[Any]] = {k: [] for k in recipe.shared_io_keys}
    for sp in specs:
        m = build_toy(sp.seed, init_scale=recipe.init_scale, device="cpu")
        if sp.shared_from is not None:
            src = sources[tuple(sp.shared_from)]
            named = dict(m.named_parameters())
            with torch.no_grad():
                for k in recipe.shared_io_keys:
                    named[k].copy_(src[k])
        for k in recipe.shared_io_keys:
            frozen[k].append(sp.shared_from is not None)
        models.append(m)
    return stack_models(models, [sp.seed for sp in specs], frozen=frozen, device=device)


def train_members(
    specs: list[MemberSpec],
    recipe: EnsembleRecipe | None = None,
    *,
    device: str = "cpu",
    threads: int | None = 1,
    verbose: bool = False,
    on_eval: Callable[[MemberSpec, int, dict[str, torch.Tensor]], None] | None = None,
    on_stop: Callable[[MemberSpec, dict, dict[str, torch.Tensor]], None] | None = None,
    max_seconds: float | None = None,
    sources: dict[tuple[str, int], dict[str, torch.Tensor]] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> EnsembleRun:
    """Train ``specs`` as one ensemble to ``recipe.rule`` (see module docstring).

    ``threads``: torch CPU threads while training (restored afterwards; ``None`` leaves them).
    Default 1: on the shared 2-core build machine, 2 threads measured ~7x slower per step than 1
    (oversubscription under load); pass 2 on an idle machine (see ``bench/bench_training.py``).
    ``on_eval(spec, steps_done, state)`` is called at every evaluation (e.g. to keep checkpoints),
    ``on_stop(spec, record, state)`` when a member stops. ``max_seconds``: a wall-clock budget;
    when it runs out every active member stops where it is (its record says whether it had
    converged) and pending followers are not trained (they get no record). ``sources``:
    final weights of source members trained earlier (``{(cohort, seed): state}``), so that
    followers whose source is not among ``specs`` can be trained (resuming a cohort).
    ``checkpoint``: a path prefix; after every evaluation the whole training state (weights,
    AdamW moments, per-member steps, progress, sampler RNG states, records, curve, finished
    members) is written to ``<checkpoint>.safetensors`` + ``<checkpoint>.json``; with ``resume``
    and those files present, training continues from them exactly (same result as without the
    interruption, on CPU). CPU (numpy sampler) only.
    """
    if checkpoint is not None and torch.device(device).type != "cpu":
        raise ValueError("checkpoint/resume is supported on device='cpu' only (numpy sampler)")
    recipe = recipe or EnsembleRecipe()
    keys = [sp.key for sp in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"specs must have distinct (cohort, seed), got {keys}")
    for sp in specs:
        if (
            sp.shared_from is not None
            and tuple(sp.shared_from) not in keys
            and tuple(sp.shared_from) not in (sources or {})
        ):
            raise ValueError(
                f"{sp.key}: shared_from {sp.shared_from} is neither one of the specs nor in sources"
            )
    dev = torch.device(device)
    prev = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _train(
            specs,
            recipe,
            dev,
            verbose,
            on_eval,
            on_stop,
            max_seconds,
            dict(sources or {}),
            None if checkpoint is None else Path(checkpoint),
            resume,
        )
    finally:
        torch.set_num_threads(prev)


def _key_str(key: tuple) -> str:
    return f"{key[0]}/{int(key[1])}"


def _spec_json(sp: MemberSpec) -> list:
    return [sp.cohort, int(sp.seed), sp.data_seed, list(sp.shared_from) if sp.shared_from else None]


def _spec_from_json(x: list) -> MemberSpec:
    return MemberSpec(x[0], int(x[1]), x[2], tuple(x[3]) if x[3] else None)


def _train(
    specs,
    recipe: EnsembleRecipe,
    dev: torch.device,
    verbose: bool,
    on_eval,
    on_stop,
    max_seconds,
    sources: dict,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> EnsembleRun:
    rule = recipe.rule
    task_name = "paper"
    sets = {
        k: v.to(dev)
        for k, v in dyck_paper.eval_sets(recipe.task, rule.eval_size, recipe.eval_seed).items()
    }
    t0 = time.perf_counter()
    states: dict[tuple, dict[str, torch.Tensor]] = {tuple(k): v for k, v in sources.items()}
    pending = [
        sp for sp in specs if sp.shared_from is not None and tuple(sp.shared_from) not in states
    ]
    active: list[MemberSpec] = []
    progress: dict[tuple, MemberProgress] = {}
    rngs: dict[tuple, _Batches] = {}
    records: list[dict] = []
    curve: list[dict] = []
    opt: EnsembleOptimizer | None = None

    def join(new: list[MemberSpec]) -> None:
        nonlocal opt
        st = _build(new, recipe, states, dev)
        if opt is None:
            opt = EnsembleOptimizer(
                st, betas=recipe.betas, weight_decay=recipe.weight_decay, grad_clip=recipe.grad_clip
            )
        else:
            opt.add_members(st)
        for sp in new:
            active.append(sp)
            progress[sp.key] = MemberProgress(sp.cohort, sp.seed, task_name)
            rngs[sp.key] = _Batches(sp.seed if sp.data_seed is None else sp.data_seed, recipe, dev)

    source_keys = set(states)

    def save_checkpoint(elapsed: float) -> None:
        if checkpoint is None:
            return
        st = opt.stacked if opt is not None else None
        tensors: dict[str, torch.Tensor] = {}
        if opt is not None and st is not None:
            tensors.update({f"p/{k}": v.detach().cpu() for k, v in st.params.items()})
            tensors.update({f"m/{k}": v.cpu() for k, v in opt.m.items()})
            tensors.update({f"v/{k}": v.cpu() for k, v in opt.v.items()})
            tensors["steps"] = opt.steps.cpu()
        for key, state in states.items():
            if key not in source_keys:
                tensors.update({f"done/{_key_str(key)}/{k}": v for k, v in state.items()})
        meta = {
            "active": [_spec_json(sp) for sp in active],
            "pending": [_spec_json(sp) for sp in pending],
            "progress": {
                _key_str(sp.key): {
                    k: getattr(progress[sp.key], k)
                    for k in ("steps_done", "tokens_done", "first_pass", "stop_step")
                }
                for sp in active
            },
            "rng": {_key_str(sp.key): rngs[sp.key].rng.bit_generator.state for sp in active},
            "frozen": {k: v.tolist() for k, v in st.frozen.items()} if st is not None else {},
            "done": [_key_str(k) for k in states if k not in source_keys],
            "records": records,
            "curve": curve,
            "elapsed": elapsed,
            "recipe": recipe.to_dict(),
        }
        cache.atomic_save_safetensors(
            checkpoint.with_suffix(".safetensors"), {k: v.contiguous() for k, v in tensors.items()}
        )
        cache.atomic_write_json(checkpoint.with_suffix(".json"), meta)

    if resume and checkpoint is not None and checkpoint.with_suffix(".json").exists():
        meta = json.loads(checkpoint.with_suffix(".json").read_text())
        if EnsembleRecipe.from_dict(meta["recipe"]) != recipe:
            raise ValueError(f"{checkpoint}: the checkpoint was written with a different recipe")
        tens = cache.load_safetensors(checkpoint.with_suffix(".safetensors"))
        for ks in meta["done"]:
            c, sd = ks.split("/")
            pre = f"done/{ks}/"
            states[(c, int(sd))] = {k[len(pre) :]: v for k, v in tens.items() if k.startswith(pre)}
        records, curve = meta["records"], meta["curve"]
        pending = [_spec_from_json(x) for x in meta["pending"]]
        active = [_spec_from_json(x) for x in meta["active"]]
        if active:
            template = build_toy(0)
            st = StackedToy(
                params={k[2:]: v.to(dev) for k, v in tens.items() if k.startswith("p/")},
                seeds=tuple(sp.seed for sp in active),
                trainable=tuple(k for k, p in template.named_parameters() if p.requires_grad),
                frozen={k: torch.tensor(v, device=dev) for k, v in meta["frozen"].items()},
                n_layers=template.cfg.n_layers,
                n_heads=template.cfg.n_heads,
                eps=float(template.cfg.eps),
            )
            opt = EnsembleOptimizer(
                st, betas=recipe.betas, weight_decay=recipe.weight_decay, grad_clip=recipe.grad_clip
            )
            opt.m = {k: tens[f"m/{k}"].to(dev) for k in opt.m}
            opt.v = {k: tens[f"v/{k}"].to(dev) for k in opt.v}
            opt.steps = tens["steps"].to(dev)
        for sp in active:
            pr = MemberProgress(sp.cohort, sp.seed, task_name)
            for k, v in meta["progress"][_key_str(sp.key)].items():
                setattr(pr, k, v)
            progress[sp.key] = pr
            rngs[sp.key] = _Batches(sp.seed if sp.data_seed is None else sp.data_seed, recipe, dev)
            rngs[sp.key].rng.bit_generator.state = meta["rng"][_key_str(sp.key)]
        t0 = time.perf_counter() - float(meta["elapsed"])
        ready = [sp for sp in pending if tuple(sp.shared_from) in states]
        pending = [sp for sp in pending if tuple(sp.shared_from) not in states]
        if ready:
            join(ready)
    else:
        join([sp for sp in specs if sp.shared_from is None or tuple(sp.shared_from) in states])
    while active:
        if opt is None:
            raise RuntimeError("members are active but no optimiser holds them (internal error)")
        st = opt.stacked
        batches = [rngs[sp.key].next() for sp in active]
        W = max(b[0].shape[1] for b in batches)

        def pad(t: torch.Tensor, width: int = W) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, width - t.shape[1]))

        tokens = torch.stack([pad(b[0]) for b in batches]).to(dev)
        labels = {r: torch.stack([pad(b[1][r]) for b in batches]).to(dev) for r in READOUT_SIZES}
        mask = torch.stack([pad(b[2]) for b in batches]).to(dev)
        lr = torch.tensor(
            [lr_at(progress[sp.key].steps_done, recipe) for sp in active],
            dtype=torch.float64,
            device=dev,
        )
        with _autocast(dev):
            logits = ensemble_logits(st.params, tokens, st.n_layers, st.n_heads, st.eps)
        loss, _ = member_losses(logits, labels, mask)
        opt.zero_grad()
        loss.sum().backward()
        opt.step(lr)
        n_tok = mask.sum((1, 2)).tolist()
        due, done = [], []
        out_of_time = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if out_of_time:
            pending = []
        for e, sp in enumerate(active):
            pr = progress[sp.key]
            pr.steps_done += 1
            pr.tokens_done += int(n_tok[e])
            if pr.finished(rule) or out_of_time:
                done.append(e)
            elif pr.first_pass is None and pr.steps_done % rule.eval_every == 0:
                due.append(e)
        idx = due + done
        if idx:
            sub = {k: v.detach()[idx] for k, v in st.params.items()}
            accs = ensemble_accuracy(
                sub, sets, n_layers=st.n_layers, n_heads=st.n_heads, eps=st.eps
            )
            now = time.perf_counter() - t0
            for j, e in enumerate(idx):
                sp, pr = active[e], progress[active[e].key]
                curve.append(
                    {
                        "cohort": sp.cohort,
                        "seed": int(sp.seed),
                        "step": pr.steps_done,
                        "tokens": pr.tokens_done,
                        "seconds": round(now, 2),
                        "min_accuracy": min_accuracy(accs[j]),
                        "accuracy": accs[j],
                    }
                )
                if e in due:
                    pr.observe(accs[j], now, rule)
                    if pr.finished(rule):  # extra_steps == 0 or at the cap
                        done.append(e)
                if on_eval is not None:
                    on_eval(sp, pr.steps_done, st.member_state(e))
                report(
                    f"{sp.cohort}/{sp.seed}: step {pr.steps_done}, min accuracy "
                    f"{min_accuracy(accs[j]):.5f}"
                )
                if verbose:
                    print(
                        f"[{now:7.1f}s] {sp.cohort}/{sp.seed} step {pr.steps_done} tokens "
                        f"{pr.tokens_done:,} "
                        f"min acc {min_accuracy(accs[j]):.5f}" + (" (stop)" if e in done else ""),
                        flush=True,
                    )
                if e in done:
                    states[sp.key] = st.member_state(e)
                    records.append(pr.record(accs[j], now))
                    if on_stop is not None:
                        on_stop(sp, records[-1], states[sp.key])
        if done:
            keep = [e for e in range(len(active)) if e not in set(done)]
            finished = {active[e].key for e in done}
            active = [active[e] for e in keep]
            ready = [sp for sp in pending if tuple(sp.shared_from) in states]
            pending = [sp for sp in pending if tuple(sp.shared_from) not in states]
            if keep:
                opt.keep(keep)
            else:
                opt = None
            if ready:
                join(ready)
            del finished
        if idx and checkpoint is not None:
            save_checkpoint(time.perf_counter() - t0)
    keys = [sp.key for sp in specs]
    order = {k: i for i, k in enumerate(keys)}
    records.sort(key=lambda r: order[(r["cohort"], r["seed"])])
    return EnsembleRun(
        states={k: states[k] for k in keys if k in states},
        records=records,
        curve=curve,
        seconds=time.perf_counter() - t0,
        recipe=recipe,
    )
