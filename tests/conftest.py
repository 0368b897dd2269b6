"""Shared fixtures: one smoke build of the whole book per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyrot_utils.book import runner as book

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = book.toc_notebooks(ROOT)


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("book")
    failures: dict[str, str] = {}
    for stem in book.execution_order(NOTEBOOKS, ROOT):
        try:
            book.run_notebook(stem, "smoke", build_dir=build)
        except book.BookError as err:
            failures[stem] = str(err)
    build.joinpath("failures.json").write_text(json.dumps(failures))
    if not failures:
        book.render(build, strict=True)
    return build


