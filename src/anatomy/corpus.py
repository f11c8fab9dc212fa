"""Running text in both languages that installs with the library: the book's own prose.

Chapters 14 and 16 look for the contexts that make a neuron or a feature fire, which needs a corpus
that works offline and that we may redistribute. The book's own prose is that corpus (our writing,
under the project's licence), one paragraph per entry, code and math left out. It is a snapshot,
written by ``scripts/make_corpus.py``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from .errors import AnatomyError

__all__ = ["LANGUAGES", "book_text"]

LANGUAGES = ("en", "zh")


@cache
def book_text(language: str = "en") -> tuple[str, ...]:
    """The book's prose in ``language`` ("en" or "zh"): a tuple of paragraphs, in chapter order."""
    if language not in LANGUAGES:
        raise AnatomyError(f"No corpus in language {language!r}: choose one of {', '.join(LANGUAGES)}.")
    text = resources.files("anatomy").joinpath("data", f"corpus_{language}.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())
