"""Machine-readable results files, one per chapter.

A notebook records its headline numbers through one object::

    results = ChapterResults("01_planted_rotations", params=dict(seed=seed, d=d))
    results.record("max_abs_error", err)                # a number
    results.record("ev_by_site", {"blocks.0.hook_resid_post": 0.97})  # a small table
    results.claim("aligned_ev_gap", value=gap, threshold=0.025, op="<=", kind="paper",
                  paper_value="within 0.025", source="§8.2; exp1d_rotation_audit.py:run",
                  description="aligned EV within 0.025 of ceiling")
    results.claim("aligned_ev_gap_heldout", value=gap_ho, threshold=0.025, op="<=", kind="check",
                  check_of="aligned_ev_gap", why_stricter="held-out rows, per-dimension variance",
                  description="...")

Claim kinds. ``kind="paper"``: the paper's own statistic (its sites, pairs, sample, variance,
aggregation, threshold and direction), with ``paper_value`` (what the paper reports: a number,
a range or a short phrase) and ``source`` (the paper's section and/or the file and function of
its repository that defines the statistic) — both required and non-empty. ``paper_verdict``
(default ``True``) says whether the paper reports its own value as meeting the criterion (its
Bar P, for one, it reports as failing): a claim *replicates* when our verdict equals the
paper's. ``kind="check"``: our own test — an instrument check, or a stricter or different
version of a paper claim, which names that claim in ``check_of`` and says in one line
``why_stricter`` how it differs (required with ``check_of``).

Every ``record``/``claim`` rewrites ``<write_dir>/<chapter>.json`` atomically, so a chapter
that fails halfway still leaves what it had measured. Under the book runner ``write_dir`` is a
staging folder (``<build>/partial/results``): the runner moves the file into
``<build>/results`` (``$POLYROT_RESULTS_DIR``, where chapters read) with ``"complete": true``
only when the chapter has finished, so an interrupted chapter never replaces a complete file.
Outside the runner both are ``<repo>/_build/results`` and files stay ``"complete": false``.

File layout (plain JSON)::

    {"chapter": str, "profile": str | null, "params": {...},
     "values": {name: number | list | dict},
     "claims": {name: {"value", "threshold", "op", "passed", "kind", "description",
                       paper claims: "paper_value", "source", "paper_verdict";
                       checks: optional "check_of", "why_stricter"}},
     "complete": bool}

Other chapters (the four-bar table) read them with :func:`load_results`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polyrot_utils.core.cache import _json_default, atomic_write_json

__all__ = [
    "ChapterResults",
    "IncompleteResultsError",
    "load_all_results",
    "load_results",
    "paper_claim_problems",
    "results_dir",
    "results_write_dir",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]

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
    except TypeError as err:
        raise TypeError(
            f"results values must be numbers, strings, lists or dicts; got {type(value).__name__}"
        ) from err


class ChapterResults:
    """Collects a chapter's headline numbers and writes them to ``<chapter>.json``."""

    def __init__(
        self, chapter: str, params: Mapping[str, Any] | None = None, profile: str | None = None
    ):
        if not chapter or "/" in chapter:
            raise ValueError(
                f"chapter must be a notebook stem like '01_planted_rotations', got {chapter!r}"
            )
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
        source: str | None = None,
        paper_verdict: bool = True,
        check_of: str | None = None,
        why_stricter: str | None = None,
        interval: Any = None,
    ) -> bool:
        """Record a pass/fail claim: ``passed = value <op> threshold``. Returns ``passed``.

        ``threshold``/``op`` are the paper's criterion; ``strict_threshold``/``strict_op`` (and a
        description) our stricter version of it, when we have one. ``p_value`` attaches the
        calibrated p-value of the test behind the claim, when there is one. ``kind`` is
        ``"paper"`` for a claim the paper makes and ``"check"`` for one of our own instrument or
        sanity checks (planted answers, controls), which the verdict table lists apart.

        A ``"paper"`` claim must carry a non-empty ``paper_value`` and ``source`` (see the module
        docstring); ``paper_verdict`` is the paper's own verdict on its criterion. A ``"check"``
        that is a stricter or different version of a paper claim names it in ``check_of`` and
        gives ``why_stricter``. ``interval``: the headline's spread across seeds, an
        :class:`polyrot_utils.core.intervals.Interval` (or its ``as_dict()``), shown beside the
        value by the verdict. Raises ``ValueError`` naming the argument otherwise.
        """
        if kind not in ("paper", "check"):
            raise ValueError(f"kind must be 'paper' or 'check', got {kind!r}")
        if kind == "paper":
            if paper_value is None or (isinstance(paper_value, str) and not paper_value.strip()):
                raise ValueError(
                    f"claim {name!r}: a kind='paper' claim needs paper_value (what the paper "
                    "reports)"
                )
            if not isinstance(source, str) or not source.strip():
                raise ValueError(
                    f"claim {name!r}: a kind='paper' claim needs source (paper section and/or "
                    "repo file:function)"
                )
            if check_of is not None or why_stricter is not None:
                raise ValueError(
                    f"claim {name!r}: check_of/why_stricter belong to kind='check' claims"
                )
        else:
            if check_of is not None and (
                not isinstance(why_stricter, str) or not why_stricter.strip()
            ):
                raise ValueError(
                    f"claim {name!r}: a check with check_of={check_of!r} needs why_stricter (one "
                    "line)"
                )
        if not isinstance(paper_verdict, (bool, np.bool_)):
            raise ValueError(f"paper_verdict must be a bool, got {paper_verdict!r}")
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
        if kind == "paper":
            entry.update(
                source=source,
                paper_verdict=bool(paper_verdict),
                replicates=(passed == bool(paper_verdict)) if not math.isnan(v) else False,
            )
        else:
            if check_of is not None:
                entry["check_of"] = check_of
            if why_stricter is not None:
                entry["why_stricter"] = why_stricter
        if strict_threshold is not None:
            sop = strict_op or op
            entry.update(
                strict_threshold=strict_threshold,
                strict_op=sop,
                strict_passed=bool(_OPS[sop](v, float(strict_threshold)))
                if not math.isnan(v)
                else False,
                strict_description=strict_description,
            )
        if p_value is not None:
            entry["p_value"] = float(p_value)
        if interval is not None:
            iv = interval.as_dict() if hasattr(interval, "as_dict") else dict(interval)
            missing = {"point", "lo", "hi", "n", "level", "method"} - set(iv)
            if missing:
                raise ValueError(
                    f"claim {name!r}: interval lacks {sorted(missing)} (use "
                    "polyrot_utils.core.intervals)"
                )
            entry["interval"] = iv
        self.data["claims"][name] = _plain(entry)
        self._write()
        return passed

    def __getitem__(self, name: str) -> Any:
        return self.data["values"][name]

    def claims(self) -> dict[str, dict[str, Any]]:
        """A copy of the claims recorded so far, ``{name: entry}`` (see :meth:`claim`)."""
        return {k: dict(v) for k, v in self.data["claims"].items()}

    def values(self) -> dict[str, Any]:
        """A copy of the values recorded so far, ``{name: value}`` (see :meth:`record`)."""
        return dict(self.data["values"])

    def _write(self) -> None:
        atomic_write_json(self.path, self.data)


def _check_complete(data: dict[str, Any], path: Path) -> None:
    if data.get("complete") is not True:
        chapter = data.get("chapter", path.stem)
        raise IncompleteResultsError(
            f"{path} is not marked complete (chapter {chapter} was interrupted, failed, or ran "
            "outside the book "
            f"runner); rerun it with: python -m polyrot_utils.book run {chapter} --profile "
            "<profile>"
        )


def load_results(
    chapter: str, directory: Path | str | None = None, *, require_complete: bool = False
) -> dict[str, Any]:
    """Read a chapter's results file; a clear error if that chapter has not run yet, and
    :class:`IncompleteResultsError` if ``require_complete`` and it did not finish."""
    base = Path(directory) if directory is not None else results_dir()
    path = base / f"{chapter}.json"
    if not path.exists():
        have = sorted(p.stem for p in base.glob("*.json"))
        raise FileNotFoundError(
            f"no results for chapter {chapter!r} in {base} (run that chapter first); results "
            f"present: {have}"
        )
    data = json.loads(path.read_text())
    if require_complete:
        _check_complete(data, path)
    return data


def load_all_results(
    directory: Path | str | None = None, *, require_complete: bool = False
) -> dict[str, dict[str, Any]]:
    """Every ``<chapter>.json`` in the folder; with ``require_complete``, an
    :class:`IncompleteResultsError` naming any that did not finish."""
    base = Path(directory) if directory is not None else results_dir()
    out = {}
    for p in sorted(base.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except ValueError as exc:
            raise IncompleteResultsError(
                f"{p} is not valid JSON ({exc}); rerun chapter {p.stem}"
            ) from None
        if require_complete:
            _check_complete(data, p)
        out[p.stem] = data
    return out


def paper_claim_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the ``kind="paper"`` claims of one results file (empty list = fine):
    a missing or empty ``paper_value`` or ``source``. Claims without ``kind`` count as paper
    claims (the old default)."""
    out = []
    for name, c in (data.get("claims") or {}).items():
        if c.get("kind", "paper") != "paper":
            continue
        for field in ("paper_value", "source"):
            v = c.get(field)
            if v is None or (isinstance(v, str) and not v.strip()):
                out.append(f"{data.get('chapter', '?')}: paper claim {name!r} has no {field}")
    return out
