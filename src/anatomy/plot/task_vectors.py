"""Figures of Chapter 15: task vectors, the layer chosen on dev queries."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import model_panels

__all__ = ["function_vectors"]


def function_vectors(tests) -> Figure:
    """Dev accuracy per layer of each task's vector, the chosen layer marked; one panel per model (Chapter 15)."""
    tests = [tests] if hasattr(tests, "dev_accuracy") else list(tests)
    if not tests or not all(hasattr(t, "dev_accuracy") for t in tests):
        raise AnatomyError("No results to draw: pass the results of task_vector_test (one or a list).")

    def draw(ax, name, its):
        for k, t in enumerate(its):
            c = f"C{k}"
            ax.plot(t.layers, t.dev_accuracy.numpy(), "-o", color=c, ms=3, label=f"{t.task}")
            ax.plot([t.layer], [float(t.dev_accuracy[t.layers.index(t.layer)])], "*", color=c, ms=12)

    tasks = ", ".join(dict.fromkeys(t.task for t in tests))
    return model_panels(
        tests, draw, (4.2, 3.6), 2.6, subtitle="task vector patched into dev queries",
        xlabel="layer (0-based) of the task vector", ylabel="top-1 accuracy on dev queries",
        en=f"Accuracy on dev queries when each layer's task vector ({tasks}) is patched into zero-shot prompts, "
           f"per layer; a star marks the layer chosen for the test,",
        zh=f"把每一层的任务向量（{tasks}）放进零样本提示后，开发集查询上的准确率随层的变化；星号标出为测试选定的层；",
    )
