"""Chapter 2's exercises: nearest neighbours in the embedding table."""

from __future__ import annotations

from ._judge import Case, Mistake, Verdict, _as_int, _models, judge


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
