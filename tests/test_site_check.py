"""The reader-facing checks of the headless-browser site check, on hand-made pages.

``reader_problems`` is tested on probe data without a browser; ``test_probe_on_a_handmade_page``
opens a small HTML page with one of every defect in Chromium (skipped without one) and checks
that each defect is found and named by its cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrot_utils.book.site_check import _PAGE_PROBE, find_chromium, path_pattern, reader_problems


def _cell(i, tags=(), toggles=1, shown=False, output="", stderr=""):
    return {"cell": i, "tags": list(tags), "toggles": toggles, "inputShown": shown, "output": output, "stderr": stderr}


def test_clean_page_has_no_problems():
    probe = {"column": 700, "tables": [{"index": 1, "cell": 2, "scroll": 600, "width": 600, "container": 700, "head": "a"}],
             "images": [{"index": 1, "cell": 3, "natural": 690, "shown": 690, "alt": "fig", "src": "x.png"}],
             "cells": [_cell(1, ["parameters"]), _cell(2, output="d = 64, error 1e-13"), _cell(3, toggles=0)]}
    assert reader_problems(probe) == []


def test_each_defect_is_named_with_its_element():
    probe = {"column": 700,
             "tables": [{"index": 1, "cell": 4, "scroll": 900, "width": 700, "container": 700, "head": "site | gap"}],
             "images": [{"index": 1, "cell": 5, "natural": 1400, "shown": 700, "alt": "rejection rates", "src": "a.png"},
                        {"index": 2, "cell": 6, "natural": 900, "shown": 900, "alt": "", "src": "b.png"}],
             "cells": [_cell(1, ["parameters"]), _cell(2, ["injected-parameters"], shown=True),
                       _cell(3, toggles=2), _cell(7, output="saved to /root/.cache/polyrot/abc/model.safetensors"),
                       _cell(8, output="Moving model to device:  cpu\nok"), _cell(9, stderr="UserWarning: x"),
                       _cell(10, output="With $\\max |\\hat R|$ = 1e-15; costs $5 and $6")]}
    problems = reader_problems(probe)
    text = "\n".join(problems)
    assert "table 1 (cell 4, headers 'site | gap') is clipped: 900 px" in text
    assert "image 1 (cell 5, 'rejection rates') is 1400 px wide" in text
    assert "image 2 (cell 6, 'b.png') shows 900 px" in text
    assert "cell 2: papermill's injected-parameters cell is shown expanded" in text
    assert "cell 3 has 2 code toggles" in text
    assert "cell 7 output shows a filesystem path" in text and "/root/.cache" in text
    assert "2 parameter cells" in text
    assert "cell 8 output shows library chatter: 'Moving model to device:  cpu'" in text
    assert "cell 9 output shows library chatter: 'UserWarning: x'" in text
    assert "cell 10 output shows unrendered maths: '$\\max |\\hat R|$'" in text
    assert len(problems) == 10


@pytest.mark.parametrize("text", ["/root/x", "loaded /work/main/.cache/a", "at /tmp/pytest-1/book", "/home/ann/data",
                                  "see /Users/bob/x.txt"])
def test_path_pattern_finds_paths(text):
    assert path_pattern().search(text)


@pytest.mark.parametrize("text", ["http://example.org/tmp/x", "ratio 1/2 and a/b", "blocks.0/hook", "nats/token",
                                  "EleutherAI/pythia-70m-seed1", "s/(2d)"])
def test_path_pattern_ignores_non_paths(text):
    assert not path_pattern().search(text)


def test_repo_root_is_a_path():
    assert path_pattern(Path("/srv/checkout")).search("wrote /srv/checkout/_build/x.json")


HANDMADE = """<!doctype html><html><body><main style="width:700px"><article style="width:700px">
<div class="cell tag_parameters"><details class="hide above-input"><summary>Show code</summary>
<div class="cell_input">x = 1</div></details></div>
<div class="cell tag_injected-parameters"><div class="cell_input">x = 2</div></div>
<div class="cell"><details class="hide above-input"><summary>a</summary><div class="cell_input">y</div></details>
<details class="hide below-input"><summary>b</summary><div class="cell_output">ok</div></details></div>
<div class="cell"><div class="cell_input">z</div><div class="cell_output"><div style="overflow-x:auto;width:700px">
<table><tr><th>site</th><th>gap</th></tr><tr><td style="min-width:1200px">wide</td><td>1</td></tr></table></div>
<pre>cache at /root/.cache/polyrot/x</pre></div></div>
<div class="cell"><div class="cell_output"><figure><p>a table</p><figcaption>Fig. 1 Wall time</figcaption></figure></div></div>
</article></main></body></html>"""


def test_probe_on_a_handmade_page(tmp_path):
    pytest.importorskip("playwright", reason="playwright is not installed")
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium on this machine")
    from playwright.sync_api import sync_playwright

    from polyrot_utils.book.site_check import CHROMIUM_ARGS

    page_file = tmp_path / "p.html"
    page_file.write_text(HANDMADE)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        probe = page.evaluate(_PAGE_PROBE)
        browser.close()
    text = "\n".join(reader_problems(probe))
    assert "table 1 (cell 4, headers 'site | gap') is clipped" in text
    assert "cell 2: papermill's injected-parameters cell is shown expanded" in text
    assert "cell 3 has 2 code toggles" in text
    assert "cell 4 output shows a filesystem path" in text
    assert "2 parameter cells" in text
    assert "cell 5: figure caption 'Fig. 1 Wall time' is on an output that is not an image" in text
    assert "cell 1 " not in text
