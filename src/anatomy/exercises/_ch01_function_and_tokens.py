"""Chapter 1's exercises: the next token, counting tokens, greedy decoding."""

from __future__ import annotations

import functools

import torch

from .. import run

from ._judge import PROMPTS, Case, Mistake, Verdict, as_int, default_models, judge, prompt_scores


def check_greedy_next_token(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 1: ``fn(model, prompt)`` returns the ID of the most probable next token (an int)."""
    cases = [Case((m, p), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", int(prompt_scores(m, p)[-1].argmax()))
             for m in default_models() for p in PROMPTS]
    mistakes = (
        Mistake("you read the scores of the first position; the next token is predicted at the last one ([-1]).",
                "你读的是第一个位置的分数；下一个词元是在最后一个位置（[-1]）预测的。",
                wrong=lambda m, p: int(prompt_scores(m, p)[0].argmax())),
        Mistake("you took the smallest score (argmin); the prediction is the largest (argmax).",
                "你取了最小的分数（argmin）；预测是分数最大的那个（argmax）。",
                wrong=lambda m, p: int(prompt_scores(m, p)[-1].argmin())),
    )
    return judge("greedy_next_token", fn, cases, mistakes, solution=solution, same=lambda a, b: as_int(a) == b)


def _count(model, text: str, special: bool = False) -> int:
    return len(model.tokenizer(text, add_special_tokens=special)["input_ids"])


_TEXTS = ("今天天氣真好！", "naïve café", "兩顆青蘋果")


def check_count_tokens(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 1: ``fn(model, text)`` returns how many tokens the model reads for ``text``, special tokens left out."""
    cases = [Case((m, t), f"{m.name} with {t!r}", f"{m.name} 和 {t!r}", _count(m, t)) for m in default_models() for t in _TEXTS]
    mistakes = (
        Mistake("you counted characters; a token can be several characters or a piece of one: tokenize and count the IDs.",
                "你数的是字符；一个词元可以是好几个字符，也可以是一个字符的碎片：先分词，再数 ID。",
                wrong=lambda m, t: len(t)),
        Mistake("you counted the UTF-8 bytes; the tokenizer merges bytes into tokens: count the IDs it returns.",
                "你数的是 UTF-8 字节；分词器会把字节合并成词元：数它返回的 ID。",
                wrong=lambda m, t: len(t.encode("utf-8"))),
        Mistake("you counted the special token the tokenizer puts in front (a <bos> token); leave it out "
                "(add_special_tokens=False).",
                "你把分词器加在前面的特殊词元（比如 <bos>）也数进去了；不要数它（add_special_tokens=False）。",
                wrong=lambda m, t: _count(m, t, special=True)),
    )
    return judge("count_tokens", fn, cases, mistakes, solution=solution, same=lambda a, b: as_int(a) == b)


@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _greedy(model, prompt: str, n: int) -> tuple[int, ...]:
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]  # [1, T]
    new = []
    for _ in range(n):
        nxt = int(run.forward(model, ids).logits[0, -1].argmax())
        new.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tuple(new)


def check_greedy_continuation(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 1: ``fn(model, prompt, n)`` returns the IDs of the n tokens greedy decoding writes after the prompt."""
    n, p = 3, PROMPTS[0]  # one prompt, three steps: every step is a run of the model
    cases = [Case((m, p, n), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", list(_greedy(m, p, n))) for m in default_models()]
    mistakes = (
        Mistake("every step predicts from the prompt alone; append each chosen token to the input before the next step.",
                "你每一步都只从提示词出发预测；每选出一个词元，都要先把它接到输入后面，再预测下一个。",
                wrong=lambda m, p, k: [_greedy(m, p, 1)[0]] * k),
        Mistake("your list starts with the prompt's IDs; return only the n new tokens.",
                "你的列表以提示词的 ID 开头；只返回新写出的 n 个词元。",
                matches=lambda got, m, p, k: _ints(got) is not None and len(_ints(got)) > k
                and _ints(got)[-k:] == list(_greedy(m, p, k))),
        Mistake("you wrote one token too few or too many; return exactly n IDs.",
                "你写出的词元少了一个或多了一个；正好返回 n 个 ID。",
                matches=lambda got, m, p, k: _ints(got) is not None and abs(len(_ints(got)) - k) == 1),
    )
    return judge("greedy_continuation", fn, cases, mistakes, solution=solution, same=lambda a, b: _ints(a) == b)


def _ints(got) -> list[int] | None:
    try:
        if isinstance(got, torch.Tensor):
            got = got.reshape(-1).tolist()
        return [int(x) for x in got]
    except (TypeError, ValueError, RuntimeError):
        return None
