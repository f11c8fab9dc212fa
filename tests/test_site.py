"""The built site as a reader meets it, in a real browser (headless Chromium driven by Playwright).

The site is built once per test session (chapters execute through the build's own cache, see
scripts/site_hooks.py), served on 127.0.0.1, and every page of the navigation is opened in both
languages (English, Simplified Chinese, and the Traditional Chinese pages the build generates
from the Simplified ones). Under CI (CI=true) these tests must run: a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from sitetools import CHROMIUM, CHROMIUM_ARGS, ROOT, executor, in_background, mkdocs_config, nav, require_chromium, script, serve, site_build, site_hooks

SCREENSHOTS = ROOT / ".cache" / "screenshots"


NAV = nav()
LANGS = ("en", "zh", "zh-TW")  # English is the site root; the others live under their locale


def _url_of(chapter: str, lang: str) -> str:
    stem = chapter.removesuffix(".md")
    path = "" if stem == "index" else f"{stem}/"
    return ("" if lang == "en" else f"{lang}/") + path


def _figures_in_chapter(chapter: str, lang: str) -> int:
    """How many figures the chapter's code produces (read from its executed notebook)."""
    if not (ROOT / "docs" / lang / chapter).read_text(encoding="utf-8").startswith("---\njupyter:"):
        return 0  # a page without code (the glossary)
    nb = executor().with_outputs(str(ROOT / "docs" / lang / chapter))
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}))


PAGES = [(c, lang) for c in NAV for lang in LANGS]


_CLIPPED = """() => {
    // Every table and image: as wide as its column at most, or inside a box that scrolls sideways.
    const bad = [];
    const column = document.querySelector('article').getBoundingClientRect();
    for (const el of document.querySelectorAll('article table, article img')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.right <= column.right + 1) continue;
        let box = el.parentElement, scrolls = false;
        while (box && box.tagName !== 'ARTICLE') {
            const s = getComputedStyle(box);
            if (['auto', 'scroll'].includes(s.overflowX) && box.scrollWidth > box.clientWidth
                && box.getBoundingClientRect().right <= column.right + 1) { scrolls = true; break; }
            box = box.parentElement;
        }
        if (!scrolls) bad.push(el.tagName + ' ' + (el.innerText || el.alt || '').slice(0, 40));
    }
    return bad;
}"""

# Code and printed output that a reader would have to scroll sideways to read (issue 22 §6): at 1280 px the
# table of contents sits in the left navigation (mkdocs.yml, toc.integrate), so 100 characters of code fit.
_CODE_SCROLLS = """() => [...document.querySelectorAll('article pre')]
    .filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => p.innerText.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '').slice(0, 60))"""

WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}

# axe-core (tests/assets, vendored from npm, see its README): WCAG 2.0 and 2.1, levels A and AA.
AXE = ROOT / "tests" / "assets" / "axe-4.10.3.min.js"
AXE_RUN = """async () => {
    const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']});
    return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
        .map(v => [v.id, v.impact, v.nodes.length, v.nodes[0].target.join(' ')]);
}"""
SCHEMES = {"light": "default", "dark": "slate"}  # material's scheme for each (mkdocs.yml, theme.palette)
# Pages opened with the system in dark mode, checked in both schemes (the others: light only; axe's
# contrast check on a chapter of a few thousand highlighted tokens takes seconds, each scheme again).
DARK_SYSTEM = set(NAV[:2])  # Start here and the first chapter (code, outputs, tables, figures, claims), in each language


async def _axe(page, scheme: str) -> list[str]:
    """Serious and critical WCAG 2.1 AA violations on the page in one colour scheme: rule, how many nodes, one selector.

    The page opens in the system's scheme; the other one is reached as a reader reaches it, with the
    toggle in the header.
    """
    if await page.evaluate("document.body.dataset.mdColorScheme") != SCHEMES[scheme]:
        await page.click("form[data-md-component=palette] label:not([hidden])")
        try:
            await page.wait_for_function(f"document.body.dataset.mdColorScheme === '{SCHEMES[scheme]}'", timeout=5_000)
        except Exception:
            return [f"the palette toggle in the header does not switch to the {scheme} scheme"]
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    return [f"axe, {scheme} scheme: {rule} ({impact}) on {n} node(s), e.g. {selector}"
            for rule, impact, n, selector in await page.evaluate(AXE_RUN)]


async def _visit(browser, site: str, chapter: str, lang: str) -> list[str]:
    """What a reader would find wrong on one page; see test_page_as_a_reader_meets_it."""
    text = (ROOT / "docs" / lang / chapter).read_text(encoding="utf-8")
    system = "dark" if chapter in DARK_SYSTEM else "light"  # the reader's system preference
    page = await browser.new_page(viewport=WIDE, color_scheme=system)
    errors, problems = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # "load" first: on a busy machine "networkidle" alone can come while the document is still being parsed.
    await page.goto(site + _url_of(chapter, lang), wait_until="load")
    await page.wait_for_load_state("networkidle")
    # Figures load lazily (scripts/figures.py), most of them below the fold: ask each to load now, as
    # scrolling to it would, and wait until it is decoded (or has failed: then it has no natural size).
    images = await page.eval_on_selector_all("article img", """els => Promise.all(els.map(e => {
        e.loading = "eager";
        return e.decode().catch(() => null).then(() => [e.complete, e.naturalWidth, e.naturalHeight]);
    }))""")
    if not all(done and w > 0 and h > 0 for done, w, h in images):
        problems.append(f"images not loaded: {images}")
    figures = _figures_in_chapter(chapter, lang)
    if "anatomy.plot." in text and figures == 0:
        problems.append("the chapter draws figures, but none reached its page")
    if len(images) < figures:
        problems.append(f"{figures} figures drawn, {len(images)} images on the page")
    if "$" in text:
        await page.wait_for_selector("mjx-container", timeout=20_000)  # math is typeset
    stderr = await page.eval_on_selector_all('[data-mime-type="application/vnd.jupyter.stderr"]', "els => els.map(e => e.innerText)")
    if [t for t in stderr if "Traceback" in t or "Error" in t]:
        problems.append(f"error output published: {stderr}")
    links = await page.eval_on_selector_all("a[hreflang]", "els => els.map(e => [e.hreflang, e.href])")
    if links != [[other, site + _url_of(chapter, other)] for other in LANGS]:  # every language offers all three
        problems.append(f"language links do not lead to this chapter in {LANGS}: {links}")
    if clipped := await page.evaluate(_CLIPPED):
        problems.append(f"clipped at {WIDE['width']} px: {clipped}")
    if scrolls := await page.evaluate(_CODE_SCROLLS):
        problems.append(f"{len(scrolls)} code block(s) scroll sideways at {WIDE['width']} px, the longest lines: {scrolls[:3]}")
    if (scheme := await page.evaluate("document.body.dataset.mdColorScheme")) != SCHEMES[system]:
        problems.append(f"the page opens in the {scheme} scheme; the system prefers {system}")
    for scheme in sorted(SCHEMES, key=lambda s: s != system) if system == "dark" else ["light"]:  # then the other, by the toggle
        problems += await _axe(page, scheme)
    await page.set_viewport_size(PHONE)  # a phone: the layout follows the new width (material is CSS-responsive)
    await page.wait_for_timeout(100)
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 1:
        problems.append(f"the page scrolls sideways by {overflow} px at {PHONE['width']} px")
    if clipped := await page.evaluate(_CLIPPED):
        problems.append(f"clipped at {PHONE['width']} px: {clipped}")
    if errors:  # console errors of the whole visit
        problems.append(f"console errors: {errors}")
    await page.close()
    return problems


TABS = 3  # pages open at once: the browser renders in its own processes, so visits overlap well on 2 cores


def _visit_all() -> dict[tuple[str, str], list[str]] | None:
    """Every page of PAGES visited once, a few tabs at a time, once the site is built: (chapter, lang) -> what was wrong on it.

    None when there is nothing to visit (the build failed, or there is no Chromium): the fixtures say why.
    """
    out, code, _ = site_build()
    if code != 0 or not Path(CHROMIUM).exists():
        return None
    site = serve(out)
    import asyncio

    from playwright.async_api import async_playwright

    async def visit_all():
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            gate = asyncio.Semaphore(TABS)

            async def one(chapter, lang):
                async with gate:
                    try:
                        return await _visit(browser, site, chapter, lang)
                    except Exception as err:  # a timeout, a crashed tab: that page's failure, not every page's
                        return [f"{type(err).__name__}: {err}"]

            found = await asyncio.gather(*(one(c, lang) for c, lang in PAGES))
            await browser.close()
        return dict(zip(PAGES, found))

    return asyncio.run(visit_all())  # this thread's own event loop


def start_early(items) -> None:
    """Called by the root conftest with the collected tests: if any of them reads the visits, they
    start when the site is built and run beside the library tests (tests/sitetools.py, `in_background`)."""
    if any(item.path.name == "test_site.py" and "visits" in getattr(item, "fixturenames", ()) for item in items):
        in_background("visits", _visit_all)


@pytest.fixture(scope="session")
def visits(site_dir) -> dict[tuple[str, str], list[str]]:
    """Every page of PAGES visited once (`_visit_all`), started early by the root conftest or now.

    Runs in a thread of its own (Playwright's async API, its own event loop), apart from the
    browser of the other tests.
    """
    require_chromium("the site cannot be opened in a browser")
    found = in_background("visits", _visit_all).result()
    assert found is not None, "the pages were not visited"
    return found


@pytest.mark.parametrize("chapter, lang", PAGES, ids=[f"{lang}/{c}" for c, lang in PAGES])
def test_page_as_a_reader_meets_it(visits, chapter, lang):
    """One visit per page, every check a reader's eye would make (each failure is listed, not just the first).

    On a wide screen (1280 px): the page loads without a console error, every image is decoded,
    every figure the chapter's code draws is there, math is typeset, no error output is published,
    the language links lead to this same chapter in each language (each of those pages gets its own
    visit here), tables and figures fit their column or scroll inside a visible box, and no code
    block or printed output scrolls sideways. Then the window becomes a phone's (390 px): nothing
    overflows sideways, and tables and figures still fit.
    The page opens in the system's colour scheme, and axe-core (WCAG 2.0 and 2.1, A and AA) finds
    no serious or critical violation in it; on the pages of DARK_SYSTEM the system prefers dark,
    and after a click on the header's toggle the light scheme is checked too.
    The visits run a few tabs at a time (fixture `visits`); each page's findings are its own test.
    """
    assert visits[(chapter, lang)] == []


def test_language_selector_in_the_header_lands_on_the_same_chapter(site, browser):
    """A reader's clicks in material's language menu (its script looks the page up in sitemap.xml).

    Every step from one language to another, once, on one chapter; every page's language links are
    checked in test_page_as_a_reader_meets_it.
    """
    chapter = NAV[-1]
    page = browser.new_page()
    page.goto(site + _url_of(chapter, "zh"), wait_until="networkidle")
    for lang in ("zh-TW", "en", "zh", "en", "zh-TW", "zh"):
        page.hover(".md-header .md-select")
        with page.expect_navigation():
            page.click(f'.md-header a[hreflang="{lang}"]')
        assert page.url == site + _url_of(chapter, lang)
    page.close()


def _searches(lang: str) -> list[tuple[str, str]]:
    """(what a reader types, the page it must find) in one language: every chapter title of the
    navigation without its number ("16. 稀疏自编码器" is typed 稀疏自编码器), which must find that
    chapter, and every glossary term, which must find its own entry (glossary/#anchor)."""
    config = mkdocs_config()
    i18n = next(p["i18n"] for p in config["plugins"] if isinstance(p, dict) and "i18n" in p)
    languages = {entry["locale"]: entry for entry in i18n["languages"]}
    titles = (languages.get(lang) or {}).get("nav_translations") or {}
    if lang == "zh-TW" and not titles:  # generated from the Simplified ones, as scripts/site_hooks.py does
        titles = script("traditional").language_config(languages["zh"])["nav_translations"]
    searches = []
    for item in config["nav"]:
        (title, chapter), = item.items()
        if not isinstance(chapter, str):  # a section (the API reference), not a page of the book
            continue
        searches.append((re.sub(r"^\d+\.\s*", "", titles.get(title, title)), _url_of(chapter, lang)))
    for anchor, words in site_hooks().glossary_terms(str(ROOT / "docs" / lang / "glossary.md")):
        searches.append((words, f"{_url_of('glossary.md', lang)}#{anchor}"))
    return searches


def _lang_of(path: str) -> str:
    """The language of a page from its path on the site: zh/x/ is zh, zh-TW/x/ is zh-TW, x/ is English."""
    first = path.split("/")[0]
    return first if first in LANGS else "en"


_SEARCH_SETTLED = """(placeholder) => {
    const meta = document.querySelector('.md-search-result__meta');
    return meta && meta.textContent !== placeholder
        && meta.textContent !== JSON.parse(document.getElementById('__config').textContent).translations['search.result.initializer'];
}"""

# The rest of the queries in one evaluation: each one is put into the box and followed by a key
# event, as the keyboard does above (material reads the box on "keyup"); the box is emptied the same
# way between queries, and each query's results are read when material has shown them.
_SEARCH_ALL = """async ([queries, placeholder]) => {
    const box = document.querySelector('.md-search__input');
    const meta = () => document.querySelector('.md-search-result__meta');
    const initializer = JSON.parse(document.getElementById('__config').textContent).translations['search.result.initializer'];
    const until = async (ready, what) => {
        const start = performance.now();
        while (!ready()) {
            if (performance.now() - start > 20000) throw new Error('timed out waiting for ' + what);
            await new Promise(r => requestAnimationFrame(r));
        }
    };
    const key = (k) => box.dispatchEvent(new KeyboardEvent('keyup', {key: k, bubbles: true}));
    const found = [];
    for (const query of queries) {
        box.value = '';
        key('Backspace');
        await until(() => meta().textContent === placeholder, 'the emptied box before ' + query);
        box.value = query;
        box.dispatchEvent(new InputEvent('input', {data: query, inputType: 'insertText', bubbles: true}));
        key('End');
        await until(() => meta().textContent !== placeholder && meta().textContent !== initializer, 'the results of ' + query);
        found.push([...document.querySelectorAll('.md-search-result__item a')].map(e => e.href));
    }
    return found;
}"""


@pytest.mark.parametrize("lang", LANGS)
def test_search_finds_every_title_and_term_in_the_readers_language(site, browser, lang):
    """A reader types every chapter title and every glossary term of a language into the search box.

    On one page of that language (its Start here page), the first query is typed with the keyboard
    as a Chinese input method commits text (all at once), followed by a key press, which is what
    material's search listens to; the others are put into the box in one page evaluation, each
    followed by the same key event (_SEARCH_ALL). Between queries the box is emptied. Each query
    must list the page it names among the first results material shows (10), and no result may
    lead to a page of another language. The page fetches one search index, its own language's.
    """
    page = browser.new_page()
    indexes = []
    page.on("request", lambda r: indexes.append(r.url) if "search_index" in r.url else None)
    root = site + _url_of("index.md", lang)
    page.goto(root, wait_until="networkidle")
    placeholder = page.evaluate("JSON.parse(document.getElementById('__config').textContent).translations['search.result.placeholder']")
    page.click(".md-search__input", timeout=10_000)
    searches = _searches(lang)
    (first, _), rest = searches[0], searches[1:]
    page.wait_for_function("(p) => document.querySelector('.md-search-result__meta').textContent === p", arg=placeholder, timeout=20_000)
    page.keyboard.insert_text(first)
    page.keyboard.press("End")
    page.wait_for_function(_SEARCH_SETTLED, arg=placeholder, timeout=20_000)
    results = [page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.href)")]
    results += page.evaluate(_SEARCH_ALL, [[query for query, _ in rest], placeholder])
    page.close()
    missed, foreign = [], []
    for (query, target), found in zip(searches, results, strict=True):
        hits = [h.split("?")[0] + ("#" + h.split("#")[1] if "#" in h else "") for h in found]
        wanted = site + target
        if not any(h == wanted or ("#" not in wanted and h.split("#")[0] == wanted) for h in hits):
            missed.append(f"{query} -> {target}: {[h.removeprefix(site) for h in hits[:5]]}")
        foreign += [f"{query} -> {h}" for h in hits if _lang_of(h.removeprefix(site)) != lang]
    assert missed == [], f"{len(missed)} not found: " + "; ".join(missed)
    assert foreign == [], foreign[:10]
    assert indexes == [root + "search/search_index.json"], indexes


def test_screenshots_for_a_person_to_look_at(site, browser):
    """The first chapter's top, as a reader sees it in each language: a real page with its title drawn on it.

    The images are kept in .cache/screenshots for a person to look at. Each must show a page (many
    colours, not one flat fill), and the chapter's title, found in the DOM, must sit inside the
    image with ink where it is (its text drawn, not an empty box), and be the page's title.
    """
    import io

    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    for chapter, lang in [(NAV[1], lang) for lang in LANGS]:
        page.goto(site + _url_of(chapter, lang), wait_until="load")
        page.wait_for_load_state("networkidle")
        path = SCREENSHOTS / f"{lang}-{chapter.removesuffix('.md')}.png"
        shot = Image.open(io.BytesIO(page.screenshot(path=str(path)))).convert("L")  # [1600, 1200] grey levels
        where = f"{lang}/{chapter}"
        assert shot.size == (1200, 1600), where
        assert len(shot.getcolors(maxcolors=256) or range(257)) > 16, f"{where}: the screenshot is nearly one flat colour"
        assert ImageStat.Stat(shot).stddev[0] > 10, f"{where}: the screenshot barely varies"
        title = page.locator("article h1").first
        text, box = title.inner_text().strip(), title.bounding_box()
        words = " ".join(text.split())  # the Chinese titles separate chapter and name with an ideographic space
        assert words and " ".join(page.title().split()).startswith(words), f"{where}: title {text!r}, page title {page.title()!r}"
        assert box and 0 <= box["x"] and box["x"] + box["width"] <= 1200 and 0 <= box["y"] and box["y"] + box["height"] <= 1600, \
            f"{where}: the title {text!r} is outside the screenshot ({box})"
        ink = shot.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
        lo, hi = ink.getextrema()
        assert hi - lo > 100, f"{where}: nothing is drawn where the title {text!r} is"
    page.close()


def _internal_links(site_dir: Path):
    """(page, attribute value, resolved file, fragment) for every internal href and src of the site."""
    for page in sorted(site_dir.rglob("*.html")):
        html = page.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r'\b(?:href|src)="([^"]+)"', html):
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("#", "data:", "mailto:", "javascript:")):
                continue
            path = unquote(parts.path)
            target = site_dir / path.lstrip("/") if path.startswith("/") else page.parent / path
            if target.is_dir():
                target = target / "index.html"
            yield page, url, target, parts.fragment


def test_every_internal_link_and_image_resolves(site_dir):
    links = list(_internal_links(site_dir))
    assert len(links) > 500  # the check saw the site: nav, chapter links, figures, assets
    broken = [f"{p.relative_to(site_dir)} -> {u}" for p, u, t, _ in links if not t.exists()]
    assert broken == [], f"{len(broken)} broken: " + "; ".join(broken[:20])
    for lang in LANGS:  # every chapter links somewhere in its own language, and those links were checked
        prefix = "" if lang == "en" else f"{lang}/"
        chapter_pages = [site_dir / (prefix + _url_of(c, "en")) / "index.html" for c in NAV]
        assert all(any(p == page for p, *_ in links) for page in chapter_pages)


def test_links_to_a_section_land_on_an_existing_anchor(site_dir):
    missing = []
    for page, url, target, fragment in _internal_links(site_dir):
        if fragment and target.suffix == ".html" and target.exists():
            if f'id="{unquote(fragment)}"' not in target.read_text(encoding="utf-8", errors="replace"):
                missing.append(f"{page.relative_to(site_dir)} -> {url}")
    assert missing == []



_HEADING = re.compile(r"<h([1-6])\b([^>]*)>(.*?)</h\1>", re.S)


def test_every_heading_has_its_own_id_and_the_contents_link_to_them(site_dir):
    """On every page: each heading of the article has a non-empty id no other element of the page
    has, the table of contents links only to ids of the page, and lists every section (h2) of it.

    The Chinese headings of executed chapters once had id="" while their contents linked to #_1,
    #_2, and the search entries of those sections led to the top of the page (issue 21).
    """
    problems, checked = [], 0
    for page in sorted(site_dir.rglob("*.html")):
        html = page.read_text(encoding="utf-8", errors="replace")
        if "<article" not in html or page.name == "404.html":  # the theme's page for a wrong address
            continue
        where = page.relative_to(site_dir)
        article = html[html.index("<article"): html.rindex("</article>")]
        headings = [(int(level), re.search(r'\sid="([^"]*)"', attrs)) for level, attrs, _ in _HEADING.findall(article)]
        ids = [m.group(1) if m else "" for _, m in headings]
        every_id = re.findall(r'\sid="([^"]*)"', html)
        problems += [f"{where}: a heading without an id" for i in ids if not i]
        problems += [f"{where}: id {i!r} is used {every_id.count(i)} times" for i in sorted(set(ids)) if i and every_id.count(i) > 1]
        contents = [unquote(h[1:]) for h in re.findall(r'<a href="(#[^"]*)" class="md-nav__link">', html)]
        # a heading, or the anchor mkdocstrings puts before a module's members (an API page has no heading for its module)
        problems += [f"{where}: the contents link to #{h}, which is nowhere on the page" for h in sorted(set(contents)) if h not in ids and h not in every_id]
        if contents:  # a page that shows its table of contents shows every section in it
            sections = [i for (level, _), i in zip(headings, ids) if level == 2]
            problems += [f"{where}: section #{i} is not in the contents" for i in sections if i and i not in contents]
        checked += len(ids)
    assert checked > 500
    assert problems == [], f"{len(problems)} problems: " + "; ".join(problems[:20])

CLICKS = [("index.md", "en", "embedding-table.md"), ("index.md", "zh", "embedding-table.md"),
          ("ffn.md", "en", "attention.md"), ("ffn.md", "zh", "multi-head.md"),
          ("index.md", "zh-TW", "embedding-table.md"), ("ffn.md", "zh-TW", "multi-head.md")]


@pytest.mark.parametrize("chapter, lang, target", [c for c in CLICKS if c[0] in NAV and c[2] in NAV])
def test_clicking_a_chapter_link_opens_that_chapter(site, browser, chapter, lang, target):
    page = browser.new_page()
    page.goto(site + _url_of(chapter, lang), wait_until="networkidle")
    stem = target.removesuffix(".md")
    link = page.locator(f'article a[href$="{stem}/"]').first
    with page.expect_navigation():
        link.click()
    assert page.url == site + _url_of(target, lang)
    assert page.locator("article h1").count() == 1
    assert "404" not in page.title()
    page.close()


def _assert_shared_lazy_figure(img: str, page: Path, site_dir: Path) -> None:
    """A figure is a file of assets/figures named by its content, loaded lazily, its box sized in advance."""
    import hashlib
    import struct

    src = re.search(r'src="([^"]+)"', img).group(1)
    file = (page.parent / src).resolve()
    assert file.parent == (site_dir / "assets" / "figures").resolve() and file.exists(), (page, src)
    data = file.read_bytes()
    assert file.name == hashlib.sha256(data).hexdigest()[:16] + ".png", file
    assert 'loading="lazy"' in img and 'decoding="async"' in img, img
    width, height = (int(re.search(rf'{a}="(\d+)"', img).group(1)) for a in ("width", "height"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    natural = struct.unpack(">II", data[16:24])
    assert abs(width / height - natural[0] / natural[1]) < 0.02, (img, natural)  # the reserved box has the figure's shape


def test_figures_are_files_shared_by_the_three_languages(site_dir):
    for chapter in NAV:
        srcs = {}
        for lang in LANGS:
            page = site_dir / (("" if lang == "en" else f"{lang}/") + _url_of(chapter, "en")) / "index.html"
            html = page.read_text(encoding="utf-8")
            assert "data:image/png" not in html, page
            srcs[lang] = [(page.parent / s).resolve() for s in re.findall(r'<figure class="anatomy-figure"><img [^>]*src="([^"]+)"', html)]
        assert srcs["en"] == srcs["zh"] == srcs["zh-TW"], chapter  # one file per figure, the same for every language


def test_every_figure_has_a_description_as_alt_text_and_caption(site_dir):
    pages = [site_dir / (("" if lang == "en" else "zh/") + _url_of(c, "en")) / "index.html" for c in NAV for lang in LANGS]
    figures = 0
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "No description has been provided" not in html, page
        for img, caption in re.findall(r'<figure class="anatomy-figure">(<img [^>]+>)<figcaption>([^<]*)</figcaption>', html):
            alt = re.search(r'alt="([^"]*)"', img).group(1)
            _assert_shared_lazy_figure(img, page, site_dir)
            assert alt == caption and len(alt) > 30, (page, alt)
            if "/zh/" in str(page):
                assert re.search(r"[\u4e00-\u9fff]", alt), alt  # in the page's language
            figures += 1
    assert figures >= 2 * 30  # every chapter figure, in both languages


def test_chapters_link_the_first_use_of_a_glossary_term(site_dir):
    for lang, prefix in (("en", ""), ("zh", "zh/")):
        html = (site_dir / prefix / "embedding-table" / "index.html").read_text(encoding="utf-8")
        links = re.findall(r'<a class="anatomy-term" href="([^"]+)">([^<]+)</a>', html)
        anchors = [h.split("#")[1] for h, _ in links]
        assert "embedding-table" in anchors and len(anchors) == len(set(anchors))  # each term once
        glossary = (site_dir / prefix / "glossary" / "index.html").read_text(encoding="utf-8")
        assert all(f'id="{a}"' in glossary for a in anchors)
        assert all(h.startswith("../glossary/") for h, _ in links)
