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

from polyrot_utils.book.site_check import check_site, find_chromium

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: chapters still drawn at the old figure sizes and table widths (listed to be emptied)
LAYOUT_NOT_YET_CHECKED: tuple[str, ...] = ()


def test_every_page_renders_in_chromium(smoke_build):
    pytest.importorskip("playwright", reason="playwright is not installed (it is in requirements.txt)")
    if find_chromium() is None:
        pytest.skip("no Chromium on this machine: `apt-get install chromium` (scripts/test.sh tries it as root)")
    failures = json.loads((smoke_build / "failures.json").read_text())
    assert not failures, f"notebooks failed, so the site is incomplete: {sorted(failures)}"
    reports = check_site(smoke_build / "html", ROOT / "_build" / "screenshots")
    assert reports, "no pages visited"
    # Pages whose layout has not yet been brought to the reader checks (issue 14): only their
    # layout problems (clipped tables, images wider than the column, captions on non-images)
    # are tolerated, and only on these pages; every other problem fails on every page.
    layout = ("is clipped", "px wide in a", "shrunk to the", "is on an output that is not an image")
    not_yet = {f"notebooks/{n}" for n in LAYOUT_NOT_YET_CHECKED}
    problems = {
        r.page: [p for p in r.problems if not (r.page.split(".")[0] in not_yet and any(k in p for k in layout))]
        for r in reports
    }
    problems = {page: ps for page, ps in problems.items() if ps}
    assert not problems, problems
    chapters = [r for r in reports if r.page.startswith("notebooks/")]
    assert chapters and all(r.figures_loaded > 0 for r in chapters)
    for r in reports:
        assert Path(r.screenshot).stat().st_size > 10_000, f"screenshot of {r.page} looks empty"
