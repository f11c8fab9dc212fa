"""Interactive figures for the site (issue 27): data computed by the chapter, drawn by the site's script.

``live_figure(kind, data, alt_en=..., alt_zh=...)`` wraps a small JSON-able dict in an HTML element
that ``docs/assets/live/core.js`` finds on the page and hands to the renderer registered for
``kind`` (``docs/assets/live/<kind>.js``). Nothing is loaded from anywhere but the site. The static
figure (a PNG with alt text) stays on the page for print, for readers without JavaScript and for the
downloaded notebook; the live figure is drawn next to it when the script runs.

Tokens are untrusted text (vocabularies hold ``</script>``, quotes and control characters): the JSON
is escaped so that nothing in it can close the ``<script>`` element that carries it, and the
renderers put text into the page with ``textContent`` only. Labels meant for the reader go into
``data`` as ``{"en": ..., "zh": ...}`` pairs; the site build turns the ``zh`` of each pair into
Traditional text on zh-TW pages (scripts/live.py).
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass

from ..errors import AnatomyError

__all__ = ["LiveFigure", "live_figure", "pair", "sig", "to_json"]

_KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")
# What could end the <script> element or confuse an HTML parser, as JSON escapes (valid JSON either way).
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNSAFE = re.compile("[<>&\u2028\u2029]")


def to_json(data) -> str:
    """``data`` as compact JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>``, ``&``, U+2028 and U+2029 are written as ``\\u`` escapes, so no token can close the
    script element; ``JSON.parse`` of the text gives ``data`` back unchanged.
    """
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise AnatomyError(f"The data of a live figure must be plain JSON (dicts, lists, strings, finite numbers): {err}.") from None
    return _UNSAFE.sub(lambda m: _ESCAPES[m.group(0)], text)


def sig(x, digits: int = 4):
    """``x`` (a number or nested lists of numbers) rounded to ``digits`` significant digits, to keep pages light."""
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    x = float(x)
    if not math.isfinite(x):
        raise AnatomyError(f"{x} cannot go into a live figure: only finite numbers can.")
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def pair(en: str, zh: str) -> dict:
    """A label in both languages, as the live figures' data carries it (the script picks the page's)."""
    return {"en": str(en), "zh": str(zh)}


@dataclass(frozen=True)
class LiveFigure:
    """An interactive figure: its kind (which renderer draws it), its data, and its description in both languages."""

    kind: str
    data: dict
    alt_en: str
    alt_zh: str

    def html(self) -> str:
        """The element the site's script draws into: ``div.anatomy-live`` holding the data as escaped JSON."""
        alt_en, alt_zh = (html.escape(a, quote=True) for a in (self.alt_en, self.alt_zh))
        return (f'<div class="anatomy-live" data-kind="{self.kind}" role="group" aria-label="{alt_en}" '
                f'data-alt-zh="{alt_zh}"><script type="application/json" class="anatomy-live-data">'
                f"{to_json(self.data)}</script></div>")

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:  # a notebook without the site's script shows this
        return f"LiveFigure({self.kind!r}: {self.alt_en})"


def live_figure(kind: str, data: dict, *, alt_en: str, alt_zh: str) -> LiveFigure:
    """An interactive figure of the given kind (``lens``, ``temperature``, ``attention``, ...) from its data.

    ``data`` is plain JSON (floats already rounded, e.g. with :func:`sig`); ``alt_en`` and ``alt_zh``
    describe the figure for screen readers in the page's language.
    """
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise AnatomyError(f"kind={kind!r} is not a figure kind: use a short lower-case name such as 'lens'.")
    if not isinstance(data, dict):
        raise AnatomyError(f"The data of a live figure is a dict, not {type(data).__name__}.")
    for name, alt in (("alt_en", alt_en), ("alt_zh", alt_zh)):
        if not isinstance(alt, str) or not alt.strip():
            raise AnatomyError(f"{name} is empty: describe the figure in one sentence for readers who cannot see it.")
    to_json(data)  # fails now, with a clear message, rather than when the page is shown
    return LiveFigure(kind, data, alt_en, alt_zh)
