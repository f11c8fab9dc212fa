"""Chapter 8's exercises: the placeholder, a patched vector by hand, and where the identity template still repeats."""

from __future__ import annotations

import functools

import torch

from .. import run
from ._judge import Case, Mistake, Verdict, as_int, close, default_models, judge

_DESCRIBE = "Syria: Country in the Middle East, Leonardo DiCaprio: American actor, X"
_IDENTITY = "cat → cat; 1135 → 1135; hello → hello; ? →"
_TARGETS = (("The capital of X is", "X"), (_DESCRIBE, "X"), (_IDENTITY, "?"))


def check_placeholder_position(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 8: ``fn(model, prompt, placeholder)`` is the position (an int) of the one token of ``prompt`` that reads
    as ``placeholder``, spaces aside, among the tokens the model reads; equal to ``anatomy.placeholder_position``."""
    from ..patchscopes import placeholder_position

    cases = [Case((m, prompt, ph), f"{m.name}, “{prompt}”", f"{m.name}、“{prompt}”", placeholder_position(m, prompt, ph))
             for m in default_models() for prompt, ph in _TARGETS]
    mistakes = (
        Mistake("you counted characters; a position is a token's place in the prompt the model reads.",
                "你数的是字符；位置指的是模型读到的词元序列里的位置。",
                matches=lambda got, m, prompt, ph: as_int(got) == prompt.index(ph)),
        Mistake("one position too early: the model reads the prompt with its special start token (<bos>) in front; "
                "tokenize it as the model does, with special tokens.",
                "早了一个位置：模型读提示词时前面有特殊的开头词元（<bos>）；要像模型那样带着特殊词元分词。",
                matches=lambda got, m, prompt, ph: as_int(got) == placeholder_position(m, prompt, ph) - 1),
        Mistake("no token matched: a token's text carries its space (“ X”); compare the text with .strip().",
                "没有找到匹配的词元：词元的文字带着前面的空格（“ X”）；比较前先 .strip()。",
                matches=lambda got, m, prompt, ph: as_int(got) in (-1, None) or got is False),
    )
    return judge("placeholder_position", fn, cases, mistakes, solution=solution, same=lambda g, e: as_int(g) == e)


@torch.no_grad()
def _patched(model, source, target, layer, placeholder, *, source_stage_shift=0, at_last=False, source_position=-1,
             patch=True):
    """Next-token probabilities [V] at the target's last position, with the source's vector (the output of
    ``layer`` at ``source_position``) written over the placeholder's at the output of ``layer``."""
    from ..hooks import capture
    from ..patchscopes import patching, placeholder_position

    place = f"layers.{layer}" if source_stage_shift == 0 else f"layers.{layer + source_stage_shift}"
    b = run.batch(model, [source])
    with capture(model, place) as seen:
        run.forward(model, b)
    vector = seen[place][0, source_position].float()  # [d]
    t = run.batch(model, [target])
    position = t.ids.shape[1] - 1 if at_last else placeholder_position(model, target, placeholder)
    if not patch:
        logits = run.forward(model, t).logits[0, -1]
    else:
        with patching(model, layer, position, vector):
            logits = run.forward(model, t).logits[0, -1]
    return torch.softmax(logits.float(), dim=-1)


_SOURCE = "Diana, Princess of Wales"


@functools.lru_cache(maxsize=8)
def _right(model, layer):
    """The right answer of a case (kept: the checker is called again and again)."""
    return _patched(model, _SOURCE, _IDENTITY, layer, "?")


def check_patched_probs(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 8: ``fn(model, source_prompt, target_prompt, layer, placeholder)`` patches the vector that layer ``layer``
    outputs at the source's last token over the placeholder's vector at the output of the same layer in the target
    prompt, and returns the next-token probabilities [V] at the target's last position (the first step of
    ``anatomy.patchscope``)."""
    cases = []
    for m in default_models():
        for layer in (1, m.n_layers // 2):
            cases.append(Case((m, _SOURCE, _IDENTITY, layer, "?"), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层",
                              _right(m, layer).clone()))
    mistakes = (
        Mistake("one layer off: layer ℓ is the output of model.layers[ℓ] (hidden_states[ℓ + 1]), both for the source "
                "vector and for the patch.",
                "差了一层：第 ℓ 层指 model.layers[ℓ] 的输出（hidden_states[ℓ + 1]），取来源向量和补入时都是这样。",
                wrong=lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, source_stage_shift=-1)),
        Mistake("you patched the target's last position; the vector goes to the placeholder's position.",
                "你补到了目标提示词的最后一个位置；向量应该补到占位符的位置。",
                wrong=lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, at_last=True)),
        Mistake("you took the source vector at the first token; take it at the last one (␣Wales), which has read "
                "the whole name.",
                "你取的是来源提示词第一个词元的向量；要取最后一个（␣Wales），它读过了整个名字。",
                wrong=lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, source_position=0)),
        Mistake("nothing changed: run the target prompt inside the block that writes the vector in.",
                "什么都没变：目标提示词要在写入向量的那个 with 代码块里面运行。",
                wrong=lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, patch=False)),
    )
    return judge("patched_probs", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-2))


@functools.lru_cache(maxsize=8)
def _repeats(model, source: str, layers: tuple) -> tuple:
    from ..patchscopes import patchscope_sweep

    last = model.tokenizer.decode(run.batch(model, [source]).ids[0, -1:]).strip()
    scopes = patchscope_sweep(model, source, target_prompt=_IDENTITY, placeholder="?", layers=layers,
                              max_new_tokens=1)
    return tuple(s.source_layer for s in scopes if s.continuation.strip() == last)


def _layer_list(got):
    try:
        return sorted(int(x) for x in got)
    except (TypeError, ValueError):
        return None


def check_repeating_layers(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 8: ``fn(model, source_prompt, layers)`` is the list of those ``layers`` at which the identity template
    ("cat → cat; 1135 → 1135; hello → hello; ? →", placeholder "?"), with the source's last-token vector patched in,
    answers with the source's last token as its next token (texts compared without spaces)."""
    cases = []
    for m in default_models():
        layers = (1, m.n_layers // 3, 2 * m.n_layers // 3)
        for source in (_SOURCE, "Albert Einstein"):
            cases.append(Case((m, source, list(layers)), f"{m.name}, “{source}”, layers {list(layers)}",
                              f"{m.name}、“{source}”、第 {list(layers)} 层", list(_repeats(m, source, layers))))
    mistakes = (
        Mistake("these are the layers where the model does not repeat the source token; return those where it does.",
                "这些是模型没有复读来源词元的层；要返回它复读了的那些层。",
                matches=lambda got, m, s, layers: _layer_list(got) == sorted(set(layers) - set(_repeats(m, s, tuple(layers))))),
        Mistake("no layer counted: compare the first new token with the source's last token (e.g. “Wales”), not "
                "with the whole source prompt, and strip the spaces.",
                "一层都没算上：要拿第一个新词元和来源提示词的最后一个词元（例如“Wales”）比较，而不是和整个来源提示词比较，"
                "并去掉空格。",
                matches=lambda got, m, s, layers: _layer_list(got) == []),
    )
    return judge("repeating_layers", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: _layer_list(g) == sorted(e))
