"""Chapter 7's exercises: the logit lens at one layer."""

from __future__ import annotations

import math

import torch

from .. import run
from ._judge import (
    PROMPTS,
    Case,
    Mistake,
    Verdict,
    last_states_at,
    default_models,
    close,
    judge,
)


@torch.no_grad()
def _lens(model, prompt, stage, norm=True):
    h = last_states_at(model, [prompt], stage)[0]  # [d]
    h = model.final_norm(h.to(model.dtype)) if norm else h.to(model.dtype)
    return torch.softmax(run.head(model, h).float(), dim=-1)


def check_logit_lens(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 7: ``fn(model, prompt, layer)`` returns the probabilities [V] that the LM head gives to the output of
    layer ``layer`` at the last position, read as the model reads its last layer (final norm, then LM head)."""
    cases = []
    for m in default_models():
        for layer in (m.n_layers // 2, m.n_layers - 1):
            cases.append(Case((m, PROMPTS[0], layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层",
                              _lens(m, PROMPTS[0], layer + 1)))
    mistakes = (
        Mistake("you skipped the final norm; the LM head reads normed vectors, so apply model.final_norm first.",
                "你跳过了最后的归一化；LM Head 读的是归一化后的向量，先用 model.final_norm。",
                wrong=lambda m, p, layer: _lens(m, p, layer + 1, norm=False)),
        Mistake("one layer off: hidden_states[ℓ] is the input of layer ℓ; its output is hidden_states[ℓ + 1].",
                "差了一层：hidden_states[ℓ] 是第 ℓ 层的输入，它的输出是 hidden_states[ℓ + 1]。",
                wrong=lambda m, p, layer: _lens(m, p, layer)),
        Mistake("you returned scores (logits); turn them into probabilities with a softmax.",
                "你返回的是分数（logits）；要用 softmax 把它们变成概率。",
                matches=lambda got, m, p, layer: isinstance(got, torch.Tensor) and not math.isclose(float(got.float().sum()), 1.0, abs_tol=1e-2)),
    )
    return judge("logit_lens", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-2))
