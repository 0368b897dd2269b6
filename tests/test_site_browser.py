"""The built site, opened in headless Chromium the way a reader opens it.

Visits every page of the table of contents of the smoke build, checks that chapters show figures
that actually decode and no page shows a Python traceback, and what a reader sees at 1280 px
(``site_check.reader_problems``: no clipped table, no image wider than the column, no filesystem
path, library chatter or unrendered maths in an output, one code toggle per cell, one parameters
cell per page, no caption on a non-image), and saves full-page screenshots to
``_build/screenshots/`` (kept as build artifacts). Skipped, with the reason, only where no
Chromium can be found or Playwright is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyrot_utils.site_check import check_site, find_chromium

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_every_page_renders_in_chromium(smoke_build):
    pytest.importorskip("playwright", reason="playwright is not installed (it is in requirements.txt)")
    if find_chromium() is None:
        pytest.skip("no Chromium on this machine: `apt-get install chromium` (scripts/test.sh tries it as root)")
    failures = json.loads((smoke_build / "failures.json").read_text())
    assert not failures, f"notebooks failed, so the site is incomplete: {sorted(failures)}"
    reports = check_site(smoke_build / "html", ROOT / "_build" / "screenshots")
    assert reports, "no pages visited"
    problems = {r.page: r.problems for r in reports if r.problems}
    assert not problems, problems
    chapters = [r for r in reports if r.page.startswith("notebooks/")]
    assert chapters and all(r.figures_loaded > 0 for r in chapters)
    for r in reports:
        assert Path(r.screenshot).stat().st_size > 10_000, f"screenshot of {r.page} looks empty"
