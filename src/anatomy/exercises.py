"""Exercises: checkers that run a reader's function on the real models and say, in one sentence, whether it is right.

Chapters end with exercises. The reader writes a function; ``anatomy.exercises.check_...(fn)``
runs it on the book's default models and on seeded random inputs, compares what it returns with
the model itself (or with the library function the chapter checked against the model) and
answers in the reader's language: ✓; "not written yet" for a stub (``...`` or ``raise
NotImplementedError``); or what is wrong, naming the typical mistake when the answer is the one
that mistake gives (the causal mask forgotten, w where Gemma uses 1 + w, the wrong axis, one layer
off). A function that raises is reported in one sentence, never as a traceback from inside torch.

On the site each exercise has a folded reference solution, run at build time through its
checker with ``solution=True``: a reference solution that no longer passes fails the build.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import run
from .errors import AnatomyError

__all__ = [
    "ExerciseFailed", "Verdict", "check_causal_attention", "check_country_split", "check_difference_of_means",
    "check_greedy_next_token", "check_kv_head", "check_logit_lens", "check_nearest_tokens", "check_rms_norm",
    "check_softmax_with_temperature", "check_swiglu_neuron",
]

_MARK = {"right": "✓", "wrong": "✗", "stub": "…", "error": "✗"}


class ExerciseFailed(AnatomyError, AssertionError):
    """A chapter's reference solution no longer passes its checker."""


@dataclass(frozen=True)
class Verdict:
    """What a checker says of the reader's function: right, wrong (and why), not written yet, or it raised."""

    exercise: str
    state: str  # "right", "wrong", "stub" or "error"
    en: str
    zh: str

    @property
    def ok(self) -> bool:
        return self.state == "right"

    def __bool__(self) -> bool:
        return self.ok

    def _repr_html_(self) -> str:
        esc = lambda s: html.escape(s, quote=True)  # noqa: E731
        return (f'<div class="anatomy-verdict anatomy-verdict-{self.state}"><span class="anatomy-verdict-mark" '
                f'aria-hidden="true">{_MARK[self.state]}</span> <span lang="en">{esc(self.en)}</span>'
                f'<span lang="zh">{esc(self.zh)}</span></div>')

    def __str__(self) -> str:
        return f"{_MARK[self.state]} {self.exercise}: {self.en}"

    __repr__ = __str__


@dataclass(frozen=True)
class Case:
    """One run of the reader's function: its arguments, where that is (in words), and the right answer."""

    args: tuple
    en: str
    zh: str
    expected: object


@dataclass(frozen=True)
class Mistake:
    """A typical wrong solution: what it returns on a case's arguments (``wrong``) or a test of an
    answer (``matches``), and the sentence that names it."""

    en: str
    zh: str
    wrong: Callable | None = None
    matches: Callable | None = None


def close(got, expected, atol: float = 1e-4, rtol: float = 1e-3) -> bool:
    """Equal for an exercise: tensors of the same shape within float tolerance, numbers, sequences, the rest by ==."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got)
            except (TypeError, ValueError, RuntimeError):
                return False
        if tuple(got.shape) != tuple(expected.shape):
            return False
        got, expected = got.detach().float().cpu(), expected.detach().float().cpu()
        return not torch.isnan(got).any() and bool(torch.allclose(got, expected, atol=atol, rtol=rtol))
    if isinstance(expected, bool) or not isinstance(expected, (int, float, list, tuple)):
        return got == expected
    if isinstance(expected, (int, float)):
        try:
            return math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol)
        except (TypeError, ValueError, RuntimeError):
            return False
    try:
        return len(got) == len(expected) and all(close(a, b) for a, b in zip(got, expected))
    except TypeError:
        return False


def _stub() -> tuple[str, str]:
    return "Not written yet: replace the ... (or the raise) with your code.", "还没有写：把 ...（或 raise 那一行）换成你的代码。"


def judge(exercise: str, fn, cases: list[Case], mistakes: tuple[Mistake, ...] = (), *, solution: bool = False,
          same: Callable = close) -> Verdict | None:
    """Run ``fn`` on every case and compare with the right answer; on the first wrong one, name a typical
    mistake if one matches. With ``solution=True`` (a chapter's reference solution) a wrong answer raises."""
    if not callable(fn):
        raise AnatomyError(f"check_{exercise}(...) takes your function itself, e.g. check_{exercise}(my_function), "
                           f"not a {type(fn).__name__}.")
    verdict = None
    for case in cases:
        try:
            got = fn(*case.args)
        except NotImplementedError:
            verdict = Verdict(exercise, "stub", *_stub())
            break
        except Exception as err:  # noqa: BLE001 - the reader's code: one sentence, not a traceback
            text = str(err).strip().splitlines()[0][:200] if str(err).strip() else "(no message)"
            verdict = Verdict(exercise, "error", f"Your function raised {type(err).__name__} on {case.en}: {text}",
                              f"你的函数在{case.zh}上抛出了 {type(err).__name__}：{text}")
            break
        if got is Ellipsis or got is None:
            verdict = Verdict(exercise, "stub", *_stub()) if got is Ellipsis or _empty(fn) else Verdict(
                exercise, "wrong", f"Your function returned nothing on {case.en}: add a return.",
                f"你的函数在{case.zh}上什么也没有返回：加上 return。")
            break
        if same(got, case.expected):
            continue
        for m in mistakes:
            try:
                hit = m.matches(got, *case.args) if m.matches else same(got, m.wrong(*case.args))
            except Exception:  # noqa: BLE001 - a mistake that cannot run on this case does not match
                hit = False
            if hit:
                verdict = Verdict(exercise, "wrong", f"Not yet, on {case.en}: {m.en}", f"还不对，在{case.zh}上：{m.zh}")
                break
        if verdict is None:
            shape = ""
            if isinstance(got, torch.Tensor) and isinstance(case.expected, torch.Tensor) and got.shape != case.expected.shape:
                shape = f" (shape {tuple(got.shape)}, expected {tuple(case.expected.shape)})"
            verdict = Verdict(exercise, "wrong", f"Not yet: on {case.en} your answer differs from the right one{shape}.",
                              f"还不对：在{case.zh}上，你的答案和正确答案不一样{shape}。")
        break
    if verdict is None:
        verdict = Verdict(exercise, "right", f"Right: your function gives the right answer in all {len(cases)} cases.",
                          f"正确：你的函数在全部 {len(cases)} 个情形上都给出了正确答案。")
    if solution and not verdict.ok:
        raise ExerciseFailed(f"The reference solution of the exercise {exercise!r} does not pass its checker: {verdict.en}")
    return _show(verdict)


def _empty(fn) -> bool:
    """A function whose body is only ``...`` or ``pass`` (and perhaps a docstring)."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else []
    return all(isinstance(s, ast.Pass) or isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in body)


def _show(verdict: Verdict) -> Verdict | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return verdict
    if get_ipython() is None:
        return verdict
    from IPython.display import display

    display(verdict)
    return None


def _models():
    """The book's default models (loaded once per process)."""
    from .loading import DEFAULT_MODELS, load

    return tuple(load(name) for name in DEFAULT_MODELS)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _as_int(got) -> int | None:
    try:
        return int(got)
    except (TypeError, ValueError, RuntimeError):
        return None


# --- Chapter 1: the next token --------------------------------------------------------------------

_PROMPTS = ("The capital of France is", "One, two, three,")


@functools.lru_cache(maxsize=32)
@torch.no_grad()
def _scores(model, prompt: str) -> torch.Tensor:
    """The model's scores (logits) at every position of the prompt, [T, V] (kept: a checker asks several times)."""
    b = run.batch(model, [prompt])
    return model.hf(input_ids=b.ids, attention_mask=b.mask).logits[0].float()


def check_greedy_next_token(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 1: ``fn(model, prompt)`` returns the ID of the most probable next token (an int)."""
    cases = [Case((m, p), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", int(_scores(m, p)[-1].argmax()))
             for m in _models() for p in _PROMPTS]
    mistakes = (
        Mistake("you read the scores of the first position; the next token is predicted at the last one ([-1]).",
                "你读的是第一个位置的分数；下一个词元是在最后一个位置（[-1]）预测的。",
                wrong=lambda m, p: int(_scores(m, p)[0].argmax())),
        Mistake("you took the smallest score (argmin); the prediction is the largest (argmax).",
                "你取了最小的分数（argmin）；预测是分数最大的那个（argmax）。",
                wrong=lambda m, p: int(_scores(m, p)[-1].argmin())),
    )
    return judge("greedy_next_token", fn, cases, mistakes, solution=solution, same=lambda a, b: _as_int(a) == b)


# --- Chapter 2: nearest neighbours in the embedding table -----------------------------------------

def _nearest(model, token_id: int, k: int, cosine: bool = True) -> list[int]:
    table = model.embedding_table.detach().float()
    rows = table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12) if cosine else table
    sims = rows @ rows[token_id]
    sims[token_id] = -float("inf")
    return sims.topk(k).indices.tolist()


def check_nearest_tokens(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 2: ``fn(model, token_id, k)`` returns the IDs of the k rows nearest by cosine, the token itself left out."""
    cases = []
    for m in _models():
        for word in (" king", " Paris"):
            tid = m.tokenizer(word, add_special_tokens=False)["input_ids"][0]
            cases.append(Case((m, tid, 5), f"{m.name}, token {tid}", f"{m.name} 的词元 {tid}", _nearest(m, tid, 5)))
    mistakes = (
        Mistake("you ranked the rows by dot product; cosine divides by both lengths first, or long rows always win.",
                "你按点积排序了；余弦要先除以两个向量的长度，否则长的行总会胜出。",
                wrong=lambda m, t, k: _nearest(m, t, k, cosine=False)),
        Mistake("the token itself is in your list; leave it out (every row is nearest to itself).",
                "你的列表里有这个词元自己；要把它排除（每一行都离自己最近）。",
                matches=lambda got, m, t, k: t in [_as_int(x) for x in got]),
    )

    def same(got, expected):
        try:
            return [int(x) for x in got] == expected
        except (TypeError, ValueError):
            return False

    return judge("nearest_tokens", fn, cases, mistakes, solution=solution, same=same)


# --- Chapter 3: RMSNorm, as each family writes it -------------------------------------------------

def _rms(x, w, eps, one_plus):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if one_plus else w)


def check_rms_norm(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 3: ``fn(x, weight, eps, one_plus)`` is RMSNorm over the last axis; with ``one_plus`` (Gemma) the gain is ``1 + weight``.

    The right answer is what the model's own first norm module computes on the same vectors."""
    cases = []
    for m in _models():
        spec = m.arch.blocks[0].attn_norm
        module = m.layers[0].get_submodule(spec.path)
        x = torch.randn(3, m.d_model, generator=_seeded(0)) * 4
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


# --- Chapter 4: softmax with a temperature --------------------------------------------------------

def check_softmax_with_temperature(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 4: ``fn(logits, temperature)`` gives probabilities over the last axis, for any number of rows."""
    g = _seeded(1)
    cases = [Case((z, t), f"logits of shape [2, 7] at temperature {t}", f"形状为 [2, 7] 的 logits、温度 {t}",
                  torch.softmax(z / t, dim=-1)) for t in (1.0, 0.5, 2.0) for z in [torch.randn(2, 7, generator=g) * 3]]
    big = torch.tensor([[1000.0, 999.0, 990.0]])
    cases.append(Case((big, 1.0), "very large logits (1000, 999, 990)", "很大的 logits（1000、999、990）",
                      torch.softmax(big, dim=-1)))
    mistakes = (
        Mistake("you multiplied the logits by the temperature; divide by it (a high temperature flattens).",
                "你把 logits 乘以了温度；应该除以温度（温度越高，分布越平）。",
                wrong=lambda z, t: torch.softmax(z * t, dim=-1)),
        Mistake("your softmax runs over the wrong axis: each row (the last axis) must sum to 1.",
                "你的 softmax 沿错了轴：每一行（最后一个轴）的和应为 1。",
                wrong=lambda z, t: torch.softmax(z / t, dim=0)),
        Mistake("exp overflows for large logits; subtract each row's largest logit before exp (the result is the same).",
                "logits 很大时 exp 会溢出；先减去每行最大的 logit 再取 exp（结果不变）。",
                matches=lambda got, z, t: isinstance(got, torch.Tensor) and bool(torch.isnan(got).any())),
    )
    return judge("softmax_with_temperature", fn, cases, mistakes, solution=solution)


# --- Chapter 5: held out by whole countries -------------------------------------------------------

def check_country_split(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 5: ``fn(countries, seed)`` splits the cities (one country each) into (train, test) lists of
    indices: every index once, no country on both sides, between 15 % and 35 % held out."""
    from .probe import cities

    countries = list(cities().countries)

    def parts(got):
        train, test = ([int(i) for i in part] for part in got)
        return train, test

    def right(got, _expected=None) -> bool:
        try:
            train, test = parts(got)
        except (TypeError, ValueError):
            return False
        if sorted(train + test) != list(range(len(countries))):
            return False
        shared = {countries[i] for i in train} & {countries[i] for i in test}
        return not shared and 0.15 <= len(test) / len(countries) <= 0.35

    def shares_a_country(got, cs, seed) -> bool:
        train, test = parts(got)
        return bool({cs[i] for i in train} & {cs[i] for i in test})

    cases = [Case((countries, s), f"the {len(countries)} cities with seed {s}", f"{len(countries)} 个城市、种子 {s}", None)
             for s in (0, 1)]
    mistakes = (
        Mistake("some country has cities on both sides: you held out cities, not countries, so the probe can "
                "recognise the country instead of reading a position.",
                "有的国家两边都有城市：你留出的是城市而不是国家，探针就能靠认出国家来作答，而不是读出位置。",
                matches=shares_a_country),
        Mistake("the two lists must hold every index exactly once, with 15–35 % of them held out.",
                "两个列表合起来要恰好包含每个下标一次，并且留出 15%–35%。",
                matches=lambda got, cs, seed: True),
    )
    return judge("country_split", fn, cases, mistakes, solution=solution, same=right)


# --- Chapter 6: a direction from two kinds of prompts ---------------------------------------------

_HAPPY = ("I love this wonderful day.", "What a great and happy surprise!", "This is the best news ever.")
_SAD = ("I hate this terrible day.", "What an awful and sad surprise.", "This is the worst news ever.")


@functools.lru_cache(maxsize=32)
@torch.no_grad()
def _all_last_states(model, prompts: tuple) -> torch.Tensor:
    """Every row of the hidden states at each prompt's last token, [L + 1, N, d] (kept: a checker asks several times)."""
    b = run.batch(model, list(prompts))
    out = model.hf(input_ids=b.ids, attention_mask=b.mask, output_hidden_states=True)
    return torch.stack([run.last(h.float(), b) for h in out.hidden_states])


def _last_states(model, prompts, stage: int) -> torch.Tensor:
    """Row ``stage`` of the hidden states (0 the embedding, ℓ + 1 the output of layer ℓ) at each prompt's last token."""
    return _all_last_states(model, tuple(prompts))[stage]  # [N, d]


def _mean_state(model, prompts, stage):
    return _last_states(model, prompts, stage).mean(0)


def check_difference_of_means(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 6: ``fn(model, prompts_a, prompts_b, layer)`` is the mean output of layer ``layer`` at the last token
    over prompts_a minus the same over prompts_b (a [d] vector)."""
    cases = []
    for m in _models():
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


# --- Chapter 7: the logit lens at one layer -------------------------------------------------------

@torch.no_grad()
def _lens(model, prompt, stage, norm=True):
    h = _last_states(model, [prompt], stage)[0]  # [d]
    h = model.final_norm(h.to(model.dtype)) if norm else h.to(model.dtype)
    return torch.softmax(run.head(model, h).float(), dim=-1)


def check_logit_lens(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 7: ``fn(model, prompt, layer)`` returns the probabilities [V] that the LM head gives to the output of
    layer ``layer`` at the last position, read as the model reads its last layer (final norm, then LM head)."""
    cases = []
    for m in _models():
        for layer in (m.n_layers // 2, m.n_layers - 1):
            cases.append(Case((m, _PROMPTS[0], layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层",
                              _lens(m, _PROMPTS[0], layer + 1)))
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


# --- Chapter 9: one head's attention weights ------------------------------------------------------

def _weights(q, k, mask=True, scale=True, dim=-1):
    scores = q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=dim)


def check_causal_attention(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 9: ``fn(q, k)`` returns one head's attention weights [T, T] from queries and keys [T, d]:
    scaled dot products, causal mask, softmax over the keys (each row sums to 1)."""
    g = _seeded(2)
    cases = [Case((q, k), f"random q and k of shape {tuple(q.shape)}", f"形状为 {tuple(q.shape)} 的随机 q 和 k", _weights(q, k))
             for t, d in ((5, 8), (7, 16)) for q, k in [(torch.randn(t, d, generator=g), torch.randn(t, d, generator=g))]]
    mistakes = (
        Mistake("a token looks at later tokens: apply the causal mask (scores above the diagonal to -inf) before the softmax.",
                "词元看到了后面的词元：在 softmax 之前加上因果遮罩（对角线以上的分数设为 -inf）。",
                wrong=lambda q, k: _weights(q, k, mask=False)),
        Mistake("divide the scores by √d (the size of a query) before the softmax.",
                "在 softmax 之前要把分数除以 √d（查询向量的长度）。",
                wrong=lambda q, k: _weights(q, k, scale=False)),
        Mistake("the softmax runs over the wrong axis: each query's row (over the keys, the last axis) must sum to 1.",
                "softmax 沿错了轴：每个查询那一行（沿键，即最后一个轴）的和应为 1。",
                wrong=lambda q, k: _weights(q, k, dim=0)),
        Mistake("your mask hides the earlier tokens instead of the later ones (tril where triu is meant).",
                "你的遮罩挡住的是前面的词元，而不是后面的（该用 triu 的地方用了 tril）。",
                wrong=lambda q, k: torch.softmax((q @ k.T / math.sqrt(q.shape[-1])).masked_fill(
                    torch.ones(q.shape[0], q.shape[0], dtype=torch.bool).tril(-1), float("-inf")), dim=-1)),
    )
    return judge("causal_attention", fn, cases, mistakes, solution=solution)


# --- Chapter 10: grouped-query attention ----------------------------------------------------------

def check_kv_head(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 10: ``fn(head, n_heads, n_kv_heads)`` is the K/V head that query head ``head`` reads
    (grouped-query attention: consecutive query heads share one K/V head)."""
    shapes = [(m.n_heads, m.n_kv_heads, m.name) for m in _models()] + [(8, 2, "8 heads, 2 K/V heads")]
    cases = [Case((h, n, kv), f"{name}, query head {h}", f"{name} 的查询头 {h}", h // (n // kv))
             for n, kv, name in shapes for h in range(n)]
    mistakes = (
        Mistake("query heads share K/V heads in consecutive groups (heads 0..g-1 read K/V head 0), not in turn (h % n_kv).",
                "查询头是按连续的组共用 K/V 头的（第 0 到 g-1 个头读第 0 个 K/V 头），不是轮流（h % n_kv）。",
                wrong=lambda h, n, kv: h % kv),
    )
    return judge("kv_head", fn, cases, mistakes, solution=solution, same=lambda a, b: _as_int(a) == b)


# --- Chapter 11: one neuron of a gated FFN --------------------------------------------------------

@torch.no_grad()
def _neuron_in_model(model, layer: int, neuron: int, x: torch.Tensor) -> torch.Tensor:
    """What the model's own FFN computes for neuron ``neuron`` (its input to down_proj) on vectors x [N, d]."""
    spec = model.arch.blocks[layer].ffn
    mlp = model.layers[layer].get_submodule(spec.path)
    down = mlp.get_submodule(spec.down.path)
    seen = {}
    handle = down.register_forward_hook(lambda mod, inp, out: seen.setdefault("a", inp[0].detach()))
    try:
        mlp(x.to(model.dtype))
    finally:
        handle.remove()
    return seen["a"][..., neuron].float()


def check_swiglu_neuron(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 11: ``fn(x, gate_row, up_row, act)`` is one neuron's activation in a gated FFN,
    act(x · gate_row) × (x · up_row), for vectors x [N, d] (a tensor [N])."""
    import torch.nn.functional as F

    from .ffn import ffn_weights

    acts = {"silu": F.silu, "gelu_tanh": lambda z: F.gelu(z, approximate="tanh")}
    cases = []
    for m in _models():
        layer, neuron = m.n_layers // 2, 7
        w = ffn_weights(m, layer)  # [m, d] rows, whatever the family calls its projections
        act = acts[w.activation]
        x = torch.randn(4, m.d_model, generator=_seeded(3))
        cases.append(Case((x, w.gate[neuron].detach().float(), w.up[neuron].detach().float(), act),
                          f"{m.name}, layer {layer}, neuron {neuron}", f"{m.name} 第 {layer} 层的第 {neuron} 个神经元",
                          _neuron_in_model(m, layer, neuron, x)))
    mistakes = (
        Mistake("the activation goes on the gate's product (x · gate_row), not on the up projection's.",
                "激活函数作用在门控的乘积（x · gate_row）上，而不是上投影的乘积上。",
                wrong=lambda x, g, u, act: (x @ g) * act(x @ u)),
        Mistake("you forgot the activation: act(x · gate_row) × (x · up_row).",
                "你忘了激活函数：act(x · gate_row) × (x · up_row)。",
                wrong=lambda x, g, u, act: (x @ g) * (x @ u)),
        Mistake("the activation goes on the gate alone, before multiplying by the up projection.",
                "激活函数只作用在门控上，然后再乘以上投影。",
                wrong=lambda x, g, u, act: act((x @ g) * (x @ u))),
    )
    return judge("swiglu_neuron", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))
