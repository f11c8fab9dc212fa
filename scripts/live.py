"""The site's side of the interactive figures (issue 27; src/anatomy/plot/live.py writes them).

- ``localize(html, lang)``: on Chinese pages a figure's ``aria-label`` is its Chinese description;
  on zh-TW pages that description and the ``zh`` label of every ``{"en": ..., "zh": ...}`` pair in
  the figure's JSON are converted to Traditional with the converter the prose uses
  (scripts/traditional.py). Tokens are not such pairs: they stay as the model wrote them.
- ``add_scripts(html)``: only a page that holds a figure loads the figures' stylesheet, the shared
  script (docs/assets/live/core.js) and the renderer of each kind it holds (docs/assets/live/KIND.js),
  all deferred, from the site itself. Other pages load nothing more.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "docs" / "assets" / "live"

# A figure as live.py writes it; the notebook renderer re-serializes the output (its attributes come
# back in alphabetical order, quotes and entities may change), so the attributes are read in any order.
_TAG = r"""((?:[^>"']|"[^"]*"|'[^']*')*)"""
_FIGURE = re.compile(r"<div\s" + _TAG + r">\s*<script\s" + _TAG + r">(.*?)</script>\s*</div>", re.S)
_ATTR = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")


class Figure(NamedTuple):
    """One interactive figure of a page: where it is, its kind, aria-label, Chinese description and JSON text."""

    start: int
    end: int
    kind: str
    label: str
    alt_zh: str
    text: str


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1).lower(): htmllib.unescape(next((g for g in m.groups()[1:] if g is not None), ""))
            for m in _ATTR.finditer(text)}


def figures(page: str) -> list[Figure]:
    """The interactive figures of a page, in order, whatever order their attributes come in."""
    found = []
    for m in _FIGURE.finditer(page):
        div, holder = _attrs(m.group(1)), _attrs(m.group(2))
        if "anatomy-live" not in div.get("class", "").split() or "anatomy-live-data" not in holder.get("class", "").split():
            continue
        kind = div.get("data-kind", "")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", kind):
            continue
        found.append(Figure(m.start(), m.end(), kind, div.get("aria-label", ""), div.get("data-alt-zh", ""), m.group(3)))
    return found


def _element(kind: str, label: str, alt_zh: str, text: str) -> str:
    """A figure written as src/anatomy/plot/live.py writes it (``text``: its JSON, escaped already)."""
    label, alt_zh = (htmllib.escape(a, quote=True) for a in (label, alt_zh))
    return (f'<div class="anatomy-live" data-kind="{kind}" role="group" aria-label="{label}" data-alt-zh="{alt_zh}">'
            f'<script type="application/json" class="anatomy-live-data">{text}</script></div>')


_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _to_json(data) -> str:  # as src/anatomy/plot/live.py writes it (the site hooks do not import torch)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _ESCAPES[m.group(0)], text)


def _convert_pairs(data, convert):
    """``data`` with the ``zh`` text of every {"en", "zh"} pair passed through ``convert``."""
    if isinstance(data, dict):
        if set(data) == {"en", "zh"} and all(isinstance(v, str) for v in data.values()):
            return {"en": data["en"], "zh": convert(data["zh"])}
        return {k: _convert_pairs(v, convert) for k, v in data.items()}
    if isinstance(data, list):
        return [_convert_pairs(v, convert) for v in data]
    return data


def localize(page: str, lang: str, convert=None) -> str:
    """Each figure of the page in its language, written out again as live.py writes it: the Chinese
    description as label on zh pages; on zh-TW pages (``convert`` given: Simplified to Traditional)
    the description and labels converted."""
    out, at = [], 0
    for f in figures(page):
        label, alt_zh, text = f.label, f.alt_zh, f.text
        if lang != "en":
            if convert is not None:
                alt_zh = convert(alt_zh)
                text = _to_json(_convert_pairs(json.loads(text), convert))
            label = alt_zh
        out += [page[at:f.start], _element(f.kind, label, alt_zh, text)]
        at = f.end
    return "".join(out) + page[at:]


def kinds(page: str) -> list[str]:
    """The kinds of interactive figure on a page, in order of first appearance."""
    return list(dict.fromkeys(f.kind for f in figures(page)))


def add_scripts(page: str) -> str:
    """A page with interactive figures gets live.css, core.js and each kind's renderer (deferred), else unchanged."""
    found = kinds(page)
    if not found:
        return page
    missing = [k for k in found if not (ASSETS / f"{k}.js").is_file()]
    if missing:
        raise ValueError(f"No renderer for the interactive figure kind {missing[0]!r}: write docs/assets/live/{missing[0]}.js.")
    m = re.search(r'href="([^"]*)assets/extra\.css"', page)
    if not m:
        raise ValueError("A page with interactive figures has no link to assets/extra.css to find the site's assets from.")
    top = m.group(1)
    css = f'<link rel="stylesheet" href="{top}assets/live/live.css">'
    js = "".join(f'<script defer src="{top}assets/live/{name}.js"></script>' for name in ("core", *found))
    return page.replace("</head>", css + js + "</head>", 1)
