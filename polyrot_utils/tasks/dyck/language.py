"""The bounded-depth Dyck-3 language: tokens, a seeded sampler, per-position labels, splits.

Two tasks (``DyckConfig.task``):

- ``"paper"`` (default) — the paper's task, implemented in
  :mod:`polyrot_utils.tasks.dyck.paper_task`
  (valid random walks and uniform random brackets, depth frozen at failure, no EOS rule). Its
  splits: ``train`` and ``heldout`` from the training distribution (different seeds), ``ood``
  the paper's *long* set scaled to ``max_len`` (``ood_min_len``/``ood_max_len`` are not used),
  and ``compositional``. ``p_open_range``, ``p_valid``, ``p_corrupt`` and
  ``depth_after_invalid`` do not apply (the paper's p_valid 0.5, p_open 0.55, "freeze").
- ``"stack"`` — the stress variant described below: balanced words, words with one corrupted
  bracket (whose error may sit deep in the string, so detecting it needs real bracket matching)
  and random strings, with an EOS rule. Everything below this paragraph describes it.

Vocabulary (40 ids, as in the paper's toy; ids 9..39 are never produced)::

    PAD=0  BOS=1  EOS=2  '('=3 ')'=4  '['=5 ']'=6  '{'=7 '}'=8

A string is ``BOS + content + EOS`` right-padded with PAD. Content is drawn from three kinds:

- ``valid``   — a balanced Dyck-3 word of even length whose depth never exceeds ``max_depth``
  (a random walk that opens with a per-string probability ``p_open`` and is forced to close in
  time to end at depth 0);
- ``corrupt`` — a valid word with one position replaced by a different bracket (always invalid,
  from that point or from its partner's position on);
- ``random``  — i.i.d. uniform brackets (almost always invalid early).

Per-position labels, after consuming the token at that position (the three readouts):

- ``type``    — the token id at the position (40 classes; the paper's "tok" head, i.e. which
  bracket and whether it opens or closes; BOS/EOS get their own ids);
- ``depth``   — the number of unmatched openers (0..8). Opening at depth ``MAX_DEPTH`` (=8) is a
  violation, so the label never exceeds 8 (the paper's bounded-depth rule, equivalent to
  clamping for valid strings). Once a string is invalid, ``depth_after_invalid`` decides:
  ``"freeze"`` (the paper) keeps the last valid depth as the label; ``"ignore"`` sets the label
  to :data:`IGNORE` (-1), so that position does not count for the depth readout (loss,
  accuracy, agreement). "freeze" asks the model to remember when the string broke, which a
  CPU-minutes budget does not learn (≈ 75% after 400 steps vs 99.4% on valid prefixes);
- ``invalid`` — the sticky violation flag: 0 until the first violation (close with an empty
  stack, close of the wrong family, open beyond depth 8, or EOS with unclosed brackets), 1 from
  then on. The EOS rule is our addition (the paper's flag ignores unbalanced endings).

``mask`` is ``tokens != PAD``: BOS, content and EOS positions count in the loss and accuracies;
a readout's positions are ``mask & (label != IGNORE)`` (:meth:`DyckSplit.readout_mask`).

Splits: ``train`` and ``heldout`` draw content lengths from the same range
``[min_len, max_len]`` with different seeds (held-out rows identical to a train row are
dropped); ``ood`` draws longer lengths ``[ood_min_len, ood_max_len]``.

Two labellers: :func:`label_tokens` (numpy, vectorised over the batch, one loop over
positions) and :func:`label_reference` (plain python, one string) that the tests compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch

__all__ = [
    "BRACKETS",
    "CLOSERS",
    "DEPTH_AFTER_INVALID",
    "IGNORE",
    "KINDS",
    "MAX_DEPTH",
    "N_DEPTH",
    "N_INVALID",
    "OPENERS",
    "READOUT_SIZES",
    "SPLITS",
    "TASKS",
    "TOKEN_STR",
    "VOCAB_SIZE",
    "DyckConfig",
    "DyckSplit",
    "decode",
    "encode",
    "is_balanced",
    "label_reference",
    "label_tokens",
    "make_dataset",
    "make_split",
    "paper_task_config",
    "sample_strings",
    "with_overrides",
]

PAD, BOS, EOS = 0, 1, 2
LPAREN, RPAREN, LBRACK, RBRACK, LBRACE, RBRACE = 3, 4, 5, 6, 7, 8
OPENERS: tuple[int, ...] = (LPAREN, LBRACK, LBRACE)
CLOSERS: tuple[int, ...] = (RPAREN, RBRACK, RBRACE)
BRACKETS: tuple[int, ...] = OPENERS + CLOSERS
VOCAB_SIZE = 40
MAX_DEPTH = 8
N_DEPTH = MAX_DEPTH + 1
N_INVALID = 2
#: readout name -> number of classes, in the order of the model's output columns
READOUT_SIZES: dict[str, int] = {"type": VOCAB_SIZE, "depth": N_DEPTH, "invalid": N_INVALID}
TOKEN_STR: dict[int, str] = {
    PAD: "_",
    BOS: "^",
    EOS: "$",
    3: "(",
    4: ")",
    5: "[",
    6: "]",
    7: "{",
    8: "}",
}
KINDS: tuple[str, ...] = ("valid", "corrupt", "random")
SPLITS: tuple[str, ...] = ("train", "heldout", "ood")
TASKS: tuple[str, ...] = ("paper", "stack")
IGNORE = -1
DEPTH_AFTER_INVALID = ("freeze", "ignore")


@dataclass(frozen=True)
class DyckConfig:
    """What strings a dataset holds. Lengths count content tokens (BOS/EOS excluded).

    ``seed`` fixes the contents of every split (train/held-out/OOD use derived seeds); the
    order in which training visits the train split is fixed separately by the trainer's
    ``data_seed``.
    """

    min_len: int = 2
    max_len: int = 24
    ood_min_len: int = 26
    ood_max_len: int = 40
    max_depth: int = MAX_DEPTH
    p_open_range: tuple[float, float] = (0.45, 0.75)
    p_valid: float = 0.5
    p_corrupt: float = 0.3
    n_train: int = 20_000
    n_heldout: int = 2_000
    n_ood: int = 2_000
    n_ctx: int = 64
    depth_after_invalid: str = "freeze"
    seed: int = 0
    task: str = "paper"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "paper" and self.min_len < 2:
            raise ValueError(f"task='paper' needs min_len >= 2, got {self.min_len}")
        if not (1 <= self.min_len <= self.max_len):
            raise ValueError(
                f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}"
            )
        if not (1 <= self.ood_min_len <= self.ood_max_len):
            raise ValueError(
                f"need 1 <= ood_min_len <= ood_max_len, got {self.ood_min_len}, {self.ood_max_len}"
            )
        if max(self.max_len, self.ood_max_len) + 2 > self.n_ctx:
            raise ValueError(
                f"max_len/ood_max_len + 2 (BOS, EOS) must fit n_ctx={self.n_ctx}; got "
                f"{self.max_len}, {self.ood_max_len}"
            )
        if not (1 <= self.max_depth <= MAX_DEPTH):
            raise ValueError(f"max_depth must be in [1, {MAX_DEPTH}], got {self.max_depth}")
        lo, hi = self.p_open_range
        if not (0.0 < lo <= hi < 1.0):
            raise ValueError(f"p_open_range must satisfy 0 < lo <= hi < 1, got {self.p_open_range}")
        if self.p_valid < 0 or self.p_corrupt < 0 or self.p_valid + self.p_corrupt > 1:
            raise ValueError(
                f"p_valid, p_corrupt must be >= 0 with sum <= 1, got {self.p_valid}, "
                f"{self.p_corrupt}"
            )
        if self.depth_after_invalid not in DEPTH_AFTER_INVALID:
            raise ValueError(
                f"depth_after_invalid must be one of {DEPTH_AFTER_INVALID}, got "
                f"{self.depth_after_invalid!r}"
            )
        for name in ("n_train", "n_heldout", "n_ood"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def _valid_content(
    rng: np.random.Generator, lengths: np.ndarray, max_depth: int, p_open: np.ndarray
) -> np.ndarray:
    """Balanced words, one per row, vectorised over rows. ``lengths`` must be even.

    Returns ``(n, max(lengths))`` int64 with PAD after each row's length.
    """
    n = len(lengths)
    T = int(lengths.max()) if n else 0
    out = np.full((n, T), PAD, dtype=np.int64)
    stack = np.zeros((n, max_depth + 1), dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for t in range(T):
        live = t < lengths
        remaining = lengths - t  # positions left, this one included
        can_open = (depth < max_depth) & (depth + 1 <= remaining - 1)
        can_close = depth > 0
        u = rng.random(n)
        fam = rng.integers(0, 3, size=n)
        do_open = live & can_open & (~can_close | (u < p_open))
        do_close = live & ~do_open & can_close
        # open
        r = rows[do_open]
        stack[r, depth[r]] = fam[r]
        out[r, t] = np.asarray(OPENERS)[fam[r]]
        depth[r] += 1
        # close
        r = rows[do_close]
        depth[r] -= 1
        out[r, t] = np.asarray(CLOSERS)[stack[r, depth[r]]]
    return out


def sample_strings(
    n: int,
    *,
    min_len: int,
    max_len: int,
    rng: np.random.Generator,
    max_depth: int = MAX_DEPTH,
    p_open_range: tuple[float, float] = (0.45, 0.75),
    p_valid: float = 0.5,
    p_corrupt: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` strings ``BOS + content + EOS`` (content length uniform in ``[min_len, max_len]``;
    valid words use the largest even length <= the draw, at least 2).

    Returns ``tokens (n, max_len + 2)`` int64 right-padded with PAD, ``lengths (n,)`` (content
    length) and ``kind (n,)`` int8 (index into :data:`KINDS`).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not (1 <= min_len <= max_len):
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    lengths = rng.integers(min_len, max_len + 1, size=n)
    u = rng.random(n)
    kind = np.where(u < p_valid, 0, np.where(u < p_valid + p_corrupt, 1, 2)).astype(np.int8)
    structured = kind < 2
    lengths = np.where(structured, np.maximum(2, lengths - lengths % 2), lengths)
    width = int(max(max_len, lengths.max() if n else 0)) + 2
    tokens = np.full((n, width), PAD, dtype=np.int64)
    p_open = rng.uniform(p_open_range[0], p_open_range[1], size=n)
    idx = np.flatnonzero(structured)
    if len(idx):
        content = _valid_content(rng, lengths[idx], max_depth, p_open[idx])
        tokens[idx, 1 : 1 + content.shape[1]] = content
        # corrupt: replace one position by a different bracket
        cidx = idx[kind[idx] == 1]
        if len(cidx):
            pos = (rng.random(len(cidx)) * lengths[cidx]).astype(np.int64) + 1
            old = tokens[cidx, pos]
            shift = rng.integers(1, 6, size=len(cidx))  # 1..5: never the same bracket
            old_i = old - LPAREN
            tokens[cidx, pos] = LPAREN + (old_i + shift) % 6
    ridx = np.flatnonzero(kind == 2)
    if len(ridx):
        rand = rng.integers(LPAREN, RBRACE + 1, size=(len(ridx), width - 2))
        cols = np.arange(width - 2)[None, :]
        rand = np.where(cols < lengths[ridx, None], rand, PAD)
        tokens[ridx, 1:] = np.concatenate([rand, np.full((len(ridx), 1), PAD)], axis=1)
    tokens[:, 0] = BOS
    tokens[np.arange(n), lengths + 1] = EOS
    return tokens, lengths.astype(np.int64), kind


# --------------------------------------------------------------------------------------------
# labelling
# --------------------------------------------------------------------------------------------


def label_tokens(
    tokens: np.ndarray | torch.Tensor,
    depth_after_invalid: str = "freeze",
    *,
    unclosed_eos_fails: bool = True,
) -> dict[str, np.ndarray]:
    """Per-position labels for a batch, vectorised over rows (one loop over positions).

    ``unclosed_eos_fails``: an EOS with brackets still open raises the invalid flag (the
    ``stack`` task); the paper's task (:func:`polyrot_utils.tasks.dyck.paper_task.label_paper`)
    passes ``False``: there an unbalanced EOS is not a failure.

    ``tokens``: ``(n, T)`` integer ids. Returns ``{"type", "depth", "invalid"}`` each ``(n, T)``
    int64 and ``"mask"`` ``(n, T)`` bool (``tokens != PAD``); labels at PAD positions are 0;
    with ``depth_after_invalid="ignore"`` the depth label is :data:`IGNORE` where invalid.
    """
    if depth_after_invalid not in DEPTH_AFTER_INVALID:
        raise ValueError(
            f"depth_after_invalid must be one of {DEPTH_AFTER_INVALID}, got {depth_after_invalid!r}"
        )
    tok = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    if tok.ndim != 2:
        raise ValueError(f"tokens must be 2-D (n, T), got shape {tok.shape}")
    tok = tok.astype(np.int64)
    n, T = tok.shape
    is_open = np.isin(tok, OPENERS)
    is_close = np.isin(tok, CLOSERS)
    family = np.where(is_open | is_close, (tok - LPAREN) // 2, -1)
    stack = np.zeros((n, MAX_DEPTH + 1), dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    invalid = np.zeros(n, dtype=bool)
    out_depth = np.zeros((n, T), dtype=np.int64)
    out_inv = np.zeros((n, T), dtype=np.int64)
    rows = np.arange(n)
    for t in range(T):
        live = ~invalid
        op = is_open[:, t] & live
        overflow = op & (depth >= MAX_DEPTH)
        push = op & ~overflow
        r = rows[push]
        stack[r, depth[r]] = family[r, t]
        depth[r] += 1
        cl = is_close[:, t] & live
        empty = cl & (depth == 0)
        cand = cl & ~empty
        top = stack[rows, np.maximum(depth - 1, 0)]
        mismatch = cand & (top != family[:, t])
        pop = cand & ~mismatch
        depth[pop] -= 1
        unclosed = (tok[:, t] == EOS) & live & (depth > 0) & unclosed_eos_fails
        invalid |= overflow | empty | mismatch | unclosed
        out_depth[:, t] = depth
        out_inv[:, t] = invalid
    mask = tok != PAD
    if depth_after_invalid == "ignore":
        out_depth = np.where(out_inv == 1, IGNORE, out_depth)
    return {
        "type": np.where(mask, tok, 0),
        "depth": np.where(mask, out_depth, 0),
        "invalid": np.where(mask, out_inv, 0),
        "mask": mask,
    }


def label_reference(tokens: list[int], depth_after_invalid: str = "freeze") -> dict[str, list[int]]:
    """Plain-python labels for one string (the specification :func:`label_tokens` must match)."""
    stack: list[int] = []
    bad = False
    type_, depth_, inv_ = [], [], []
    for tok in tokens:
        tok = int(tok)
        if tok == PAD:
            type_.append(0)
            depth_.append(0)
            inv_.append(0)
            continue
        if not bad:
            if tok in OPENERS:
                if len(stack) >= MAX_DEPTH:
                    bad = True
                else:
                    stack.append(OPENERS.index(tok))
            elif tok in CLOSERS:
                if not stack or stack[-1] != CLOSERS.index(tok):
                    bad = True
                else:
                    stack.pop()
            elif tok == EOS and stack:
                bad = True
        type_.append(tok)
        depth_.append(IGNORE if (bad and depth_after_invalid == "ignore") else len(stack))
        inv_.append(int(bad))
    return {"type": type_, "depth": depth_, "invalid": inv_}


def is_balanced(content: list[int] | np.ndarray, max_depth: int = MAX_DEPTH) -> bool:
    """True when ``content`` (brackets only, no BOS/EOS/PAD) is a balanced Dyck-3 word of
    depth <= max_depth.
    """
    stack: list[int] = []
    for tok in content:
        tok = int(tok)
        if tok in OPENERS:
            stack.append(OPENERS.index(tok))
            if len(stack) > max_depth:
                return False
        elif tok in CLOSERS:
            if not stack or stack.pop() != CLOSERS.index(tok):
                return False
        else:
            return False
    return not stack


def decode(tokens: np.ndarray | torch.Tensor | list[int], strip_pad: bool = True) -> str:
    """``[1, 3, 5, 6, 4, 2, 0]`` -> ``"^([])$"`` (PAD shown as ``_`` unless stripped)."""
    seq = tokens.tolist() if hasattr(tokens, "tolist") else list(tokens)
    return "".join(TOKEN_STR.get(int(t), "?") for t in seq if not (strip_pad and int(t) == PAD))


def encode(text: str) -> list[int]:
    """Inverse of :func:`decode` for the characters ``^$_()[]{}``."""
    inv = {v: k for k, v in TOKEN_STR.items()}
    try:
        return [inv[c] for c in text]
    except KeyError as err:
        raise ValueError(
            f"text may only contain {''.join(inv)}; got {err.args[0]!r} in {text!r}"
        ) from None


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


@dataclass
class DyckSplit:
    """A labelled set of strings. All tensors share the first dimension ``n``.

    ``tokens (n, T)`` long, ``labels[name] (n, T)`` long for each readout, ``mask (n, T)`` bool,
    ``lengths (n,)`` content lengths, ``kind (n,)`` index into :data:`KINDS`.
    """

    tokens: torch.Tensor
    labels: dict[str, torch.Tensor]
    mask: torch.Tensor
    lengths: torch.Tensor
    kind: torch.Tensor
    name: str = ""

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def subset(
        self, idx: torch.Tensor | np.ndarray | slice | list[int], trim: bool = True
    ) -> DyckSplit:
        """Rows ``idx``; with ``trim`` drop trailing columns that are PAD in every chosen row."""
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        tokens = self.tokens[idx]
        mask = self.mask[idx]
        width = tokens.shape[1]
        if trim and len(tokens):
            width = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1
        return DyckSplit(
            tokens=tokens[:, :width],
            labels={k: v[idx][:, :width] for k, v in self.labels.items()},
            mask=mask[:, :width],
            lengths=self.lengths[idx],
            kind=self.kind[idx],
            name=self.name,
        )

    def readout_mask(self, name: str) -> torch.Tensor:
        """``(n, T)`` bool: positions where readout ``name`` has a label (non-PAD, not IGNORE)."""
        if name not in self.labels:
            raise KeyError(f"unknown readout {name!r}; readouts: {list(self.labels)}")
        return self.mask & (self.labels[name] != IGNORE)

    def to(self, device: torch.device | str) -> DyckSplit:
        return DyckSplit(
            self.tokens.to(device),
            {k: v.to(device) for k, v in self.labels.items()},
            self.mask.to(device),
            self.lengths.to(device),
            self.kind.to(device),
            self.name,
        )

    def batches(self, batch_size: int) -> Iterator[DyckSplit]:
        """Consecutive batches in order (the last may be smaller), each trimmed of PAD columns."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.subset(slice(start, start + batch_size))

    def examples(self, k: int = 5) -> list[dict]:
        """The first ``k`` rows as readable dicts (string, kind, per-position labels)."""
        rows = []
        for i in range(min(k, len(self))):
            m = self.mask[i]
            rows.append(
                {
                    "string": decode(self.tokens[i]),
                    "kind": KINDS[int(self.kind[i])],
                    "depth": "".join(
                        str(int(d)) if d >= 0 else "-" for d in self.labels["depth"][i][m]
                    ),
                    "invalid": "".join(str(int(v)) for v in self.labels["invalid"][i][m]),
                }
            )
        return rows


def _from_tokens(
    tokens: np.ndarray, lengths: np.ndarray, kind: np.ndarray, name: str, depth_after_invalid: str
) -> DyckSplit:
    lab = label_tokens(tokens, depth_after_invalid)
    return DyckSplit(
        tokens=torch.from_numpy(tokens).long(),
        labels={k: torch.from_numpy(lab[k]).long() for k in READOUT_SIZES},
        mask=torch.from_numpy(lab["mask"]),
        lengths=torch.from_numpy(lengths).long(),
        kind=torch.from_numpy(kind.astype(np.int64)),
        name=name,
    )


_SPLIT_SALT = {"train": 0, "heldout": 1, "ood": 2, "compositional": 3}


def make_split(config: DyckConfig, which: str) -> DyckSplit:
    """One split (``"train"``, ``"heldout"`` or ``"ood"``; task "paper" also ``"compositional"``,
    ``n_ood`` strings) of the dataset ``config`` describes.

    Deterministic given ``config`` (the seed is ``(config.seed, salt)`` per split). Task
    "stack": held-out rows identical to a train row are removed, so the held-out split may be
    slightly smaller than ``n_heldout``. Task "paper": no such filtering (fresh draws, as the
    paper's evaluation).
    """
    allowed = SPLITS + (("compositional",) if config.task == "paper" else ())
    if which not in allowed:
        raise ValueError(f"which must be one of {allowed}, got {which!r}")
    if config.task == "paper":
        return _make_paper_split(config, which)
    return _make_split_cached(config, which)


def paper_task_config(config: DyckConfig):
    """The :class:`~polyrot_utils.tasks.dyck.paper_task.PaperTaskConfig` of a
    ``task="paper"`` config.
    """
    from polyrot_utils.tasks.dyck.paper_task import (
        PaperTaskConfig,
    )  # lazy: at the top it would be an import cycle

    return PaperTaskConfig(min_len=config.min_len, max_len=config.max_len, n_ctx=config.n_ctx)


@lru_cache(maxsize=32)
def _make_paper_split(config: DyckConfig, which: str) -> DyckSplit:
    from polyrot_utils.tasks.dyck import (
        paper_task as dyck_paper,
    )  # lazy: at the top it would be an import cycle

    pc = paper_task_config(config)
    rng = np.random.default_rng([config.seed, _SPLIT_SALT[which], 0x9A9E])
    n = {"train": config.n_train, "heldout": config.n_heldout}.get(which, config.n_ood)
    if which == "compositional":
        tok, kind = dyck_paper.compositional_tokens(n, pc, rng), np.zeros(n, dtype=np.int64)
    else:
        rng_range = pc.long_range if which == "ood" else None
        tok, walk = dyck_paper.sample_tokens_with_kind(n, pc, rng, length_range=rng_range)
        kind = np.where(walk, 0, 2)
    return dyck_paper.to_split(tok, which, kind).subset(slice(None))


@lru_cache(maxsize=32)
def _make_split_cached(config: DyckConfig, which: str) -> DyckSplit:
    rng = np.random.default_rng([config.seed, _SPLIT_SALT[which], 0x5D1C])
    common: dict[str, Any] = dict(
        max_depth=config.max_depth,
        p_open_range=config.p_open_range,
        p_valid=config.p_valid,
        p_corrupt=config.p_corrupt,
    )
    if which == "ood":
        tok, lens, kind = sample_strings(
            config.n_ood, min_len=config.ood_min_len, max_len=config.ood_max_len, rng=rng, **common
        )
        return _from_tokens(tok, lens, kind, which, config.depth_after_invalid)
    n = config.n_train if which == "train" else config.n_heldout
    tok, lens, kind = sample_strings(
        n, min_len=config.min_len, max_len=config.max_len, rng=rng, **common
    )
    if which == "heldout":
        train = _make_split_cached(config, "train").tokens.numpy()
        seen = {row.tobytes() for row in train}
        keep = np.array([row.tobytes() not in seen for row in tok], dtype=bool)
        tok, lens, kind = tok[keep], lens[keep], kind[keep]
    return _from_tokens(tok, lens, kind, which, config.depth_after_invalid)


def make_dataset(config: DyckConfig | None = None) -> dict[str, DyckSplit]:
    """``{"train", "heldout", "ood"}`` splits for ``config`` (default :class:`DyckConfig`)."""
    config = config or DyckConfig()
    return {name: make_split(config, name) for name in SPLITS}


def with_overrides(config: DyckConfig, **overrides) -> DyckConfig:
    """A copy of ``config`` with fields replaced (unknown names raise ``ValueError``)."""
    bad = set(overrides) - set(DyckConfig.__dataclass_fields__)
    if bad:
        raise ValueError(
            f"unknown DyckConfig fields {sorted(bad)}; valid: "
            f"{sorted(DyckConfig.__dataclass_fields__)}"
        )
    return replace(config, **overrides)
