"""Chapter 14's exercises: the next-token loss, per-position means, and mean ablation of a whole FFN."""

from __future__ import annotations

import dataclasses
import functools
import math

import torch

from .. import run

from ._judge import Case, Mistake, Verdict, close, default_models, judge

_TEXT = "The cat sat on the warm mat because the sun was shining on it."
_REFERENCE = ("The dog is", "A river runs through the old town.")
_LOSS_TEXTS = ("The weather was cold, so we stayed inside and read books.",
               "She opened the window and listened to the birds.")


@torch.no_grad()
def _loss(model, text: str, *, shift: int = 1, reduce: str = "mean", base: float = math.e) -> float:
    """Mean next-token loss of one text read alone, every prediction counted (no positions skipped)."""
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    logits = run.forward(model, ids).logits[0].float()  # [T, V]
    T = ids.shape[1]
    logp = torch.log_softmax(logits[:T - shift], -1)
    nll = -logp.gather(-1, ids[0, shift:, None])[:, 0] / math.log(base)
    return float(nll.sum() if reduce == "sum" else nll.mean())


@functools.lru_cache(maxsize=4)
def _loss_cases(models) -> tuple[Case, ...]:
    from ..sae import next_token_loss

    return tuple(Case((m, _TEXT), f"{m.name}, “{_TEXT[:30]}…”", f"{m.name} 的“{_TEXT[:30]}…”",
                      next_token_loss(m, [_TEXT], 0, skip=0, max_tokens=64)) for m in models)


def check_next_token_loss(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 14: ``fn(model, text)`` is the mean next-token loss (cross-entropy, nats) of the text read alone,
    every prediction counted: anatomy.next_token_loss(model, [text], 0, skip=0) for a short text."""
    cases = list(_loss_cases(default_models()))
    same = lambda g, e: close(g, e, atol=2e-3, rtol=1e-3)  # noqa: E731
    mistakes = (
        Mistake("the logits are not shifted: the scores at position t predict the token at t + 1, so compare "
                "logits[:-1] with ids[1:].",
                "logits 没有错开：位置 t 的分数预测的是位置 t + 1 的词元，所以要拿 logits[:-1] 和 ids[1:] 比较。",
                matches=lambda got, m, t: same(got, _loss(m, t, shift=0))),
        Mistake("you added the losses up: the loss is their mean over the predictions.",
                "你把损失加起来了：损失是所有预测上的平均值。",
                matches=lambda got, m, t: same(got, _loss(m, t, reduce="sum"))),
        Mistake("that is in bits (log base 2): the loss is in nats, with the natural logarithm (torch.log_softmax).",
                "这是以比特为单位（以 2 为底的对数）：损失以奈特为单位，用自然对数（torch.log_softmax）。",
                matches=lambda got, m, t: same(got, _loss(m, t, base=2.0))),
    )
    return judge("next_token_loss", fn, cases, mistakes, solution=solution, same=same)


@torch.no_grad()
def _neurons(model, prompt: str, layer: int) -> torch.Tensor:
    from ..hooks import capture

    place = f"layers.{layer}.mlp.neurons"
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with capture(model, place) as seen:
        run.forward(model, ids)
    return seen[place][0].float()  # [T, m]


def _means_by_hand(model, prompts, layer: int, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    acts = [_neurons(model, p, layer) for p in prompts]  # [T_i, m] each
    first = torch.stack([a[0] for a in acts]).mean(0)
    if how == "pooled":
        return (lambda v: (v, v))(torch.cat(acts).mean(0))
    if how == "per_prompt":
        return first, torch.stack([a[1:].mean(0) for a in acts]).mean(0)
    raise ValueError(how)


def _pair(got):
    a, b = got
    return a, b


def check_position_means(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 14: ``fn(model, prompts, layer)`` is (first, rest): each neuron's mean activation at position 0, and
    its mean over every token after position 0 of all prompts, two tensors [m] (as anatomy.mean_activations)."""
    from ..ablation import mean_activations

    cases = []
    for m in default_models():
        layer = m.n_layers // 2
        means = _layer_means(m, layer)
        cases.append(Case((m, list(_REFERENCE), layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层",
                          (means.first_neurons, means.neurons)))

    def _same(got, expected):
        try:
            a, b = _pair(got)
        except (TypeError, ValueError):
            return False
        return close(a, expected[0], atol=1e-3) and close(b, expected[1], atol=1e-3)

    mistakes = (
        Mistake("position 0 is pooled in with the other positions: keep it apart — one mean at position 0, another "
                "over positions 1, 2, … (a sink neuron's thousands at position 0 would otherwise be written everywhere).",
                "位置 0 和其他位置混在一起平均了：要把它分开——位置 0 一个均值，位置 1、2、…… 另一个均值"
                "（否则汇聚神经元在位置 0 上的几千会被写到每个位置）。",
                matches=lambda got, m, p, layer: close(_pair(got)[1], _means_by_hand(m, p, layer, "pooled")[1], atol=1e-3)),
        Mistake("first and rest are swapped: return (the mean at position 0, the mean over the later positions).",
                "first 和 rest 顺序反了：应返回（位置 0 的均值，后面各位置的均值）。",
                matches=lambda got, m, p, layer: _same((_pair(got)[1], _pair(got)[0]),
                                                       (lambda r: (r.first_neurons, r.neurons))(mean_activations(m, p, layer)))),
        Mistake("you averaged each prompt first and then the prompts: the mean is over all tokens together, so a "
                "longer prompt counts more.",
                "你先对每个提示词求平均，再对提示词求平均：均值是对所有词元一起求的，所以更长的提示词占的分量更大。",
                matches=lambda got, m, p, layer: close(_pair(got)[1], _means_by_hand(m, p, layer, "per_prompt")[1], atol=1e-3)),
        Mistake("one layer off: the place layers.{layer}.mlp.neurons is the neurons of layer `layer` itself.",
                "差了一层：位置 layers.{layer}.mlp.neurons 就是第 layer 层自己的神经元。",
                matches=lambda got, m, p, layer: any(
                    _same(got, (lambda r: (r.first_neurons, r.neurons))(mean_activations(m, p, j)))
                    for j in (layer - 1, layer + 1) if 0 <= j < m.n_layers)),
    )
    return judge("position_means", fn, cases, mistakes, solution=solution, same=_same)


@functools.lru_cache(maxsize=16)
def _layer_means(model, layer: int):
    from ..ablation import mean_activations

    return mean_activations(model, list(_REFERENCE), layer)


def _ablated_loss(model, texts, layer: int, means, *, zero: bool = False) -> float:
    from ..ablation import ablate
    from ..ffn import ffn_weights
    from ..sae import next_token_loss

    every = list(range(ffn_weights(model, layer).n_neurons))
    with ablate(model, layer, neurons=every, mean=None if zero else means):
        return next_token_loss(model, list(texts), layer)


def _edited_loss(model, texts, at: int, means) -> float:
    """The loss with the neurons of layer ``at`` overwritten by ``means`` (which may belong to another layer)."""
    from ..hooks import edit
    from ..sae import next_token_loss

    def put(x):  # [B, T, m]
        x = x.clone()
        x[:, :1] = means.first_neurons.to(x)
        x[:, 1:] = means.neurons.to(x)
        return x

    with edit(model, f"layers.{at}.mlp.neurons", put):
        return next_token_loss(model, list(texts), at)


@functools.lru_cache(maxsize=4)
def _ablation_cases(models) -> tuple[Case, ...]:
    cases = []
    for m in models:
        layer = m.n_layers // 2
        means = _layer_means(m, layer)
        cases.append(Case((m, list(_LOSS_TEXTS), layer, means), f"{m.name}, layer {layer}",
                          f"{m.name} 的第 {layer} 层", _ablated_loss(m, _LOSS_TEXTS, layer, means)))
    return tuple(cases)


def check_ffn_mean_ablation(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 14: ``fn(model, texts, layer, means)`` is anatomy.next_token_loss(model, texts, layer) with every
    neuron of layer ``layer``'s FFN set to its mean from ``means`` (anatomy.mean_activations for that layer):
    position 0 to means.first_neurons, every later position to means.neurons — checked against anatomy.ablate."""
    cases = list(_ablation_cases(default_models()))
    same = lambda g, e: close(g, e, atol=1e-4, rtol=1e-4)  # noqa: E731
    pooled = lambda means: dataclasses.replace(means, first_neurons=means.neurons, first_heads=means.heads)  # noqa: E731
    mistakes = (
        Mistake("you set the neurons to 0: that is zero ablation; mean ablation writes each neuron's mean.",
                "你把神经元设成了 0：那是置零消融；均值消融写入的是每个神经元的均值。",
                matches=lambda got, m, t, layer, means: same(got, _ablated_loss(m, t, layer, means, zero=True))),
        Mistake("position 0 got the mean of the later positions: it has its own mean, means.first_neurons.",
                "位置 0 写入的是后面各位置的均值：它有自己的均值 means.first_neurons。",
                matches=lambda got, m, t, layer, means: same(got, _ablated_loss(m, t, layer, pooled(means)))),
        Mistake("one layer off: ablate the neurons of layer `layer` (the place layers.{layer}.mlp.neurons).",
                "差了一层：要消融第 layer 层的神经元（位置 layers.{layer}.mlp.neurons）。",
                matches=lambda got, m, t, layer, means: any(
                    same(got, _edited_loss(m, t, j, means)) for j in (layer - 1, layer + 1) if 0 <= j < m.n_layers)),
    )
    return judge("ffn_mean_ablation", fn, cases, mistakes, solution=solution, same=same)
