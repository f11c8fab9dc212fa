"""Chapter 7's exercises: the logit lens at one layer."""

from __future__ import annotations

import functools
import math

import torch

from .. import run
from ._judge import PROMPTS, Case, Mistake, Verdict, close, default_models, judge, last_states_at


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


# --- 7.2 and 7.3: where the answer first comes out on top, and the whole grid by hand ---------------

_ANSWER_PROMPTS = ("The capital of France is", "Monday, Tuesday, Wednesday,")


@functools.lru_cache(maxsize=16)
@torch.no_grad()
def _raw_states(model, prompt: str) -> torch.Tensor:
    """Every stage's raw vector (no final norm on any row) at every position, [L + 1, T, d]."""
    from ..hidden import hidden_states

    return hidden_states(model, prompt).states.to(model.dtype)


@torch.no_grad()
def _tops(model, h: torch.Tensor, norm: bool = True) -> torch.Tensor:
    """The lens's top token ID of vectors h [..., d]: final norm (or not), LM head, argmax."""
    return run.head(model, model.final_norm(h) if norm else h).argmax(-1)


@functools.lru_cache(maxsize=16)
def _grid(model, prompt: str) -> torch.Tensor:
    """The lens's top token at every stage and position [L + 1, T], as anatomy.logit_lens gives it."""
    from ..lens import logit_lens

    return logit_lens(model, prompt, k=1).top_ids[..., 0]


def _first_top1(model, prompt, *, norm=True, row=False):
    """The lowest layer (or "embedding") whose lens already has the final answer on top at the last position;
    ``norm=False``: the rows read without the final norm, the answer their own last row; ``row``: the row number."""
    top = _grid(model, prompt)[:, -1] if norm else _tops(model, _raw_states(model, prompt)[:, -1], norm=False)  # [L+1]
    r = int((top == top[-1]).nonzero()[0])
    return r if row else ("embedding" if r == 0 else r - 1)


def check_first_top1_layer(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 7: ``fn(model, prompt)`` is the lowest layer ℓ whose output, read through the lens at the last position,
    already has the model's final answer (its own top token) on top; "embedding" if the embedding row has it."""
    cases = [Case((m, p), f"{m.name}, “{p}”", f"{m.name}、“{p}”", _first_top1(m, p))
             for m in default_models() for p in _ANSWER_PROMPTS]
    mistakes = (
        Mistake("one off: you returned the row of the lens; row ℓ + 1 is the output of layer ℓ (row 0 the embedding).",
                "差了一：你返回的是 lens 的行号；第 ℓ + 1 行才是第 ℓ 层的输出（第 0 行是嵌入）。",
                wrong=lambda m, p: _first_top1(m, p, row=True)),
        Mistake("you skipped the final norm; read every row the way the model reads its last one: final norm, then "
                "LM head.",
                "你跳过了最终归一化；每一行都要像模型读最后一层那样读：先最终归一化，再 LM Head。",
                wrong=lambda m, p: _first_top1(m, p, norm=False)),
        Mistake("that is the last layer, where the answer is on top by definition; look for the lowest layer that "
                "already has it.",
                "那是最后一层，答案在那里按定义就是第一名；要找的是最低的、已经把它排在第一的那一层。",
                wrong=lambda m, p: m.n_layers - 1),
    )
    return judge("first_top1_layer", fn, cases, mistakes, solution=solution)


def _normed_twice(model, prompt):
    """The grid read from output_hidden_states, whose last row transformers hands back already normed."""
    grid = _grid(model, prompt).clone()
    grid[-1] = _tops(model, model.final_norm(_raw_states(model, prompt)[-1]))
    return grid


def check_lens_grid(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 7: ``fn(model, prompt)`` is the lens's top token ID at every stage and position, [L + 1, T] (row 0 the
    embedding, row ℓ + 1 layer ℓ), equal to ``anatomy.logit_lens(model, prompt, k=1).top_ids[..., 0]``."""
    prompt = PROMPTS[1]
    cases = [Case((m, prompt), f"{m.name}, “{prompt}”", f"{m.name}、“{prompt}”", _grid(m, prompt).clone())
             for m in default_models()]
    mistakes = (
        Mistake("your last row is normed twice: output_hidden_states hands back the last layer after the final norm; "
                "take the raw rows of anatomy.hidden_states(model, prompt).states.",
                "你的最后一行被归一化了两次：output_hidden_states 给出的最后一层已经过最终归一化；"
                "请用 anatomy.hidden_states(model, prompt).states 里未归一化的各行。",
                wrong=_normed_twice),
        Mistake("you skipped the final norm; the LM head reads normed vectors.",
                "你跳过了最终归一化；LM Head 读的是归一化后的向量。",
                wrong=lambda m, p: _tops(m, _raw_states(m, p), norm=False)),
        Mistake("your grid is transposed: one row per stage (L + 1 of them), one column per position.",
                "你的表格转置了：每个阶段一行（共 L + 1 行），每个位置一列。",
                wrong=lambda m, p: _grid(m, p).T),
        Mistake("the embedding row is missing: the grid has L + 1 rows, row 0 the embedding.",
                "缺了嵌入那一行：表格有 L + 1 行，第 0 行是嵌入。",
                matches=lambda got, m, p: isinstance(got, torch.Tensor) and got.shape[0] == m.n_layers),
    )
    return judge("lens_grid", fn, cases, mistakes, solution=solution)
