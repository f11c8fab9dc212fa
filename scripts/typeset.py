"""Math typeset once, at build time, so that a reader's browser never runs MathJax.

MathJax (docs/assets/mathjax, about 1 MB) was the heaviest script of a chapter page: on a phone
(Lighthouse's mobile run, a 4x slower CPU) loading and typesetting it blocked the page for 0.3-0.8 s.
After a language's pages are written (the hook's on_post_build, after its PDF is printed),
`typeset_pages` opens every page that loads ``assets/mathjax-config.js`` in headless Chromium,
with the theme's and the interactive figures' scripts held back so that nothing but MathJax changes
the article, and lets MathJax typeset it (CommonHTML output, its accessible MathML kept beside each
formula). The typeset article and MathJax's stylesheet (only the glyphs the page uses; the fonts
stay files in assets/mathjax, fetched by the browser like any web font) are written back into the
page, and the script tag is removed. A page without math only loses the tag.

`mkdocs serve` keeps the script (MathJax typesets in the browser, as before): this runs only in a
build. Without Chromium the pages keep the script too (one log line), except under CI, where it is an error.
"""

from __future__ import annotations

import functools
import http.server
import logging
import os
import posixpath
import re
import threading
import time
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.anatomy")

CONFIG_TAG = re.compile(r'\s*<script src="[^"]*assets/mathjax-config\.js"[^>]*></script>')
ARTICLE = re.compile(r'(<article class="md-content__inner md-typeset">)(.*)(</article>)', re.S)
MATH = re.compile(r"\$|\\\(|\\\[")
FONT_FACE = re.compile(r"(@font-face[^{]*\{)")
HELD_BACK = re.compile(r"/(javascripts/bundle\.[^/]*\.js|live/[^/]*\.js|search/search_index\.json)(\?|$)")

_TYPESET = """async () => {
    // mathjax-config.js adds MathJax on DOMContentLoaded, only where it finds math
    const started = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
    for (let i = 0; i < 600 && !started(); i++) {
        if (!document.querySelector('script[src*="tex-chtml"]') && document.readyState === 'complete') break;
        await new Promise(r => setTimeout(r, 50));
    }
    if (!started()) return null;
    await MathJax.startup.promise;
    const css = document.getElementById('MJX-CHTML-styles');
    const article = document.querySelector('article');
    return {article: article.innerHTML, css: css ? css.textContent : '', formulas: article.querySelectorAll('mjx-container').length};
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _write(page: Path, html: str) -> None:
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, page)


def typeset_pages(root: Path, top: Path, executable: str | None, skip: tuple[Path, ...] = ()) -> int:
    """Typeset the math of every page under ``root`` (except those under ``skip``) that loads MathJax; returns how many had math."""
    pages = []
    for page in sorted(root.rglob("*.html")):
        if any(s in page.parents for s in skip):
            continue
        html = page.read_text(encoding="utf-8")
        if not CONFIG_TAG.search(html):
            continue
        article = ARTICLE.search(html)
        if article and MATH.search(re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", article.group(2), flags=re.S)):
            pages.append(page)
        else:  # no math: mathjax-config.js would only look for it
            _write(page, CONFIG_TAG.sub("", html, count=1))
    if not pages:
        return 0
    if executable is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("Chromium is not installed, so the math cannot be typeset (run scripts/install-browser.sh).")
        log.info("anatomy: Chromium not found, so %d page(s) typeset their math in the browser", len(pages))
        return 0
    from playwright.sync_api import sync_playwright

    from scripts.pdf import CHROMIUM_ARGS

    t = time.perf_counter()
    handler = functools.partial(_Quiet, directory=str(top))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    typeset = 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.route(HELD_BACK, lambda route: route.abort())
                for page_path in pages:
                    tab = context.new_page()
                    rel = page_path.relative_to(top).as_posix()
                    tab.goto(origin + rel, wait_until="load")
                    done = tab.evaluate(_TYPESET)
                    tab.close()
                    html = page_path.read_text(encoding="utf-8")
                    if not done or not done["formulas"]:
                        _write(page_path, CONFIG_TAG.sub("", html, count=1))
                        continue
                    # the fonts: from the page's own folder to assets/mathjax, not to the build's server
                    to_top = posixpath.relpath(".", posixpath.dirname(rel)) + "/" if posixpath.dirname(rel) else ""
                    css = done["css"].replace(origin, to_top)
                    # the formula is drawn at once in a fallback font and redrawn when MathJax's font arrives: the
                    # paragraph around it is not held back for a 20-40 KB font (on a phone it was the page's largest paint)
                    css = FONT_FACE.sub(r"\1\n  font-display: swap;", css)
                    html = ARTICLE.sub(lambda m: m.group(1) + done["article"] + m.group(3), html, count=1)
                    html = CONFIG_TAG.sub("", html, count=1)
                    html = html.replace("</head>", f'<style id="MJX-CHTML-styles">{css}</style>\n</head>', 1)
                    _write(page_path, html)
                    typeset += 1
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    log.info("anatomy: typeset the math of %d page(s) under %s in %.1f s", typeset, root.relative_to(top.parent), time.perf_counter() - t)
    return typeset
