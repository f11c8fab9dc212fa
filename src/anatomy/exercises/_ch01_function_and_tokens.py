"""Chapter 1's exercises: the next token."""

from __future__ import annotations

from ._judge import _PROMPTS, Case, Mistake, Verdict, _as_int, _models, _scores, judge


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
