"""scripts/figures.py: a figure becomes one file named by its content, shared by every page that shows it."""

from __future__ import annotations

import base64
import hashlib
import io
import re

import pytest
from sitetools import script

figures = script("figures")


def _png(width: int, height: int, colour: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100, facecolor=colour)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def test_png_size_reads_the_header_and_refuses_other_data():
    assert figures.png_size(_png(320, 200, "white")) == (320, 200)
    with pytest.raises(ValueError, match="not a PNG"):
        figures.png_size(b"GIF89a" + b"\0" * 30)


def test_one_file_per_figure_shared_by_pages_in_every_folder(tmp_path):
    red, blue = _png(320, 200, "red"), _png(300, 300, "blue")
    img_red = figures.figure_img(base64.b64encode(red).decode(), "a &quot;red&quot; box")
    img_blue = figures.figure_img(base64.b64encode(blue).decode(), "blue", {"image/png": {"width": 150, "height": 150}})
    assert 'width="320" height="200"' in img_red and 'width="150" height="150"' in img_blue  # the size shown, from the metadata
    assert 'loading="lazy"' in img_red and 'decoding="async"' in img_red and 'alt="a &quot;red&quot; box"' in img_red
    site = tmp_path / "site"
    en = figures.place(f"<p>{img_red}{img_blue}</p>", str(site / "attention" / "index.html"), site)
    zh_tw = figures.place(f"<p>{img_red}</p>", str(site / "zh-TW" / "attention" / "index.html"), site)
    name = hashlib.sha256(red).hexdigest()[:16] + ".png"
    assert re.findall(r'src="([^"]+)"', en)[0] == f"../assets/figures/{name}"
    assert re.findall(r'src="([^"]+)"', zh_tw) == [f"../../assets/figures/{name}"]
    files = sorted((site / "assets" / "figures").iterdir())
    assert len(files) == 2 and (site / "assets" / "figures" / name).read_bytes() == red
