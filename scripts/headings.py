"""mkdocs hook: every heading of an executed chapter gets a stable, unique id, and the table of contents links to it.

nbconvert (through mkdocs-jupyter) writes each heading's id with an ASCII-only slug, so a Chinese
heading gets ``id=""``; mkdocs-jupyter builds the page's table of contents apart, from the Markdown,
with Python-Markdown's own slugs (``_1``, ``_2`` for the Chinese headings). The two disagree, so
the contents links and the search entries of those sections pointed nowhere (issue 21).

Here, after the page is rendered, each heading keeps its id when it has a non-empty one not used
before on the page (the English ids stay what they were); any other heading gets a Unicode-aware
slug of its text (Python-Markdown's ``slugify_unicode``, as the toc extension makes it:
``词元与嵌入`` stays ``词元与嵌入``), made unique with ``_1``, ``_2``... The heading's ¶ link follows
its id, and the page's table of contents is made again from the headings as they now are.
"""

from __future__ import annotations

import html as _html
import re

_HEADING = re.compile(r"<h([1-6])\b([^>]*)>(.*?)</h\1>", re.S)
_ID = re.compile(r'\sid="([^"]*)"')
_TAG = re.compile(r"<[^>]+>")
_ANCHOR = re.compile(r'(<a\b[^>]*class="anchor-link"[^>]*href=")#[^"]*(")')


def slug(text: str) -> str:
    """The Unicode slug Python-Markdown's toc extension makes of a heading's text."""
    from markdown.extensions.toc import slugify_unicode

    return slugify_unicode(text, "-")


def heading_text(inner: str) -> str:
    """A heading's text: its markup and its ¶ link left out, entities read."""
    inner = re.sub(r'<a\b[^>]*class="(?:anchor-link|headerlink)"[^>]*>.*?</a>', "", inner, flags=re.S)
    return " ".join(_html.unescape(_TAG.sub("", inner)).split())


def unique_ids(html: str) -> tuple[str, list[dict]]:
    """The page with every heading's id non-empty and unique, and its headings in order.

    Returns the new HTML and one ``{"level", "id", "name"}`` per heading (``name``: its text, escaped).
    """
    used: set[str] = set()
    headings: list[dict] = []

    def fix(m: re.Match) -> str:
        level, attrs, inner = int(m.group(1)), m.group(2), m.group(3)
        text = heading_text(inner)
        found = _ID.search(attrs)
        ident = found.group(1) if found else ""
        if not ident or ident in used:
            base = slug(text) or "section"
            ident, n = base, 0
            while ident in used:
                n += 1
                ident = f"{base}_{n}"
        used.add(ident)
        headings.append({"level": level, "id": ident, "name": _html.escape(text, quote=False)})
        attrs = _ID.sub(f' id="{ident}"', attrs, count=1) if found else f' id="{ident}"{attrs}'
        inner = _ANCHOR.sub(lambda a: f"{a.group(1)}#{ident}{a.group(2)}", inner)
        return f"<h{level}{attrs}>{inner}</h{level}>"

    return _HEADING.sub(fix, html), headings


def toc_tokens(headings: list[dict], depth: int = 6) -> list[dict]:
    """The headings nested as Python-Markdown's toc tokens (what mkdocs' ``get_toc`` takes)."""
    root: list[dict] = []
    stack: list[dict] = []
    for h in headings:
        if h["level"] > depth:
            continue
        token = {**h, "children": []}
        while stack and stack[-1]["level"] >= h["level"]:
            stack.pop()
        (stack[-1]["children"] if stack else root).append(token)
        stack.append(token)
    return root


def _is_notebook(page) -> bool:
    src = page.file.abs_src_path
    if not (src and src.endswith(".md")):
        return False
    with open(src, encoding="utf-8") as f:
        return f.read(12) == "---\njupyter:"


def on_page_content(html, page, config, files):
    if not _is_notebook(page):  # Markdown pages: the toc extension gave every heading a unique id
        return html
    from mkdocs.structure.toc import get_toc

    html, headings = unique_ids(html)
    jupyter = config.plugins.get("mkdocs-jupyter")
    depth = jupyter.config["toc_depth"] if jupyter is not None else 6
    page.toc = get_toc(toc_tokens(headings, depth))
    return html
