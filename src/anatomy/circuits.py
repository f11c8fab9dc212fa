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

from . import hooks
from .errors import AnatomyError
from .prediction import check_prompt
from .show import Table
from .tokens import Token, answer_id, readable, tokenize

__all__ = ["BackPatching", "PatchingResult", "activation_patching", "attribution_patching", "back_patching", "logit_difference"]


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
    ids = check_prompt(model, prompt)
    logits = model.hf(input_ids=ids, logits_to_keep=1).logits[0, -1].float()  # [V]
    return float(_difference(logits, answer_id(model, clean_answer), answer_id(model, corrupted_answer)))


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
    with hooks.capture(model, "embedding", *resid, *onames) as seen:
        clean_logits = model.hf(input_ids=a_ids, logits_to_keep=1).logits[0, -1].float()
    corrupt_logits = model.hf(input_ids=b_ids, logits_to_keep=1).logits[0, -1].float()

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
            logits = model.hf(input_ids=b_ids.expand(len(chunk), T), logits_to_keep=1).logits[:, -1].float()  # [B, V]
        out[start:start + len(chunk)] = _difference(logits, *ans)
    n = len(chosen)
    emb = out[:T]
    res, hds = torch.full((L, T), float("nan")), torch.full((L, H), float("nan"))
    res[chosen] = out[T:T + n * T].view(n, T)
    if heads:
        hds[chosen] = out[T + n * T:].view(n, H)
    return _result(model, "exact", clean, corrupted, ans, _difference(clean_logits, *ans),
                   _difference(corrupt_logits, *ans), emb, res, hds, t0)


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
    with torch.no_grad(), hooks.capture(model, *places) as clean_seen:
        clean_logits = model.hf(input_ids=a_ids, logits_to_keep=1).logits[0, -1].float()

    kept: dict[str, torch.Tensor] = {}

    def keep(name):
        def fn(h):
            if name == "embedding":  # start the graph here: the weights' gradients are not needed
                h = h.detach().requires_grad_(True)
            kept[name] = h
            return h
        return fn

    with torch.enable_grad(), contextlib.ExitStack() as stack:
        for name in places:
            stack.enter_context(hooks.edit(model, name, keep(name)))
        logits = model.hf(input_ids=b_ids, logits_to_keep=1).logits[0, -1].float()  # [V]
        diff = _difference(logits, *ans)
        grads = torch.autograd.grad(diff, [kept[n] for n in places])
    grad = dict(zip(places, grads))
    with torch.no_grad():
        est = lambda n: ((clean_seen[n][0] - kept[n][0].detach()) * grad[n][0])  # noqa: E731  [T, width]
        d = diff.detach()
        emb = d + est("embedding").sum(-1)  # [T]
        res = d + torch.stack([est(n).sum(-1) for n in resid])  # [L, T]
        hds = d + torch.stack([est(n).view(T, H, hd).sum(dim=(0, 2)) for n in onames])  # [L, H]
    return _result(model, "attribution", clean, corrupted, ans, _difference(clean_logits, *ans), d,
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
        base = model.hf(input_ids=ids, logits_to_keep=1).logits[0, -1].float()  # [V]
    vec = torch.stack([seen[n][0, -1] for n in resid])  # [L, d] every layer's vector at the last position
    prefix = model.hf(input_ids=ids[:, :-1], use_cache=True).past_key_values
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
            logits = model.hf(input_ids=last.expand(len(chunk), 1), past_key_values=cache, use_cache=True,
                              logits_to_keep=1).logits[:, -1].float()  # [B, V]
        p = torch.softmax(logits, -1)
        for r, (s, t) in enumerate(chunk):
            prob[s, t] = p[r, aid]
            top[s, t] = int(p[r].argmax())
    tokens = tuple(tokenize(model, prompt))
    return BackPatching(model.name, prompt, tokens, readable(model.tokenizer, aid), aid,
                        float(torch.softmax(base, -1)[aid]), readable(model.tokenizer, int(base.argmax())), prob, top)
