"""Chapter 12's exercises: the rule "left to right, bottom to top", the schedule it gives, the KV cache's size."""

from __future__ import annotations

import functools

import torch

from .. import run

from ._judge import Case, Mistake, Verdict, as_int, close, default_models, judge

_PROMPT = "Two green apples and one red apple are on the table."


# --- Exercise 12.1: predict which states a nudge moves, then measure ------------------------------
@functools.lru_cache(maxsize=4)
def _measured(model, layer: int, position: int) -> torch.Tensor:
    """Which states of the grid moved when the output of ``layer`` at ``position`` was nudged: bool [L+1, T]."""
    from ..brains import influence

    return influence(model, _PROMPT, layer, position).changed


def _rule(n_layers, n_tokens, layer, position, *, row_shift=1, same_row=False, left=False, column=False):
    moved = torch.zeros(n_layers + 1, n_tokens, dtype=torch.bool)
    r = layer + row_shift
    moved[r, position] = True
    if same_row:
        moved[r, position:] = True
    first = 0 if left else position
    moved[r + 1:, position if column else first:(position + 1 if column else None)] = True
    return moved


def check_nudge(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 12: ``fn(n_layers, n_tokens, layer, position)`` predicts which states [L+1, T] (row 0 the embedding,
    row ℓ + 1 the output of layer ℓ) move when the output of ``layer`` at ``position`` is nudged; the checker
    measures it on the models (anatomy.influence)."""
    cases = []
    for m in default_models():
        layer, position = m.n_layers // 3, 3
        got = _measured(m, layer, position)
        cases.append(Case((m.n_layers, got.shape[1], layer, position),
                          f"{m.name}, a nudge at layer {layer}, position {position}",
                          f"{m.name} 在第 {layer} 层、位置 {position} 的推动", got))
    same = lambda g, e: isinstance(g, torch.Tensor) and close(g.bool(), e)  # noqa: E731
    mistakes = (
        Mistake("the states to the right in the nudged layer do not move: they were computed from the layer below, "
                "before the nudge.",
                "被推动那一层里右边的状态不会变：它们是在推动之前由下面一层算出来的。",
                matches=lambda got, *a: same(got, _rule(*a, same_row=True))),
        Mistake("one row off: row 0 is the embedding, so the output of layer ℓ is row ℓ + 1.",
                "差了一行：第 0 行是嵌入，所以第 ℓ 层的输出在第 ℓ + 1 行。",
                matches=lambda got, *a: any(same(got, _rule(*a, row_shift=s)) for s in (0, 2))),
        Mistake("the states to the left never move, in any layer: attention only reads to the left, so information "
                "only flows to the right.",
                "左边的状态在任何一层都不会变：注意力只往左读，所以信息只往右流。",
                matches=lambda got, *a: same(got, _rule(*a, left=True))),
        Mistake("above the nudge, the later positions move too: their attention reads the nudged position.",
                "在推动的上方，后面的位置也会变：它们的注意力读到了被推动的位置。",
                matches=lambda got, *a: same(got, _rule(*a, column=True))),
    )
    return judge("nudge", fn, cases, mistakes, solution=solution, same=same)


# --- Exercise 12.2: the schedule -------------------------------------------------------------------
def _steps(n_prompt, n_new, n_layers, *, one_by_one=False, wait=0, first=1):
    T, L = n_prompt + n_new, n_layers
    s = torch.zeros(T, L + 1, dtype=torch.long)
    for t in range(T):
        s[t, 0] = (t if one_by_one else 0) if t < n_prompt else s[t - 1, L] + wait
        for layer in range(1, L + 1):
            s[t, layer] = s[: t + 1, layer - 1].max() + 1
    return s[:, 1:] - (1 - first)


def check_schedule(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 12: ``fn(n_prompt, n_new, n_layers)`` is the earliest step [T, L] at which each state (position t,
    layer l) can be computed when the whole prompt is known at step 0 (anatomy.schedule)."""
    from ..brains import schedule

    grids = [(6, 3, 4, "6 prompt tokens, 3 new, 4 layers", "6 个提示词元、3 个新词元、4 层")]
    grids += [(64, 16, m.n_layers, f"64 prompt tokens, 16 new, {m.n_layers} layers ({m.name})",
               f"64 个提示词元、16 个新词元、{m.n_layers} 层（{m.name}）") for m in default_models()]
    cases = [Case((p, n, L), en, zh, schedule(p, n, L).steps) for p, n, L, en, zh in grids]
    mistakes = (
        Mistake("the whole prompt is known at step 0: its tokens do not arrive one per step, so every prompt position "
                "computes layer l at step l + 1.",
                "整个提示词在第 0 步就都知道了：它的词元不是每步来一个，所以每个提示位置都在第 l + 1 步算出第 l 层。",
                wrong=lambda p, n, L: _steps(p, n, L, one_by_one=True)),
        Mistake("a new token is known at the step its top state is computed, and its layer 0 one step later; "
                "you added a step too many per new token.",
                "新词元在它的顶层状态算出的那一步就知道了，它的第 0 层在下一步算出；你在每个新词元上多加了一步。",
                wrong=lambda p, n, L: _steps(p, n, L, wait=1)),
        Mistake("step 0 is when the tokens are known; layer 0 takes one step of work, so it is computed at step 1.",
                "第 0 步是词元刚知道的时候；第 0 层要做一步工作，所以在第 1 步算出。",
                wrong=lambda p, n, L: _steps(p, n, L, first=0)),
    )
    return judge("schedule", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: isinstance(g, torch.Tensor) and close(g.long(), e))


# --- Exercise 12.3: the size of the KV cache ------------------------------------------------------
@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _cache_numbers(model, n_tokens: int) -> int:
    """How many numbers the model's own KV cache holds after reading ``n_tokens`` tokens."""
    ids = torch.arange(100, 100 + n_tokens, device=model.device)[None]
    cache = run.forward(model, ids, logits="last", keep=True).past_key_values
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return sum(c.keys.numel() + c.values.numel() for c in layers)
    return sum(k.numel() + v.numel() for k, v in cache)


def check_kv_cache(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 12: ``fn(model, n_tokens)`` is how many numbers the KV cache holds after the model has read
    ``n_tokens`` tokens, compared with the model's own cache."""
    cases = [Case((m, n), f"{m.name}, {n} tokens", f"{m.name}，{n} 个词元", _cache_numbers(m, n))
             for m in default_models() for n in (5, 12)]

    def per_token(m, heads=None, kv=2, layers=None):
        return (layers or m.n_layers) * kv * (heads or m.n_kv_heads) * m.head_dim

    mistakes = (
        Mistake("the cache keeps the keys and values of the K/V heads only (n_kv_heads), not one per query head.",
                "缓存里只存 K/V 头的键和值（n_kv_heads 个），不是每个查询头一份。",
                matches=lambda got, m, n: as_int(got) in (n * per_token(m, heads=m.n_heads), n * m.n_layers * 2 * m.d_model)),
        Mistake("the cache keeps the values too, not only the keys: count both.",
                "缓存里除了键还有值：两样都要数。",
                matches=lambda got, m, n: as_int(got) == n * per_token(m, kv=1)),
        Mistake("every layer has its own attention, so its own keys and values: multiply by the number of layers.",
                "每一层都有自己的注意力，也就有自己的键和值：要乘以层数。",
                matches=lambda got, m, n: as_int(got) == n * per_token(m, layers=1)),
    )
    return judge("kv_cache", fn, cases, mistakes, solution=solution, same=lambda g, e: as_int(g) == e)
