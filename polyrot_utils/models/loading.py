"""Loading GPT-NeoX / Pythia models into TransformerLens, offline first.

One function, :func:`load_model`, serves both the real PolyPythia seeds
(``EleutherAI/pythia-70m-seed1`` … ``-seed9``) and the locally trained stand-ins: anything that
ends up as a directory written by transformers' ``save_pretrained`` for ``GPTNeoXForCausalLM``
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, optionally the tokenizer).

Which class we return, and why
------------------------------
A :class:`transformer_lens.HookedTransformer`, built from the local directory: transformers loads
the weights (``local_files_only=True``), TransformerLens' own GPT-NeoX converter
(``convert_neox_weights``) maps them, and ``load_and_process_state_dict`` installs them with the
processing chosen below. We do not call ``HookedTransformer.from_pretrained`` (it knows no
``pythia-70m-seed*`` names, rejects local paths, and fetches the official model's config from the
hub even when given ``hf_model``; with ``checkpoint_value`` it silently reloads the official
model). We do not return a ``TransformerBridge`` either: it wraps the HF module and is exact, but
its native hook names differ from ``HookedTransformer``'s unless compatibility mode is enabled,
and compatibility mode by default processes the weights. The rest of the book (the Dyck toy
models, :mod:`polyrot_utils.models.activations`, steering hooks) uses ``HookedTransformer`` hook
names,
so one class everywhere keeps one set of site names. Measured: log-probabilities match
``GPTNeoXForCausalLM`` to ~1e-6 in float32 (see ``tests/test_loading.py``).

Weight processing (``processing=``)
-----------------------------------
- ``"none"`` (default): the model's own weights, untouched. Residual-stream activations are the
  model's own basis — the object whose rotation between seeds the book measures — and every
  residual site equals HF's hidden state bit for bit in layout.
- ``"fold_ln"``: fold each LayerNorm's gain and bias into the weights that read from it. The
  residual stream (``hook_resid_*``) is unchanged; only the LayerNorm outputs become gain-free
  (so the ``unembed.hook_in`` site changes meaning). Offered for weight-space analyses.
- ``"tl_default"``: what ``HookedTransformer.from_pretrained`` does — fold_ln,
  ``center_writing_weights`` (projects every vector written to the residual stream off the
  all-ones axis — a projection, not a rotation, so the residual basis is no longer the model's),
  ``center_unembed`` and ``fold_value_biases``. Output logits are unchanged (up to a constant
  per position); residual activations are not. For comparison with TransformerLens users only.

Sites
-----
Pythia runs attention and MLP in parallel, so there is no ``hook_resid_mid``. The residual sites
the chapters need are :func:`pythia_sites`: ``blocks.0.hook_resid_pre``,
``blocks.{l}.hook_resid_post`` for every layer, and ``unembed.hook_in`` — the final LayerNorm's
full output (after gain and bias), which is what HF reports as the last hidden state (and what
the paper's code calls "layer-5 resid_post"). ``ln_final.hook_normalized`` is *before* the gain
and bias in TransformerLens, so it is not that site.

Offline behaviour
-----------------
A hub name is resolved from the local HF cache only (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
else ``~/.cache/huggingface/hub``; layout ``models--<org>--<name>/{refs,snapshots}``). Nothing is
downloaded unless ``allow_download=True`` (and ``HF_HUB_OFFLINE`` is not set); a missing model
raises :class:`ModelNotAvailableError` at once, naming the model and the ways forward.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from polyrot_utils.core.device import default_device

__all__ = [
    "PROCESSING_MODES",
    "PYTHIA_REVISIONS",
    "PYTHIA_SEED_NAMES",
    "ModelNotAvailableError",
    "check_pair",
    "describe",
    "hf_hub_cache_dir",
    "hooked_from_hf",
    "load_model",
    "pythia_sites",
    "quiet_hf_progress",
    "resolve_model_dir",
    "validate_revision",
]

#: Pythia's 154 checkpoint revisions: step0, step1, 2, 4, …, 512, step1000 … step143000.
PYTHIA_REVISIONS: tuple[str, ...] = (
    "step0",
    *tuple(f"step{2**i}" for i in range(10)),
    *tuple(f"step{k}" for k in range(1000, 143001, 1000)),
)
#: The nine PolyPythia 70m seeds.
PYTHIA_SEED_NAMES: tuple[str, ...] = tuple(f"EleutherAI/pythia-70m-seed{i}" for i in range(1, 10))
PROCESSING_MODES: tuple[str, ...] = ("none", "fold_ln", "tl_default")

_NEOX_ARCH = "GPTNeoXForCausalLM"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@contextlib.contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """Silence transformers' progress bars (weight loading / shard writing) inside the block."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class ModelNotAvailableError(FileNotFoundError):
    """The requested model is neither a local directory nor in the local HF cache."""


def hf_hub_cache_dir() -> Path:
    """The HF hub cache directory, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def validate_revision(name: str, revision: str | None) -> None:
    """Raise ``ValueError`` for a revision the Pythia suite does not have.

    Checked for ``EleutherAI/pythia-*`` names only: ``None``, ``"main"``, a 40-hex commit hash or
    one of :data:`PYTHIA_REVISIONS`. Other names accept any revision string.
    """
    if revision is None:
        return
    if not isinstance(revision, str) or not revision:
        raise ValueError(
            f"revision must be a non-empty string like 'step143000' or None, got {revision!r}"
        )
    if name.lower().startswith("eleutherai/pythia"):
        if revision == "main" or _HEX40.match(revision) or revision in PYTHIA_REVISIONS:
            return
        raise ValueError(
            f"revision {revision!r} is not a Pythia checkpoint of {name}: expected 'main', a "
            "commit hash, "
            "or one of step0, step1, step2, step4, …, step512, step1000, step2000, …, step143000"
        )


def _is_neox_dir(path: Path) -> bool:
    return (path / "config.json").exists()


def _has_weights(path: Path) -> bool:
    return (
        any((path / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))
        or any(path.glob("model-*.safetensors"))
        or any(path.glob("pytorch_model-*.bin"))
    )


def _not_available(
    name: str, revision: str | None, detail: str, allow_download: bool = False
) -> ModelNotAvailableError:
    rev = revision or "main"
    if allow_download:
        mode = "allow_download=True, but " + (
            "HF_HUB_OFFLINE is set" if _offline_env() else "the download failed"
        )
    else:
        mode = "allow_download=False" + (", HF_HUB_OFFLINE is set" if _offline_env() else "")
    if not allow_download:
        retry = "call load_model(..., allow_download=True) with network access"
    elif _offline_env():
        retry = "unset HF_HUB_OFFLINE and retry with network access"
    else:
        retry = "check the name and the network, then retry"
    local = (
        f"There is no local directory {name!r} (relative to {Path.cwd()}), and the "
        if not Path(name).expanduser().is_absolute()
        else f"There is no local directory {name!r}, and the "
    )
    return ModelNotAvailableError(
        f"model {name!r} (revision {rev!r}) is not available: {detail}. {local}weights are not in "
        "the local HF "
        f"cache {hf_hub_cache_dir()} ({mode}). To proceed: (1) if you meant a local model, pass "
        "the path of a "
        "directory written by save_pretrained (check the spelling and the current directory); or "
        "(2) on a machine "
        f"with network, populate an HF cache with `huggingface-cli download {name} --revision "
        f"{rev}` and point "
        f"HF_HOME at it; or (3) {retry}; or (4) use the "
        f"offline stand-ins (polyrot_utils.models.neox.standin_suite, use_hub=False)."
    )


def _local_revisions(path: Path) -> list[str]:
    """Subdirectories of a local model directory that hold a checkpoint (config + weights)."""
    return sorted(
        (p.name for p in path.iterdir() if p.is_dir() and _is_neox_dir(p) and _has_weights(p)),
        key=lambda n: (not n[4:].isdigit(), int(n[4:]) if n[4:].isdigit() else 0, n),
    )


def _damaged(file: Path, exc: BaseException) -> ValueError:
    """A model file that exists but does not load: name it and say how to remove it."""
    repo = next((p for p in file.parents if p.name.startswith("models--")), None)
    how = (
        f"delete the cached model (rm -r {repo}, or `huggingface-cli delete-cache`) and download "
        "it again"
        if repo is not None
        else f"write the model again with save_pretrained (or delete {file.parent})"
    )
    return ValueError(
        f"{file} is damaged and cannot be read ({type(exc).__name__}: {str(exc).strip()[:200]}); "
        f"{how}"
    )


def _from_hf_cache(name: str, revision: str | None) -> Path | None:
    repo = hf_hub_cache_dir() / ("models--" + name.replace("/", "--"))
    rev = revision or "main"
    if _HEX40.match(rev):
        commit = rev
    else:
        ref = repo / "refs" / rev
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snap = repo / "snapshots" / commit
    if _is_neox_dir(snap) and _has_weights(snap):
        return snap
    return None


def resolve_model_dir(
    name_or_path: str | os.PathLike, revision: str | None = None, *, allow_download: bool = False
) -> Path:
    """The local directory holding the model's ``config.json`` and weights.

    - an existing directory: itself, or ``<dir>/<revision>`` when ``revision`` names a
      subdirectory (the stand-ins keep checkpoints as ``step<k>/`` subdirectories, like revisions);
      with ``revision=None`` and no weights of its own, its highest ``step<k>/`` (like ``main``);
    - a hub name ``org/name``: its snapshot in the local HF cache (``refs/<revision or main>``);
      with ``allow_download=True`` (and network), ``huggingface_hub.snapshot_download``.

    Raises ``ModelNotAvailableError`` fast when nothing is found, ``ValueError`` for a bad revision.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if revision is None and not _has_weights(path):
            steps = sorted(
                (int(p.name[4:]), p)
                for p in path.glob("step*")
                if p.name[4:].isdigit() and _has_weights(p)
            )
            if steps:  # a run directory of step<k>/ checkpoints: its latest, like a hub's "main"
                path = steps[-1][1]
        if revision is not None:
            sub = path / revision
            if sub.is_dir():
                path = sub
            elif not (revision == "main" and _is_neox_dir(path)):
                # never fall back to the top-level weights: they would be labelled with this
                # revision
                have = _local_revisions(path)
                listed = (
                    ", ".join(have) if have else "(none: it holds no checkpoint subdirectories)"
                )
                raise ValueError(
                    f"revision {revision!r} does not exist in {path}: no subdirectory "
                    f"{revision!r}; its revisions are "
                    f"{listed}"
                    + (
                        "; pass revision=None (or 'main') for its top-level weights"
                        if _is_neox_dir(path)
                        else ""
                    )
                )
        if not _is_neox_dir(path):
            raise FileNotFoundError(
                f"{path} has no config.json; expected a directory written by save_pretrained "
                "(or pass revision= naming one of its checkpoint subdirectories)"
            )
        if not _has_weights(path):
            raise FileNotFoundError(
                f"{path} has a config.json but no model.safetensors / pytorch_model.bin"
            )
        return path
    name = str(name_or_path)
    if not _HUB_NAME.match(name):
        raise ModelNotAvailableError(
            f"{name!r} is neither an existing directory (relative to {Path.cwd()}) nor a hub name "
            "like "
            "'EleutherAI/pythia-70m-seed1'; pass the path of a directory written by "
            "save_pretrained, or a hub name"
        )
    validate_revision(name, revision)
    found = _from_hf_cache(name, revision)
    if found is not None:
        return found
    if not allow_download:
        raise _not_available(
            name, revision, "no snapshot with config.json and weights in the HF cache"
        )
    if _offline_env():
        raise _not_available(
            name,
            revision,
            "HF_HUB_OFFLINE is set, so nothing can be downloaded",
            allow_download=True,
        )
    from huggingface_hub import snapshot_download

    try:
        snap = snapshot_download(
            name,
            revision=revision or "main",
            cache_dir=str(hf_hub_cache_dir()),
            allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"],
        )
    except Exception as exc:  # network errors, missing repo, gated repo
        raise _not_available(
            name, revision, f"download failed ({type(exc).__name__}: {exc})", allow_download=True
        ) from exc
    return Path(snap)


def _read_hf_config(path: Path):
    from transformers import AutoConfig

    try:
        raw = json.loads((path / "config.json").read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path / "config.json", exc) from None
    archs = raw.get("architectures") or []
    if raw.get("model_type") != "gpt_neox" or (archs and _NEOX_ARCH not in archs):
        raise ValueError(
            f"{path} holds a {raw.get('model_type')!r} model ({archs}); load_model expects "
            "GPT-NeoX "
            f"({_NEOX_ARCH}, model_type 'gpt_neox'), the Pythia architecture"
        )
    return AutoConfig.from_pretrained(str(path), local_files_only=True)


def _rotary_pct(hf_config) -> float:
    rp = getattr(hf_config, "rope_parameters", None) or {}
    if isinstance(rp, dict) and "partial_rotary_factor" in rp:
        return float(rp["partial_rotary_factor"])
    return float(getattr(hf_config, "rotary_pct", getattr(hf_config, "partial_rotary_factor", 1.0)))


def _rope_theta(hf_config) -> float:
    rp = getattr(hf_config, "rope_parameters", None) or {}
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(getattr(hf_config, "rotary_emb_base", getattr(hf_config, "rope_theta", 10000)))


def _tl_config(hf_config, dtype: torch.dtype, device: torch.device, name: str):
    from transformer_lens import HookedTransformerConfig

    d_head = hf_config.hidden_size // hf_config.num_attention_heads
    return HookedTransformerConfig(
        model_name=name,
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=hf_config.num_attention_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=hf_config.max_position_embeddings,
        eps=hf_config.layer_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        use_attn_scale=True,
        use_local_attn=False,
        scale_attn_by_inverse_layer_idx=False,
        parallel_attn_mlp=bool(getattr(hf_config, "use_parallel_residual", True)),
        positional_embedding_type="rotary",
        rotary_dim=round(_rotary_pct(hf_config) * d_head),
        rotary_base=int(_rope_theta(hf_config)),
        rotary_adjacent_pairs=False,
        normalization_type="LN",
        default_prepend_bos=False,
        original_architecture=_NEOX_ARCH,
        dtype=dtype,
        device=str(device),
    )


def hooked_from_hf(
    hf_model,
    tokenizer=None,
    *,
    processing: str = "none",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    name: str = "gpt-neox",
):
    """Convert an in-memory ``GPTNeoXForCausalLM`` to a ``HookedTransformer`` (see module doc)."""
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions.neox import convert_neox_weights

    if processing not in PROCESSING_MODES:
        raise ValueError(f"processing must be one of {PROCESSING_MODES}, got {processing!r}")
    if type(hf_model).__name__ != _NEOX_ARCH:
        raise ValueError(f"hf_model must be a {_NEOX_ARCH}, got {type(hf_model).__name__}")
    dev = default_device(device)
    cfg = _tl_config(hf_model.config, dtype, dev, name)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    state = {k: v.detach().to(dtype) for k, v in convert_neox_weights(hf_model, cfg).items()}
    tl_default = processing == "tl_default"
    model.load_and_process_state_dict(
        state,
        fold_ln=processing in ("fold_ln", "tl_default"),
        center_writing_weights=tl_default,
        center_unembed=tl_default,
        fold_value_biases=tl_default,
        refactor_factored_attn_matrices=False,
    )
    model.to(dev, print_details=False)
    model.eval()
    return model


def load_model(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    processing: str = "none",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    allow_download: bool = False,
):
    """Load a GPT-NeoX model as a ``HookedTransformer`` whose residual stream is the model's own.

    Args:
        name_or_path: a hub name (``"EleutherAI/pythia-70m-seed3"``), resolved from the local HF
            cache; or a local directory written by ``save_pretrained`` (GPT-NeoX).
        revision: for hub names a Pythia revision (``"step3000"``; validated against
            :data:`PYTHIA_REVISIONS`) or ``"main"``/a commit hash; for a local directory, the name
            of
            a checkpoint subdirectory (``"step256"``). None: ``main`` / the directory itself.
        processing: ``"none"`` (default: untouched weights, the model's own residual basis),
            ``"fold_ln"`` or ``"tl_default"`` (see the module docstring for what each changes).
        device: None/"auto" = CUDA when present else CPU.
        dtype: parameter dtype (float32 default; comparisons across seeds want float32).
        allow_download: fetch a hub model that is not cached (needs network). Off by default so
            an offline machine fails at once instead of hanging.

    Returns:
        a ``transformer_lens.HookedTransformer`` in eval mode, with the model's tokenizer when its
        directory has one; ``model.polyrot_source`` records name, revision, directory, processing.

    Raises:
        ModelNotAvailableError: hub model not cached (and not downloadable).
        ValueError: unknown revision, unknown processing, not a GPT-NeoX model.
    """
    if processing not in PROCESSING_MODES:
        raise ValueError(f"processing must be one of {PROCESSING_MODES}, got {processing!r}")
    path = resolve_model_dir(name_or_path, revision, allow_download=allow_download)
    from transformers import (
        GPTNeoXForCausalLM,
    )  # after resolving: a missing model fails before this import

    hf_config = _read_hf_config(path)
    _check_weight_files(path)
    with quiet_hf_progress():  # no "Loading weights" bar per checkpoint
        try:
            hf = GPTNeoXForCausalLM.from_pretrained(
                str(path), config=hf_config, local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError, RuntimeError) as exc:  # e.g. a truncated pytorch_model.bin
            weights = next(
                (
                    path / f
                    for f in ("model.safetensors", "pytorch_model.bin")
                    if (path / f).exists()
                ),
                path,
            )
            raise _damaged(weights, exc) from None
    hf.eval()
    tokenizer = None
    if (path / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    label = str(name_or_path) if revision is None else f"{name_or_path}@{revision}"
    model = hooked_from_hf(
        hf, tokenizer, processing=processing, device=device, dtype=dtype, name=label
    )
    del hf
    model.polyrot_source = {
        "name": str(name_or_path),
        "revision": revision,
        "path": str(path),
        "processing": processing,
    }
    return model


def _check_weight_files(path: Path) -> None:
    """Open every safetensors file's header (cheap) and, for files in the HF cache whose blob is
    named by its SHA-256, compare size and hash: a truncated or corrupted file raises naming it."""
    from safetensors import safe_open

    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                keys = list(fh.keys())
                if keys:
                    fh.get_slice(keys[-1])  # its offsets lie past the end of a truncated file
            size = f.stat().st_size
            with open(f, "rb") as raw:
                header = int.from_bytes(raw.read(8), "little")
                meta = json.loads(raw.read(header))
            end = max(
                (int(v["data_offsets"][1]) for k, v in meta.items() if k != "__metadata__"),
                default=0,
            )
            if 8 + header + end != size:
                raise ValueError(f"file has {size} bytes, its header describes {8 + header + end}")
        except Exception as exc:
            raise _damaged(f, exc) from None
        real = f.resolve()
        if re.fullmatch(r"[0-9a-f]{64}", real.name):
            from polyrot_utils.core.cache import file_digest

            if file_digest(real)["sha256"] != real.name:
                raise _damaged(f, ValueError("its SHA-256 differs from the hub's (the blob name)"))


def pythia_sites(model) -> list[str]:
    """Hook names of the residual sites: layer-0 ``resid_pre``, every ``resid_post``, ln_final out.

    ``["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", …, "blocks.{L-1}.hook_resid_post",
    "unembed.hook_in"]`` — ``L + 2`` names, each an ``(batch, pos, d_model)`` activation; use them
    with ``model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])``. The last is the final
    LayerNorm's output (after gain and bias) = HF's last hidden state when ``processing="none"``.
    """
    n_layers = int(model.cfg.n_layers)
    sites = (
        ["blocks.0.hook_resid_pre"]
        + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
        + ["unembed.hook_in"]
    )
    missing = [s for s in sites if s not in model.hook_dict]
    if missing:
        raise ValueError(
            f"model has no hook points {missing}; expected a HookedTransformer from load_model"
        )
    return sites


def check_pair(model_a, model_b) -> None:
    """Raise ``ValueError`` unless two models can be compared site by site
    (same d_model, layers).
    """
    ca, cb = model_a.cfg, model_b.cfg
    if ca.d_model != cb.d_model:
        raise ValueError(
            f"model_a has d_model {ca.d_model} but model_b has {cb.d_model}; a rotation needs "
            "equal widths"
        )
    if ca.n_layers != cb.n_layers:
        raise ValueError(
            f"model_a has {ca.n_layers} layers but model_b has {cb.n_layers}; sites would not "
            "correspond"
        )
    if ca.d_vocab != cb.d_vocab:
        raise ValueError(
            f"model_a has vocabulary {ca.d_vocab} but model_b has {cb.d_vocab}; outputs would not "
            "correspond"
        )


def describe(model) -> dict[str, Any]:
    """Architecture summary of a loaded model (for tables): sizes and parameter count."""
    c = model.cfg
    return {
        "d_model": c.d_model,
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "d_head": c.d_head,
        "d_mlp": c.d_mlp,
        "d_vocab": c.d_vocab,
        "n_ctx": c.n_ctx,
        "rotary_dim": c.rotary_dim,
        "parallel_attn_mlp": c.parallel_attn_mlp,
        "act_fn": c.act_fn,
        "normalization": c.normalization_type,
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
