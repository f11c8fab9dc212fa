"""Figures of Chapter 3: a word's vectors compared across sentences, layer by layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..context import WordSimilarity
from .style import font_families, suptitle
from .style import describe as _describe
from .style import book_style as _style
from .style import stage_axis as _stage_axis
from .style import stage_x as _stage_x

__all__ = ["differences", "word_similarity"]

_SAME = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a")
_CROSS = ("#999999", "#bbbbbb", "#777777", "#555555", "#aaaaaa", "#888888")


def differences(curves: dict[str, torch.Tensor], *, title: str = "") -> Figure:
    """Largest |difference| between two vectors of the same token, per layer: one line per label (Chapter 3).

    ``curves`` maps a label (e.g. '"how": about vs are') to a tensor [L+1] from ``max_difference``
    (entry 0 the embedding, entry ℓ + 1 the output of layer ℓ).
    """
    with _style():
        fig, ax = plt.subplots(figsize=(7, 3.4))
        markers = "os^Dv"
        for k, (label, d) in enumerate(curves.items()):
            d = torch.as_tensor(d).float()
            ax.plot(_stage_x(len(d) - 1), d.numpy(), marker=markers[k % len(markers)], ms=3.5, lw=1.4, label=label)
        _stage_axis(ax, max(len(torch.as_tensor(d)) for d in curves.values()) - 1)
        ax.set_ylabel("max |difference| over d dimensions")
        ax.legend(prop={"family": font_families()}, fontsize=9, frameon=False)
        if title:
            ax.set_title(title, fontsize=10, fontfamily=font_families())
    return _describe(
        fig,
        en=f"Largest absolute difference between two vectors of the same token, from the token embedding through every layer's output, for: {'; '.join(curves)}. {title}",
        zh=f"同一个词元的两个向量之间的最大绝对差，从词元嵌入到每一层的输出逐层画出：{'；'.join(curves)}。{title}",
    )


def word_similarity(results, *, title: str = "") -> Figure:
    """Cosine similarity of a word's vectors, every pair of sentences, layer by layer (Chapter 3).

    One column per model; top row raw cosine (with the all-token-pairs baseline dotted), bottom row
    normalized (0 = the baseline, 1 = identical). Same-sense pairs are solid and coloured,
    cross-sense pairs dashed and grey.
    """
    results: list[WordSimilarity] = list(results)
    with _style():
        fig, axes = plt.subplots(2, len(results), figsize=(5.2 * len(results), 7.2), squeeze=False, sharex="col")
        for col, r in enumerate(results):
            layers = _stage_x(r.n_layers)
            same = r.same_sense.tolist()
            n_same = n_cross = 0
            for p, (i, j) in enumerate(r.pairs):
                label = f"{i + 1}–{j + 1}  {r.senses[i]} · {r.senses[j]}"
                if same[p]:
                    style = dict(color=_SAME[n_same % len(_SAME)], lw=2.0, ls="-")
                    n_same += 1
                else:
                    style = dict(color=_CROSS[n_cross % len(_CROSS)], lw=1.2, ls="--")
                    n_cross += 1
                axes[0, col].plot(layers, r.raw[p].numpy(), label=label, **style)
                axes[1, col].plot(layers, r.normalized[p].numpy(), label=label, **style)
            axes[0, col].plot(layers, r.baseline.numpy(), color="black", lw=1.0, ls=":", label="baseline: all token pairs")
            axes[1, col].axhline(0, color="black", lw=1.0, ls=":")
            axes[0, col].set_title(f"{r.model_name}: raw cosine of “{r.word}”", fontsize=10, fontfamily=font_families())
            axes[1, col].set_title(f"{r.model_name}: normalized (0 = baseline, 1 = identical)", fontsize=10, fontfamily=font_families())
            _stage_axis(axes[1, col], r.n_layers)
            axes[0, col].set_ylabel("cosine similarity")
            axes[1, col].set_ylabel("(raw − baseline) / (1 − baseline)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=4, prop={"family": font_families(), "size": 8}, frameon=False)
        suptitle(fig, title)
    return _describe(
        fig,
        en="Cosine similarity of the vectors of " + ", ".join(f"“{r.word}” in {r.model_name}" for r in results) + " across pairs of sentences, layer by layer: raw (top) and normalized against the all-token baseline (bottom); same-sense pairs solid, different-sense pairs dashed.",
        zh="逐层的余弦相似度：" + "、".join(f"{r.model_name} 中的“{r.word}”" for r in results) + " 在每两句话之间的向量；上排为原始值，下排为相对所有词元对基线的归一化值；词义相同的句对为实线，词义不同的为虚线。",
    )
