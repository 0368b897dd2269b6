"""Tidy an executed notebook before Jupyter Book renders it: what the reader should not see twice.

papermill adds an ``injected-parameters`` cell after the notebook's ``parameters`` cell. Rendered
as is, a page shows two folded parameter cells (two code toggles, the second repeating the
first's names with other values). :func:`tidy_executed_notebook` merges them into one cell: the
declared defaults with their comments, then the values this build injected, under a comment
that says so; the merged cell is folded (``hide-input``) and the injected cell is removed. The
values that produced the page are still one click away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["INJECTED_HEADER", "tidy_executed_file", "tidy_executed_notebook"]

INJECTED_HEADER = (
    "# --- the values this build used (injected by papermill; they override the defaults above) ---"
)


def _tags(cell: Any) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def tidy_executed_notebook(nb: Any) -> Any:
    """Merge papermill's injected-parameters cell into the parameters cell, in place; return ``nb``.

    Works on an ``nbformat`` notebook (v4). Idempotent. With no injected cell, the parameters
    cell is only folded. With an injected cell but no parameters cell, the injected cell itself is
    kept, folded. Cell outputs are untouched (parameter cells have none)."""
    cells = nb.cells
    params = next(
        (c for c in cells if c.get("cell_type") == "code" and "parameters" in _tags(c)), None
    )
    injected = [
        c for c in cells if c.get("cell_type") == "code" and "injected-parameters" in _tags(c)
    ]
    if params is not None and injected:
        extra = "\n".join(str(c.get("source", "")).strip() for c in injected).strip()
        body = [ln for ln in extra.splitlines() if not ln.startswith("# Parameters")]
        if body:
            params["source"] = (
                str(params.get("source", "")).rstrip()
                + "\n\n"
                + INJECTED_HEADER
                + "\n"
                + "\n".join(body)
            )
        nb.cells = [c for c in cells if not any(c is i for i in injected)]
    for c in nb.cells:
        tags = _tags(c)
        if "parameters" in tags or "injected-parameters" in tags:
            for t in ("hide-input",):
                if t not in tags:
                    tags.append(t)
            for t in ("hide-cell", "hide-output"):  # a second toggle on the same cell
                while t in tags:
                    tags.remove(t)
    return nb


def tidy_executed_file(path: Path | str) -> None:
    """Apply :func:`tidy_executed_notebook` to the ``.ipynb`` at ``path`` (rewritten atomically)."""
    import os

    import nbformat

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    tidy_executed_notebook(nb)
    tmp = path.with_name(path.name + ".tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)
