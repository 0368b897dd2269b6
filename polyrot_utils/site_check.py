"""Open the built site in a real headless browser and check what a reader would see.

    python -m polyrot_utils.site_check _build/html --screenshots _build/screenshots

For every page in the book's table of contents: the page loads over HTTP (a server on
127.0.0.1 only), it shows no Python traceback, chapter pages (notebooks) show at least one
figure that actually decoded (``naturalWidth > 0``), and a full-page screenshot is saved. Uses
Playwright's Python API driving the system's Chromium (Debian package ``chromium``) — it never
downloads a browser of its own.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .book import REPO_ROOT, toc_entries

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
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
    def log_message(self, *args) -> None:  # noqa: D401 - silence the access log
        pass


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _wait_for_mathjax(page, timeout_ms: int = 15000) -> None:
    """Let MathJax typeset before reading or screenshotting the page (no-op without MathJax)."""
    try:
        page.wait_for_function(
            "() => !window.MathJax || (window.MathJax.Hub && window.MathJax.Hub.queue"
            " && window.MathJax.Hub.queue.pending === 0 && window.MathJax.isReady)",
            timeout=timeout_ms,
        )
    except Exception:  # a slow typeset is not a broken page; the screenshot shows what is there
        pass


def check_site(html_dir: Path | str, screenshots: Path | str, pages: Sequence[str] | None = None,
               root: Path = REPO_ROOT, width: int = 1280) -> list[PageReport]:
    """Visit every page (default: the ``_toc.yml`` entries) and return one report per page."""
    from playwright.sync_api import sync_playwright

    html_dir, shots = Path(html_dir), Path(screenshots)
    if not (html_dir / "index.html").exists():
        raise FileNotFoundError(f"no built site at {html_dir} (expected index.html); build the book first")
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (install Debian's 'chromium' package or set POLYROT_CHROMIUM)")
    shots.mkdir(parents=True, exist_ok=True)
    pages = list(pages) if pages is not None else toc_entries(root)
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
                loaded = sum(1 for i in range(n_img) if imgs.nth(i).evaluate("el => el.complete && el.naturalWidth > 0"))
                n_tables = page.locator("main table, article table").count()
                tb = "Traceback (most recent call last)" in text
                if tb:
                    problems.append("shows a Python traceback")
                if entry.startswith("notebooks/") and n_img == 0:
                    problems.append("chapter shows no figure")
                if loaded < n_img:
                    problems.append(f"{n_img - loaded} of {n_img} images did not load")
                shot = shots / (entry.replace("/", "__") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                reports.append(PageReport(entry, page.title(), n_img, loaded, n_tables, tb, str(shot), problems))
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
