"""Figures of Chapter 17: where patching brings the answer back, attribution against exact, back-patching."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..circuits import KINDS
from ..errors import AnatomyError
from .live import live_figure, sig
from .style import describe as _describe
from .style import font_families, panel_row, titled
from .style import book_style as _style

__all__ = ["attribution_scatter", "back_patching", "component_split", "handover_histogram", "knockout", "live_patching", "patching_grid"]


def _list(x, attr: str, what: str, empty_ok: bool = False) -> list:
    items = [x] if hasattr(x, attr) else list(x)
    if not items and not empty_ok:
        raise AnatomyError(f"Nothing to draw: pass the result of {what} (or a list of them).")
    return items


def _nothing(title: str) -> Figure:
    """A figure that says there is nothing to draw (a model that answered none of the facts)."""
    with _style():
        fig, ax = plt.subplots(figsize=(4, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no fact pairs: the model answered none of the facts", ha="center", va="center")
        fig.suptitle(title)
    return _describe(fig, en="No fact pairs to show: the model answered none of the facts.",
                     zh="没有可显示的事实对：模型一个事实都没有答对。")


def _heat(ax, fig, grid, label: str):
    lim = max(1.0, float(grid.abs().nan_to_num(0).max()))
    im = ax.imshow(grid.numpy(), aspect="auto", origin="lower", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim))
    fig.colorbar(im, ax=ax, shrink=0.85, label=label)


def patching_grid(results, *, title: str | None = None) -> Figure:
    """How much of the clean answer each patch brings back, one row of panels per model (Chapter 17).

    Left: the embedding (bottom row) and every layer's output at each position, one position per
    patched run. Right: each attention head's output, patched at all positions. Red = the clean
    answer comes back (1 = all of its lead), blue = the patch pushes further towards the corrupted one.
    """
    results = _list(results, "recovered", "activation_patching")

    def draw():
        fig, axes = plt.subplots(len(results), 2, figsize=(10.5, 4.6 * len(results)), squeeze=False,
                                 gridspec_kw={"width_ratios": [1.6, 1]})
        for k, r in enumerate(results):
            left, right = axes[k]
            grid = torch.cat([r.recovered_embedding[None], r.recovered])  # [L+1, T]
            _heat(left, fig, grid, "recovered fraction")
            T = grid.shape[1]
            labels = [a.text if a.text == b.text else f"{a.text}\n/{b.text}" for a, b in zip(r.clean_tokens, r.corrupted_tokens)]
            left.set_xticks(range(T), labels, fontsize=7, fontfamily=font_families())
            step = max(1, r.n_layers // 10)
            rows = [0] + list(range(1, r.n_layers + 1, step))
            left.set_yticks(rows, ["emb" if i == 0 else str(i - 1) for i in rows], fontsize=7)
            left.set_ylabel("layers.l patched (emb = embedding)")
            left.set_xlabel("position patched (clean / corrupted token)")
            left.set_title(f"{r.model_name}, {r.method}: one position of one layer\n“{r.clean_prompt}” → “{r.corrupted_prompt}”",
                           fontsize=9, fontfamily=font_families())
            _heat(right, fig, r.recovered_heads, "recovered fraction")
            H = r.recovered_heads.shape[1]
            right.set_xticks(range(H), [str(h) for h in range(H)], fontsize=7)
            right.set_yticks(range(0, r.n_layers, step), [str(i) for i in range(0, r.n_layers, step)], fontsize=7)
            right.set_xlabel("head")
            right.set_ylabel("layer")
            right.set_title(f"{r.model_name}: one head, all positions\nlogit({r.answers[0]}) − logit({r.answers[1]})", fontsize=9,
                            fontfamily=font_families())
        return fig

    names = ", ".join(f"{r.model_name} (“{r.clean_prompt}” → “{r.corrupted_prompt}”, {r.method})" for r in results)
    return titled(
        draw,
        en=f"Heat maps of the recovered fraction of the logit difference when one part of the clean run is patched into the corrupted run: embedding and layer outputs by position (left), attention heads by layer (right), for {names}.",
        zh=f"热力图：把干净运行的一个部件补入被破坏的运行后，logit 差值恢复的比例；左为嵌入和各层输出（按位置），右为各层的注意力头；{names}。",
        title=title,
    )


def attribution_scatter(pairs, *, title: str | None = None) -> Figure:
    """Attribution patching (y) against exact activation patching (x), one panel per model (Chapter 17).

    ``pairs`` is a list of (exact, attribution) results for the same prompts. Dots: layer × position
    cells; triangles: heads. The title of each panel gives both correlations and both times.
    """
    pairs = list(pairs)
    if not pairs:
        raise AnatomyError("Nothing to draw: pass a list of (exact, attribution) pairs from activation_patching and attribution_patching.")

    def draw(ax, pair):
        ex, at = pair
        x, y = ex.recovered.flatten(), at.recovered.flatten()
        hx, hy = ex.recovered_heads.flatten(), at.recovered_heads.flatten()
        r_res = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
        r_heads = float(torch.corrcoef(torch.stack([hx, hy]))[0, 1])
        ax.scatter(x, y, s=10, alpha=0.6, label=f"layer × position (r = {r_res:.2f})")
        ax.scatter(hx, hy, s=16, marker="^", alpha=0.7, label=f"heads (r = {r_heads:.2f})")
        lo = float(min(x.min(), y.min(), hx.min(), hy.min())) - 0.05
        hi = float(max(x.max(), y.max(), hx.max(), hy.max())) + 0.05
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"exact patching ({ex.seconds:.1f} s)")
        ax.set_ylabel(f"attribution patching ({at.seconds:.1f} s)")
        ax.set_title(f"{ex.model_name}: recovered fraction", fontsize=10, fontfamily=font_families())
        ax.legend(frameon=False, fontsize=8, loc="upper left")

    names = ", ".join(ex.model_name for ex, _ in pairs)
    return panel_row(
        pairs, draw, (4.6, 4.4),
        en=f"Scatter of the recovered fraction estimated by attribution patching against exact activation patching, for layer × position cells and for heads, on {names}; “{pairs[0][0].clean_prompt}” → “{pairs[0][0].corrupted_prompt}”.",
        zh=f"散点图：归因修补估计的恢复比例与精确激活修补的对比（层 × 位置的格子与注意力头），模型：{names}；“{pairs[0][0].clean_prompt}” → “{pairs[0][0].corrupted_prompt}”。",
        title=title,
    )


def back_patching(results, *, title: str | None = None) -> Figure:
    """The answer's probability after back-patching, source layer × target layer, one panel per prompt (Chapter 17)."""
    results = _list(results, "prob", "back_patching")

    def draw(ax, r):
        im = ax.imshow(r.prob.numpy(), origin="lower", cmap="Blues", vmin=0, vmax=max(0.05, float(r.prob.nan_to_num(0).max())))
        s, t = torch.nonzero(r.answered, as_tuple=True)
        ax.scatter(t, s, marker="x", color="red", s=14, label=f"{r.answer} is the top token")
        ax.set_xlabel("target layer t (replaced)")
        ax.set_ylabel("source layer s (its vector)")
        ax.set_title(f"{r.model_name}: p({r.answer}), unpatched {r.base_prob:.2f} (top: {r.base_top})\n“{r.prompt}”",
                     fontsize=8, fontfamily=font_families())
        if len(s):
            ax.legend(frameon=False, fontsize=7, loc="lower right")
        ax.figure.colorbar(im, ax=ax, shrink=0.8)

    names = "; ".join(f"{r.model_name}: “{r.prompt}” → {r.answer}" for r in results)
    return panel_row(
        results, draw, (4.4, 4.2),
        en=f"Heat maps of the answer's probability when the last-position vector of a later layer (source) replaces that of an earlier layer (target) of the same two-hop prompt: {names}.",
        zh=f"热力图：把同一个两跳问题中较晚一层（源）在最后位置的向量放回较早一层（目标）之后，答案的概率；{names}。",
        title=title,
    )


_KIND_STYLE = {"layer": ("black", "-"), "attn": ("tab:orange", "--"), "mlp": ("tab:blue", ":")}


def component_split(results, *, title: str | None = None) -> Figure:
    """Mean share over pairs, per layer: layer output, attention output and MLP output, at the subject and
    the last position, denoising (top row) and noising (bottom row); one column pair per result (Chapter 17)."""
    results = _list(results, "denoised", "component_patching", empty_ok=True)
    if not results:
        return _nothing(title or "Attention and MLP outputs")

    def draw():
        fig, axes = plt.subplots(2, 2 * len(results), figsize=(4.0 * 2 * len(results), 6.4), squeeze=False, sharey=True)
        for k, r in enumerate(results):
            layers = list(r.layers)
            for row, direction in enumerate(("denoise", "noise")):
                for col, pos in enumerate(r.positions[:2]):
                    ax = axes[row, 2 * k + col]
                    for kind, (color, ls) in _KIND_STYLE.items():
                        y = r.grid(direction, kind, pos)[:, layers].nanmean(0) if len(r.pairs) else torch.full((len(layers),), float("nan"))
                        ax.plot(layers, y.numpy(), color=color, linestyle=ls, marker="o", markersize=3,
                                label={"layer": "layer output", "attn": "attention output", "mlp": "MLP output"}[kind])
                    ax.axhline(0, color="0.7", lw=0.6)
                    ax.set_title(f"{r.model_name} ({r.language}), {pos} positions\n"
                                 f"{'denoising: share recovered' if direction == 'denoise' else 'noising: share destroyed'}",
                                 fontsize=8)
                    ax.set_xlabel("layer")
        axes[0, 0].legend(frameon=False, fontsize=7)
        return fig

    return titled(
        draw,
        en=f"Line plots of the mean share of the logit difference recovered (denoising) or destroyed (noising) by patching each layer's output, attention output and MLP output, at the subject's positions and at the last position, for {_counted(results)}.",
        zh=f"折线图：在主语位置和最后位置修补每层的输出、注意力输出和 MLP 输出时，logit 差恢复（去噪）或被破坏（加噪）的平均比例；{_counted(results)}。",
        title=title,
    )


def _counted(results) -> str:
    """The models of results of component_patching, with their language and number of fact pairs."""
    return ", ".join(f"{r.model_name} ({r.language}, {len(r.pairs)} pairs)" for r in results)


def handover_histogram(results, *, title: str | None = None) -> Figure:
    """How many pairs hand over at each layer, one panel per result of component_patching (Chapter 17)."""
    results = _list(results, "handover", "component_patching", empty_ok=True)
    if not results:
        return _nothing(title or "Hand-over layers")

    def draw(ax, r):
        L = r.denoised.shape[2]
        h = r.handover
        counts = torch.bincount(h[h >= 0], minlength=L) if len(h) else torch.zeros(L, dtype=torch.long)
        ax.bar(range(L), counts.numpy(), color="tab:red")
        ax.set_xlabel("hand-over layer")
        ax.set_ylabel("pairs")
        ax.set_xlim(-0.5, L - 0.5)
        ax.set_title(f"{r.model_name} ({r.language}), {len(r.pairs)} pairs", fontsize=8)

    return panel_row(
        results, draw, (3.6, 3.0),
        en=f"Bar charts of the number of fact pairs whose hand-over layer (the first layer whose output at the last position brings back more than half of the answer) is each layer, for {_counted(results)}.",
        zh=f"柱状图：每一层作为交接层（最后位置的输出能恢复一半以上答案的第一层）的事实对数目；{_counted(results)}。",
        title=title,
    )


def knockout(results, handovers, *, title: str | None = None) -> Figure:
    """The answer's probability (share of unblocked) when attention from the last position to the subject is
    blocked from layer ℓ on, one thin line per pair, ℓ counted from each pair's hand-over layer (Chapter 17)."""
    results = _list(results, "kept", "attention_knockout")

    def draw(ax, item):
        r, hs = item
        L = r.prob.shape[1] - 1
        for kept, h in zip(r.kept, hs.tolist()):
            ax.plot([l - h for l in range(L)], kept[:L].numpy(), color="tab:purple", alpha=0.5, lw=0.9)
        ax.axvline(0, color="0.5", lw=0.8, linestyle="--")
        ax.axhline(0.5, color="0.8", lw=0.6)
        ax.set_xlabel("ℓ − hand-over layer (blocked from ℓ on)")
        ax.set_ylabel("p(answer), share of unblocked")
        ax.set_title(f"{r.model_name}, {len(r.pairs)} pairs", fontsize=8)

    names = ", ".join(f"{r.model_name} ({len(r.pairs)} pairs)" for r in results)
    return panel_row(
        list(zip(results, handovers)), draw, (4.2, 3.2),
        en=f"Line plots, one line per fact pair, of the answer's probability as a share of the unblocked one when attention from the last position to the subject is blocked from layer ℓ on, with ℓ counted from the pair's hand-over layer, for {names}.",
        zh=f"折线图（每个事实对一条线）：从第 ℓ 层起阻断最后位置对主语的注意力后，答案概率占未阻断时的比例，ℓ 以该事实对的交接层为零点；{names}。",
        title=title,
    )


def _sig(x) -> float | None:
    """A number rounded to 4 significant digits for a live figure's data; None where nothing was run (NaN)."""
    x = float(x)
    return None if x != x else sig(x)


def live_patching(results):
    """An interactive patching grid (Chapter 17): layers × (part, positions) per fact pair; hover a cell
    for the clean, corrupted and patched logit differences.

    Takes what ``component_patching`` returned (one or a list, e.g. one per model and language);
    only the layers it patched are shown. ``denoise`` writes the clean run's part into the corrupted
    run, ``noise`` the corrupted run's part into the clean run.
    """
    results = [r for r in _list(results, "denoised", "component_patching", empty_ok=True) if len(r.pairs)]
    if not results:  # models that answered none of the facts (a chapter run on other weights): say so, as the static figures do
        return _nothing("Activation patching, pair by pair")
    sets = []
    for r in results:
        layers = list(r.layers)
        cells = lambda x, n: [[[_sig(x[n, k, l, g]) for g in range(len(r.positions))]  # noqa: E731
                               for l in layers] for k in range(len(KINDS))]  # [kinds][layers][positions]
        # a list of pairs (not a FactPairs) carries no language: the prompts tell (the book's facts are English or Chinese)
        language = r.language or ("zh" if any("\u3400" <= ch <= "\u9fff" for ch in r.pairs[0].clean) else "en")
        sets.append({"name": r.model_name, "language": language, "layers": layers, "positions": list(r.positions),
                     "pairs": [{"clean": p.clean, "corrupted": p.corrupted, "answers": list(p.answers),
                                "clean_d": _sig(r.clean[n]), "corrupted_d": _sig(r.corrupted[n]),
                                "denoise": cells(r.denoised, n), "noise": cells(r.noised, n)}
                               for n, p in enumerate(r.pairs)]})
    labels = {
        "set": {"en": "model", "zh": "模型"}, "pair": {"en": "pair", "zh": "事实对"},
        "direction": {"en": "direction", "zh": "方向"},
        "denoise": {"en": "denoising: clean part into the corrupted run", "zh": "去噪：把干净运行的部件补入被破坏的运行"},
        "noise": {"en": "noising: corrupted part into the clean run", "zh": "加噪：把被破坏运行的部件补入干净运行"},
        "layer": {"en": "layer output", "zh": "层输出"}, "attn": {"en": "attention", "zh": "注意力"},
        "mlp": {"en": "MLP", "zh": "MLP"}, "subject": {"en": "subject", "zh": "主语"}, "last": {"en": "last", "zh": "最后"},
        "layers": {"en": "layer", "zh": "层"},
        "clean": {"en": "clean", "zh": "干净"}, "corrupted": {"en": "corrupted", "zh": "被破坏"},
        "patched": {"en": "patched", "zh": "修补后"},
        "share": {"en": "share of the lead", "zh": "领先优势的比例"},
        "diff": {"en": "logit difference", "zh": "logit 差"},
        "help": {"en": "Hover or tap a cell; keys: arrows move the cell, Enter switches direction, PageUp/PageDown the pair.",
                 "zh": "把指针移到格子上或点按它；按键：方向键移动格子，Enter 切换方向，PageUp/PageDown 换事实对。"},
    }
    names = ", ".join(f"{s['name']} ({s['language']})" for s in sets)
    return live_figure(
        "patching", {"kinds": list(KINDS), "sets": sets, "labels": labels},
        alt_en=f"Interactive patching grid for {names}: each cell is one layer's output, attention output or MLP output "
               "patched at the subject or the last position; hovering shows the clean, corrupted and patched logit differences.",
        alt_zh=f"可交互的修补网格（{names}）：每个格子是在主语位置或最后位置修补某一层的输出、注意力输出或 MLP 输出；"
               "指向格子即显示干净、被破坏和修补后的 logit 差。")
