"""Chapter 10's exercises: grouped-query attention."""

from __future__ import annotations

from ._judge import Case, Mistake, Verdict, _as_int, _models, judge


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
