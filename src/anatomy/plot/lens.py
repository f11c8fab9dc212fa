"""Figures of Chapter 7: the logit lens as a grid of tokens, and answer probabilities per layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from ..lens import LanguageCurves, LogitLens
from .style import families as _families
from .style import describe as _describe
from .style import style as _style

__all__ = ["language_curves", "logit_lens"]

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def _short(text: str, n: int = 9) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def logit_lens(lens: LogitLens, *, layers=None, title: str | None = None) -> Figure:
    """Top token of every layer (rows, embedding at the bottom) at every position (columns) (Chapter 7).

    Each cell shows the most likely next token and its probability; the colour is that probability.
    """
    if not isinstance(lens, LogitLens):
        raise AnatomyError("logit_lens draws a LogitLens: pass the result of anatomy.logit_lens(model, prompt).")
    layers = list(range(lens.n_layers + 1)) if layers is None else list(layers)
    T = len(lens.tokens)
    grid = lens.top_probs[layers, :, 0].numpy()  # [len(layers), T]
    with _style():
        fig, ax = plt.subplots(figsize=(1.2 + 1.05 * T, 0.8 + 0.3 * len(layers)))
        im = ax.imshow(grid, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1)
        for r, i in enumerate(layers):
            for p in range(T):
                prob = float(grid[r, p])
                ax.text(p, r, f"{_short(lens.top_text[i][p][0])}\n{prob:.2f}", ha="center", va="center", fontsize=6.5,
                        linespacing=0.95, color="white" if prob > 0.6 else "black", fontfamily=_families())
        ax.set_xticks(range(T), [t.text for t in lens.tokens], fontfamily=_families(), fontsize=8)
        ax.set_yticks(range(len(layers)), ["emb" if i == 0 else str(i) for i in layers], fontsize=7)
        ax.set_xlabel("input token (the cell predicts the token after it)")
        ax.set_ylabel("layer")
        ax.spines[["left", "bottom"]].set_visible(False)
        fig.colorbar(im, ax=ax, shrink=0.6, label="probability of the top token")
        ax.set_title(title or f"{lens.model_name}: logit lens of “{lens.prompt}”", fontsize=10, fontfamily=_families())
    return _describe(
        fig,
        en=f"Logit lens of {lens.model_name} on “{lens.prompt}”: the most likely next token and its probability read from every layer (rows, embedding at the bottom) at every position (columns); darker = more probable. {title or ''}",
        zh=f"{lens.model_name} 对“{lens.prompt}”的 logit lens：从每一层（行，最下面是嵌入）、每个位置（列）读出的最可能的下一个词元及其概率；颜色越深概率越大。{title or ''}",
    )


def language_curves(curves, *, title: str | None = None) -> Figure:
    """Per layer, the mean probability of the answer in each language; one panel per model (Chapter 7).

    Thin lines are single prompts, thick lines their average. The x axis is the layer (0 = embedding).
    """
    curves = [curves] if isinstance(curves, LanguageCurves) else list(curves)
    if not curves or not all(isinstance(c, LanguageCurves) for c in curves):
        raise AnatomyError("language_curves draws LanguageCurves: pass anatomy.language_curves(model, prompts, answers) for one or more models.")
    with _style():
        fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.4), squeeze=False)
        for ax, c in zip(axes[0], curves):
            x = range(c.probs.shape[1])
            for g, lang in enumerate(c.languages):
                colour = _COLOURS[g % len(_COLOURS)]
                for n in range(c.probs.shape[0]):
                    ax.plot(x, c.probs[n, :, g].numpy(), color=colour, lw=0.6, alpha=0.35)
                ax.plot(x, c.mean[:, g].numpy(), color=colour, lw=2.2, label=f"{lang} (mean of {c.probs.shape[0]})")
            ax.set_xlabel("layer (0 = embedding)")
            ax.set_ylabel("probability of the answer's first token")
            ax.set_ylim(0, max(float(c.probs.max()) * 1.1, 0.05))
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_title(c.model_name, fontsize=10)
            ax.legend(prop={"family": _families(), "size": 8}, loc="upper left")
        if title:
            fig.suptitle(title, fontfamily=_families())
    return _describe(
        fig,
        en="Probability of the answer's first token in each language, layer by layer (0 = embedding), thin lines single prompts and thick lines their mean, for " + ", ".join(c.model_name for c in curves) + f". {title or ''}",
        zh="逐层（0 为嵌入）读出的答案首个词元在各语言中的概率，细线为单个提示，粗线为平均；模型：" + "、".join(c.model_name for c in curves) + f"。{title or ''}",
    )
