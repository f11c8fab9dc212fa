"""Figures of Chapters 9 and 10: attention weights, heads, RoPE rotations, cost against length."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..attention import Rotary, Timing
from ..errors import AnatomyError
from ..tokens import Token
from .live import live_figure
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["attention_bar", "attention_heads", "live_attention", "rope", "timing", "window"]


def _labels(tokens: Sequence[Token]) -> list[str]:
    return [t.text if t.text.strip() else repr(t.text) for t in tokens]


def _check(weights: torch.Tensor, tokens: Sequence[Token]) -> None:
    if not isinstance(weights, torch.Tensor) or weights.ndim != 3 or weights.shape[1:] != (len(tokens), len(tokens)):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise AnatomyError(f"Expected attention weights of shape [heads, {len(tokens)}, {len(tokens)}] for {len(tokens)} tokens, got {shape}.")


def attention_bar(weights: torch.Tensor, tokens: Sequence[Token], head: int, query: int = -1, *, title: str | None = None) -> Figure:
    """Bars: how much one query token attends to each token on its left, in one head (Chapter 9).

    ``weights`` is [H, T, T] (from ``attention_by_hand(...).weights`` or ``attention_weights``).
    """
    _check(weights, tokens)
    H, T, _ = weights.shape
    if not -H <= head < H or not -T <= query < T:
        raise AnatomyError(f"head={head}, query={query} out of range: there are {H} heads and {T} tokens.")
    query %= T
    row = weights[head, query, : query + 1].detach().cpu().numpy()  # [query+1]
    labels = _labels(tokens)[: query + 1]
    with _style():
        fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(row) + 1.5), 3.2))
        ax.bar(range(len(row)), row, color=["#dd8452" if i == query else "#4c72b0" for i in range(len(row))])
        ax.set_xticks(range(len(row)), labels, fontfamily=font_families(), rotation=45 if len(row) > 8 else 0)
        for x, w in enumerate(row):
            ax.text(x, w, f"{w:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max(float(row.max()) * 1.18, 0.05))
        ax.set_ylabel("attention weight")
        ax.set_title(title or f"head {head}: where “{labels[-1]}” looks (weights sum to 1)", fontfamily=font_families(), fontsize=10)
    return _describe(
        fig,
        en=f"Bar chart: attention weights of head {head} from the token “{labels[-1]}” to each token up to it; the bars sum to 1. {title or ''}",
        zh=f"柱状图：第 {head} 个头里，词元“{labels[-1]}”分给它及左边每个词元的注意力权重，总和为 1。{title or ''}",
    )


def attention_heads(weights: torch.Tensor, tokens: Sequence[Token], *, title: str | None = None, cols: int | None = None) -> Figure:
    """All heads of one layer as small heat maps: row = query token, column = key token (Chapter 10)."""
    _check(weights, tokens)
    H, T, _ = weights.shape
    cols = cols or min(H, 5 if H > 4 else H)
    rows = math.ceil(H / cols)
    labels = _labels(tokens)
    size = 2.2 + 0.16 * T
    with _style():
        fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
        for h, ax in enumerate(axes.flat):
            if h >= H:
                ax.set_axis_off()
                continue
            ax.imshow(weights[h].detach().cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"head {h}", fontsize=9)
            show = T <= 24
            ax.set_xticks(range(T) if show else [], labels if show else [], rotation=90, fontsize=6, fontfamily=font_families())
            ax.set_yticks(range(T) if show else [], labels if show else [], fontsize=6, fontfamily=font_families())
        if title:
            fig.suptitle(title, fontfamily=font_families(), fontsize=11)
    return _describe(
        fig,
        en=f"Heat maps of the attention weights of all {H} heads of one layer: row = query token, column = key token, brighter = more weight. {title or ''}",
        zh=f"热力图：同一层全部 {H} 个头的注意力权重，行是查询词元，列是被看的词元，越亮权重越大。{title or ''}",
    )


def rope(rotaries: Sequence[Rotary] | Rotary, positions: int = 8, pairs: Sequence[int] = (0, 8)) -> Figure:
    """RoPE as a rotation (Chapter 9).

    Left: one pair of dimensions of the first ``Rotary``, the vector (1, 0) placed at positions
    0..positions-1, for a fast-turning and a slower pair. Right: the angle per position θ_i of every
    pair, one line per ``Rotary`` (e.g. Gemma 3's local and global layers).
    """
    rotaries = [rotaries] if isinstance(rotaries, Rotary) else list(rotaries)
    first = rotaries[0]
    if positions > first.cos.shape[0]:
        raise AnatomyError(f"positions={positions} but the Rotary holds {first.cos.shape[0]} positions; ask rotary() for more.")
    n_pairs = first.theta.shape[0]
    pairs = [p for p in pairs if 0 <= p < n_pairs] or [0]
    with _style():
        fig, axes = plt.subplots(1, len(pairs) + 1, figsize=(3.4 * len(pairs) + 4.4, 3.4))
        colours = plt.cm.viridis(np.linspace(0, 0.9, positions))
        for ax, p in zip(axes[:-1], pairs):
            for pos in range(positions):
                c, s = float(first.cos[pos, p]), float(first.sin[pos, p])  # rotate (1, 0) by pos × θ_p
                ax.annotate("", xy=(c, s), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=colours[pos], lw=1.6))
                ax.text(1.13 * c, 1.13 * s, str(pos), ha="center", va="center", fontsize=8, color=colours[pos])
            ax.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color="#999999"))
            ax.set_xlim(-1.3, 1.3)
            ax.set_ylim(-1.3, 1.3)
            ax.set_aspect("equal")
            ax.set_title(f"pair {p}: θ = {float(first.theta[p]):.3g} rad per position", fontsize=9)
            ax.set_xlabel(f"dimension {p}")
            ax.set_ylabel(f"dimension {p + n_pairs}")
        ax = axes[-1]
        for r in rotaries:
            label = f"layer {r.layer}" + (f", base {r.base:,.0f}" if r.base else "")
            ax.semilogy(range(r.theta.shape[0]), r.theta.numpy(), label=label)
        ax.set_xlabel("pair of dimensions i")
        ax.set_ylabel("θ_i (radians per position)")
        ax.legend(fontsize=8)
        ax.set_title(first.model_name, fontsize=9)
    return _describe(
        fig,
        en=f"RoPE in {first.model_name}: the vector (1, 0) rotated by position in pairs {list(pairs)} of dimensions, and the angle per position of every pair (log scale) for layers {', '.join(str(r.layer) for r in rotaries)}.",
        zh=f"{first.model_name} 的 RoPE：向量 (1, 0) 在第 {list(pairs)} 对维度上随位置旋转；右图是每一对维度每个位置转过的角度（对数刻度），层 {', '.join(str(r.layer) for r in rotaries)}。",
    )


def timing(t: Timing) -> Figure:
    """Left: one forward pass against length. Right: the T×T part of attention against length² (Chapter 10)."""
    n = np.array(t.lengths, dtype=float)
    with _style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.4))
        a.plot(n, t.forward, "o-", label="whole forward pass")
        a.plot(n, t.attention, "s-", label="T×T part of attention")
        a.set_xlabel("input length T (tokens)")
        a.set_ylabel("seconds")
        a.legend(fontsize=8)
        a.set_title(f"{t.model_name}, best of {t.repeats} run(s)", fontsize=9)
        b.plot(n**2, t.attention, "s-", color="#dd8452")
        b.set_xlabel("T² (tokens²)")
        b.set_ylabel("seconds")
        b.set_title("T×T part of attention against T²", fontsize=9)
        b.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    return _describe(
        fig,
        en=f"Timing on {t.model_name} (best of {t.repeats} runs): seconds for a whole forward pass and for the T×T part of attention against input length T, and the T×T part against T².",
        zh=f"{t.model_name} 的计时（{t.repeats} 次取最快）：整个前向传播和注意力中 T×T 部分的秒数随输入长度 T 的变化，以及 T×T 部分相对 T² 的变化。",
    )


def window(rows: Mapping[str, torch.Tensor], window: int | None = None) -> Figure:
    """Attention weights of one query over all key positions, one line per layer (log scale) (Chapter 10).

    Zero weights are drawn at the bottom edge, so a sliding window shows as a cliff at T - window.
    """
    with _style():
        fig, ax = plt.subplots(figsize=(8.5, 3.2))
        floor = 1e-12
        for label, row in rows.items():
            r = row.detach().cpu().numpy()
            ax.semilogy(np.arange(len(r)), np.maximum(r, floor), lw=0.9, label=label)
            last = len(r) - 1
        if window:
            ax.axvline(last - window + 0.5, color="#999999", ls="--", lw=1)
            ax.text(last - window + 2, 1e-11, f" {window} tokens back", fontsize=8, color="#555555")
        ax.set_ylim(floor / 3, 1.5)
        ax.set_xlabel("key position")
        ax.set_ylabel("attention weight (0 drawn at 1e-12)")
        ax.legend(fontsize=8)
    return _describe(
        fig,
        en=f"Attention weight of the last token on every key position (log scale), one line per layer: {', '.join(rows)}" + (f"; the dashed line marks {window} tokens back." if window else "."),
        zh=f"最后一个词元在每个位置上的注意力权重（对数刻度），每层一条线：{'、'.join(rows)}" + (f"；虚线标出往回 {window} 个词元处。" if window else "。"),
    )


def _attention_record(r) -> tuple[str, tuple[int, ...], torch.Tensor, Sequence[Token]]:
    """(model name, layer numbers, weights [layers, H, T, T], tokens) of an ``attention_weights`` or ``attention_by_hand`` record."""
    w = getattr(r, "weights", None)
    tokens = getattr(r, "tokens", None)
    if not isinstance(w, torch.Tensor) or tokens is None or not hasattr(r, "model_name"):
        raise AnatomyError(f"live_attention takes records of attention_weights or attention_by_hand, got {type(r).__name__}.")
    if w.ndim == 3:  # one layer, by hand: [H, T, T]
        _check(w, tokens)
        return r.model_name, (int(r.layer),), w[None], tokens
    if w.ndim != 4:
        raise AnatomyError(f"Expected attention weights [layers, heads, T, T] or [heads, T, T], got shape {tuple(w.shape)}.")
    _check(w[0], tokens)
    return r.model_name, tuple(range(w.shape[0])), w, tokens


def live_attention(*records, start: Mapping[str, tuple[int, int, int]] | None = None):
    """An interactive attention view (Chapters 9 and 10): pick model, layer and head; hover or arrow-key a token.

    Each record is what ``attention_weights`` (every layer) or ``attention_by_hand`` (one layer)
    returned, one per model. ``start`` maps a model name to the (layer, head, query position) shown
    first. Weights are stored in thousandths (0-1000), the lower triangle of each [T, T] matrix, row by row.
    """
    if not records:
        raise AnatomyError("live_attention needs at least one record of attention_weights or attention_by_hand.")
    start = dict(start or {})
    models = []
    for r in records:
        name, layers, w, tokens = _attention_record(r)
        T = len(tokens)
        rows = torch.tril_indices(T, T)  # [2, T(T+1)/2]: (query, key), row by row
        milli = (w.detach().float().cpu()[:, :, rows[0], rows[1]] * 1000).round().int()  # [layers, H, T(T+1)/2]
        layer, head, query = start.get(name, (layers[0], 0, T - 1))
        if layer not in layers or not 0 <= head < w.shape[1] or not -T <= query < T:
            raise AnatomyError(f"start={layer, head, query} for {name} is outside its {len(layers)} layers {layers[0]}-{layers[-1]}, "
                               f"{w.shape[1]} heads and {T} tokens.")
        models.append({"name": name, "tokens": [t.text for t in tokens], "layers": list(layers), "heads": int(w.shape[1]),
                       "w": milli.reshape(len(layers), -1).tolist(), "start": [layers.index(layer), head, query % T]})
    labels = {"model": {"en": "model", "zh": "模型"}, "layer": {"en": "layer", "zh": "层"},
              "head": {"en": "head", "zh": "头"},
              "to": {"en": "attends to (row of the selected token)", "zh": "它关注的词元（所选词元的那一行）"},
              "from": {"en": "attended by (column of the selected token)", "zh": "关注它的词元（所选词元的那一列）"},
              "weight": {"en": "weight", "zh": "权重"},
              "help": {"en": "Hover or tap a token; keys: ← → token, ↑ ↓ head, PageUp/PageDown layer.",
                       "zh": "把指针移到词元上或点按它；按键：← → 换词元，↑ ↓ 换头，PageUp/PageDown 换层。"}}
    names = ", ".join(m["name"] for m in models)
    return live_figure(
        "attention", {"scale": 1000, "models": models, "labels": labels},
        alt_en=f"Interactive attention weights of {names}: choose layer and head, select a token to see what it attends to and what attends to it.",
        alt_zh=f"可交互的注意力权重（{names}）：选择层和头，选中一个词元，看它关注哪些词元、哪些词元关注它。")
