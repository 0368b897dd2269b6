"""Open the built site in a real headless browser and check what a reader would see.

    python -m polyrot_utils.book.site_check _build/html --screenshots _build/screenshots

For every page in the book's table of contents: the page loads over HTTP (a server on
127.0.0.1 only), it shows no Python traceback, chapter pages (notebooks) show at least one
figure that actually decoded (``naturalWidth > 0``), and a full-page screenshot is saved.

It also checks what a reader sees at the default window width (1280 px), and names the page and
the element (cell number, table header, image alt text) of every problem:

* no clipped table: a table's ``scrollWidth`` is at most its container's ``clientWidth``;
* no image wider than the content column, neither on screen nor in its pixels (an image with
  more pixels than the column is shrunk by the browser, and so is its text);
* no output cell whose text contains a filesystem path (``/root/…``, ``/work/…``, ``/tmp/…``,
  ``/home/…``, the repository root, the user's home);
* one code toggle per cell, and papermill's injected-parameters cell never shown expanded
  (a page has at most one parameters cell);
* no figure caption on an output that is not an image (MyST-NB captions every output of a
  cell with figure metadata);
* no unrendered ``$…\\tex…$`` maths in outputs;
* no library chatter in outputs: nothing written to stderr, no TransformerLens loading
  messages, Python warnings or progress bars. Uses
Playwright's Python API driving the system's Chromium (Debian package ``chromium``) — it never
downloads a browser of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polyrot_utils.book.runner import REPO_ROOT, toc_entries

__all__ = [
    "CHATTER",
    "CHROMIUM_ARGS",
    "CHROMIUM_CANDIDATES",
    "RAW_TEX",
    "PageReport",
    "check_site",
    "find_chromium",
    "main",
    "path_pattern",
    "reader_problems",
]

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """Path of a system Chromium, or ``None``. ``$POLYROT_CHROMIUM`` overrides."""
    env = os.environ.get("POLYROT_CHROMIUM")
    if env and Path(env).exists():
        return env
    for cand in CHROMIUM_CANDIDATES:
        if Path(cand).exists():
            return cand
    return shutil.which("chromium")


@dataclass
class PageReport:
    page: str
    title: str
    figures: int
    figures_loaded: int
    tables: int
    traceback: bool
    screenshot: str
    problems: list[str] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _wait_for_mathjax(page, timeout_ms: int = 15000) -> None:
    """Let MathJax typeset before reading or screenshotting the page (no-op without MathJax)."""
    # a slow typeset is not a broken page; the screenshot shows what is there
    with contextlib.suppress(Exception):
        page.wait_for_function(
            "() => !window.MathJax || (window.MathJax.Hub && window.MathJax.Hub.queue"
            " && window.MathJax.Hub.queue.pending === 0 && window.MathJax.isReady)",
            timeout=timeout_ms,
        )


# One pass over the page in the browser: everything the reader-facing checks need, as plain data.
_PAGE_PROBE = r"""
() => {
  const main = document.querySelector('main, article, div[role=main]') || document.body;
  // the content column: the article's content box (sphinx-book-theme: article.bd-article, padded)
  const column = document.querySelector('article.bd-article') || main;
  const cs = getComputedStyle(column);
  const colW = Math.round(
    column.clientWidth - parseFloat(cs.paddingLeft || 0) - parseFloat(cs.paddingRight || 0));
  const cells = Array.from(main.querySelectorAll('div.cell'));
  const cellNo = el => { const c = el.closest('div.cell'); return c ? cells.indexOf(c) + 1 : 0; };
  const tables = Array.from(main.querySelectorAll('table')).map((t, i) => {
    const box = t.parentElement;
    const head = Array.from(t.querySelectorAll('th')).slice(0, 4)
      .map(th => th.innerText.trim()).filter(Boolean);
    return {index: i + 1, cell: cellNo(t), scroll: t.scrollWidth,
            width: Math.round(t.getBoundingClientRect().width),
            container: box ? box.clientWidth : colW, head: head.join(' | ').slice(0, 60)};
  });
  const images = Array.from(main.querySelectorAll('img')).map((im, i) => ({
    index: i + 1, cell: cellNo(im), natural: im.naturalWidth,
    shown: Math.round(im.getBoundingClientRect().width),
    alt: (im.getAttribute('alt') || '').slice(0, 60),
    src: (im.getAttribute('src') || '').split('/').pop()}));
  const cellInfo = cells.map((c, i) => {
    const tags = Array.from(c.classList).filter(k => k.startsWith('tag_')).map(k => k.slice(4));
    const toggles = c.querySelectorAll(
      'details.hide, details.above-input, details.below-input, button.toggle-button').length;
    const input = c.querySelector('.cell_input');
    let inputShown = false;
    if (input) {
      const det = input.closest('details');
      inputShown = input.offsetParent !== null && !(det && !det.open);
    }
    const outs = Array.from(c.querySelectorAll('.cell_output')).map(o => o.innerText).join('\n');
    const stderr = Array.from(
      c.querySelectorAll('.cell_output .stderr, .cell_output .output.stderr'))
      .map(o => o.innerText).join('\n');
    return {cell: i + 1, tags, toggles, inputShown, output: outs, stderr};
  });
  // a MyST-NB figure caption wraps every output of its cell: a captioned figure without an image
  const captioned = Array.from(main.querySelectorAll('figure'))
    .filter(f => !f.querySelector('img, svg')).map(f => ({
      cell: cellNo(f),
      caption: ((f.querySelector('figcaption') || {}).innerText || '').trim().slice(0, 60)}));
  return {column: colW, tables, images, cells: cellInfo, captioned};
}
"""


CHATTER = re.compile(
    r"Moving model to device|Loaded pretrained model|\b\w*Warning:|^\s*warnings\.warn\(|it/s\]"
)
"""Lines that are a library talking, not the chapter: TransformerLens's loading messages, Python
warnings, progress bars."""


RAW_TEX = re.compile(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
"""``$…\\command…$`` left in an output's text: maths MathJax never typeset (e.g. a Markdown output,
which MyST-NB renders as CommonMark, without dollar maths)."""


def path_pattern(root: Path = REPO_ROOT) -> re.Pattern[str]:
    """The filesystem paths no output may show: absolute paths under the usual roots, the
    repository root and the user's home (word-boundary anchored, so ``a/b`` or URLs do not
    match)."""
    roots = ["root", "work", "tmp", "home", "Users", "mnt", "var", "opt", "scratch", "data"]
    literal = sorted({str(root), str(Path.home())} - {"/", ""}, key=len, reverse=True)
    alts = [re.escape(x) for x in literal] + [rf"/{r}/[\w.~-]+" for r in roots]
    return re.compile(r"(?<![\w:/.])(?:" + "|".join(alts) + r")")


def reader_problems(
    probe: dict[str, Any], pattern: re.Pattern[str] | None = None, slack_px: int = 2
) -> list[str]:
    """The reader-facing problems of one page, from :data:`_PAGE_PROBE`'s data.

    Each message names the element: ``cell N`` is the N-th notebook cell of the page (1-based,
    in reading order), tables by their first column headers, images by their alt text or file."""
    pattern = pattern or path_pattern()
    out: list[str] = []
    col = int(probe.get("column") or 0)
    for t in probe.get("tables", []):
        if t["scroll"] > t["container"] + slack_px:
            out.append(
                f"table {t['index']} (cell {t['cell']}, headers '{t['head']}') is clipped: "
                f"{t['scroll']} px wide in a {t['container']} px container"
            )
    for im in probe.get("images", []):
        name = im["alt"] or im["src"]
        if col and im["shown"] > col + slack_px:
            out.append(
                f"image {im['index']} (cell {im['cell']}, '{name}') shows {im['shown']} px wide "
                f"in a {col} px column"
            )
        elif col and im["natural"] > col + slack_px:
            out.append(
                f"image {im['index']} (cell {im['cell']}, '{name}') is {im['natural']} px wide, "
                "shrunk to the "
                f"{col} px column (its text shrinks by {col / im['natural']:.2f})"
            )
    for f in probe.get("captioned", []):
        out.append(
            f"cell {f['cell']}: figure caption '{f['caption']}' is on an output that is not an "
            "image"
        )
    n_param_cells = 0
    for c in probe.get("cells", []):
        if "parameters" in c["tags"] or "injected-parameters" in c["tags"]:
            n_param_cells += 1
        if c["toggles"] > 1:
            out.append(f"cell {c['cell']} has {c['toggles']} code toggles (tags {c['tags']})")
        if "injected-parameters" in c["tags"] and c["inputShown"]:
            out.append(f"cell {c['cell']}: papermill's injected-parameters cell is shown expanded")
        chatter = (c.get("stderr") or "").strip() or next(
            (ln.strip() for ln in (c["output"] or "").splitlines() if CHATTER.search(ln)), ""
        )
        if chatter:
            out.append(
                f"cell {c['cell']} output shows library chatter: {chatter.splitlines()[0][:100]!r}"
            )
        tex = RAW_TEX.search(c["output"] or "")
        if tex:
            out.append(f"cell {c['cell']} output shows unrendered maths: '{tex.group(0)[:60]}'")
        m = pattern.search(c["output"] or "")
        if m:
            line = next(
                (ln for ln in c["output"].splitlines() if m.group(0) in ln), m.group(0)
            ).strip()
            out.append(f"cell {c['cell']} output shows a filesystem path: {line[:100]!r}")
    if n_param_cells > 1:
        out.append(
            f"{n_param_cells} parameter cells on the page (papermill's injected cell not merged)"
        )
    return out


def check_site(
    html_dir: Path | str,
    screenshots: Path | str,
    pages: Sequence[str] | None = None,
    root: Path = REPO_ROOT,
    width: int = 1280,
) -> list[PageReport]:
    """Visit every page (default: the ``_toc.yml`` entries) and return one report per page."""
    from playwright.sync_api import sync_playwright

    html_dir, shots = Path(html_dir), Path(screenshots)
    if not (html_dir / "index.html").exists():
        raise FileNotFoundError(
            f"no built site at {html_dir} (expected index.html); build the book first"
        )
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found (install Debian's 'chromium' package or set POLYROT_CHROMIUM)"
        )
    shots.mkdir(parents=True, exist_ok=True)
    pages = list(pages) if pages is not None else toc_entries(root)
    pattern = path_pattern(root)
    server, base = _serve(html_dir)
    reports: list[PageReport] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": width, "height": 900})
            for entry in pages:
                url = f"{base}/{entry}.html"
                problems = []
                response = page.goto(url, wait_until="load")
                _wait_for_mathjax(page)
                if response is None or response.status != 200:
                    problems.append(f"HTTP status {None if response is None else response.status}")
                main = page.locator("main, article, div[role=main]").first
                text = main.inner_text() if main.count() else page.inner_text("body")
                imgs = page.locator("main img, article img")
                n_img = imgs.count()
                loaded = sum(
                    1
                    for i in range(n_img)
                    if imgs.nth(i).evaluate("el => el.complete && el.naturalWidth > 0")
                )
                n_tables = page.locator("main table, article table").count()
                tb = "Traceback (most recent call last)" in text
                if tb:
                    problems.append("shows a Python traceback")
                if entry.startswith("notebooks/") and n_img == 0:
                    problems.append("chapter shows no figure")
                if loaded < n_img:
                    problems.append(f"{n_img - loaded} of {n_img} images did not load")
                problems += reader_problems(page.evaluate(_PAGE_PROBE), pattern)
                shot = shots / (entry.replace("/", "__") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                reports.append(
                    PageReport(
                        entry, page.title(), n_img, loaded, n_tables, tb, str(shot), problems
                    )
                )
            browser.close()
    finally:
        server.shutdown()
    (shots / "report.json").write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default=str(REPO_ROOT / "_build" / "html"))
    parser.add_argument("--screenshots", default=str(REPO_ROOT / "_build" / "screenshots"))
    args = parser.parse_args(argv)
    reports = check_site(args.html_dir, args.screenshots)
    bad = [r for r in reports if r.problems]
    for r in reports:
        status = "ok" if not r.problems else "; ".join(r.problems)
        print(f"{r.page:45s} figures {r.figures_loaded}/{r.figures} tables {r.tables}  {status}")
    print(f"screenshots in {args.screenshots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
