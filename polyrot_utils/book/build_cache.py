"""Incremental builds: skip a chapter whose inputs have not changed since it last succeeded.

Jupyter Book users know this from jupyter-cache: a notebook is executed again only when its
code changed. Here a chapter's *inputs* are hashed into one key:

- the chapter's jupytext source (``notebooks/<stem>.py``);
- the parameters papermill injects (after the profile and the ``-p`` overrides are resolved)
  and the profile's name;
- the library: every ``*.py`` file under ``polyrot_utils/`` (one hash of the package — a
  change anywhere in the library re-executes every chapter, which is coarse but never stale);
- committed data the chapters read (``reference/``, when the repository has one);
- for a chapter that *reads other chapters' results* (the synthesis chapters: its source calls
  ``load_results``, ``load_all_results`` or ``claims_table``, or reads ``timings.json``): the
  bytes of every other data chapter's results file (not the other readers'), so a changed upstream
  number re-executes it.

After a successful execution the runner writes ``<build>/executed/stamps/<stem>.json`` with
that key. On the next build, a chapter whose key matches its stamp, and whose executed notebook
and results file are still there, is not executed again; ``--force`` ignores every stamp. A
failed or interrupted execution writes no stamp, so it is always retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyrot_utils.core.cache import atomic_write_json

__all__ = ["chapter_key", "is_fresh", "package_hash", "reads_other_results", "write_stamp"]

_PACKAGE = Path(__file__).resolve().parents[1]
_READER_MARKERS = ("load_results(", "load_all_results(", "claims_table(", "timings.json")


def _hash_files(files: list[Path], base: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(base)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def package_hash(package: Path = _PACKAGE) -> str:
    """SHA-256 over the path and bytes of every ``*.py`` file in the library package."""
    return _hash_files([p for p in package.rglob("*.py") if "__pycache__" not in p.parts], package)


def reads_other_results(source_text: str) -> bool:
    """Whether a chapter's source reads other chapters' results (then they are inputs too)."""
    return any(marker in source_text for marker in _READER_MARKERS)


def _is_reader(root: Path, stem: str) -> bool:
    src = root / "notebooks" / f"{stem}.py"
    return src.exists() and reads_other_results(src.read_text())


def chapter_key(
    stem: str,
    profile: str,
    parameters: Mapping[str, Any],
    root: Path,
    build: Path,
) -> str:
    """The hash of everything a chapter's execution depends on (see the module docstring)."""
    source = (root / "notebooks" / f"{stem}.py").read_text()
    parts: dict[str, Any] = {
        "stem": stem,
        "profile": profile,
        "parameters": json.loads(json.dumps(dict(parameters), sort_keys=True, default=str)),
        "source": hashlib.sha256(source.encode()).hexdigest(),
        "package": package_hash(root / "polyrot_utils")
        if (root / "polyrot_utils").is_dir()
        else package_hash(),
    }
    reference = root / "reference"
    if reference.is_dir():
        parts["reference"] = _hash_files(
            [p for p in reference.rglob("*") if p.is_file()], reference
        )
    if reads_other_results(source):
        results = build / "results"
        # the data chapters' results; other readers' are left out (they read the same data, and
        # counting them would make the readers depend on each other in a cycle)
        others = (
            [p for p in results.glob("*.json") if p.stem != stem and not _is_reader(root, p.stem)]
            if results.is_dir()
            else []
        )
        parts["upstream_results"] = _hash_files(others, results) if others else None
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _stamp_path(build: Path, stem: str) -> Path:
    return build / "executed" / "stamps" / f"{stem}.json"


def is_fresh(stem: str, key: str, build: Path) -> dict[str, Any] | None:
    """The stamp of the chapter's last successful execution if it used ``key`` and its outputs
    (executed notebook, results file) are still in place; else ``None``."""
    stamp_file = _stamp_path(build, stem)
    if not stamp_file.exists():
        return None
    try:
        stamp = json.loads(stamp_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stamp.get("key") != key:
        return None
    if not (build / "executed" / "notebooks" / f"{stem}.ipynb").exists():
        return None
    if stamp.get("has_results") and not (build / "results" / f"{stem}.json").exists():
        return None
    return stamp


def write_stamp(
    stem: str, key: str, build: Path, seconds: float, parameters: Mapping[str, Any]
) -> Path:
    """Record a successful execution (called only after the chapter's outputs are in place)."""
    return atomic_write_json(
        _stamp_path(build, stem),
        {
            "key": key,
            "seconds": round(float(seconds), 2),
            "parameters": dict(parameters),
            "has_results": (build / "results" / f"{stem}.json").exists(),
        },
    )
