"""Figures of Chapter 15: the refusal direction — separation by layer, cosines between layers, its null."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import book_style as _style
from .style import describe as _describe
from .style import font_families

__all__ = ["refusal"]


def refusal(test, separation, directions) -> Figure:
    """Three panels (Chapter 15): held-out declined and answered requests projected on each layer's
    direction (left); the cosine between the directions of every two layers (middle); the fraction
    of declined requests still declined with random unit directions ablated, beside the real one (right).
    """
    if not hasattr(test, "null_declined") or not hasattr(separation, "separated") or not hasattr(directions, "cosines"):
        raise AnatomyError("Pass refusal_test(...), refusal_separation(...) and refusal_directions(...) to draw them.")
    L = separation.declined.shape[0]
    with _style():
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(12.5, 3.7), gridspec_kw={"width_ratios": [1.5, 1.0, 1.0]})
        g = torch.Generator().manual_seed(0)
        for vals, color, label in ((separation.declined, "C3", "declined"), (separation.answered, "C0", "answered")):
            n = vals.shape[1]
            x = torch.arange(L)[:, None].expand(L, n) + 0.25 * (torch.rand(L, n, generator=g) - 0.5)
            a.scatter(x.flatten().numpy(), vals.flatten().numpy(), s=5, color=color, alpha=0.7,
                      label=f"{n} held-out {label}")
        a.axvline(test.layer, color="k", ls=":", lw=1)
        a.set_xlabel("layer (0-based) of the output and of its direction")
        a.set_ylabel("projection on the unit direction")
        a.set_title(f"{separation.model_name}: held-out requests on each layer's direction", fontsize=9,
                    fontfamily=font_families())
        a.legend(fontsize=7)
        im = b.imshow(directions.cosines(test.position).numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        b.set_xlabel("layer")
        b.set_ylabel("layer")
        b.set_title("cosine between the layers' directions", fontsize=9)
        fig.colorbar(im, ax=b, fraction=0.046)
        k = len(test.null_declined)
        c.hist(test.null_declined.numpy(), bins=[i / 12 for i in range(-1, 14)], color="C7",
               label=f"{k} random unit directions")
        c.axvline(test.declined_ablated, color="C3", lw=2, label=f"the direction of layer {test.layer}")
        c.axvline(test.declined_plain, color="k", ls=":", lw=1, label="nothing ablated")
        c.set_xlabel("held-out declined requests still declined")
        c.set_ylabel("directions")
        c.set_title("directional ablation: the real direction and its null", fontsize=9)
        c.legend(fontsize=7)
    return _describe(
        fig,
        en=f"{test.model_name}. Left: {separation.declined.shape[1]} held-out declined and "
           f"{separation.answered.shape[1]} held-out answered requests projected on the unit difference-of-means "
           f"direction of every layer (template position {separation.position}); the dotted line marks layer "
           f"{test.layer}, chosen on dev requests. Middle: cosine similarity of the directions of every two layers. "
           f"Right: the fraction of held-out declined requests still declined when each of {k} random unit "
           f"directions is ablated from every residual write, against the direction of layer {test.layer}.",
        zh=f"{test.model_name}。左：{separation.declined.shape[1]} 个留出的“会拒绝”请求和 "
           f"{separation.answered.shape[1]} 个留出的“会回答”请求，投影到每一层的单位均值差方向上（模板位置 "
           f"{separation.position}）；点线标出在开发集请求上选出的第 {test.layer} 层。中：任意两层方向之间的余弦相似度。"
           f"右：从每一次残差写入中消除 {k} 个随机单位方向之一时，留出的“会拒绝”请求仍被拒绝的比例，与第 "
           f"{test.layer} 层的方向对比。",
    )
