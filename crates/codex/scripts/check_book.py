"""Load every page of the built book in headless Chromium and check it.

Usage: python check_book.py BOOK_BUILD_DIR SCREENSHOT_DIR

The book is served from a local HTTP server on 127.0.0.1 (an ephemeral
port), and Playwright drives Debian's Chromium (CODEX_CHROMIUM) through it.
For every page: no console error, no page error, no failed or 4xx/5xx
request (so no missing image, stylesheet or font), every internal link
points to a file that exists (and its #anchor to an element), every image
has loaded, and math is rendered: KaTeX elements present wherever the page
has math and no raw `$$` left in the text. Screenshots of a few pages are
saved for a person to look at.
"""

import functools
import http.server
import os
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

from playwright.sync_api import sync_playwright

SCREENSHOT_PAGES = [
    "index.html",
    "apprentice/mana-crystal.html",
    "apprentice/cantrip-and-ritual.html",
    "apprentice/alchemy-of-compression.html",
    "apprentice/transfer-of-wisdom.html",
    "apprentice/speaking-stone.html",
    "archmage/nindub.html",
    "preamble/pillars.html",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pages(root):
    skip = {"print.html", "404.html", "toc.html"}
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root).as_posix()
        if rel in skip or rel.startswith(("katex/", "generated/")):
            continue
        yield rel


def main(build_dir, shots_dir):
    root = Path(build_dir)
    shots = Path(shots_dir)
    shots.mkdir(parents=True, exist_ok=True)
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems = []
    checked = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=os.environ.get("CODEX_CHROMIUM", "/usr/bin/chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
        page.on(
            "response",
            lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"),
        )
        for rel in pages(root):
            errors.clear()
            url = base + rel
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            checked += 1
            # Internal links: the target file exists, and so does the anchor.
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                target = urljoin(url, href)
                if not target.startswith(base):
                    continue
                file_url, fragment = urldefrag(target)
                path = root / urlparse(file_url).path[1:]
                if path.is_dir():
                    path = path / "index.html"
                if not path.exists():
                    errors.append(f"broken link: {href}")
                elif fragment and path.suffix == ".html":
                    html = path.read_text(encoding="utf-8")
                    if f'id="{fragment}"' not in html and f"name=\"{fragment}\"" not in html:
                        errors.append(f"broken anchor: {href}")
            broken_images = page.eval_on_selector_all(
                "main img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src)"
            )
            errors.extend(f"image not loaded: {src}" for src in broken_images)
            text = page.inner_text("main")
            if "$$" in text:
                errors.append("raw $$ in the rendered text: math was not rendered")
            source = (root / rel).read_text(encoding="utf-8")
            if "\\(" in text or "\\[" in text:
                errors.append("raw LaTeX delimiters in the rendered text")
            if 'class="katex' in source:
                rendered = page.eval_on_selector_all(".katex .katex-html", "els => els.length")
                font_ok = page.evaluate("() => document.fonts.check('16px KaTeX_Main')")
                if rendered == 0:
                    errors.append("KaTeX markup present but nothing rendered")
                if not font_ok:
                    errors.append("the KaTeX fonts did not load")
            if rel in SCREENSHOT_PAGES:
                page.screenshot(path=str(shots / (rel.replace("/", "_") + ".png")), full_page=False)
            for e in errors:
                problems.append(f"{rel}: {e}")
            print(f"book: {'ok  ' if not errors else 'FAIL'} {rel}")
        browser.close()
    server.shutdown()
    for p in problems:
        print(f"book: {p}", file=sys.stderr)
    failed = len({p.split(':')[0] for p in problems})
    print(f"book: {checked - failed} passed, {failed} failed (pages)")
    if checked == 0:
        print("book: no page found", file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
