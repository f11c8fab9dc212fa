"""Figures of Chapter 12: the schedule of the little brains, what a nudge reaches, reading vs writing."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.figure import Figure

from ..brains import Influence, ReadWrite, Schedule
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style
from .style import stage_ticks

__all__ = ["influence", "reading_vs_writing", "schedules"]


def schedules(*scheds: Schedule, titles: tuple[str, ...] | None = None) -> Figure:
    """Each state (position, layer) coloured and numbered by the step that computes it (Chapter 12)."""
    with _style():
        fig, axes = plt.subplots(1, len(scheds), figsize=(4.2 * len(scheds), 3.6), squeeze=False)
        for k, (ax, s) in enumerate(zip(axes[0], scheds)):
            grid = s.steps.T.numpy()  # [L, T]: rows are layers, bottom = layer 0
            ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
            for layer in range(grid.shape[0]):
                for t in range(grid.shape[1]):
                    ax.text(t, layer, str(grid[layer, t]), ha="center", va="center", fontsize=8, color="white")
            if s.n_new:
                ax.axvline(s.n_prompt - 0.5, color="#dd4444", lw=2)
            ax.set_xticks(range(grid.shape[1]), [f"{t}" + ("*" if t >= s.n_prompt else "") for t in range(grid.shape[1])])
            ax.set_yticks(range(grid.shape[0]), [str(i) for i in range(grid.shape[0])])
            ax.set_xlabel("position (* = generated)")
            ax.set_ylabel("layer")
            title = titles[k] if titles else f"prompt {s.prompt_mode}"
            ax.set_title(f"{title}\n{s.total_steps} steps", fontsize=10, fontfamily=font_families())
    return _describe(
        fig,
        en=f"Grids of positions × layers numbered by the step at which each state is computed: " + "; ".join(f"{titles[k] if titles else s.prompt_mode}: {s.total_steps} steps" for k, s in enumerate(scheds)) + ".",
        zh="位置 × 层的网格，每格写着这个状态在第几步算出：" + "；".join(f"{titles[k] if titles else s.prompt_mode}：{s.total_steps} 步" for k, s in enumerate(scheds)) + "。",
    )


def influence(inf: Influence) -> Figure:
    """Which states moved (dark) when one state was nudged (red frame) (Chapter 12)."""
    with _style():
        T = len(inf.tokens)
        fig, ax = plt.subplots(figsize=(0.5 * T + 2.5, 4.2))
        ax.imshow(inf.changed.numpy().astype(float), origin="lower", cmap="Greys", aspect="auto", vmin=0, vmax=1.4)
        ax.add_patch(plt.Rectangle((inf.position - 0.5, inf.layer + 0.5), 1, 1, fill=False, ec="#dd4444", lw=2))  # row ℓ + 1
        ax.set_xticks(range(T), [t.text for t in inf.tokens], rotation=60, fontfamily=font_families(), fontsize=8)
        layers = stage_ticks(inf.n_layers, most=12)
        ax.set_yticks([0, *(ell + 1 for ell in layers)], ["emb", *map(str, layers)])  # row l + 1 holds layer l
        ax.set_ylabel("output of layer (emb = embedding)")
        ax.set_title(f"{inf.model_name}: states changed by a nudge at position {inf.position}, layer {inf.layer}", fontsize=10)
    return _describe(
        fig,
        en=f"{inf.model_name}: which hidden states (positions × the embedding and every layer's output) change when the state at position {inf.position}, layer {inf.layer} is nudged; changed states are dark.",
        zh=f"{inf.model_name}：轻推第 {inf.position} 个位置、第 {inf.layer} 层的状态后，哪些隐藏状态（位置 × 嵌入及每一层的输出）随之改变；变了的格子颜色深。",
    )


def reading_vs_writing(results: list[ReadWrite]) -> Figure:
    """Tokens per second, reading a prompt in one pass vs writing one token per pass (Chapter 12)."""
    with _style():
        fig, ax = plt.subplots(figsize=(6.5, 0.9 * len(results) + 1.6))
        names = [r.model_name for r in results]
        y = range(len(results))
        read = [r.read_tokens_per_s for r in results]
        write = [r.write_tokens_per_s for r in results]
        ax.barh([i - 0.2 for i in y], read, height=0.38, color="#4c72b0", label="reading (one pass over the prompt)")
        ax.barh([i + 0.2 for i in y], write, height=0.38, color="#dd8452", label="writing (one token per pass, KV cache)")
        for i, (a, b) in enumerate(zip(read, write)):
            ax.text(a, i - 0.2, f" {a:.0f}", va="center", fontsize=8)
            ax.text(b, i + 0.2, f" {b:.1f}", va="center", fontsize=8)
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("tokens per second (log scale; measured on this machine at build time)")
        ax.legend(loc="lower right", fontsize=8)
    return _describe(
        fig,
        en="Tokens per second on this machine, reading a prompt in one pass versus writing one token per pass with the KV cache, for " + ", ".join(names) + " (log scale).",
        zh="本机上每秒处理的词元数：一次读完整个提示，对比借助 KV 缓存每次写一个词元；模型：" + "、".join(names) + "（对数刻度）。",
    )
