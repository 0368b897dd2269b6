"""Machine-readable results files, one per chapter.

A notebook records its headline numbers through one object::

    results = ChapterResults("01_planted_rotations", params=dict(seed=seed, d=d))
    results.record("max_abs_error", err)                # a number
    results.record("ev_by_site", {"blocks.0.hook_resid_post": 0.97})  # a small table
    results.claim("aligned_ev_gap", value=gap, threshold=0.025, op="<=",
                  paper_value=0.025, description="aligned EV within 0.025 of ceiling")

Every ``record``/``claim`` rewrites ``<results_dir>/<chapter>.json`` atomically, so a chapter
that fails halfway still leaves what it had measured. ``results_dir`` is
``$POLYROT_RESULTS_DIR`` when set (the book runner sets it), else ``<repo>/_build/results``.

File layout (plain JSON)::

    {"chapter": str, "profile": str | null, "params": {...},
     "values": {name: number | list | dict},
     "claims": {name: {"value", "threshold", "op", "passed", "paper_value", "description"}}}

Other chapters (the four-bar table) read them with :func:`load_results`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .cache import _json_default, atomic_write_json

_REPO_ROOT = Path(__file__).resolve().parent.parent

_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def results_dir() -> Path:
    env = os.environ.get("POLYROT_RESULTS_DIR")
    path = Path(env) if env else _REPO_ROOT / "_build" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays to JSON types (NaN becomes null)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return None if math.isnan(f) else f
    if value is None or isinstance(value, str):
        return value
    try:
        return _plain(_json_default(value))
    except TypeError:
        raise TypeError(f"results values must be numbers, strings, lists or dicts; got {type(value).__name__}")


class ChapterResults:
    """Collects a chapter's headline numbers and writes them to ``<chapter>.json``."""

    def __init__(self, chapter: str, params: Mapping[str, Any] | None = None, profile: str | None = None):
        if not chapter or "/" in chapter:
            raise ValueError(f"chapter must be a notebook stem like '01_planted_rotations', got {chapter!r}")
        self.chapter = chapter
        self.path = results_dir() / f"{chapter}.json"
        self.data: dict[str, Any] = {
            "chapter": chapter,
            "profile": profile if profile is not None else os.environ.get("POLYROT_PROFILE"),
            "params": _plain(dict(params or {})),
            "values": {},
            "claims": {},
        }
        self._write()

    def record(self, name: str, value: Any) -> None:
        """Record one value (number, list, or small dict-table) under ``name``.

        Returns ``None`` on purpose, so a notebook cell ending in ``results.record(...)`` does not
        echo the value into the rendered page."""
        self.data["values"][name] = _plain(value)
        self._write()

    def claim(
        self,
        name: str,
        *,
        value: float,
        threshold: float,
        op: str,
        paper_value: Any = None,
        description: str = "",
        strict_threshold: float | None = None,
        strict_op: str | None = None,
        strict_description: str = "",
        p_value: float | None = None,
        kind: str = "paper",
    ) -> bool:
        """Record a pass/fail claim: ``passed = value <op> threshold``. Returns ``passed``.

        ``threshold``/``op`` are the paper's criterion; ``strict_threshold``/``strict_op`` (and a
        description) our stricter version of it, when we have one. ``p_value`` attaches the
        calibrated p-value of the test behind the claim, when there is one. ``kind`` is
        ``"paper"`` for a claim the paper makes and ``"check"`` for one of our own instrument or
        sanity checks (planted answers, controls), which the verdict table lists apart.
        """
        if kind not in ("paper", "check"):
            raise ValueError(f"kind must be 'paper' or 'check', got {kind!r}")
        if op not in _OPS:
            raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
        if strict_op is not None and strict_op not in _OPS:
            raise ValueError(f"strict_op must be one of {sorted(_OPS)}, got {strict_op!r}")
        v = float(value)
        passed = bool(_OPS[op](v, float(threshold))) if not math.isnan(v) else False
        entry: dict[str, Any] = {
            "value": v,
            "threshold": threshold,
            "op": op,
            "passed": passed,
            "paper_value": paper_value,
            "description": description,
            "kind": kind,
        }
        if strict_threshold is not None:
            sop = strict_op or op
            entry.update(
                strict_threshold=strict_threshold,
                strict_op=sop,
                strict_passed=bool(_OPS[sop](v, float(strict_threshold))) if not math.isnan(v) else False,
                strict_description=strict_description,
            )
        if p_value is not None:
            entry["p_value"] = float(p_value)
        self.data["claims"][name] = _plain(entry)
        self._write()
        return passed

    def __getitem__(self, name: str) -> Any:
        return self.data["values"][name]

    def _write(self) -> None:
        atomic_write_json(self.path, self.data)


def load_results(chapter: str, directory: Path | str | None = None) -> dict[str, Any]:
    """Read a chapter's results file; a clear error if that chapter has not run yet."""
    base = Path(directory) if directory is not None else results_dir()
    path = base / f"{chapter}.json"
    if not path.exists():
        have = sorted(p.stem for p in base.glob("*.json"))
        raise FileNotFoundError(
            f"no results for chapter {chapter!r} in {base} (run that chapter first); results present: {have}"
        )
    return json.loads(path.read_text())


def load_all_results(directory: Path | str | None = None) -> dict[str, dict[str, Any]]:
    base = Path(directory) if directory is not None else results_dir()
    return {p.stem: json.loads(p.read_text()) for p in sorted(base.glob("*.json"))}
