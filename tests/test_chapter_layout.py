"""Chapters read as lectures, and twin chapters do not repeat each other (issue 12).

Read from the jupytext sources, no execution:

* every code cell holds at most 20 lines;
* a rung chapter (11–15 Dyck, 21–25 Pythia) holds at most 80 lines of code;
* a Dyck chapter and its Pythia twin share no run of 6 or more code lines of the same shape
  (the same tokens once names, strings and numbers are blanked): the analysis lives once in
  ``polyrot_utils/experiments/`` and each chapter only says which activations go in;
* no notebook changes a process-wide setting (``torch.set_num_threads``), prints a caption, or
  reads a results file's raw dictionary (``results.data[...]``).

The same-shape comparison here is written from that definition (tokenize, blank the names,
strings and numbers, compare runs of consecutive code lines), independently of any tool.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TWINS = [(f"1{i}", f"2{i}") for i in range(1, 6)]
MAX_CELL_LINES = 20
MAX_RUNG_CODE_LINES = 80
MAX_SHARED_RUN = 5


def _source(prefix: str) -> Path:
    (path,) = NOTEBOOKS.glob(f"{prefix}_*.py")
    return path


def _cells(path: Path) -> list[tuple[str, list[str]]]:
    """``(kind, code lines)`` per jupytext percent cell (kind ``markdown``, ``parameters`` or
    ``code``); code lines drop comments and blanks."""
    cells: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            cells.append(("parameters" if '"parameters"' in line else kind, []))
        elif cells and cells[-1][0] != "markdown" and line.strip() and not line.lstrip().startswith(
            "#"
        ):
            cells[-1][1].append(line)
    return cells


def _code_lines(path: Path, parameters: bool = True) -> list[str]:
    """The chapter's code lines, with or without its parameters cell (declarations, one line per
    parameter: twin chapters declare the same experiment parameters by design)."""
    keep = ("code", "parameters") if parameters else ("code",)
    return [ln for kind, lines in _cells(path) if kind in keep for ln in lines]


def _shape(line: str) -> str:
    """A line's shape: its tokens with every name, string and number blanked."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                out.append("N")
            elif tok.type == tokenize.STRING or tok.type in _FSTRING:
                out.append("S")
            elif tok.type == tokenize.NUMBER:
                out.append("0")
            elif tok.type in (tokenize.OP,) or keyword.iskeyword(tok.string):
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError):  # a line of a multi-line statement
        out = re.sub(r"\w+", "N", line.strip()).split()
    return " ".join(out)


_FSTRING = {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
            if hasattr(tokenize, n)}


def longest_shared_run(a: list[str], b: list[str]) -> tuple[int, int, int]:
    """``(length, i, j)`` of the longest run ``a[i:i+length]`` of the same shapes as
    ``b[j:j+length]``."""
    sa, sb = [_shape(x) for x in a], [_shape(x) for x in b]
    best = (0, 0, 0)
    prev = [0] * (len(sb) + 1)
    for i in range(1, len(sa) + 1):
        cur = [0] * (len(sb) + 1)
        for j in range(1, len(sb) + 1):
            if sa[i - 1] == sb[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best[0]:
                    best = (cur[j], i - cur[j], j - cur[j])
        prev = cur
    return best


def test_the_shape_comparison_catches_a_renamed_copy():
    a = ["x = f(a, 1)", "y = g(x)", "show(y)", "t = table(y, sig=3)", "display(t)", "z = 2"]
    b = ["u = f(b, 7)", "v = g(u)", "show(v)", "w = table(v, sig=4)", "display(w)", "q = 5"]
    assert longest_shared_run(a, b)[0] == 6
    b[2] = "for k in v: show(k)"
    assert longest_shared_run(a, b)[0] == 3


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long = [(n, len(lines)) for n, (kind, lines) in enumerate(_cells(path))
            if kind != "markdown" and len(lines) > MAX_CELL_LINES]
    assert not long, f"{path.name}: cells (index, code lines) over {MAX_CELL_LINES}: {long}"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_no_process_settings_printed_captions_or_raw_results(path):
    text = path.read_text()
    for pattern in (r"set_num_threads", r"print\(\s*[\"']Figure", r"results\.data\["):
        assert not re.search(pattern, text), f"{path.name} contains {pattern!r}"


@pytest.mark.parametrize("dyck, pythia", TWINS)
def test_rung_chapters_are_short(dyck, pythia):
    for prefix in (dyck, pythia):
        n = len(_code_lines(_source(prefix)))
        assert n <= MAX_RUNG_CODE_LINES, f"{_source(prefix).name}: {n} code lines"


@pytest.mark.parametrize("dyck, pythia", TWINS)
def test_twin_chapters_share_no_run_of_code(dyck, pythia):
    a = _code_lines(_source(dyck), parameters=False)
    b = _code_lines(_source(pythia), parameters=False)
    n, i, j = longest_shared_run(a, b)
    assert n <= MAX_SHARED_RUN, (
        f"{_source(dyck).name} and {_source(pythia).name} share {n} code lines of the same "
        f"shape:\n" + "\n".join(a[i : i + n]) + "\n~\n" + "\n".join(b[j : j + n])
    )
