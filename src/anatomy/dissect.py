"""The dissection lab: count a model's parameters by role, list them by name, read its attention (Chapter 13).

This follows the hands-on half of the lecture: ``num_parameters()``, ``named_parameters()``,
``state_dict()``, and the attention weights that ``output_attentions=True`` returns with eager
attention. Everything works on any model ``anatomy.load`` accepts, including the lecture's
Llama 3.2 3B and Gemma 3 4B (whose text model sits under ``model.language_model``, next to a
vision tower).
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass

import torch

from . import run
from .errors import AnatomyError
from .families.base import get
from .hooks import layer_index, module_at
from .show import Table
from .tokens import Token, tokens_of

__all__ = [
    "Attention",
    "Details",
    "HeadSearch",
    "ParameterBreakdown",
    "attention_weights",
    "find_heads",
    "layer_parameters",
    "parameter_breakdown",
    "parameter_groups",
    "parameter_list",
    "sink_share",
]

#: The roles a parameter can play, in the order tables and figures show them.
ROLES = ("embedding table", "attention", "feed-forward", "norms", "LM head", "other")


# --- parameters by role ----------------------------------------------------------------------


def _norm_modules(model, i: int) -> list[torch.nn.Module]:
    """The norm modules of layer i, as ``model.arch`` lists them (q_norm/k_norm inside attention too)."""
    spec, layer = model.arch.blocks[i], model.layers[i]
    mods = [get(layer, n.path) for n in (spec.attn_norm, spec.ffn_norm, spec.post_attn_norm, spec.post_ffn_norm) if n]
    attn = get(layer, spec.attn.path)
    mods += [get(attn, n.path) for n in (spec.attn.q_norm, spec.attn.k_norm) if n]
    return mods


def _roles(model) -> dict[int, tuple[str, int | None]]:
    """For every parameter object (by id): its role and the index of its layer (None outside the layers)."""
    roles: dict[int, tuple[str, int | None]] = {}
    for i, layer in enumerate(model.layers):
        for module in _norm_modules(model, i):
            for p in module.parameters():
                roles[id(p)] = ("norms", i)
        for part, role in (("attn", "attention"), ("mlp", "feed-forward")):
            for p in module_at(model, f"layers.{i}.{part}")[0].parameters():
                roles.setdefault(id(p), (role, i))
        for p in layer.parameters():
            roles.setdefault(id(p), ("other", i))
    if model.final_norm is not None:
        for p in model.final_norm.parameters():
            roles[id(p)] = ("norms", None)
    roles[id(model.embedding_table)] = ("embedding table", None)
    if model.lm_head is not None and not model.tied:
        for p in model.lm_head.parameters():
            roles.setdefault(id(p), ("LM head", None))
    return roles


def _role_of(roles, p) -> tuple[str, int | None]:
    return roles.get(id(p), ("other", None))


@dataclass(frozen=True)
class ParameterBreakdown:
    """Where a model's parameters are: the embedding table, and each layer's attention, feed-forward and norms (Chapter 13).

    Every parameter is counted once: a tied LM head *is* the embedding table, so it adds nothing.
    ``total`` equals ``model.hf.num_parameters()``.
    """

    model_name: str
    per_layer: torch.Tensor  # [L, 3] int64: attention, feed-forward, norms inside each layer
    embedding: int  # the V x d embedding table (also the output layer when tied)
    final_norm: int  # the norm after the last layer
    lm_head: int  # 0 when tied to the embedding table
    other: int  # anything else: e.g. Gemma 3 4B's vision tower and multimodal projector
    total: int
    tied: bool

    @property
    def totals(self) -> dict[str, int]:
        """Parameters per role over the whole model; the values add up to ``total``."""
        a, f, n = (int(x) for x in self.per_layer.sum(0))
        return {"embedding table": self.embedding, "attention": a, "feed-forward": f,
                "norms": n + self.final_norm, "LM head": self.lm_head, "other": self.other}

    def table(self) -> Table:
        """One row per role: parameters, millions, share of the total."""
        share = lambda n: f"{n / self.total:.1%}" if n == 0 or n / self.total >= 0.001 else f"{n / self.total:.3%}"  # noqa: E731
        rows = tuple((role, f"{n:,}", round(n / 1e6, 1), share(n)) for role, n in self.totals.items() if n or role != "other")
        rows += (("total", f"{self.total:,}", round(self.total / 1e6, 1), "100%"),)
        head = "LM head tied to the embedding table: counted once" if self.tied else "separate LM head"
        return Table(("role", "parameters", "millions", "share"), rows, f"{self.model_name}: {head}")


def parameter_breakdown(model) -> ParameterBreakdown:
    """Count every parameter by role, per layer and in total (Chapter 13).

    Roles come from where a parameter sits: in a norm module, in a layer's attention or
    feed-forward sub-layer, the embedding table, an untied LM head, or elsewhere.
    """
    roles = _roles(model)
    per_layer = torch.zeros(model.n_layers, 3, dtype=torch.int64)
    col = {"attention": 0, "feed-forward": 1, "norms": 2}
    sums: dict[str, int] = defaultdict(int)
    for _, p in model.hf.named_parameters():  # tied parameters are listed once
        role, layer = _role_of(roles, p)
        if layer is not None and role in col:
            per_layer[layer, col[role]] += p.numel()
        elif role == "norms":
            sums["final_norm"] += p.numel()
        else:
            sums[role] += p.numel()
    total = model.hf.num_parameters()
    bd = ParameterBreakdown(model.name, per_layer, sums["embedding table"], sums["final_norm"], sums["LM head"],
                            sums["other"], total, model.tied)
    assert sum(bd.totals.values()) == total, "parameter roles do not add up to num_parameters()"
    return bd


def _shape(p: torch.Tensor) -> str:
    return " × ".join(str(s) for s in p.shape)


def _maps(p: torch.Tensor) -> str:
    """How a weight maps vectors: a [out, in] matrix takes in-vectors to out-vectors."""
    if p.dim() == 2:
        return f"{p.shape[1]} → {p.shape[0]}"
    if p.dim() == 1:
        return f"scales {p.shape[0]} numbers"
    return ""


_INDEX = re.compile(r"\.(\d+)\.")


def parameter_groups(model) -> Table:
    """``named_parameters()`` with the layer number replaced by N: one row per kind of parameter (Chapter 13)."""
    roles = _roles(model)
    groups: dict[str, list] = {}
    for name, p in model.hf.named_parameters():
        key = _INDEX.sub(".N.", name)
        g = groups.setdefault(key, [_shape(p), 0, 0, _role_of(roles, p)[0]])
        if g[0] != _shape(p):
            g[0] = "varies"
        g[1] += 1
        g[2] += p.numel()
    rows = tuple((k, shape, copies, f"{n:,}", role) for k, (shape, copies, n, role) in groups.items())
    rows += (("total", "", sum(g[1] for g in groups.values()), f"{model.hf.num_parameters():,}", ""),)
    return Table(("name (N = layer index)", "shape", "copies", "parameters", "role"), rows,
                 f"{model.name}: named_parameters(), one row per kind")


@dataclass(frozen=True)
class Details:
    """Long output folded away: the page shows ``summary``, a click opens ``content`` (Chapter 13)."""

    summary: str
    content: Table

    def _repr_html_(self) -> str:
        return f"<details><summary>{html.escape(self.summary)}</summary>{self.content._repr_html_()}</details>"

    def __str__(self) -> str:
        return f"{self.summary}\n{self.content}"

    __repr__ = __str__


def parameter_list(model) -> Details:
    """Every entry of ``named_parameters()`` with its shape, folded into a click-to-open list (Chapter 13)."""
    rows = tuple((i, name, _shape(p), f"{p.numel():,}") for i, (name, p) in enumerate(model.hf.named_parameters()))
    summary = f"{model.name}: all {len(rows)} named parameters ({model.hf.num_parameters():,} numbers); click to open"
    return Details(summary, Table(("#", "name", "shape", "parameters"), rows))


def layer_parameters(model, layer: int = 0) -> Table:
    """The parameters of one layer, named relative to the layer, with shape, mapping and role (Chapter 13)."""
    i = layer_index(model, layer)
    roles = _roles(model)
    rows = tuple((name, _shape(p), _maps(p), f"{p.numel():,}", _role_of(roles, p)[0])
                 for name, p in model.layers[i].named_parameters())
    return Table(("name", "shape [out × in]", "maps", "parameters", "role"), rows,
                 f"{model.name}: the parameters of {model.paths['layers']}.{i}")


# --- attention weights -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """Every attention weight of every layer and head for one prompt (Chapter 13).

    ``weights[l, h, i, j]`` is how much token i attends to token j in head h of layer l (0-based,
    as in ``model.layers.l``). Each row sums to 1; causal attention makes j > i exactly 0.
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens, BOS included when the tokenizer adds one
    weights: torch.Tensor  # [L, H, T, T]

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def labels(self) -> list[str]:
        """Readable token texts, one per position."""
        return [t.text for t in self.tokens]

    def position(self, word: str, occurrence: int = 0) -> int:
        """The position of a token that reads as ``word`` (a leading space or ␣ is ignored); ``occurrence`` 0 = the first.

        Counted from 0 like ``anatomy.word_positions`` and ``anatomy.token_vectors``.
        """
        want = word.replace("␣", " ").strip()
        hits = [i for i, t in enumerate(self.tokens) if t.text.replace("␣", " ").strip() == want]
        if isinstance(occurrence, bool) or not isinstance(occurrence, int) or not 0 <= occurrence < len(hits):
            raise AnatomyError(f"{word!r} occurs {len(hits)} time(s) as a token in {self.labels}; pick an occurrence from 0 to {len(hits) - 1} or another word.")
        return hits[occurrence]

    def head(self, layer: int, head: int) -> torch.Tensor:
        """One head's T x T attention weights. Shape [T, T]."""
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise AnatomyError(f"Layer {layer!r} is out of range: {self.model_name} has layers 0 to {self.n_layers - 1}.")
        if not isinstance(head, int) or not 0 <= head < self.n_heads:
            raise AnatomyError(f"Head {head!r} is out of range: {self.model_name} has heads 0 to {self.n_heads - 1} in each layer.")
        return self.weights[layer, head]


@torch.no_grad()
def attention_weights(model, prompt: str) -> Attention:
    """Run the model once with ``output_attentions=True`` (eager attention) and keep every weight (Chapter 13)."""
    ids = run.check_prompt(model, prompt)  # [1, T]
    out = run.forward(model, ids, attentions=True)  # with the eager attention (switched to for the call if needed)
    weights = torch.stack([a[0] for a in out.attentions]).float().cpu()  # [L, H, T, T]
    return Attention(model.name, prompt, tokens_of(model, ids[0]), weights)


@dataclass(frozen=True)
class HeadSearch:
    """Which heads make one token attend to another, best first (Chapter 13)."""

    model_name: str
    source: int  # position of the token that attends (the query)
    target: int  # position of the token attended to (the key)
    source_text: str
    target_text: str
    scores: torch.Tensor  # [L, H] weight from source to target in every head
    ranks: torch.Tensor  # [L, H] rank of target within the source's row (1 = attended most)
    top: tuple[tuple[int, int, float], ...]  # (layer, head, weight), highest weight first
    row_top: tuple[str, ...]  # for each top head: the token the source attends to most

    def table(self) -> Table:
        rows = tuple((layer, head, round(w, 3), int(self.ranks[layer, head]), top)
                     for (layer, head, w), top in zip(self.top, self.row_top))
        return Table(("layer", "head", f"weight {self.source_text} → {self.target_text}", "rank of target in the row", "attended most"),
                     rows, f"{self.model_name}: heads where {self.source_text!r} (position {self.source}) attends to {self.target_text!r} (position {self.target})")

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def __repr__(self) -> str:
        return str(self.table())


def find_heads(attention: Attention, source: int, target: int, k: int = 5) -> HeadSearch:
    """Search all layers and heads for the largest weight from position ``source`` to position ``target`` (Chapter 13)."""
    T = len(attention.tokens)
    for what, pos in (("source", source), ("target", target)):
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < T:
            raise AnatomyError(f"{what}={pos!r} is not a position of this prompt: use 0 to {T - 1}, e.g. attention.position('apple').")
    if target > source:
        raise AnatomyError(f"Position {source} cannot attend to the later position {target}: attention is causal, so pick target <= source.")
    if not isinstance(k, int) or k < 1:
        raise AnatomyError(f"k must be a positive whole number, not {k!r}.")
    rows = attention.weights[:, :, source, :]  # [L, H, T]
    scores = rows[:, :, target]  # [L, H]
    ranks = (rows > scores.unsqueeze(-1)).sum(-1) + 1  # [L, H]
    values, flat = scores.flatten().topk(min(k, scores.numel()))
    H = attention.n_heads
    top = tuple((int(f) // H, int(f) % H, float(v)) for v, f in zip(values, flat))
    row_top = tuple(attention.labels[int(rows[l, h].argmax())] for l, h, _ in top)
    return HeadSearch(attention.model_name, source, target, attention.labels[source], attention.labels[target],
                      scores, ranks, top, row_top)


def sink_share(attention: Attention) -> torch.Tensor:
    """Share of attention that goes to position 0, per layer and head (Chapter 13). Shape [L, H].

    Averaged over the positions 1..T-1 (position 0 can only attend to itself). Xiao et al. (2023)
    call a first token that collects this mass an attention sink.
    """
    if len(attention.tokens) < 2:
        raise AnatomyError("The prompt is a single token; an attention sink needs at least two positions.")
    return attention.weights[:, :, 1:, 0].mean(-1)  # [L, H]
