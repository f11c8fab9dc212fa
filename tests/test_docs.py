"""The site's structure: every chapter exists in both languages with identical code, and is in the nav."""

import re
from pathlib import Path

import pytest
from sitetools import executor, nav

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.S | re.M)  # only to count the fences a reader sees
HEADER = "---\njupyter:\n  jupytext:"


def code_blocks(path: Path) -> list:
    """The ```python blocks of a page as the build reads them (jupytext), comments and blank lines left out."""
    if not path.read_text(encoding="utf-8").startswith("---"):
        return []  # plain Markdown: nothing is executed
    return [executor().code_without_comments(source) for source in executor().code_cells(str(path))]


# docs/en/api: the API reference, English only, rendered from the docstrings (tests/test_reference.py)
PAGES = sorted(p.relative_to(DOCS / "en") for p in (DOCS / "en").rglob("*.md") if p.relative_to(DOCS / "en").parts[0] != "api")
REFERENCE = [Path("glossary.md"), Path("references.md")]  # pages without code: plain Markdown, not executed
CHAPTERS = [p for p in PAGES if p not in REFERENCE]


def test_there_are_chapters():
    assert Path("index.md") in CHAPTERS and len(CHAPTERS) >= 2


@pytest.mark.parametrize("chapter", CHAPTERS, ids=str)
def test_chinese_twin_runs_identical_code(chapter):
    en, zh = DOCS / "en" / chapter, DOCS / "zh" / chapter
    assert zh.exists(), f"{zh} is missing"
    assert code_blocks(en) == code_blocks(zh)
    assert code_blocks(en), "a chapter without code is not executed"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=str)
def test_chapter_is_executable_markdown(chapter):
    for lang in ("en", "zh"):
        text = (DOCS / lang / chapter).read_text(encoding="utf-8")
        assert text.startswith(HEADER), f"{lang}/{chapter} lacks the jupytext header that makes the build execute it"
        assert "kernelspec" in text.split("\n---", 1)[0]


def test_no_orphan_chinese_pages():
    zh = sorted(p.relative_to(DOCS / "zh") for p in (DOCS / "zh").rglob("*.md"))
    assert zh == PAGES


def test_nav_lists_exactly_the_written_pages():
    assert sorted(map(Path, nav())) == PAGES


@pytest.mark.parametrize("page", REFERENCE, ids=str)
def test_reference_pages_have_no_code_and_a_chinese_twin_with_the_same_entries(page):
    en, zh = (DOCS / lang / page for lang in ("en", "zh"))
    assert not en.read_text(encoding="utf-8").startswith("---") and not code_blocks(en)
    entry = re.compile(r"^## .+ \{#([\w-]+)\}$|^- <a id=\"([\w-]+)\"></a>", re.M)  # a glossary term, a reference
    anchors = [["".join(m) for m in entry.findall(p.read_text(encoding="utf-8"))] for p in (en, zh)]
    assert anchors[0] == anchors[1] and len(anchors[0]) >= 20


@pytest.mark.parametrize("chapter", CHAPTERS, ids=str)
def test_only_python_blocks_are_executed(chapter):
    """jupytext turns ```bash fences into %%bash cells that the build would run: only python may run."""
    import jupytext

    for lang in ("en", "zh"):
        cells = jupytext.read(DOCS / lang / chapter).cells
        code = [c.source for c in cells if c.cell_type == "code"]
        assert not [s for s in code if s.lstrip().startswith("%")], f"{lang}/{chapter} has a cell magic"
        assert len(code) == len(FENCE.findall((DOCS / lang / chapter).read_text(encoding="utf-8")))


def _shown_blocks(text: str) -> list[str]:
    """The fenced blocks of a page that are shown but not executed (```text and the like)."""
    blocks, fence = [], None  # fence: the info string of the block we are in, or None outside one
    for line in text.splitlines():
        if fence is None and line.startswith("```"):
            fence, lines = line[3:].strip(), []
        elif fence is not None and line.strip() == "```":
            blocks += [] if fence.startswith("python") else ["\n".join(lines)]
            fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def _columns(line: str) -> int:
    """How many columns of a monospaced font a line takes: a Chinese character takes two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=str)
def test_chapter_code_lines_fit_the_page(chapter):
    """No code line over 100 characters, so no block scrolls sideways at 1280 px (issue 22 §6); a
    block shown but not executed (```text) is held to 100 columns, a Chinese character taking two.
    The browser test measures the built pages themselves (tests/test_site.py)."""
    for lang in ("en", "zh"):
        text = (DOCS / lang / chapter).read_text(encoding="utf-8")
        long = [line for source in executor().code_cells(str(DOCS / lang / chapter)) for line in source.splitlines()
                if len(line) > 100]
        long += [line for source in _shown_blocks(text) for line in source.splitlines() if _columns(line) > 100]
        assert long == [], f"{lang}/{chapter}: {len(long)} code line(s) over 100 characters: {long[:3]}"
