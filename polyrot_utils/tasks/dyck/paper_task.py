"""The paper's Dyck-3 task (``task="paper"``): fresh-batch sampler, labels, three evaluation sets.

Written from the definitions of the paper's public code (``src/polymorphism/task.py``) and text
(§ setup, App. "Length extrapolation"); tokens as in :mod:`polyrot_utils.tasks.dyck.language`
(``PAD=0 BOS=1 EOS=2 ( ) [ ] { } = 3..8``, vocab 40).

Strings are ``BOS + content + EOS`` right-padded with PAD. Content length ``L`` is uniform in
``[min_len, max_len]`` (the paper: 2..62, i.e. every position of n_ctx 64). Half the strings
(``p_valid``) are *valid random walks*: at each position open (uniform family) when the depth is 0,
close when the depth is ``max_depth`` (8), otherwise open with probability ``p_open`` (0.55) and
close the top family otherwise — never forced to close, so many end unbalanced. The other half
are uniform random brackets (each of the six, i.i.d.).

Labels after consuming the token at each position (the paper's rules):

- ``type``: the token id (BOS and EOS included; 40 classes);
- ``depth``: unmatched openers; once the string has failed, frozen at the last value *before* the
  failing token;
- ``invalid``: sticky flag, 1 from the failing token on. A string fails at an open at depth 8, a
  close on an empty stack, or a close of the wrong family. BOS, EOS and PAD never fail a string;
  in particular an unbalanced EOS is *not* a failure (unlike the ``stack`` variant).

``mask = tokens != PAD``: BOS, content and EOS count; PAD labels are 0.

Evaluation sets (:func:`eval_sets`), the paper's three, scaled to the training range:

- ``train``: the training distribution (lengths ``[min_len, max_len]``);
- ``compositional``: a deep single-family nest (depth uniform in ``[3, d_hi]``,
  ``d_hi = min(8, (max_len - 2) // 2)``) between shallow mixed pairs ``()[]{}`` filling the
  content to ``max_len`` (or ``max_len - 1``): ``k // 2`` pairs before, the rest after;
- ``long``: the training sampler at lengths ``[round(50/62·max_len), round(60/62·max_len)]``
  (the paper's 50..60 at ``max_len=62``).

:func:`label_paper` is vectorised over rows (one loop over positions); :func:`label_paper_reference`
is a plain-python specification of the same rules that the tests compare it with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from polyrot_utils.tasks.dyck.language import (
    BOS,
    CLOSERS,
    EOS,
    LPAREN,
    MAX_DEPTH,
    OPENERS,
    PAD,
    RBRACE,
    READOUT_SIZES,
    DyckSplit,
    label_tokens,
)

__all__ = [
    "EVAL_SPLITS",
    "PaperTaskConfig",
    "batch_rng",
    "compositional_tokens",
    "eval_sets",
    "label_paper",
    "label_paper_reference",
    "label_paper_torch",
    "sample_batch",
    "sample_tokens",
    "sample_tokens_torch",
    "sample_tokens_with_kind",
    "to_split",
]

EVAL_SPLITS: tuple[str, ...] = ("train", "compositional", "long")
_SALT = {"train": 123, "compositional": 456, "long": 789, "batch": 0x7A5C}


@dataclass(frozen=True)
class PaperTaskConfig:
    """The paper's task at a content-length range ``[min_len, max_len]`` (BOS/EOS excluded)."""

    min_len: int = 2
    max_len: int = 62
    p_valid: float = 0.5
    p_open: float = 0.55
    max_depth: int = MAX_DEPTH
    n_ctx: int = 64

    def __post_init__(self) -> None:
        if not (2 <= self.min_len <= self.max_len):
            raise ValueError(
                f"need 2 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}"
            )
        if self.max_len + 2 > self.n_ctx:
            raise ValueError(
                f"max_len + 2 (BOS, EOS) must fit n_ctx={self.n_ctx}, got max_len={self.max_len}"
            )
        if self.max_len < 8:
            raise ValueError(
                "max_len must be >= 8 for the compositional set (a depth-3 nest and a pair), got "
                f"{self.max_len}"
            )
        if not (0.0 <= self.p_valid <= 1.0) or not (0.0 < self.p_open < 1.0):
            raise ValueError(
                f"need 0 <= p_valid <= 1 and 0 < p_open < 1, got {self.p_valid}, {self.p_open}"
            )
        if self.max_depth != MAX_DEPTH:
            raise ValueError(
                f"max_depth must be {MAX_DEPTH} (the depth readout has {MAX_DEPTH + 1} classes), "
                f"got {self.max_depth}"
            )

    @property
    def long_range(self) -> tuple[int, int]:
        """Content lengths of the ``long`` set: the paper's 50..60 of 62, scaled to ``max_len``."""
        return max(self.min_len, round(50 * self.max_len / 62)), round(60 * self.max_len / 62)

    @property
    def compositional_depths(self) -> tuple[int, int]:
        """Nest depths of the ``compositional`` set: 3 .. min(8, (max_len - 2) // 2)."""
        return 3, min(self.max_depth, (self.max_len - 2) // 2)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "long_range": list(self.long_range),
            "compositional_depths": list(self.compositional_depths),
        }


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def sample_tokens(
    n: int,
    config: PaperTaskConfig,
    rng: np.random.Generator,
    length_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """``n`` strings of the training distribution: ``(n, max_len + 2)`` int64, PAD-padded.

    Deterministic given the state of ``rng``. ``length_range`` overrides ``[min_len, max_len]``
    (it must fit ``max_len``)."""
    return sample_tokens_with_kind(n, config, rng, length_range)[0]


def sample_tokens_with_kind(
    n: int,
    config: PaperTaskConfig,
    rng: np.random.Generator,
    length_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_tokens` and ``walk (n,)`` bool: True for a valid random walk, False for
    uniform random brackets (the same draws as :func:`sample_tokens`)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lo, hi = length_range or (config.min_len, config.max_len)
    if not (1 <= lo <= hi <= config.max_len):
        raise ValueError(
            f"length_range must satisfy 1 <= lo <= hi <= max_len={config.max_len}, got {(lo, hi)}"
        )
    W = config.max_len + 2
    lengths = rng.integers(lo, hi + 1, size=n)
    walk = rng.random(n) < config.p_valid
    u = rng.random((n, hi))
    fam = rng.integers(0, 3, size=(n, hi))
    rand = rng.integers(LPAREN, RBRACE + 1, size=(n, hi))
    content = rand.copy()
    # valid random walks, vectorised over rows
    stack = np.zeros((n, config.max_depth + 1), dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    opens, closes = np.asarray(OPENERS), np.asarray(CLOSERS)
    for t in range(hi):
        can_open = depth < config.max_depth
        can_close = depth > 0
        do_open = can_open & (~can_close | (u[:, t] < config.p_open))
        top = stack[rows, np.maximum(depth - 1, 0)]
        tok = np.where(do_open, opens[fam[:, t]], closes[top])
        stack[rows[do_open], depth[do_open]] = fam[do_open, t]
        depth = depth + np.where(do_open, 1, -1)
        content[:, t] = np.where(walk, tok, content[:, t])
    cols = np.arange(hi)[None, :]
    content = np.where(cols < lengths[:, None], content, PAD)
    tokens = np.full((n, W), PAD, dtype=np.int64)
    tokens[:, 0] = BOS
    tokens[:, 1 : 1 + hi] = content
    tokens[rows, lengths + 1] = EOS
    return tokens, walk


def compositional_tokens(n: int, config: PaperTaskConfig, rng: np.random.Generator) -> np.ndarray:
    """``n`` compositional strings (see module docstring): ``(n, max_len + 2)`` int64."""
    W = config.max_len + 2
    d_lo, d_hi = config.compositional_depths
    tokens = np.full((n, W), PAD, dtype=np.int64)
    for i in range(n):
        d = int(rng.integers(d_lo, d_hi + 1))
        f = int(rng.integers(0, 3))
        k = (config.max_len - 2 * d) // 2
        pairs = [[OPENERS[g], CLOSERS[g]] for g in rng.integers(0, 3, size=k)]
        left = [t for p in pairs[: k // 2] for t in p]
        right = [t for p in pairs[k // 2 :] for t in p]
        seq = [BOS, *left, *([OPENERS[f]] * d), *([CLOSERS[f]] * d), *right, EOS]
        tokens[i, : len(seq)] = seq
    return tokens


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------


def label_paper(tokens: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """The paper's labels for a batch ``(n, T)``: ``type``, ``depth``, ``invalid`` (int64) and
    ``mask`` (bool), vectorised over rows. Rules in the module docstring; PAD labels are 0."""
    return label_tokens(tokens, "freeze", unclosed_eos_fails=False)


def label_paper_reference(tokens: list[int]) -> dict[str, list[int]]:
    """Plain-python labels for one string: the specification :func:`label_paper` must match."""
    stack: list[str] = []
    failed = False
    pairs = {")": "(", "]": "[", "}": "{"}
    chars = {3: "(", 4: ")", 5: "[", 6: "]", 7: "{", 8: "}"}
    out: dict[str, list[int]] = {"type": [], "depth": [], "invalid": []}
    for t in tokens:
        t = int(t)
        if t == PAD:
            out["type"].append(0)
            out["depth"].append(0)
            out["invalid"].append(0)
            continue
        c = chars.get(t)
        if not failed and c is not None:
            if c in "([{":
                if len(stack) == MAX_DEPTH:
                    failed = True
                else:
                    stack.append(c)
            elif not stack or stack[-1] != pairs[c]:
                failed = True
            else:
                stack.pop()
        out["type"].append(t)
        out["depth"].append(len(stack))
        out["invalid"].append(int(failed))
    return out


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


def to_split(tokens: np.ndarray, name: str = "", kind: np.ndarray | None = None) -> DyckSplit:
    """A labelled :class:`~polyrot_utils.tasks.dyck.language.DyckSplit` of
    ``tokens`` (paper labels).
    """
    lab = label_paper(tokens)
    mask = lab["mask"]
    lengths = mask.sum(1) - 2
    kind = np.zeros(len(tokens), dtype=np.int64) if kind is None else kind
    return DyckSplit(
        tokens=torch.from_numpy(tokens).long(),
        labels={k: torch.from_numpy(lab[k]).long() for k in READOUT_SIZES},
        mask=torch.from_numpy(mask),
        lengths=torch.from_numpy(lengths).long(),
        kind=torch.from_numpy(np.asarray(kind, dtype=np.int64)),
        name=name,
    )


def batch_rng(data_seed: int) -> np.random.Generator:
    """The generator of one training run's fresh batches (distinct from every eval set's)."""
    return np.random.default_rng([int(data_seed), _SALT["batch"]])


def sample_batch(n: int, config: PaperTaskConfig, rng: np.random.Generator) -> DyckSplit:
    """A fresh labelled training batch of ``n`` strings, trimmed of all-PAD columns."""
    return to_split(sample_tokens(n, config, rng), "batch").subset(slice(None))


@lru_cache(maxsize=16)
def eval_sets(config: PaperTaskConfig, n: int = 2048, seed: int = 0) -> dict[str, DyckSplit]:
    """The three evaluation sets ``{"train", "compositional", "long"}``, ``n`` strings each,
    deterministic given ``(config, n, seed)`` and disjoint in RNG stream from training batches."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = {}
    for name in EVAL_SPLITS:
        rng = np.random.default_rng([int(seed), _SALT[name]])
        if name == "train":
            tok = sample_tokens(n, config, rng)
        elif name == "long":
            tok = sample_tokens(n, config, rng, length_range=config.long_range)
        else:
            tok = compositional_tokens(n, config, rng)
        out[name] = to_split(tok, name).subset(slice(None))
    return out


# --------------------------------------------------------------------------------------------
# torch sampler (for accelerators): same distribution and labels, torch's random stream
# --------------------------------------------------------------------------------------------


def sample_tokens_torch(
    n: int,
    config: PaperTaskConfig,
    generator: torch.Generator,
    length_range: tuple[int, int] | None = None,
) -> torch.Tensor:
    """:func:`sample_tokens` in torch on ``generator``'s device: the same distribution, a
    different random stream (so not the same strings as the numpy sampler for a seed). One
    call draws many rows at the cost of one loop over positions, so draw several steps at once."""
    lo, hi = length_range or (config.min_len, config.max_len)
    if not (1 <= lo <= hi <= config.max_len):
        raise ValueError(
            f"length_range must satisfy 1 <= lo <= hi <= max_len={config.max_len}, got {(lo, hi)}"
        )
    dev = generator.device
    kw: dict[str, Any] = dict(generator=generator, device=dev)
    lengths = torch.randint(lo, hi + 1, (n,), **kw)
    walk = torch.rand(n, **kw) < config.p_valid
    u = torch.rand(n, hi, **kw)
    fam = torch.randint(0, 3, (n, hi), **kw)
    content = torch.randint(LPAREN, RBRACE + 1, (n, hi), **kw)
    opens = torch.tensor(OPENERS, device=dev)
    closes = torch.tensor(CLOSERS, device=dev)
    stack = torch.zeros(n, config.max_depth + 1, dtype=torch.long, device=dev)
    depth = torch.zeros(n, dtype=torch.long, device=dev)
    rows = torch.arange(n, device=dev)
    for t in range(hi):
        do_open = (depth < config.max_depth) & ((depth == 0) | (u[:, t] < config.p_open))
        top = stack[rows, (depth - 1).clamp(min=0)]
        tok = torch.where(do_open, opens[fam[:, t]], closes[top])
        slot = depth.clamp(max=config.max_depth)
        stack[rows, slot] = torch.where(do_open, fam[:, t], stack[rows, slot])
        depth = depth + torch.where(do_open, 1, -1)
        content[:, t] = torch.where(walk, tok, content[:, t])
    cols = torch.arange(hi, device=dev)[None, :]
    content = torch.where(cols < lengths[:, None], content, PAD)
    tokens = torch.full((n, config.max_len + 2), PAD, dtype=torch.long, device=dev)
    tokens[:, 0] = BOS
    tokens[:, 1 : 1 + hi] = content
    tokens[rows, lengths + 1] = EOS
    return tokens


def label_paper_torch(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`label_paper` in torch (on ``tokens``' device); the same labels."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be 2-D (n, T), got shape {tuple(tokens.shape)}")
    tok = tokens.long()
    n, T = tok.shape
    dev = tok.device
    is_open = (tok == OPENERS[0]) | (tok == OPENERS[1]) | (tok == OPENERS[2])
    is_close = (tok == CLOSERS[0]) | (tok == CLOSERS[1]) | (tok == CLOSERS[2])
    family = torch.where(is_open | is_close, (tok - LPAREN) // 2, -1)
    stack = torch.zeros(n, MAX_DEPTH + 1, dtype=torch.long, device=dev)
    depth = torch.zeros(n, dtype=torch.long, device=dev)
    failed = torch.zeros(n, dtype=torch.bool, device=dev)
    out_depth = torch.zeros(n, T, dtype=torch.long, device=dev)
    out_inv = torch.zeros(n, T, dtype=torch.long, device=dev)
    rows = torch.arange(n, device=dev)
    for t in range(T):
        live = ~failed
        op = is_open[:, t] & live
        overflow = op & (depth >= MAX_DEPTH)
        push = op & ~overflow
        slot = depth.clamp(max=MAX_DEPTH)
        stack[rows, slot] = torch.where(push, family[:, t], stack[rows, slot])
        cl = is_close[:, t] & live
        empty = cl & (depth == 0)
        top = stack[rows, (depth - 1).clamp(min=0)]
        mismatch = cl & ~empty & (top != family[:, t])
        pop = cl & ~empty & ~mismatch
        depth = depth + push.long() - pop.long()
        failed = failed | overflow | empty | mismatch
        out_depth[:, t] = depth
        out_inv[:, t] = failed.long()
    mask = tok != PAD
    zero = torch.zeros_like(tok)
    return {
        "type": torch.where(mask, tok, zero),
        "depth": torch.where(mask, out_depth, zero),
        "invalid": torch.where(mask, out_inv, zero),
        "mask": mask,
    }
