"""Figures of Chapter 5: how well a linear probe reads latitude and longitude at each layer, and the map."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style
from .style import stage_axis as _stage_axis
from .style import stage_x as _stage_x

__all__ = ["probe_map", "probe_r2"]

_CONTINENT_COLOURS = {
    "Africa": "#e6a100", "Asia": "#d62728", "Europe": "#1f77b4",
    "North America": "#2ca02c", "South America": "#9467bd", "Oceania": "#17becf",
}
_FLOOR = -0.5  # R² below this is drawn at the floor: "worse than guessing the mean" is all it says


def probe_r2(layers: dict, *, targets: tuple[str, ...] = ("latitude", "longitude")) -> Figure:
    """Held-out R² per layer for each target, and the shuffled-target control; one panel per model (Chapter 5).

    ``layers`` maps a model name to what ``anatomy.probe_layers`` returned.
    """
    if not layers:
        raise AnatomyError("Nothing to draw: pass {model name: anatomy.probe_layers(...)} for at least one model.")
    with _style():
        fig, axes = plt.subplots(1, len(layers), figsize=(5.2 * len(layers), 3.6), squeeze=False, sharey=True)
        for ax, (name, lp) in zip(axes[0], layers.items()):
            x = _stage_x(lp.n_layers)
            for j, (t, c) in enumerate(zip(targets, ("#1f77b4", "#d62728"))):
                ax.plot(x, lp.r2[:, j].clamp(min=_FLOOR), marker="o", ms=3, color=c, label=f"{t} (held-out)")
            ax.plot(x, lp.control_r2.mean(1).clamp(min=_FLOOR), ls="--", color="#777777", label="control: shuffled coordinates")
            best, r = lp.best_layer, lp.row(lp.best_layer)
            ax.axvline(r - 1, color="#bbbbbb", lw=0.8, zorder=0)
            ax.annotate(f"best: {'the embedding' if r == 0 else f'layer {best}'}\nmean R² {float(lp.mean_r2[r]):.2f}", (r - 1, float(lp.mean_r2[r])),
                        xytext=(6, -30), textcoords="offset points", fontsize=8)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_ylim(_FLOOR - 0.05, 1)
            _stage_axis(ax, lp.n_layers)
            ax.set_title(name, fontsize=10, fontfamily=font_families())
        axes[0, 0].set_ylabel(f"R² on held-out cities (clipped at {_FLOOR})")
        axes[0, -1].legend(fontsize=8, loc="upper left")
    return _describe(
        fig,
        en="R² of linear probes for " + " and ".join(targets) + " on held-out cities, from the embedding through every layer's output, against a shuffled-coordinates control, for " + ", ".join(f"{name} (best layer {lp.best_layer})" for name, lp in layers.items()) + ".",
        zh="线性探针在留出城市上预测" + "和".join({"latitude": "纬度", "longitude": "经度"}.get(t, t) for t in targets) + "的 R²，从嵌入到每一层的输出逐层画出，并与打乱坐标的对照比较；" + "、".join(f"{name}（最佳层 {lp.best_layer}）" for name, lp in layers.items()) + "。",
    )


def _world(ax, title: str) -> None:
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(color="#dddddd", lw=0.6)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_title(title, fontsize=10, fontfamily=font_families())


def probe_map(places, predictions: dict) -> Figure:
    """Held-out cities at their true positions, then where each probe puts them; colour = continent (Chapter 5).

    ``places`` is ``anatomy.cities()``; ``predictions`` maps a panel title to a ``ProbeResult``
    whose targets are (latitude, longitude). All probes must share the same held-out cities.
    """
    if not predictions:
        raise AnatomyError("Nothing to draw: pass {title: probe result} for at least one probe.")
    results = list(predictions.values())
    test = results[0].test_idx
    if any(not torch.equal(r.test_idx, test) for r in results):
        raise AnatomyError("The probes were scored on different held-out cities: use the same split for every model.")
    true = places.coordinates[test]  # [n_test, 2] (lat, lon)
    colours = [_CONTINENT_COLOURS.get(places.continents[i], "#333333") for i in test.tolist()]
    with _style():
        n = 1 + len(results)
        fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
        axes = axes[0]
        axes[0].scatter(true[:, 1], true[:, 0], c=colours, s=12, edgecolor="none")
        _world(axes[0], f"true positions ({len(test)} held-out cities)")
        axes[0].set_ylabel("latitude")
        for ax, (title, r) in zip(axes[1:], predictions.items()):
            pred = r.prediction.float()  # [n_test, 2]
            for (lat, lon), (plat, plon) in zip(true.tolist(), pred.tolist()):
                ax.plot([lon, plon], [lat, plat], color="#cccccc", lw=0.4, zorder=0)
            ax.scatter(pred[:, 1], pred[:, 0], c=colours, s=12, edgecolor="none")
            _world(ax, title)
        handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in _CONTINENT_COLOURS.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    return _describe(
        fig,
        en=f"World maps of {len(test)} held-out cities coloured by continent: their true positions, then where each probe places them: " + ", ".join(predictions) + ".",
        zh=f"世界地图：{len(test)} 个留出城市按大洲着色，先画真实位置，再画各探针预测的位置：" + "、".join(predictions) + "。",
    )
