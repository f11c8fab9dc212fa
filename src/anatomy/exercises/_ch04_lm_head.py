"""Chapter 4's exercises: softmax with a temperature."""

from __future__ import annotations

import torch

from ._judge import Case, Mistake, Verdict, _seeded, judge


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
