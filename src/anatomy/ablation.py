"""Remove a part of the model and see what changes: ablation of neurons and attention heads (Chapter 14).

A neuron whose activation goes with a concept *correlates* with it. Whether the model *uses* it is
another question, answered by removing the neuron while the model runs and measuring what changes:

* **zero ablation** sets the neuron's activation to 0 at every position: what it writes to the
  residual stream (activation × its column of W_down) vanishes;
* **mean ablation** sets it to its average over a set of reference prompts: the neuron still
  writes its usual amount, but no longer says anything about *this* input.

The same works for an attention head: its weighted sum of value vectors (its slice of the place
``layers.N.attn.o.input``, the heads' outputs concatenated before W_O) is set to 0 or to its mean.
Hooks exist only inside the ``with`` block of :func:`ablate` and are removed on exit.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .ffn import ffn_weights
from .prediction import check_prompt
from .show import Table
from .tokens import readable, single_token_id

__all__ = ["Attribution", "HeadAblation", "Means", "NeuronAblation", "Separation", "ablate", "head_ablation", "last_token_neurons",
           "mean_activations", "neuron_ablation", "neuron_attribution", "random_neurons", "separating_neurons", "top_contexts", "TopContexts"]


@dataclass(frozen=True)
class Means:
    """Average neuron activations and head outputs of one layer over reference prompts (Chapter 14)."""

    model_name: str
    layer: int
    neurons: torch.Tensor  # [m] mean activation of each neuron over every real token
    heads: torch.Tensor  # [H, head_dim] mean output of each head over every real token


def _n_neurons(model, layer: int) -> int:
    return ffn_weights(model, layer).n_neurons


def _indices(values, n: int, what: str, model, layer: int) -> list[int]:
    if values is None:
        return []
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise AnatomyError(f"{what} must be a list of indices, e.g. [3, 17], not {values!r}.")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= int(v) < n:
            raise AnatomyError(f"{what[:-1].capitalize()} {v!r} is out of range: layer {layer} of {model.name} has {what} 0 to {n - 1}.")
        out.append(int(v))
    return sorted(set(out))


@contextlib.contextmanager
def ablate(model, layer: int, *, neurons=None, heads=None, mean: Means | None = None, position: int | None = None) -> Iterator[None]:
    """Inside the block, remove some FFN neurons and/or attention heads of ``layer`` (Chapter 14).

    ``neurons``: indices into the layer's neurons (place ``layers.N.mlp.neurons``); ``heads``:
    indices of attention heads (their slices of ``layers.N.attn.o.input``). Without ``mean`` their
    values become 0 (zero ablation); with ``mean`` (from :func:`mean_activations` for the same
    layer) they become their average (mean ablation). ``position=None`` ablates at every position,
    an integer only at that position of the (padded) sequence, e.g. -1 for the last token of one
    prompt. Nothing to ablate (empty lists) changes nothing.
    """
    i = hooks.layer_index(model, layer)
    keep_n = _indices(neurons, _n_neurons(model, i), "neurons", model, i)
    keep_h = _indices(heads, model.n_heads, "heads", model, i)
    if mean is not None and (not isinstance(mean, Means) or mean.model_name != model.name or mean.layer != i):
        raise AnatomyError(f"mean must come from anatomy.mean_activations({model.name!r} model, prompts, layer={i}).")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise AnatomyError(f"position={position!r} is not allowed: use None (every position) or one index such as -1.")

    def replacer(idx: torch.Tensor, fill: torch.Tensor):
        def fn(x):  # x: [B, T, width]
            out = x.clone()
            where = slice(None) if position is None else position
            out[:, where, idx] = fill.to(x)
            return out
        return fn

    with contextlib.ExitStack() as stack:
        if keep_n:
            idx = torch.tensor(keep_n)
            fill = torch.zeros(len(keep_n)) if mean is None else mean.neurons[idx]
            stack.enter_context(hooks.edit(model, f"layers.{i}.mlp.neurons", replacer(idx.to(model.device), fill)))
        if keep_h:
            hd = model.head_dim
            idx = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep_h])
            fill = torch.zeros(len(idx)) if mean is None else mean.heads.flatten()[idx]
            stack.enter_context(hooks.edit(model, f"layers.{i}.attn.o.input", replacer(idx.to(model.device), fill)))
        yield


@torch.no_grad()
def mean_activations(model, prompts, layer: int) -> Means:
    """Mean of every neuron and every head output of ``layer`` over all real tokens of ``prompts`` (Chapter 14)."""
    i = hooks.layer_index(model, layer)
    prompts = run.prompts(prompts, "prompts")
    b = run.batch(model, prompts)
    places = (f"layers.{i}.mlp.neurons", f"layers.{i}.attn.o.input")
    with hooks.capture(model, *places) as seen:
        run.run_to(model, b, f"layers.{i}")  # the layers after this one are not needed
    real = b.mask.bool().cpu()  # [B, T]
    neurons = seen[places[0]].float().cpu()[real].mean(0)  # [m]
    heads = seen[places[1]].float().cpu()[real].mean(0).view(model.n_heads, model.head_dim)  # [H, head_dim]
    return Means(model.name, i, neurons, heads)


@torch.no_grad()
def last_token_neurons(model, prompts) -> torch.Tensor:
    """Every neuron of every layer at each prompt's last token, in one batched pass. Shape [N, L, m] (Chapter 14)."""
    prompts = run.prompts(prompts, "prompts")
    b = run.batch(model, prompts)
    places = [f"layers.{i}.mlp.neurons" for i in range(model.n_layers)]
    out = []
    with hooks.capture(model, *places) as seen:
        run.run_to(model, b, f"layers.{model.n_layers - 1}")  # no final norm, no LM head
    for p in places:  # keep only the last real token of each prompt
        out.append(run.last(seen.pop(p), b).float().cpu())  # [N, m]
    return torch.stack(out, 1)  # [N, L, m]


# --- neurons that separate two kinds of input ---------------------------------------------------
@dataclass(frozen=True)
class Separation:
    """How well each neuron of each layer separates two kinds of prompts at their last token (Chapter 14).

    The score is the difference of the two means divided by the pooled standard deviation (Cohen's
    d): positive = more active on kind A, |score| > 2 = the two histograms barely overlap.
    """

    model_name: str
    scores: torch.Tensor  # [L, m]
    a: torch.Tensor  # [Na, L, m] activations on kind A
    b: torch.Tensor  # [Nb, L, m] activations on kind B

    def top(self, k: int = 5, layer: int | None = None) -> tuple[tuple[int, int, float], ...]:
        """The k neurons with the largest |score| (in one layer, or over all): (layer, neuron, score)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise AnatomyError(f"k={k!r} is not allowed: ask for a positive number of neurons, e.g. 5.")
        L, m = self.scores.shape
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or not -L <= layer < L):
            raise AnatomyError(f"Layer {layer!r} is out of range: {self.model_name} has layers 0 to {L - 1} (-1 = the last).")
        layer = None if layer is None else layer % L
        s = self.scores if layer is None else self.scores[layer:layer + 1]
        flat = s.abs().flatten().topk(min(k, s.numel())).indices
        base = 0 if layer is None else layer
        return tuple((base + int(f) // m, int(f) % m, float(s.flatten()[f])) for f in flat)

    @property
    def best_layer(self) -> int:
        """The layer whose best neuron separates the two kinds most."""
        return int(self.scores.abs().amax(1).argmax())

    def table(self, k: int = 5, layer: int | None = None) -> Table:
        rows = tuple((l, n, round(s, 2), round(float(self.a[:, l, n].mean()), 3), round(float(self.b[:, l, n].mean()), 3))
                     for l, n, s in self.top(k, layer))
        return Table(("layer", "neuron", "score (Cohen's d)", "mean on A", "mean on B"), rows,
                     f"{self.model_name}: neurons that separate the two kinds of prompts, at the last token")


def _cohen(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pooled = ((a.var(0) * (len(a) - 1) + b.var(0) * (len(b) - 1)) / (len(a) + len(b) - 2)).sqrt()
    return (a.mean(0) - b.mean(0)) / (pooled + 1e-6)


def separating_neurons(model, prompts_a, prompts_b) -> Separation:
    """Score every neuron of every layer by how well its last-token activation separates A from B (Chapter 14)."""
    pa, pb = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    both = last_token_neurons(model, [*pa, *pb])  # [Na + Nb, L, m]: both kinds in one batched pass
    a, b = both[:len(pa)], both[len(pa):]
    if len(a) < 2 or len(b) < 2:
        raise AnatomyError("Give at least two prompts of each kind: the score divides by the spread within each kind.")
    return Separation(model.name, _cohen(a, b), a, b)


def random_neurons(model, layer: int, k: int, n: int = 5, *, exclude=(), seed: int = 0) -> list[list[int]]:
    """``n`` sets of ``k`` random neurons of ``layer``, none of them in ``exclude``: the control (Chapter 14)."""
    m = _n_neurons(model, layer)
    pool = torch.tensor([j for j in range(m) if j not in set(exclude)])
    if not isinstance(k, int) or not 1 <= k <= len(pool):
        raise AnatomyError(f"k={k!r} is not allowed: pick from 1 to {len(pool)} neurons.")
    g = torch.Generator().manual_seed(seed)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise AnatomyError(f"n={n!r} is not allowed: ask for a number of random sets, e.g. 5.")
    return [sorted(pool[torch.randperm(len(pool), generator=g)[:k]].tolist()) for _ in range(n)]


# --- what removing neurons does to a logit difference ---------------------------------------------
@dataclass(frozen=True)
class NeuronAblation:
    """The gap in a logit difference between two kinds of prompts, with neurons removed or not (Chapter 14).

    ``gap`` = mean over kind A of (logit token_a − logit token_b) minus the same mean over kind B:
    how strongly the model tells the kinds apart in its next token. Each field is that gap under
    one condition; the controls remove as many random neurons of the same layer.
    """

    model_name: str
    layer: int
    neurons: tuple[int, ...]
    baseline: float
    zero: float
    mean: float
    control_zero: torch.Tensor  # [n] one per random set
    control_mean: torch.Tensor  # [n]

    def table(self) -> Table:
        f = lambda v: round(float(v), 2)  # noqa: E731
        rows = (("nothing removed", f(self.baseline), "", ""),
                (f"{len(self.neurons)} chosen neurons", f(self.zero), f(self.mean), ""))
        if len(self.control_zero):
            rows += ((f"{len(self.neurons)} random neurons (mean of {len(self.control_zero)} sets)",
                      f(self.control_zero.mean()), f(self.control_mean.mean()),
                      f"zero: {f(self.control_zero.min())}…{f(self.control_zero.max())}"),)
        return Table(("removed", "gap, zero ablation", "gap, mean ablation", "range over random sets"), rows,
                     f"{self.model_name}, layer {self.layer}: the logit-difference gap between the two kinds")


@torch.no_grad()
def _gaps(model, layer: int, a: list[str], b: list[str], ia: int, ib: int, keep: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """The gap between the kinds under K conditions at once. keep/fill [K, m]: neuron j of condition k becomes
    x * keep[k, j] + fill[k, j] (keep 1, fill 0 = untouched). One pass that pauses at ``layer``, one batched pass
    of K copies from it (``run.pause``, ``run.resume``: the layers before ``layer`` run once). [K]"""
    batch = run.batch(model, [*a, *b])
    paused = run.pause(model, batch, layer)  # also the untouched model's pass: condition 0 when it changes nothing
    first = int(bool((keep[0] == 1).all() and (fill[0] == 0).all()))
    n, k = len(batch), len(keep) - first
    rows_keep = keep[first:].repeat_interleave(n, 0)[:, None, :].to(model.device)  # [K*N, 1, m]: copy r has condition r // N
    rows_fill = fill[first:].repeat_interleave(n, 0)[:, None, :].to(model.device)

    def replace(x):  # x: [K*N, T, m]
        return x * rows_keep.to(x) + rows_fill.to(x)

    with hooks.edit(model, f"layers.{layer}.mlp.neurons", replace):
        h = run.last(run.resume(model, paused, k), batch.repeat(k)).float().cpu()  # [K*N, d]
    if first:
        h = torch.cat([run.last(paused.final, batch).float().cpu(), h])  # [(1+K)*N, d]
    k += first
    logits = run.head(model, h, [ia, ib])  # [K*N, 2]: only the two tokens' rows of the LM head
    d = (logits[:, 0] - logits[:, 1]).view(k, n)  # [K, N]
    return d[:, :len(a)].mean(1) - d[:, len(a):].mean(1)


def neuron_ablation(model, layer: int, neurons, prompts_a, prompts_b, token_a: str, token_b: str, *,
                    mean: Means, controls: int = 5, seed: int = 0) -> NeuronAblation:
    """Remove ``neurons`` of ``layer`` (zero and mean ablation) and random sets of the same size (Chapter 14).

    Measures the gap between the kinds in the next-token logit difference ``token_a − token_b``.
    Every condition (nothing removed, the chosen neurons, each random set; zero and mean) runs in
    one batched forward pass that starts at ``layer``.
    """
    i = hooks.layer_index(model, layer)
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    ns = _indices(neurons, _n_neurons(model, i), "neurons", model, i)
    if not ns:
        raise AnatomyError("Give at least one neuron to remove, e.g. [n for _, n, _ in separation.top(5, layer)].")
    ia, ib = single_token_id(model, token_a), single_token_id(model, token_b)  # clear error if not one token each
    if mean is not None and (not isinstance(mean, Means) or mean.model_name != model.name or mean.layer != i):
        raise AnatomyError(f"mean must come from anatomy.mean_activations({model.name!r} model, prompts, layer={i}).")
    if isinstance(controls, bool) or not isinstance(controls, int) or controls < 0:
        raise AnatomyError(f"controls={controls!r} is not allowed: use a number of random sets, e.g. 3 (0 = none).")
    sets = random_neurons(model, i, len(ns), controls, exclude=ns, seed=seed) if controls else []
    m = _n_neurons(model, i)
    conditions = [(None, False), (ns, False), (ns, True), *((s, False) for s in sets), *((s, True) for s in sets)]
    keep, fill = torch.ones(len(conditions), m), torch.zeros(len(conditions), m)
    for c, (idx, use_mean) in enumerate(conditions):
        if idx is not None:
            keep[c, idx] = 0
            if use_mean and mean is not None:
                fill[c, idx] = mean.neurons[idx].float()
    g = _gaps(model, i, a, b, ia, ib, keep, fill).tolist()
    c = len(sets)
    return NeuronAblation(model.name, i, tuple(ns), g[0], g[1], g[2], torch.tensor(g[3:3 + c]), torch.tensor(g[3 + c:]))


# --- which neurons matter, estimated from one backward pass ---------------------------------------
@dataclass(frozen=True)
class Attribution:
    """First-order estimate of how much removing each neuron (at every position) changes the gap (Chapter 14).

    For a neuron with activations a at every position and gradient g = ∂gap/∂a, setting a to a
    value a' changes the gap by about Σ (a' − a) · g (a Taylor expansion: "attribution patching").
    One forward and one backward pass give the estimate for every neuron of every layer at once;
    :func:`neuron_ablation` then checks the chosen ones for real.
    """

    model_name: str
    gap: float
    zero: torch.Tensor  # [L, m] estimated change of the gap under zero ablation
    mean: torch.Tensor  # [L, m] under mean ablation (the mean over every real token of the prompts)

    def top(self, k: int = 5, *, kind: str = "zero") -> tuple[tuple[int, int, float], ...]:
        """The k neurons with the largest estimated |change|: (layer, neuron, change)."""
        if kind not in ("zero", "mean"):
            raise AnatomyError(f"kind={kind!r} is not allowed: use 'zero' or 'mean'.")
        s = getattr(self, kind)
        m = s.shape[1]
        flat = s.abs().flatten().topk(min(k, s.numel())).indices
        return tuple((int(f) // m, int(f) % m, float(s.flatten()[f])) for f in flat)


def neuron_attribution(model, prompts_a, prompts_b, token_a: str, token_b: str) -> Attribution:
    """Estimate, for every neuron of every layer, the change of the gap if it were removed (Chapter 14)."""
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    ia, ib = single_token_id(model, token_a), single_token_id(model, token_b)
    batch = run.batch(model, [*a, *b])
    places = [f"layers.{i}.mlp.neurons" for i in range(model.n_layers)]
    acts: dict[str, torch.Tensor] = {}

    def keep(p):
        def fn(x):
            acts[p] = x
            return x
        return fn

    with torch.enable_grad(), contextlib.ExitStack() as stack:
        stack.enter_context(hooks.edit(model, "embedding", lambda x: x.detach().requires_grad_(True)))
        for p in places:
            stack.enter_context(hooks.edit(model, p, keep(p)))
        h = run.last(run.run_to(model, batch, "final_norm"), batch)  # [N, d] final-norm vector at each last token
        logits = run.head(model, h.float(), [ia, ib])  # [N, 2]: the LM head's two rows only
        d = logits[:, 0] - logits[:, 1]  # [N]
        gap = d[:len(a)].mean() - d[len(a):].mean()
        grads = torch.autograd.grad(gap, [acts[p] for p in places])
    real = batch.mask.bool()[..., None]  # [N, T, 1]
    zero, mean = [], []
    for p, g in zip(places, grads):
        x, g = acts[p].detach().float() * real, g.float() * real  # [N, T, m]
        mu = x.sum((0, 1)) / real.sum()  # [m]
        zero.append((-x * g).sum((0, 1)).cpu())
        mean.append(((mu - x) * real * g).sum((0, 1)).cpu())
    return Attribution(model.name, float(gap.detach()), torch.stack(zero), torch.stack(mean))


# --- one neuron, many contexts ---------------------------------------------------------------------
@dataclass(frozen=True)
class TopContexts:
    """The contexts of a corpus where one neuron fires most, grouped by the token it fires on (Chapter 14)."""

    model_name: str
    layer: int
    neuron: int
    sign: int
    groups: tuple[tuple[str, int, float, str], ...]  # (token, how many of the top contexts, largest activation, one context)

    def table(self) -> Table:
        return Table(("token", "times in the top contexts", "largest activation", "one context"), self.groups,
                     f"{self.model_name}, layer {self.layer}, neuron {self.neuron}: where it is most "
                     f"{'positive' if self.sign > 0 else 'negative'}, grouped by token")


def top_contexts(activations, index: int, k: int = 40, *, sign: int = 1) -> TopContexts:
    """Group the ``k`` strongest activations of neuron ``index`` (from ``anatomy.neuron_activations``) by token (Chapter 14)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise AnatomyError(f"k={k!r} is not allowed: ask for a positive number of contexts, e.g. 40.")
    groups: dict[str, list] = {}
    for token, context, value in activations.top(index, k, sign=sign):
        key = token.replace("␣", " ").strip().lower() or token
        g = groups.setdefault(key, [token, 0, value, context])
        g[1] += 1
    rows = tuple((t, c, round(v, 3), ctx) for t, c, v, ctx in groups.values())
    return TopContexts(activations.model_name, activations.layer, int(index), sign, rows)


# --- heads, one at a time --------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadAblation:
    """The answer's log-probability with each attention head removed in turn (Chapter 14)."""

    model_name: str
    prompt: str
    answer: str
    baseline: float  # log-probability of the answer with every head in place
    logprobs: torch.Tensor  # [L, H] with head (l, h) zero-ablated

    @property
    def drops(self) -> torch.Tensor:
        """How much removing each head lowers the answer's log-probability. Shape [L, H]; > 0 = the head helped."""
        return self.baseline - self.logprobs

    def top(self, k: int = 5) -> tuple[tuple[int, int, float], ...]:
        """The k heads whose removal hurts the answer most: (layer, head, drop)."""
        H = self.logprobs.shape[1]
        d = self.drops.flatten()
        v, f = d.topk(min(k, d.numel()))
        return tuple((int(j) // H, int(j) % H, float(x)) for x, j in zip(v, f))

    def table(self, k: int = 5) -> Table:
        rows = tuple((l, h, round(d, 3), round(float(torch.tensor(-d).exp()), 3)) for l, h, d in self.top(k))
        return Table(("layer", "head", "drop in log-probability", "probability kept (fraction)"), rows,
                     f"{self.model_name}: heads whose removal hurts the answer {self.answer!r} most")


@torch.no_grad()
def head_ablation(model, prompt: str, answer: str) -> HeadAblation:
    """Zero-ablate each head of each layer in turn and read the log-probability of ``answer`` next (Chapter 14).

    One batched forward pass: row r of the batch has head (r // H, r % H) removed, the last row none.
    """
    ids = check_prompt(model, prompt)  # [1, T]
    tid = single_token_id(model, answer)
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    n = L * H
    batch = ids.expand(n + 1, -1)  # [L*H + 1, T]
    with contextlib.ExitStack() as stack:
        for layer in range(L):
            keep = torch.ones(n + 1, H, device=model.device)  # [B, H] 0 = removed
            keep[torch.arange(layer * H, (layer + 1) * H), torch.arange(H)] = 0
            keep = keep.repeat_interleave(hd, 1)[:, None, :]  # [B, 1, H*hd]
            stack.enter_context(hooks.edit(model, f"layers.{layer}.attn.o.input", lambda x, k=keep: x * k.to(x)))
        logits = model.hf(input_ids=batch, logits_to_keep=1, use_cache=False).logits[:, -1].float()  # [B, V]
    lp = torch.log_softmax(logits, -1)[:, tid].cpu()  # [B]
    return HeadAblation(model.name, prompt, readable(model.tokenizer, tid), float(lp[-1]), lp[:-1].view(L, H))
