"""Machine-readable results files, one per chapter.

A notebook records its headline numbers through one object::

    results = ChapterResults("01_planted_rotations", params=dict(seed=seed, d=d))
    results.record("max_abs_error", err)                # a number
    results.record("ev_by_site", {"blocks.0.hook_resid_post": 0.97})  # a small table
    results.claim("aligned_ev_gap", value=gap, threshold=0.025, op="<=",
                  paper_value=0.025, description="aligned EV within 0.025 of ceiling")

Every ``record``/``claim`` rewrites ``<write_dir>/<chapter>.json`` atomically, so a chapter
that fails halfway still leaves what it had measured. Under the book runner ``write_dir`` is a
staging folder (``<build>/partial/results``): the runner moves the file into
``<build>/results`` (``$POLYROT_RESULTS_DIR``, where chapters read) with ``"complete": true``
only when the chapter has finished, so an interrupted chapter never replaces a complete file.
Outside the runner both are ``<repo>/_build/results`` and files stay ``"complete": false``.

File layout (plain JSON)::

    {"chapter": str, "profile": str | null, "params": {...},
     "values": {name: number | list | dict},
     "claims": {name: {"value", "threshold", "op", "passed", "paper_value", "description"}},
     "complete": bool}

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
    """Where chapters' results are read from (``$POLYROT_RESULTS_DIR``, else ``_build/results``)."""
    env = os.environ.get("POLYROT_RESULTS_DIR")
    path = Path(env) if env else _REPO_ROOT / "_build" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_write_dir() -> Path:
    """Where a running chapter writes its own results: ``$POLYROT_RESULTS_WRITE_DIR`` (the book
    runner's staging folder, moved into :func:`results_dir` only when the chapter finishes),
    else :func:`results_dir`."""
    env = os.environ.get("POLYROT_RESULTS_WRITE_DIR")
    if not env:
        return results_dir()
    path = Path(env)
    path.mkdir(parents=True, exist_ok=True)
    return path


class IncompleteResultsError(RuntimeError):
    """A results file lacks ``"complete": true``: its chapter was interrupted, failed, or ran
    outside the book runner, so its numbers may be partial."""


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
        self.path = results_write_dir() / f"{chapter}.json"
        self.data: dict[str, Any] = {
            "chapter": chapter,
            "profile": profile if profile is not None else os.environ.get("POLYROT_PROFILE"),
            "params": _plain(dict(params or {})),
            "values": {},
            "claims": {},
            # the book runner sets this to true when the chapter has run to its end
            "complete": False,
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


def _check_complete(data: dict[str, Any], path: Path) -> None:
    if data.get("complete") is not True:
        chapter = data.get("chapter", path.stem)
        raise IncompleteResultsError(
            f"{path} is not marked complete (chapter {chapter} was interrupted, failed, or ran outside the book "
            f"runner); rerun it with: python -m polyrot_utils.book run {chapter} --profile <profile>"
        )


def load_results(chapter: str, directory: Path | str | None = None, *, require_complete: bool = False) -> dict[str, Any]:
    """Read a chapter's results file; a clear error if that chapter has not run yet, and
    :class:`IncompleteResultsError` if ``require_complete`` and it did not finish."""
    base = Path(directory) if directory is not None else results_dir()
    path = base / f"{chapter}.json"
    if not path.exists():
        have = sorted(p.stem for p in base.glob("*.json"))
        raise FileNotFoundError(
            f"no results for chapter {chapter!r} in {base} (run that chapter first); results present: {have}"
        )
    data = json.loads(path.read_text())
    if require_complete:
        _check_complete(data, path)
    return data


def load_all_results(directory: Path | str | None = None, *, require_complete: bool = False) -> dict[str, dict[str, Any]]:
    """Every ``<chapter>.json`` in the folder; with ``require_complete``, an
    :class:`IncompleteResultsError` naming any that did not finish."""
    base = Path(directory) if directory is not None else results_dir()
    out = {}
    for p in sorted(base.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except ValueError as exc:
            raise IncompleteResultsError(f"{p} is not valid JSON ({exc}); rerun chapter {p.stem}") from None
        if require_complete:
            _check_complete(data, p)
        out[p.stem] = data
    return out
