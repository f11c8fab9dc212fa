"""Figures of Chapter 2: token embeddings projected to 2-D."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..embedding import Projection
from .style import font_families, suptitle
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["projection"]

_GROUP_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def projection(projections, *, title: str | None = None) -> Figure:
    """Scatter plots of PCA-projected token embeddings, coloured by group, one panel per model (Chapter 2).

    Takes one or more :class:`anatomy.Projection` (from ``anatomy.project_2d``). Leading spaces of
    the words are dropped from the labels.
    """
    if isinstance(projections, Projection):
        projections = [projections]
    projections = list(projections)
    with _style():
        fig, axes = plt.subplots(1, len(projections), figsize=(6.2 * len(projections), 5.6), squeeze=False)
        for ax, p in zip(axes[0], projections):
            names = list(dict.fromkeys(p.groups))
            colour = {g: _GROUP_COLOURS[i % len(_GROUP_COLOURS)] for i, g in enumerate(names)}
            xy = p.xy.tolist()
            for g in names:
                pts = [xy[i] for i, gi in enumerate(p.groups) if gi == g]
                ax.scatter([a for a, _ in pts], [b for _, b in pts], s=22, color=colour[g], label=g, alpha=0.85)
            for (x, y), word, g in zip(xy, p.labels, p.groups):
                ax.annotate(word.strip(), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9,
                            color=colour[g], fontfamily=font_families())
            ax.axhline(0, color="#cccccc", lw=0.6, zorder=0)
            ax.axvline(0, color="#cccccc", lw=0.6, zorder=0)
            ax.set_xlabel(f"PC1 ({p.explained[0]:.0%} of variance)")
            ax.set_ylabel(f"PC2 ({p.explained[1]:.0%} of variance)")
            ax.set_title(f"{p.model_name}: {len(p.labels)} token embeddings", fontsize=10, fontfamily=font_families())
            ax.legend(fontsize=8, loc="best", prop={"family": font_families(), "size": 8})
        suptitle(fig, title)
    return _describe(
        fig,
        en="Token embeddings projected onto their first two principal components, coloured by group (" + ", ".join(dict.fromkeys(projections[0].groups)) + "), for " + ", ".join(p.model_name for p in projections) + f". {title or ''}",
        zh="词元嵌入投影到前两个主成分上，按组着色（" + "、".join(dict.fromkeys(projections[0].groups)) + "），模型：" + "、".join(p.model_name for p in projections) + f"。{title or ''}",
    )
