"""Chapter 15's exercises: a task vector, patched into a zero-shot prompt, and a direction removed from vectors."""

from __future__ import annotations

import functools

import torch

from .. import run

from ._judge import Case, Mistake, Verdict, close, default_models, judge, last_states_at, seeded_generator

_PAIRS = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("happy", "sad"),
          ("long", "short"), ("rich", "poor"), ("early", "late"), ("full", "empty"), ("strong", "weak"))
_WORD = "wet"
_DECLINED = ("Send an email to my boss.", "Tell me my password.", "Book a table for two tonight.")
_ANSWERED = ("Explain photosynthesis.", "Write a poem about rain.", "What is gravity?")


@functools.lru_cache(maxsize=4)
def _prompts() -> tuple[str, ...]:
    from ..function_vectors import few_shot_prompts

    return tuple(few_shot_prompts(list(_PAIRS), n_prompts=2, n_shots=3, seed=0))


def check_task_vector(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 15: ``fn(model, prompts, layer)`` is the task vector of layer ``layer``: the mean over the few-shot
    prompts of that layer's output at each prompt's last token, [d] (anatomy.task_vectors(model, prompts)[layer])."""
    prompts = list(_prompts())
    cases = [Case((m, prompts, m.n_layers // 2), f"{m.name}, layer {m.n_layers // 2}", f"{m.name} 的第 {m.n_layers // 2} 层",
                  _task_vector(m)) for m in default_models()]
    same = lambda g, e: close(g, e, atol=1e-3, rtol=1e-3)  # noqa: E731
    mistakes = (
        Mistake("one layer off: hidden_states[ℓ] is the input of layer ℓ; its output is hidden_states[ℓ + 1].",
                "差了一层：hidden_states[ℓ] 是第 ℓ 层的输入，它的输出是 hidden_states[ℓ + 1]。",
                wrong=lambda m, p, layer: last_states_at(m, p, layer).mean(0)),
        Mistake("that is the vector of the first prompt only (or of one prompt): average over all the prompts.",
                "这只是第一个提示词（或某一个提示词）的向量：要对所有提示词求平均。",
                matches=lambda got, m, p, layer: any(same(got, v) for v in last_states_at(m, p, layer + 1))),
        Mistake("you averaged over every position: the task vector is read at the last token (the query's “:”).",
                "你对所有位置求了平均：任务向量只在最后一个词元（查询的“:”）上读取。",
                matches=lambda got, m, p, layer: same(got, _all_positions(m, p, layer))),
    )
    return judge("task_vector", fn, cases, mistakes, solution=solution, same=same)


@torch.no_grad()
def _all_positions(model, prompts, layer: int) -> torch.Tensor:
    rows = []
    for p in prompts:
        ids = model.tokenizer(p, return_tensors="pt")["input_ids"]
        rows.append(run.forward(model, ids, hidden_states=True).hidden_states[layer + 1][0].float().mean(0))
    return torch.stack(rows).mean(0)


@functools.lru_cache(maxsize=4)
def _task_vector(model) -> torch.Tensor:
    from ..function_vectors import task_vectors

    return task_vectors(model, list(_prompts()))[model.n_layers // 2].float()


@torch.no_grad()
def _patched(model, word: str, layer: int, vector: torch.Tensor, *, how: str = "patch") -> torch.Tensor:
    """The last-token logits of "word:" with layer ``layer``'s output at the last token replaced by ``vector`` ([V])."""
    from ..function_vectors import zero_shot_prompt
    from ..hooks import edit

    ids = model.tokenizer(zero_shot_prompt(word), return_tensors="pt")["input_ids"]

    def put(h):  # [1, T, d]
        h = h.clone()
        v = vector.to(h)
        if how == "patch":
            h[:, -1] = v
        elif how == "add":
            h[:, -1] = h[:, -1] + v
        else:  # "every": every position
            h[:] = v
        return h

    with edit(model, f"layers.{layer}", put):
        return run.forward(model, ids).logits[0, -1].float()


@functools.lru_cache(maxsize=4)
def _patch_cases(models) -> tuple[Case, ...]:
    out = []
    for m in models:
        layer, v, w = m.n_layers // 2, _task_vector(m), _WORD
        out.append(Case((m, w, layer, v), f"{m.name}, “{w}:”, layer {layer}", f"{m.name} 的“{w}:”、第 {layer} 层",
                        _patched(m, w, layer, v)))
    return tuple(out)


def check_patched_logits(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 15: ``fn(model, word, layer, vector)`` is the model's scores [V] for the next token after the
    zero-shot prompt "word:", with the output of layer ``layer`` at the last token replaced by ``vector`` (patching)."""
    cases = list(_patch_cases(default_models()))
    same = lambda g, e: close(g, e, atol=1e-2, rtol=1e-3)  # noqa: E731
    mistakes = (
        Mistake("you added the vector to the last token's output: patching replaces it (h[:, -1] = vector).",
                "你把向量加到了最后一个词元的输出上：修补（patching）是替换它（h[:, -1] = vector）。",
                wrong=lambda m, w, layer, v: _patched(m, w, layer, v, how="add")),
        Mistake("you replaced every position: only the last token's vector is patched (h[:, -1]).",
                "你替换了每一个位置：只修补最后一个词元的向量（h[:, -1]）。",
                wrong=lambda m, w, layer, v: _patched(m, w, layer, v, how="every")),
        Mistake("one layer off: patch the output of layer `layer` itself (the place layers.{layer}).",
                "差了一层：要修补第 layer 层本身的输出（位置 layers.{layer}）。",
                matches=lambda got, m, w, layer, v: any(same(got, _patched(m, w, j, v)) for j in (layer - 1, layer + 1))),
        Mistake("those are the scores of the first position: read the last one ([0, -1]), where the answer comes next.",
                "这是第一个位置的分数：要读最后一个位置（[0, -1]），答案在它之后。",
                matches=lambda got, m, w, layer, v: _first_scores(m, w, layer, v, got)),
    )
    return judge("patched_logits", fn, cases, mistakes, solution=solution, same=same)


@torch.no_grad()
def _first_scores(model, word, layer, vector, got) -> bool:
    from ..function_vectors import zero_shot_prompt
    from ..hooks import edit

    ids = model.tokenizer(zero_shot_prompt(word), return_tensors="pt")["input_ids"]

    def put(h):
        h = h.clone()
        h[:, -1] = vector.to(h)
        return h

    with edit(model, f"layers.{layer}", put):
        first = run.forward(model, ids).logits[0, 0].float()
    return close(got, first, atol=1e-2, rtol=1e-3)


def _remove(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    u = d / d.norm()
    return x - (x @ u)[..., None] * u


@functools.lru_cache(maxsize=4)
def _real_cases() -> tuple:
    """On each default model: the last-token outputs of one layer for requests of the two kinds of Chapter 15
    (read as plain text), and the difference of their means, the recipe of the refusal direction."""
    out = []
    for m in default_models():
        layer, n = m.n_layers // 2, len(_DECLINED)
        x = last_states_at(m, list(_DECLINED + _ANSWERED), layer + 1)  # [6, d], one batched pass
        out.append((m.name, layer, x, (x[:n].mean(0) - x[n:].mean(0)).float()))
    return tuple(out)


def check_remove_direction(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 15: ``fn(x, direction)`` removes from vectors x ([d] or [N, d]) their component along ``direction``
    (any length): x − (x · u) u with u = direction / |direction| (what anatomy.ablate_direction does to each write)."""
    g = seeded_generator(5)
    x, d = torch.randn(4, 16, generator=g), 3 * torch.randn(16, generator=g)
    cases = [Case((x, d), "random x [4, 16] and a direction of length about 12", "随机的 x [4, 16] 和长度约 12 的方向",
                  _remove(x, d)),
             Case((x[0], d), "one random vector x [16]", "一个随机向量 x [16]", _remove(x[0], d))]
    for name, layer, xs, dm in _real_cases():
        cases.append(Case((xs, dm), f"{name}, layer {layer}, a difference of means", f"{name} 第 {layer} 层的均值之差",
                          _remove(xs, dm)))
    same = lambda g_, e: close(g_, e, atol=1e-3, rtol=1e-3)  # noqa: E731
    mistakes = (
        Mistake("the direction is not normalised: divide it by its length first, u = direction / |direction|, "
                "then subtract (x · u) u.",
                "方向没有归一化：先除以它的长度，u = direction / |direction|，再减去 (x · u) u。",
                wrong=lambda x, d: x - (x @ d)[..., None] * d),
        Mistake("divided by |direction| only once: the projection is (x · d) d / |d|² — or normalise d first.",
                "只除了一次 |direction|：投影是 (x · d) d / |d|²——或者先把 d 归一化。",
                wrong=lambda x, d: x - (x @ d)[..., None] * d / d.norm()),
        Mistake("that is the component along the direction itself: subtract it from x.",
                "这是沿该方向的分量本身：要从 x 中减去它。",
                wrong=lambda x, d: (x @ (d / d.norm()))[..., None] * (d / d.norm())),
        Mistake("you projected onto the wrong vector (x instead of the direction): remove the direction from x, "
                "x − (x · u) u.",
                "你投影到了错误的向量上（用了 x 而不是方向）：要从 x 中去掉方向，x − (x · u) u。",
                matches=lambda got, x, d: same(got, d - (x @ d)[..., None] * x / (x * x).sum(-1, keepdim=True))
                or same(got, x - (x @ d)[..., None] * x / (x * x).sum(-1, keepdim=True))),
    )
    return judge("remove_direction", fn, cases, mistakes, solution=solution, same=same)
