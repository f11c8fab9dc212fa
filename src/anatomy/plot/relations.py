"""Figure of Chapter 18: how faithful a relation's linear map is, layer by layer, on the dev subjects."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import model_panels

__all__ = ["relation_layers"]


def relation_layers(maps) -> Figure:
    """Dev faithfulness of each relation's map per layer (best β at each layer), the chosen layer starred; one panel per model (Chapter 18)."""
    maps = [maps] if hasattr(maps, "dev_faithfulness") else list(maps)
    if not maps:
        raise AnatomyError("No maps to draw: pass the results of relation_map (one or a list).")

    def draw(ax, name, its):
        for k, m in enumerate(its):
            best = m.dev_faithfulness.max(1).values.numpy()  # [layers]
            ax.plot(m.layers, best, "-o", color=f"C{k}", ms=4, label=m.relation)
            i = m.layers.index(m.layer)
            ax.plot([m.layer], [best[i]], "*", color=f"C{k}", ms=13, mec="black", mew=0.6)
        ax.set_xticks(list(dict.fromkeys(layer for x in its for layer in x.layers)))

    relations = ", ".join(dict.fromkeys(m.relation for m in maps))
    return model_panels(
        maps, draw, (4.2, 3.4), 2.4,
        xlabel="layer ℓ of the subject vector (0-based)", ylabel="map gives the model's answer\n(share of dev subjects)",
        en=f"For each relation ({relations}), the share of dev subjects for which the linear map from layer ℓ's subject vector, "
           f"read through the LM head, gives the model's own answer, at the best β of each layer; the star marks the layer chosen,",
        zh=f"每个关系（{relations}）的线性映射从第 ℓ 层的主语向量出发、经 LM Head 读出后给出模型自己答案的开发集主语比例（每层取最好的 β）；"
           f"星号标出选中的层；",
    )
