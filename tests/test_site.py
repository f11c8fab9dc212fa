"""The built site as a reader meets it, in a real browser (headless Chromium driven by Playwright).

The site is built once per test session (chapters execute through the build's own cache, see
scripts/site_hooks.py), served on 127.0.0.1, and every page of the navigation is opened in both
languages. Under CI (CI=true) these tests must run: a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sitetools import ROOT, nav, site_hooks

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / ".cache" / "screenshots"


NAV = nav()


def _url_of(chapter: str, lang: str) -> str:
    stem = chapter.removesuffix(".md")
    path = "" if stem == "index" else f"{stem}/"
    return ("" if lang == "en" else "zh/") + path


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}; the test command installs it (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs these tests.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory, browser):
    """Build the whole site once and serve it on 127.0.0.1; yields the base URL."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _figures_in_chapter(chapter: str, lang: str) -> int:
    """How many figures the chapter's code produces (read from its executed notebook)."""
    nb = site_hooks().with_outputs(str(ROOT / "docs" / lang / chapter))
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}))


PAGES = [(c, lang) for c in NAV for lang in ("en", "zh")]


@pytest.mark.parametrize("chapter, lang", PAGES, ids=[f"{lang}/{c}" for c, lang in PAGES])
def test_page_loads_cleanly_with_its_figures(site, browser, chapter, lang):
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site + _url_of(chapter, lang), wait_until="networkidle")
    assert errors == []
    images = page.eval_on_selector_all("article img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
    assert all(done and w > 0 and h > 0 for done, w, h in images), images
    figures = _figures_in_chapter(chapter, lang)
    if "anatomy.plot." in (ROOT / "docs" / lang / chapter).read_text(encoding="utf-8"):
        assert figures > 0, "the chapter draws figures, but none reached its page"
    assert len(images) >= figures
    if "$" in (ROOT / "docs" / lang / chapter).read_text(encoding="utf-8"):
        page.wait_for_selector("mjx-container", timeout=10_000)  # math is typeset
    stderr = page.eval_on_selector_all('[data-mime-type="application/vnd.jupyter.stderr"]', "els => els.map(e => e.innerText)")
    assert not [t for t in stderr if "Traceback" in t or "Error" in t]  # no error output published
    page.close()


@pytest.mark.parametrize("chapter", NAV)
def test_language_switch_lands_on_the_same_chapter(site, browser, chapter):
    page = browser.new_page()
    page.goto(site + _url_of(chapter, "en"))
    page.goto(page.eval_on_selector('a[hreflang="zh"]', "a => a.href"))
    assert page.url == site + _url_of(chapter, "zh")
    page.goto(page.eval_on_selector('a[hreflang="en"]', "a => a.href"))
    assert page.url == site + _url_of(chapter, "en")
    page.close()


SEARCHES = [("zh", "注意力", "attention.md"), ("en", "attention", "attention.md"),
            ("zh", "词元", "function-and-tokens.md"), ("en", "tokenizer", "function-and-tokens.md")]


@pytest.mark.parametrize("lang, term, chapter", [s for s in SEARCHES if s[2] in NAV])
def test_search_finds_the_chapter(site, browser, lang, term, chapter):
    page = browser.new_page()
    page.goto(site + _url_of("index.md", lang), wait_until="networkidle")  # the search index is loaded
    page.click(".md-search__input", timeout=10_000)
    page.fill(".md-search__input", term)
    page.keyboard.press("End")  # a key event, as a person typing makes
    page.wait_for_selector(".md-search-result__item a", timeout=20_000)
    hits = page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.href)")
    assert any(h.split("#")[0].split("?")[0] == site + _url_of(chapter, lang) for h in hits), hits
    page.close()


@pytest.mark.parametrize("chapter, lang", PAGES, ids=[f"{lang}/{c}" for c, lang in PAGES])
def test_narrow_screen_has_no_horizontal_overflow(site, browser, chapter, lang):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(site + _url_of(chapter, lang), wait_until="networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    page.close()


def test_screenshots_for_a_person_to_look_at(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    for chapter, lang in [(NAV[1], "en"), (NAV[1], "zh")]:
        page.goto(site + _url_of(chapter, lang), wait_until="networkidle")
        path = SCREENSHOTS / f"{lang}-{chapter.removesuffix('.md')}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000
    page.close()
