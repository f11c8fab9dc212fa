"""Chapter 9's exercises: one head's attention weights."""

from __future__ import annotations

import functools
import math

import torch

from .. import run

from ._judge import Case, Mistake, Verdict, close, default_models, judge, seeded_generator


def _weights(q, k, mask=True, scale=True, dim=-1):
    scores = q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=dim)


def check_causal_attention(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 9: ``fn(q, k)`` returns one head's attention weights [T, T] from queries and keys [T, d]:
    scaled dot products, causal mask, softmax over the keys (each row sums to 1)."""
    g = seeded_generator(2)
    cases = [Case((q, k), f"random q and k of shape {tuple(q.shape)}", f"形状为 {tuple(q.shape)} 的随机 q 和 k", _weights(q, k))
             for t, d in ((5, 8), (7, 16)) for q, k in [(torch.randn(t, d, generator=g), torch.randn(t, d, generator=g))]]
    mistakes = (
        Mistake("a token looks at later tokens: apply the causal mask (scores above the diagonal to -inf) before the softmax.",
                "词元看到了后面的词元：在 softmax 之前加上因果遮罩（对角线以上的分数设为 -inf）。",
                wrong=lambda q, k: _weights(q, k, mask=False)),
        Mistake("divide the scores by √d (the size of a query) before the softmax.",
                "在 softmax 之前要把分数除以 √d（查询向量的长度）。",
                wrong=lambda q, k: _weights(q, k, scale=False)),
        Mistake("the softmax runs over the wrong axis: each query's row (over the keys, the last axis) must sum to 1.",
                "softmax 沿错了轴：每个查询那一行（沿键，即最后一个轴）的和应为 1。",
                wrong=lambda q, k: _weights(q, k, dim=0)),
        Mistake("your mask hides the earlier tokens instead of the later ones (tril where triu is meant).",
                "你的遮罩挡住的是前面的词元，而不是后面的（该用 triu 的地方用了 tril）。",
                wrong=lambda q, k: torch.softmax((q @ k.T / math.sqrt(q.shape[-1])).masked_fill(
                    torch.ones(q.shape[0], q.shape[0], dtype=torch.bool).tril(-1), float("-inf")), dim=-1)),
    )
    return judge("causal_attention", fn, cases, mistakes, solution=solution)


# --- Exercise 9.2: RoPE on a real query and key ---------------------------------------------------
_PROMPT = "Two green apples and a red one"


@functools.lru_cache(maxsize=8)
def _hand(model, layer: int):
    """The chapter's attention by hand (checked against the model in Chapter 9), kept: checkers ask several times."""
    from ..attention import attention_by_hand

    return attention_by_hand(model, _PROMPT, layer)


def _rope(x, positions, theta, *, interleaved=False, sign=1.0, shift=0):
    """RoPE as the models do it (pairs i and i + hd/2), or a typical mistake of it."""
    angle = (positions.float() + shift)[:, None] * theta.float()[None, :]  # [T, hd/2]
    cos, sin = torch.cos(angle), sign * torch.sin(angle)
    if interleaved:  # pairs (2i, 2i + 1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    half = theta.shape[-1]
    x1, x2 = x[..., :half], x[..., half:2 * half]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, x[..., 2 * half:]), dim=-1)


def check_rope(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 9: ``fn(x, positions, theta)`` turns the vectors x [T, hd] (a head's queries or keys before RoPE)
    as RoPE does at the given positions [T]: pair i is dimensions i and i + hd/2, turned by position × theta[i]."""
    from ..attention import rotary

    cases = []
    for m in default_models():
        layer = m.arch.global_layers[0] if m.arch.local_layers and m.arch.global_layers else 0  # Gemma: a global base
        h = _hand(m, layer)
        if h.cos.shape[-1] * 2 == m.head_dim:  # RoPE on the whole head (not GPT-2's none, not partial)
            theta = rotary(m, layer, 2).theta
            positions = torch.arange(h.q.shape[1])
            cases.append(Case((h.q[0], positions, theta), f"{m.name}, the queries of head 0 at layer {layer}",
                              f"{m.name} 第 {layer} 层第 0 个头的查询", h.q_rot[0]))
            cases.append(Case((h.k[0], positions, theta), f"{m.name}, the keys of K/V head 0 at layer {layer}",
                              f"{m.name} 第 {layer} 层第 0 个 K/V 头的键", h.k_rot[0]))
    g = seeded_generator(9)
    x, theta = torch.randn(4, 8, generator=g), 100.0 ** (-torch.arange(4) / 4)
    positions = torch.tensor([5, 6, 7, 30])
    cases.append(Case((x, positions, theta), "random vectors at positions 5, 6, 7, 30", "位置 5、6、7、30 上的随机向量",
                      _rope(x, positions, theta)))
    mistakes = (
        Mistake("you paired neighbouring dimensions (2i, 2i + 1); these models pair dimension i with i + hd/2 "
                "(the first half with the second half).",
                "你把相邻的维度 (2i, 2i + 1) 配成了一对；这两个模型是把第 i 维和第 i + hd/2 维配成一对（前一半配后一半）。",
                wrong=lambda x, p, t: _rope(x, p, t, interleaved=True)),
        Mistake("you turned the pairs the wrong way (the sign of the sine): the first coordinate becomes "
                "x1·cos − x2·sin, the second x1·sin + x2·cos.",
                "你转反了方向（正弦的符号）：第一个坐标应是 x1·cos − x2·sin，第二个是 x1·sin + x2·cos。",
                wrong=lambda x, p, t: _rope(x, p, t, sign=-1.0)),
        Mistake("one position off: the first token is at position 0, so use the positions as given, not position + 1.",
                "差了一个位置：第一个词元在位置 0，直接用给定的位置，不要加 1。",
                wrong=lambda x, p, t: _rope(x, p, t, shift=1)),
        Mistake("you returned the vectors unturned: turn pair i by the angle position × theta[i].",
                "你返回的向量没有转动：第 i 对要转过角度 位置 × theta[i]。",
                matches=lambda got, x, p, t: close(got, x)),
    )
    return judge("rope", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))


# --- Exercise 9.3: the residual stream after attention --------------------------------------------
@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _around_attention(model, layer: int):
    """The layer's input x, its attention output and the residual stream after attention, all read from the model."""
    from .. import hooks

    b = run.batch(model, [_PROMPT])
    places = (f"layers.{layer}.attn", f"layers.{layer}.resid_mid")
    with hooks.capture(model, *places) as seen:
        out = run.forward(model, b, hidden_states=True)
    return out.hidden_states[layer][0].float(), seen[places[0]][0].float(), seen[places[1]][0].float()


def _module(model, layer, name):
    return getattr(model.layers[layer], name)


def check_after_attention(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 9: ``fn(model, layer, x, attn_out)`` is the residual stream after the attention sub-layer of layer
    ``layer``: x + attn_out, where a family with a norm after attention (Gemma) normalizes attn_out first."""
    cases = []
    for m in default_models():
        if m.arch.blocks[0].parallel:  # no stream between the sub-layers
            continue
        layer = m.n_layers // 2
        x, attn_out, mid = _around_attention(m, layer)
        cases.append(Case((m, layer, x, attn_out), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层", mid))
    mistakes = (
        Mistake("this family normalizes the attention output before adding it (post_attn_norm in "
                "model.arch.blocks[layer]); apply that norm to attn_out first.",
                "这个家族在把注意力输出加回去之前先做归一化（model.arch.blocks[layer] 里的 post_attn_norm）；"
                "先对 attn_out 用这个归一化。",
                wrong=lambda m, layer, x, a: x + a),
        Mistake("you applied the norm in front of the FFN (model.arch.blocks[layer].ffn_norm; in some families its "
                "module is named post_attention_layernorm, despite what it does): the attention output is added as it is.",
                "你用了前馈网络前面的归一化（model.arch.blocks[layer].ffn_norm；有些模型族里它的模块叫 "
                "post_attention_layernorm，名不副实）：注意力输出原样加回去。",
                wrong=lambda m, layer, x, a: x + _module(m, layer, m.arch.blocks[layer].ffn_norm.path)(a)),
        Mistake("you forgot the residual connection: add the layer's input x to the (normalized) attention output.",
                "你忘了残差连接：要把层的输入 x 加到（归一化后的）注意力输出上。",
                matches=lambda got, m, layer, x, a: isinstance(got, torch.Tensor) and got.shape == x.shape
                and close(got + x, _around_attention(m, layer)[2], atol=1e-3, rtol=1e-3)),
    )
    return judge("after_attention", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))
