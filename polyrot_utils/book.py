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
:mod:`polyrot_utils.results`); the runner writes ``<build>/timings.json`` (wall seconds per
notebook and in total, and the profile). A failing cell stops the build with a message naming
the notebook and the cell; the executed notebook, traceback included, is kept for reading.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .cache import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
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
    """Read ``params/<profile>.yaml`` (keys ``defaults`` and ``notebooks``)."""
    path = root / "params" / f"{profile}.yaml"
    if not path.exists():
        have = sorted(p.stem for p in (root / "params").glob("*.yaml"))
        raise BookError(f"unknown profile {profile!r}; available profiles: {', '.join(have)}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise BookError(f"{path} must hold a mapping with keys 'defaults' and 'notebooks'")
    unknown = set(data) - {"description", "defaults", "notebooks"}
    if unknown:
        raise BookError(f"{path}: unknown top-level keys {sorted(unknown)} (expected description, defaults, notebooks)")
    return {
        "description": data.get("description", ""),
        "defaults": dict(data.get("defaults") or {}),
        "notebooks": {k: dict(v or {}) for k, v in (data.get("notebooks") or {}).items()},
    }


def notebook_source(stem: str, root: Path = REPO_ROOT) -> Path:
    return root / "notebooks" / f"{stem}.py"


def declared_parameters(stem: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """Names and default values in the notebook's cell tagged ``parameters``."""
    nb = read_notebook(stem, root)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            values: dict[str, Any] = {}
            tree = ast.parse(cell.source)
            for node in tree.body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name):
                            try:
                                values[target.id] = ast.literal_eval(node.value)
                            except ValueError:
                                values[target.id] = ast.unparse(node.value)
            return values
    raise BookError(f"notebook {stem!r} has no cell tagged 'parameters'")


def coerce_cli_value(text: str) -> Any:
    """``-p name value`` values are parsed as YAML scalars/lists (``3``, ``0.5``, ``[1, 2]``, ``true``)."""
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
    for source, values in ((f"params/{profile}.yaml, section {stem}", prof["notebooks"].get(stem, {})),
                           ("command line", overrides or {})):
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise BookError(
                f"{source}: notebook {stem!r} has no parameter(s) {unknown}; "
                f"its parameters are: {', '.join(sorted(declared))}"
            )
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
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


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
    params = resolve_parameters(stem, profile, overrides, root)
    nb = read_notebook(stem, root)
    out_dir = build / "executed" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    (build / "results").mkdir(parents=True, exist_ok=True)
    source_ipynb = build / "executed" / "sources" / f"{stem}.ipynb"
    source_ipynb.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(source_ipynb))
    output = out_dir / f"{stem}.ipynb"

    env_backup = {k: os.environ.get(k) for k in ("POLYROT_RESULTS_DIR", "POLYROT_PROFILE", "PYTHONPATH", "TQDM_DISABLE")}
    # progress bars are noise in a rendered page (and a researcher reading a live kernel can unset it)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["POLYROT_RESULTS_DIR"] = str((build / "results").resolve())
    os.environ["POLYROT_PROFILE"] = profile
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env_backup["PYTHONPATH"]]))
    os.environ.pop("MPLBACKEND", None)  # papermill + MPLBACKEND=Agg silently drops inline figures
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source_ipynb),
            str(output),
            parameters=params,
            kernel_name="python3",
            cwd=str(root),
            progress_bar=False,
            log_output=log_output,
            start_timeout=120,
        )
    except PapermillExecutionError as err:
        raise BookError(
            f"notebook {stem!r} failed in cell {err.cell_index} (execution count {err.exec_count}) "
            f"under profile {profile!r}: {err.ename}: {err.evalue}\n"
            f"--- cell source ---\n{err.source}\n--- end ---\n"
            f"The executed notebook, with the traceback, is kept at {output}"
        ) from None
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    _tag_parameter_cells(output)
    __import__("polyrot_utils.presentation").presentation.tidy_executed_file(output)  # one parameters cell, one toggle (issue 14)
    return RunRecord(stem, seconds, output, params)


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
    _stage_mathjax(src / "_extra" / "mathjax")
    nb_dir = src / "notebooks"
    nb_dir.mkdir()
    for stem in toc_notebooks(root):
        executed = build / "executed" / "notebooks" / f"{stem}.ipynb"
        if not executed.exists():
            raise BookError(f"notebook {stem!r} has not been executed (expected {executed}); run the build first")
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
        raise BookError("jupyter-server-mathjax is not installed (requirements-nodeps.txt); the book needs it for equations")
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    shutil.copytree(static, dest)


def render(build: Path, root: Path = REPO_ROOT, strict: bool = True) -> Path:
    """Render the staged book to ``<build>/html``; Sphinx warnings are errors when ``strict``."""
    src = stage_sources(build, root)
    out = build / "jb"
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())", "build", str(src), "--path-output", str(out), "--all"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=str(root), capture_output=True, text=True)
    log = build / "jupyter-book.log"
    log.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).splitlines()
        problems = [ln for ln in lines if ("WARNING" in ln or "ERROR" in ln) and "IPKernelApp" not in ln]
        tail = "\n".join(problems[-30:] or lines[-40:])
        raise BookError(f"Jupyter Book failed (exit {proc.returncode}; Sphinx warnings are errors); full log at {log}\n{tail}")
    html = build / "html"
    tmp = build / "html.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(out / "_build" / "html", tmp)
    if html.exists():
        shutil.rmtree(html)
    os.replace(tmp, html)
    return html / "index.html"


def build_book(
    profile: str = "quick",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    only: Sequence[str] | None = None,
    build_dir: Path | None = None,
    root: Path = REPO_ROOT,
    render_html: bool = True,
    strict: bool = True,
) -> dict[str, Any]:
    """Execute every notebook in ``_toc.yml`` order (or ``only`` those), then render the book.

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
    from .cache import cache_root

    timings: dict[str, Any] = {
        "profile": profile,
        "notebooks": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cache_dir": str(cache_root()),
        "cache_entries_at_start": sum(1 for p in cache_root().glob("*/*") if p.is_dir()),
        "machine": _machine_summary(),
    }
    total_start = time.perf_counter()
    for stem in stems:
        declared = declared_parameters(stem, root)
        nb_over = {k: v for k, v in overrides.get("*", {}).items() if k in declared}
        nb_over.update(overrides.get(stem, {}))
        print(f"[polyrot] executing {stem} (profile {profile}) ...", flush=True)
        try:
            rec = run_notebook(stem, profile, nb_over, build, root)
        finally:
            timings["total_seconds"] = round(time.perf_counter() - total_start, 2)
            atomic_write_json(build / "timings.json", timings)
        timings["notebooks"][stem] = {"seconds": round(rec.seconds, 2), "parameters": rec.parameters}
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

    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
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
    parser = argparse.ArgumentParser(prog="python -m polyrot_utils.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p_build = sub.add_parser("build", help="execute every chapter with a profile, then render HTML")
    p_build.add_argument("--profile", default="quick", help=f"parameter profile: {', '.join(PROFILES)} (default quick)")
    p_build.add_argument("--only", nargs="+", metavar="STEM", help="execute only these notebooks (others must already be executed)")
    p_build.add_argument("-p", "--parameter", nargs=3, action="append", default=[], metavar=("NOTEBOOK", "NAME", "VALUE"),
                         help="override a parameter for one notebook ('*' = every notebook declaring it)")
    p_build.add_argument("--build-dir", type=Path, default=None, help="output folder (default _build)")
    p_build.add_argument("--no-render", action="store_true", help="execute only; do not render HTML")
    p_build.add_argument("--no-strict", action="store_true", help="do not treat Sphinx warnings as errors")
    p_build.add_argument("--cache-dir", type=Path, default=None,
                         help="artifact cache for this build (default $POLYROT_CACHE or .cache/polyrot); "
                              "an empty folder measures a cold build")

    p_run = sub.add_parser("run", help="execute one chapter (no rendering)")
    p_run.add_argument("notebook")
    p_run.add_argument("--profile", default="quick")
    p_run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p_run.add_argument("--build-dir", type=Path, default=None)
    p_run.add_argument("--log-output", action="store_true", help="stream the notebook's output")
    p_run.add_argument("--cache-dir", type=Path, default=None, help="artifact cache (default $POLYROT_CACHE or .cache/polyrot)")

    p_render = sub.add_parser("render", help="render already executed notebooks")
    p_render.add_argument("--build-dir", type=Path, default=None)
    p_render.add_argument("--no-strict", action="store_true")

    sub.add_parser("list", help="list the chapters in _toc.yml order")
    p_params = sub.add_parser("params", help="show a notebook's parameters and their defaults")
    p_params.add_argument("notebook")

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
            timings = build_book(args.profile, over, args.only, args.build_dir, render_html=not args.no_render,
                                 strict=not args.no_strict)
            print(f"[polyrot] total {timings['total_seconds']:.1f} s; timings in {(args.build_dir or REPO_ROOT / '_build') / 'timings.json'}")
        elif args.command == "run":
            stem = resolve_notebook(args.notebook)
            rec = run_notebook(stem, args.profile, _parse_overrides(args.parameter), args.build_dir, log_output=args.log_output)
            print(f"[polyrot] {stem}: {rec.seconds:.1f} s -> {rec.output}")
        elif args.command == "render":
            print(render(args.build_dir or REPO_ROOT / "_build", strict=not args.no_strict))
        elif args.command == "list":
            for stem in toc_notebooks():
                print(stem)
        elif args.command == "params":
            stem = resolve_notebook(args.notebook)
            print(json.dumps(declared_parameters(stem), indent=2, default=str))
    except BookError as err:
        print(f"polyrot book: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
