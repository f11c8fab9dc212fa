"""The whole book as a PDF per language (scripts/pdf.py), as the site build printed it.

Uses the test session's site build (tests/sitetools.py), like tests/test_site.py. Each PDF must
open, be A4 with numbered pages, carry every chapter's title in its language, its figures and
typeset math, embed its fonts, print Chinese as glyphs in the Chinese editions, and be linked from
Start here. Under CI (CI=true) a missing Chromium is a failure, not a skip.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from sitetools import ROOT, executor, in_background, nav, pdf_texts, require_chromium, site_build

LANGS = ("en", "zh", "zh-TW")
NAV = nav()
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="session")
def site_dir() -> Path:
    require_chromium("the build printed no PDF")
    out, code, log = site_build()
    assert code == 0, log
    return out


def _texts() -> dict[str, list[str]]:
    """The text of every page of the three PDFs (pypdf), read in one process per core once the site is built."""
    out, code, _ = site_build()
    paths = [_pdf(out, lang) for lang in LANGS]
    return pdf_texts([p for p in paths if p.exists()]) if code == 0 else {}


def start_early(items) -> None:
    """Called by the root conftest with the collected tests: if any of them reads a PDF, the PDFs are
    read as soon as the site is built, beside the other tests."""
    if any(item.path.name == "test_pdf.py" and "site_dir" in getattr(item, "fixturenames", ()) for item in items):
        in_background("pdf-text", _texts)


@functools.cache
def _read(path: Path):
    """(reader, text of every page) of a PDF, read once per session."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = in_background("pdf-text", _texts).result().get(str(path))
    if pages is None:  # not there when the PDFs were read
        pages = [page.extract_text() or "" for page in reader.pages]
    assert len(pages) == len(reader.pages)
    return reader, pages


def _images(page) -> int:
    """The images a page draws: image XObjects, in its resources or in those of the forms it draws.

    What pypdf's ``len(page.images)`` counts, without the inline images (Chromium prints none),
    whose search parses every content stream again (10 s per book).
    """
    from pypdf.generic import IndirectObject

    count, seen = 0, set()

    def walk(resources):
        nonlocal count
        for ref in ((resources or {}).get("/XObject") or {}).values():
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image":
                count += 1
            elif obj.get("/Subtype") == "/Form":
                key = (ref.idnum, ref.generation) if isinstance(ref, IndirectObject) else id(obj)
                if key not in seen:
                    seen.add(key)
                    walk(obj.get("/Resources"))

    walk(page.get("/Resources"))
    return count


def _pdf(site_dir: Path, lang: str) -> Path:
    return site_dir / "pdf" / f"llm-anatomy-{lang}.pdf"


def _squeeze(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _title(lang: str, chapter: str) -> str:
    """The chapter's title as its page writes it: the first `# ` heading of docs/<lang>/<chapter> (markup removed)."""
    text = (ROOT / "docs" / lang / chapter).read_text(encoding="utf-8")
    heading = re.search(r"^# (.+)$", text, re.M).group(1)
    return re.sub(r"[`*]|\{#[\w-]+\}", "", heading).strip()


def _figures(chapter: str) -> int:
    """How many figures the chapter's code draws (from its executed notebook, shared by the three languages)."""
    path = ROOT / "docs" / "en" / chapter
    if not path.read_text(encoding="utf-8").startswith("---\njupyter:"):
        return 0
    nb = executor().with_outputs(str(path))
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))


@pytest.mark.parametrize("lang", LANGS)
def test_pdf_opens_a4_with_every_chapter_title_in_order(site_dir, lang):
    reader, pages = _read(_pdf(site_dir, lang))
    assert len(pages) > 2 * len(NAV), f"only {len(pages)} pages"
    width, height = (float(x) for x in reader.pages[0].mediabox.upper_right)
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297), "not A4"
    # The page number (n / total) is printed in every footer.
    total = len(pages)
    for n in (1, 2, 3, total):
        assert f"{n}/{total}" in _squeeze(pages[n - 1]), f"page {n} has no page number"
    # Each chapter starts on a new page (a bookmark points to it) that shows its title, in the
    # order of the navigation, and the contents (page 2) give that page's number.
    starts = {_squeeze(t.title): reader.get_destination_page_number(t) for t in reader.outline if not isinstance(t, list)}
    contents = _squeeze(pages[1])
    found = []
    for chapter in NAV:
        title = _squeeze(_title(lang, chapter))
        assert title in starts, f"{chapter}: no bookmark titled {_title(lang, chapter)!r} in the {lang} PDF"
        page = starts[title]
        assert title in _squeeze(pages[page]), f"{chapter}: page {page + 1} does not show its title"
        assert f"{title}{page + 1}" in contents, f"{chapter}: the contents do not say it starts on page {page + 1}"
        found.append(page)
    assert found == sorted(found) and found[0] == 2, f"chapters start on pages {found}"


@pytest.mark.parametrize("lang", LANGS)
def test_pdf_has_the_figures_and_typeset_math(site_dir, lang):
    reader, pages = _read(_pdf(site_dir, lang))
    images = sum(_images(page) for page in reader.pages)
    drawn = sum(_figures(c) for c in NAV)
    assert drawn > 10 and images >= drawn, f"{images} images in the PDF for {drawn} figures in the chapters"
    whole = "".join(pages)
    # MathJax typeset the formulas before printing: no TeX source left in the prose.
    leftovers = re.findall(r"\\(?:frac|mathrm|ell|sum|top)\b|\\\(|\\\[|\$\$", whole)
    assert not leftovers, f"untypeset TeX in the PDF: {leftovers[:5]}"


@pytest.mark.parametrize("lang", LANGS)
def test_pdf_embeds_its_fonts_and_prints_chinese_as_glyphs(site_dir, lang):
    reader, pages = _read(_pdf(site_dir, lang))
    fonts, not_embedded = set(), set()
    for page in reader.pages:
        for font in (page.get("/Resources") or {}).get("/Font", {}).values():
            font = font.get_object()
            if font.get("/Subtype") == "/Type3":  # glyphs drawn in the PDF itself (MathJax's web fonts)
                continue
            name = str(font.get("/BaseFont"))
            fonts.add(name)
            descendants = font.get("/DescendantFonts")
            described = descendants[0].get_object() if descendants else font
            descriptor = described.get("/FontDescriptor")
            if descriptor is not None and not any(k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                not_embedded.add(name)
    assert fonts and not not_embedded, f"fonts not embedded: {sorted(not_embedded)}"
    cjk = len(CJK.findall("".join(pages)))
    if lang == "en":
        return
    assert cjk > 10_000, f"only {cjk} CJK characters in the {lang} PDF"
    assert any("WenQuanYi" in f or "WenQuanYiMicroHei" in f for f in fonts), f"no CJK font in the PDF: {sorted(fonts)}"
    # U+FFFD only where the model itself wrote it (a token that is part of a character), as on the page.
    printed = (site_dir / lang / "print" / "index.html").read_text(encoding="utf-8").count("\ufffd")
    assert "".join(pages).count("\ufffd") <= printed, "a character was printed as a replacement box"
    if lang == "zh-TW":  # the Traditional edition, not the Simplified one (its title page)
        assert "解剖課" in pages[0] and "解剖课" not in pages[0]


@pytest.mark.parametrize("lang", LANGS)
def test_start_here_links_to_the_pdf_of_its_language(site_dir, lang):
    start = site_dir / ("" if lang == "en" else lang) / "index.html"
    links = re.findall(r'href="([^"]+\.pdf)"', start.read_text(encoding="utf-8"))
    assert links, f"Start here ({lang}) has no link to the PDF"
    assert all((start.parent / link).resolve() == _pdf(site_dir, lang).resolve() for link in links), links
