"""Figures of Chapter 14: neurons that separate two kinds of input, what removing them does, heads removed one by one."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import describe as _describe
from .style import font_families
from .style import book_style as _style

__all__ = ["ablation_gaps", "head_drops", "neuron_histograms"]


def neuron_histograms(separation, neurons, *, labels: tuple[str, str] = ("A", "B")) -> Figure:
    """Histograms of a few neurons' activations on the two kinds of prompts, one panel per neuron (Chapter 14).

    ``separation`` is a ``Separation`` (better one computed on held-out prompts); ``neurons`` is a
    list of (layer, neuron, ...) tuples, e.g. ``other.top(3)`` from the prompts the neurons were chosen on.
    """
    neurons = [tuple(n[:2]) for n in neurons]
    if not neurons:
        raise AnatomyError("Give at least one (layer, neuron) pair to draw, e.g. separation.top(3).")
    with _style():
        fig, axes = plt.subplots(1, len(neurons), figsize=(3.3 * len(neurons), 2.8), squeeze=False)
        for ax, (layer, n) in zip(axes[0], neurons):
            a, b = separation.a[:, layer, n], separation.b[:, layer, n]
            lo, hi = float(torch.cat([a, b]).min()), float(torch.cat([a, b]).max())
            bins = torch.linspace(lo, hi + 1e-6, 21).numpy()
            ax.hist(b.numpy(), bins=bins, alpha=0.6, color="#4c72b0", label=labels[1])
            ax.hist(a.numpy(), bins=bins, alpha=0.6, color="#dd8452", label=labels[0])
            ax.set_title(f"layer {layer}, neuron {n} (d = {float(separation.scores[layer, n]):+.1f})", fontsize=9)
            ax.set_xlabel("activation at the last token")
            ax.legend(frameon=False, fontsize=8, prop={"family": font_families()})
        axes[0, 0].set_ylabel("prompts")
        fig.suptitle(separation.model_name, fontsize=10)
    where = ", ".join(f"layer {layer} neuron {n}" for layer, n in neurons)
    where_zh = "、".join(f"第 {layer} 层第 {n} 号神经元" for layer, n in neurons)
    return _describe(fig, en=f"{separation.model_name}: activations of {where} on two kinds of prompts ({labels[0]} vs {labels[1]}).",
                     zh=f"{separation.model_name}：{where_zh}在两类提示（{labels[0]} 与 {labels[1]}）上的激活分布。")


def ablation_gaps(results) -> Figure:
    """Bars of the logit-difference gap: nothing removed, chosen neurons removed, random neurons removed (Chapter 14).

    ``results`` is a list of ``NeuronAblation`` (one panel each). Zero and mean ablation sit side by
    side; for the random control the bar is the mean over the random sets and the dots are the sets.
    """
    results = [results] if hasattr(results, "baseline") else list(results)
    if not results:
        raise AnatomyError("Give at least one result of anatomy.neuron_ablation to draw.")
    with _style():
        fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 3.2), squeeze=False)
        for ax, r in zip(axes[0], results):
            k = len(r.neurons)
            ax.bar([0], [r.baseline], color="#999999", width=0.6)
            ax.bar([1, 2], [r.zero, r.mean], color=["#c44e52", "#dd8452"], width=0.6)
            ax.bar([3, 4], [float(r.control_zero.mean()), float(r.control_mean.mean())], color=["#4c72b0", "#64b5cd"], width=0.6)
            for x, vals in ((3, r.control_zero), (4, r.control_mean)):
                ax.scatter([x] * len(vals), vals.numpy(), color="black", s=8, zorder=3)
            ax.set_xticks(range(5), ["none", f"{k} chosen\nzero", f"{k} chosen\nmean", f"{k} random\nzero", f"{k} random\nmean"], fontsize=8)
            ax.axhline(r.baseline, color="#999999", lw=0.8, ls="--")
            ax.set_title(f"{r.model_name}, layer {r.layer}", fontsize=9)
        axes[0, 0].set_ylabel("gap in logit difference")
    names = "; ".join(f"{r.model_name} layer {r.layer} neurons {list(r.neurons)}" for r in results)
    names_zh = "；".join(f"{r.model_name} 第 {r.layer} 层神经元 {list(r.neurons)}" for r in results)
    return _describe(fig, en=f"The gap in the logit difference between the two kinds of prompts with nothing, the chosen neurons or random neurons removed: {names}.",
                     zh=f"两类提示之间 logit 差的差距：不拿掉、拿掉选出的神经元、拿掉随机神经元：{names_zh}。")


def head_drops(ablations) -> Figure:
    """Heat map of the drop in the answer's log-probability when each head is removed, one panel per model (Chapter 14)."""
    ablations = [ablations] if hasattr(ablations, "logprobs") else list(ablations)
    if not ablations:
        raise AnatomyError("Give at least one result of anatomy.head_ablation to draw.")
    with _style():
        fig, axes = plt.subplots(1, len(ablations), figsize=(3.2 * len(ablations), 5.2), squeeze=False)
        for ax, r in zip(axes[0], ablations):
            d = r.drops  # [L, H]
            lim = max(float(d.abs().max()), 1e-6)
            im = ax.imshow(d.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
            ax.set_xlabel("head")
            ax.set_ylabel("layer (0-based)")
            ax.set_xticks(range(d.shape[1]))
            ax.set_title(f"{r.model_name}\nanswer {r.answer!r}", fontsize=9, fontfamily=font_families())
            fig.colorbar(im, ax=ax, shrink=0.7, label="drop in log-probability")
    names = ", ".join(r.model_name for r in ablations)
    return _describe(fig, en=f"How much removing each attention head (zero ablation) lowers the log-probability of the answer {ablations[0].answer!r}, every layer and head of {names}; prompt: {ablations[0].prompt!r}.",
                     zh=f"逐个拿掉每个注意力头（置零消融）后，答案 {ablations[0].answer!r} 的对数概率下降多少；{names} 的每一层每个头；提示：{ablations[0].prompt!r}。")
