"""Figures of Chapter 13, the dissection lab: parameters by role, one weight matrix, attention heads and sinks."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..dissect import Attention, ParameterBreakdown
from ..errors import AnatomyError
from .style import font_families
from .style import describe as _describe
from .style import book_style as _style

__all__ = ["Download", "head_grid", "head_map", "parameter_breakdown", "sink_shares", "svg_download", "weight_corner"]

_ROLE_COLOURS = {
    "embedding table": "#4c72b0", "attention": "#dd8452", "feed-forward": "#55a868",
    "norms": "#c44e52", "LM head": "#8172b3", "other": "#937860",
}
_LAYER_ROLES = ("attention", "feed-forward", "norms")


def parameter_breakdown(breakdowns) -> Figure:
    """Parameters by role for each model (left) and inside each layer (right), in millions (Chapter 13)."""
    breakdowns: list[ParameterBreakdown] = list(breakdowns)
    with _style():
        fig, axes = plt.subplots(len(breakdowns), 2, figsize=(12, 2.9 * len(breakdowns)), squeeze=False,
                                 gridspec_kw={"width_ratios": (1, 1.3)})
        for (left, right), b in zip(axes, breakdowns):
            totals = {r: n for r, n in b.totals.items() if n}
            roles = list(totals)
            millions = [totals[r] / 1e6 for r in roles]
            left.barh(range(len(roles)), millions, color=[_ROLE_COLOURS[r] for r in roles])
            left.set_yticks(range(len(roles)), roles)
            left.invert_yaxis()
            for y, r in enumerate(roles):
                left.text(totals[r] / 1e6, y, f" {_count(totals[r])} ({_share(totals[r] / b.total)})", va="center", fontsize=9)
            left.set_xlim(0, max(millions) * 1.45)
            left.set_xlabel("parameters (millions)")
            left.set_title(f"{b.model_name}: {b.total / 1e6:.1f} M parameters in all", loc="left", fontsize=10)

            per_layer = b.per_layer.double() / 1e6  # [L, 3]
            x = range(per_layer.shape[0])
            bottom = torch.zeros(per_layer.shape[0], dtype=torch.float64)
            for c, role in enumerate(_LAYER_ROLES):
                right.bar(x, per_layer[:, c].numpy(), bottom=bottom.numpy(), color=_ROLE_COLOURS[role], label=role, width=0.8)
                bottom += per_layer[:, c]
            right.xaxis.set_major_locator(MaxNLocator(integer=True))
            right.set_xlabel("layer index")
            right.set_ylabel("parameters (millions)")
            right.set_title(f"inside each of the {per_layer.shape[0]} layers (embedding table: {b.embedding / 1e6:.1f} M, not shown)",
                            loc="left", fontsize=10)
            right.set_ylim(0, float(bottom.max()) * 1.22)
            right.legend(frameon=False, fontsize=8, ncols=3, loc="upper right")
    return _describe(
        fig,
        en="Parameters by role (left) and inside each layer (right), in millions: " + "; ".join(f"{b.model_name}: {b.total / 1e6:.1f} M in all, {b.per_layer.shape[0]} layers" for b in breakdowns) + ".",
        zh="按角色统计的参数量（左）和每一层内部的参数量（右），单位百万：" + "；".join(f"{b.model_name}：共 {b.total / 1e6:.1f} M，{b.per_layer.shape[0]} 层" for b in breakdowns) + "。",
    )


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n:,}"


def _share(x: float) -> str:
    return f"{x:.1%}" if x >= 0.001 else f"{x:.3%}"


def weight_corner(weight: torch.Tensor, *, size: int = 100, title: str = "") -> Figure:
    """The top-left ``size`` x ``size`` block of a weight matrix as a heat map, red positive, blue negative (Chapter 13)."""
    if not torch.is_tensor(weight) or weight.dim() != 2:
        raise AnatomyError("Give a 2-D weight matrix, e.g. model.hf.state_dict()['model.layers.0.mlp.up_proj.weight'].")
    corner = weight.detach()[:size, :size].float()  # [size, size]
    v = float(corner.abs().max()) or 1.0
    with _style():
        fig, ax = plt.subplots(figsize=(5.6, 4.8))
        im = ax.imshow(corner.numpy(), cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        ax.set_xlabel("column (input dimension)")
        ax.set_ylabel("row (output dimension)")
        fig.colorbar(im, ax=ax, shrink=0.85, label="weight value")
        ax.set_title(title or f"top-left {corner.shape[0]} × {corner.shape[1]} of a {weight.shape[0]} × {weight.shape[1]} matrix",
                     fontsize=9, fontfamily=font_families())
    return _describe(
        fig,
        en=f"Heat map of the top-left {size}×{size} corner of a weight matrix of shape {tuple(weight.shape)}. {title}",
        zh=f"热力图：形状为 {tuple(weight.shape)} 的权重矩阵左上角 {size}×{size} 的数值。{title}",
    )


def head_map(attention: Attention, layer: int, head: int, *, annotate: float = 0.1) -> Figure:
    """One head's attention weights with token labels: row = the token attending, column = the token attended to (Chapter 13).

    Weights of at least ``annotate`` are written in their cells.
    """
    w = attention.head(layer, head)  # [T, T]
    labels = attention.labels
    T = len(labels)
    with _style():
        side = 1.6 + 0.42 * T
        fig, ax = plt.subplots(figsize=(side + 1.2, side))
        im = ax.imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(T), labels, rotation=60, ha="right", rotation_mode="anchor", fontfamily=font_families(), fontsize=9)
        ax.set_yticks(range(T), labels, fontfamily=font_families(), fontsize=9)
        ax.set_xlabel("attended to (key position)")
        ax.set_ylabel("attending token (query position)")
        for i in range(T):
            for j in range(i + 1):
                if w[i, j] >= annotate:
                    ax.text(j, i, f"{float(w[i, j]):.2f}", ha="center", va="center", fontsize=7,
                            color="black" if w[i, j] > 0.6 else "white")
        fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
        ax.set_title(f"{attention.model_name}: layer {layer}, head {head}", fontsize=10)
    return _describe(
        fig,
        en=f"{attention.model_name}, layer {layer}, head {head}: attention weights as a heat map, row = query token, column = key token; weights above {annotate} are written in the cells.",
        zh=f"{attention.model_name} 第 {layer} 层第 {head} 个头的注意力权重热力图：行是查询词元，列是被看的词元；大于 {annotate} 的权重写在格子里。",
    )


def _blocks(n_layers: int, n_heads: int, aspect: float = 1.3) -> int:
    """How many side-by-side blocks of layers make the grid closest to a gently landscape shape."""
    return min(range(1, n_layers + 1), key=lambda b: abs(b * n_heads / math.ceil(n_layers / b) - aspect))


def head_grid(attention: Attention, *, gamma: float = 0.5) -> Figure:
    """Every head of every layer in one figure, one small T x T map each, on one shared colour scale (Chapter 13).

    Rows are layers (0-based), columns heads; long models are split into side-by-side blocks of
    layers. The colour scale is a power law (``gamma=0.5``: square root) so small weights stay visible.
    """
    w = attention.weights  # [L, H, T, T]
    L, H, T, _ = w.shape
    n_blocks = _blocks(L, H)
    rows = math.ceil(L / n_blocks)
    cell = T + 1  # one blank line between panels
    panel = min(0.55, 12.0 / (n_blocks * H))  # inches per small map
    norm = PowerNorm(gamma=gamma, vmin=0.0, vmax=1.0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    with _style():
        fig, axes = plt.subplots(1, n_blocks, figsize=(n_blocks * H * panel + 0.8 * n_blocks + 1.6, rows * panel + 1.6), squeeze=False)
        for b, ax in enumerate(axes[0]):
            layers = range(b * rows, min((b + 1) * rows, L))
            mosaic = torch.full((rows * cell - 1, H * cell - 1), float("nan"))
            for r, layer in enumerate(layers):
                for h in range(H):
                    mosaic[r * cell : r * cell + T, h * cell : h * cell + T] = w[layer, h]
            im = ax.imshow(mosaic.numpy(), cmap=cmap, norm=norm, interpolation="none", aspect="equal")
            ax.set_yticks([r * cell + (T - 1) / 2 for r in range(len(layers))], [str(layer) for layer in layers], fontsize=8)
            ax.set_xticks([h * cell + (T - 1) / 2 for h in range(H)], [str(h) for h in range(H)], fontsize=8)
            ax.xaxis.tick_top()
            ax.xaxis.set_label_position("top")
            ax.set_xlabel("head", fontsize=9)
            ax.set_ylabel("layer", fontsize=9)
            ax.tick_params(length=0)
            for side in ax.spines.values():
                side.set_visible(False)
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.6, label=f"attention weight (power scale, γ = {gamma:g})")
        fig.suptitle(f"{attention.model_name}: all {L} layers × {H} heads\neach square: {T} × {T} weights, row = attending token, column = attended token",
                     fontsize=10)
    return _describe(
        fig,
        en=f"{attention.model_name}: the attention pattern of every head in every layer ({attention.weights.shape[0]} layers × {attention.weights.shape[1]} heads), one small heat map each.",
        zh=f"{attention.model_name}：每一层每个头的注意力模式（{attention.weights.shape[0]} 层 × {attention.weights.shape[1]} 个头），每个头一张小热力图。",
    )


def sink_shares(shares: dict[str, torch.Tensor]) -> Figure:
    """Share of attention on position 0, per layer: mean over heads (line) and each head (dots), one panel per model (Chapter 13).

    ``shares`` maps a label (model name and first token) to a tensor [L, H] from ``anatomy.sink_share``.
    """
    items = list(shares.items())
    with _style():
        fig, axes = plt.subplots(1, len(items), figsize=(5.4 * len(items), 3.6), squeeze=False, sharey=True)
        for ax, (label, s) in zip(axes[0], items):
            s = torch.as_tensor(s).float()  # [L, H]
            L, H = s.shape
            xs = torch.arange(L).repeat_interleave(H)
            ax.scatter(xs.numpy(), s.flatten().numpy(), s=10, color="#999999", alpha=0.7, label="one head")
            ax.plot(range(L), s.mean(1).numpy(), marker="o", ms=4, color="#c44e52", lw=1.8, label="mean over heads")
            ax.set_ylim(-0.02, 1.02)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("layer index")
            ax.set_title(label, fontsize=10, fontfamily=font_families())
            ax.legend(frameon=False, fontsize=8, loc="lower right")
        axes[0, 0].set_ylabel("share of attention on position 0")
    return _describe(
        fig,
        en="Share of attention that goes to the first token, layer by layer, for " + ", ".join(shares) + ".",
        zh="逐层统计分给第一个词元的注意力份额：" + "、".join(shares) + "。",
    )


@dataclass(frozen=True)
class Download:
    """A file offered as a download link inside the page: the data travels in a data: URI (Chapter 13)."""

    filename: str
    mime: str
    data: bytes
    label: str

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    def _repr_html_(self) -> str:
        uri = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        size = f"{len(self.data) / 1024:.0f} KB"
        return f'<p><a download="{html.escape(self.filename, quote=True)}" href="{uri}">{html.escape(self.label)}</a> ({size})</p>'

    def __repr__(self) -> str:
        return f"Download({self.filename!r}, {len(self.data):,} bytes of {self.mime})"


def svg_download(fig: Figure, filename: str, label: str | None = None) -> Download:
    """The figure as an SVG file the reader can download from the page (Chapter 13)."""
    if not isinstance(filename, str) or not filename.endswith(".svg"):
        raise AnatomyError(f"The file name must end in .svg, e.g. 'attention-grid.svg', not {filename!r}.")
    buf = io.BytesIO()
    with _style(), matplotlib.rc_context({"svg.hashsalt": "anatomy"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return Download(filename, "image/svg+xml", buf.getvalue(), label or f"Download {filename}")
