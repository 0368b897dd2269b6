"""Execute the book's notebooks with a parameter profile, then render them with Jupyter Book.

Command line (run from the repository root, inside the project's environment)::

    python -m polyrot_utils.book build --profile quick            # every chapter, then HTML
    python -m polyrot_utils.book run 01_planted_rotations --profile smoke -p d 32
    python -m polyrot_utils.book list                             # chapters in _toc.yml order
    python -m polyrot_utils.book params 01_planted_rotations      # its parameters and defaults

Pipeline, for each notebook listed in ``_toc.yml`` (in order):

1. read the jupytext percent-format source ``notebooks/<stem>.py`` and convert it to ipynb;
2. execute it with papermill, with the parameters of the profile (``params/<profile>.yaml``:
   ``defaults`` apply to every notebook that declares the parameter, ``notebooks.<stem>``
   to that notebook only) and then the command line's ``-p name value`` overrides;
3. write the executed notebook to ``<build>/executed/notebooks/<stem>.ipynb``.

Then the prose (``book/``), the executed notebooks, ``_config.yml`` and ``_toc.yml`` are staged
into ``<build>/src`` and Jupyter Book renders them with execution switched off (the notebooks
already carry their outputs) into ``<build>/html``, Sphinx warnings treated as errors.

Each chapter records its numbers into ``<build>/results/<stem>.json`` (see
:mod:`polyrot_utils.book.results`); the runner writes ``<build>/timings.json`` (wall seconds per
notebook and in total, and the profile).

Parameters are checked before any kernel starts, against the spec declared beside each one in
the ``parameters`` cell (see :func:`parameter_specs`): wrong types, out-of-range values and
unknown names are refused in one line. A chapter's executed notebook and results file are
written under ``<build>/partial/`` and moved into place, marked complete (notebook metadata
``polyrot.complete``, results key ``"complete": true``), only when it finishes. A failing cell
stops the build with a message naming the notebook and the cell (the executed notebook, traceback
included, is kept at ``<build>/partial/<stem>.ipynb``); Ctrl-C ends with one line and exit code
130; a kernel that dies ends with one line. In every case the previous complete outputs are left
untouched, and :func:`render` refuses outputs that are not marked complete.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tokenize
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polyrot_utils.book import build_cache, presentation
from polyrot_utils.core.cache import atomic_write_json, cache_root
from polyrot_utils.core.progress import PROGRESS_ENV

__all__ = [
    "PROFILES",
    "REPO_ROOT",
    "BookError",
    "ChapterInterrupted",
    "ParamSpec",
    "RunRecord",
    "build_book",
    "check_parameters",
    "coerce_cli_value",
    "declared_parameters",
    "execution_order",
    "load_profile",
    "main",
    "notebook_is_complete",
    "notebook_source",
    "parameter_specs",
    "read_notebook",
    "render",
    "resolve_notebook",
    "resolve_parameters",
    "run_notebook",
    "stage_sources",
    "toc_entries",
    "toc_notebooks",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "quick", "paper")


class BookError(RuntimeError):
    """A build problem the user must fix: the message says what and where."""


# ----------------------------------------------------------------------------- table of contents
def toc_entries(root: Path = REPO_ROOT) -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (root first), in reading order, without extension."""
    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        raise BookError(f"no _toc.yml in {root}")
    toc = yaml.safe_load(toc_path.read_text())
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    out.append(str(node[key]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return out


def toc_notebooks(root: Path = REPO_ROOT) -> list[str]:
    """Stems of the notebooks listed in ``_toc.yml`` (entries under ``notebooks/``), in order."""
    stems = []
    for entry in toc_entries(root):
        if entry.startswith("notebooks/"):
            stem = Path(entry).name
            if not (root / "notebooks" / f"{stem}.py").exists():
                raise BookError(f"_toc.yml lists {entry!r} but notebooks/{stem}.py does not exist")
            stems.append(stem)
    return stems


def resolve_notebook(name: str, root: Path = REPO_ROOT) -> str:
    """Accept a stem, ``notebooks/<stem>``, or a path to the .py source; return the stem."""
    stem = Path(name).name
    if stem.endswith(".py") or stem.endswith(".ipynb"):
        stem = Path(stem).stem
    known = toc_notebooks(root)
    if stem not in known:
        raise BookError(f"unknown notebook {name!r}; the book's notebooks are: {', '.join(known)}")
    return stem


# ----------------------------------------------------------------------------- parameters
def load_profile(profile: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """Read ``params/<profile>.yaml`` (keys ``defaults`` and ``notebooks``). A profile is a name
    (letters, digits, ``_``, ``-``), never a path."""
    have = sorted(p.stem for p in (root / "params").glob("*.yaml"))
    if not isinstance(profile, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", profile):
        raise BookError(
            f"profile must be a name like 'quick' (not a path), got {profile!r}; available "
            f"profiles: {', '.join(have)}"
        )
    path = root / "params" / f"{profile}.yaml"
    if not path.exists():
        have = sorted(p.stem for p in (root / "params").glob("*.yaml"))
        raise BookError(f"unknown profile {profile!r}; available profiles: {', '.join(have)}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise BookError(f"{path} must hold a mapping with keys 'defaults' and 'notebooks'")
    unknown = set(data) - {"description", "defaults", "notebooks"}
    if unknown:
        raise BookError(
            f"{path}: unknown top-level keys {sorted(unknown)} (expected description, defaults, "
            "notebooks)"
        )
    return {
        "description": data.get("description", ""),
        "defaults": dict(data.get("defaults") or {}),
        "notebooks": {k: dict(v or {}) for k, v in (data.get("notebooks") or {}).items()},
    }


def notebook_source(stem: str, root: Path = REPO_ROOT) -> Path:
    return root / "notebooks" / f"{stem}.py"


def _parameters_cell(stem: str, root: Path = REPO_ROOT) -> str:
    nb = read_notebook(stem, root)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise BookError(f"notebook {stem!r} has no cell tagged 'parameters'")


def declared_parameters(stem: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """Names and default values in the notebook's cell tagged ``parameters``."""
    return {name: spec.default for name, spec in parameter_specs(stem, root).items()}


# A parameter's accepted values are declared beside it, in the parameters cell, as a bracketed
# spec opening its trailing comment:
#
#     n_seeds = 3          # [int >= 2] seeds per cohort (paper: 5)
#     alpha = 0.05         # [float > 0, < 1] test level
#     steps = None         # [int|None >= 1] None = the profile's value
#     dims = [64, 512]     # [list[int] >= 2] bounds apply to every element
#     device = "auto"      # [str in {auto, cpu, cuda, mps}]
#
# Without a spec the type is the default's (int, float — ints accepted —, bool, str, list);
# a default of None accepts anything. Checked by the runner before a kernel starts.
_SPEC_RE = re.compile(r"^\[((?:[^\[\]]|\[[^\]]*\])*)\]")
_TYPE_RE = re.compile(
    r"^\s*(int|float|bool|str|list|dict|any)(?:\[(int|float|bool|str)\])?(\|None)?\s*"
)
_BOUND_RE = re.compile(r"^\s*,?\s*(>=|<=|>|<)\s*([-+0-9.eE_]+)\s*")
_CHOICE_RE = re.compile(r"^\s*,?\s*in\s*\{([^}]*)\}\s*")


@dataclass
class ParamSpec:
    """What one notebook parameter accepts (see the comment above :func:`parameter_specs`)."""

    name: str
    default: Any
    type: str = "any"  # int, float, bool, str, list, dict, any
    item_type: str | None = None  # for list[...]
    nullable: bool = False
    bounds: list[tuple[str, float]] = field(default_factory=list)
    choices: list[str] | None = None
    text: str = ""  # the declaration as written, for messages

    def describe(self) -> str:
        if self.text:
            return self.text
        return f"{self.type}" + ("|None" if self.nullable else "")

    def problem(self, value: Any) -> str | None:
        """``None`` when ``value`` is accepted, else a short reason."""
        if self.type == "any":
            return None
        if value is None:
            return None if self.nullable else "None is not accepted"
        if self.type == "dict":
            if not isinstance(value, dict):
                return f"expected a mapping, got {type(value).__name__}"
            if self.name == "suite_overrides":
                from polyrot_utils.tasks.pythia.suite import suite_overrides_problem

                return suite_overrides_problem(value)
            return None
        if self.type == "list":
            if not isinstance(value, list):
                return f"expected a list, got {type(value).__name__}"
            for item in value:
                why = self._scalar_problem(item, self.item_type)
                if why:
                    return f"element {item!r}: {why}"
            return None
        return self._scalar_problem(value, self.type)

    def _scalar_problem(self, value: Any, typ: str | None) -> str | None:
        if typ == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"expected an integer, got {type(value).__name__}"
        if typ == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"expected a number, got {type(value).__name__}"
        if typ == "bool" and not isinstance(value, bool):
            return f"expected true or false, got {type(value).__name__}"
        if typ == "str" and not isinstance(value, str):
            return f"expected a string, got {type(value).__name__}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return "not a finite number"
            for op, bound in self.bounds:
                if not _BOUND_OPS[op](value, bound):
                    return "out of range"
        if self.choices is not None and str(value) not in self.choices:
            return "not one of the choices"
        return None


_BOUND_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def _parse_spec(name: str, default: Any, comment: str, where: str) -> ParamSpec:
    m = _SPEC_RE.match(comment.lstrip("#").strip())
    if m is None:
        if default is None:
            return ParamSpec(name, default)
        typ = (
            "bool"
            if isinstance(default, bool)
            else "int"
            if isinstance(default, int)
            else "float"
            if isinstance(default, float)
            else "str"
            if isinstance(default, str)
            else "list"
            if isinstance(default, list)
            else "any"
        )
        return ParamSpec(name, default, typ)
    text = m.group(1).strip()
    t = _TYPE_RE.match(text)
    if t is None:
        raise BookError(
            f"{where}: parameter {name}: cannot read the spec [{text}] (expected e.g. [int >= 2])"
        )
    spec = ParamSpec(name, default, t.group(1), t.group(2), bool(t.group(3)), text=text)
    rest = text[t.end() :]
    while rest.strip():
        b = _BOUND_RE.match(rest)
        c = _CHOICE_RE.match(rest)
        if b:
            spec.bounds.append((b.group(1), float(b.group(2))))
            rest = rest[b.end() :]
        elif c:
            spec.choices = [x.strip().strip("'\"") for x in c.group(1).split(",") if x.strip()]
            rest = rest[c.end() :]
        else:
            raise BookError(
                f"{where}: parameter {name}: cannot read {rest.strip()!r} in the spec [{text}]"
            )
    if spec.problem(default) is not None:
        raise BookError(
            f"{where}: parameter {name}: its default {default!r} violates its own spec [{text}]"
        )
    return spec


def parameter_specs(stem: str, root: Path = REPO_ROOT) -> dict[str, ParamSpec]:
    """Every parameter of the notebook's ``parameters`` cell: default, type and bounds."""
    source = _parameters_cell(stem, root)
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string
    except (tokenize.TokenError, SyntaxError):
        pass
    specs: dict[str, ParamSpec] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None:
                continue
            try:
                default = ast.literal_eval(node.value)
            except ValueError:  # an expression: its value is known only in the kernel
                for target in targets:
                    if isinstance(target, ast.Name):
                        specs[target.id] = ParamSpec(target.id, ast.unparse(node.value))
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    specs[target.id] = _parse_spec(
                        target.id,
                        default,
                        comments.get(node.end_lineno or node.lineno, ""),
                        f"notebooks/{stem}.py",
                    )
    return specs


def check_parameters(
    stem: str, params: Mapping[str, Any], source: str, root: Path = REPO_ROOT
) -> None:
    """Raise :class:`BookError` (one line: notebook, parameter, value, what is accepted) for an
    unknown name or a value its spec refuses."""
    specs = parameter_specs(stem, root)
    for name, value in params.items():
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BookError(
                f"{source}: notebook {stem} has no parameter {name!r}{hint}; its parameters are: "
                f"{', '.join(sorted(specs))}"
            )
        why = specs[name].problem(value)
        if why is not None:
            raise BookError(
                f"{source}: notebook {stem}, parameter {name} = {value!r} is refused ({why}); "
                f"accepted: {specs[name].describe()}"
            )


def coerce_cli_value(text: str) -> Any:
    """``-p name value`` values are parsed as YAML scalars/lists (``3``, ``0.5``, ``[1, 2]``,
    ``true``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_parameters(
    stem: str,
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    root: Path = REPO_ROOT,
) -> dict[str, Any]:
    """The parameters papermill injects: profile defaults, then profile/notebook, then overrides.

    Profile ``defaults`` apply only where the notebook declares the name; a notebook section or
    an override naming a parameter the notebook does not declare is an error (a typo would
    otherwise be silently ignored).
    """
    prof = load_profile(profile, root)
    declared = declared_parameters(stem, root)
    params = {k: v for k, v in prof["defaults"].items() if k in declared}
    check_parameters(stem, params, f"params/{profile}.yaml, defaults", root)
    for source, values in (
        (f"params/{profile}.yaml, section {stem}", prof["notebooks"].get(stem, {})),
        ("command line", overrides or {}),
    ):
        check_parameters(stem, values, source, root)
        params.update(values)
    if "profile" in declared:
        params.setdefault("profile", profile)
    return params


# ----------------------------------------------------------------------------- execution
def read_notebook(stem: str, root: Path = REPO_ROOT):
    import jupytext

    src = notebook_source(stem, root)
    if not src.exists():
        raise BookError(f"notebook source {src} does not exist")
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


@contextmanager
def _sigint_recorded() -> Iterator[list[bool]]:
    """While a chapter runs, note every SIGINT before the previous handler sees it.

    nbclient turns a KeyboardInterrupt that lands inside its event loop into different errors
    depending on where it lands (a cell error, a stopped event loop, a dead kernel); the yielded
    flag lets the runner report each of them as the interrupt it is. Outside the main thread
    (where no handler can be set) the flag stays unset."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum: int, frame: Any) -> None:
        flag[0] = True
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress_echo(path: Path, stem: str, every: float = 1.0, gap: float = 3.0) -> Iterator[None]:
    """While a chapter runs, print the progress lines its library calls write to ``path``
    (:mod:`polyrot_utils.core.progress`) to the build log, ``[polyrot]   <stem> +<s>s: <line>``,
    at most one per ``gap`` seconds (the latest wins); the file is polled every ``every``
    seconds by a daemon thread, so a chapter that reports nothing prints nothing."""
    stop = threading.Event()
    start = time.time()

    def echo() -> None:
        offset, last = 0, 0.0
        while True:
            stopping = stop.wait(every)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                chunk = b""
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
            offset += len(complete)
            text = complete.decode("utf-8", errors="replace")
            lines = [ln.split("\t", 1) for ln in text.splitlines() if "\t" in ln]
            now = time.time()
            if lines and now - last >= gap:
                stamp, message = lines[-1]
                print(f"[polyrot]   {stem} +{float(stamp) - start:.0f}s: {message}", flush=True)
                last = now
            if stopping:
                return

    thread = threading.Thread(target=echo, name=f"progress-{stem}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass
class RunRecord:
    stem: str
    seconds: float
    output: Path
    parameters: dict[str, Any] = field(default_factory=dict)


def run_notebook(
    stem: str,
    profile: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    build_dir: Path | None = None,
    root: Path = REPO_ROOT,
    log_output: bool = False,
) -> RunRecord:
    """Execute one notebook with papermill; raise :class:`BookError` naming the failing cell."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    build = Path(build_dir) if build_dir else root / "_build"
    params = resolve_parameters(
        stem, profile, overrides, root
    )  # refuses bad values before any kernel
    nb = read_notebook(stem, root)
    out_dir = build / "executed" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    results_final = build / "results"
    results_final.mkdir(parents=True, exist_ok=True)
    # Outputs go to <build>/partial/ first and are moved into place only when the chapter has
    # finished: an interrupted or failed chapter leaves the previous complete outputs untouched.
    partial = build / "partial"
    partial_results = partial / "results"
    partial_results.mkdir(parents=True, exist_ok=True)
    (partial_results / f"{stem}.json").unlink(missing_ok=True)
    source_ipynb = build / "executed" / "sources" / f"{stem}.ipynb"
    source_ipynb.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(source_ipynb))
    output = out_dir / f"{stem}.ipynb"
    partial_output = partial / f"{stem}.ipynb"
    partial_output.unlink(missing_ok=True)
    kernel_log = partial / f"{stem}.kernel.log"
    kernel_log.unlink(missing_ok=True)
    untouched = (
        f"previous complete outputs ({output}, {results_final / (stem + '.json')}) are untouched"
    )
    key = build_cache.chapter_key(stem, profile, params, root, build)  # inputs, before execution

    env_keys = (
        "POLYROT_RESULTS_DIR",
        "POLYROT_RESULTS_WRITE_DIR",
        "POLYROT_PROFILE",
        PROGRESS_ENV,
        "PYTHONPATH",
        "TQDM_DISABLE",
    )
    env_backup = {k: os.environ.get(k) for k in env_keys}
    # progress bars are noise in a rendered page (and a researcher reading a live kernel can
    # unset it)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["POLYROT_RESULTS_DIR"] = str(results_final.resolve())  # where chapters read
    os.environ["POLYROT_RESULTS_WRITE_DIR"] = str(
        partial_results.resolve()
    )  # where this one writes
    os.environ["POLYROT_PROFILE"] = profile
    progress_file = partial / f"{stem}.progress"
    progress_file.unlink(missing_ok=True)
    os.environ[PROGRESS_ENV] = str(progress_file.resolve())
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env_backup["PYTHONPATH"]]))
    os.environ.pop("MPLBACKEND", None)  # papermill + MPLBACKEND=Agg silently drops inline figures
    start = time.perf_counter()
    with _sigint_recorded() as interrupted, _progress_echo(progress_file, stem):
        try:
            papermill.execute_notebook(
                str(source_ipynb),
                str(partial_output),
                parameters=params,
                kernel_name="python3",
                cwd=str(root),
                progress_bar=False,
                log_output=log_output,
                start_timeout=120,
                kernel_manager_class=_kernel_manager_class(kernel_log),
            )
        except PapermillExecutionError as err:
            if err.ename == "KeyboardInterrupt" or interrupted[0]:
                raise ChapterInterrupted(
                    f"interrupted while executing {stem}; {untouched}"
                ) from None
            raise BookError(
                f"notebook {stem!r} failed in cell {err.cell_index} "
                f"(execution count {err.exec_count}) "
                f"under profile {profile!r}: {err.ename}: {err.evalue}\n"
                f"--- cell source ---\n{err.source}\n--- end ---\n"
                "The executed notebook, with the traceback, is kept at "
                f"{partial_output}; {untouched}"
            ) from None
        except KeyboardInterrupt:
            raise ChapterInterrupted(f"interrupted while executing {stem}; {untouched}") from None
        except (
            Exception
        ) as err:  # the kernel died (killed, out of memory), timed out, or failed to start
            if interrupted[0]:  # ... or a SIGINT reached nbclient's loop (see _sigint_recorded)
                raise ChapterInterrupted(
                    f"interrupted while executing {stem}; {untouched}"
                ) from None
            raise BookError(
                f"notebook {stem!r} did not finish under profile {profile!r}: the kernel stopped "
                f"({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no message'}; the "
                "kernel's own log is "
                f"{kernel_log}); {untouched}"
            ) from None
        finally:
            for k, v in env_backup.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    seconds = time.perf_counter() - start
    _finish_notebook(partial_output, stem, profile)
    staged = partial_results / f"{stem}.json"
    if staged.exists():
        data = json.loads(staged.read_text())
        data["complete"] = True  # written last: the chapter ran to its end
        atomic_write_json(results_final / f"{stem}.json", data)
        staged.unlink()
    os.replace(partial_output, output)
    kernel_log.unlink(missing_ok=True)
    progress_file.unlink(missing_ok=True)
    build_cache.write_stamp(stem, key, build, seconds, params)  # last: the outputs are in place
    return RunRecord(stem, seconds, output, params)


class _DropPapermillParameterNoise(logging.Filter):
    """papermill re-parses the parameters cell with a regex that gives up on lines holding more
    than one ``=`` (our ``[int >= 2]`` specs) and then warns that every such parameter is
    unknown. The runner has already checked names and values against the specs, so drop those
    warnings; and nbclient's "Kernel died while waiting" (the runner says it in its own line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not msg.startswith(
            ("Unable to parse line", "Passed unknown parameter", "Kernel died while waiting")
        )


_PM_FILTER = _DropPapermillParameterNoise()
for _name in ("papermill", "papermill.translators"):
    logging.getLogger(_name).addFilter(_PM_FILTER)


def _kernel_manager_class(log_path: Path) -> type:
    """A kernel manager whose kernel writes its own stdout/stderr (IPKernelApp warnings, the
    tracebacks of a kernel torn down by Ctrl-C) to ``log_path`` instead of the runner's
    terminal, so an interrupted or failed run ends with the runner's one-line message."""
    from jupyter_client.manager import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            log = open(log_path, "ab")  # noqa: SIM115 - the kernel process holds its own copy
            kw["stdout"] = log
            kw["stderr"] = log
            try:
                await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                log.close()

        _launch_kernel = _async_launch_kernel

    return _LoggedKernelManager


class ChapterInterrupted(BookError):
    """The user interrupted a chapter (Ctrl-C / SIGINT); nothing of it was moved into place."""


def notebook_is_complete(path: Path) -> bool:
    """Whether an executed notebook carries the runner's completion marker."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:
        return False
    return bool(nb.metadata.get("polyrot", {}).get("complete"))


def _finish_notebook(path: Path, stem: str, profile: str) -> None:
    """Mark a notebook that ran to its end (metadata ``polyrot.complete``) and fold its
    parameter cells."""
    import nbformat

    _tag_parameter_cells(path)
    nb = presentation.tidy_executed_notebook(
        nbformat.read(str(path), as_version=4)
    )  # one parameters cell
    nb.metadata["polyrot"] = {"complete": True, "chapter": stem, "profile": profile}
    nbformat.write(nb, str(path))


def _tag_parameter_cells(path: Path) -> None:
    """Fold the parameter cells in the rendered page (``hide-input``: one click shows them) so
    readers meet prose first, and researchers still see which values produced the page."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-input" not in tags:
            tags.append("hide-input")
    nbformat.write(nb, str(path))


# ----------------------------------------------------------------------------- rendering
def stage_sources(build: Path, root: Path = REPO_ROOT) -> Path:
    """Copy config, toc, prose and executed notebooks into ``<build>/src`` for Jupyter Book."""
    src = build / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        if (root / name).exists():
            shutil.copy2(root / name, src / name)
    if (root / "book").exists():
        shutil.copytree(root / "book", src / "book")
    if (root / "_static").exists():  # the book's CSS (Jupyter Book adds every _static/*.css)
        shutil.copytree(root / "_static", src / "_static")
    _stage_mathjax(src / "_extra" / "mathjax")
    nb_dir = src / "notebooks"
    nb_dir.mkdir()
    for stem in toc_notebooks(root):
        executed = build / "executed" / "notebooks" / f"{stem}.ipynb"
        if not executed.exists():
            raise BookError(
                f"notebook {stem!r} has not been executed (expected {executed}); run the build "
                "first"
            )
        if not notebook_is_complete(executed):
            raise BookError(
                f"notebook {stem!r}: {executed} is not marked complete (an interrupted or older "
                "run); "
                f"rerun it: python -m polyrot_utils.book run {stem} --profile <profile>"
            )
        res = build / "results" / f"{stem}.json"
        if res.exists():
            try:
                ok = json.loads(res.read_text()).get("complete") is True
            except ValueError:
                ok = False
            if not ok:
                raise BookError(
                    f"chapter {stem!r}: results file {res} is not marked complete (an interrupted "
                    "or older run); "
                    f"rerun it: python -m polyrot_utils.book run {stem} --profile <profile>"
                )
        shutil.copy2(executed, nb_dir / f"{stem}.ipynb")
    return src


def _stage_mathjax(dest: Path) -> None:
    """Serve MathJax from the site itself, so equations render offline too.

    The files go to ``_extra/mathjax`` (copied verbatim to the site root by ``html_extra_path``;
    under ``_static`` Jupyter Book would add a script tag for every .js file), and
    ``_config.yml`` points ``mathjax_path`` there; the files come from the
    ``jupyter-server-mathjax`` wheel (MathJax 2.7, installed with --no-deps)."""
    import importlib.util

    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise BookError(
            "jupyter-server-mathjax is not installed (requirements-nodeps.txt); "
            "the book needs it for equations"
        )
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    shutil.copytree(static, dest)


def render(build: Path, root: Path = REPO_ROOT, strict: bool = True) -> Path:
    """Render the staged book to ``<build>/html``; Sphinx warnings are errors when ``strict``."""
    src = stage_sources(build, root)
    out = build / "jb"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(src),
        "--path-output",
        str(out),
        "--all",
    ]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=str(root), capture_output=True, text=True)
    log = build / "jupyter-book.log"
    log.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).splitlines()
        problems = [
            ln for ln in lines if ("WARNING" in ln or "ERROR" in ln) and "IPKernelApp" not in ln
        ]
        tail = "\n".join(problems[-30:] or lines[-40:])
        raise BookError(
            f"Jupyter Book failed (exit {proc.returncode}; Sphinx warnings are errors); full log "
            f"at {log}\n{tail}"
        )
    html = build / "html"
    tmp = build / "html.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(out / "_build" / "html", tmp)
    if html.exists():
        shutil.rmtree(html)
    os.replace(tmp, html)
    return html / "index.html"


def execution_order(stems: Sequence[str], root: Path = REPO_ROOT) -> list[str]:
    """The order chapters execute in: ``_toc.yml`` order, except that chapters reading other
    chapters' results (the findings page, the verdict, the conclusions, the performance page)
    come after every other chapter, in their own ``_toc.yml`` order."""
    readers = [
        s for s in stems if build_cache.reads_other_results(notebook_source(s, root).read_text())
    ]
    return [s for s in stems if s not in readers] + readers


def build_book(
    profile: str = "quick",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    only: Sequence[str] | None = None,
    build_dir: Path | None = None,
    root: Path = REPO_ROOT,
    render_html: bool = True,
    strict: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Execute every notebook (or ``only`` those), then render the book.

    Chapters execute in ``_toc.yml`` order, except that chapters reading other chapters' results
    (the synthesis pages) execute after all the others. A chapter whose inputs are unchanged since
    its last successful execution (source, resolved parameters, library, upstream results: see
    :mod:`polyrot_utils.book.build_cache`) is not executed again unless ``force``.

    ``overrides`` maps a notebook stem (or ``"*"`` for every notebook that declares the name)
    to ``{parameter: value}``. Returns the timings record also written to ``<build>/timings.json``.
    """
    build = Path(build_dir) if build_dir else root / "_build"
    build.mkdir(parents=True, exist_ok=True)
    load_profile(profile, root)  # fail early on a bad profile name
    stems = toc_notebooks(root)
    if only:
        wanted = [resolve_notebook(s, root) for s in only]
        stems = [s for s in stems if s in wanted]
    overrides = dict(overrides or {})
    for key in overrides:
        if key != "*":
            resolve_notebook(key, root)
    # Every value is checked before the first kernel starts: a '*' name some selected notebook
    # declares, per-notebook names and all values against the notebooks' specs.
    star = overrides.get("*", {})
    if star:
        declared_any = {stem: declared_parameters(stem, root) for stem in stems}
        for name in star:
            if not any(name in d for d in declared_any.values()):
                every = sorted({n for d in declared_any.values() for n in d})
                close = difflib.get_close_matches(name, every, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise BookError(
                    f"command line: -p '*' {name}: no notebook of this build has a parameter "
                    f"{name!r}{hint}"
                )
    plans: dict[str, dict[str, Any]] = {}
    for stem in stems:
        declared = declared_parameters(stem, root)
        nb_over = {k: v for k, v in star.items() if k in declared}
        nb_over.update(overrides.get(stem, {}))
        resolve_parameters(stem, profile, nb_over, root)
        plans[stem] = nb_over

    timings: dict[str, Any] = {
        "profile": profile,
        "notebooks": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cache_dir": str(cache_root()),
        "cache_entries_at_start": sum(1 for p in cache_root().glob("*/*") if p.is_dir()),
        "machine": _machine_summary(),
    }
    total_start = time.perf_counter()
    for stem in execution_order(stems, root):
        nb_over = plans[stem]
        if not force:
            params = resolve_parameters(stem, profile, nb_over, root)
            stamp = build_cache.is_fresh(
                stem, build_cache.chapter_key(stem, profile, params, root, build), build
            )
            if stamp is not None:
                timings["notebooks"][stem] = {
                    "seconds": stamp["seconds"],
                    "parameters": params,
                    "cached": True,
                }
                print(
                    f"[polyrot] {stem}: unchanged since its last execution, reused (--force "
                    "re-executes)",
                    flush=True,
                )
                continue
        print(f"[polyrot] executing {stem} (profile {profile}) ...", flush=True)
        try:
            rec = run_notebook(stem, profile, nb_over, build, root)
        finally:
            timings["total_seconds"] = round(time.perf_counter() - total_start, 2)
            atomic_write_json(build / "timings.json", timings)
        timings["notebooks"][stem] = {
            "seconds": round(rec.seconds, 2),
            "parameters": rec.parameters,
        }
        print(f"[polyrot]   done in {rec.seconds:.1f} s", flush=True)
        atomic_write_json(build / "timings.json", timings)
    timings["execute_seconds"] = round(time.perf_counter() - total_start, 2)
    if render_html:
        t0 = time.perf_counter()
        index = render(build, root, strict=strict)
        timings["render_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"[polyrot] book rendered: {index}", flush=True)
    timings["total_seconds"] = round(time.perf_counter() - total_start, 2)
    atomic_write_json(build / "timings.json", timings)
    return timings


def _machine_summary() -> dict[str, Any]:
    """What the timings were measured on: CPU count, torch threads, GPU if any."""
    import platform

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    return info


# ----------------------------------------------------------------------------- CLI
def _parse_overrides(pairs: Iterable[Sequence[str]]) -> dict[str, Any]:
    return {name: coerce_cli_value(value) for name, value in pairs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m polyrot_utils.book", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_build = sub.add_parser("build", help="execute every chapter with a profile, then render HTML")
    p_build.add_argument(
        "--profile",
        default="quick",
        help=f"parameter profile: {', '.join(PROFILES)} (default quick)",
    )
    p_build.add_argument(
        "--only",
        nargs="+",
        metavar="STEM",
        help="execute only these notebooks (others must already be executed)",
    )
    p_build.add_argument(
        "-p",
        "--parameter",
        nargs=3,
        action="append",
        default=[],
        metavar=("NOTEBOOK", "NAME", "VALUE"),
        help="override a parameter for one notebook ('*' = every notebook declaring it)",
    )
    p_build.add_argument(
        "--build-dir", type=Path, default=None, help="output folder (default _build)"
    )
    p_build.add_argument(
        "--no-render", action="store_true", help="execute only; do not render HTML"
    )
    p_build.add_argument(
        "--no-strict", action="store_true", help="do not treat Sphinx warnings as errors"
    )
    p_build.add_argument(
        "--force",
        action="store_true",
        help="re-execute every chapter, even those whose inputs are unchanged since their last run",
    )
    p_build.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="artifact cache for this build (default $POLYROT_CACHE or .cache/polyrot); "
        "an empty folder measures a cold build",
    )

    p_run = sub.add_parser("run", help="execute one chapter (no rendering)")
    p_run.add_argument("notebook")
    p_run.add_argument("--profile", default="quick")
    p_run.add_argument(
        "-p",
        "--parameter",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME VALUE",
        help="override a parameter: -p NAME VALUE (the build form -p NOTEBOOK NAME VALUE also "
        "works "
        "when NOTEBOOK is this chapter)",
    )
    p_run.add_argument("--build-dir", type=Path, default=None)
    p_run.add_argument("--log-output", action="store_true", help="stream the notebook's output")
    p_run.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="artifact cache (default $POLYROT_CACHE or .cache/polyrot)",
    )

    p_render = sub.add_parser("render", help="render already executed notebooks")
    p_render.add_argument("--build-dir", type=Path, default=None)
    p_render.add_argument("--no-strict", action="store_true")

    sub.add_parser("list", help="list the chapters in _toc.yml order")
    p_params = sub.add_parser("params", help="show a notebook's parameters and their defaults")
    p_params.add_argument("notebook")
    p_params.add_argument(
        "--specs", action="store_true", help="also show what each parameter accepts"
    )

    args = parser.parse_args(argv)
    if getattr(args, "cache_dir", None) is not None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        os.environ["POLYROT_CACHE"] = str(args.cache_dir.resolve())
    try:
        if args.command == "build":
            over: dict[str, dict[str, Any]] = {}
            for nb_name, name, value in args.parameter:
                key = "*" if nb_name == "*" else resolve_notebook(nb_name)
                over.setdefault(key, {})[name] = coerce_cli_value(value)
            timings = build_book(
                args.profile,
                over,
                args.only,
                args.build_dir,
                render_html=not args.no_render,
                force=args.force,
                strict=not args.no_strict,
            )
            print(
                f"[polyrot] total {timings['total_seconds']:.1f} s; timings in "
                f"{(args.build_dir or REPO_ROOT / '_build') / 'timings.json'}"
            )
        elif args.command == "run":
            stem = resolve_notebook(args.notebook)
            pairs = []
            for item in args.parameter:
                if len(item) == 3:
                    if item[0] != "*" and resolve_notebook(item[0]) != stem:
                        raise BookError(
                            f"-p {' '.join(item)}: this command runs {stem}, not {item[0]}; use "
                            "-p NAME VALUE"
                        )
                    item = item[1:]
                if len(item) != 2:
                    raise BookError(
                        f"-p takes NAME VALUE (or {stem} NAME VALUE), got -p {' '.join(item)}"
                    )
                pairs.append(item)
            load_profile(args.profile)
            rec = run_notebook(
                stem,
                args.profile,
                _parse_overrides(pairs),
                args.build_dir,
                log_output=args.log_output,
            )
            print(f"[polyrot] {stem}: {rec.seconds:.1f} s -> {rec.output}")
        elif args.command == "render":
            print(render(args.build_dir or REPO_ROOT / "_build", strict=not args.no_strict))
        elif args.command == "list":
            for stem in toc_notebooks():
                print(stem)
        elif args.command == "params":
            stem = resolve_notebook(args.notebook)
            if args.specs:
                specs = parameter_specs(stem)
                print(
                    json.dumps(
                        {
                            n: {"default": sp.default, "accepts": sp.describe()}
                            for n, sp in specs.items()
                        },
                        indent=2,
                        default=str,
                    )
                )
            else:
                print(json.dumps(declared_parameters(stem), indent=2, default=str))
    except ChapterInterrupted as err:
        print(f"polyrot book: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("polyrot book: interrupted; no chapter output was moved into place", file=sys.stderr)
        return 130
    except BookError as err:
        print(f"polyrot book: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
