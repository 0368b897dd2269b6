"""The book pipeline: every notebook in _toc.yml executes under the smoke profile through the
same papermill path the book uses, the site renders, and bad input fails loudly.

The expensive part (executing every chapter, then rendering) happens once per session in the
``smoke_build`` fixture; the tests below read what it produced.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from polyrot_utils.book import runner as book

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = book.toc_notebooks(ROOT)


def test_package_imports():
    import polyrot_utils

    assert polyrot_utils.__version__


def test_toc_lists_every_notebook_source():
    sources = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    assert set(NOTEBOOKS) == sources, "every notebook source must be a chapter in _toc.yml, and vice versa"


def test_no_executed_notebooks_or_build_outputs_in_git():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout with tracked files")
    bad = [f for f in tracked if f.endswith(".ipynb") or f.startswith("_build/") or f.endswith((".pt", ".pkl", ".pickle"))]
    assert not bad


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_executes_under_smoke(smoke_build, stem):
    failures = json.loads((smoke_build / "failures.json").read_text())
    assert stem not in failures, failures.get(stem)
    executed = smoke_build / "executed" / "notebooks" / f"{stem}.ipynb"
    assert executed.exists()
    results = json.loads((smoke_build / "results" / f"{stem}.json").read_text())
    assert results["chapter"] == stem
    assert results["profile"] == "smoke"
    assert results["values"] or results["claims"], "a chapter must record its numbers"


@pytest.mark.slow
@pytest.mark.slow
def test_every_paper_claim_carries_paper_value_and_source(smoke_build):
    """Issue 13: every kind="paper" claim of every results file of the smoke build says what the
    paper reports and where the paper defines the statistic."""
    from polyrot_utils.book.results import load_all_results, paper_claim_problems

    everything = load_all_results(smoke_build / "results")
    assert everything, "the smoke build wrote no results files"
    problems = [p for data in everything.values() for p in paper_claim_problems(data)]
    assert problems == []
    n_paper = sum(c.get("kind", "paper") == "paper" for d in everything.values() for c in d.get("claims", {}).values())
    assert n_paper > 0, "no chapter recorded a paper claim"


def test_book_renders_and_links_every_chapter(smoke_build):
    failures = json.loads((smoke_build / "failures.json").read_text())
    assert not failures, f"notebooks failed: {sorted(failures)}"
    index = smoke_build / "html" / "index.html"
    assert index.exists()
    html = index.read_text()
    redirect = re.search(r'url=([^"]+)"', html)
    if redirect:  # Jupyter Book writes index.html as a redirect to the root page
        html = (smoke_build / "html" / redirect.group(1)).read_text()
    for stem in NOTEBOOKS:
        assert (smoke_build / "html" / "notebooks" / f"{stem}.html").exists()
        assert f"notebooks/{stem}.html" in html, f"the root page does not link {stem}"


@pytest.mark.slow
def test_rendered_chapters_have_figures_and_no_tracebacks(smoke_build):
    failures = json.loads((smoke_build / "failures.json").read_text())
    assert not failures
    for stem in NOTEBOOKS:
        page = (smoke_build / "html" / "notebooks" / f"{stem}.html").read_text()
        assert "Traceback (most recent call last)" not in page, stem
        assert re.search(r"<img [^>]*src=\"[^\"]*\.png\"", page), f"{stem} renders no figure"


def test_parameter_override_is_injected(tmp_path):
    params = book.resolve_parameters("01_planted_rotations", "smoke", {"d": 8})
    assert params["d"] == 8
    assert params["n_fit"] == 200  # from the smoke profile


@pytest.mark.slow
def test_cli_override_changes_recorded_numbers(tmp_path):
    rec8 = book.run_notebook("01_planted_rotations", "smoke", {"d": 8, "seed": 1}, build_dir=tmp_path / "a")
    rec12 = book.run_notebook("01_planted_rotations", "smoke", {"d": 12, "seed": 1}, build_dir=tmp_path / "b")
    a = json.loads((tmp_path / "a" / "results" / "01_planted_rotations.json").read_text())
    b = json.loads((tmp_path / "b" / "results" / "01_planted_rotations.json").read_text())
    assert a["params"]["d"] == 8 and b["params"]["d"] == 12
    assert a["values"]["noise_sweep"] != b["values"]["noise_sweep"]
    assert rec8.parameters["d"] == 8 and rec12.parameters["d"] == 12


@pytest.mark.slow
def test_incremental_build_reuses_unchanged_chapters(tmp_path):
    """A second build with nothing changed executes nothing; a changed parameter re-executes
    that chapter and the chapters that read its results; --force re-executes everything."""
    only = ["01_planted_rotations", "91_conclusions"]
    kw = dict(only=only, build_dir=tmp_path, render_html=False)
    first = book.build_book("smoke", **kw)
    assert not any(t.get("cached") for t in first["notebooks"].values())
    mtime = (tmp_path / "results" / "01_planted_rotations.json").stat().st_mtime_ns
    second = book.build_book("smoke", **kw)
    assert all(t.get("cached") for t in second["notebooks"].values())
    assert (tmp_path / "results" / "01_planted_rotations.json").stat().st_mtime_ns == mtime
    third = book.build_book("smoke", {"01_planted_rotations": {"seed": 7}}, **kw)
    assert not third["notebooks"]["01_planted_rotations"].get("cached")
    assert not third["notebooks"]["91_conclusions"].get("cached")  # its input (01's results) changed
    forced = book.build_book("smoke", {"01_planted_rotations": {"seed": 7}}, force=True, **kw)
    assert not any(t.get("cached") for t in forced["notebooks"].values())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polyrot_utils.book", *args], cwd=ROOT, capture_output=True, text=True)


def test_bad_profile_name_fails_with_message():
    proc = _cli("run", "01_planted_rotations", "--profile", "nonexistent")
    assert proc.returncode != 0
    assert "unknown profile 'nonexistent'" in proc.stderr and "quick" in proc.stderr


def test_unknown_notebook_fails_with_message():
    proc = _cli("run", "no_such_chapter", "--profile", "smoke")
    assert proc.returncode != 0
    assert "unknown notebook 'no_such_chapter'" in proc.stderr


def test_unknown_parameter_fails_with_message():
    proc = _cli("run", "01_planted_rotations", "--profile", "smoke", "-p", "dimension", "3")
    assert proc.returncode != 0
    assert "has no parameter 'dimension'" in proc.stderr


@pytest.mark.slow
def test_failing_notebook_names_notebook_and_cell(tmp_path):
    # A copy of the repo's book skeleton with one notebook that raises.
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "params").mkdir()
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/broken\n")
    (root / "params" / "smoke.yaml").write_text("notebooks: {}\n")
    (root / "notebooks" / "broken.py").write_text(
        '# %% tags=["parameters"]\nx = 1\n\n# %%\nraise RuntimeError("planted failure")\n'
    )
    with pytest.raises(book.BookError) as info:
        book.run_notebook("broken", "smoke", build_dir=tmp_path / "build", root=root)
    msg = str(info.value)
    assert "broken" in msg and "planted failure" in msg and "cell" in msg
    kept = tmp_path / "build" / "partial" / "broken.ipynb"  # kept apart: never replaces a complete page
    assert kept.exists() and "planted failure" in kept.read_text() and str(kept) in msg


def test_environment_yml_matches_pins():
    proc = subprocess.run([sys.executable, "scripts/sync_environment.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_torch_is_pinned_for_cpu():
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in reqs
    for line in reqs:
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "set -euo pipefail" in ci
    assert "bash scripts/test.sh" in ci and "bash scripts/test.sh" in readme
    assert "bash scripts/book.sh" in readme
