"""Shared look of every figure: fonts with Chinese glyphs, no global matplotlib changes."""

from __future__ import annotations

import contextlib
from functools import lru_cache

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.figure import Figure

__all__ = ["DescribedFigure", "book_style", "cjk_font", "describe", "font_families", "suptitle"]

_CJK_FONTS = (
    "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
    "PingFang SC", "Microsoft YaHei", "SimHei", "Arial Unicode MS",
)


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, or None if there is none."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in _CJK_FONTS if f in names), None)


def font_families() -> list[str]:
    """Font families to pass as ``fontfamily=`` to any text that may hold Chinese or token text."""
    return ["DejaVu Sans"] + ([cjk_font()] if cjk_font() else [])


@contextlib.contextmanager
def book_style():
    """Apply the book's figure style inside a ``with`` block only (rcParams restored on exit)."""
    rc = {
        "font.family": font_families(),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "figure.constrained_layout.use": True,
    }
    # Load the backend first: if pyplot loads it (and the notebook's inline backend switches on
    # interactive mode) inside rc_context, leaving the context would undo that set-up: the first
    # figure of a notebook would be shown twice and later ones not at all.
    plt._get_backend_mod()
    before = set(plt.get_fignums())
    with matplotlib.rc_context(rc):
        yield
    # Hand the figure to the caller only: pyplot forgets it, so a notebook shows it once, as the
    # value of the block (``anatomy.plot.tokens(...)`` or ``fig = ...; fig``), never twice.
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


class DescribedFigure(Figure):
    """A Figure that carries a short description of itself in English and Chinese.

    A notebook keeps the description in the output's metadata (key ``anatomy``); the site shows it
    as the image's alt text and as a caption, in the page's language (scripts/site_hooks.py).
    """

    description: dict[str, str]

    def _repr_mimebundle_(self, include=None, exclude=None):
        # No data of our own: the notebook's formatters add the PNG; we add the metadata.
        return {}, {"anatomy": {"description": dict(self.description)}}


def suptitle(fig: Figure, title: str | None) -> None:
    """Give the figure ``title`` (if any), in fonts that hold Chinese and token text."""
    if title:
        fig.suptitle(title, fontfamily=font_families())


def describe(fig: Figure, *, en: str, zh: str) -> Figure:
    """Attach what the figure shows (what it plots, which model, layer and head) in both languages."""
    fig.__class__ = DescribedFigure  # a Figure still: same state, one more way to show itself
    fig.description = {"en": " ".join(en.split()), "zh": "".join(zh.split("\n")).strip()}
    return fig


def titled(draw, *, en: str, zh: str, title: str | None = None) -> Figure:
    """The figure ``draw()`` makes in the book's style, ``title`` (if any) on top and after its description (en, zh)."""
    with book_style():
        fig = draw()
        suptitle(fig, title)
    return describe(fig, en=f"{en} {title or ''}", zh=f"{zh}{title or ''}")


def panel_row(items: list, draw_one, size: tuple[float, float], *, en: str, zh: str, title: str | None = None,
              ylabel: str | None = None) -> Figure:
    """One panel per item side by side, each ``size`` = (width, height) inches, drawn by ``draw_one(ax, item)``;
    ``ylabel`` (if any) on the leftmost panel; titled and described as by ``titled``."""
    def draw():
        fig, axes = plt.subplots(1, len(items), figsize=(size[0] * len(items), size[1]), squeeze=False)
        for ax, item in zip(axes[0], items):
            draw_one(ax, item)
        if ylabel:
            axes[0, 0].set_ylabel(ylabel)
        return fig
    return titled(draw, en=en, zh=zh, title=title)


def model_panels(results: list, draw_one, size: tuple[float, float], legend_width: float, *, xlabel: str, ylabel: str,
                 en: str, zh: str, subtitle: str | None = None) -> Figure:
    """One panel per model of a share in [0, 1] against the layer: the y axis shared, the legend right of the last.

    ``results`` are grouped by ``model_name`` in order; ``draw_one(ax, name, its results)`` draws the lines of
    each panel of ``size`` = (width, height) inches, titled with the model's name (and ``subtitle``).
    The description (en, zh) is followed by the models' names.
    """
    names = list(dict.fromkeys(r.model_name for r in results))
    with book_style():
        fig, axes = plt.subplots(1, len(names), figsize=(size[0] * len(names) + legend_width, size[1]), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], names):
            draw_one(ax, name, [r for r in results if r.model_name == name])
            ax.set_title(f"{name}: {subtitle}" if subtitle else name, fontsize=9, fontfamily=font_families())
            ax.set_xlabel(xlabel)
            ax.set_ylim(-0.03, 1.03)
        axes[0, 0].set_ylabel(ylabel)
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), prop={"family": font_families(), "size": 7})
    return describe(fig, en=f"{en} for " + ", ".join(names) + ".", zh=f"{zh}模型：" + "、".join(names) + "。")


STAGE_AXIS_LABEL = "output of layer ℓ (emb = the embedding that enters layer 0)"


def stage_x(n_layers: int) -> range:
    """x positions of the L + 1 stages: -1 for the embedding, ℓ for the output of layer ℓ."""
    return range(-1, n_layers)


def stage_ticks(n_layers: int, most: int = 10) -> list[int]:
    """Layer numbers to label on a stage axis, after "emb": every layer, or every step-th (not 0, next to "emb")."""
    step = next((s for s in (1, 2, 5, 10, 20, 50) if n_layers / s <= most), 100)
    ticks = list(range(0, n_layers)) if step == 1 else list(range(step, n_layers, step))
    if ticks and n_layers - 1 - ticks[-1] > step / 2:
        ticks.append(n_layers - 1)
    return ticks


def stage_axis(ax, n_layers: int, *, label: bool = True) -> None:
    """Label a stage axis drawn at ``stage_x``: a tick "emb" at -1, then some layer numbers ℓ."""
    ticks = [-1, *stage_ticks(n_layers)]
    ax.set_xticks(ticks, ["emb" if t == -1 else str(t) for t in ticks])
    ax.set_xlim(-1.5, n_layers - 0.5)
    if label:
        ax.set_xlabel(STAGE_AXIS_LABEL)
