"""Test set-up for the whole repository (tests/ and docs/).

* Markdown chapters: pytest-markdown-docs collects each ```python block of docs/**/*.md as a
  test. Its ``continuation`` option would re-run all earlier blocks for every block (quadratic
  in chapter length). Instead, the runner registered here executes a chapter the way the site
  build does, through the same code (``scripts/executor.py``): every block once, in order, in
  one Jupyter kernel per chapter, figures rendered. The English and Chinese pages of a chapter
  run identical code (tests/test_docs.py checks it), so they share one execution, and the
  executed outputs go to the site's cache, keyed on the chapter's code, the `anatomy` source and
  the library versions. A chapter therefore runs at most once per test session *and* site build:
  when the browser test has built the site, the blocks' tests read that execution, and a block
  that raised fails here with its traceback. To force a fresh execution, point the cache
  elsewhere: ``ANATOMY_SITE_CACHE=$(mktemp -d) pytest docs``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports pyplot
# One torch thread in this process. The library's tests share the two cores with work running beside
# them (the site build, Chromium, the kernels of tests/test_any_model.py); with torch's default of one
# thread per core, its threads wait for each other whenever those run: a test that takes 0.4 s alone
# took 66 s in CI. Kernels that execute chapters set their own counts (scripts/executor.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from markdown_it import MarkdownIt  # noqa: E402
from pytest_markdown_docs._runners import DefaultRunner, register_runner  # noqa: E402
from pytest_markdown_docs.plugin import extract_fence_tests  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # as pytest does for test modules
from sitetools import executor, start_site_build  # noqa: E402


# docs/zh-TW is written by the site build from docs/zh (scripts/traditional.py), with the same
# code blocks (tests/test_traditional.py checks it): its blocks are not collected a second time.
collect_ignore = ["docs/zh-TW"]


def pytest_collection_finish(session):
    """Execute the collected chapters that have no cached outputs, two at a time, before the tests run;
    then start the site build in the background if the browser tests will need it, and the work of
    test modules that waits for it (their ``start_early()``)."""
    from sitetools import nav

    order = list(reversed(nav()))  # later chapters first (see executor.longest_first)
    paths = sorted({str(item.path) for item in session.items if str(item.path).endswith(".md")},
                   key=lambda p: (order.index(Path(p).name) if Path(p).name in order else len(order), p))
    if paths:
        executor().prefetch(paths)
    if session.config.option.collectonly:
        return
    if any(item.path.name == "test_site.py" for item in session.items):
        start_site_build()  # in the background, beside the other tests; tests/test_site.py waits for it
    # Work of the test modules that waits for the build in a thread of its own, and then runs beside
    # the library tests (the browser visits of tests/test_site.py, the reading of the PDFs).
    for module in {id(m): m for m in (getattr(item, "module", None) for item in session.items) if hasattr(m, "start_early")}.values():
        module.start_early(session.items)


class BlockFailed(Exception):
    """A chapter's block raised while the chapter ran (message: the kernel's traceback)."""


@register_runner(default=True)
class ChapterRunner(DefaultRunner):
    """Passes a block if it ran without error in its chapter's (single, shared) execution."""

    chapters: dict[str, object] = {}  # path -> executed notebook, or the ChapterFailed error

    def _chapter(self, path: str):
        if path not in self.chapters:
            try:
                self.chapters[path] = executor().with_outputs(path)
            except executor().ChapterFailed as err:
                self.chapters[path] = err
        return self.chapters[path]

    def runtest(self, test, args, *, asyncio_runner=None):
        path = str(test.source_path)
        text = Path(path).read_text(encoding="utf-8")
        blocks = list(extract_fence_tests(MarkdownIt(), text, 0, Path(path)))
        index = [b.start_line for b in blocks].index(test.start_line)
        result = self._chapter(path)
        if isinstance(result, executor().ChapterFailed):
            if result.cell is None or index == result.cell:
                raise BlockFailed(result.error)
            if index > result.cell:
                raise BlockFailed(f"not run: block {result.cell + 1} of this chapter (line {blocks[result.cell].start_line}) failed before it")
            return
        cells = [c for c in result.cells if c.cell_type == "code"]
        assert len(cells) == len(blocks), f"the notebook of {path} has {len(cells)} code cells for {len(blocks)} python blocks"
        assert cells[index].source.strip() == test.source.strip(), "the notebook cell differs from the block"
        errors = [o for o in cells[index].outputs if o.get("output_type") == "error"]
        assert not errors, errors

    def repr_failure(self, test, excinfo, style=None):
        if isinstance(excinfo.value, BlockFailed):
            return f"{test.source_path}, block at line {test.start_line} raised:\n{excinfo.value}"
        return super().repr_failure(test, excinfo, style)
