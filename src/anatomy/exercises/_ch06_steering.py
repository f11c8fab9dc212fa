"""Chapter 6's exercises: a direction from two kinds of prompts."""

from __future__ import annotations

import functools

import torch

from .. import run
from ._judge import Case, Mistake, Verdict, close, default_models, judge, last_states_at

_HAPPY = ("I love this wonderful day.", "What a great and happy surprise!", "This is the best news ever.")
_SAD = ("I hate this terrible day.", "What an awful and sad surprise.", "This is the worst news ever.")


def _mean_state(model, prompts, stage):
    return last_states_at(model, prompts, stage).mean(0)


def check_difference_of_means(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 6: ``fn(model, prompts_a, prompts_b, layer)`` is the mean output of layer ``layer`` at the last token
    over prompts_a minus the same over prompts_b (a [d] vector)."""
    cases = []
    for m in default_models():
        layer = m.n_layers // 2
        expected = _mean_state(m, _HAPPY, layer + 1) - _mean_state(m, _SAD, layer + 1)
        cases.append(Case((m, list(_HAPPY), list(_SAD), layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层", expected))
    mistakes = (
        Mistake("your direction points the other way: A minus B, not B minus A.",
                "你的方向反了：应该是 A 减 B，而不是 B 减 A。",
                wrong=lambda m, a, b, layer: _mean_state(m, b, layer + 1) - _mean_state(m, a, layer + 1)),
        Mistake("one layer off: hidden_states[ℓ] is the input of layer ℓ; its output is hidden_states[ℓ + 1].",
                "差了一层：hidden_states[ℓ] 是第 ℓ 层的输入，它的输出是 hidden_states[ℓ + 1]。",
                wrong=lambda m, a, b, layer: _mean_state(m, a, layer) - _mean_state(m, b, layer)),
    )
    return judge("difference_of_means", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-3))


# --- 6.2 and 6.3: a steered run by hand, and the price of the push ---------------------------------

_ZH = ("今天天气很好，我们", "我最喜欢的食物是", "这本书讲的是")
_EN = ("The weather is nice today, we", "My favourite food is", "This book is about")


@functools.lru_cache(maxsize=8)
def _chinese_direction(model, layer):
    """mean(Chinese) - mean(English) at the output of ``layer``, last token (Chapter 6's direction, few prompts)."""
    from ..steering import direction

    return direction(model, list(_ZH), list(_EN), layer)


@torch.no_grad()
def _steered(model, prompt, place, vector, alpha, *, last_only=False):
    """Next-token probabilities [V] with alpha * vector added to what flows through ``place``."""
    from ..hooks import edit

    def add(h):  # h: [B, T, d]
        h = h.clone()
        if last_only:
            h[:, -1] = h[:, -1] + alpha * vector.to(h.dtype)
        else:
            h = h + alpha * vector.to(h.dtype)
        return h

    b = run.batch(model, [prompt])
    with edit(model, place, add):
        logits = run.forward(model, b).logits[0, -1]
    return torch.softmax(logits.float(), dim=-1)


@functools.lru_cache(maxsize=8)
def _right_steered(model, prompt, layer, alpha):
    """The right answer of a case (kept: the checker is called again and again)."""
    return _steered(model, prompt, f"layers.{layer}", _chinese_direction(model, layer), alpha)


def check_steered_probs(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 6: ``fn(model, prompt, layer, vector, alpha)`` is the next-token probabilities [V] at the prompt's last
    position with ``alpha * vector`` added to the output of layer ``layer`` at every position; the right answer is the
    model run inside ``anatomy.steer(model, layer, vector, alpha)``."""
    prompt = "My favourite season is"
    cases = []
    for m in default_models():
        layer = m.n_layers // 3
        v = _chinese_direction(m, layer)
        for alpha in (2.0, -1.0):
            expected = _right_steered(m, prompt, layer, alpha).clone()
            cases.append(Case((m, prompt, layer, v.clone(), alpha), f"{m.name}, layer {layer}, alpha = {alpha:g}",
                              f"{m.name} 的第 {layer} 层、alpha = {alpha:g}", expected))
    mistakes = (
        Mistake("one layer off: layer ℓ is the output of model.layers[ℓ], the place \"layers.ℓ\" "
                "(hidden_states[ℓ] is its input).",
                "差了一层：第 ℓ 层指 model.layers[ℓ] 的输出，也就是位置 \"layers.ℓ\"（hidden_states[ℓ] 是它的输入）。",
                wrong=lambda m, p, layer, v, a: _steered(m, p, f"layers.{layer - 1}", v, a)),
        Mistake("you added the vector at the last position only; steering adds it at every position.",
                "你只在最后一个位置加了向量；操控要在每个位置都加上。",
                wrong=lambda m, p, layer, v, a: _steered(m, p, f"layers.{layer}", v, a, last_only=True)),
        Mistake("the push goes the wrong way: add alpha * vector (a negative alpha subtracts).",
                "推的方向反了：应该加上 alpha * vector（alpha 为负时才是减去）。",
                wrong=lambda m, p, layer, v, a: _steered(m, p, f"layers.{layer}", v, -a)),
        Mistake("nothing changed: the forward pass must run inside the block that adds the vector.",
                "什么都没变：前向传播必须在加向量的那个 with 代码块里面运行。",
                wrong=lambda m, p, layer, v, a: _steered(m, p, f"layers.{layer}", v, 0.0)),
    )
    return judge("steered_probs", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-2))


_TEXTS = ("The book shows each layer of two small models, one experiment at a time, with real weights.",
          "A probe is scored on examples it was not fitted on, and compared with a control.")


@functools.lru_cache(maxsize=16)
def _loss(model, layer, alpha):
    from ..sae import next_token_loss
    from ..steering import steer

    if alpha == 0:
        return next_token_loss(model, list(_TEXTS), layer)
    with steer(model, layer, _chinese_direction(model, layer), alpha):
        return next_token_loss(model, list(_TEXTS), layer)


def check_loss_rise(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 6: ``fn(model, texts, layer, vector, alpha)`` is the next-token loss on ``texts`` with ``alpha * vector``
    added at layer ``layer`` minus the loss without it (``anatomy.next_token_loss`` inside and outside ``anatomy.steer``)."""
    cases = []
    for m in default_models():
        layer = m.n_layers // 2
        for alpha in (1.0, 2.0):
            cases.append(Case((m, list(_TEXTS), layer, _chinese_direction(m, layer).clone(), alpha),
                              f"{m.name}, layer {layer}, alpha = {alpha:g}", f"{m.name} 的第 {layer} 层、alpha = {alpha:g}",
                              _loss(m, layer, alpha) - _loss(m, layer, 0.0)))
    mistakes = (
        Mistake("your difference has the wrong sign: the steered loss minus the clean one.",
                "你的差值符号反了：应该是操控后的损失减去不操控的损失。",
                wrong=lambda m, t, layer, v, a: _loss(m, layer, 0.0) - _loss(m, layer, a)),
        Mistake("you returned the steered loss itself; subtract the loss without steering.",
                "你返回的是操控后的损失本身；还要减去不操控时的损失。",
                wrong=lambda m, t, layer, v, a: _loss(m, layer, a)),
        Mistake("you measured no change: compute one loss inside the with anatomy.steer(...) block and one outside it.",
                "你测出的变化是零：一个损失要在 with anatomy.steer(...) 代码块里面算，另一个在外面算。",
                matches=lambda got, m, t, layer, v, a: close(got, 0.0, atol=1e-6)),
    )
    return judge("loss_rise", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-3))
