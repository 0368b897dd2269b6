"""Offline GPT-NeoX stand-ins for the PolyPythia seeds: build, train, checkpoint, evaluate.

The real ``EleutherAI/pythia-70m-seed1…9`` need a model hub. Offline (the default) the Pythia
chapters use stand-ins with Pythia-70m's architecture choices, trained here on the State of the
Union corpus (:mod:`polyrot_utils.models.corpus`) with a locally trained byte-level BPE
(:mod:`polyrot_utils.models.tokenizer`):

- ``transformers.GPTNeoXForCausalLM``: rotary on 25 % of each head (``rotary_pct=0.25``),
  parallel attention + MLP (``use_parallel_residual=True``), untied input/output embeddings,
  LayerNorm, GELU, biases everywhere, no dropout — Pythia-70m's config, smaller by default.
- AdamW as Pythia (betas 0.9/0.95, eps 1e-8, weight decay 0.01, 1 % linear warm-up then cosine
  decay to 10 % of the peak lr, gradient clipping at 1.0).
- Seeds differ only in ``seed``, which sets both the initialisation and the data order (as for
  the PolyPythias). Everything else, the tokenizer and the corpus split included, is shared.
- Checkpoints along training, each a ``save_pretrained`` directory (with the tokenizer) named
  ``step<k>`` like a Pythia revision, under ``<cache>/standin/<config hash>/``. They are loaded back
  through :func:`polyrot_utils.models.loading.load_model` — the same code path as the real seeds.

Negative controls: ``n_steps=0`` (an untrained model, init only) and ``shuffle_tokens=True``
(each training sequence's token positions permuted at random: unigram statistics, no order).

Use :func:`standin_suite` to get everything a Pythia chapter needs in one call.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.cache import artifact_dir, atomic_write_json, cached_entry
from polyrot_utils.core.device import default_device
from polyrot_utils.core.metrics import pairwise_agreement
from polyrot_utils.core.progress import report
from polyrot_utils.core.schedule import checkpoint_steps
from polyrot_utils.models.loading import ModelNotAvailableError, load_model, quiet_hf_progress
from polyrot_utils.models.tokenizer import (
    TokenizerConfig,
    encode_corpus,
    load_tokenizer,
    token_byte_lengths,
    train_tokenizer,
)

__all__ = [
    "StandinConfig",
    "Suite",
    "SuiteConfig",
    "build_standin",
    "checkpoint_losses",
    "evaluate_loss",
    "heldout_tokens",
    "pairwise_output_agreement",
    "sample_continuations",
    "standin_checkpoints",
    "standin_suite",
    "train_standin",
]


@dataclass(frozen=True)
class StandinConfig:
    """One stand-in training run. ``seed`` sets init and data order; nothing else differs by seed.

    Sizes default to the ``quick`` profile (d_model 128, 2 layers);
    :data:`polyrot_utils.tasks.pythia.suite.SUITE_PROFILES` has
    ``paper`` at Pythia-70m's dimensions (d_model 512, 6 layers, 8 heads, d_mlp 2048).
    ``device`` is not part of the cache key.
    """

    seed: int = 1
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 128
    vocab_size: int = 4096
    batch_size: int = 16
    n_steps: int = 150
    lr: float = 4e-3
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.01
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    shuffle_tokens: bool = False
    heldout_fraction: float = 0.1
    split_seed: int = 0
    train_fraction: float = 1.0
    device: str = field(default="auto", compare=False)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_mlp", "n_ctx", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.n_steps < 0:
            raise ValueError(f"n_steps must be >= 0 (0 = untrained control), got {self.n_steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")

    @property
    def tokenizer_config(self) -> TokenizerConfig:
        return TokenizerConfig(
            self.vocab_size,
            self.heldout_fraction,
            self.split_seed,
            train_fraction=self.train_fraction,
        )

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.n_ctx

    def key(self) -> dict[str, Any]:
        """The cache key: every field except ``device``."""
        d = asdict(self)
        d.pop("device")
        d["format"] = "standin_v1"
        return d


def _hf_config(cfg: StandinConfig):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        intermediate_size=cfg.d_mlp,
        hidden_act="gelu",
        # Pythia's rotary embedding: a quarter of each head, base 10000 (transformers 5 spelling;
        # the same config.json as the older rotary_pct=0.25, rotary_emb_base=10000)
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000,
            "partial_rotary_factor": 0.25,
        },
        max_position_embeddings=cfg.n_ctx,
        initializer_range=0.02,
        layer_norm_eps=1e-5,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        architectures=["GPTNeoXForCausalLM"],
    )


def build_standin(cfg: StandinConfig):
    """A freshly initialised ``GPTNeoXForCausalLM`` (init seeded by ``cfg.seed``, float32)."""
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(int(cfg.seed))
    model = GPTNeoXForCausalLM(_hf_config(cfg))
    return model.float()


def _run_dir(cfg: StandinConfig) -> Path:
    return artifact_dir("standin", cfg.key())


def _save_checkpoint(model, tokenizer, out: Path) -> None:

    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    with quiet_hf_progress():
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _lr_at(step: int, cfg: StandinConfig) -> float:
    warm = max(1, math.ceil(cfg.warmup_frac * cfg.n_steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, cfg.n_steps - warm)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    )


def _batches(cfg: StandinConfig, train: torch.Tensor):
    """Yield ``(batch_size, n_ctx)`` windows: non-overlapping chunks, reshuffled each epoch."""
    T = cfg.n_ctx
    n = train.numel() // T
    if n < cfg.batch_size:
        raise ValueError(
            f"the training stream ({train.numel()} tokens) is shorter than one batch of "
            f"{cfg.batch_size}x{T}"
        )
    seqs = train[: n * T].view(n, T)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - cfg.batch_size + 1, cfg.batch_size):
            x = seqs[perm[i : i + cfg.batch_size]]
            if cfg.shuffle_tokens:
                order = torch.argsort(torch.rand(x.shape, generator=gen), dim=1)
                x = torch.gather(x, 1, order)
            yield x


def train_standin(cfg: StandinConfig, *, verbose: bool = False) -> Path:
    """Train one stand-in (or find it in the cache); return the directory of its checkpoints.

    The directory holds ``step<k>/`` (``save_pretrained`` + tokenizer) for every step of
    :func:`~polyrot_utils.core.schedule.checkpoint_steps`, ``train_log.json`` (loss per step,
    timings) and ``done.json``. ``load_model(path, revision="step<k>")`` loads a checkpoint;
    ``load_model(path)`` the final one; :func:`standin_checkpoints` lists them.
    """

    def legacy_check(entry: Path) -> None:  # runs written before manifests: every file must load
        from safetensors import safe_open

        for s in json.loads((entry / "done.json").read_text())["steps"]:
            with safe_open(str(entry / f"step{s}" / "model.safetensors"), framework="pt") as fh:
                for key in fh:
                    fh.get_tensor(key)
            json.loads((entry / f"step{s}" / "config.json").read_text())

    # size + SHA-256 manifest checked on load; a damaged run is reported and retrained, once (file
    # lock)
    return cached_entry(
        "standin",
        cfg.key(),
        lambda run: _train_standin(cfg, run, verbose),
        ("done.json",),
        legacy_check=legacy_check,
    )


def _train_standin(cfg: StandinConfig, run: Path, verbose: bool) -> None:

    tok_dir = train_tokenizer(cfg.tokenizer_config)
    tokenizer = load_tokenizer(tok_dir)
    train = encode_corpus(cfg.tokenizer_config)["train"]
    dev = default_device(cfg.device)
    model = build_standin(cfg).to(dev)
    model.train()
    save_at = set(checkpoint_steps(cfg.n_steps))
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        betas=(cfg.betas[0], cfg.betas[1]),
        eps=1e-8,
        weight_decay=cfg.weight_decay,
    )
    losses: list[float] = []
    batches = _batches(cfg, train)
    t0 = time.perf_counter()
    for step in range(cfg.n_steps + 1):
        if step in save_at:
            model.eval()
            _save_checkpoint(model, tokenizer, run / f"step{step}")
            model.train()
        if step == cfg.n_steps:
            break
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        x = next(batches).to(dev)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            report(f"stand-in seed {cfg.seed}: step {step} of {cfg.n_steps}, loss {losses[-1]:.3f}")
        if verbose and (step % 20 == 0 or step == cfg.n_steps - 1):
            print(
                f"seed {cfg.seed} step {step} loss {losses[-1]:.3f} "
                f"({time.perf_counter() - t0:.1f}s)"
            )
    seconds = time.perf_counter() - t0
    atomic_write_json(
        run / "train_log.json",
        {
            "loss": losses,
            "tokens_per_step": cfg.tokens_per_step,
            "seconds": seconds,
            "tokens_per_second": cfg.n_steps * cfg.tokens_per_step / seconds
            if cfg.n_steps
            else None,
            "device": str(dev),
            "n_params": int(sum(p.numel() for p in model.parameters())),
        },
    )
    atomic_write_json(run / "done.json", {"steps": sorted(save_at), "device": str(dev)})


def standin_checkpoints(cfg: StandinConfig) -> dict[int, Path]:
    """``{step: checkpoint directory}`` of a trained stand-in (trains it if needed)."""
    run = train_standin(cfg)
    return {s: run / f"step{s}" for s in json.loads((run / "done.json").read_text())["steps"]}


def heldout_tokens(
    tok_cfg: TokenizerConfig | None = None,
    n_seqs: int = 64,
    seq_len: int = 128,
    *,
    tokenizer=None,
    heldout_ids: Any = None,
) -> torch.Tensor:
    """``(n_seqs, seq_len)`` int64 held-out windows: consecutive non-overlapping chunks of the
    held-out speeches' token stream (spread evenly over the stream when it is longer).

    With ``tokenizer`` given (e.g. the real Pythia tokenizer), the held-out speeches of
    ``tok_cfg``'s split are encoded with it instead of the stand-in tokenizer.
    """
    tok_cfg = tok_cfg or TokenizerConfig()
    if tokenizer is None:
        stream = encode_corpus(tok_cfg)["heldout"]
    else:
        from polyrot_utils.models.corpus import split_corpus

        texts = split_corpus(tok_cfg.heldout_fraction, tok_cfg.split_seed).heldout_texts()
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        ids: list[int] = []
        for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            ids.extend(enc)
            ids.append(eos)
        stream = torch.tensor(ids, dtype=torch.long)
    n_avail = stream.numel() // seq_len
    if n_avail < n_seqs:
        raise ValueError(
            f"held-out stream has only {n_avail} windows of {seq_len} tokens, asked for "
            f"n_seqs={n_seqs}"
        )
    chunks = stream[: n_avail * seq_len].view(n_avail, seq_len)
    idx = torch.linspace(0, n_avail - 1, n_seqs).round().long()
    return chunks[idx].clone()


@torch.no_grad()
def evaluate_loss(
    model, tokens: torch.Tensor, *, byte_lengths: np.ndarray | None = None, batch_size: int = 16
) -> dict[str, float]:
    """Mean next-token loss of a ``HookedTransformer`` on ``tokens`` ``(n, T)``.

    Returns ``{"nats_per_token", "bits_per_token", "bits_per_byte" (when byte_lengths given),
    "n_tokens"}``; bits per byte = total nats / ln 2 / total bytes of the predicted tokens.
    """
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be (n, T) with T >= 2, got shape {tuple(tokens.shape)}")
    dev = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, tokens.shape[0], batch_size):
        x = tokens[i : i + batch_size].to(dev)
        logp = model(x).float().log_softmax(-1)[:, :-1]
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)
        total += float(nll.double().sum())
        count += nll.numel()
    out = {
        "nats_per_token": total / count,
        "bits_per_token": total / count / math.log(2),
        "n_tokens": count,
    }
    if byte_lengths is not None:
        n_bytes = int(byte_lengths[tokens[:, 1:].cpu().numpy()].sum())
        out["bits_per_byte"] = total / math.log(2) / max(1, n_bytes)
    return out


@torch.no_grad()
def pairwise_output_agreement(
    models: dict[str, Any], tokens: torch.Tensor, batch_size: int = 16
) -> dict[str, Any]:
    """KL and top-1 agreement of every ordered pair of models on the same tokens ``(n, T)``.

    Uses :func:`polyrot_utils.core.metrics.pairwise_agreement` batch by batch
    (weighted by positions). Returns ``{"names": list, "kl": (m, m) mean KL(p_row || p_col) in
    nats per token, "top1": (m, m) fraction of positions whose argmax tokens agree}``;
    diagonals are 0 and 1.
    """

    names = list(models)
    m = len(names)
    kl = np.zeros((m, m))
    agree = np.zeros((m, m))
    n = 0
    for s in range(0, tokens.shape[0], batch_size):
        x = tokens[s : s + batch_size]
        logits = [models[k](x.to(next(models[k].parameters()).device)).float().cpu() for k in names]
        k = x.shape[0] * x.shape[1]
        kl_b, agree_b = pairwise_agreement(logits)
        kl += k * kl_b
        agree += k * agree_b
        n += k
    agree = agree / n
    np.fill_diagonal(agree, 1.0)
    return {"names": names, "kl": kl / n, "top1": agree}


def checkpoint_losses(
    suite: Suite,
    *,
    n_seqs: int = 16,
    steps: list[int] | None = None,
    device: str | None = None,
    skip_missing: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """Held-out loss of every seed's checkpoints, each loaded through ``load_model``.

    Returns ``{seed_name: [{"step", "tokens", "nats_per_token", "bits_per_byte"}, …]}`` on the
    first ``n_seqs`` held-out sequences. ``steps``: which steps (default all the suite has;
    for hub suites pass a subset — each revision is a separate download). ``skip_missing``: leave
    out checkpoints not available offline (``ModelNotAvailableError``) instead of raising.
    """
    import warnings

    held = suite.heldout_tokens[:n_seqs]
    out: dict[str, list[dict[str, float]]] = {}
    for name, ckpts in suite.checkpoints.items():
        tps = suite.info.get("tokens_per_step", {}).get(name, 0)
        rows = []
        for step in sorted(ckpts if steps is None else [s for s in steps if s in ckpts]):
            path, rev = ckpts[step]
            try:
                model = suite.load_checkpoint(path, rev, device=device)
            except ModelNotAvailableError as exc:
                if not skip_missing:
                    raise
                warnings.warn(f"skipping checkpoint {name}@{rev}: {exc}", stacklevel=2)
                continue
            res = evaluate_loss(model, held, byte_lengths=suite.byte_lengths)
            rows.append(
                {
                    "step": step,
                    "tokens": step * tps,
                    "nats_per_token": res["nats_per_token"],
                    "bits_per_byte": res["bits_per_byte"],
                }
            )
            del model
        out[name] = rows
    return out


@torch.no_grad()
def sample_continuations(
    model, prompts: list[str], *, max_new_tokens: int = 30, temperature: float = 0.8, seed: int = 0
) -> list[str]:
    """Sample continuations (temperature sampling, seeded) from a
    ``HookedTransformer`` with a tokenizer.
    """
    tok = model.tokenizer
    if tok is None:
        raise ValueError(
            "model has no tokenizer; load it with load_model from a directory with tokenizer.json"
        )
    gen = torch.Generator().manual_seed(int(seed))
    dev = next(model.parameters()).device
    outs = []
    for prompt in prompts:
        ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]], dtype=torch.long)
        for _ in range(max_new_tokens):
            logits = model(ids[:, -model.cfg.n_ctx :].to(dev))[0, -1].float().cpu()
            probs = torch.softmax(logits / max(temperature, 1e-6), -1)
            nxt = torch.multinomial(probs, 1, generator=gen)
            ids = torch.cat([ids, nxt[None]], dim=1)
        outs.append(tok.decode(ids[0].tolist()))
    return outs


# --------------------------------------------------------------------------------------------
# The suite: everything a Pythia chapter needs in one call.


@dataclass(frozen=True)
class SuiteConfig:
    """What :func:`standin_suite` builds. ``use_hub=True`` loads real Pythia seeds instead.

    - ``n_seeds`` stand-ins (seeds ``seed_offset + 1 … + n_seeds``) from ``base`` (a StandinConfig
      whose ``seed`` is ignored), plus controls ``untrained`` (n_steps=0) and ``shuffled``
      (``shuffle_tokens=True``), each with seed ``seed_offset + 1``.
    - ``use_hub``: load ``model_names`` (default the nine PolyPythias, the first ``n_seeds``) at
      ``revision`` through :func:`~polyrot_utils.models.loading.load_model` (HF cache; downloads
      only with
      ``allow_download``). Controls then: ``untrained`` = the first seed at ``step0``; no shuffled.
    """

    base: StandinConfig = StandinConfig()
    n_seeds: int = 4
    seed_offset: int = 0
    n_heldout_seqs: int = 64
    heldout_seq_len: int | None = None  # None: the stand-ins' n_ctx (hub: 128)
    controls: bool = True
    use_hub: bool = False
    model_names: tuple[str, ...] = ()
    revision: str | None = None
    allow_download: bool = False
    device: str = "auto"


@dataclass
class Suite:
    """Models of one suite, all ``HookedTransformer`` loaded through ``load_model``.

    - ``models``: ``{seed_name: model}`` (``"seed1"``, …);
    - ``checkpoints``: ``{seed_name: {step: (path, revision)}}`` — load with
      ``load_model(path, revision=revision)`` (stand-ins: the run directory and ``"step<k>"``;
      hub: the hub name and the revision);
    - ``heldout_tokens``: ``(n_heldout_seqs, heldout_seq_len)`` int64, held-out speeches;
    - ``controls``: ``{"untrained": model, "shuffled": model}`` (hub: untrained = step0);
    - ``tokenizer``, ``byte_lengths`` (bytes per token id), ``configs``, ``train_logs``, ``info``.
    """

    models: dict[str, Any]
    checkpoints: dict[str, dict[int, tuple[str, str | None]]]
    heldout_tokens: torch.Tensor
    controls: dict[str, Any]
    tokenizer: Any
    byte_lengths: np.ndarray
    configs: dict[str, Any]
    train_logs: dict[str, dict[str, Any]]
    info: dict[str, Any]

    def load_checkpoint(
        self, path: str, revision: str | None, device: str | torch.device | None = "auto"
    ) -> Any:
        """The model at one ``checkpoints`` entry ``(path, revision)``, through ``load_model``;
        a hub suite downloads only if it was built with ``allow_download``
        (raises ``ModelNotAvailableError`` otherwise when the checkpoint is not cached)."""
        return load_model(
            path,
            revision=revision,
            device=device,
            allow_download=self.info.get("allow_download", False),
        )


def _step_of(revision: str) -> int:
    return int(revision.removeprefix("step"))


def standin_suite(cfg: SuiteConfig = SuiteConfig(), *, verbose: bool = False) -> Suite:
    """Train (or load from the cache) the seeds and controls; return them loaded,
    with held-out text.
    """
    from polyrot_utils.models.loading import PYTHIA_REVISIONS, PYTHIA_SEED_NAMES, load_model

    if cfg.n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {cfg.n_seeds}")
    tok_cfg = cfg.base.tokenizer_config
    ckpts: dict[str, dict[int, tuple[str, str | None]]]  # {model: {step: (path, revision)}}
    if cfg.use_hub:
        names = list(cfg.model_names) or list(PYTHIA_SEED_NAMES)
        names = names[: cfg.n_seeds]
        models = {
            n.rsplit("-", 1)[-1]: load_model(
                n, revision=cfg.revision, device=cfg.device, allow_download=cfg.allow_download
            )
            for n in names
        }
        first = next(iter(models.values()))
        tokenizer = first.tokenizer
        controls = {}
        if cfg.controls:
            from polyrot_utils.models.loading import ModelNotAvailableError

            try:  # Pythia's step0 is the initialisation: the untrained control, if cached
                controls["untrained"] = load_model(
                    names[0], revision="step0", device=cfg.device, allow_download=cfg.allow_download
                )
            except ModelNotAvailableError as exc:
                import warnings

                warnings.warn(f"no untrained control: {exc}", stacklevel=2)
        ckpts = {
            n.rsplit("-", 1)[-1]: {_step_of(r): (n, r) for r in PYTHIA_REVISIONS} for n in names
        }
        held = heldout_tokens(
            tok_cfg, cfg.n_heldout_seqs, cfg.heldout_seq_len or 128, tokenizer=tokenizer
        )
        configs: dict[str, Any] = {
            k: {"hub_name": n, "revision": cfg.revision} for k, n in zip(models, names, strict=True)
        }
        logs: dict[str, dict[str, Any]] = {}
        info: dict[str, Any] = {
            "source": "hub",
            "names": names,
            "revision": cfg.revision,
            "allow_download": cfg.allow_download,
            # Pythia: 1024 sequences x 2048 tokens per optimiser step
            "tokens_per_step": {k: 2_097_152 for k in models},
        }
    else:
        models, controls, ckpts, configs, logs, info = _standin_runs(cfg, verbose=verbose)
        tokenizer = load_tokenizer(train_tokenizer(tok_cfg))
        held = heldout_tokens(tok_cfg, cfg.n_heldout_seqs, cfg.heldout_seq_len or cfg.base.n_ctx)
    return Suite(
        models=models,
        checkpoints=ckpts,
        heldout_tokens=held,
        controls=controls,
        tokenizer=tokenizer,
        byte_lengths=token_byte_lengths(tokenizer),
        configs=configs,
        train_logs=logs,
        info=info,
    )


def _standin_runs(
    cfg: SuiteConfig, *, verbose: bool
) -> tuple[
    dict[str, Any],
    dict[str, Any],
    dict[str, dict[int, tuple[str, str | None]]],
    dict[str, Any],
    dict[str, dict[str, Any]],
    dict[str, Any],
]:
    """Train (or find in the cache) the stand-in seeds and controls of ``cfg``; return
    :class:`Suite`'s ``models, controls, checkpoints, configs, train_logs, info``."""
    base = replace(cfg.base, device=cfg.device)
    run_cfgs = {
        f"seed{cfg.seed_offset + i}": replace(base, seed=cfg.seed_offset + i)
        for i in range(1, cfg.n_seeds + 1)
    }
    control_cfgs: dict[str, StandinConfig] = {}
    if cfg.controls:
        s0 = cfg.seed_offset + 1
        control_cfgs = {
            "untrained": replace(base, seed=s0, n_steps=0),
            "shuffled": replace(base, seed=s0, shuffle_tokens=True),
        }
    runs: dict[str, Path] = {}
    for name, rc in {**run_cfgs, **control_cfgs}.items():
        if verbose:
            print(
                f"{name}: {'cached' if (_run_dir(rc) / 'done.json').exists() else 'training'} in "
                f"{_run_dir(rc)}"
            )
        runs[name] = train_standin(rc, verbose=verbose)

    def final(name: str, rc: StandinConfig):
        return load_model(runs[name], revision=f"step{rc.n_steps}", device=cfg.device)

    models = {n: final(n, rc) for n, rc in run_cfgs.items()}
    controls = {n: final(n, rc) for n, rc in control_cfgs.items()}
    ckpts: dict[str, dict[int, tuple[str, str | None]]] = {
        n: {
            s: (str(runs[n]), f"step{s}")
            for s in json.loads((runs[n] / "done.json").read_text())["steps"]
        }
        for n in run_cfgs
    }
    logs: dict[str, dict[str, Any]] = {
        n: json.loads((runs[n] / "train_log.json").read_text()) for n in runs
    }
    configs: dict[str, Any] = {n: rc for n, rc in {**run_cfgs, **control_cfgs}.items()}
    info: dict[str, Any] = {
        "source": "standin",
        "runs": {n: str(p) for n, p in runs.items()},
        "tokens_per_step": {n: rc.tokens_per_step for n, rc in run_cfgs.items()},
    }
    return models, controls, ckpts, configs, logs, info
