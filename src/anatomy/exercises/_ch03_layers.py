"""Chapter 3's exercises: RMSNorm, as each family writes it; what a changed word reaches; the normalized similarity."""

from __future__ import annotations

import functools

import torch

from .. import hidden
from ._judge import Case, Mistake, Verdict, default_models, judge, seeded_generator


def _rms(x, w, eps, one_plus):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if one_plus else w)


def check_rms_norm(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 3: ``fn(x, weight, eps, one_plus)`` is RMSNorm over the last axis; with ``one_plus`` (Gemma) the gain is ``1 + weight``.

    The right answer is what the model's own first norm module computes on the same vectors."""
    cases = []
    for m in default_models():
        spec = m.arch.blocks[0].attn_norm
        module = m.layers[0].get_submodule(spec.path)
        x = torch.randn(3, m.d_model, generator=seeded_generator(0)) * 4
        with torch.no_grad():
            expected = module(x.to(m.dtype)).float()
        cases.append(Case((x, module.weight.detach().float().clone(), spec.eps, spec.kind == "rms_1p"),
                          f"{m.name}'s first norm", f"{m.name} 的第一个归一化层", expected))
    mistakes = (
        Mistake("you multiplied by w; with one_plus the gain is stored as w and the norm multiplies by (1 + w).",
                "你乘的是 w；one_plus 为真时，增益存成 w，归一化实际乘的是 (1 + w)。",
                wrong=lambda x, w, eps, op: _rms(x, w, eps, False)),
        Mistake("you subtracted the mean (that is LayerNorm); RMSNorm only divides by the root mean square.",
                "你减去了均值（那是 LayerNorm）；RMSNorm 只除以均方根。",
                wrong=lambda x, w, eps, op: _rms(x - x.mean(-1, keepdim=True), w, eps, op)),
        Mistake("you divided by the vector's length; RMSNorm divides by the root of the mean square (length / √d).",
                "你除以的是向量的长度；RMSNorm 除以的是平方的平均值的平方根（长度 / √d）。",
                wrong=lambda x, w, eps, op: x / x.norm(dim=-1, keepdim=True) * ((1 + w) if op else w)),
    )
    return judge("rms_norm", fn, cases, mistakes, solution=solution)


@functools.lru_cache(maxsize=16)
@torch.no_grad()
def _states(model, prompt: str):
    """Every stage's vectors of the prompt, raw, [L + 1, T, d], as anatomy.hidden_states keeps them."""
    return hidden.hidden_states(model, prompt).states.float()


_CAT = ("The cat sat on the mat", "The dog sat on the mat")


def _gaps(model, a: str, b: str, stage: int, signed: bool = False, normed: bool = False) -> torch.Tensor:
    x, y = _states(model, a)[stage], _states(model, b)[stage]
    if normed:
        with torch.no_grad():
            x, y = model.final_norm(x.to(model.dtype)).float(), model.final_norm(y.to(model.dtype)).float()
    return (x - y).max(-1).values if signed else (x - y).abs().max(-1).values


def check_position_differences(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 3: ``fn(model, prompt_a, prompt_b, layer)`` returns, for every position, the largest |difference|
    between the two prompts' vectors at the output of layer ``layer`` (raw, before any final norm), shape [T].

    The right answer comes from ``anatomy.hidden_states``, as in the chapter."""
    cases = []
    for m in default_models():
        for layer in (0, m.n_layers - 1):
            cases.append(Case((m, *_CAT, layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层",
                              _gaps(m, *_CAT, layer + 1)))
    mistakes = (
        Mistake("you read one stage too early (the input of the layer, entry ℓ of output_hidden_states); "
                "the output of layer ℓ is entry ℓ + 1.",
                "你读早了一级（这一层的输入，即 output_hidden_states 的第 ℓ 项）；第 ℓ 层的输出是第 ℓ + 1 项。",
                wrong=lambda m, a, b, layer: _gaps(m, a, b, layer)),
        Mistake("at the last layer you compared vectors after the final norm (transformers' last entry); "
                "take the layer's raw output, e.g. anatomy.hidden_states(...).layer(ℓ).",
                "在最后一层，你比较的是经过最终归一化的向量（transformers 的最后一项）；"
                "要用这一层的原始输出，比如 anatomy.hidden_states(...).layer(ℓ)。",
                wrong=lambda m, a, b, layer: _gaps(m, a, b, layer + 1, normed=True)),
        Mistake("you took the largest signed difference; take the absolute value first, |a − b|, then the largest.",
                "你取的是带符号的差里最大的；要先取绝对值 |a − b|，再取最大。",
                wrong=lambda m, a, b, layer: _gaps(m, a, b, layer + 1, signed=True)),
    )
    return judge("position_differences", fn, cases, mistakes, solution=solution)


def _normalized(a, b, states, diagonal: bool = False, how: str = "rescale", unit: bool = True) -> float:
    rows = torch.nn.functional.normalize(states, dim=-1) if unit else states
    sims = rows @ rows.T  # [N, N]
    n = sims.shape[0]
    base = sims.mean() if diagonal else sims[~torch.eye(n, dtype=torch.bool)].mean()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
    if how == "divide":
        return float(cos / base)
    if how == "subtract":
        return float(cos - base)
    return float((cos - base) / (1 - base))


_APPLES = ("I ate an apple for breakfast.", "The company that makes the iPhone and the iPad is apple.")


def check_normalized_similarity(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 3: ``fn(a, b, states)`` returns (cos(a, b) − baseline) / (1 − baseline), the baseline being the
    mean cosine over all pairs of different rows of ``states`` [N, d].

    The cases are the two senses of "apple" at a middle layer of each model (the first position of each
    sentence left out of ``states``, as in the chapter) and seeded random vectors with one huge dimension."""
    cases = []
    for m in default_models():
        word = m.tokenizer(" apple", add_special_tokens=False)["input_ids"]
        stage = m.n_layers // 2 + 1  # the output of the middle layer
        vectors, pooled = [], []
        for s in _APPLES:
            ids = m.tokenizer(s)["input_ids"]
            if len(word) != 1 or word[0] not in ids:
                break
            h = _states(m, s)[stage]  # [T, d]
            vectors.append(h[ids.index(word[0])])
            pooled.append(h[1:])
        if len(vectors) == 2:
            states = torch.cat(pooled)
            cases.append(Case((vectors[0], vectors[1], states), f"{m.name}'s two apples, output of layer {stage - 1}",
                              f"{m.name} 的两个 apple、第 {stage - 1} 层的输出", _normalized(vectors[0], vectors[1], states)))
    x = torch.randn(9, 16, generator=seeded_generator(3))
    x[:, 5] += 20  # one huge dimension, as in the chapter
    cases.append(Case((x[0], x[1], x[2:]), "random vectors with one huge dimension", "带一个巨大维度的随机向量",
                      _normalized(x[0], x[1], x[2:])))
    mistakes = (
        Mistake("your baseline includes every row paired with itself (cosine 1); average over pairs of different rows.",
                "你的基准把每一行和它自己配成的对（余弦为 1）也算进去了；只对不同的两行求平均。",
                wrong=lambda a, b, s: _normalized(a, b, s, diagonal=True)),
        Mistake("you divided by the baseline (the lecture's choice); the chapter's measure is "
                "(cos − baseline) / (1 − baseline).",
                "你除以了基准（课程的做法）；本章用的是 (cos − baseline) / (1 − baseline)。",
                wrong=lambda a, b, s: _normalized(a, b, s, how="divide")),
        Mistake("you only subtracted the baseline; divide by the room left, 1 − baseline, too.",
                "你只减去了基准；还要除以剩下的空间 1 − baseline。",
                wrong=lambda a, b, s: _normalized(a, b, s, how="subtract")),
        Mistake("your baseline averages dot products; scale every row to length 1 first, so it is a mean cosine.",
                "你的基准平均的是点积；先把每一行缩放到长度 1，它才是余弦的平均。",
                wrong=lambda a, b, s: _normalized(a, b, s, unit=False)),
    )
    return judge("normalized_similarity", fn, cases, mistakes, solution=solution)
