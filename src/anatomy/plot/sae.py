"""Figures of Chapter 16: how often each latent of a sparse autoencoder fires, and the loss with it spliced in."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib import ticker
from matplotlib.figure import Figure

from ..errors import AnatomyError
from ..sae import FeatureGallery, FeaturePage, SAEFrontier, SAEMetrics, SplicedLosses
from .live import live_figure, sig
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["live_sae", "sae_frontier", "sae_report"]


def sae_report(metrics: SAEMetrics, losses: SplicedLosses) -> Figure:
    """Left: how many latents fire how often (log scale); right: next-token loss clean / SAE / mean vector (Chapter 16)."""
    freq = metrics.frequency.float()
    alive = freq[freq > 0]
    floor = math.log10(1 / max(2, len(freq)) / 100)  # where the dead latents are drawn
    with _style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), width_ratios=(3, 2))
        logs = alive.log10().numpy()
        left.hist(logs, bins=40, color="#4c72b0", label="alive latents")
        if metrics.dead:
            left.bar([floor], [metrics.dead], width=0.08, color="#c44e52", label=f"dead latents ({metrics.dead})")
        left.set_xlabel("log10(fraction of tokens on which the latent is active)")
        left.set_ylabel("number of latents")
        left.set_title(f"{metrics.n_latents} latents: FVE {metrics.fve:.2f}, mean L0 {metrics.mean_l0:.1f}", loc="left", fontsize=10)
        left.legend(fontsize=9)
        names = ("clean", "SAE reconstruction", "mean vector")
        values = (losses.clean, losses.reconstruction, losses.mean_vector)
        bars = right.bar(names, values, color=("#55a868", "#4c72b0", "#c44e52"))
        right.bar_label(bars, fmt="%.2f", fontsize=9)
        right.set_ylabel("next-token loss (nats)")
        right.set_title(f"layer {losses.layer} replaced by…  loss recovered: {losses.recovered:.0%}", loc="left", fontsize=10)
        fig.suptitle(f"{metrics.model_name}: sparse autoencoder on the output of layer {metrics.layer}", fontsize=11)
    return _describe(
        fig,
        en=f"{metrics.model_name}, layer {metrics.layer}, sparse autoencoder with {metrics.n_latents} latents. Left: histogram of how often each "
           f"latent fires (log scale), {metrics.dead} dead latents. Right: next-token loss on held-out text with the layer's output as it is "
           f"({losses.clean:.2f}), replaced by the reconstruction ({losses.reconstruction:.2f}) and by the mean vector ({losses.mean_vector:.2f}).",
        zh=f"{metrics.model_name} 第 {metrics.layer} 层，{metrics.n_latents} 个潜变量的稀疏自编码器。左：每个潜变量激活频率的直方图（对数刻度），"
           f"死潜变量 {metrics.dead} 个。右：留出文本上的下一词元损失：该层输出保持原样（{losses.clean:.2f}）、换成重建（{losses.reconstruction:.2f}）、"
           f"换成平均向量（{losses.mean_vector:.2f}）。",
    )


def sae_frontier(frontier: SAEFrontier, chosen: str = "") -> Figure:
    """L0 against variance explained (left) and against loss recovered (right), one mark per SAE (Chapter 16).

    L1 SAEs are circles joined in order of λ, TopK SAEs squares joined in order of k; ``chosen``
    (a point's label) is ringed.
    """
    groups = (("L1 (λ)", [q for q in frontier.points if q.k is None], "o", "#4c72b0"),
              ("TopK (k)", [q for q in frontier.points if q.k is not None], "s", "#dd8452"))
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for ax, field, name in ((axes[0], "fve", "fraction of variance explained"), (axes[1], "recovered", "loss recovered")):
            for label, pts, marker, color in groups:
                if not pts:
                    continue
                pts = sorted(pts, key=lambda q: q.mean_l0)
                ax.plot([q.mean_l0 for q in pts], [getattr(q, field) for q in pts], marker=marker, color=color, label=label)
                for q in pts:
                    ax.annotate(f"{q.l1:g}" if q.k is None else f"{q.k}", (q.mean_l0, getattr(q, field)), fontsize=8,
                                textcoords="offset points", xytext=(4, -10))
            for q in frontier.points:
                if q.label == chosen:
                    ax.plot([q.mean_l0], [getattr(q, field)], marker="o", markersize=14, fillstyle="none", color="#222",
                            label=f"chosen: {q.label}")
            ax.set_xscale("log")
            ax.set_xlabel("mean L0 (active latents per token, unseen text)")
            ax.set_ylabel(f"{name} (unseen text)")
            ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.legend(fontsize=8)
        fig.suptitle(f"{frontier.model_name}, layer {frontier.layer}: {len(frontier.points)} SAEs of {frontier.n_latents} latents, "
                     "sparser to the left, more faithful up", fontsize=11)
    rows = "; ".join(f"{q.label}: L0 {q.mean_l0:.1f}, FVE {q.fve:.2f}, loss recovered {q.recovered:.0%}" for q in frontier.points)
    return _describe(
        fig,
        en=f"{frontier.model_name}, layer {frontier.layer}: the sparsity-fidelity frontier of {len(frontier.points)} sparse autoencoders "
           f"on text they were not trained on, mean L0 on a log axis against variance explained (left) and loss recovered (right). {rows}.",
        zh=f"{frontier.model_name} 第 {frontier.layer} 层：{len(frontier.points)} 个稀疏自编码器在未训练过的文本上的稀疏度与保真度前沿，"
           f"横轴为平均 L0（对数刻度），纵轴为方差解释比例（左）和损失恢复比例（右）。{rows}。",
    )


def live_sae(gallery: FeatureGallery | FeaturePage | Sequence[FeaturePage]):
    """An interactive feature browser (Chapter 16): pick a latent, read its top contexts with each token
    shaded by its activation, and the tokens its decoder direction promotes.

    Takes what ``feature_gallery`` (or ``feature_page``) returned. Activations are rounded to 4
    significant digits.
    """
    pages = (gallery.pages if isinstance(gallery, FeatureGallery) else (gallery,) if isinstance(gallery, FeaturePage)
             else tuple(gallery))
    if not pages or not all(isinstance(p, FeaturePage) for p in pages):
        raise AnatomyError("live_sae takes what feature_gallery or feature_page returned, with at least one latent.")
    latents = [{"latent": p.latent, "model": p.model_name, "layer": p.layer, "frequency": sig(p.frequency),
                "promoted": list(p.promoted),
                "top": [{"token": tok, "activation": sig(a), "context": context,
                         "tokens": [[t, sig(v)] for t, v in row]}
                        for (tok, context, a), row in zip(p.top, p.highlights or ((),) * len(p.top))]}
               for p in pages]
    labels = {"latent": {"en": "latent", "zh": "潜变量"}, "layer": {"en": "layer", "zh": "层"},
              "frequency": {"en": "active on", "zh": "激活的词元比例"},
              "promoted": {"en": "promotes", "zh": "提升的词元"},
              "contexts": {"en": "top contexts (each token shaded by the latent's activation)",
                           "zh": "激活最强的上下文（每个词元按潜变量的激活值着色）"},
              "activation": {"en": "activation", "zh": "激活值"},
              "help": {"en": "Pick a latent (↑ ↓); hover or tap a token to read its activation (← → move along the context).",
                       "zh": "选一个潜变量（↑ ↓）；把指针移到词元上或点按它，读出它的激活值（← → 沿上下文移动）。"}}
    names = ", ".join(sorted({p.model_name for p in pages}))
    return live_figure(
        "sae", {"latents": latents, "labels": labels},
        alt_en=f"Interactive feature pages of {len(pages)} SAE latents of {names}: top contexts with per-token activations and promoted tokens.",
        alt_zh=f"可交互的 SAE 特征页（{names} 的 {len(pages)} 个潜变量）：激活最强的上下文、每个词元的激活值和提升的词元。")
