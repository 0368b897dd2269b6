"""A byte-level BPE tokenizer trained locally on the offline corpus, cached.

Pythia's tokenizer is a byte-level BPE (GPT-NeoX-20B's, 50,277 tokens) that is not available
offline, so the stand-ins use their own: the same algorithm (``tokenizers`` ``ByteLevel`` BPE,
no normalisation), trained on the *training* speeches only, with a small vocabulary (2–8k;
4096 by default). Special tokens follow Pythia's ids: ``<|endoftext|>`` = 0 (bos = eos = unk),
``<|padding|>`` = 1. Documents are joined with ``<|endoftext|>`` as in Pythia's data.

The result is saved with ``PreTrainedTokenizerFast.save_pretrained`` (a ``tokenizer.json`` plus
its config) in ``<cache>/tokenizer/<hash>/``, so ``AutoTokenizer.from_pretrained(dir)`` and
:func:`load_tokenizer` load it, and a stand-in checkpoint directory can carry a copy exactly as a
hub revision does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from polyrot_utils.core.cache import (
    artifact_dir,
    atomic_save_safetensors,
    atomic_write_json,
    cached_entry,
    load_safetensors,
)
from polyrot_utils.models.corpus import load_speeches, split_corpus

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"

__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "TokenizerConfig",
    "encode_corpus",
    "load_tokenizer",
    "token_byte_lengths",
    "train_tokenizer",
]


@dataclass(frozen=True)
class TokenizerConfig:
    """What determines the tokenizer: its vocabulary size and the corpus split it is trained on."""

    vocab_size: int = 4096
    heldout_fraction: float = 0.1
    split_seed: int = 0
    min_frequency: int = 2
    train_fraction: float = 1.0  # < 1: every k-th training speech only (smoke runs)

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction!r}")
        if not 258 <= self.vocab_size <= 65536:
            raise ValueError(
                "vocab_size must be in [258, 65536] (256 bytes + 2 specials), got "
                f"{self.vocab_size}"
            )


def _train_texts(cfg: TokenizerConfig) -> list[str]:
    split = split_corpus(cfg.heldout_fraction, cfg.split_seed)
    ids = list(split.train_ids)
    if cfg.train_fraction < 1.0:
        n = max(1, round(cfg.train_fraction * len(ids)))
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, n).round().astype(int)]

    return list(load_speeches(ids).values())


def _tok_key(cfg: TokenizerConfig) -> dict:
    return {"kind": "bytelevel_bpe_v1", **asdict(cfg)}


def _tok_dir(cfg: TokenizerConfig) -> Path:
    return artifact_dir("tokenizer", _tok_key(cfg))


def train_tokenizer(cfg: TokenizerConfig = TokenizerConfig()) -> Path:
    """Train (or fetch from the cache) the BPE tokenizer; return its directory.

    Deterministic: the ``tokenizers`` BPE trainer is deterministic for a fixed input order, and
    the input is the training speeches in sorted order.
    """
    # size + SHA-256 manifest checked on load; a damaged entry is reported and retrained, once
    return cached_entry(
        "tokenizer",
        _tok_key(cfg),
        lambda out: _train_tokenizer(cfg, out),
        ("tokenizer.json", "tokenizer_config.json"),
        legacy_check=lambda out: load_tokenizer(out),
    )


def _train_tokenizer(cfg: TokenizerConfig, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_train_texts(cfg), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
    )
    fast.save_pretrained(str(out))  # writes tokenizer.json + tokenizer_config.json


def load_tokenizer(path: Path | str):
    """Load a tokenizer directory (ours or a hub snapshot) as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"no tokenizer.json in {path}; expected a directory from train_tokenizer()"
        )
    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)


def encode_corpus(cfg: TokenizerConfig = TokenizerConfig()) -> dict[str, torch.Tensor]:
    """The training and held-out speeches as token streams, cached.

    Returns ``{"train": (n_train,), "heldout": (n_heldout,)}`` int64 tensors: each part's speeches
    in sorted order, each followed by ``<|endoftext|>`` (id 0).
    """
    # its own entry (kind "tokens"), so the tokenizer's manifest stays exact
    entry = cached_entry(
        "tokens",
        _tok_key(cfg),
        lambda e: _encode_corpus(cfg, e),
        ("tokens.safetensors",),
        legacy_check=lambda e: load_safetensors(e / "tokens.safetensors"),
    )
    return {k: v.long() for k, v in load_safetensors(entry / "tokens.safetensors").items()}


def _encode_corpus(cfg: TokenizerConfig, entry: Path) -> None:
    path = entry / "tokens.safetensors"
    tok = load_tokenizer(train_tokenizer(cfg))
    split = split_corpus(cfg.heldout_fraction, cfg.split_seed)
    eos = tok.convert_tokens_to_ids(EOS_TOKEN)
    out = {}
    for name, texts in (("train", _train_texts(cfg)), ("heldout", split.heldout_texts())):
        ids: list[int] = []
        for enc in tok(texts, add_special_tokens=False)["input_ids"]:
            ids.extend(enc)
            ids.append(eos)
        out[name] = torch.tensor(ids, dtype=torch.int32)
    atomic_save_safetensors(path, out, metadata={"tokenizer": str(_tok_dir(cfg))})
    atomic_write_json(entry / "token_counts.json", {k: int(v.numel()) for k, v in out.items()})


def token_byte_lengths(tokenizer) -> np.ndarray:
    """``(vocab,)`` number of UTF-8 bytes each token id stands for (special tokens: 0).

    Exact for byte-level BPE: every character of a token string is one byte under GPT-2's
    byte-to-unicode map. Used to convert nats per token into bits per byte.
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    n = max(vocab.values()) + 1
    out = np.zeros(n, dtype=np.int64)
    for token, idx in vocab.items():
        out[idx] = 0 if token in special else len(token)
    return out
