"""Chapter 13's exercises: the parameters by role, the attention sink and the head search, by hand."""

from __future__ import annotations

import functools

import torch

from ._judge import Case, Mistake, Verdict, close, default_models, judge, seeded_generator

_ROLES = ("embedding table", "attention", "feed-forward", "norms")
_PROMPT = "the apple is green. what color is the apple?"
_SINK_PROMPTS = (_PROMPT,)


@functools.lru_cache(maxsize=8)
def _attention(model, prompt: str):
    from ..dissect import attention_weights

    return attention_weights(model, prompt)  # one eager pass, kept: several checkers read it


def _random_attention(seed: int, shape=(2, 3, 6, 6)) -> torch.Tensor:
    """Causal attention weights of random scores, [L, H, T, T]: each row sums to 1, nothing above the diagonal."""
    s = torch.randn(*shape, generator=seeded_generator(seed))
    s = s.masked_fill(torch.ones(shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1)


def _int_dict(got) -> dict:
    return {k: int(v) for k, v in got.items()}


def check_parameters_by_role(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 13: ``fn(model)`` is a dict {"embedding table", "attention", "feed-forward", "norms": count} of the
    model's parameters (numbers, not tensors), each counted once, as anatomy.parameter_breakdown counts them."""
    from ..dissect import parameter_breakdown

    cases = []
    for m in default_models():
        totals = parameter_breakdown(m).totals
        cases.append(Case((m,), m.name, m.name, {r: totals[r] for r in _ROLES}))

    def _same(got, expected):
        try:
            return set(got) == set(expected) and _int_dict(got) == expected
        except (TypeError, ValueError, AttributeError):
            return False

    mistakes = (
        Mistake("you counted tensors, not numbers: add p.numel() for each parameter, not 1.",
                "你数的是张量的个数，不是数的个数：每个参数要加上 p.numel()，而不是 1。",
                matches=lambda got, m: max(_int_dict(got).values()) < 10_000),
        Mistake("the tied LM head is counted twice: it is the embedding table, which named_parameters() lists once "
                "(state_dict() lists it under two names).",
                "绑定的 LM Head 被数了两次：它就是嵌入表，named_parameters() 只列一次（state_dict() 用两个名字列了两次）。",
                matches=lambda got, m: int(got["embedding table"]) == 2 * m.embedding_table.numel()),
        Mistake("norms inside attention (q_norm and k_norm, in some families) went to attention: a norm counts as a norm "
                "wherever it sits — test for \"norm\" in the name first.",
                "注意力内部的归一化（有些模型族里的 q_norm 和 k_norm）被算进了注意力：归一化不论在哪里都算归一化——先检查名字里有没有 \"norm\"。",
                matches=lambda got, m: (lambda g, e: g["attention"] > e["attention"] and g["norms"] < e["norms"]
                                        and g["attention"] - e["attention"] == e["norms"] - g["norms"])(
                    _int_dict(got), {r: parameter_breakdown(m).totals[r] for r in _ROLES})),
    )
    return judge("parameters_by_role", fn, cases, mistakes, solution=solution, same=_same)


def _sink(w: torch.Tensor) -> torch.Tensor:
    return w[:, :, 1:, 0].mean(-1)


def check_sink_share(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 13: ``fn(weights)`` takes attention weights [L, H, T, T] (row = the token that attends) and returns,
    per layer and head, the mean weight that positions 1..T-1 give to position 0, [L, H] (as anatomy.sink_share)."""
    from ..dissect import sink_share

    cases = [Case((_random_attention(4),), "random causal attention weights of shape [2, 3, 6, 6]",
                  "形状为 [2, 3, 6, 6] 的随机因果注意力权重", _sink(_random_attention(4)))]
    for m in default_models():
        for p in _SINK_PROMPTS:
            att = _attention(m, p)
            cases.append(Case((att.weights,), f"{m.name}, “{p}”", f"{m.name} 的“{p}”", sink_share(att)))
    mistakes = (
        Mistake("position 0's own row is averaged in: it can only attend to itself (always 1), so average over "
                "positions 1..T-1 only.",
                "把位置 0 自己那一行也平均进去了：它只能关注自己（总是 1），所以只对位置 1 到 T-1 求平均。",
                wrong=lambda w: w[:, :, :, 0].mean(-1)),
        Mistake("you read row 0 (what position 0 attends to) instead of column 0 (what every later token gives "
                "position 0): weights[l, h, i, j] is from token i to token j.",
                "你读的是第 0 行（位置 0 关注什么），而不是第 0 列（后面每个词元给位置 0 多少）：weights[l, h, i, j] 是从词元 i 到词元 j。",
                matches=lambda got, w: close(got, w[:, :, 0, 1:].mean(-1)) or close(got, w[:, :, 0, :].mean(-1))),
        Mistake("you added the weights up instead of averaging them over the positions 1..T-1.",
                "你把权重加起来了，而应该在位置 1 到 T-1 上求平均。",
                matches=lambda got, w: close(got, w[:, :, 1:, 0].sum(-1)) or close(got, w[:, :, :, 0].sum(-1))),
    )
    return judge("sink_share", fn, cases, mistakes, solution=solution)


def _top_heads(w: torch.Tensor, source: int, target: int, k: int, *, n_div: int | None = None,
               largest: bool = True, transpose: bool = False) -> list[tuple[int, int]]:
    scores = w[:, :, target, source] if transpose else w[:, :, source, target]  # [L, H]
    flat = scores.flatten().topk(k, largest=largest).indices
    n = n_div or w.shape[1]
    return [(int(f) // n, int(f) % n) for f in flat]


def check_find_heads(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 13: ``fn(weights, source, target, k)`` returns the k (layer, head) pairs whose weight from position
    ``source`` to position ``target`` is largest, largest first (as anatomy.find_heads(...).top)."""
    from ..dissect import find_heads

    cases = []
    for m in default_models():
        att = _attention(m, _PROMPT)
        for src, tgt in ((att.position("apple", occurrence=1), att.position("green")),
                         (att.position("color"), att.position("green"))):
            expected = [(layer, head) for layer, head, _ in find_heads(att, src, tgt, k=5).top]
            cases.append(Case((att.weights, src, tgt, 5), f"{m.name}, “{att.labels[src]}” → “{att.labels[tgt]}”",
                              f"{m.name} 的“{att.labels[src]}” → “{att.labels[tgt]}”", expected))

    def _pairs(got):
        return [(int(a), int(b)) for a, b in got]

    def _same(got, expected):
        try:
            return _pairs(got) == expected
        except (TypeError, ValueError):
            return False

    mistakes = (
        Mistake("layer and head are decoded with the wrong number: a flat index f over [L, H] is layer f // H "
                "and head f % H (H heads per layer).",
                "层和头用错了除数：[L, H] 上的扁平下标 f 对应第 f // H 层、第 f % H 个头（每层 H 个头）。",
                matches=lambda got, w, s, t, k: _pairs(got) == _top_heads(w, s, t, k, n_div=w.shape[0])),
        Mistake("you returned the smallest weights: the heads come largest weight first.",
                "你返回的是权重最小的头：要按权重从大到小排。",
                matches=lambda got, w, s, t, k: _pairs(got) == _top_heads(w, s, t, k, largest=False)),
        Mistake("source and target are swapped: weights[l, h, source, target] is the weight from source (the row) "
                "to target (the column); the other way round is 0 under the causal mask.",
                "source 和 target 弄反了：weights[l, h, source, target] 是从 source（行）到 target（列）的权重；"
                "反过来在因果遮罩下是 0。",
                matches=lambda got, w, s, t, k: all(float(w[a, b, t, s]) == 0 for a, b in _pairs(got))
                and sum(float(w[a, b, s, t]) for a, b in _pairs(got)) < 0.5 * sum(
                    float(w[a, b, s, t]) for a, b in _top_heads(w, s, t, k))),
    )
    return judge("find_heads", fn, cases, mistakes, solution=solution, same=_same)
