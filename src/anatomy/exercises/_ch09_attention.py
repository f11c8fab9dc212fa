"""Chapter 9's exercises: one head's attention weights."""

from __future__ import annotations

import math

import torch

from ._judge import Case, Mistake, Verdict, _seeded, judge


def _weights(q, k, mask=True, scale=True, dim=-1):
    scores = q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=dim)


def check_causal_attention(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 9: ``fn(q, k)`` returns one head's attention weights [T, T] from queries and keys [T, d]:
    scaled dot products, causal mask, softmax over the keys (each row sums to 1)."""
    g = _seeded(2)
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
