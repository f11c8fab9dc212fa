"""Figures of Chapter 14: neurons that separate two kinds of input, what removing them does, heads removed one by one."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import describe as _describe
from .style import font_families, panel_row
from .style import book_style as _style

__all__ = ["ablation_gaps", "dose_response", "head_drops", "neuron_histograms", "neuron_scaling"]


def _results(results, attr: str, function: str) -> list:
    """One result of anatomy.<function> (it has ``attr``) or several, as a list of at least one."""
    results = [results] if hasattr(results, attr) else list(results)
    if not results:
        raise AnatomyError(f"Give at least one result of anatomy.{function} to draw.")
    return results


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
    """The behaviour kept and the loss rise for each way of removing the chosen neurons and for random sets (Chapter 14).

    ``results`` is a list of ``NeuronAblation`` (one row of two panels each): left, the fraction of
    the gap kept (1 = untouched); right, the rise of the loss on ordinary text in nats. The random
    sets are dots, their mean a bar.
    """
    results = _results(results, "baseline", "neuron_ablation")
    colors = {"zero": "#c44e52", "mean": "#dd8452", "resample": "#55a868"}
    with _style():
        fig, axes = plt.subplots(len(results), 2, figsize=(8.4, 2.6 * len(results)), squeeze=False)
        for (ax, bx), r in zip(axes, results):
            k = len(r.neurons)
            labels = [f"{k} chosen\n{a.how}" for a in r.removed]
            for x, a in enumerate(r.removed):
                ax.bar(x, a.kept, color=colors.get(a.how, "#8172b2"), width=0.6)
                bx.bar(x, a.loss_rise, color=colors.get(a.how, "#8172b2"), width=0.6)
            if r.controls:
                x = len(r.removed)
                kept = [c.kept for c in r.controls]
                rise = [c.loss_rise for c in r.controls]
                ax.bar(x, sum(kept) / len(kept), color="#4c72b0", width=0.6)
                bx.bar(x, sum(rise) / len(rise), color="#4c72b0", width=0.6)
                ax.scatter([x] * len(kept), kept, color="black", s=8, zorder=3)
                bx.scatter([x] * len(rise), rise, color="black", s=8, zorder=3)
                labels.append(f"{k} random\n{r.controls[0].how}")
            for a in (ax, bx):
                a.set_xticks(range(len(labels)), labels, fontsize=8)
            ax.axhline(1, color="#999999", lw=0.8, ls="--")
            bx.axhline(0, color="#999999", lw=0.8)
            ax.set_ylabel("gap kept (1 = untouched)")
            bx.set_ylabel("loss rise on ordinary text (nats)")
            ax.set_title(f"{r.model_name}, layer {r.layer}: behaviour", fontsize=9)
            bx.set_title(f"{r.model_name}, layer {r.layer}: general loss", fontsize=9)
    names = "; ".join(f"{r.model_name} layer {r.layer} neurons {list(r.neurons)}" for r in results)
    names_zh = "；".join(f"{r.model_name} 第 {r.layer} 层神经元 {list(r.neurons)}" for r in results)
    return _describe(fig, en=f"The share of the behaviour's gap kept, and the rise of the loss on ordinary text, when the chosen neurons "
                             f"are removed (zero, mean, resample ablation) and when random neurons are: {names}.",
                     zh=f"拿掉选出的神经元（置零、均值、重采样消融）和随机神经元时，行为差距保留的比例，以及普通文本上损失的升高：{names_zh}。")


def dose_response(results) -> Figure:
    """The gap kept against k: the top k neurons as a line, the random sets of each size as dots (Chapter 14)."""
    results = _results(results, "ks", "dose_response")

    def draw(ax, r):
        xs = list(range(len(r.ks)))
        for x, row in zip(xs, r.random_gaps):
            jitter = torch.linspace(-0.12, 0.12, len(row))
            ax.scatter((x + jitter).numpy(), (row / r.baseline).numpy(), color="#4c72b0", s=9, alpha=0.7,
                       label="random sets" if x == 0 else None)
        ax.plot(xs, [c.kept for c in r.chosen], color="#c44e52", marker="o", label="top k (chosen on training nouns)")
        ax.axhline(1, color="#999999", lw=0.8, ls="--")
        ax.set_xticks(xs, [str(k) for k in r.ks])
        ax.set_xlabel(f"neurons removed ({r.how} ablation)")
        ax.set_title(f"{r.model_name}, layer {r.layer}", fontsize=9)
        ax.legend(frameon=False, fontsize=7, prop={"family": font_families()})

    names = ", ".join(f"{r.model_name} layer {r.layer}" for r in results)
    return panel_row(results, draw, (4.4, 3.2), ylabel="gap kept on held-out nouns",
                     en=f"The share of the agreement gap kept on held-out nouns when the top k neurons or random sets of k neurons are "
                        f"removed, for k = {', '.join(map(str, results[0].ks))}: {names}.",
                     zh=f"拿掉前 k 个神经元或 k 个随机神经元后，留出名词上一致差距保留的比例，k = {', '.join(map(str, results[0].ks))}：{names}。")


def neuron_scaling(results) -> Figure:
    """The gap kept against the factor one neuron is multiplied by, one line per model (Chapter 14)."""
    results = _results(results, "factors", "neuron_scaling")
    with _style():
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        for r in results:
            ax.plot(r.factors.numpy(), (r.gaps / r.baseline).numpy(), marker="o",
                    label=f"{r.model_name}, layer {r.layer}, neuron {r.neuron}")
        ax.axhline(1, color="#999999", lw=0.8, ls="--")
        ax.axvline(1, color="#999999", lw=0.8, ls=":")
        ax.set_xlabel("factor on the neuron's activation (1 = as it is, 0 = removed)")
        ax.set_ylabel("gap kept on held-out nouns")
        ax.legend(frameon=False, fontsize=7, prop={"family": font_families()})
    names = "; ".join(f"{r.model_name} layer {r.layer} neuron {r.neuron}" for r in results)
    return _describe(fig, en=f"The agreement gap on held-out nouns as one neuron's activation is multiplied by factors from "
                             f"{float(results[0].factors.min()):g} to {float(results[0].factors.max()):g}: {names}.",
                     zh=f"把一个神经元的激活乘以 {float(results[0].factors.min()):g} 到 {float(results[0].factors.max()):g} 的系数时，"
                        f"留出名词上的一致差距：{names}。")


def head_drops(ablations) -> Figure:
    """Heat map of the drop in the answer's log-probability when each head is removed, one panel per model (Chapter 14)."""
    ablations = _results(ablations, "logprobs", "head_ablation")

    def draw(ax, r):
        d = r.drops  # [L, H]
        lim = max(float(d.abs().max()), 1e-6)
        im = ax.imshow(d.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xlabel("head")
        ax.set_ylabel("layer (0-based)")
        ax.set_xticks(range(d.shape[1]))
        ax.set_title(f"{r.model_name}\nanswer {r.answer!r}", fontsize=9, fontfamily=font_families())
        ax.figure.colorbar(im, ax=ax, shrink=0.7, label="drop in log-probability")

    names = ", ".join(r.model_name for r in ablations)
    return panel_row(ablations, draw, (3.2, 5.2),
                     en=f"How much removing each attention head (zero ablation) lowers the log-probability of the answer {ablations[0].answer!r}, every layer and head of {names}; prompt: {ablations[0].prompt!r}.",
                     zh=f"逐个拿掉每个注意力头（置零消融）后，答案 {ablations[0].answer!r} 的对数概率下降多少；{names} 的每一层每个头；提示：{ablations[0].prompt!r}。")
