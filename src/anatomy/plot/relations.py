"""Figure of Chapter 18: how faithful a relation's linear map is, layer by layer, on the dev subjects."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import book_style as _style
from .style import describe as _describe
from .style import font_families

__all__ = ["relation_layers"]


def relation_layers(maps) -> Figure:
    """Dev faithfulness of each relation's map per layer (best β at each layer), the chosen layer starred; one panel per model (Chapter 18)."""
    maps = [maps] if hasattr(maps, "dev_faithfulness") else list(maps)
    if not maps:
        raise AnatomyError("No maps to draw: pass the results of relation_map (one or a list).")
    names = list(dict.fromkeys(m.model_name for m in maps))
    with _style():
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 2.4, 3.4), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], names):
            for k, m in enumerate(x for x in maps if x.model_name == name):
                best = m.dev_faithfulness.max(1).values.numpy()  # [layers]
                ax.plot(m.layers, best, "-o", color=f"C{k}", ms=4, label=m.relation)
                i = m.layers.index(m.layer)
                ax.plot([m.layer], [best[i]], "*", color=f"C{k}", ms=13, mec="black", mew=0.6)
            ax.set_xticks(list(dict.fromkeys(layer for x in maps if x.model_name == name for layer in x.layers)))
            ax.set_title(name, fontsize=9, fontfamily=font_families())
            ax.set_xlabel("layer ℓ of the subject vector (0-based)")
            ax.set_ylim(-0.03, 1.03)
        axes[0, 0].set_ylabel("map gives the model's answer\n(share of dev subjects)")
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), prop={"family": font_families(), "size": 7})
    relations = ", ".join(dict.fromkeys(m.relation for m in maps))
    return _describe(
        fig,
        en=f"For each relation ({relations}), the share of dev subjects for which the linear map from layer ℓ's subject vector, "
           f"read through the LM head, gives the model's own answer, at the best β of each layer; the star marks the layer chosen, for "
           + ", ".join(names) + ".",
        zh=f"每个关系（{relations}）的线性映射从第 ℓ 层的主语向量出发、经 LM Head 读出后给出模型自己答案的开发集主语比例（每层取最好的 β）；"
           f"星号标出选中的层；模型：" + "、".join(names) + "。",
    )
