"""Chapter 2's exercises: nearest neighbours in the embedding table, the embedding step, analogy ranks."""

from __future__ import annotations

import torch

from .. import embedding
from ._judge import Case, Mistake, Verdict, as_int, default_models, judge


def _nearest(model, token_id: int, k: int, cosine: bool = True) -> list[int]:
    table = model.embedding_table.detach().float()
    rows = table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12) if cosine else table
    sims = rows @ rows[token_id]
    sims[token_id] = -float("inf")
    return sims.topk(k).indices.tolist()


def check_nearest_tokens(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 2: ``fn(model, token_id, k)`` returns the IDs of the k rows nearest by cosine, the token itself left out."""
    cases = []
    for m in default_models():
        for word in (" king", " Paris"):
            tid = m.tokenizer(word, add_special_tokens=False)["input_ids"][0]
            cases.append(Case((m, tid, 5), f"{m.name}, token {tid}", f"{m.name} 的词元 {tid}", _nearest(m, tid, 5)))
    mistakes = (
        Mistake("you ranked the rows by dot product; cosine divides by both lengths first, or long rows always win.",
                "你按点积排序了；余弦要先除以两个向量的长度，否则长的行总会胜出。",
                wrong=lambda m, t, k: _nearest(m, t, k, cosine=False)),
        Mistake("the token itself is in your list; leave it out (every row is nearest to itself).",
                "你的列表里有这个词元自己；要把它排除（每一行都离自己最近）。",
                matches=lambda got, m, t, k: t in [as_int(x) for x in got]),
    )

    def same(got, expected):
        try:
            return [int(x) for x in got] == expected
        except (TypeError, ValueError):
            return False

    return judge("nearest_tokens", fn, cases, mistakes, solution=solution, same=same)


def _rows(model, prompt: str, special: bool = True) -> torch.Tensor:
    ids = model.tokenizer(prompt, add_special_tokens=special, return_tensors="pt")["input_ids"][0]
    return model.embedding_table.detach().float()[ids]  # [T, d]


def check_embedding_step(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 2: ``fn(model, prompt)`` returns the vectors the model hands to its first layer, [T, d].

    The right answer is what the model's own input-embedding module returns for the prompt's IDs."""
    cases = []
    for m in default_models():
        for p in ("I ate an apple", "今天天氣真好！"):
            ids = m.tokenizer(p, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                expected = m.hf.get_input_embeddings()(ids.to(m.device))[0].float().cpu()
            cases.append(Case((m, p), f"{m.name} with {p!r}", f"{m.name} 和 {p!r}", expected))
    mistakes = (
        Mistake("you returned the plain rows of the table; this model multiplies each row by a fixed scale "
                "before layer 0 (√d in some families): multiply by model.embed_scale.",
                "你返回的是嵌入表里原样的行；这个模型在第 0 层之前会把每一行乘上一个固定系数（有的模型族是 √d）："
                "乘上 model.embed_scale。",
                wrong=lambda m, p: _rows(m, p)),
        Mistake("you multiplied by √d on a model that does not scale its rows; use model.embed_scale "
                "(1 in some families, √d in others).",
                "你在一个不缩放的模型上也乘了 √d；用 model.embed_scale（有的模型族是 1，有的是 √d）。",
                wrong=lambda m, p: _rows(m, p) * m.d_model ** 0.5),
        Mistake("you left out the special token the tokenizer puts in front (a <bos> token); the model reads it too.",
                "你漏掉了分词器加在最前面的特殊词元（比如 <bos>）；模型也会读它。",
                wrong=lambda m, p: _rows(m, p, special=False) * m.embed_scale),
    )
    return judge("embedding_step", fn, cases, mistakes, solution=solution)


def _rank(model, ids: tuple[int, int, int, int], cosine: bool = True, leave_out: bool = True) -> int:
    table = model.embedding_table.detach().float()
    unit = table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a, b, c, t = ids
    query = unit[a] - unit[b] + unit[c]
    scores = (unit if cosine else table) @ query  # by cosine, or by dot product with the stored rows
    if leave_out:
        scores[[a, b, c]] = -float("inf")
    return int((scores > scores[t]).sum()) + 1


# the first two of these that are single tokens for a model are asked (each question is a pass over the table)
_ANALOGIES = (("冷", "cold", "small", "小"), (" Paris", " France", " Italy", " Rome"), (" king", " man", " woman", " queen"))


def check_analogy_rank(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 2: ``fn(model, a, b, c, target)`` (token IDs) returns the target's rank by cosine with
    unit(a) − unit(b) + unit(c), the three inputs left out, 1 for the nearest.

    The right answer is ``anatomy.analogy``'s rank, the function the chapter uses."""
    cases = []
    for m in default_models():
        asked = []
        for words in _ANALOGIES:
            pieces = [m.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
            if all(len(p) == 1 for p in pieces):  # a word that is not one token for this model cannot be asked
                asked.append((words, tuple(p[0] for p in pieces)))
        for words, ids in asked[:2]:
            q = "{!r} − {!r} + {!r} → {!r}".format(*words)
            cases.append(Case((m, *ids), f"{m.name}, {q}", f"{m.name} 的 {q}", embedding.analogy(m, *words).rank))
    mistakes = (
        Mistake("the three input tokens are still in your ranking; leave a, b and c out, or the result is "
                "often nearest to one of its own ingredients.",
                "你的排名里还有三个输入词元；要把 a、b、c 排除，否则结果常常离它自己的某个成分最近。",
                wrong=lambda m, a, b, c, t: _rank(m, (a, b, c, t), leave_out=False)),
        Mistake("you ranked by dot product with the stored rows, so long rows win; rank by cosine "
                "(rows scaled to length 1).",
                "你用点积和原样存储的行排序，长的行就会胜出；要按余弦排序（把每一行缩放到长度 1）。",
                wrong=lambda m, a, b, c, t: _rank(m, (a, b, c, t), cosine=False)),
        Mistake("your rank counts from 0; the nearest row has rank 1.",
                "你的排名从 0 开始数；最近的那一行是第 1 名。",
                wrong=lambda m, a, b, c, t: _rank(m, (a, b, c, t)) - 1),
    )
    return judge("analogy_rank", fn, cases, mistakes, solution=solution, same=lambda a, b: as_int(a) == b)
