"""The embedding table: one row per token, and what the rows have learned (Chapter 2).

The table is a V x d matrix of parameters. Looking up a token ID takes its row; the model then
multiplies that row by ``model.embed_scale`` (sqrt(d) for Gemma, 1 for Llama) before layer 0 (the first layer).
Everything here works on the rows as stored in the table, and compares them by cosine
similarity, so the scale does not matter.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from .errors import AnatomyError
from .show import Table
from .tokens import Token, readable, tokenize, tokens_of

__all__ = [
    "Analogy",
    "Projection",
    "analogy",
    "analogy_table",
    "embed",
    "lookup",
    "nearest_table",
    "nearest_tokens",
    "project_2d",
    "unit_table",
]

_REDUCE = (None, "mean", "first")


def _pieces(model, word) -> list[Token]:
    """The tokens of ``word`` (no BOS), or the token with that ID if ``word`` is an int."""
    if isinstance(word, bool) or not isinstance(word, (str, int)):
        raise AnatomyError(f"Give a word (str) or a token ID (int), not {type(word).__name__}.")
    if isinstance(word, int):
        if not 0 <= word < model.vocab_size:
            raise AnatomyError(f"Token ID {word} is out of range: {model.name} has IDs 0 to {model.vocab_size - 1}.")
        return list(tokens_of(model, [word]))
    if word == "":
        raise AnatomyError("The word is empty: give a word that is a single token, such as 'apple'.")
    return tokenize(model, word, add_special_tokens=False)


def _ids(model, word, reduce: str | None) -> list[int]:
    """The token IDs that stand for ``word``: one ID, or the pieces ``reduce`` asks for."""
    if reduce not in _REDUCE:
        raise AnatomyError(f"reduce={reduce!r} is not known: use None (one token only), 'mean' or 'first'.")
    pieces = _pieces(model, word)
    if len(pieces) > 1 and reduce is None:
        shown = ", ".join(t.text for t in pieces)
        raise AnatomyError(
            f"{word!r} is {len(pieces)} tokens for {model.name} ({shown}); pass one token, "
            f"or use reduce='mean' (average of the pieces) or reduce='first' (the row of {pieces[0].text!r})."
        )
    if reduce == "first":
        pieces = pieces[:1]
    return [t.id for t in pieces]


def lookup(model, ids) -> torch.Tensor:
    """Rows of the embedding table for token IDs, exactly as stored (Chapter 2). Shape [*ids.shape, d].

    The model's own embedding step is ``lookup(model, ids) * model.embed_scale``.
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < model.vocab_size):
        raise AnatomyError(f"Token IDs must lie in 0..{model.vocab_size - 1} for {model.name}.")
    return model.embedding_table.detach()[ids]


def embed(model, word, *, reduce: str | None = None) -> torch.Tensor:
    """The token embedding of a word or token ID: its row of the table (Chapter 2). Shape [d].

    A word that is several tokens raises an error unless ``reduce='mean'`` (average of the pieces'
    rows) or ``reduce='first'`` (the first piece's row).
    """
    return lookup(model, _ids(model, word, reduce)).mean(0)  # [d]


# One unit-length copy of the table per model, made on first use (262,144 x 640 floats for
# Gemma: about 0.7 GB). It is rebuilt if the table is modified in place.
_UNIT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def unit_table(model) -> torch.Tensor:
    """The embedding table with every row scaled to length 1, cached per model. Shape [V, d].

    With it, the cosine similarity of a vector with every token is one matrix product.
    """
    table = model.embedding_table
    key = (table.data_ptr(), table._version)
    cached = _UNIT.get(model)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            unit = torch.nn.functional.normalize(table.detach().float(), dim=1)  # [V, d]
        cached = (key, unit)
        _UNIT[model] = cached
    return cached[1]


def _cosines(model, vector: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of ``vector`` with every row of the table. Shape [V]."""
    v = torch.nn.functional.normalize(vector.detach().float(), dim=0)  # [d]
    return unit_table(model) @ v  # [V]


def nearest_tokens(model, word, k: int = 10, *, reduce: str | None = None) -> list[tuple[str, float]]:
    """The k tokens whose embeddings are closest (cosine) to ``word``'s, over the whole vocabulary (Chapter 2).

    Returns (readable token, cosine) pairs, most similar first; the word's own token(s) are left out.
    """
    if not isinstance(k, int) or k < 1:
        raise AnatomyError(f"k must be a positive whole number, not {k!r}.")
    ids = _ids(model, word, reduce)
    cos = _cosines(model, lookup(model, ids).mean(0))  # [V]
    cos[ids] = -float("inf")
    values, idx = cos.topk(k)
    return [(readable(model.tokenizer, i), float(v)) for v, i in zip(values.tolist(), idx.tolist())]


def nearest_table(models, word, k: int = 10) -> Table:
    """The nearest tokens of one word for several models side by side (Chapter 2).

    A model for which ``word`` is not a single token gets one row saying how its tokenizer splits it.
    """
    models = list(models)
    columns: list[tuple] = []
    for m in models:
        pieces = _pieces(m, word)
        if len(pieces) == 1:
            columns.append(tuple((t, round(c, 3)) for t, c in nearest_tokens(m, word, k)))
        else:
            columns.append(((f"not one token: {' + '.join(t.text for t in pieces)}", ""),))
    rows = []
    for r in range(k):
        row: list = [r + 1]
        for col in columns:
            row.extend(col[r] if r < len(col) else ("", ""))
        rows.append(tuple(row))
    heads = ["rank"] + [h for m in models for h in (f"{m.name} token", "cosine")]
    return Table(tuple(heads), tuple(rows), f"Nearest tokens to {word!r} by cosine similarity of table rows")


@dataclass(frozen=True, repr=False)
class Analogy:
    """Where the target lands for Emb(a) - Emb(b) + Emb(c), among all tokens but a, b, c (Chapter 2)."""

    model_name: str
    a: str
    b: str
    c: str
    target: str
    rank: int  # 1 = the target is the nearest token to the result; inputs excluded
    rank_with_inputs: int  # the same rank when a, b and c are left in the race
    cosine: float  # cosine of the result with the target's row
    n_candidates: int  # how many tokens were ranked (V minus the inputs)
    top: tuple[tuple[str, float], ...]  # the nearest tokens to the result, inputs excluded

    def __str__(self) -> str:
        return (f"{self.model_name}: {self.a} - {self.b} + {self.c} -> {self.target!r} at rank {self.rank:,} "
                f"of {self.n_candidates:,} (cosine {self.cosine:.3f})")

    def __repr__(self) -> str:
        nearest = ", ".join(f"{t} {c:.3f}" for t, c in self.top)
        return f"{self}\nnearest to the result: {nearest}"


def analogy(model, a, b, c, target, *, k: int = 5) -> Analogy:
    """Does Emb(a) - Emb(b) + Emb(c) point at Emb(target)? Report the target's rank (Chapter 2).

    Rows are scaled to length 1 before the arithmetic (the usual word2vec recipe), and the result is
    compared by cosine with every token except a, b and c; rank 1 means the target is the nearest.
    All four words must be single tokens.
    """
    ia, ib, ic, it = (_ids(model, w, None)[0] for w in (a, b, c, target))
    unit = unit_table(model)
    query = unit[ia] - unit[ib] + unit[ic]  # [d]
    cos = _cosines(model, query)  # [V]
    excluded = sorted({ia, ib, ic})
    if it in excluded:
        raise AnatomyError(f"The target {target!r} is one of the inputs; pick a target other than {a!r}, {b!r}, {c!r}.")
    t = cos[it]
    rank_with_inputs = int((cos > t).sum()) + 1
    cos[excluded] = -float("inf")
    rank = int((cos > t).sum()) + 1
    values, idx = cos.topk(k)
    top = tuple((readable(model.tokenizer, i), float(v)) for v, i in zip(values.tolist(), idx.tolist()))
    return Analogy(model.name, *(str(w) for w in (a, b, c, target)), rank, rank_with_inputs, float(t),
                   model.vocab_size - len(excluded), top)


def _shown(word) -> str:
    return str(word).replace(" ", "␣")


def analogy_table(models, questions, k: int = 3) -> Table:
    """Analogies ``(a, b, c, target)`` for several models, one row each (Chapter 2).

    A question with a word that is not one token for a model gets a row saying how it splits.
    """
    rows = []
    for a, b, c, target in questions:
        for m in models:
            asked = " ".join((_shown(a), "−", _shown(b), "+", _shown(c), "→", _shown(target)))
            split = [w for w in (a, b, c, target) if len(_pieces(m, w)) != 1]
            if split:
                w = split[0]
                rows.append((m.name, asked, f"{_shown(w)} is not one token: {' + '.join(t.text for t in _pieces(m, w))}", "", ""))
                continue
            r = analogy(m, a, b, c, target, k=k)
            rows.append((m.name, asked, r.rank, r.rank_with_inputs, ", ".join(t for t, _ in r.top)))
    return Table(("model", "Emb(a) − Emb(b) + Emb(c) → target", "rank of target (inputs excluded)",
                  "rank if inputs count", f"nearest {k} tokens (inputs excluded)"), tuple(rows),
                 "Where the target lands among all tokens, by cosine similarity with unit-length rows")


@dataclass(frozen=True)
class Projection:
    """Token embeddings projected on their first two principal components (Chapter 2)."""

    model_name: str
    labels: tuple[str, ...]  # N words, in the order given
    groups: tuple[str, ...]  # N group names, one per word
    xy: torch.Tensor  # [N, 2] coordinates on PC1 and PC2
    explained: tuple[float, float]  # fraction of the variance each component carries
    skipped: tuple[str, ...]  # words left out because they are not one token

    def centre(self, group: str) -> torch.Tensor:
        """The mean position of one group's words in the picture. Shape [2]."""
        if group not in self.groups:
            raise AnatomyError(f"No word of group {group!r} is in this projection; groups: {sorted(set(self.groups))}.")
        return self.xy[torch.tensor([g == group for g in self.groups])].mean(0)

    def gap(self, group: str) -> float:
        """Distance from a group's centre to the nearest centre of another group, in the picture."""
        c = self.centre(group)
        return min(float((c - self.centre(o)).norm()) for o in dict.fromkeys(self.groups) if o != group)


def project_2d(model, groups: dict[str, list[str]], *, skip_multi_token: bool = False) -> Projection:
    """PCA of the unit-length table rows of chosen words, down to 2-D (Chapter 2).

    ``groups`` maps a group name to its words; each word must be one token, or with
    ``skip_multi_token=True`` it is left out (and listed in ``skipped``). Deterministic: an exact
    SVD, with each component's sign fixed so that its largest coefficient is positive.
    """
    if not groups or not all(isinstance(ws, (list, tuple)) for ws in groups.values()):
        raise AnatomyError("Give groups as a dict of group name -> list of words, e.g. {'fruits': ['apple', 'banana']}.")
    labels, names, ids, skipped = [], [], [], []
    for name, words in groups.items():
        for w in words:
            if skip_multi_token and len(_pieces(model, w)) != 1:
                skipped.append(w)
                continue
            ids.append(_ids(model, w, None)[0])
            labels.append(w)
            names.append(name)
    if len(ids) < 3:
        raise AnatomyError(f"Only {len(ids)} of the words are single tokens for {model.name}; a 2-D projection needs at least 3.")
    x = unit_table(model)[ids].double()  # [N, d]
    x = x - x.mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # vh: [N, d]
    pcs = vh[:2]  # [2, d]
    signs = torch.sign(pcs.gather(1, pcs.abs().argmax(1, keepdim=True)))  # [2, 1]
    pcs = pcs * signs
    var = s**2
    explained = (float(var[0] / var.sum()), float(var[1] / var.sum()))
    return Projection(model.name, tuple(labels), tuple(names), (x @ pcs.T).float(), explained, tuple(skipped))
