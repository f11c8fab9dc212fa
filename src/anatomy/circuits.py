"""Activation patching, attribution patching and back-patching: which parts carry the answer (Chapter 17).

Run a *clean* prompt ("The Eiffel Tower is in the city of" → Paris) and a *corrupted* one of the same
token length ("The Colosseum is in the city of" → Rome). Copy one activation of the clean run into
the corrupted run and measure how much of the answer comes back (Meng et al. 2022; Wang et al.
2022). The measure is the logit difference ``logit(clean answer) − logit(corrupted answer)`` at the
last position, as a fraction of the way from the corrupted run (0) to the clean run (1).

* ``activation_patching``: every layer's output ``"layers.{l}"`` at every position (and the
  embedding), and every attention head's output (its slice of ``"layers.{l}.attn.o.input"``, where
  the heads enter W_O concatenated) at all positions at once. Patched runs go through the model in
  batches, one batch row per patch.
* ``attribution_patching``: the first-order estimate of the same grid (Nanda 2023; Syed et al.
  2023): one forward and one backward pass on the corrupted run give the gradient of the logit
  difference, and the effect of a patch is estimated as (clean − corrupted activation) · gradient.
* ``back_patching``: for two-hop questions (Biran et al. 2024), a later layer's vector at the last
  position replaces an earlier layer's vector at the same position of the same prompt, so the
  model gets to run its upper layers again on what it had already worked out.

Single patches use ``anatomy.patching`` (Chapter 8), which this module generalises to batches.
Layers count like the hook places of ``anatomy.hooks``: layer ``l`` is ``"layers.{l}"``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .run import check_prompt
from .show import Table
from .tokens import Token, answer_id, readable, tokenize

__all__ = ["AttentionKnockout", "BackPatching", "ComponentPatching", "FactPair", "FactPairs", "Faithfulness", "HeadPatching", "KINDS",
           "PatchingResult", "activation_patching", "attention_knockout", "attribution_components", "attribution_patching",
           "back_patching", "circuit_faithfulness", "component_patching", "fact_pairs", "facts", "head_patching", "logit_difference",
           "next_token_ids"]


def _pair(model, clean: str, corrupted: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = check_prompt(model, clean), check_prompt(model, corrupted)  # [1, T] each
    if a.shape != b.shape:
        show = lambda ids: " | ".join(readable(model.tokenizer, i) for i in ids[0])  # noqa: E731
        raise AnatomyError(
            f"The clean and corrupted prompts must have the same number of tokens for {model.name}, "
            f"but they have {a.shape[1]} ({show(a)}) and {b.shape[1]} ({show(b)}); reword one so that positions line up."
        )
    return a, b


def _difference(logits: torch.Tensor, a: int, b: int) -> torch.Tensor:
    return logits[..., a] - logits[..., b]


@torch.no_grad()
def logit_difference(model, prompt: str, clean_answer, corrupted_answer) -> float:
    """logit(clean answer) − logit(corrupted answer) at the last position of ``prompt`` (Chapter 17)."""
    rows = [answer_id(model, clean_answer), answer_id(model, corrupted_answer)]
    logits = run.head(model, _final(model, check_prompt(model, prompt)), rows=rows).float()[0]  # [2]
    return float(logits[0] - logits[1])


def _final(model, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    """The final-norm vector at the last position of each row of ``ids`` [B, T]: [B, d] (the LM head is ``run.head``'s)."""
    return run.forward(model, ids.to(model.device), logits=None, **kwargs).last_hidden_state[:, -1]


@dataclass(frozen=True)
class PatchingResult:
    """Logit differences after patching each part of the clean run into the corrupted run (Chapter 17).

    ``method`` is "exact" (the patched runs were run) or "attribution" (first-order estimates).
    The recovered fraction is (patched − corrupted) / (clean − corrupted): 0 = nothing came back,
    1 = the clean answer's full lead came back.
    """

    model_name: str
    method: str
    clean_prompt: str
    corrupted_prompt: str
    clean_tokens: tuple[Token, ...]
    corrupted_tokens: tuple[Token, ...]
    answers: tuple[str, str]  # readable clean answer token, corrupted answer token
    answer_ids: tuple[int, int]
    clean_difference: float  # logit difference of the clean run
    corrupted_difference: float  # logit difference of the corrupted run
    embedding: torch.Tensor  # [T] logit difference with the embedding patched at one position
    residual: torch.Tensor  # [L, T] with "layers.l" patched at one position
    heads: torch.Tensor  # [L, H] with one head's output patched at every position
    seconds: float  # wall-clock time of the computation

    def _fraction(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.corrupted_difference) / (self.clean_difference - self.corrupted_difference)

    @property
    def recovered_embedding(self) -> torch.Tensor:
        """[T] the recovered fraction per position, embedding patched."""
        return self._fraction(self.embedding)

    @property
    def recovered(self) -> torch.Tensor:
        """[L, T] the recovered fraction per layer and position."""
        return self._fraction(self.residual)

    @property
    def recovered_heads(self) -> torch.Tensor:
        """[L, H] the recovered fraction per layer and head."""
        return self._fraction(self.heads)

    @property
    def n_layers(self) -> int:
        return self.residual.shape[0]

    def table(self, k: int = 5) -> Table:
        """The k cells of the layer × position grid and the k heads that bring back the most."""
        L, T = self.recovered.shape
        rows = []
        for i in self.recovered.nan_to_num(float("-inf")).flatten().topk(min(k, L * T)).indices.tolist():
            l, p = divmod(i, T)
            rows.append((f"layers.{l}", f"{p} ({self.clean_tokens[p].text} / {self.corrupted_tokens[p].text})", float(self.recovered[l, p])))
        H = self.heads.shape[1]
        for i in self.recovered_heads.nan_to_num(float("-inf")).flatten().topk(min(k, L * H)).indices.tolist():
            l, h = divmod(i, H)
            rows.append((f"layers.{l}.attn head {h}", "all", float(self.recovered_heads[l, h])))
        caption = (f"{self.model_name}, {self.method} patching: “{self.clean_prompt}” → “{self.corrupted_prompt}”, "
                   f"logit({self.answers[0]}) − logit({self.answers[1]}): clean {self.clean_difference:.2f}, corrupted {self.corrupted_difference:.2f}")
        return Table(("patched", "position (clean / corrupted token)", "recovered fraction"), tuple(rows), caption)


def _places(model) -> tuple[list[str], list[str]]:
    L = model.n_layers
    return [f"layers.{l}" for l in range(L)], [f"layers.{l}.attn.o.input" for l in range(L)]


def _result(model, method, clean, corrupted, answers, clean_d, corrupt_d, emb, res, heads, t0) -> PatchingResult:
    ct, rt = tuple(tokenize(model, clean)), tuple(tokenize(model, corrupted))
    names = (readable(model.tokenizer, answers[0]), readable(model.tokenizer, answers[1]))
    return PatchingResult(model.name, method, clean, corrupted, ct, rt, names, answers, float(clean_d), float(corrupt_d),
                          emb.float().cpu(), res.float().cpu(), heads.float().cpu(), time.perf_counter() - t0)


@contextlib.contextmanager
def _patch_rows(model, place: str, rows: torch.Tensor, positions, values: torch.Tensor, cols: slice | None = None):
    """Inside the block, batch row ``rows[i]`` of ``place`` gets ``values[i]`` at ``positions[i]``
    (a position, or ``slice(None)`` for all) and, if given, only in the last-axis slice ``cols``."""

    def overwrite(h: torch.Tensor) -> torch.Tensor:  # h: [B, T, width]
        h = h.clone()
        for r, p, v in zip(rows.tolist(), positions, values):
            if cols is None:
                h[r, p] = v.to(h.dtype)
            else:
                h[r, p, cols] = v.to(h.dtype)
        return h

    with hooks.edit(model, place, overwrite):
        yield


def _check_batch(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AnatomyError(f"batch_size={batch_size!r} is not allowed: pass a positive number of patched runs per forward pass, e.g. 64.")
    return batch_size


@torch.no_grad()
def activation_patching(model, clean: str, corrupted: str, clean_answer, corrupted_answer, *,
                        layers: Iterable[int] | None = None, heads: bool = True, batch_size: int = 64) -> PatchingResult:
    """Patch each part of the clean run into the corrupted run and read the logit difference (Chapter 17).

    Parts: the embedding and every layer's output ``"layers.l"`` at each position (one position per
    run), and if ``heads`` every attention head's output at all positions (its slice of
    ``"layers.l.attn.o.input"``). ``(L + 1) * T + L * H`` patched runs, ``batch_size`` per forward pass;
    ``layers`` limits the layers patched (the other rows are NaN).
    """
    _check_batch(batch_size)
    t0 = time.perf_counter()
    a_ids, b_ids = _pair(model, clean, corrupted)
    ans = (answer_id(model, clean_answer), answer_id(model, corrupted_answer))
    L, T, H, hd = model.n_layers, a_ids.shape[1], model.n_heads, model.head_dim
    resid, onames = _places(model)
    chosen = list(range(L)) if layers is None else sorted({hooks.layer_index(model, l) for l in layers})
    two = list(ans)  # the two answers' LM-head rows: logits [..., 2]
    with hooks.capture(model, "embedding", *resid, *onames) as seen:
        clean_logits = run.head(model, _final(model, a_ids), rows=two)[0].float()
    corrupt_logits = run.head(model, _final(model, b_ids), rows=two)[0].float()

    # one patch per run: (place, position or all, columns or all, value)
    jobs = [("embedding", p, None, seen["embedding"][0, p]) for p in range(T)]
    jobs += [(resid[l], p, None, seen[resid[l]][0, p]) for l in chosen for p in range(T)]
    if heads:
        jobs += [(onames[l], slice(None), slice(h * hd, (h + 1) * hd), seen[onames[l]][0, :, h * hd:(h + 1) * hd])
                 for l in chosen for h in range(H)]
    out = torch.empty(len(jobs))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        with contextlib.ExitStack() as stack:
            groups: dict[tuple, list] = {}
            for r, (place, p, cols, v) in enumerate(chunk):
                groups.setdefault((place, None if cols is None else (cols.start, cols.stop)), []).append((r, p, v))
            for (place, cols), items in groups.items():
                rows = torch.tensor([r for r, _, _ in items])
                stack.enter_context(_patch_rows(model, place, rows, [p for _, p, _ in items], [v for _, _, v in items],
                                                None if cols is None else slice(*cols)))
            logits = run.head(model, _final(model, b_ids.expand(len(chunk), T)), rows=two).float()  # [B, 2]
        out[start:start + len(chunk)] = _difference(logits, 0, 1)
    n = len(chosen)
    emb = out[:T]
    res, hds = torch.full((L, T), float("nan")), torch.full((L, H), float("nan"))
    res[chosen] = out[T:T + n * T].view(n, T)
    if heads:
        hds[chosen] = out[T + n * T:].view(n, H)
    return _result(model, "exact", clean, corrupted, ans, _difference(clean_logits, 0, 1),
                   _difference(corrupt_logits, 0, 1), emb, res, hds, t0)


def attribution_patching(model, clean: str, corrupted: str, clean_answer, corrupted_answer) -> PatchingResult:
    """The first-order estimate of ``activation_patching``'s grid, from one backward pass (Chapter 17).

    For every part, (clean activation − corrupted activation) · ∂(logit difference)/∂(activation),
    with the gradient taken on the corrupted run, estimates how much patching that part changes the
    logit difference. One clean forward pass, one corrupted forward pass and one backward pass,
    however many parts there are.
    """
    t0 = time.perf_counter()
    a_ids, b_ids = _pair(model, clean, corrupted)
    ans = (answer_id(model, clean_answer), answer_id(model, corrupted_answer))
    L, T, H, hd = model.n_layers, a_ids.shape[1], model.n_heads, model.head_dim
    resid, onames = _places(model)
    places = ["embedding", *resid, *onames]
    rows = list(ans)  # the two answers' LM-head rows: logits [2]
    with torch.no_grad(), hooks.capture(model, *places) as clean_seen:
        clean_logits = run.head(model, _final(model, a_ids), rows=rows)[0].float()

    with hooks.graph(model, *places) as kept:
        logits = run.head(model, _final(model, b_ids), rows=rows)[0].float()  # [2]
        diff = _difference(logits, 0, 1)
        grads = torch.autograd.grad(diff, [kept[n] for n in places])
    grad = dict(zip(places, grads))
    with torch.no_grad():
        est = lambda n: ((clean_seen[n][0] - kept[n][0].detach()) * grad[n][0])  # noqa: E731  [T, width]
        d = diff.detach()
        emb = d + est("embedding").sum(-1)  # [T]
        res = d + torch.stack([est(n).sum(-1) for n in resid])  # [L, T]
        hds = d + torch.stack([est(n).view(T, H, hd).sum(dim=(0, 2)) for n in onames])  # [L, H]
    return _result(model, "attribution", clean, corrupted, ans, _difference(clean_logits, 0, 1), d,
                   emb, res, hds, t0)


@dataclass(frozen=True)
class BackPatching:
    """Back-patching one prompt: a later layer's last-position vector put into an earlier layer (Chapter 17).

    ``prob[s, t]`` is the answer's probability when the vector that layer ``s`` outputs at the last
    position replaces layer ``t``'s output there (only ``s > t`` is run; other cells are NaN), and
    ``top_ids[s, t]`` is the model's most likely next token then (-1 where not run).
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]
    answer: str  # readable answer token
    answer_id: int
    base_prob: float  # the answer's probability without patching
    base_top: str  # the model's own most likely next token, readable
    prob: torch.Tensor  # [L, L] source layer × target layer
    top_ids: torch.Tensor  # [L, L]

    @property
    def answered(self) -> torch.Tensor:
        """[L, L] True where the patched model's most likely next token is the answer."""
        return self.top_ids == self.answer_id

    @property
    def base_answered(self) -> bool:
        return self.base_top == self.answer

    def best(self) -> tuple[int, int, float]:
        """(source layer, target layer, answer probability) of the pair that raises the answer most."""
        p = torch.nan_to_num(self.prob, nan=-1.0)
        s, t = divmod(int(p.argmax()), p.shape[1])
        return s, t, float(self.prob[s, t])


@torch.no_grad()
def back_patching(model, prompt: str, answer, *, sources: Iterable[int] | None = None,
                  targets: Iterable[int] | None = None, batch_size: int = 128) -> BackPatching:
    """Put layer s's last-position vector into layer t < s of the same prompt, for every such pair (Chapter 17).

    Biran et al. (2024, "Hopping too late") found that a model often resolves the bridge entity of a
    two-hop question too late to use it; running the upper layers again on a later vector can fix
    the answer. The earlier positions are not changed by a patch at the last position, so they
    run once (their keys and values are cached) and each patched run is one token long.
    """
    _check_batch(batch_size)
    ids = check_prompt(model, prompt)  # [1, T]
    if ids.shape[1] < 2:
        raise AnatomyError("The prompt is one token long: back-patching needs a question of at least two tokens.")
    aid = answer_id(model, answer)
    L = model.n_layers
    sources = list(range(L)) if sources is None else [hooks.layer_index(model, s) for s in sources]
    targets = list(range(L)) if targets is None else [hooks.layer_index(model, t) for t in targets]
    pairs = [(s, t) for s in sources for t in targets if s > t]
    if not pairs:
        raise AnatomyError("No pair of layers to back-patch: each source layer must be later than some target layer.")
    resid = [f"layers.{l}" for l in range(L)]
    with hooks.capture(model, *resid) as seen:
        base = run.head(model, _final(model, ids))[0].float()  # [V]
    vec = torch.stack([seen[n][0, -1] for n in resid])  # [L, d] every layer's vector at the last position
    prefix = run.forward(model, ids[:, :-1].to(model.device), logits=None, keep=True).past_key_values
    last = ids[:, -1:]
    prob = torch.full((L, L), float("nan"))
    top = torch.full((L, L), -1, dtype=torch.long)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(chunk))
        with contextlib.ExitStack() as stack:
            by_target: dict[int, list[tuple[int, int]]] = {}
            for r, (s, t) in enumerate(chunk):
                by_target.setdefault(t, []).append((r, s))
            for t, items in by_target.items():
                rows = torch.tensor([r for r, _ in items])
                stack.enter_context(_patch_rows(model, resid[t], rows, [-1] * len(items), [vec[s] for _, s in items]))
            logits = run.head(model, _final(model, last.expand(len(chunk), 1), past=cache)).float()  # [B, V]
        p = torch.softmax(logits, -1)
        for r, (s, t) in enumerate(chunk):
            prob[s, t] = p[r, aid]
            top[s, t] = int(p[r].argmax())
    tokens = tuple(tokenize(model, prompt))
    return BackPatching(model.name, prompt, tokens, readable(model.tokenizer, aid), aid,
                        float(torch.softmax(base, -1)[aid]), readable(model.tokenizer, int(base.argmax())), prob, top)


# --- a dataset of facts, and patching components over it ---------------------------------------------
KINDS = ("layer", "attn", "mlp")  # a layer's whole output, its attention sub-layer's output, its MLP's output


@dataclass(frozen=True)
class FactPair:
    """Two prompts of one relation with the same number of tokens, each answered right by the model (Chapter 17).

    The answers are the model's own top tokens, each a first piece of the true answer
    (" Paris", or 柏 for 柏林). ``subject`` holds the positions where the two prompts' tokens differ.
    """

    relation: str
    clean: str
    corrupted: str
    answers: tuple[str, str]  # readable tokens: clean answer, corrupted answer
    answer_ids: tuple[int, int]
    subject: tuple[int, ...]  # positions where the tokens differ
    n_tokens: int
    split: str  # "dev" (choices are made here) or "test" (results are reported here)


@dataclass(frozen=True)
class FactPairs:
    """The clean/corrupted pairs a model answers right, in one language (Chapter 17)."""

    model_name: str
    language: str
    pairs: tuple[FactPair, ...]
    n_facts: int  # facts of this language in the list
    n_right: int  # of them answered right (top token = first piece of the answer)
    right_prompts: tuple[str, ...]  # every prompt answered right: the reference set of mean ablation
    seed: int

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def dev(self) -> tuple[FactPair, ...]:
        return tuple(p for p in self.pairs if p.split == "dev")

    @property
    def test(self) -> tuple[FactPair, ...]:
        return tuple(p for p in self.pairs if p.split == "test")

    def table(self, k: int = 6) -> Table:
        rows = tuple((p.split, p.relation, p.clean, p.corrupted, f"{p.answers[0]} / {p.answers[1]}") for p in self.pairs[:k])
        return Table(("split", "relation", "clean", "corrupted", "answers"), rows,
                     f"{self.model_name}, {self.language}: {len(self)} pairs ({len(self.dev)} dev, {len(self.test)} test) "
                     f"from {self.n_right} of {self.n_facts} facts answered right")


def facts(language: str = "en") -> tuple[tuple[str, str, str, str], ...]:
    """The book's list of facts, (relation, template, subject, answer), in English or Chinese (Chapter 17)."""
    if language not in ("en", "zh"):
        raise AnatomyError(f"language={language!r} is not available: use 'en' or 'zh'.")
    from importlib import resources
    import csv
    text = resources.files("anatomy").joinpath("data/facts.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    out = [(r["relation"], r["template"], r["subject"], r["answer"]) for r in rows]
    chinese = lambda s: any("\u4e00" <= c <= "\u9fff" for c in s)  # noqa: E731
    return tuple(f for f in out if chinese(f[1]) == (language == "zh"))


def _memo(model, key: tuple, compute, keep: int = 8):
    """``compute()``, kept on the model object for the last ``keep`` keys asked (dropped with the model).

    A chapter that asks several times for the same reference runs (another seed of fact_pairs,
    several circuits against one reference set) runs them once. Callers only read the result.
    """
    memo = model.__dict__.setdefault("_circuits_memo", {})
    if key not in memo:
        memo[key] = compute()
        while len(memo) > keep:
            memo.pop(next(iter(memo)))
    return memo[key]


@torch.no_grad()
def next_token_ids(model, prompts: Sequence[str], *, batch_size: int = 32) -> tuple[int, ...]:
    """The model's most likely next token after each prompt, as token IDs (Chapter 17).

    The same top token as ``next_token(model, prompt).top_ids[0]``, for many prompts in a few
    padded batches (prompts of similar length together), the LM head at the last token only.
    """
    prompts = tuple(run.prompts(prompts))
    return _memo(model, ("next_token_ids", prompts, batch_size), lambda: _next_token_ids(model, prompts, batch_size))


def _next_token_ids(model, prompts: tuple[str, ...], batch_size: int) -> tuple[int, ...]:
    out = [0] * len(prompts)
    for idx, b in run.batches(model, prompts, batch_size):
        h = run.last(run.run_to(model, b, "final_norm"), b)  # [B, d]
        for i, t in zip(idx, run.head(model, h).argmax(-1).tolist()):
            out[i] = int(t)
    return tuple(out)


def fact_pairs(model, language: str = "en", *, n: int = 24, dev: int = 8, seed: int = 0) -> FactPairs:
    """Up to ``n`` clean/corrupted pairs of facts the model answers right, ``dev`` of them for choices (Chapter 17).

    A fact is answered right when the model's top next token is a first piece of the answer. Facts
    of one relation whose prompts have the same number of tokens are paired in a seeded random
    cycle (each subject in at most two pairs, the two answers different tokens).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not isinstance(dev, int) or not 0 <= dev < n:
        raise AnatomyError(f"n={n!r}, dev={dev!r}: pass a positive number of pairs n and 0 <= dev < n.")
    rows = facts(language)
    prompts = [t.format(s) for _, t, s, _ in rows]
    tops = next_token_ids(model, prompts)
    right = [i for i, (t, (_, _, _, a)) in enumerate(zip(tops, rows))
             if model.tokenizer.decode([t]).strip() and a.startswith(model.tokenizer.decode([t]))]
    ids = {i: check_prompt(model, prompts[i])[0].tolist() for i in right}
    groups: dict[tuple[str, int], list[int]] = {}
    for i in right:
        groups.setdefault((rows[i][0], len(ids[i])), []).append(i)
    g = torch.Generator().manual_seed(seed)
    candidates = []
    for key in sorted(groups):
        members = [groups[key][j] for j in torch.randperm(len(groups[key]), generator=g).tolist()]
        k = len(members)
        cycle = [(members[j], members[(j + 1) % k]) for j in range(k if k > 2 else k - 1)]
        candidates += [(a, b) for a, b in cycle if tops[a] != tops[b]]
    order = torch.randperm(len(candidates), generator=g).tolist()[:n]
    pairs = []
    for rank, c in enumerate(order):
        a, b = candidates[c]
        subject = tuple(p for p, (x, y) in enumerate(zip(ids[a], ids[b])) if x != y)
        pairs.append(FactPair(rows[a][0], prompts[a], prompts[b],
                              (readable(model.tokenizer, tops[a]), readable(model.tokenizer, tops[b])), (tops[a], tops[b]),
                              subject, len(ids[a]), "dev" if rank < dev else "test"))
    return FactPairs(model.name, language, tuple(pairs), len(rows), len(right), tuple(prompts[i] for i in right), seed)


def _ids_of(model, prompt: str) -> torch.Tensor:
    return check_prompt(model, prompt).to(model.device)  # [1, T]


@torch.no_grad()
def _differences(model, ids: torch.Tensor, answer_ids, jobs: Sequence, batch_size: int = 64) -> torch.Tensor:
    """Logit differences of ``ids`` [1, T] run once per job, each job patching some places. Returns [len(jobs)].

    A job is a list of edits ``(place, positions, cols, value)``: at ``positions`` (absolute) of
    ``place``, columns ``cols`` (a slice, a tensor of column indices, or None for all) get ``value`` [len(positions), width].
    """
    return _differences_of(model, [(ids, answer_ids, jobs)], batch_size)[0]


@torch.no_grad()
def _differences_of(model, tasks: Sequence, batch_size: int = 64) -> list[torch.Tensor]:
    """``_differences`` for many prompts at once: ``tasks`` = [(ids [1, T], answer_ids, jobs)], one [len(jobs)] per task.

    Positions before a job's first edited position are the same in every run of its prompt: they
    run once (their keys and values are cached) and only the rest of the prompt runs per job. Jobs
    of every task whose prompts have the same length and whose first edit is at the same position
    share their forward passes (``batch_size`` runs per pass), whichever prompt they patch.
    """
    out = [torch.empty(len(jobs)) for _, _, jobs in tasks]
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (T, first edited position) -> [(task, job)]
    for i, (ids, _, jobs) in enumerate(tasks):
        T = ids.shape[1]
        for j, edits in enumerate(jobs):
            groups.setdefault((T, min(min(p) for _, p, _, _ in edits) if edits else T - 1), []).append((i, j))
    for (T, s), members in groups.items():
        owners = sorted({i for i, _ in members})
        row_of = {i: k for k, i in enumerate(owners)}
        ids = torch.cat([tasks[i][0] for i in owners])  # [n, T] every prompt of this group
        prefix = run.forward(model, ids[:, :s], logits=None, keep=True).past_key_values if s > 0 else None
        for c in range(0, len(members), batch_size):
            chunk = members[c:c + batch_size]
            which = torch.tensor([row_of[i] for i, _ in chunk])  # [B] the prompt of each run
            by_place: dict[str, list] = {}  # one hook per place, however many heads' columns it writes
            for r, (i, j) in enumerate(chunk):
                for place, positions, cols, value in tasks[i][2][j]:
                    by_place.setdefault(place, []).append((r, [p - s for p in positions], cols, value))
            cache = None
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_select_indices(which.to(ids.device))
            with contextlib.ExitStack() as stack:
                for place, items in by_place.items():
                    stack.enter_context(hooks.edit(model, place, _writer(items)))
                h = run.forward(model, ids[which.to(ids.device), s:], logits=None,
                                past=cache).last_hidden_state[:, -1]  # [B, d], after the final norm
            two = _answer_logits(model, h, [tasks[i][1] for i, _ in chunk]).cpu()  # [B, 2]
            d = two[:, 0] - two[:, 1]  # [B]
            for r, (i, j) in enumerate(chunk):
                out[i][j] = d[r]
    return out


def _answer_logits(model, h: torch.Tensor, answer_ids: Sequence) -> torch.Tensor:
    """[B, 2] each row's two answer logits: h [B, d] final-norm vectors, ``answer_ids`` one (clean, corrupted) pair per row.

    Only the LM-head rows of the answers asked for are computed (``run.head(rows=...)``).
    """
    rows = sorted({int(a) for pair in answer_ids for a in pair})
    col = {a: k for k, a in enumerate(rows)}
    logits = run.head(model, h, rows=rows).float()  # [B, len(rows)]
    idx = torch.tensor([[col[int(a)], col[int(b)]] for a, b in answer_ids], device=logits.device)  # [B, 2]
    return logits.gather(1, idx)


def _writer(items):
    def write(h: torch.Tensor) -> torch.Tensor:  # h: [B, T', width]
        h = h.clone()
        for r, positions, cols, value in items:
            v = value.to(h)
            if cols is None:
                h[r, positions] = v
            elif isinstance(cols, torch.Tensor):  # chosen columns [k]: value [len(positions), k]
                h[r, torch.tensor(positions, device=h.device)[:, None], cols.to(h.device)] = v
            else:
                h[r, positions, cols] = v
        return h
    return write


def _clean_and_corrupted(model, pair: FactPair, places: Sequence[str]):
    """Both prompts' ids [1, T], their logit differences, and each place's values [T, width] in each run."""
    return _clean_and_corrupted_of(model, [pair], places)[0]


@torch.no_grad()
def _clean_and_corrupted_of(model, pairs: Sequence[FactPair], places: Sequence[str]) -> list:
    """``_clean_and_corrupted`` of every pair: the prompts of one length run together, one pass per side and length."""
    out: list = [[None, None] for _ in pairs]
    by_length: dict[int, list[int]] = {}
    for n, pair in enumerate(pairs):
        by_length.setdefault(pair.n_tokens, []).append(n)
    for members in by_length.values():
        for side in (0, 1):
            ids = [_ids_of(model, (pairs[n].clean, pairs[n].corrupted)[side]) for n in members]  # [1, T] each
            with hooks.capture(model, *places) as seen:
                h = run.forward(model, torch.cat(ids), logits=None).last_hidden_state[:, -1]  # [n, d], no padding
            for k, n in enumerate(members):
                logits = run.head(model, h[k], rows=list(pairs[n].answer_ids)).float()  # [2]
                out[n][side] = (ids[k], float(logits[0] - logits[1]), {p: seen[p][k] for p in places})
    return [tuple(o) for o in out]


def _group(pair: FactPair, position: str) -> tuple[int, ...]:
    if position == "subject":
        return pair.subject
    if position == "last":
        return (pair.n_tokens - 1,)
    raise AnatomyError(f"position={position!r} is not a group of positions: use 'subject' or 'last'.")


@dataclass(frozen=True)
class ComponentPatching:
    """Patching each layer's output, attention output and MLP output over a set of fact pairs (Chapter 17).

    ``denoised[n, k, l, g]``: the logit difference of pair n's corrupted run with the clean run's
    part k (``KINDS``: "layer", "attn", "mlp") of layer l written in at the positions of group g
    (``positions``: "subject" = where the prompts differ, "last"). ``noised``: the clean run with
    the corrupted run's part written in. NaN where not run.
    """

    model_name: str
    language: str
    pairs: tuple[FactPair, ...]
    layers: tuple[int, ...]
    positions: tuple[str, ...]
    clean: torch.Tensor  # [N] logit difference of each clean run
    corrupted: torch.Tensor  # [N] of each corrupted run
    denoised: torch.Tensor  # [N, 3, L, G]
    noised: torch.Tensor  # [N, 3, L, G]
    seconds: float

    @property
    def recovered(self) -> torch.Tensor:
        """[N, 3, L, G] share of the clean run's lead brought back into the corrupted run (1 = all)."""
        gap = (self.clean - self.corrupted)[:, None, None, None]
        return (self.denoised - self.corrupted[:, None, None, None]) / gap

    @property
    def destroyed(self) -> torch.Tensor:
        """[N, 3, L, G] share of the clean run's lead taken away by the corrupted part (1 = all)."""
        gap = (self.clean - self.corrupted)[:, None, None, None]
        return (self.clean[:, None, None, None] - self.noised) / gap

    def grid(self, direction: str = "denoise", kind: str = "layer", position: str = "last") -> torch.Tensor:
        """[N, L] one direction's share for one kind of part at one group of positions."""
        x = {"denoise": self.recovered, "noise": self.destroyed}.get(direction)
        if x is None or kind not in KINDS or position not in self.positions:
            raise AnatomyError(f"Ask for direction 'denoise' or 'noise', kind in {KINDS}, position in {self.positions}.")
        return x[:, KINDS.index(kind), :, self.positions.index(position)]

    @property
    def handover(self) -> torch.Tensor:
        """[N] per pair, the first layer whose output at the last position brings back more than half (-1: none)."""
        g = self.grid("denoise", "layer", "last").nan_to_num(-1.0) > 0.5  # [N, L]
        return torch.where(g.any(1), g.float().argmax(1), torch.tensor(-1))


def component_patching(model, pairs: Sequence[FactPair] | FactPairs, *, layers: Iterable[int] | None = None,
                       positions: Sequence[str] = ("subject", "last"), kinds: Sequence[str] = KINDS,
                       directions: Sequence[str] = ("denoise", "noise"), batch_size: int = 64) -> ComponentPatching:
    """Patch each layer's output, attention output and MLP output, per group of positions, over many pairs (Chapter 17).

    The split of Meng et al. (2022), with counterfactual prompts as the corruption: ``denoise``
    writes the clean run's part into the corrupted run, ``noise`` the corrupted run's part into the
    clean run. Runs are batched; positions before the first patched one run once (cached).
    """
    _check_batch(batch_size)
    t0 = time.perf_counter()
    language = getattr(pairs, "language", "")
    pairs = tuple(pairs.pairs if isinstance(pairs, FactPairs) else pairs)
    L = model.n_layers
    chosen = tuple(range(L)) if layers is None else tuple(sorted({hooks.layer_index(model, l) for l in layers}))
    for k in kinds:
        if k not in KINDS:
            raise AnatomyError(f"kind={k!r} is not a part: use some of {KINDS}.")
    for d in directions:
        if d not in ("denoise", "noise"):
            raise AnatomyError(f"direction={d!r}: use 'denoise' (clean into corrupted) or 'noise' (corrupted into clean).")
    place = lambda k, l: f"layers.{l}" if k == "layer" else f"layers.{l}.{k}"  # noqa: E731
    places = [place(k, l) for k in kinds for l in chosen]
    N, G = len(pairs), len(positions)
    den, noi = torch.full((N, 3, L, G), float("nan")), torch.full((N, 3, L, G), float("nan"))
    clean, corrupted = torch.empty(N), torch.empty(N)
    runs = _clean_and_corrupted_of(model, pairs, places)
    tasks, where = [], []  # one task per pair and direction; where: (pair, cells, grid) of each task
    for n, (pair, ((a_ids, a_d, a_seen), (b_ids, b_d, b_seen))) in enumerate(zip(pairs, runs)):
        clean[n], corrupted[n] = a_d, b_d
        cells = [(KINDS.index(k), l, g, place(k, l), _group(pair, pos)) for k in kinds for l in chosen
                 for g, pos in enumerate(positions)]
        for d, base, source, grid in (("denoise", b_ids, a_seen, den), ("noise", a_ids, b_seen, noi)):
            if d in directions:
                tasks.append((base, pair.answer_ids, [[(pl, ps, None, source[pl][list(ps)])] for _, _, _, pl, ps in cells]))
                where.append((n, cells, grid))
    for (n, cells, grid), out in zip(where, _differences_of(model, tasks, batch_size)):
        for (k, l, g, _, _), v in zip(cells, out):
            grid[n, k, l, g] = v
    return ComponentPatching(model.name, language, pairs, chosen, tuple(positions), clean, corrupted, den, noi,
                             time.perf_counter() - t0)


def attribution_components(model, pairs: Sequence[FactPair] | FactPairs, *, positions: Sequence[str] = ("subject", "last")) -> ComponentPatching:
    """The first-order estimate of ``component_patching``'s denoising grid, one backward pass per pair (Chapter 17).

    For each part and group of positions, (clean − corrupted value) · ∂(logit difference)/∂(value),
    summed over the group's positions, on the corrupted run. ``noised`` is NaN.
    """
    t0 = time.perf_counter()
    language = getattr(pairs, "language", "")
    pairs = tuple(pairs.pairs if isinstance(pairs, FactPairs) else pairs)
    L, N, G = model.n_layers, len(pairs), len(positions)
    place = lambda k, l: f"layers.{l}" if k == "layer" else f"layers.{l}.{k}"  # noqa: E731
    places = [place(k, l) for k in KINDS for l in range(L)]
    den = torch.full((N, 3, L, G), float("nan"))
    clean, corrupted = torch.empty(N), torch.empty(N)
    by_length: dict[int, list[int]] = {}  # prompts of one length run together
    for n, pair in enumerate(pairs):
        by_length.setdefault(pair.n_tokens, []).append(n)
    for members in by_length.values():
        answers = [pairs[n].answer_ids for n in members]
        with torch.no_grad(), hooks.capture(model, *places) as seen:
            la = _answer_logits(model, _final(model, torch.cat([_ids_of(model, pairs[n].clean) for n in members])), answers)
        with hooks.graph(model, *places) as kept:
            lb = _answer_logits(model, _final(model, torch.cat([_ids_of(model, pairs[n].corrupted) for n in members])), answers)
            d = lb[:, 0] - lb[:, 1]  # [n] one logit difference per pair
            grads = torch.autograd.grad(d.sum(), [kept[p] for p in places])  # the rows do not mix: row i's own gradient
        d = d.detach()
        for i, n in enumerate(members):
            pair = pairs[n]
            clean[n], corrupted[n] = float(la[i, 0] - la[i, 1]), float(d[i])
            with torch.no_grad():
                for name, g in zip(places, grads):
                    est = ((seen[name][i] - kept[name][i].detach()) * g[i]).sum(-1)  # [T]
                    k, l = (0, int(name.split(".")[1])) if name.count(".") == 1 else (KINDS.index(name.split(".")[2]), int(name.split(".")[1]))
                    for gi, pos in enumerate(positions):
                        den[n, k, l, gi] = float(d[i]) + float(est[list(_group(pair, pos))].sum())
    return ComponentPatching(model.name, language, pairs, tuple(range(L)), tuple(positions), clean, corrupted, den,
                             torch.full_like(den, float("nan")), time.perf_counter() - t0)


@dataclass(frozen=True)
class HeadPatching:
    """Denoising one attention head at a time, at each group of positions, over fact pairs (Chapter 17).

    ``recovered[n, l, h, g]``: share of pair n's clean lead brought back when head h of layer l
    writes its clean output (its slice of ``"layers.l.attn.o.input"``) at the positions of group g
    ("subject", "last", "other"), and nowhere else. Where a head's patch works says where it writes.
    """

    model_name: str
    pairs: tuple[FactPair, ...]
    heads: tuple[tuple[int, int], ...]  # (layer, head) patched
    positions: tuple[str, ...]
    recovered: torch.Tensor  # [N, L, H, G], NaN where not run
    seconds: float

    def mean(self) -> torch.Tensor:
        """[L, H, G] the mean over pairs."""
        return self.recovered.mean(0)

    def top(self, k: int = 3, position: str = "last") -> list[tuple[int, int]]:
        """The k heads (layer, head) with the largest mean share at one group of positions."""
        m = self.mean()[:, :, self.positions.index(position)].nan_to_num(float("-inf"))
        H = m.shape[1]
        return [divmod(int(i), H) for i in m.flatten().topk(k).indices]


def _positions(pair: FactPair, group: str) -> tuple[int, ...]:
    if group == "other":
        return tuple(p for p in range(pair.n_tokens - 1) if p not in pair.subject)
    return _group(pair, group)


def head_patching(model, pairs: Sequence[FactPair] | FactPairs, *, heads: Sequence[tuple[int, int]] | None = None,
                  positions: Sequence[str] = ("last",), batch_size: int = 64) -> HeadPatching:
    """Write one head's clean output into the corrupted run at one group of positions, for each head (Chapter 17)."""
    _check_batch(batch_size)
    t0 = time.perf_counter()
    pairs = tuple(pairs.pairs if isinstance(pairs, FactPairs) else pairs)
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    heads = tuple((l, h) for l in range(L) for h in range(H)) if heads is None else tuple(
        (hooks.layer_index(model, l), int(h)) for l, h in heads)
    for _, h in heads:
        if not 0 <= h < H:
            raise AnatomyError(f"Head {h} is out of range: {model.name} has heads 0 to {H - 1}.")
    rec = torch.full((len(pairs), L, H, len(positions)), float("nan"))
    places = sorted({f"layers.{l}.attn.o.input" for l, _ in heads})
    tasks, kept = [], []
    for pair, ((_, a_d, a_seen), (b_ids, b_d, _)) in zip(pairs, _clean_and_corrupted_of(model, pairs, places)):
        cells = [(l, h, g, _positions(pair, grp)) for l, h in heads for g, grp in enumerate(positions)]
        cells = [c for c in cells if c[3]]
        tasks.append((b_ids, pair.answer_ids, [[(f"layers.{l}.attn.o.input", ps, slice(h * hd, (h + 1) * hd),
                                                 a_seen[f"layers.{l}.attn.o.input"][list(ps), h * hd:(h + 1) * hd])]
                                               for l, h, _, ps in cells]))
        kept.append((cells, a_d, b_d))
    for n, ((cells, a_d, b_d), out) in enumerate(zip(kept, _differences_of(model, tasks, batch_size))):
        for (l, h, g, _), v in zip(cells, out):
            rec[n, l, h, g] = (float(v) - b_d) / (a_d - b_d)
    return HeadPatching(model.name, pairs, heads, tuple(positions), rec, time.perf_counter() - t0)


@dataclass(frozen=True)
class Faithfulness:
    """Keep a set of heads, mean-ablate every other head, and see how much of the logit difference remains (Chapter 17).

    The test of Wang et al. (2022): on each clean prompt, logit(clean answer) − logit(corrupted
    answer) with every head outside the circuit replaced by its mean over the reference prompts of
    the same length (MLPs and embeddings untouched). ``random`` keeps as many heads drawn at random.
    """

    model_name: str
    circuit: tuple[tuple[int, int], ...]
    n_pairs: int
    full: torch.Tensor  # [N] nothing ablated
    kept: torch.Tensor  # [N] only the circuit's heads kept
    empty: torch.Tensor  # [N] every head ablated
    random: torch.Tensor  # [draws, N] as many random heads kept

    @property
    def share(self) -> float:
        """Mean logit difference with only the circuit, as a share of the full model's."""
        return float(self.kept.mean() / self.full.mean())

    @property
    def empty_share(self) -> float:
        return float(self.empty.mean() / self.full.mean())

    @property
    def random_shares(self) -> torch.Tensor:
        """[draws] the same share for each random set of heads."""
        return self.random.mean(1) / self.full.mean()


def _head_means(model, prompts: Sequence[str], places: Sequence[str]) -> dict[int, dict[str, torch.Tensor]]:
    """Per prompt length, each place's mean value over the prompts of that length: {T: {place: [T, width]}}.

    Kept on the model for the last few reference sets asked for (``_memo``): a chapter that tries
    several circuits against one reference set runs the reference prompts once.
    """
    prompts, places = tuple(prompts), tuple(places)
    return _memo(model, ("head_means", prompts, places), lambda: _head_means_of(model, prompts, places))


def _head_means_of(model, prompts: tuple[str, ...], places: tuple[str, ...]) -> dict[int, dict[str, torch.Tensor]]:
    by_length: dict[int, list[str]] = {}
    for p in prompts:
        by_length.setdefault(len(check_prompt(model, p)[0]), []).append(p)
    out = {}
    for T, ps in by_length.items():
        b = run.batch(model, ps)
        with torch.no_grad(), hooks.capture(model, *places) as seen:
            run.run_to(model, b, "final_norm")
        out[T] = {p: seen[p].mean(0) for p in places}
        out[T]["n"] = len(ps)
    return out


def circuit_faithfulness(model, pairs: Sequence[FactPair] | FactPairs, circuit: Sequence[tuple[int, int]], reference: Sequence[str], *,
                         draws: int = 8, seed: int = 0, min_reference: int = 4, batch_size: int = 64) -> Faithfulness:
    """Wang et al.'s faithfulness of a set of heads on the clean prompts of ``pairs`` (Chapter 17).

    Means are taken over the ``reference`` prompts of each prompt length; pairs whose length has
    fewer than ``min_reference`` reference prompts are left out.
    """
    _check_batch(batch_size)
    pairs = tuple(pairs.pairs if isinstance(pairs, FactPairs) else pairs)
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    circuit = tuple((hooks.layer_index(model, l), int(h)) for l, h in circuit)
    places = [f"layers.{l}.attn.o.input" for l in range(L)]
    means = _head_means(model, reference, places) if reference else {}
    g = torch.Generator().manual_seed(seed)
    every = [(l, h) for l in range(L) for h in range(H)]
    randoms = [tuple(every[i] for i in torch.randperm(len(every), generator=g)[:len(circuit)].tolist()) for _ in range(draws)]
    used = [p for p in pairs if means.get(p.n_tokens, {}).get("n", 0) >= min_reference]
    tasks = []
    for pair in used:
        mean, every_pos = means[pair.n_tokens], tuple(range(pair.n_tokens))

        def ablate(keep):  # one edit per layer: the columns of all its heads outside `keep` get their means
            out = []
            for l in range(L):
                cols = torch.tensor([c for h in range(H) if (l, h) not in keep for c in range(h * hd, (h + 1) * hd)], dtype=torch.long)
                if len(cols):
                    out.append((places[l], every_pos, cols, mean[places[l]][:, cols]))
            return out

        tasks.append((_ids_of(model, pair.clean), pair.answer_ids,
                      [[], ablate(set(circuit)), ablate(set()), *[ablate(set(r)) for r in randoms]]))
    rows = torch.stack(_differences_of(model, tasks, batch_size)) if tasks else torch.empty(0, 3 + draws)  # [N, 3 + draws]
    return Faithfulness(model.name, circuit, len(used), rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3:].T.contiguous())


@dataclass(frozen=True)
class AttentionKnockout:
    """Blocking attention from the last position to the subject from layer ℓ on (Geva et al. 2023) (Chapter 17).

    ``prob[n, ℓ]``: the clean answer's probability on pair n's clean prompt when, in every layer
    from ℓ on, the last position may not attend to the subject's positions; column L = nothing blocked.
    """

    model_name: str
    pairs: tuple[FactPair, ...]
    prob: torch.Tensor  # [N, L + 1]

    @property
    def kept(self) -> torch.Tensor:
        """[N, L + 1] the answer's probability as a share of the unblocked one."""
        return self.prob / self.prob[:, -1:]

    @property
    def last_harmful(self) -> torch.Tensor:
        """[N] the last ℓ from which blocking still halves the answer's probability (-1: none)."""
        bad = self.kept[:, :-1] < 0.5  # [N, L]
        L = bad.shape[1]
        idx = torch.arange(L).expand_as(bad)
        return torch.where(bad.any(1), torch.where(bad, idx, -1).max(1).values, torch.tensor(-1))


@contextlib.contextmanager
def _blocked(model, rows_from: Sequence[int], keys: Sequence[int]):
    """Inside the block, batch row r of every layer l >= rows_from[r] cannot attend from the last query to ``keys``."""
    handles = []

    def pre(mod, args, kwargs, layer):
        mask = kwargs.get("attention_mask")
        if mask is None or mask.ndim != 4:
            raise AnatomyError(f"{model.name} gives its attention no 4-D mask here; attention knockout needs eager attention.")
        mask = mask.expand(len(rows_from), *mask.shape[1:]).clone()
        for r, start in enumerate(rows_from):
            if layer >= start:
                mask[r, :, -1, list(keys)] = torch.finfo(mask.dtype).min
        kwargs["attention_mask"] = mask
        return args, kwargs

    try:
        for l in range(model.n_layers):
            attn, _ = hooks.module_at(model, f"layers.{l}.attn")
            handles.append(attn.register_forward_pre_hook(lambda m, a, k, l=l: pre(m, a, k, l), with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def attention_knockout(model, pairs: Sequence[FactPair] | FactPairs) -> AttentionKnockout:
    """For each ℓ, block attention from the last position to the subject in layers ℓ..L-1 (Chapter 17).

    Blocking changes only what the last position reads, so the positions before it run once (their
    keys and values are cached) and each of the L + 1 blocked runs is one token long.
    """
    pairs = tuple(pairs.pairs if isinstance(pairs, FactPairs) else pairs)
    L = model.n_layers
    prob = torch.empty(len(pairs), L + 1)
    for n, pair in enumerate(pairs):
        ids = _ids_of(model, pair.clean)
        cache = run.forward(model, ids[:, :-1], logits=None, keep=True).past_key_values
        cache.batch_repeat_interleave(L + 1)
        with _blocked(model, list(range(L + 1)), pair.subject):
            h = _final(model, ids[:, -1:].expand(L + 1, 1), past=cache)  # [L + 1, d]
        prob[n] = torch.softmax(run.head(model, h).float(), -1)[:, pair.answer_ids[0]].cpu()
    return AttentionKnockout(model.name, pairs, prob)
