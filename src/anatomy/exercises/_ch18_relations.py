"""Chapter 18's exercises: the few-shot prompt, the map's answer, its faithfulness on held-out subjects."""

from __future__ import annotations

import functools

import torch

from .. import run
from ._judge import Case, Mistake, Verdict, close, default_models, judge, seeded_generator

_CAPITALS = (("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"),
             ("Egypt", "Cairo"), ("Greece", "Athens"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"))
_ANTONYMS = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"))


# --- 18.1 the prompt ------------------------------------------------------------------------------------
def check_relation_prompt(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 18: ``fn(demos, subject)`` returns the relation's few-shot prompt: one ``subject: object`` line per
    demonstration pair, then ``subject:`` with nothing after the colon (a str)."""
    from ..relations import relation_prompt

    cases = [Case((list(demos), subject), f"{len(demos)} demonstrations and {subject!r}",
                  f"{len(demos)} 个示范和 {subject!r}", relation_prompt(list(demos), subject))
             for demos, subject in ((_CAPITALS[:4], "Spain"), (_ANTONYMS[:3], "rich"), (_CAPITALS[5:6], "Peru"))]
    lines = lambda demos: "".join(f"{a}: {b}\n" for a, b in demos)  # noqa: E731
    mistakes = (
        Mistake("the prompt ends with a space after the last colon; end it at the colon, since the answer's own token "
                "starts with its space (' Paris').",
                "提示词最后的冒号后面多了一个空格；应该在冒号处结束，因为答案的词元自带前导空格（' Paris'）。",
                wrong=lambda demos, s: lines(demos) + f"{s}: "),
        Mistake("the last demonstration and the subject are on one line: end every demonstration with a newline "
                "(\\n), the last one too.",
                "最后一个示范和主语连在了同一行：每个示范（包括最后一个）都要以换行符（\\n）结尾。",
                wrong=lambda demos, s: "\n".join(f"{a}: {b}" for a, b in demos) + f"{s}:"),
        Mistake("write each pair as 'subject: object', with one space after the colon.",
                "每一对要写成 'subject: object'，冒号后面有一个空格。",
                wrong=lambda demos, s: "".join(f"{a}:{b}\n" for a, b in demos) + f"{s}:"),
    )
    return judge("relation_prompt", fn, cases, mistakes, solution=solution, same=lambda g, e: g == e)


# --- 18.2 the map's answer ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
@torch.no_grad()
def _subjects(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Real subject vectors s [n, d] (the middle layer's output at each capitals prompt's subject, one batched run)
    and the candidates (the capitals' first tokens)."""
    from ..relations import relation_prompt
    from ..tokens import answer_id

    b = run.batch(model, [relation_prompt(_CAPITALS[:4], a)[:-1] for a, _ in _CAPITALS[4:]])  # ends at the subject
    s = run.last(run.run_to(model, b, f"layers.{model.n_layers // 2}"), b).float()  # [n, d]
    return s, torch.tensor(sorted({answer_id(model, " " + o) for _, o in _CAPITALS}))


def _random_map(model, candidates, layers, size: float, seed: int, beta: float):
    """A RelationMap at ``layers`` with seeded random rows of W and b (so that the answer depends on every term);
    ``size`` is the typical length of s, so that β W s and b are comparable. The last layer is the chosen one."""
    from ..relations import RelationMap

    g = seeded_generator(seed)
    k, L, d = len(candidates), len(layers), model.d_model
    weight = torch.randn(L, k, d, generator=g) / size  # [L, k, d]
    bias = beta * torch.randn(L, k, generator=g)  # [L, k]
    return RelationMap(model.name, "random", tuple(layers), candidates, weight, bias, (), (beta,),
                       torch.zeros(L, 1), layers[-1], beta, 0.0)


def check_map_answers(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 18: ``fn(weight, bias, beta, candidates, s)`` returns the token each subject vector gets from the map
    β W s + b read on the candidates: weight [k, d] (the rows of W), bias [k], s [n, d] -> token IDs [n]."""
    cases = []
    for m in default_models():
        s, candidates = _subjects(m)
        for seed, beta in ((0, 3.0), (1, 0.5)):
            mp = _random_map(m, candidates, (m.n_layers // 2,), float(s.norm(dim=-1).mean()), seed, beta)
            cases.append(Case((mp.weight[0], mp.bias[0], beta, mp.candidates, s),
                              f"{m.name}'s capitals (random W, b, β = {beta})", f"{m.name} 的首都（随机的 W、b，β = {beta}）",
                              mp.predict(s)))
    mistakes = (
        Mistake("you returned the position among the candidates (argmax); return the candidate's token ID, "
                "candidates[argmax].",
                "你返回的是在候选词元中的位置（argmax）；要返回候选词元的 ID，即 candidates[argmax]。",
                wrong=lambda w, b, beta, c, s: (beta * s @ w.T + b).argmax(-1)),
        Mistake("you left out β, or put it on the bias too (β (W s + b) ranks the candidates as W s + b does): "
                "the map is β W s + b.",
                "你漏掉了 β，或者把它也乘到了偏置上（β (W s + b) 给候选词元的排序和 W s + b 一样）：映射是 β W s + b。",
                wrong=lambda w, b, beta, c, s: c[(s @ w.T + b).argmax(-1)]),
        Mistake("you took the argmax over the subjects (dim=0); each subject picks among the candidates (the last axis).",
                "你在主语之间取了 argmax（dim=0）；每个主语要在候选词元之间挑选（最后一个轴）。",
                wrong=lambda w, b, beta, c, s: c[(beta * s @ w.T + b).argmax(0) % len(c)]),
    )
    return judge("map_answers", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e) and torch.as_tensor(g).dtype not in (torch.float32, torch.float64))


# --- 18.3 faithfulness on held-out subjects ---------------------------------------------------------------
def _synthetic(model, seed: int):
    """A seeded reading and map of 12 subjects at two layers (the second chosen) on the model's own width and token
    IDs: the map gives the model's answer for 8 of them at the chosen layer, and 4 answers are the expected objects."""
    from ..relations import RelationReading

    g = seeded_generator(seed)
    n, d, k = 12, model.d_model, 10
    layers = (model.n_layers // 4, model.n_layers // 2)
    candidates = torch.arange(1000, 1000 + k)
    vectors = torch.randn(n, 2, d, generator=g)
    mp = _random_map(model, candidates, layers, d ** 0.5, seed, 2.0)  # chosen: layers[1]
    answers = candidates[torch.randint(k, (n,), generator=g)]
    answers[:8] = mp.predict(vectors[:8, 1])
    expected = candidates[torch.randint(k, (n,), generator=g)]
    expected[:4] = answers[:4]
    reading = RelationReading(model.name, "synthetic", (), tuple(f"s{i}" for i in range(n)), tuple(f"o{i}" for i in range(n)),
                              expected, answers, candidates, layers, vectors, torch.zeros(n, d), ((),) * n)
    return mp, reading


def check_faithfulness(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 18: ``fn(lre, reading, test)`` returns the share of the subjects ``test`` (indices into ``reading``) whose
    map answer, from their subject vector at the map's chosen layer, is the model's own answer (a float)."""
    from ..relations import relation_faithfulness

    cases = []
    for m in default_models():
        for seed in (0, 1):
            lre, reading = _synthetic(m, seed)
            test = list(range(2, 12))
            cases.append(Case((lre, reading, test), f"a seeded map and reading of {m.name}'s width (seed {seed})",
                              f"按 {m.name} 的宽度用种子 {seed} 生成的映射和读数",
                              relation_faithfulness(m, lre, reading, test=test, train=[0, 1]).lre))

    def share(lre, reading, idx, li, against):
        return float((lre.predict(reading.vectors[idx, li]) == against[idx]).float().mean())

    mistakes = (
        Mistake("you compared with the expected objects; faithfulness compares with the model's own answers "
                "(reading.answers), right or wrong.",
                "你拿预期的宾语作比较；忠实度比较的是模型自己的答案（reading.answers），无论对错。",
                wrong=lambda lre, r, t: share(lre, r, t, lre.layers.index(lre.layer), r.expected)),
        Mistake("you read the subject vectors of the first layer tried; take those of the chosen layer, "
                "reading.vectors[test, lre.layers.index(lre.layer)].",
                "你读的是试过的第一层的主语向量；要用选中那一层的，即 reading.vectors[test, lre.layers.index(lre.layer)]。",
                wrong=lambda lre, r, t: share(lre, r, t, 0, r.answers)),
        Mistake("you scored every subject; score only the held-out ones, `test`.",
                "你对所有主语都打了分；只对留出的主语 `test` 打分。",
                wrong=lambda lre, r, t: share(lre, r, list(range(len(r.subjects))), lre.layers.index(lre.layer), r.answers)),
    )
    return judge("faithfulness", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-6))
