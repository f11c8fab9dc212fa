"""Figures of Chapter 4: the next-token distribution at several temperatures."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from ..lm_head import entropy
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["temperatures"]


def _label(text: str) -> str:
    return repr(text)[1:-1] if text.strip() else repr(text)


def temperatures(dists, k: int = 8) -> Figure:
    """Top-k next tokens as bars: one row per model, one panel per temperature (Chapter 4).

    ``dists`` are NextTokens (from ``next_token`` or ``with_temperature``). Panels of one model
    share the probability axis, so a flatter distribution shows as shorter bars.
    """
    dists = list(dists)
    if not dists:
        raise AnatomyError("No distributions to draw: pass NextTokens, e.g. [with_temperature(d, t) for t in (0.3, 1, 2)].")
    models = list(dict.fromkeys(d.model_name for d in dists))
    temps = sorted({d.temperature for d in dists})
    grid = {(d.model_name, d.temperature): d for d in dists}
    with _style():
        fig, axes = plt.subplots(len(models), len(temps), figsize=(3.6 * len(temps), (0.3 * k + 1.2) * len(models)), squeeze=False)
        for r, name in enumerate(models):
            row = [grid.get((name, t)) for t in temps]
            top = max(float(d.probs.max()) for d in row if d is not None)
            for c, (ax, d) in enumerate(zip(axes[r], row)):
                if d is None:
                    ax.set_axis_off()
                    continue
                pairs = d.top(k)
                probs = [p for _, p in pairs]
                ax.barh(range(k), probs, color="#4c72b0")
                ax.set_yticks(range(k), [_label(t) for t, _ in pairs], fontfamily=font_families())
                ax.invert_yaxis()
                for y, p in enumerate(probs):
                    ax.text(p, y, f" {p:.3f}", va="center", fontsize=7)
                ax.set_xlim(0, top * 1.3)
                ax.set_title(f"T = {d.temperature:g}   entropy {entropy(d.probs):.2f} bits", fontsize=9)
                if r == len(models) - 1:
                    ax.set_xlabel("probability")
                if c == 0:
                    ax.set_ylabel(f"{name}\n“{d.prompt}” →", fontsize=9, fontfamily=font_families())
    return _describe(
        fig,
        en=f"The {k} most likely next tokens as bars at temperatures {', '.join(f'{t:g}' for t in temps)}, one row per model: " + ", ".join(models) + ".",
        zh=f"温度为 {'、'.join(f'{t:g}' for t in temps)} 时最可能的 {k} 个下一个词元的柱状图，每个模型一行：" + "、".join(models) + "。",
    )
