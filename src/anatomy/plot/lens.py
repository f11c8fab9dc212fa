"""Figures of Chapter 7: the logit lens as a grid of tokens, answer probabilities per layer, the residual stream."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from ..lens import LanguageCurves, LogitLens, ResidualStream
from .live import LiveFigure, live_figure, pair, sig
from .style import font_families, panel_row
from .style import describe as _describe
from .style import book_style as _style
from .style import stage_axis as _stage_axis
from .style import stage_x as _stage_x

__all__ = ["language_curves", "live_lens", "logit_lens", "residual_stream"]

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def _all_of(kind: type, given, message: str) -> list:
    """One ``kind`` or several, as a list of at least one (else AnatomyError(message))."""
    items = [given] if isinstance(given, kind) else list(given)
    if not items or not all(isinstance(x, kind) for x in items):
        raise AnatomyError(message)
    return items


def _short(text: str, n: int = 9) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def logit_lens(lens: LogitLens, *, layers=None, title: str | None = None) -> Figure:
    """Top token of every stage (rows: the embedding at the bottom, then layers 0..L-1) at every position (Chapter 7).

    Each cell shows the most likely next token and its probability; the colour is that probability.
    ``layers`` picks rows (ℓ or "embedding"); default all.
    """
    if not isinstance(lens, LogitLens):
        raise AnatomyError("logit_lens draws a LogitLens: pass the result of anatomy.logit_lens(model, prompt).")
    layers = ["embedding", *range(lens.n_layers)] if layers is None else list(layers)
    rows = [lens.row(i) for i in layers]
    T = len(lens.tokens)
    grid = lens.top_probs[rows, :, 0].numpy()  # [len(layers), T]
    with _style():
        fig, ax = plt.subplots(figsize=(1.2 + 1.05 * T, 0.8 + 0.3 * len(layers)))
        im = ax.imshow(grid, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1)
        for r, i in enumerate(rows):
            for p in range(T):
                prob = float(grid[r, p])
                ax.text(p, r, f"{_short(lens.top_text[i][p][0])}\n{prob:.2f}", ha="center", va="center", fontsize=6.5,
                        linespacing=0.95, color="white" if prob > 0.6 else "black", fontfamily=font_families())
        ax.set_xticks(range(T), [t.text for t in lens.tokens], fontfamily=font_families(), fontsize=8)
        ax.set_yticks(range(len(rows)), ["emb" if i == 0 else str(i - 1) for i in rows], fontsize=7)
        ax.set_xlabel("input token (the cell predicts the token after it)")
        ax.set_ylabel("output of layer (emb = embedding)")
        ax.spines[["left", "bottom"]].set_visible(False)
        fig.colorbar(im, ax=ax, shrink=0.6, label="probability of the top token")
        ax.set_title(title or f"{lens.model_name}: logit lens of “{lens.prompt}”", fontsize=10, fontfamily=font_families())
    return _describe(
        fig,
        en=f"Logit lens of {lens.model_name} on “{lens.prompt}”: the most likely next token and its probability read from every layer (rows, embedding at the bottom) at every position (columns); darker = more probable. {title or ''}",
        zh=f"{lens.model_name} 对“{lens.prompt}”的 logit lens：从每一层（行，最下面是嵌入）、每个位置（列）读出的最可能的下一个词元及其概率；颜色越深概率越大。{title or ''}",
    )


def language_curves(curves, *, title: str | None = None) -> Figure:
    """Per layer, the mean probability of the answer in each language; one panel per model (Chapter 7).

    Thin lines are single prompts, thick lines their average. The x axis is the stage: "emb" the
    embedding, ℓ the output of layer ℓ.
    """
    curves = _all_of(LanguageCurves, curves,
                     "language_curves draws LanguageCurves: pass anatomy.language_curves(model, prompts, answers) for one or more models.")

    def draw(ax, c):
        x = _stage_x(c.n_layers)
        for g, lang in enumerate(c.languages):
            colour = _COLOURS[g % len(_COLOURS)]
            for n in range(c.probs.shape[0]):
                ax.plot(x, c.probs[n, :, g].numpy(), color=colour, lw=0.6, alpha=0.35)
            ax.plot(x, c.mean[:, g].numpy(), color=colour, lw=2.2, label=f"{lang} (mean of {c.probs.shape[0]})")
        _stage_axis(ax, c.n_layers)
        ax.set_ylabel("probability of the answer's first token")
        ax.set_ylim(0, max(float(c.probs.max()) * 1.1, 0.05))
        ax.set_title(c.model_name, fontsize=10)
        ax.legend(prop={"family": font_families(), "size": 8}, loc="upper left")

    return panel_row(
        curves, draw, (5.2, 3.4),
        en="Probability of the answer's first token in each language, layer by layer (from the embedding to the last layer's output), thin lines single prompts and thick lines their mean, for " + ", ".join(c.model_name for c in curves) + ".",
        zh="逐层（从嵌入到最后一层的输出）读出的答案首个词元在各语言中的概率，细线为单个提示，粗线为平均；模型：" + "、".join(c.model_name for c in curves) + "。",
        title=title,
    )


def residual_stream(streams, *, position: int = -1, title: str | None = None) -> Figure:
    """Per layer, the length of the stream and of what attention and the FFN add to it; one panel per model (Chapter 7).

    Log scale: the stream grows by orders of magnitude from the embedding to the last layer.
    """
    streams = _all_of(ResidualStream, streams,
                      "residual_stream draws ResidualStream results: pass anatomy.residual_stream(model, prompt) for one or more models.")

    def draw(ax, rs):
        n = rs.norms(position).numpy()  # [L+1, 3]
        x = range(n.shape[0])  # x = i: the input of layer i (the output of layer i - 1; 0 = the embedding)
        ax.plot(x, n[:, 0], color=_COLOURS[0], lw=2.2, marker="o", ms=3, label="|stream| (input of layer i)")
        ax.plot(x[:-1], n[:-1, 1], color=_COLOURS[1], lw=1.2, label="|attention write| of layer i")
        ax.plot(x[:-1], n[:-1, 2], color=_COLOURS[2], lw=1.2, label="|FFN write| of layer i")
        ax.set_yscale("log")
        ax.set_xlabel(f"layer i, reading its input (i = {rs.n_layers}: the last layer's output, before the final norm)")
        ax.set_ylabel("length (L2 norm)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        p = position % len(rs.tokens)
        ax.set_title(f"{rs.model_name}, position {p} ({rs.tokens[p].text})", fontsize=10, fontfamily=font_families())
        ax.legend(prop={"size": 8}, loc="upper left")

    return panel_row(
        streams, draw, (5.2, 3.4),
        en="Length of the residual stream at each layer's input (log scale), with the lengths of what each layer's attention and FFN add to it, at the token " + "; ".join(f"“{rs.tokens[position % len(rs.tokens)].text}” in {rs.model_name}" for rs in streams) + ".",
        zh="残差流在每一层输入处的长度（对数刻度），以及每层注意力和 FFN 加进去的向量的长度；词元：" + "；".join(f"{rs.model_name} 中的“{rs.tokens[position % len(rs.tokens)].text}”" for rs in streams) + "。",
        title=title,
    )


def live_lens(lenses, k: int = 5) -> LiveFigure:
    """The logit lens as an interactive figure (Chapter 7): a layers x positions grid of top tokens;
    hovering a cell (or moving to it with the arrow keys) shows its top ``k`` tokens and their
    probabilities. ``lenses``: one LogitLens or several (one per model: a choice of model).

    The data is the records' own top tokens (``logit_lens(..., k=...)`` with at least ``k``),
    probabilities rounded to 4 significant digits; nothing is computed again.
    """
    lenses = [lenses] if isinstance(lenses, LogitLens) else list(lenses)
    if not lenses or not all(isinstance(x, LogitLens) for x in lenses):
        raise AnatomyError("live_lens draws LogitLens records: pass the result of anatomy.logit_lens(model, prompt), or a list of them.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise AnatomyError(f"k={k!r} is not allowed: show a positive number of top tokens, e.g. 5.")
    short = [x for x in lenses if x.top_ids.shape[-1] < k]
    if short:
        raise AnatomyError(f"The lens of {short[0].model_name} kept the top {short[0].top_ids.shape[-1]} tokens, fewer than k={k}: "
                           f"call logit_lens(..., k={k}).")
    models = []
    for x in lenses:
        vocab: dict[str, int] = {}
        top = [[[vocab.setdefault(s, len(vocab)) for s in cell[:k]] for cell in row] for row in x.top_text]
        models.append({
            "name": x.model_name, "prompt": x.prompt, "tokens": [t.text for t in x.tokens],
            "stages": [pair("emb", "嵌入"), *x.stages[1:]], "vocab": list(vocab), "top": top,
            "probs": sig(x.top_probs[..., :k].tolist()),
        })
    labels = {
        "title": pair("Logit lens: the top token at every layer and position",
                      "Logit Lens：每一层、每个位置上排第一的词元"),
        "hint": pair("Hover a cell, or focus the grid and use the arrow keys: below it, the top tokens the LM head reads there.",
                     "把指针移到一个格子上，或者聚焦网格后用方向键移动：下方显示 LM Head 在那里读出的前几名词元。"),
        "grid": pair("Grid of layers (rows) and positions (columns)", "层（行）与位置（列）的网格"),
        "model": pair("Model", "模型"), "layer": pair("layer", "层"), "position": pair("position", "位置"),
        "top": pair("top {k}", "前 {k} 名"),
    }
    names = ", ".join(x.model_name for x in lenses)
    return live_figure(
        "lens", {"labels": labels, "models": models},
        alt_en=f"Interactive logit lens of {names}: the top {k} tokens at every layer and position of “{lenses[0].prompt}”.",
        alt_zh=f"{'、'.join(x.model_name for x in lenses)} 的交互式 Logit Lens：“{lenses[0].prompt}”每一层、每个位置的前 {k} 名词元。",
    )
