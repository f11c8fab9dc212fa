"""Figures of Chapter 1: how tokenizers cut text, and the next-token distribution."""

from __future__ import annotations

import matplotlib.patches
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..tokens import Token
from .style import font_families, suptitle
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["next_tokens", "tokens"]

_PALETTE = ("#a6cee3", "#b2df8a", "#fdbf6f", "#cab2d6", "#fb9a99", "#ffff99", "#8dd3c7", "#fccde5")


def tokens(tokenized: dict[str, list[Token]], *, title: str | None = None) -> Figure:
    """One row of coloured chips per tokenizer: how each model cuts the same text (Chapter 1)."""
    with _style():
        rows = list(tokenized.items())
        width = max(sum(max(len(t.text), 2) for t in toks) for _, toks in rows)
        fig, axes = plt.subplots(len(rows), 1, figsize=(min(2 + 0.22 * width + 0.3 * max(len(t) for _, t in rows), 14), 1.1 * len(rows) + 0.4), squeeze=False)
        for ax, (name, toks) in zip(axes[:, 0], rows):
            x = 0.0
            for k, t in enumerate(toks):
                w = max(len(t.text), 2) * 0.6 + 0.6
                colour = "#dddddd" if t.special else _PALETTE[k % len(_PALETTE)]
                ax.add_patch(matplotlib.patches.FancyBboxPatch((x, 0.15), w - 0.15, 0.7, boxstyle="round,pad=0.02,rounding_size=0.1", fc=colour, ec="#555555", lw=0.6))
                ax.text(x + (w - 0.15) / 2, 0.5, t.text, ha="center", va="center", fontsize=11, fontfamily=font_families())
                ax.text(x + (w - 0.15) / 2, -0.08, str(t.id), ha="center", va="top", fontsize=7, color="#555555")
                x += w
            ax.set_xlim(-0.1, max(x, 1))
            ax.set_ylim(-0.45, 1.0)
            ax.set_axis_off()
            ax.set_title(f"{name}: {len(toks)} tokens", loc="left", fontsize=10, fontfamily=font_families())
        suptitle(fig, title)
    return _describe(
        fig,
        en="How each tokenizer cuts the same text, one row of coloured chips per model with token IDs below: " + "; ".join(f"{name}: {len(toks)} tokens" for name, toks in rows) + f". {title or ''}",
        zh="每个分词器如何切分同一段文字，每个模型一行彩色方块，下方是词元 ID：" + "；".join(f"{name}：{len(toks)} 个词元" for name, toks in rows) + f"。{title or ''}",
    )


def next_tokens(dists, k: int = 10) -> Figure:
    """Bar charts of the k most likely next tokens, one panel per model (Chapter 1)."""
    dists = list(dists)
    with _style():
        fig, axes = plt.subplots(1, len(dists), figsize=(4.6 * len(dists), 0.32 * k + 1.3), squeeze=False)
        for ax, d in zip(axes[0], dists):
            top = d.top(k)
            labels = [repr(t)[1:-1] if t.strip() else repr(t) for t, _ in top]
            probs = [p for _, p in top]
            ax.barh(range(k), probs, color="#4c72b0")
            ax.set_yticks(range(k), labels, fontfamily=font_families())
            ax.invert_yaxis()
            ax.set_xlabel("probability")
            for y, p in enumerate(probs):
                ax.text(p, y, f" {p:.3f}", va="center", fontsize=8)
            ax.set_xlim(0, max(probs) * 1.25)
            ax.set_title(f"{d.model_name}\n“{d.prompt}” →", fontsize=10, fontfamily=font_families())
    return _describe(
        fig,
        en=f"Bar charts of the {k} most likely next tokens and their probabilities, one panel per model: " + "; ".join(f"{d.model_name} after “{d.prompt}”" for d in dists) + ".",
        zh=f"最可能的 {k} 个下一个词元及其概率的柱状图，每个模型一张：" + "；".join(f"{d.model_name}，提示“{d.prompt}”" for d in dists) + "。",
    )
