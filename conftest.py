"""Test set-up for the whole repository (tests/ and docs/).

* Markdown chapters: pytest-markdown-docs collects each ```python block of docs/**/*.md as a
  test. Its ``continuation`` option would re-run all earlier blocks for every block (quadratic
  in chapter length), so we register a default runner that runs each block exactly once, in
  order, in one namespace per chapter file, the way a notebook or the site build runs them.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports pyplot

import matplotlib.pyplot as plt  # noqa: E402
from pytest_markdown_docs._runners import DefaultRunner, register_runner  # noqa: E402


@register_runner(default=True)
class ChapterRunner(DefaultRunner):
    """Runs one code block in its chapter's shared namespace, once."""

    namespaces: dict = {}

    def runtest(self, test, args, *, asyncio_runner=None):
        ns = self.namespaces.setdefault(str(test.source_path), {"__name__": "__chapter__"})
        try:
            compiled = compile(test.source, filename=str(test.source_path), mode="exec", dont_inherit=True)
            exec(compiled, ns)
        finally:
            plt.close("all")
