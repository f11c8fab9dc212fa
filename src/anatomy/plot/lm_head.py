"""Figures of Chapter 4: the next-token distribution at several temperatures."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from ..lm_head import entropy
from .live import LiveFigure, live_figure, pair, sig
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["live_temperature", "temperatures"]


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


def live_temperature(dists, k: int = 8) -> LiveFigure:
    """The next-token distribution under a temperature slider (Chapter 4): an interactive figure.

    ``dists`` are NextTokens of one prompt at several temperatures (``with_temperature``), for one
    or more models (a choice of model). The slider moves over the temperatures given; the figure
    shows the top ``k`` tokens with their probabilities and the entropy in bits at each. Everything is
    read from the records (probabilities rounded to 4 significant digits); nothing runs the model.
    """
    dists = list(dists)
    if not dists:
        raise AnatomyError("No distributions to show: pass NextTokens, e.g. [with_temperature(d, t) for t in (0.3, 1, 2)].")
    models = []
    for name in dict.fromkeys(d.model_name for d in dists):
        row = sorted((d for d in dists if d.model_name == name), key=lambda d: d.temperature)
        temps = [d.temperature for d in row]
        if len(set(temps)) != len(temps):
            raise AnatomyError(f"{name} has two distributions at one temperature: give each temperature once.")
        tops = [d.top(k) for d in row]
        tokens = [t for t, _ in tops[0]]
        models.append({
            "name": name, "prompt": row[0].prompt, "tokens": tokens, "temps": sig(temps),
            "probs": [sig([p for _, p in top]) for top in tops],
            "entropy": sig([entropy(d.probs) for d in row]),
        })
    labels = {
        "title": pair("Temperature: the next-token distribution", "温度：下一个词元的分布"),
        "hint": pair("Move the slider (or focus it and use the arrow keys): the bars are the top tokens' probabilities.",
                     "拖动滑块（或聚焦滑块后用方向键）：柱条是排名靠前的词元的概率。"),
        "model": pair("Model", "模型"), "temperature": pair("Temperature T", "温度 T"),
        "entropy": pair("entropy", "熵"), "bits": pair("bits", "比特"),
    }
    return live_figure(
        "temperature", {"labels": labels, "models": models},
        alt_en=f"Interactive: the {k} most likely next tokens of “{dists[0].prompt}” and their probabilities, "
               "under a slider over the temperature, with the entropy.",
        alt_zh=f"交互图：“{dists[0].prompt}”之后最可能的 {k} 个词元及其概率，用滑块改变温度，并显示熵。",
    )
