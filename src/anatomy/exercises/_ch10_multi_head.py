"""Chapter 10's exercises: grouped-query attention, W_O's slices, every head of a layer at once."""

from __future__ import annotations

import functools

import torch

from ._judge import Case, Mistake, Verdict, as_int, close, default_models, judge


def check_kv_head(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 10: ``fn(head, n_heads, n_kv_heads)`` is the K/V head that query head ``head`` reads
    (grouped-query attention: consecutive query heads share one K/V head)."""
    shapes = [(m.n_heads, m.n_kv_heads, m.name) for m in default_models()] + [(8, 2, "8 heads, 2 K/V heads")]
    cases = [Case((h, n, kv), f"{name}, query head {h}", f"{name} 的查询头 {h}", h // (n // kv))
             for n, kv, name in shapes for h in range(n)]
    mistakes = (
        Mistake("query heads share K/V heads in consecutive groups (heads 0..g-1 read K/V head 0), not in turn (h % n_kv).",
                "查询头是按连续的组共用 K/V 头的（第 0 到 g-1 个头读第 0 个 K/V 头），不是轮流（h % n_kv）。",
                wrong=lambda h, n, kv: h % kv),
    )
    return judge("kv_head", fn, cases, mistakes, solution=solution, same=lambda a, b: as_int(a) == b)


_SENTENCE = "The apple is green. What color is the apple?"


@functools.lru_cache(maxsize=4)
def _hand(model):
    """Chapter 10's layer (a sixth of the way up), computed by hand as Chapter 9 checked against the model."""
    from ..attention import attention_by_hand

    return attention_by_hand(model, _SENTENCE, model.n_layers // 6)


@functools.lru_cache(maxsize=4)
def _model_weights(model, layer: int) -> torch.Tensor:
    """The model's own attention weights of one layer (output_attentions), [H, T, T]."""
    from ..dissect import attention_weights

    return attention_weights(model, _SENTENCE).weights[layer].float()


# --- Exercise 10.2: one head's share of W_O -------------------------------------------------------
def _share(head_out, W_o, head, *, cols=None):
    hd = head_out.shape[-1]
    cols = slice(head * hd, (head + 1) * hd) if cols is None else cols
    return head_out @ W_o[:, cols].T


def check_head_share(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 10: ``fn(head_out, W_o, head)`` is what head ``head`` writes into the residual stream: its output
    [T, hd] times its own slice of W_O [d, H*hd] (columns head*hd to (head+1)*hd), a tensor [T, d]."""
    from ..attention import attention_projection

    cases = []
    for m in default_models():
        h = _hand(m)
        W_o = attention_projection(m, h.layer, "o").detach().float()  # [d, H*hd]
        for head in range(h.n_heads):
            cases.append(Case((h.heads[head], W_o, head), f"{m.name}, layer {h.layer}, head {head}",
                              f"{m.name} 第 {h.layer} 层的第 {head} 个头", _share(h.heads[head], W_o, head)))
    mistakes = (
        Mistake("a head's slice is a block of consecutive columns, W_o[:, head*hd:(head+1)*hd], not every H-th column.",
                "一个头的切片是一段连续的列 W_o[:, head*hd:(head+1)*hd]，不是每隔 H 列取一列。",
                matches=lambda got, x, W, head: close(got, _share(x, W, head, cols=slice(head, None, W.shape[1] // x.shape[-1])),
                                                      atol=1e-4, rtol=1e-3)),
        Mistake("you sliced rows of W_o; W_o is [d, H*hd] (out, in), so a head's slice is columns, transposed.",
                "你切的是 W_o 的行；W_o 的形状是 [d, H*hd]（输出, 输入），一个头的切片是若干列，再转置。",
                matches=lambda got, x, W, head: close(got, x @ W[head * x.shape[-1]:(head + 1) * x.shape[-1]],
                                                      atol=1e-4, rtol=1e-3)),
        Mistake("you took the slice of the K/V head; W_O has one slice per query head (H of them), so use head itself.",
                "你取的是 K/V 头的切片；W_O 每个查询头各有一段（共 H 段），直接用 head。",
                matches=lambda got, x, W, head: close(got, _share(x, W, _kv_of(W, x, head)), atol=1e-4, rtol=1e-3)),
    )
    return judge("head_share", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-3))


def _kv_of(W_o, head_out, head: int) -> int:
    """The K/V head of ``head`` on the default model whose W_O this is."""
    for m in default_models():
        if m.n_heads * m.head_dim == W_o.shape[1] and m.d_model == W_o.shape[0]:
            return head // (m.n_heads // m.n_kv_heads)
    raise ValueError("not a default model's W_O")


# --- Exercise 10.3: every head of a layer at once, with shared keys --------------------------------
def _all_weights(q, k, scale, *, tile=False, mask=True, scaled=True):
    group = q.shape[0] // k.shape[0]
    k = k.repeat(group, 1, 1) if tile else k.repeat_interleave(group, dim=0)  # [H, T, hd]
    s = q @ k.transpose(-1, -2) * (scale if scaled else 1.0)
    if mask:
        s = s.masked_fill(torch.ones_like(s[0], dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1)


def check_gqa_weights(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 10: ``fn(q, k, scale)`` is the attention weights [H, T, T] of every head of a layer from the queries
    [H, T, hd] and the fewer keys [H_kv, T, hd] (after RoPE), compared with the model's own (output_attentions)."""
    cases = []
    for m in default_models():
        h = _hand(m)
        if h.window is not None and h.window < h.q.shape[1]:  # a sliding window that bites: not this exercise
            continue
        cases.append(Case((h.q_rot, h.k_rot, h.scale), f"{m.name}, layer {h.layer}", f"{m.name} 的第 {h.layer} 层",
                          _model_weights(m, h.layer)))
    mistakes = (
        Mistake("your query heads read the K/V heads in turn (k.repeat): consecutive query heads share one K/V head, "
                "so repeat each K/V head in place (repeat_interleave).",
                "你的查询头是轮流读 K/V 头的（k.repeat）：相邻的查询头共用一个 K/V 头，所以要把每个 K/V 头就地重复"
                "（repeat_interleave）。",
                wrong=lambda q, k, s: _all_weights(q, k, s, tile=True)),
        Mistake("a token looks at later tokens: apply the causal mask before the softmax.",
                "词元看到了后面的词元：在 softmax 之前加上因果遮罩。",
                wrong=lambda q, k, s: _all_weights(q, k, s, mask=False)),
        Mistake("multiply the scores by scale before the softmax.",
                "在 softmax 之前要把分数乘以 scale。",
                wrong=lambda q, k, s: _all_weights(q, k, s, scaled=False)),
    )
    return judge("gqa_weights", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-3))
