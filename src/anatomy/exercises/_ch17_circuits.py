"""Chapter 17's exercises: the logit difference, one layer of activation patching, the recovered fraction."""

from __future__ import annotations

import functools

import torch

from ._judge import Case, Mistake, Verdict, close, default_models, judge, prompt_scores

# the chapter's first pair: the same number of tokens in both default models
_CLEAN, _CORRUPTED = "The Eiffel Tower is in the city of", "The Colosseum is in the city of"
_ANSWERS = (" Paris", " Rome")


@functools.lru_cache(maxsize=4)
def _pair(model):
    """(clean, corrupted, clean_id, corrupted_id, last subject position, number of tokens), or None when the two
    prompts do not line up for this model's tokenizer (the checker then uses the models where they do)."""
    from .. import run
    from ..tokens import answer_id

    a, b = (run.batch(model, [p]).ids[0].tolist() for p in (_CLEAN, _CORRUPTED))
    if len(a) != len(b):
        return None
    subject = max(i for i in range(len(a)) if a[i] != b[i])
    return _CLEAN, _CORRUPTED, answer_id(model, _ANSWERS[0]), answer_id(model, _ANSWERS[1]), subject, len(a)


def _paired_models():
    return [(m, _pair(m)) for m in default_models() if _pair(m) is not None]


@functools.lru_cache(maxsize=16)
def _patched(model, layers: tuple, position: int, direction: str = "denoise"):
    """The library's patching of the layer outputs ``layers`` at ``position`` (group "subject") and at the last
    position (group "last"), one way: clean into corrupted ("denoise") or corrupted into clean ("noise").
    When ``position`` is the last one, only the group "last" is run (the same runs)."""
    from ..circuits import FactPair, component_patching

    clean, corrupted, a, b, _, n = _pair(model)
    pair = FactPair("city", clean, corrupted, _ANSWERS, (a, b), (position,), n, "test")
    groups = ("last",) if position == n - 1 else ("subject", "last")
    return component_patching(model, [pair], layers=layers, positions=groups, kinds=("layer",),
                              directions=(direction,))


def _cell(r, layer: int, group: str = "subject", direction: str = "denoise") -> float:
    """One logit difference of a ComponentPatching of one pair: layer ``layer``'s output patched at ``group``."""
    x = r.denoised if direction == "denoise" else r.noised
    return float(x[0, 0, layer, r.positions.index(group if group in r.positions else "last")])


@functools.lru_cache(maxsize=8)
def _difference(model, prompt: str, a: int, b: int) -> float:
    """The library's logit difference (kept: the stub's cell and the solution's ask for the same cases)."""
    from ..circuits import logit_difference

    return logit_difference(model, prompt, a, b)


# --- 17.1 the logit difference ----------------------------------------------------------------------------
def check_logit_difference(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 17: ``fn(model, prompt, clean_id, corrupted_id)`` returns logit(clean answer) − logit(corrupted answer)
    at the last position of ``prompt`` (a float)."""
    cases = []
    for m, (clean, corrupted, a, b, _, _) in _paired_models():
        for p in (clean, corrupted):
            cases.append(Case((m, p, a, b), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", _difference(m, p, a, b)))
    mistakes = (
        Mistake("the sign is the other way round: it is logit(clean answer) − logit(corrupted answer).",
                "符号反了：应该是 logit(干净答案) − logit(被破坏的答案)。",
                wrong=lambda m, p, a, b: -_difference(m, p, a, b)),
        Mistake("you read the first position; the answer is predicted at the last one ([-1]).",
                "你读的是第一个位置；答案是在最后一个位置（[-1]）预测的。",
                wrong=lambda m, p, a, b: float(prompt_scores(m, p)[0, a] - prompt_scores(m, p)[0, b])),
        Mistake("you subtracted probabilities; the logit difference subtracts the scores (logits) themselves.",
                "你减的是概率；logit 差是分数（logits）本身相减。",
                wrong=lambda m, p, a, b: float(prompt_scores(m, p)[-1].softmax(-1)[a] - prompt_scores(m, p)[-1].softmax(-1)[b])),
    )
    return judge("logit_difference", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))


# --- 17.2 one layer of activation patching ----------------------------------------------------------------
def check_patch_one(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 17: ``fn(model, clean, corrupted, layer, position, clean_id, corrupted_id)`` runs the corrupted prompt
    with the output of layer ``layer`` at ``position`` taken from the clean run and returns the logit difference."""
    cases = []  # one case per model (each costs the reader's two runs): a subject position, then the last position
    for i, (m, (clean, corrupted, a, b, subject, n)) in enumerate(_paired_models()):
        layer, position = (m.n_layers // 3, subject) if i % 2 == 0 else (2 * m.n_layers // 3, n - 1)
        r = _patched(m, (layer - 1, layer), position)
        cases.append(Case((m, clean, corrupted, layer, position, a, b),
                          f"{m.name}, layer {layer}, position {position}", f"{m.name} 的第 {layer} 层、位置 {position}",
                          _cell(r, layer)))

    def run_of(m, layer, position, direction="denoise"):
        return _patched(m, (layer - 1, layer), position, direction)

    mistakes = (
        Mistake("you patched every position: from that layer on the corrupted run becomes the clean run. Write the "
                "clean vector at `position` only.",
                "你修补了所有位置：从那一层起，被破坏的运行就变成了干净运行。只在 `position` 上写入干净的向量。",
                matches=lambda got, m, c, k, layer, pos, a, b: close(got, float(run_of(m, layer, pos).clean[0]), atol=1e-3)),
        Mistake("one layer off: you patched the input of the layer (hidden_states[layer]); its output is "
                "hidden_states[layer + 1], the output of model.layers[layer].",
                "差了一层：你修补的是这一层的输入（hidden_states[layer]）；它的输出是 hidden_states[layer + 1]，"
                "即 model.layers[layer] 的输出。",
                wrong=lambda m, c, k, layer, pos, a, b: _cell(run_of(m, layer, pos), layer - 1)),
        Mistake("you patched the last position; patch the position you are given.",
                "你修补的是最后一个位置；要修补给定的那个位置。",
                wrong=lambda m, c, k, layer, pos, a, b: _cell(run_of(m, layer, pos), layer, "last")),
        Mistake("you went the other way (noising): run the corrupted prompt and write the clean run's vector into it.",
                "你做反了（加噪）：要运行被破坏的提示词，再把干净运行的向量写进去。",
                wrong=lambda m, c, k, layer, pos, a, b: _cell(run_of(m, layer, pos, "noise"), layer, direction="noise")),
    )
    return judge("patch_one", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=2e-3, rtol=1e-3))


# --- 17.3 the recovered fraction, layer by layer ----------------------------------------------------------
def check_recovered(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 17: ``fn(model, clean, corrupted, layers, clean_id, corrupted_id)`` returns, for each layer of ``layers``,
    the share of the clean lead that patching that layer's output at the last position brings back:
    (patched − corrupted) / (clean − corrupted), a tensor [len(layers)]."""

    def run_of(m, layers):
        return _patched(m, tuple(sorted({*layers, *(l - 1 for l in layers)})), _pair(m)[-1] - 1)

    def share(m, layers, shift=0):
        r = run_of(m, layers)
        d = torch.tensor([_cell(r, l - shift, "last") for l in layers])
        return (d - r.corrupted[0]) / (r.clean[0] - r.corrupted[0])

    cases = []  # the reader's function runs the model 2 + 2 per layer times: three layers on one model, one on the other
    for i, (m, (clean, corrupted, a, b, _, _)) in enumerate(_paired_models()):
        layers = [1, m.n_layers // 2, m.n_layers - 1] if i % 2 == 0 else [m.n_layers // 2]
        cases.append(Case((m, clean, corrupted, layers, a, b), f"{m.name}, layers {layers}", f"{m.name} 的第 {layers} 层",
                          share(m, layers)))
    mistakes = (
        Mistake("you returned the share still missing, (clean − patched) / (clean − corrupted); the recovered share "
                "is (patched − corrupted) / (clean − corrupted).",
                "你返回的是还缺的那部分，(clean − patched) / (clean − corrupted)；找回的比例是 "
                "(patched − corrupted) / (clean − corrupted)。",
                wrong=lambda m, c, k, layers, a, b: 1 - share(m, layers)),
        Mistake("you returned the logit differences themselves; normalise: (patched − corrupted) / (clean − corrupted).",
                "你返回的是 logit 差本身；要归一化：(patched − corrupted) / (clean − corrupted)。",
                wrong=lambda m, c, k, layers, a, b: torch.tensor([_cell(run_of(m, layers), l, "last") for l in layers])),
        Mistake("one layer off: you patched each layer's input (hidden_states[layer]); its output is "
                "hidden_states[layer + 1].",
                "差了一层：你修补的是每一层的输入（hidden_states[layer]）；它的输出是 hidden_states[layer + 1]。",
                wrong=lambda m, c, k, layers, a, b: share(m, layers, shift=1)),
    )
    return judge("recovered", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=2e-3, rtol=1e-2))
