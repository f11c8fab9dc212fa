"""Claims: the sentences of a chapter that read a result, checked by the chapter's own code.

A chapter states what its numbers show ("without steering, Δ is negative on every prompt"). The
block right after the one that printed those numbers calls `claim` with the same sentence and the
condition that makes it true. The prose cannot drift from what the code computes:

* on the book's default models (the ones a chapter was written about) a false claim raises
  `ClaimFailed`, so the site build and the tests fail and name the claim;
* on any other model (a reader who swapped the two `anatomy.load` lines) a false claim does not
  fail: the page shows a visible note that the sentence, written about the default models, does
  not hold here, with the measured value;
* a claim that holds shows a small mark that it was checked.

The English and Chinese pages run the same code, so a claim carries its sentence in both
languages; the page shows the one in its own language (see docs/assets/extra.css).
Introduced on Start here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .errors import AnatomyError
from .loading import DEFAULT_MODELS

__all__ = ["Claim", "ClaimFailed", "claim", "glue"]

GLUE: dict = {}  # TEMPORARY shim until main has the result-sentence mechanism


def glue(**values) -> None:
    """TEMPORARY shim: name values for the prose."""
    GLUE.update(values)


class ClaimFailed(AnatomyError, AssertionError):
    """A sentence of a chapter does not hold on the default models it was written about."""


@dataclass(frozen=True)
class Claim:
    """One checked sentence: its text in English and Chinese, whether it holds, on which models."""

    text: str
    zh: str
    holds: bool
    models: tuple[str, ...]
    measured: str = ""

    @property
    def about_defaults(self) -> bool:
        """True when every model the claim speaks of is a default model of the book."""
        return all(name in DEFAULT_MODELS for name in self.models)

    def _repr_html_(self) -> str:
        esc = lambda s: html.escape(s, quote=True)  # noqa: E731
        kind = "holds" if self.holds else "fails"
        measured = f' <span class="anatomy-claim-measured">({esc(self.measured)})</span>' if self.measured else ""
        models = esc(", ".join(self.models))
        return (
            f'<div class="anatomy-claim anatomy-claim-{kind}" data-models="{models}">'
            f'<span class="anatomy-claim-mark"></span>'
            f'<span lang="en">{esc(self.text)}</span><span class="anatomy-claim-sep"> · </span>'
            f'<span lang="zh">{esc(self.zh)}</span>{measured}</div>'
        )

    def __str__(self) -> str:
        if self.holds:
            return f"✓ checked on {', '.join(self.models)}: {self.text}"
        return (f"✗ written about the default models, does not hold on {', '.join(self.models)}: "
                f"{self.text}" + (f" (measured: {self.measured})" if self.measured else ""))

    __repr__ = __str__


def claim(text: str, holds, *, zh: str, about, measured=None, kind: str = "behaviour", **values) -> Claim | None:
    """Check one sentence of a chapter against the value it reads (Start here explains the convention).

    ``holds`` is the condition, computed from the block's results; ``about`` is the model (or the
    models) the sentence speaks of; ``measured`` is the value to show when it does not hold.
    On the default models a false claim raises `ClaimFailed`; on other models it shows a note.
    In a notebook (and so on the site) the claim is displayed and nothing is returned; elsewhere
    it is returned.
    """
    if not isinstance(text, str) or not text.strip() or not isinstance(zh, str) or not zh.strip():
        raise AnatomyError("A claim needs its sentence in English (text=...) and in Chinese (zh=...).")
    text, zh = text.format(**values), zh.format(**values)  # TEMPORARY shim
    models = about if isinstance(about, (tuple, list)) else (about,)
    names = tuple(m if isinstance(m, str) else getattr(m, "name", None) for m in models)
    if not names or any(not isinstance(n, str) for n in names):
        raise AnatomyError("claim(..., about=...) takes the model (or models) the sentence speaks of, e.g. about=smol.")
    try:
        ok = bool(holds)
    except (RuntimeError, ValueError) as err:  # a tensor of several values has no truth value
        raise AnatomyError(f"The condition of the claim {text!r} must be one True or False ({err}); "
                           "use .all() or .any() on a tensor.") from None
    result = Claim(text=text, zh=zh, holds=ok, models=names, measured=_fmt(measured))
    if not ok and result.about_defaults:
        raise ClaimFailed(
            f"The chapter says {text!r}, but on {', '.join(names)} it does not hold"
            + (f" (measured: {result.measured})" if result.measured else "")
            + ". Fix the sentence and this check together, or find what changed in the code it reads."
        )
    return _show(result)


def _fmt(measured) -> str:
    if measured is None:
        return ""
    if isinstance(measured, float):
        return f"{measured:.4g}"
    if hasattr(measured, "tolist"):
        return _fmt(measured.tolist())
    if isinstance(measured, (list, tuple)):
        return ", ".join(_fmt(m) for m in measured)
    if isinstance(measured, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in measured.items())
    return str(measured)


def _show(result: Claim) -> Claim | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return result
    if get_ipython() is None:
        return result
    from IPython.display import display

    display(result)
    return None
