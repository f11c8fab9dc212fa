"""The judge every checker shares: run the reader's function on cases, compare, name the mistake, answer in one sentence."""


from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import run
from ..errors import AnatomyError

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


def default_models():
    """The book's default models (loaded once per process)."""
    from ..loading import DEFAULT_MODELS, load

    return tuple(load(name) for name in DEFAULT_MODELS)


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_int(got) -> int | None:
    try:
        return int(got)
    except (TypeError, ValueError, RuntimeError):
        return None


# --- readings of the models that several chapters' checkers share ---------------------------------

PROMPTS = ("The capital of France is", "One, two, three,")


@functools.lru_cache(maxsize=32)
@torch.no_grad()
def prompt_scores(model, prompt: str) -> torch.Tensor:
    """The model's scores (logits) at every position of the prompt, [T, V] (kept: a checker asks several times)."""
    b = run.batch(model, [prompt])
    return run.forward(model, b).logits[0].float()


@functools.lru_cache(maxsize=32)
@torch.no_grad()
def all_last_states(model, prompts: tuple) -> torch.Tensor:
    """Every row of the hidden states at each prompt's last token, [L + 1, N, d] (kept: a checker asks several times)."""
    b = run.batch(model, list(prompts))
    out = run.forward(model, b, hidden_states=True)
    return torch.stack([run.last(h.float(), b) for h in out.hidden_states])


def last_states_at(model, prompts, stage: int) -> torch.Tensor:
    """Row ``stage`` of the hidden states (0 the embedding, ℓ + 1 the output of layer ℓ) at each prompt's last token."""
    return all_last_states(model, tuple(prompts))[stage]  # [N, d]
