"""Result sentences: the sentences of a chapter that read a result, checked by the chapter's own code.

A chapter states what its numbers show. The sentence is not typed into the prose: a block right
after the one that computed the results calls `claim` with the sentence in English and Chinese,
the condition that makes it true, and the measured values it quotes, which are formatted into the
sentence (``"{share:.0%}"``). So the prose cannot drift from what the code computes, and no
measured number is typed by hand:

* on the site the sentence reads as a paragraph of prose in the page's language, with a small
  mark; opening it shows the check (the block's code) and the values it read. The block of claims
  itself is hidden there (scripts/results.py); the notebook keeps it;
* on the book's default models, loaded as the book loads them (float32, on the CPU), a false
  claim raises `ClaimFailed`, so the site build and the tests fail and name the claim;
* on any other model or set-up (a reader who swapped the two `anatomy.load` lines, or loaded the
  default models in bfloat16 or on a GPU) a false claim does not fail: the page shows a visible
  note that the sentence, written about the default models, does not hold here, with the values.

`glue` names values for ordinary prose: the Markdown writes ``{glue}`name``` and the build
inserts the value. A claim that is true by construction, fixed by the model's design, its
configuration or its tokenizer rather than by its learned weights (a count of layers, how a word
is split into tokens), says so with ``kind="architecture"``; the others are claims about learned
behaviour, and each must be able to fail on random weights (tests/test_any_model.py checks it for
the chapters in its AUDITED list: add a chapter there when its sentences are audited).
Introduced on Start here.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass

from .errors import AnatomyError
from .loading import DEFAULT_MODELS
from .show import readable

__all__ = ["Claim", "ClaimFailed", "Glue", "claim", "glue"]

KINDS = ("behaviour", "architecture")
CLAIM_MIME = "application/vnd.anatomy.claim+json"
GLUE_MIME = "application/vnd.anatomy.glue+json"


class ClaimFailed(AnatomyError, AssertionError):
    """A sentence of a chapter does not hold on the default models it was written about."""


@dataclass(frozen=True)
class Claim:
    """One checked sentence: its text in English and Chinese (values formatted in), whether it holds,
    on which models, what kind of fact it is, and the values it read (name, as a reader reads it)."""

    text: str
    zh: str
    holds: bool
    models: tuple[str, ...]
    kind: str = "behaviour"
    values: tuple[tuple[str, str], ...] = ()
    defaults: bool = False  # about the book's default models, loaded as the book loads them

    @property
    def about_defaults(self) -> bool:
        """True when every model the claim speaks of is a default model of the book, loaded as the book does."""
        return self.defaults

    @property
    def measured(self) -> str:
        """The values the claim read, on one line."""
        return ", ".join(v if k == "measured" else f"{k} = {v}" for k, v in self.values)

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {"text/plain": str(self), "text/html": self._html()}
        data[CLAIM_MIME] = {"text": self.text, "zh": self.zh, "holds": self.holds, "models": list(self.models),
                            "kind": self.kind, "values": dict(self.values)}
        return data

    def _repr_html_(self) -> str:
        return self._html()

    def _html(self) -> str:
        esc = lambda s: html.escape(str(s), quote=True)  # noqa: E731
        both = lambda en, zh: f'<span lang="en">{esc(en)}</span><span lang="zh">{esc(zh)}</span>'  # noqa: E731
        models = esc(", ".join(self.models))
        values = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in self.values)
        table = f'<table class="anatomy-claim-values">{values}</table>' if values else ""
        code = '<pre class="anatomy-claim-code"><code></code></pre>'  # the check's code, put in by the site build
        if self.holds:
            about = both(f"Checked when this page was built, on {', '.join(self.models)}"
                         + (" (true by construction of the architecture)" if self.kind == "architecture" else "")
                         + ". The check and the values it read:",
                         f"本页构建时已在 {', '.join(self.models)} 上检验"
                         + ("（由架构决定，必然成立）" if self.kind == "architecture" else "")
                         + "。检验代码及其读到的数值：")
            return (f'<details class="anatomy-claim anatomy-claim-holds" data-models="{models}" data-kind="{self.kind}">'
                    f'<summary>{both(self.text, self.zh)}<span class="anatomy-claim-mark" '
                    f'aria-hidden="true"></span></summary>'
                    f'<div class="anatomy-claim-check"><p>{about}</p>{code}{table}</div></details>')
        note = both(f"Written about the book's default models; on {', '.join(self.models)} it does not hold. "
                    "The check and the values it read:",
                    f"这句话是针对本书默认模型写的，在 {', '.join(self.models)} 上不成立。检验代码及其读到的数值：")
        return (f'<div class="anatomy-claim anatomy-claim-fails" data-models="{models}" data-kind="{self.kind}">'
                f'<p>{both(self.text, self.zh)}</p><div class="anatomy-claim-check"><p>{note}</p>{code}{table}</div></div>')

    def __str__(self) -> str:
        values = f" ({self.measured})" if self.values else ""
        if self.holds:
            return f"✓ checked on {', '.join(self.models)}: {self.text}{values}"
        return f"✗ written about the default models, does not hold on {', '.join(self.models)}: {self.text}{values}"

    __repr__ = __str__


def claim(text: str, holds, *, zh: str, about, kind: str = "behaviour", measured=None, **values) -> Claim | None:
    """State one result sentence of a chapter and check it (Start here explains the convention).

    ``text`` and ``zh`` are the sentence in English and Chinese, as Python format strings: every
    other keyword argument is a value formatted into them (``"{share:.0%}"``, ``"{loss:.2f}"``,
    ``"{n:,}"``; a plain ``"{name}"`` reads as `anatomy.show.readable` writes it) and shown with the
    check. ``holds`` is the condition, computed from the block's results; ``about`` is the model
    (or the models) the sentence speaks of; ``kind`` is ``"behaviour"`` (learned: it must be able
    to fail on random weights) or ``"architecture"`` (true by construction: the design, the
    configuration or the tokenizer, not the learned weights). ``measured`` is an
    extra value to show with the check. On the default models a false claim raises `ClaimFailed`;
    elsewhere it shows a note. In a notebook the claim is displayed and nothing is returned;
    elsewhere it is returned.
    """
    if not isinstance(text, str) or not text.strip() or not isinstance(zh, str) or not zh.strip():
        raise AnatomyError("A claim needs its sentence in English (text=...) and in Chinese (zh=...).")
    if kind not in KINDS:
        raise AnatomyError(f"A claim's kind is 'behaviour' or 'architecture', not {kind!r}.")
    models = about if isinstance(about, (tuple, list)) else (about,)
    names = tuple(m if isinstance(m, str) else getattr(m, "name", None) for m in models)
    if not names or any(not isinstance(n, str) for n in names):
        raise AnatomyError("claim(..., about=...) takes the model (or models) the sentence speaks of, e.g. about=smol.")
    try:
        ok = bool(holds)
    except (RuntimeError, ValueError) as err:  # a tensor of several values has no truth value
        raise AnatomyError(f"The condition of the claim {text!r} must be one True or False ({err}); "
                           "use .all() or .any() on a tensor.") from None
    plain = {k: _plain(v) for k, v in values.items()}
    sentence, chinese = _format(text, plain), _format(zh, plain)
    shown = tuple((k, readable(v)) for k, v in plain.items())
    if measured is not None:
        shown += (("measured", _readable_measured(measured)),)
    result = Claim(text=sentence, zh=chinese, holds=ok, models=names, kind=kind, values=shown,
                   defaults=all(_loaded_as_the_book_does(m) for m in models))
    if not ok and result.about_defaults:
        raise ClaimFailed(
            f"The chapter says {sentence!r}, but on {', '.join(names)} it does not hold"
            + (f" (measured: {result.measured})" if shown else "")
            + ". Fix the sentence and this check together, or find what changed in the code it reads."
        )
    return _show(result)


@dataclass(frozen=True)
class Glue:
    """Values named for a chapter's prose: the Markdown writes ``{glue}`name``` and the build inserts the text."""

    values: tuple[tuple[str, str], ...]

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": str(self), GLUE_MIME: dict(self.values)}

    def __str__(self) -> str:
        return "\n".join(f"{k} = {v}" for k, v in self.values)

    __repr__ = __str__

    def __getitem__(self, name: str) -> str:
        return dict(self.values)[name]


def glue(**values) -> Glue | None:
    """Name values that the chapter's prose reads: ``anatomy.glue(best_layer=best)``, and in the
    Markdown ``{glue}`best_layer```. A string is inserted as given (format in code: ``f"{x:.0%}"``);
    anything else as `anatomy.show.readable` writes it (23,043; 0.656). In a notebook the values
    are displayed and nothing is returned; elsewhere they are returned.
    """
    if not values:
        raise AnatomyError("glue(...) takes the values to name, e.g. anatomy.glue(best_layer=best).")
    return _show(Glue(tuple((k, v if isinstance(v, str) else readable(_plain(v))) for k, v in values.items())))


def _plain(v):
    """A one-element tensor as its Python number (so format specs such as :.2f apply); the rest as is."""
    if hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1:
        return v.item()
    return v


class _Readable(string.Formatter):
    def format_field(self, value, format_spec):
        return readable(value) if not format_spec else format(value, format_spec)


def _format(sentence: str, values: dict) -> str:
    try:
        return _Readable().vformat(sentence, (), values)
    except KeyError as err:
        raise AnatomyError(f"The sentence {sentence!r} reads {{{err.args[0]}}} but the claim was given no value "
                           f"{err.args[0]}=...; pass it as a keyword argument.") from None
    except (ValueError, IndexError, TypeError) as err:
        raise AnatomyError(f"The sentence {sentence!r} cannot be formatted ({err}); values go in as "
                           "{name} or {name:.2f}, and a literal brace is written {{ or }}.") from None


def _readable_measured(measured) -> str:
    if isinstance(measured, dict):
        return ", ".join(f"{k}: {readable(_plain(v))}" for k, v in measured.items())
    return readable(_plain(measured))


def _loaded_as_the_book_does(model) -> bool:
    """A default model of the book, in float32 on the CPU (where its claims were written and checked)."""
    if isinstance(model, str):
        return model in DEFAULT_MODELS
    if getattr(model, "name", None) not in DEFAULT_MODELS:
        return False
    hf = getattr(model, "hf", None)
    if hf is None:
        return True
    import torch

    params = list(hf.parameters())
    return all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params[:1] + params[-1:]) and \
        not getattr(hf, "hf_device_map", None)


def _show(result):
    try:
        from IPython import get_ipython
    except ImportError:
        return result
    if get_ipython() is None:
        return result
    from IPython.display import display

    display(result)
    return None
