"""Figures of Chapter 6: how much a steering vector moves the model, per layer and strength."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..errors import AnatomyError
from .style import font_families, suptitle
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["steering"]


def _heat(ax, fig, values, e, lim, title):
    im = ax.imshow(values, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
    ax.set_xticks(range(len(e.strengths)), [f"{s:g}" for s in e.strengths])
    ax.set_yticks(range(len(e.layers)), [str(i) for i in e.layers])
    ax.set_xlabel("strength (multiples of the direction)")
    ax.set_ylabel("layer steered (0-based)")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7, color="white" if abs(v) > 0.6 * lim else "black")
    ax.set_title(title, fontsize=9, fontfamily=font_families())
    fig.colorbar(im, ax=ax, shrink=0.8, label="change vs. no steering")


def steering(effects, *, title: str | None = None) -> Figure:
    """Heat map of ``SteeringEffect.shift``: layers down, strengths across, one panel per model (Chapter 6).

    Red = the next token leans further towards the A markers than without steering, blue = towards
    the B markers, white = no change (strength 0 is white by definition). Each cell shows its value.
    If the effect has controls, a second panel beside it shows the random directions of the same
    norm (the mean of their shifts, on the same colour scale), one row of panels per model.
    """
    effects = [effects] if hasattr(effects, "shift") else list(effects)
    if not effects:
        raise AnatomyError("No steering effects to draw: pass the result of steering_effect (or a list of them).")
    controls = all(e.control is not None for e in effects)
    with _style():
        tallest = max(len(e.layers) for e in effects)
        if controls:
            fig, axes = plt.subplots(len(effects), 2, figsize=(9.2, (0.36 * tallest + 2.0) * len(effects)), squeeze=False)
        else:
            fig, axes = plt.subplots(1, len(effects), figsize=(4.2 * len(effects) + 0.8, 0.36 * tallest + 2.0), squeeze=False)
        for k, e in enumerate(effects):
            shift = e.shift.numpy()  # [n_layers, n_strengths]
            a, b = "".join(e.markers_a[:3]), "".join(e.markers_b[:3])
            what = f"change of logit(A: {a}…) − logit(B:{b}…)"
            if controls:
                random = e.control_shift.mean(dim=-1).numpy()  # [n_layers, n_strengths]
                lim = max(float(abs(shift).max()), float(abs(random).max()), 1e-6)
                _heat(axes[k, 0], fig, shift, e, lim, f"{e.model_name}: the direction, {e.n_prompts} prompts\n{what}")
                n = e.control.shape[-1]
                which = "a random direction, same norm" if n == 1 else f"{n} random directions, same norm (mean)"
                _heat(axes[k, 1], fig, random, e, lim, f"{e.model_name}: {which}\n{what}")
            else:
                lim = max(float(abs(shift).max()), 1e-6)
                _heat(axes[0, k], fig, shift, e, lim, f"{e.model_name}: {e.n_prompts} held-out prompts\n{what}")
        suptitle(fig, title)
    return _describe(
        fig,
        en="Heat map of how steering shifts the next token towards the A markers (red) or the B markers (blue), by layer steered (rows) and strength (columns), for " + ", ".join(f"{e.model_name} ({e.n_prompts} held-out prompts)" for e in effects) + f". {title or ''}",
        zh="热力图：按被引导的层（行）和强度（列），看下一个词元向 A 类标记（红）或 B 类标记（蓝）偏移多少；" + "、".join(f"{e.model_name}（{e.n_prompts} 个留出提示）" for e in effects) + f"。{title or ''}",
    )
