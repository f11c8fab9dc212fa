"""The built pages, made reachable by keyboard (called from scripts/site_hooks.py, on every page).

1. A box that scrolls sideways (a chapter's code cell, a table of results, a Markdown table) must take
the keyboard focus, or a reader without a mouse cannot scroll it (WCAG 2.1.1; axe-core's rule
scrollable-region-focusable). Each such box gets tabindex="0", a role and a name in the page's
language; docs/assets/a11y.css shows the focus. The boxes are found in the HTML mkdocs-jupyter and
mkdocs write, with patterns that match that HTML exactly; tests/test_accessible.py checks them.

2. Material's search box is a dialog without a name (axe-core's rule aria-dialog-name, which
Lighthouse counts): it is named in the page's language.
"""

from __future__ import annotations

import html as _html
import re

NAMES = {  # what a screen reader announces when the focus enters the box
    "en": {"code": "Code", "table": "Table", "search": "Search"},
    "zh": {"code": "代码", "table": "表格", "search": "搜索"},
    "zh-TW": {"code": "程式碼", "table": "表格", "search": "搜尋"},
}

# A notebook code cell: mkdocs-jupyter's <div class="highlight-ipynb hl-python"> scrolls (overflow: auto).
_CODE = re.compile(r'<div class="(highlight-ipynb[^"]*)">')
# A Markdown code block (Pygments through Python-Markdown): its <pre> scrolls (material's CSS).
_MD_CODE = re.compile(r'<div class="highlight"><pre>')
# A table printed by anatomy.Table: its <div class="anatomy-table"> scrolls (docs/assets/extra.css).
_TABLE_BOX = re.compile(r'<div class="anatomy-table">(<table>(?:<caption>(.*?)</caption>)?)', re.S)
# A Markdown table in the prose: material wraps it at load in a box that scrolls; ours wraps that one.
_PROSE_TABLE = re.compile(r'(?<!<div class="anatomy-table">)<table>.*?</table>', re.S)
_TAGS = re.compile(r"<[^>]+>")
_SEARCH = '<div class="md-search" data-md-component="search" role="dialog">'  # material's partials/search.html


def _attrs(name: str) -> str:
    return f'tabindex="0" role="group" aria-label="{_html.escape(name, quote=True)}" data-anatomy-scroll'


def _text(fragment: str) -> str:
    """The text of an HTML fragment, on one line."""
    return " ".join(_html.unescape(_TAGS.sub(" ", fragment)).split())


def make_accessible(page_html: str, lang: str) -> str:
    """Every box of the page that scrolls sideways: focusable, with a role and a name in `lang`; the search dialog named."""
    if lang not in NAMES:
        raise ValueError(f"no names for the language {lang!r}; add it to NAMES in scripts/accessible.py ({', '.join(NAMES)})")
    names = NAMES[lang]
    page_html = page_html.replace(_SEARCH, _SEARCH[:-1] + f' aria-label="{names["search"]}">', 1)
    page_html = _CODE.sub(lambda m: f'<div class="{m.group(1)}" {_attrs(names["code"])}>', page_html)
    page_html = _MD_CODE.sub(lambda m: f'<div class="highlight"><pre {_attrs(names["code"])}>', page_html)
    page_html = _PROSE_TABLE.sub(lambda m: f'<div class="anatomy-scroll" {_attrs(names["table"])}>{m.group(0)}</div>', page_html)
    return _TABLE_BOX.sub(  # after the prose tables: their pattern tells the two apart by this div
        lambda m: f'<div class="anatomy-table" {_attrs(_text(m.group(2) or "") or names["table"])}>{m.group(1)}', page_html)
