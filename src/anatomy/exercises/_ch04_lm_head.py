"""Chapter 4's exercises: softmax with a temperature, the LM head by hand, the log-probability of a continuation."""

from __future__ import annotations

import functools

import torch

from .. import hidden, run
from ._judge import PROMPTS, Case, Mistake, Verdict, close, default_models, judge, prompt_scores, seeded_generator


def check_softmax_with_temperature(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 4: ``fn(logits, temperature)`` gives probabilities over the last axis, for any number of rows."""
    g = seeded_generator(1)
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


@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _last_raw(model, prompt: str) -> torch.Tensor:
    """The last layer's raw output at the prompt's last position, before the final norm, [d]."""
    return hidden.hidden_states(model, prompt).states[-1, -1]


@torch.no_grad()
def _head(model, h: torch.Tensor, norm: bool = True, scale: float = 1.0) -> torch.Tensor:
    if norm:
        h = model.final_norm(h.to(model.dtype)).float()
    return h @ (model.embedding_table.detach().float() * scale).T  # [V]


def check_logits_by_hand(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 4: ``fn(model, h)`` takes the last layer's raw output at one position, h [d], and returns the
    model's next-token logits there, [V]: the final norm, then the LM head (the embedding table, tied).

    The right answer is the model's own logits at the last position of each prompt."""
    cases = [Case((m, _last_raw(m, p)), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", prompt_scores(m, p)[-1])
             for m in default_models() for p in PROMPTS]
    mistakes = (
        Mistake("you skipped the final norm; the LM head reads model.final_norm(h), not the layer's raw output.",
                "你跳过了最终归一化；LM Head 读的是 model.final_norm(h)，不是这一层的原始输出。",
                wrong=lambda m, h: _head(m, h, norm=False)),
        Mistake("you multiplied the rows by the embedding scale; the LM head uses the rows as stored "
                "(a √d scale, where a family has one, is applied at the input only).",
                "你把行乘上了嵌入的缩放系数；LM Head 用的是原样存储的行（有 √d 缩放的模型族只在输入端用它）。",
                wrong=lambda m, h: _head(m, h, scale=m.embed_scale)),
        Mistake("you returned probabilities; logits are the scores before softmax.",
                "你返回的是概率；Logit 是 softmax 之前的分数。",
                matches=lambda got, m, h: close(got, torch.softmax(_head(m, h), dim=-1), atol=1e-6)),
    )
    return judge("logits_by_hand", fn, cases, mistakes, solution=solution, same=lambda a, b: close(a, b, atol=1e-3))


@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _continuation_scores(model, prompt: str, ids: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    start = model.tokenizer(prompt, return_tensors="pt")["input_ids"]  # [1, T]
    full = torch.cat([start, torch.tensor([list(ids)])], dim=1)
    return run.forward(model, full.to(model.device)).logits[0].float().cpu(), start.shape[1]


def _logprob(model, prompt: str, ids, shift: int = 0, log: bool = True, first_only: bool = False) -> float:
    ids = tuple(int(i) for i in ids)
    logits, t = _continuation_scores(model, prompt, ids)
    rows = logits[t - 1 + shift: t - 1 + shift + len(ids)]  # position t - 1 predicts the first new token
    scores = torch.log_softmax(rows, dim=-1) if log else rows
    picked = scores[torch.arange(len(ids)), torch.tensor(ids)]
    return float(picked[0] if first_only else picked.sum())


_CONTINUATIONS = {PROMPTS[0]: " Paris. It is", PROMPTS[1]: " four, five"}


def check_continuation_logprob(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 4: ``fn(model, prompt, ids)`` returns log P(ids | prompt), a float: the sum, over the continuation's
    token IDs, of each one's log-probability given the prompt and the tokens before it."""
    cases = []
    for m in default_models():
        for p, text in _CONTINUATIONS.items():
            ids = m.tokenizer(text, add_special_tokens=False)["input_ids"]
            cases.append(Case((m, p, ids), f"{m.name}, {p!r} + {text!r}", f"{m.name} 的 {p!r} + {text!r}",
                              _logprob(m, p, ids)))
    mistakes = (
        Mistake("you read each token's score at its own position; a token is predicted one position earlier "
                "(the scores at the prompt's last position give the first new token).",
                "你在每个词元自己的位置上读分数；词元是在前一个位置被预测的（提示词最后一个位置的分数给出第一个新词元）。",
                wrong=lambda m, p, ids: _logprob(m, p, ids, shift=1)),
        Mistake("you added raw logits; take log_softmax over the vocabulary first, then add.",
                "你加的是原始的 Logit；先在整个词表上取 log_softmax，再相加。",
                wrong=lambda m, p, ids: _logprob(m, p, ids, log=False)),
        Mistake("you returned the probability itself; the exercise asks for its log, the sum of the log-probabilities.",
                "你返回的是概率本身；题目要的是它的对数，也就是各个对数概率之和。",
                matches=lambda got, m, p, ids: close(got, torch.exp(torch.tensor(_logprob(m, p, ids))).item(),
                                                     atol=1e-9, rtol=1e-3)),
        Mistake("you scored only the first token; add the log-probabilities of every token of the continuation.",
                "你只算了第一个词元；要把续写里每个词元的对数概率都加起来。",
                wrong=lambda m, p, ids: _logprob(m, p, ids, first_only=True)),
    )
    return judge("continuation_logprob", fn, cases, mistakes, solution=solution,
                 same=lambda a, b: close(a, b, atol=1e-3, rtol=1e-4))
