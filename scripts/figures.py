"""Figures as files: each PNG written once, named by its content, shared by the three languages.

A chapter's figures are the same in English, Simplified and Traditional Chinese (the pages share
one execution, scripts/executor.py). Inline as base64 they were repeated in every page and had
to be downloaded before the page could be parsed. Here each figure becomes one file,
`assets/figures/<sha256 of its bytes, 16 hex>.png` at the top of the site (beside the English
pages, above zh/ and zh-TW/), and every page that shows it points there with a relative URL,
`loading="lazy"` and `decoding="async"`, and its width and height (the browser reserves the
figure's box before the file arrives: no layout shift).

Two steps, because the page's address is not known while its notebook is rendered:
`figure_img` (from the renderer) gives an <img> whose src is a placeholder, and `place` (from
the page hooks, which know the page and the site folder) writes the file and sets the real src.
"""

from __future__ import annotations

import base64
import hashlib
import html as _html
import os
import re
import struct
from pathlib import Path

FOLDER = "assets/figures"  # under the top of the site
_PLACEHOLDER = "anatomy-figure:"  # src of an <img> until `place` knows the page's address
_PENDING: dict[str, bytes] = {}  # file name -> PNG bytes, for every figure rendered in this process


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("a figure output is not a PNG image (its first bytes are not a PNG header).")
    return struct.unpack(">II", data[16:24])


def figure_img(png_base64: str, alt: str, metadata: dict | None = None) -> str:
    """The <img> of one figure (base64 PNG from a notebook output); `alt` is already escaped for HTML.

    Width and height are the size the page shows when the output's metadata gives one (a figure
    drawn at twice the screen's resolution says so there), else the PNG's own size.
    """
    data = base64.b64decode(png_base64)
    width, height = png_size(data)
    shown = (metadata or {}).get("image/png", {}) if isinstance(metadata, dict) else {}
    if shown.get("width") and shown.get("height"):
        width, height = int(shown["width"]), int(shown["height"])
    name = hashlib.sha256(data).hexdigest()[:16] + ".png"
    _PENDING[name] = data
    return (f'<img src="{_PLACEHOLDER}{name}" alt="{alt}" width="{width}" height="{height}" '
            f'loading="lazy" decoding="async">')


_SRC = re.compile(r'src="' + re.escape(_PLACEHOLDER) + r'([0-9a-f]{16}\.png)"')


def place(html: str, page_file: str, site_top: Path) -> str:
    """Write the page's figures into `site_top`/assets/figures (once each) and point its <img>s there.

    `page_file` is the HTML file the page is written to (mkdocs' abs_dest_path).
    """
    folder = Path(site_top) / FOLDER

    def one(m: re.Match) -> str:
        name = m.group(1)
        target = folder / name
        if name not in _PENDING:
            raise RuntimeError(f"figure {name} was not rendered in this build; render the page's notebook first.")
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(_PENDING[name])
            tmp.replace(target)
        url = Path(os.path.relpath(target, Path(page_file).parent)).as_posix()
        return f'src="{_html.escape(url, quote=True)}"'

    return _SRC.sub(one, html)
