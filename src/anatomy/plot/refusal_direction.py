"""Figures of Chapter 15: decline rates with the refusal direction added or ablated, layer by layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import describe as _describe
from .style import font_families
from .style import book_style as _style

__all__ = ["refusal"]


def refusal(scan) -> Figure:
    """Two panels of a ``RefusalScan``: adding the direction to answered requests (left), ablating it from
    declined ones (right); the direction solid, a random one of the same norm dashed, no change dotted (Chapter 15).
    """
    if not hasattr(scan, "added"):
        raise AnatomyError("Pass the result of refusal_scan to draw it.")
    with _style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
        left.plot(scan.layers, scan.added.numpy(), "-o", color="C3", ms=4, label=f"+{scan.strength:g} × direction")
        left.plot(scan.layers, scan.added_random.numpy(), "--s", color="C7", ms=3, label="random, same norm")
        left.axhline(scan.answered_base, color="k", ls=":", lw=1, label="nothing added")
        left.set_title(f"{scan.model_name}: {scan.n_answered} answered requests\nadd the direction of one layer", fontsize=9, fontfamily=font_families())
        right.plot(scan.layers, scan.ablated.numpy(), "-o", color="C0", ms=4, label="direction ablated")
        right.plot(scan.layers, scan.ablated_random.numpy(), "--s", color="C7", ms=3, label="random, ablated")
        right.axhline(scan.declined_base, color="k", ls=":", lw=1, label="nothing removed")
        right.set_title(f"{scan.model_name}: {scan.n_declined} declined requests\nablate that direction at every layer", fontsize=9, fontfamily=font_families())
        left.set_ylabel("fraction declined (first tokens)")
        for ax in (left, right):
            ax.set_xlabel("layer (0-based) the direction comes from")
            ax.set_ylim(-0.03, 1.03)
            ax.set_xticks(scan.layers)
            ax.legend(fontsize=7)
    return _describe(
        fig,
        en=f"Fraction of held-out requests that {scan.model_name} declines, by the layer whose difference-of-means direction is used: "
           f"left, {scan.n_answered} answered requests with {scan.strength:g} times the direction added to that layer; right, "
           f"{scan.n_declined} declined requests with the direction ablated at every layer; dashed lines are random directions of the same norm.",
        zh=f"{scan.model_name} 拒绝留出请求的比例，按所用均值差方向来自哪一层：左图是 {scan.n_answered} 个原本会回答的请求，"
           f"在该层加上 {scan.strength:g} 倍方向；右图是 {scan.n_declined} 个原本会拒绝的请求，在每一层消除该方向；虚线是同样长度的随机方向。",
    )
