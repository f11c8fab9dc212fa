"""Figures of Chapter 15: accuracy of task vectors layer by layer, beside their baselines."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import describe as _describe
from .style import font_families
from .style import book_style as _style

__all__ = ["function_vectors"]


def function_vectors(scans) -> Figure:
    """Held-out accuracy per layer: the task vector (solid), a random vector of the same norm (dashed),
    the zero-shot prompt (dotted grey line) and the few-shot prompt (dash-dot line); one panel per model (Chapter 15).
    """
    scans = [scans] if hasattr(scans, "accuracy") else list(scans)
    if not scans:
        raise AnatomyError("No scans to draw: pass the results of function_vector_scan (one or a list).")
    names = list(dict.fromkeys(s.model_name for s in scans))
    with _style():
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 2.6, 3.6), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], names):
            for k, s in enumerate(x for x in scans if x.model_name == name):
                c = f"C{k}"
                ax.plot(s.layers, s.accuracy.numpy(), "-o", color=c, ms=4, label=f"{s.task}: task vector")
                ax.plot(s.layers, s.random_accuracy.numpy(), "--", color=c, alpha=0.6, label=f"{s.task}: random, same norm")
                ax.axhline(s.zero_shot, color=c, ls=":", lw=1, label=f"{s.task}: zero-shot")
                ax.axhline(s.few_shot, color=c, ls="-.", lw=1, alpha=0.5, label=f"{s.task}: few-shot")
            ax.set_title(f"{name}: {scans[0].mode} at the query's last token", fontsize=9, fontfamily=font_families())
            ax.set_xlabel("layer (0-based) of the task vector")
            ax.set_ylim(-0.03, 1.03)
        axes[0, 0].set_ylabel("top-1 accuracy on held-out pairs")
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), prop={"family": font_families(), "size": 7})
    tasks = ", ".join(dict.fromkeys(s.task for s in scans))
    return _describe(
        fig,
        en=f"Accuracy on held-out pairs when each layer's task vector ({tasks}) is patched into zero-shot prompts, per layer, "
           f"with a random vector of the same norm (dashed), the zero-shot accuracy (dotted) and the few-shot accuracy (dash-dot), for "
           + ", ".join(names) + ".",
        zh=f"把每一层的任务向量（{tasks}）放进零样本提示后，留出词对上的准确率随层的变化；虚线是同样长度的随机向量，点线是零样本准确率，"
           f"点划线是少样本准确率；模型：" + "、".join(names) + "。",
    )
