"""Figures of Chapter 11: one neuron's weights, and the tokens around it (key-value memories)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..ffn import Neuron, NeuronActivations
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["neuron_tokens", "neuron_weights"]


def neuron_weights(n: Neuron) -> Figure:
    """One neuron's weights, one panel per vector: gate and up (its inputs), value (its output) (Chapter 11)."""
    rows = [("gate weights (row of W_gate)", n.gate), ("up weights (row of W_up)", n.up), ("value vector (column of W_down)", n.value)]
    rows = [(label, v) for label, v in rows if v is not None]
    with _style():
        fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.7 * len(rows) + 0.6), sharex=True, squeeze=False)
        for ax, (label, v) in zip(axes[:, 0], rows):
            v = v.detach().float().cpu()
            ax.bar(range(len(v)), v.numpy(), width=1.0, color="#4c72b0")
            ax.axhline(0, color="#555555", lw=0.6)
            ax.set_ylabel("weight")
            ax.set_title(label, loc="left", fontsize=10)
        axes[-1, 0].set_xlabel("dimension of the residual stream (0 … d−1)")
        fig.suptitle(f"{n.model_name}: layer index {n.layer}, neuron {n.index}", fontsize=11)
    return _describe(
        fig,
        en=f"{n.model_name}, layer index {n.layer}, neuron {n.index}: its weights as bars over the d dimensions of the residual stream: " + ", ".join(label for label, _ in rows) + ".",
        zh=f"{n.model_name} 第 {n.layer} 层（层索引）第 {n.index} 个神经元：它在残差流 d 个维度上的权重柱状图，依次为 " + "、".join(label for label, _ in rows) + "。",
    )


def neuron_tokens(acts: NeuronActivations, index: int, promoted: list[tuple[str, float]], k: int = 8, *, sign: int = 1) -> Figure:
    """Left: the contexts where a neuron fires most (its key); right: the tokens its value vector promotes (Chapter 11).

    ``sign=-1`` for a neuron read on its negative side: the most negative activations, and the
    tokens promoted by minus its value vector (pass ``promoted_tokens(..., sign=-1)``).
    """
    top = acts.top(index, k, sign=sign)
    with _style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.33 * max(k, len(promoted)) + 1.4))
        left.barh(range(len(top)), [a for _, _, a in top], color="#dd8452")
        left.set_yticks(range(len(top)), [c for _, c, _ in top], fontfamily=font_families(), fontsize=9)
        left.invert_yaxis()
        left.set_xlabel("activation")
        left.set_title("most " + ("positive" if sign == 1 else "negative") + " on … (token in brackets)", loc="left", fontsize=10)
        right.barh(range(len(promoted)), [s for _, s in promoted], color="#55a868")
        right.set_yticks(range(len(promoted)), [t for t, _ in promoted], fontfamily=font_families(), fontsize=9)
        right.invert_yaxis()
        right.set_xlabel("logit (order only)")
        right.set_title("… and then it promotes (" + ("+" if sign == 1 else "−") + "value vector)", loc="left", fontsize=10)
        fig.suptitle(f"{acts.model_name}: layer index {acts.layer}, neuron {index}", fontsize=11)
    return _describe(
        fig,
        en=f"{acts.model_name}, layer index {acts.layer}, neuron {index}: the contexts where it is most " + ("positive" if sign == 1 else "negative") + f" (left) and the tokens its value vector promotes (right): {', '.join(repr(t) for t, _ in promoted[:5])}.",
        zh=f"{acts.model_name} 第 {acts.layer} 层（层索引）第 {index} 个神经元：激活最" + ("正" if sign == 1 else "负") + f"的上下文（左），以及它的值向量推高的词元（右）：{'、'.join(repr(t) for t, _ in promoted[:5])}。",
    )
