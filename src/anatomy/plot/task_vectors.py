"""Figures of Chapter 15: task vectors, the layer chosen on dev queries."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import book_style as _style
from .style import describe as _describe
from .style import font_families

__all__ = ["function_vectors"]


def function_vectors(tests) -> Figure:
    """Dev accuracy per layer of each task's vector, the chosen layer marked; one panel per model (Chapter 15)."""
    tests = [tests] if hasattr(tests, "dev_accuracy") else list(tests)
    if not tests or not all(hasattr(t, "dev_accuracy") for t in tests):
        raise AnatomyError("No results to draw: pass the results of task_vector_test (one or a list).")
    names = list(dict.fromkeys(t.model_name for t in tests))
    with _style():
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 2.6, 3.6), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], names):
            for k, t in enumerate(x for x in tests if x.model_name == name):
                c = f"C{k}"
                ax.plot(t.layers, t.dev_accuracy.numpy(), "-o", color=c, ms=3, label=f"{t.task}")
                ax.plot([t.layer], [float(t.dev_accuracy[t.layers.index(t.layer)])], "*", color=c, ms=12)
            ax.set_title(f"{name}: task vector patched into dev queries", fontsize=9, fontfamily=font_families())
            ax.set_xlabel("layer (0-based) of the task vector")
            ax.set_ylim(-0.03, 1.03)
        axes[0, 0].set_ylabel("top-1 accuracy on dev queries")
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), prop={"family": font_families(), "size": 7})
    tasks = ", ".join(dict.fromkeys(t.task for t in tests))
    return _describe(
        fig,
        en=f"Accuracy on dev queries when each layer's task vector ({tasks}) is patched into zero-shot prompts, "
           f"per layer; a star marks the layer chosen for the test, for " + ", ".join(names) + ".",
        zh=f"把每一层的任务向量（{tasks}）放进零样本提示后，开发集查询上的准确率随层的变化；星号标出为测试选定的层；模型："
           + "、".join(names) + "。",
    )
