"""The whole book as one PDF per language, printed at build time by Chromium from a print page.

After a language's pages are built (the hook's on_post_build, once per language), `build` joins
its built pages in navigation order (Start here first, the glossary last) into one print page,
``<language root>/print/index.html``: a title page, a table of contents, then every chapter's
article with its outputs, figures and tables. Headless Chromium (the one the browser tests drive,
through Playwright) opens that page from a local server, waits until MathJax has typeset the math,
every figure is loaded (lazy images are made eager) and the fonts are ready, and prints it to
``site/pdf/llm-anatomy-<language>.pdf``: A4, page numbers, a PDF bookmark per chapter (pypdf).
The contents page is printed a second time, alone, with the page on which each chapter starts.

Ids are made unique per chapter (``<chapter>--<id>``), and links between chapters and to the
glossary become links inside the PDF. The print CSS (scripts/pdf.css) falls back to WenQuanYi Micro
Hei (scripts/install-fonts.sh) for CJK text, so Chinese prints as glyphs, not boxes; Chromium
embeds the fonts it uses.

Without Chromium the PDF is skipped with one log line, except under CI (CI=true), where it is an error.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import io
import logging
import os
import posixpath
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

log = logging.getLogger("mkdocs.hooks.anatomy")

HERE = Path(__file__).resolve().parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--font-render-hinting=none"]
PRINT_DIR = "print"  # the print page: <language root>/print/index.html (as deep as a chapter page)
PDF_DIR = "pdf"  # the PDFs: <site>/pdf/llm-anatomy-<language>.pdf

_TEXT = {
    "en": {"contents": "Contents", "edition": "The whole book, with every output as built on {date}.",
           "note": "Every number and figure in this book was computed by the code printed above it, on real weights, when this copy was built.",
           "pdf": "the whole book as a PDF"},
    "zh": {"contents": "目录", "edition": "全书合订本，所有输出均于 {date} 构建时生成。",
           "note": "书中的每一个数字、每一张图，都由印在它上方的代码在构建这一版时用真实的模型权重算出。",
           "pdf": "全书 PDF"},
}


class PdfFailed(Exception):
    """The PDF could not be made (under CI, a missing Chromium too)."""


def pdf_name(lang: str) -> str:
    return f"llm-anatomy-{lang}.pdf"


def text(lang: str, key: str, convert=None) -> str:
    """A fixed phrase of the title page in the page's language (zh-TW: the zh phrase, converted)."""
    if lang in _TEXT:
        return _TEXT[lang][key]
    return convert(_TEXT["zh"][key]) if convert else _TEXT["zh"][key]


def chromium() -> str | None:
    """The Chromium the browser tests use, or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _lang_tag(lang: str) -> str:
    return {"zh": "zh-Hans", "zh-TW": "zh-Hant-TW"}.get(lang, lang)


def link_for_language(html: str, lang: str) -> str:
    """Start here links to its language's PDF; the Traditional page is converted from the Simplified one."""
    if lang == "zh-TW":
        html = html.replace(pdf_name("zh"), pdf_name("zh-TW"))
    return html


# --- The print page -----------------------------------------------------------------------------

def _page_path(chapter: str) -> str:
    """Where a chapter is built, relative to its language root: index.md -> index.html, x.md -> x/index.html."""
    stem = chapter.removesuffix(".md")
    return "index.html" if stem == "index" else f"{stem}/index.html"


def _anchor(chapter: str) -> str:
    return "chapter-" + chapter.removesuffix(".md")


_REMOVE_CLASSES = {
    "headerlink",  # the ¶ after every heading (mkdocs) ...
    "anchor-link",  # ... and after every heading of a chapter (nbconvert)
    "md-content__button",  # edit / view source
    "anatomy-download",  # the chapter as a notebook: a file of the site, not of the PDF
    "md-source-file",
    "md-feedback",
}


_DATA_URL = re.compile(r'(?<=src=")data:[^"]{200,}(?=")')


def _stash(html: str) -> tuple[str, list[str]]:
    """The page with its long data: URLs (inline figures, megabytes) taken out, for a fast parse; and them."""
    stash: list[str] = []

    def keep(m: re.Match) -> str:
        stash.append(m.group(0))
        return f"data:anatomy-stash-{len(stash) - 1}"

    return _DATA_URL.sub(keep, html), stash


def _unstash(html: str, stash: list[str]) -> str:
    return re.sub(r'(?<=src=")data:anatomy-stash-(\d+)(?=")', lambda m: stash[int(m.group(1))], html)


def _parts(html: str):
    """(head, article) of a built page, each parsed alone (the navigation around the article is not needed)."""
    from bs4 import BeautifulSoup

    a, b = html.find("<article"), html.rfind("</article>")
    h, i = html.find("<head>"), html.find("</head>")
    if a < 0 or b < 0:
        raise PdfFailed("a built page has no <article>")
    head = BeautifulSoup(html[h: i + len("</head>")], "html.parser").head if 0 <= h < i else None
    return head, BeautifulSoup(html[a: b + len("</article>")], "html.parser").article


_LINKING = ("href", "src", "poster", "data")
_MATHJAX = re.compile(r'<script\b[^>]*\bsrc="([^"]*mathjax[^"]*\.js)"', re.I)


def _rebase(chapters: list[str], chapter: str, article, root: str) -> None:
    """One pass over a chapter: screen-only parts out, ids unique per chapter, links to a chapter of
    the book inside the print page, others to the same file of the site; images eager.

    root: the language root's URL path in the site ("/" or "/zh/"); pages may link above it (to shared assets).
    """
    prefix = chapter.removesuffix(".md")
    here = root + _page_path(chapter)  # the page's URL path in the site
    book = {root + _page_path(c).removesuffix("index.html"): c for c in chapters}
    screen_only = article.find_all(lambda el: el.name == "script" or not _REMOVE_CLASSES.isdisjoint(el.get("class") or ()))
    for el in screen_only:  # page scripts (copy buttons, MathJax 2 set-up, mermaid), buttons, the notebook link
        el.decompose()
    for el in article.find_all(True):
        if el.get("id"):
            el["id"] = f"{prefix}--{el['id']}"
        if el.name == "a" and el.get("name"):
            el["name"] = f"{prefix}--{el['name']}"
        if el.name == "img":  # figures may load lazily on the site; a print waits for none
            el["loading"] = "eager"
            el.attrs.pop("decoding", None)
        for attr in _LINKING:
            value = el.get(attr)
            if not value or value.startswith(("data:", "mailto:", "javascript:")) or urlsplit(value).scheme:
                continue
            if value.startswith("#"):
                el[attr] = f"#{prefix}--{value[1:]}" if len(value) > 1 else f"#{_anchor(chapter)}"
                continue
            target = urlsplit(urljoin("http://book" + here, value))
            path = target.path if target.path.endswith("/") or "." in posixpath.basename(target.path) else target.path + "/"
            if el.name == "a" and path.removesuffix("index.html") in book:
                other = book[path.removesuffix("index.html")]
                el[attr] = f"#{other.removesuffix('.md')}--{target.fragment}" if target.fragment else f"#{_anchor(other)}"
            else:  # an asset or a page outside the book: the same file, seen from the print page
                rel = posixpath.relpath(target.path, root + PRINT_DIR)
                if target.path.endswith("/") and not rel.endswith("/"):
                    rel += "/"
                el[attr] = rel + (f"?{target.query}" if target.query else "") + (f"#{target.fragment}" if target.fragment else "")


def print_page(root: Path, top: Path, lang: str, chapters: list[str], site_name: str, convert=None) -> tuple[Path, list[str]]:
    """Write <root>/print/index.html: title page, contents, then every chapter in order; returns it and the chapters' titles.

    root: the language's built root; top: the site's root (root or its parent).
    """
    import html as _html

    from bs4 import BeautifulSoup

    url_root = "/" + (root.relative_to(top).as_posix() + "/" if root != top else "")
    head_parts: list = []
    mathjax: dict[str, None] = {}  # site paths of MathJax's scripts, in the order pages load them
    seen: set[str] = set()
    sections, titles = [], []
    for chapter in chapters:
        page = root / _page_path(chapter)
        if not page.exists():
            raise PdfFailed(f"{chapter} was not built ({page} is missing)")
        html, stash = _stash(page.read_text(encoding="utf-8"))
        head, article = _parts(html)
        if not head_parts and head is not None:  # the site's stylesheets, from the first page's <head>
            head_parts.extend(el for el in head.find_all(["link", "style"])
                              if el.name == "style" or "stylesheet" in (el.get("rel") or []))
        for m in _MATHJAX.finditer(html):  # MathJax and its configuration, wherever a page loads them
            target = urlsplit(urljoin("http://book" + url_root + _page_path(chapter), m.group(1))).path
            mathjax.setdefault(target, None)
        for style in article.find_all("style"):  # nbconvert's stylesheet, once per chapter: keep one copy
            css = style.get_text()
            style.extract()
            if css not in seen:
                seen.add(css)
                head_parts.append(style)
        _rebase(chapters, chapter, article, url_root)
        h1 = article.find("h1")
        titles.append(h1.get_text(" ", strip=True) if h1 else chapter)
        article.name = "section"
        article["class"] = ["print-chapter", "md-typeset"]
        article["id"] = _anchor(chapter)
        sections.append(_unstash(str(article), stash))
    # The head's links and scripts are relative to the first page; the print page is as deep as a chapter.
    first = BeautifulSoup("".join(str(el) for el in head_parts), "html.parser")
    wrapper = BeautifulSoup("<div></div>", "html.parser").div
    for el in list(first.contents):
        wrapper.append(el)
    _rebase_head(chapters[0], wrapper, url_root)
    if not mathjax:
        raise PdfFailed("no page loads MathJax, so the book's math would print as TeX")
    scripts = "".join(f'<script src="{posixpath.relpath(path, url_root + PRINT_DIR)}"></script>' for path in mathjax)
    css = (HERE / "pdf.css").read_text(encoding="utf-8")
    date = datetime.date.today().isoformat()
    contents = "".join(
        f'<li><a href="#{_anchor(c)}"><span class="toc-title">{_html.escape(t)}</span>'
        f'<span class="toc-page" data-chapter="{_anchor(c)}"></span></a></li>'
        for c, t in zip(chapters, titles))
    lang_attr = _lang_tag(lang)
    doc = f"""<!doctype html>
<html lang="{lang_attr}" class="anatomy-print"><head><meta charset="utf-8">
<title>{_html.escape(site_name)}</title>
{wrapper.decode_contents()}
<style>{css}</style>
{scripts}
</head><body class="anatomy-print">
<section class="print-title">
<h1>{_html.escape(site_name)}</h1>
<p class="print-edition">{_html.escape(text(lang, "edition", convert).format(date=date))}</p>
<p class="print-note">{_html.escape(text(lang, "note", convert))}</p>
</section>
<nav class="print-toc"><h2>{_html.escape(text(lang, "contents", convert))}</h2><ol>{contents}</ol></nav>
{"".join(sections)}
</body></html>"""
    out = root / PRINT_DIR / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out, titles


def _rebase_head(chapter: str, wrapper, root: str) -> None:
    here = root + _page_path(chapter)
    for el in wrapper.find_all(["link", "script"]):
        attr = "href" if el.name == "link" else "src"
        value = el.get(attr)
        if not value or urlsplit(value).scheme or value.startswith("/"):
            continue
        target = urlsplit(urljoin("http://book" + here, value))
        el[attr] = posixpath.relpath(target.path, root + PRINT_DIR) + (f"?{target.query}" if target.query else "")


# --- Printing -----------------------------------------------------------------------------------

_READY = """async () => {
    for (const img of document.images) img.loading = 'eager';
    await Promise.all([...document.images].map(img => img.complete ? null :
        new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return ['MathJax did not start'];
    await MathJax.startup.promise;
    await document.fonts.ready;
    return [...document.images].filter(img => !img.naturalWidth).map(img => 'figure not loaded: ' + img.src.slice(0, 80));
}"""

_PAGE_NUMBERS = """(pages) => {
    for (const el of document.querySelectorAll('.toc-page')) el.textContent = pages[el.dataset.chapter] || '';
}"""

_ONLY_CONTENTS = "body.anatomy-print > :not(.print-toc) { display: none !important; }"

_FOOTER = ('<div style="width:100%;font-size:8px;color:#666;text-align:center;'
           'font-family:DejaVu Sans,WenQuanYi Micro Hei,sans-serif">{page} / {total}</div>')
_PAGE_NUMBER = _FOOTER.format(page='<span class="pageNumber"></span>', total='<span class="totalPages"></span>')


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _start_pages(reader, anchors: list[str]) -> dict[str, int]:
    """On which page (0-based) each chapter starts: the destination Chromium made for the contents' link to it."""
    dests = reader.named_destinations
    return {a: reader.get_destination_page_number(dests["/" + a]) for a in anchors if "/" + a in dests}


def _finish(book: bytes, contents: bytes, at: int, starts: dict[str, int], anchors: list[str], titles: list[str],
            title: str, lang: str) -> bytes:
    """The book with its contents page replaced by one printed with the page numbers, and a bookmark per chapter.

    Both contents pages have the same layout (only the numbers, in space kept for them, differ),
    so the links of the book's own contents page still cover the right lines and are kept.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject, TextStringObject

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(book)))  # keeps the pages, their links and the named destinations
    numbered = PdfReader(io.BytesIO(contents)).pages[0]
    page = writer.pages[at]
    page[NameObject("/Resources")] = numbered["/Resources"].clone(writer)
    page.replace_contents(numbered.get_contents())
    for anchor, chapter_title in zip(anchors, titles):
        if anchor in starts:
            writer.add_outline_item(title=chapter_title, page_number=starts[anchor])
    writer.page_mode = "/UseOutlines"
    writer.add_metadata({"/Title": title})
    writer._root_object[NameObject("/Lang")] = TextStringObject(_lang_tag(lang))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def render(print_html: Path, serve_dir: Path, out: Path, titles: list[str], anchors: list[str], executable: str,
           title: str, lang: str) -> dict:
    """Print the page to a PDF with Chromium; returns its size and page count.

    One print of the whole book gives the page on which each chapter starts (the destinations of
    the contents' links); the contents page alone is then printed again with those numbers and
    put in its place (a second print of the whole book would double the time).
    """
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader

    handler = functools.partial(_Quiet, directory=str(serve_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{print_html.relative_to(serve_dir).parent.as_posix()}/"
    options = dict(format="A4", print_background=True, display_header_footer=True,
                   header_template="<span></span>", footer_template=_PAGE_NUMBER,
                   margin={"top": "16mm", "bottom": "18mm", "left": "15mm", "right": "15mm"})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(900_000)
                page.goto(url, wait_until="load")
                missing = page.evaluate(_READY)
                if missing:
                    raise PdfFailed(f"the print page is not ready: {len(missing)} problem(s), e.g. {missing[0]}")
                book = page.pdf(**options)
                reader = PdfReader(io.BytesIO(book))
                total = len(reader.pages)
                starts = _start_pages(reader, anchors)
                if len(starts) != len(anchors):
                    raise PdfFailed(f"no page found for {sorted(set(anchors) - set(starts))}")
                page.evaluate(_PAGE_NUMBERS, {a: n + 1 for a, n in starts.items()})
                page.add_style_tag(content=_ONLY_CONTENTS)
                contents = page.pdf(**{**options, "footer_template": _FOOTER.format(page=2, total=total)})
                if len(PdfReader(io.BytesIO(contents)).pages) != 1:
                    raise PdfFailed("the contents no longer fit on one page (scripts/pdf.css: make them smaller)")
                pdf = _finish(book, contents, 1, starts, anchors, titles, title, lang)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".pdf.tmp")
    tmp.write_bytes(pdf)
    os.replace(tmp, out)
    return {"bytes": len(pdf), "pages": total}


def build(site_dir: Path, lang: str, chapters: list[str], site_name: str, top: Path, convert=None) -> Path | None:
    """The print page and the PDF of one language (site_dir: its built root; top: the site's root)."""
    if not chapters:  # a site without a navigation (the cache test's small project) is not a book
        log.info("anatomy: the site has no navigation, so no %s PDF is made", lang)
        return None
    executable = chromium()
    if executable is None:
        if os.environ.get("CI") == "true":
            raise PdfFailed("Chromium is not installed, so the book's PDF cannot be made (run scripts/install-browser.sh).")
        log.info("anatomy: Chromium not found, so the %s PDF is skipped (install it: sh scripts/install-browser.sh)", lang)
        return None
    t = time.perf_counter()
    page, titles = print_page(site_dir, top, lang, chapters, site_name, convert)
    out = top / PDF_DIR / pdf_name(lang)
    done = render(page, top, out, titles, [_anchor(c) for c in chapters], executable, site_name, lang)
    log.info("anatomy: printed %s (%d pages, %.1f MB) in %.1f s", out.relative_to(top.parent), done["pages"], done["bytes"] / 1e6, time.perf_counter() - t)
    return out
