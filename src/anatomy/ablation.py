"""Remove a part of the model and see what changes: ablation of neurons and attention heads (Chapter 14).

A neuron whose activation goes with a concept *correlates* with it. Whether the model *uses* it is
another question, answered by removing the neuron while the model runs and measuring what changes:

* **zero ablation** sets the neuron's activation to 0 at every position: what it writes to the
  residual stream (activation × its column of W_down) vanishes;
* **mean ablation** sets it to its average over a set of reference prompts: the neuron still
  writes its usual amount, but no longer says anything about *this* input.

The same works for an attention head: its weighted sum of value vectors (its slice of the place
``layers.N.attn.o.input``, the heads' outputs concatenated before W_O) is set to 0 or to its mean
(:func:`head_set_ablation` on many prompts, against random heads). :func:`knowledge_neurons`
suppresses and amplifies the neurons that one fact's answer goes through (Dai et al. 2022).
Every measurement also reports the next-token loss on held-out ordinary text. Hooks exist only
inside ``with`` blocks and are removed on exit.
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
from .run import check_prompt
from .show import Table
from .tokens import readable, single_token_id

__all__ = ["Ablated", "Attribution", "DoseResponse", "HeadAblation", "HeadAttribution", "HeadSetAblation", "KnowledgeNeurons",
           "Means", "NeuronAblation", "NeuronScaling", "Separation", "SinkNeuron", "SinkNeurons", "TopContexts", "ablate",
           "dose_response", "head_ablation", "head_attribution", "head_set_ablation", "knowledge_neurons", "last_token_neurons",
           "mean_activations", "neuron_ablation", "neuron_attribution", "neuron_scaling", "random_heads", "random_neurons",
           "separating_neurons", "sink_neurons", "top_contexts"]


@dataclass(frozen=True)
class Means:
    """Average neuron activations and head outputs of one layer over reference prompts (Chapter 14).

    Position 0 is kept apart: in most models the first token is an *attention sink* where a few
    neurons fire in the thousands and are near 0 everywhere else. Averaging it in with the other
    positions gives such a neuron a mean far from anything it takes at any later position, and
    mean ablation would then write that value at every position. So ``neurons``/``heads`` are the
    means over positions 1, 2, ... and ``first_neurons``/``first_heads`` the means at position 0;
    :func:`ablate` writes each at its own positions. ``pooled=True`` (built with
    ``mean_activations(..., pool_first=True)``) is the artefact, kept to show it: the mean over
    every position, written everywhere.
    """

    model_name: str
    layer: int
    neurons: torch.Tensor  # [m] mean activation of each neuron over the real tokens after position 0
    heads: torch.Tensor  # [H, head_dim] mean output of each head over the real tokens after position 0
    first_neurons: torch.Tensor | None = None  # [m] mean at position 0 (None: the same as neurons)
    first_heads: torch.Tensor | None = None  # [H, head_dim] mean at position 0 (None: the same as heads)
    prompts: tuple[str, ...] = ()  # the reference prompts (resample ablation draws from them)
    pooled: bool = False

    def __post_init__(self):
        if self.first_neurons is None:
            object.__setattr__(self, "first_neurons", self.neurons)
        if self.first_heads is None:
            object.__setattr__(self, "first_heads", self.heads)


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
    layer) they become their average (mean ablation): the position-0 mean at position 0, the mean
    over the other positions everywhere else (right-padded batches, as ``anatomy.run`` makes them).
    ``position=None`` ablates at every position, an integer only at that position of the (padded)
    sequence, e.g. -1 for the last token of one prompt. Nothing to ablate (empty lists) changes nothing.
    """
    i = hooks.layer_index(model, layer)
    keep_n = _indices(neurons, _n_neurons(model, i), "neurons", model, i)
    keep_h = _indices(heads, model.n_heads, "heads", model, i)
    _check_means(model, mean, i)
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise AnatomyError(f"position={position!r} is not allowed: use None (every position) or one index such as -1.")

    def replacer(idx: torch.Tensor, first: torch.Tensor, rest: torch.Tensor):
        def fn(x):  # x: [B, T, width]
            out = x.clone()
            if position is None:
                out[:, :1, idx] = first.to(x)
                out[:, 1:, idx] = rest.to(x)
            else:
                at = position % x.shape[1]
                out[:, at, idx] = (first if at == 0 else rest).to(x)
            return out
        return fn

    with contextlib.ExitStack() as stack:
        if keep_n:
            idx = torch.tensor(keep_n)
            first, rest = (torch.zeros(len(keep_n)),) * 2 if mean is None else (mean.first_neurons[idx], mean.neurons[idx])
            stack.enter_context(hooks.edit(model, f"layers.{i}.mlp.neurons", replacer(idx.to(model.device), first, rest)))
        if keep_h:
            hd = model.head_dim
            idx = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep_h])
            first, rest = ((torch.zeros(len(idx)),) * 2 if mean is None
                           else (mean.first_heads.flatten()[idx], mean.heads.flatten()[idx]))
            stack.enter_context(hooks.edit(model, f"layers.{i}.attn.o.input", replacer(idx.to(model.device), first, rest)))
        yield


def _check_means(model, mean, layer: int) -> None:
    if mean is not None and (not isinstance(mean, Means) or mean.model_name != model.name or mean.layer != layer):
        raise AnatomyError(f"mean must come from anatomy.mean_activations({model.name!r} model, prompts, layer={layer}).")


@torch.no_grad()
def mean_activations(model, prompts, layer: int, *, pool_first: bool = False) -> Means:
    """Mean of every neuron and every head output of ``layer`` over ``prompts``, position 0 kept apart (Chapter 14).

    ``pool_first=True`` averages position 0 in with the others and writes that one mean at every
    position: the attention-sink artefact that Chapter 14 shows, never a sound default.
    """
    i = hooks.layer_index(model, layer)
    prompts = run.prompts(prompts, "prompts")
    b = run.batch(model, prompts)
    places = (f"layers.{i}.mlp.neurons", f"layers.{i}.attn.o.input")
    with hooks.capture(model, *places) as seen:
        run.run_to(model, b, f"layers.{i}")  # the layers after this one are not needed
    real = b.mask.bool().cpu()  # [B, T]
    later = real.clone()
    later[:, 0] = False  # every real token after position 0
    if not later.any():
        raise AnatomyError("Every prompt is one token long: give prompts of two tokens or more, so positions after 0 have a mean.")
    n_all, h_all = seen[places[0]].float().cpu(), seen[places[1]].float().cpu()  # [B, T, m], [B, T, H*hd]
    shape = (model.n_heads, model.head_dim)
    if pool_first:
        return Means(model.name, i, n_all[real].mean(0), h_all[real].mean(0).view(shape), prompts=tuple(prompts), pooled=True)
    return Means(model.name, i, n_all[later].mean(0), h_all[later].mean(0).view(shape),  # [m], [H, hd]
                 n_all[:, 0].mean(0), h_all[:, 0].mean(0).view(shape), tuple(prompts))


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


# --- what removing neurons does to a behaviour, and to the loss on ordinary text -----------------
LOSS_TOKENS = 20  # tokens read from each ordinary text for the loss check
LOSS_SKIP = 4  # leading positions whose predictions the loss leaves out (as anatomy.next_token_loss)


@dataclass(frozen=True)
class Ablated:
    """One intervention on a set of neurons: the behaviour's gap and the loss on ordinary text (Chapter 14).

    ``gap`` is the logit-difference gap between the two kinds of prompts (see
    :class:`NeuronAblation`); ``loss`` the mean next-token loss (nats) on held-out ordinary text
    under the same intervention. ``kept`` and ``loss_rise`` compare them with the untouched model.
    """

    how: str  # "zero", "mean", "resample", "mean, position 0 pooled", "×2.0", ...
    neurons: tuple[int, ...]
    gap: float
    loss: float
    baseline: float  # the gap of the untouched model
    clean_loss: float  # the loss of the untouched model
    heads: tuple[tuple[int, int], ...] = ()  # for heads removed: (layer, head) each

    @property
    def kept(self) -> float:
        """The fraction of the untouched gap that is left (1 = unchanged, 0 = erased)."""
        return self.gap / self.baseline

    @property
    def loss_rise(self) -> float:
        """How much the loss on ordinary text rose, in nats (0 = unchanged)."""
        return self.loss - self.clean_loss


def _edit_zero(idx):
    def f(x):  # x: [N, T, m]
        x[..., idx] = 0
        return x
    return f


def _edit_mean(idx, means: Means):
    first, rest = means.first_neurons[idx], means.neurons[idx]  # [k], [k]

    def f(x):
        x[:, :1, idx] = first.to(x)
        x[:, 1:, idx] = rest.to(x)
        return x
    return f


def _edit_scale(idx, factor: float):
    def f(x):
        x[..., idx] = x[..., idx] * factor
        return x
    return f


def _edit_donor(idx, donor: torch.Tensor):
    def f(x):  # donor: [N, T, k] the values to write, one row per prompt
        x[..., idx] = donor.to(x)
        return x
    return f


@torch.no_grad()
def _activations(model, b: run.Batch, layer: int) -> torch.Tensor:
    """Every neuron of ``layer`` at every position of a batch: [B, T, m] (one pass that stops at the layer)."""
    place = f"layers.{layer}.mlp.neurons"
    with hooks.capture(model, place) as seen:
        run.run_to(model, b, f"layers.{layer}")
    return seen[place].float()


def _donors(target: run.Batch, ref: run.Batch, ref_acts: torch.Tensor, idx, seed: int) -> torch.Tensor:
    """Resample ablation's values: for each target prompt, a reference prompt drawn at random (of the same length in
    tokens when there is one), read position by position (its last value repeated past its end). [N, T, k]"""
    g = torch.Generator().manual_seed(seed)
    lengths = ref.lengths.tolist()
    rows = []
    for n in target.lengths.tolist():
        same = [j for j, ln in enumerate(lengths) if ln == n] or list(range(len(lengths)))
        j = same[int(torch.randint(len(same), (1,), generator=g))]
        where = torch.arange(target.ids.shape[1]).clamp(max=lengths[j] - 1)  # [T]
        rows.append(ref_acts[j][where][:, idx])  # [T, k]
    return torch.stack(rows)  # [N, T, k]


@torch.no_grad()
def _run_edits(model, paused: run.Paused, layer: int, edits, chunk: int = 16) -> torch.Tensor:
    """The final-norm output under each edit of ``layer``'s neurons, from a paused pass. [K, N, T, d]

    Copy k of the batch gets ``edits[k]`` (a function of the neurons [N, T, m], or None = untouched);
    at most ``chunk`` copies run in one batched pass (``run.resume``).
    """
    n, out = len(paused.batch), []
    for s in range(0, len(edits), chunk):
        part = edits[s:s + chunk]

        def replace(x, part=part):  # x: [k*N, T, m]
            x = x.clone()
            for c, f in enumerate(part):
                if f is not None:
                    x[c * n:(c + 1) * n] = f(x[c * n:(c + 1) * n])
            return x

        with hooks.edit(model, f"layers.{layer}.mlp.neurons", replace):
            h = run.resume(model, paused, len(part))  # [k*N, T, d]
        out.append(h.view(len(part), n, *h.shape[1:]))
    return torch.cat(out)


@torch.no_grad()
def _gaps_of(model, h: torch.Tensor, b: run.Batch, n_a: int, ia: int, ib: int) -> torch.Tensor:
    """h [K, N, T, d] final-norm outputs -> the gap of each condition [K] (only two LM-head rows read)."""
    K, N = h.shape[:2]
    last = run.last(h.reshape(K * N, *h.shape[2:]), b.repeat(K)).float()  # [K*N, d]
    logits = run.head(model, last, [ia, ib]).view(K, N, 2)
    d = logits[..., 0] - logits[..., 1]  # [K, N]
    return d[:, :n_a].mean(1) - d[:, n_a:].mean(1)


@torch.no_grad()
def _losses_of(model, h: torch.Tensor, b: run.Batch) -> torch.Tensor:
    """h [K, N, T, d] final-norm outputs of ordinary texts -> mean next-token loss of each condition [K] (nats)."""
    ids, mask = b.ids[:, LOSS_SKIP + 1:], b.mask[:, LOSS_SKIP + 1:].bool()  # [N, T'] the tokens predicted
    out = []
    for hk in h:  # [N, T, d]
        logp = torch.log_softmax(run.head(model, hk[:, LOSS_SKIP:-1].float()), -1)  # [N, T', V]
        nll = -logp.gather(-1, ids[..., None])[..., 0]  # [N, T']
        out.append(float(nll[mask].mean()))
    return torch.tensor(out)


class _Bench:
    """The prompts of two kinds and the ordinary texts, paused at ``layer``, ready for many edits (Chapter 14)."""

    def __init__(self, model, layer: int, prompts_a, prompts_b, token_a: str, token_b: str, texts):
        self.model, self.layer = model, hooks.layer_index(model, layer)
        a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
        self.ia, self.ib = single_token_id(model, token_a), single_token_id(model, token_b)
        texts = run.prompts(texts, "texts")
        self.n_a = len(a)
        self.batch = run.batch(model, [*a, *b])
        self.texts = run.batch(model, texts, max_tokens=LOSS_TOKENS)
        if int(self.texts.lengths.min()) < LOSS_SKIP + 2:
            raise AnatomyError(f"Each ordinary text needs at least {LOSS_SKIP + 2} tokens for the loss check; give longer texts.")
        self.p_prompts = run.pause(model, self.batch, self.layer)
        self.p_texts = run.pause(model, self.texts, self.layer)
        self.m = _n_neurons(model, self.layer)
        self.baseline = float(_gaps_of(model, self.p_prompts.final[None], self.batch, self.n_a, self.ia, self.ib)[0])
        self.clean_loss = float(_losses_of(model, self.p_texts.final[None], self.texts)[0])
        self._text_acts = None

    def gaps(self, edits) -> torch.Tensor:
        """The gap under each edit [K] (edits: functions of the neurons [N, T, m] of the prompts)."""
        return _gaps_of(self.model, _run_edits(self.model, self.p_prompts, self.layer, edits), self.batch, self.n_a, self.ia, self.ib)

    def losses(self, edits) -> torch.Tensor:
        """The loss on the ordinary texts under each edit [K]."""
        return _losses_of(self.model, _run_edits(self.model, self.p_texts, self.layer, edits, chunk=4), self.texts)

    def edits(self, how: str, idx: list[int], means: Means | None, seed: int):
        """The edit of the prompts and the edit of the texts for one way of removing ``idx``."""
        if how == "zero":
            return _edit_zero(idx), _edit_zero(idx)
        if how == "mean":
            _check_means(self.model, means, self.layer)
            if means is None:
                raise AnatomyError("Mean ablation needs mean=anatomy.mean_activations(model, reference_prompts, layer).")
            return _edit_mean(idx, means), _edit_mean(idx, means)
        if how == "resample":
            if means is None or not means.prompts:
                raise AnatomyError("Resample ablation draws from the reference prompts of mean=anatomy.mean_activations(...).")
            ref = run.batch(self.model, list(means.prompts))
            donors = _donors(self.batch, ref, _activations(self.model, ref, self.layer).cpu(), idx, seed)
            if self._text_acts is None:
                self._text_acts = _activations(self.model, self.texts, self.layer).cpu()
            g = torch.Generator().manual_seed(seed)
            n = len(self.texts)
            shift = 1 + int(torch.randint(max(n - 1, 1), (1,), generator=g))  # text i takes another text's values
            text_donors = self._text_acts.roll(shift, 0)[..., idx]  # [N, T, k]
            return _edit_donor(idx, donors), _edit_donor(idx, text_donors)
        raise AnatomyError(f"how={how!r} is not allowed: use 'zero', 'mean' or 'resample'.")


@dataclass(frozen=True)
class NeuronAblation:
    """Neurons removed three ways, with random sets of the same size as the control (Chapter 14).

    The behaviour is the **gap** = mean over kind A of (logit token_a − logit token_b) minus the
    same mean over kind B: how strongly the model tells the kinds apart in its next token. Every
    intervention also reports the next-token loss on held-out ordinary text: a part is necessary
    for the behaviour only when removing it costs the behaviour much more than it costs the loss.
    """

    model_name: str
    layer: int
    neurons: tuple[int, ...]
    baseline: float  # the untouched gap
    clean_loss: float  # the untouched loss on the ordinary texts (nats)
    removed: tuple[Ablated, ...]  # one per way of removing the chosen neurons
    controls: tuple[Ablated, ...]  # random sets of the same size, removed the first way

    def __getitem__(self, how: str) -> Ablated:
        """The chosen neurons removed one way: ``r["mean"]``."""
        for a in self.removed:
            if a.how == how:
                return a
        raise AnatomyError(f"No ablation {how!r} here: this result has {', '.join(a.how for a in self.removed)}.")

    def table(self) -> Table:
        f = lambda v: round(float(v), 3)  # noqa: E731
        rows = [("nothing removed", "", f(self.baseline), 1.0, f(self.clean_loss), 0.0)]
        rows += [(f"{len(self.neurons)} chosen neurons", a.how, f(a.gap), f(a.kept), f(a.loss), f(a.loss_rise)) for a in self.removed]
        if self.controls:
            gaps = torch.tensor([c.gap for c in self.controls])
            loss = torch.tensor([c.loss for c in self.controls])
            rows.append((f"{len(self.neurons)} random neurons ({len(self.controls)} sets, mean)", self.controls[0].how,
                         f(gaps.mean()), f(gaps.mean() / self.baseline), f(loss.mean()), f(loss.mean() - self.clean_loss)))
        return Table(("removed", "how", "gap", "gap kept", "loss on ordinary text", "loss rise (nats)"), tuple(rows),
                     f"{self.model_name}, layer {self.layer}: the behaviour's gap and the general loss")


def neuron_ablation(model, prompts_a, prompts_b, layer: int, neurons, token_a: str, token_b: str, *, texts,
                    mean: Means | None = None, how=("zero", "mean", "resample"), controls: int = 5,
                    seed: int = 0) -> NeuronAblation:
    """Remove ``neurons`` of ``layer`` each way in ``how``, and random sets of the same size (Chapter 14).

    Measures the gap between the kinds in the next-token logit difference ``token_a − token_b``,
    and the next-token loss on ``texts`` (held-out ordinary text, e.g. ``anatomy.book_text("en")``).
    ``mean`` (from :func:`mean_activations` on reference prompts) gives mean ablation its values
    and resample ablation the prompts it draws from. The controls remove ``controls`` random sets
    (seeded) the first way in ``how``. The layers before ``layer`` run once.
    """
    if isinstance(how, str):
        how = (how,)
    if isinstance(controls, bool) or not isinstance(controls, int) or controls < 0:
        raise AnatomyError(f"controls={controls!r} is not allowed: use a number of random sets, e.g. 3 (0 = none).")
    bench = _Bench(model, layer, prompts_a, prompts_b, token_a, token_b, texts)
    i = bench.layer
    ns = _indices(neurons, bench.m, "neurons", model, i)
    if not ns:
        raise AnatomyError("Give at least one neuron to remove, e.g. [n for _, n, _ in separation.top(5, layer)].")
    _check_means(model, mean, i)
    sets = random_neurons(model, i, len(ns), controls, exclude=ns, seed=seed) if controls else []
    pairs = [bench.edits(h, ns, mean, seed) for h in how] + [bench.edits(how[0], s, mean, seed + 1 + k) for k, s in enumerate(sets)]
    gaps = bench.gaps([p for p, _ in pairs]).tolist()
    losses = bench.losses([t for _, t in pairs]).tolist()
    label = lambda h: "mean, position 0 pooled" if h == "mean" and mean is not None and mean.pooled else h  # noqa: E731
    made = [Ablated(label(h), tuple(s), g, l, bench.baseline, bench.clean_loss)
            for h, s, g, l in zip([*how, *[how[0]] * len(sets)], [ns, *[ns] * (len(how) - 1), *sets], gaps, losses)]
    return NeuronAblation(model.name, i, tuple(ns), bench.baseline, bench.clean_loss, tuple(made[:len(how)]), tuple(made[len(how):]))


@dataclass(frozen=True)
class DoseResponse:
    """The top k neurons removed, for several k, against many random sets of each size (Chapter 14)."""

    model_name: str
    layer: int
    how: str
    ks: tuple[int, ...]
    baseline: float
    clean_loss: float
    chosen: tuple[Ablated, ...]  # one per k: the top k neurons removed
    random_gaps: torch.Tensor  # [len(ks), n_sets] the gap with k random neurons removed, one per set
    random_losses: torch.Tensor  # [len(ks), n_loss] the loss for the first n_loss random sets of each size

    def share_below(self, j: int) -> float:
        """The share of random sets of size ks[j] whose gap is at most the top set's: an empirical p-value."""
        return float((self.random_gaps[j] <= self.chosen[j].gap).float().mean())

    def table(self) -> Table:
        f = lambda v: round(float(v), 3)  # noqa: E731
        rows = tuple((k, f(c.kept), f(c.loss_rise), f(self.random_gaps[j].mean() / self.baseline),
                      f(self.random_gaps[j].min() / self.baseline), f(self.random_losses[j].mean() - self.clean_loss),
                      f(self.share_below(j)))
                     for j, (k, c) in enumerate(zip(self.ks, self.chosen)))
        return Table(("k", "gap kept, top k", "loss rise, top k", "gap kept, random (mean)", "gap kept, random (lowest)",
                      "loss rise, random (mean)", "random sets at or below top k"), rows,
                     f"{self.model_name}, layer {self.layer}: top k neurons vs {self.random_gaps.shape[1]} random sets of each size ({self.how} ablation)")


def dose_response(model, prompts_a, prompts_b, layer: int, ranked, token_a: str, token_b: str, *, texts,
                  ks=(1, 5, 20, 100), mean: Means | None = None, how: str = "mean", sets: int = 20,
                  loss_sets: int = 3, seed: int = 0) -> DoseResponse:
    """Remove the first k of ``ranked`` neurons for each k, and ``sets`` random sets of each size (Chapter 14).

    ``ranked``: neuron indices of ``layer``, best first (chosen on other prompts than these). The
    random sets are seeded; the loss on ``texts`` is measured for the top sets and for the first
    ``loss_sets`` random sets of each size (each loss costs a pass of the full LM head).
    """
    bench = _Bench(model, layer, prompts_a, prompts_b, token_a, token_b, texts)
    i = bench.layer
    ranked = [int(n) for n in (ranked.tolist() if isinstance(ranked, torch.Tensor) else ranked)]
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(ranked) for k in ks):
        raise AnatomyError(f"ks={ks!r} is not allowed: each k must be from 1 to the {len(ranked)} ranked neurons.")
    for k in ks:
        _indices(ranked[:k], bench.m, "neurons", model, i)
    if isinstance(sets, bool) or not isinstance(sets, int) or sets < 1 or not 0 <= loss_sets <= sets:
        raise AnatomyError(f"sets={sets!r}, loss_sets={loss_sets!r}: use sets >= 1 and 0 <= loss_sets <= sets.")
    top = [bench.edits(how, ranked[:k], mean, seed) for k in ks]
    rnd = [[bench.edits(how, s, mean, seed + 1 + j) for j, s in enumerate(random_neurons(model, i, k, sets, seed=seed + k))]
           for k in ks]
    gaps = bench.gaps([p for p, _ in top] + [p for row in rnd for p, _ in row])
    losses = bench.losses([t for _, t in top] + [t for row in rnd for _, t in row[:loss_sets]])
    n = len(ks)
    chosen = tuple(Ablated(how, tuple(ranked[:k]), float(gaps[j]), float(losses[j]), bench.baseline, bench.clean_loss)
                   for j, k in enumerate(ks))
    return DoseResponse(model.name, i, how, ks, bench.baseline, bench.clean_loss, chosen,
                        gaps[n:].view(n, sets), losses[n:].view(n, loss_sets))


@dataclass(frozen=True)
class NeuronScaling:
    """One neuron's activation multiplied by a factor at every position: the behaviour against the level (Chapter 14)."""

    model_name: str
    layer: int
    neuron: int
    factors: torch.Tensor  # [S] 1 = untouched, 0 = zero ablation
    gaps: torch.Tensor  # [S]
    losses: torch.Tensor  # [S]
    baseline: float
    clean_loss: float

    def table(self) -> Table:
        rows = tuple((round(float(f), 2), round(float(g), 3), round(float(g) / self.baseline, 3), round(float(l - self.clean_loss), 4))
                     for f, g, l in zip(self.factors, self.gaps, self.losses))
        return Table(("factor", "gap", "gap kept", "loss rise (nats)"), rows,
                     f"{self.model_name}, layer {self.layer}, neuron {self.neuron}: scaled")


def neuron_scaling(model, prompts_a, prompts_b, layer: int, neuron: int, token_a: str, token_b: str, *, texts,
                   factors=(-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)) -> NeuronScaling:
    """Multiply one neuron's activation by each factor and measure the gap and the loss on ``texts`` (Chapter 14)."""
    bench = _Bench(model, layer, prompts_a, prompts_b, token_a, token_b, texts)
    ns = _indices([neuron], bench.m, "neurons", model, bench.layer)
    fs = torch.tensor([float(f) for f in factors])
    if fs.numel() == 0 or not torch.isfinite(fs).all():
        raise AnatomyError(f"factors={factors!r} is not allowed: give finite numbers, e.g. (-2, -1, 0, 1, 2, 3).")
    edits = [_edit_scale(ns, float(f)) for f in fs]
    return NeuronScaling(model.name, bench.layer, ns[0], fs, bench.gaps(edits), bench.losses(edits), bench.baseline, bench.clean_loss)


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
    mean: torch.Tensor  # [L, m] under mean ablation (position 0 and the other positions each their own mean)

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
    places = [f"layers.{i}.mlp.neurons" for i in range(model.n_layers)]
    gap, batch, xg = _gap_grads(model, prompts_a, prompts_b, token_a, token_b, places)
    zero, mean = zip(*[_zero_and_mean_estimates(x, g, batch.mask) for x, g in xg])  # each [m]
    return Attribution(model.name, gap, torch.stack(zero), torch.stack(mean))


# --- the attention sink's neurons ------------------------------------------------------------------
@dataclass(frozen=True)
class SinkNeuron:
    """A neuron that fires at position 0 far more than anywhere else (Chapter 14)."""

    layer: int
    neuron: int
    first: torch.Tensor  # [N] its activation at position 0 of each text
    rest: torch.Tensor  # [N] its largest |activation| at any later position of each text
    typical: torch.Tensor  # [N] its median |activation| over the later positions of each text


@dataclass(frozen=True)
class SinkNeurons:
    """The neurons with the largest activation at position 0, over every layer (Chapter 14)."""

    model_name: str
    neurons: tuple[SinkNeuron, ...]  # largest first

    def table(self) -> Table:
        rows = tuple((s.layer, s.neuron, round(float(s.first.abs().min()), 1), round(float(s.first.abs().max()), 1),
                      round(float(s.typical.median()), 3), round(float(s.rest.max()), 1)) for s in self.neurons)
        return Table(("layer", "neuron", "smallest |activation| at position 0", "largest at position 0",
                      "median |activation| elsewhere", "largest |activation| elsewhere"), rows,
                     f"{self.model_name}: the neurons that fire most at the first position, over {len(self.neurons[0].first)} texts")


@torch.no_grad()
def sink_neurons(model, texts, k: int = 3, *, max_tokens: int = 32) -> SinkNeurons:
    """The ``k`` neurons of all layers whose mean |activation| at position 0 of ``texts`` is largest (Chapter 14)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise AnatomyError(f"k={k!r} is not allowed: ask for a positive number of neurons, e.g. 3.")
    b = run.batch(model, run.prompts(texts, "texts"), max_tokens=max_tokens)
    places = [f"layers.{i}.mlp.neurons" for i in range(model.n_layers)]
    real = b.mask.bool()[..., None]  # [N, T, 1]
    firsts, rests, xs = [], [], []
    with hooks.capture(model, *places) as seen:
        run.run_to(model, b, places[-1].rsplit(".", 2)[0])
    for p in places:
        x = seen.pop(p).float().cpu()  # [N, T, m]
        firsts.append(x[:, 0])  # [N, m]
        rests.append((x[:, 1:].abs() * real[:, 1:].cpu()).amax(1))  # [N, m]
        xs.append(x)
    first, rest = torch.stack(firsts, 1), torch.stack(rests, 1)  # [N, L, m]
    m = first.shape[-1]
    out = []
    for f in first.abs().mean(0).flatten().topk(k).indices.tolist():
        layer, n = f // m, f % m
        later = [xs[layer][j, 1:int(b.lengths[j]), n].abs() for j in range(len(b))]  # real tokens after position 0
        typical = torch.stack([v.median() if len(v) else torch.tensor(0.0) for v in later])  # [N]
        out.append(SinkNeuron(layer, n, first[:, layer, n], rest[:, layer, n], typical))
    return SinkNeurons(model.name, tuple(out))


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
    One prompt only: :func:`head_set_ablation` tests heads on many prompts, with controls.
    """
    check_prompt(model, prompt)
    tid = single_token_id(model, answer)
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    n = L * H
    b = run.batch(model, [prompt]).repeat(n + 1)  # [L*H + 1, T]
    with contextlib.ExitStack() as stack:
        for layer in range(L):
            keep = torch.ones(n + 1, H, device=model.device)  # [B, H] 0 = removed
            keep[torch.arange(layer * H, (layer + 1) * H), torch.arange(H)] = 0
            keep = keep.repeat_interleave(hd, 1)[:, None, :]  # [B, 1, H*hd]
            stack.enter_context(hooks.edit(model, f"layers.{layer}.attn.o.input", lambda x, k=keep: x * k.to(x)))
        h = run.last(run.run_to(model, b, "final_norm"), b)  # [B, d]
    lp = torch.log_softmax(run.head(model, h.float()), -1)[:, tid].cpu()  # [B]
    return HeadAblation(model.name, prompt, readable(model.tokenizer, tid), float(lp[-1]), lp[:-1].view(L, H))


# --- heads on many prompts: chosen on training prompts, tested on held-out ones against random heads ----
def _gap_grads(model, prompts_a, prompts_b, token_a: str, token_b: str, places):
    """One forward and one backward pass: the gap, the batch, and each place's value and gradient [N, T, width]."""
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    ia, ib = single_token_id(model, token_a), single_token_id(model, token_b)
    batch = run.batch(model, [*a, *b])
    with hooks.graph(model, *places) as acts:
        h = run.last(run.run_to(model, batch, "final_norm"), batch)  # [N, d] final-norm vector at each last token
        logits = run.head(model, h.float(), [ia, ib])  # [N, 2]: the LM head's two rows only
        d = logits[:, 0] - logits[:, 1]  # [N]
        gap = d[:len(a)].mean() - d[len(a):].mean()
        grads = torch.autograd.grad(gap, [acts[p] for p in places])
    return float(gap.detach()), batch, [(acts[p].detach().float(), g.float()) for p, g in zip(places, grads)]


def _zero_and_mean_estimates(x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order change of the gap if each unit (last axis) were set to 0 / to its per-position mean. [width], [width]"""
    real = mask.bool()[..., None]  # [N, T, 1]
    later = real.clone()
    later[:, 0] = False  # position 0 (the attention sink) has its own mean, as in mean_activations
    x, g = x * real, g * real  # [N, T, width]
    target = ((x * later).sum((0, 1)) / later.sum()).expand_as(x).clone()  # [N, T, width] mean after position 0
    target[:, 0] = x[:, 0].mean(0)  # the mean at position 0
    return (-x * g).sum((0, 1)).cpu(), ((target - x) * real * g).sum((0, 1)).cpu()


@dataclass(frozen=True)
class HeadAttribution:
    """First-order estimate of how much removing each attention head (at every position) changes the gap (Chapter 14).

    As :class:`Attribution` for neurons, on each head's output (its slice of ``layers.N.attn.o.input``):
    the change of the gap is about Σ (a' − a) · ∂gap/∂a over the head's values at every position.
    """

    model_name: str
    gap: float
    zero: torch.Tensor  # [L, H] estimated change of the gap under zero ablation
    mean: torch.Tensor  # [L, H] under mean ablation (position 0 and the other positions each their own mean)

    def top(self, k: int = 3, *, kind: str = "mean") -> tuple[tuple[int, int, float], ...]:
        """The k heads whose removal is estimated to shrink the gap most: (layer, head, estimated change)."""
        if kind not in ("zero", "mean"):
            raise AnatomyError(f"kind={kind!r} is not allowed: use 'zero' or 'mean'.")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise AnatomyError(f"k={k!r} is not allowed: ask for a positive number of heads, e.g. 3.")
        s = getattr(self, kind)
        H = s.shape[1]
        flat = (-s).flatten().topk(min(k, s.numel())).indices  # the most negative changes first
        return tuple((int(f) // H, int(f) % H, float(s.flatten()[f])) for f in flat)


def head_attribution(model, prompts_a, prompts_b, token_a: str, token_b: str) -> HeadAttribution:
    """Estimate, for every head of every layer, the change of the gap if it were removed (Chapter 14): one backward pass."""
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    places = [f"layers.{i}.attn.o.input" for i in range(L)]
    gap, batch, xg = _gap_grads(model, prompts_a, prompts_b, token_a, token_b, places)
    zero, mean = zip(*[_zero_and_mean_estimates(x, g, batch.mask) for x, g in xg])  # each [H*hd]
    per_head = lambda v: torch.stack(v).view(L, H, hd).sum(-1)  # noqa: E731  [L, H]
    return HeadAttribution(model.name, gap, per_head(zero), per_head(mean))


def random_heads(model, k: int, n: int = 20, *, exclude=(), seed: int = 0) -> list[list[tuple[int, int]]]:
    """``n`` seeded sets of ``k`` random heads (layer, head) from every layer, none in ``exclude``: the control (Chapter 14)."""
    H = model.n_heads
    skip = {(int(l), int(h)) for l, h, *_ in exclude}
    pool = [(l, h) for l in range(model.n_layers) for h in range(H) if (l, h) not in skip]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(pool):
        raise AnatomyError(f"k={k!r} is not allowed: pick from 1 to {len(pool)} heads.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise AnatomyError(f"n={n!r} is not allowed: ask for a number of random sets, e.g. 20.")
    g = torch.Generator().manual_seed(seed)
    return [sorted(pool[j] for j in torch.randperm(len(pool), generator=g)[:k].tolist()) for _ in range(n)]


@torch.no_grad()
def _head_means(model, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """Every head output's mean at position 0 and over the later real tokens of ``prompts``, every layer: [L, H*hd] each."""
    b = run.batch(model, run.prompts(prompts, "reference"))
    places = [f"layers.{i}.attn.o.input" for i in range(model.n_layers)]
    with hooks.capture(model, *places) as seen:
        run.run_to(model, b, f"layers.{model.n_layers - 1}")
    later = b.mask.bool().cpu().clone()
    later[:, 0] = False
    if not later.any():
        raise AnatomyError("Every reference prompt is one token long: give prompts of two tokens or more.")
    xs = [seen[p].float().cpu() for p in places]  # [B, T, H*hd] each
    return torch.stack([x[:, 0].mean(0) for x in xs]), torch.stack([x[later].mean(0) for x in xs])


@torch.no_grad()
def _heads_removed(model, b: run.Batch, conditions, means) -> torch.Tensor:
    """Final-norm outputs of the batch under each condition [K, N, T, d]; a condition is (how, [(layer, head), ...]).

    Copy k of the batch has its heads set to 0 (``how="zero"``) or to their means (``"mean"``: the
    position-0 mean at position 0, the mean over later positions elsewhere); one batched pass for all.
    """
    K, n, T = len(conditions), len(b), b.ids.shape[1]
    H, hd = model.n_heads, model.head_dim
    with contextlib.ExitStack() as stack:
        for layer in sorted({l for _, hs in conditions for l, _ in hs}):
            keep = torch.ones(K, H)  # [K, H] 0 = removed
            fill = torch.zeros(K, T, H * hd)  # [K, T, H*hd] what a removed head writes
            for c, (how, hs) in enumerate(conditions):
                for l, h in hs:
                    if l == layer:
                        keep[c, h] = 0
                if how == "mean":
                    first, rest = means[0][layer], means[1][layer]  # [H*hd]
                    fill[c, 0], fill[c, 1:] = first, rest
            keep = keep.repeat_interleave(hd, 1)[:, None].repeat_interleave(n, 0).to(model.device)  # [K*N, 1, H*hd]
            fill = fill.repeat_interleave(n, 0).to(model.device)  # [K*N, T, H*hd]
            stack.enter_context(hooks.edit(model, f"layers.{layer}.attn.o.input",
                                           lambda x, k=keep, f=fill: x * k.to(x) + (1 - k.to(x)) * f.to(x)))
        h = run.run_to(model, b.repeat(K), "final_norm")  # [K*N, T, d]
    return h.view(K, n, *h.shape[1:])


@dataclass(frozen=True)
class HeadSetAblation:
    """A set of heads removed two ways on held-out prompts, against many random sets of heads of the same size (Chapter 14)."""

    model_name: str
    heads: tuple[tuple[int, int], ...]  # (layer, head), chosen on other prompts
    baseline: float  # the untouched gap
    clean_loss: float  # the untouched loss on the ordinary texts (nats)
    removed: tuple[Ablated, ...]  # the chosen heads, one per way
    random_gaps: torch.Tensor  # [ways, sets] the gap with a random set of heads removed
    random_losses: torch.Tensor  # [ways, loss_sets] the loss for the first loss_sets random sets of each way

    def __getitem__(self, how: str) -> Ablated:
        """The chosen heads removed one way: ``r["mean"]``."""
        for a in self.removed:
            if a.how == how:
                return a
        raise AnatomyError(f"No ablation {how!r} here: this result has {', '.join(a.how for a in self.removed)}.")

    def share_below(self, how: str) -> float:
        """The share of random sets (removed the same way) whose gap is at most the chosen set's: an empirical p-value."""
        j = [a.how for a in self.removed].index(self[how].how)
        return float((self.random_gaps[j] <= self.removed[j].gap).float().mean())

    def table(self) -> Table:
        f = lambda v: round(float(v), 3)  # noqa: E731
        rnd_loss = lambda j: f(self.random_losses[j].mean() - self.clean_loss) if self.random_losses.shape[1] else "not measured"  # noqa: E731
        rows = tuple((a.how, f(a.kept), f(a.loss_rise), f(self.random_gaps[j].mean() / self.baseline),
                      f(self.random_gaps[j].min() / self.baseline), rnd_loss(j), f(self.share_below(a.how)))
                     for j, a in enumerate(self.removed))
        where = ", ".join(f"{l}.{h}" for l, h in self.heads)
        return Table(("how", "gap kept, chosen heads", "loss rise, chosen", "gap kept, random (mean)", "gap kept, random (lowest)",
                      "loss rise, random (mean)", "random sets at or below chosen"), rows,
                     f"{self.model_name}: heads {where} (layer.head) vs {self.random_gaps.shape[1]} random sets of "
                     f"{len(self.heads)} heads")


def head_set_ablation(model, prompts_a, prompts_b, heads, token_a: str, token_b: str, *, texts, reference,
                      how=("zero", "mean"), sets: int = 20, loss_sets: int = 0, seed: int = 0) -> HeadSetAblation:
    """Remove the attention ``heads`` [(layer, head), ...] together, each way in ``how``, and ``sets`` random sets (Chapter 14).

    The behaviour is the gap of :class:`NeuronAblation` on ``prompts_a``/``prompts_b``; the loss is the
    next-token loss on ``texts`` (held-out ordinary text). Mean ablation writes each head's mean over
    ``reference`` prompts (position 0 apart). Random sets of the same size are drawn from every layer
    (seeded, none of the chosen heads) and removed each way; the loss is measured for the chosen heads
    and the first ``loss_sets`` random sets of each way. Every condition is one copy of the batch in one pass.
    """
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    ia, ib = single_token_id(model, token_a), single_token_id(model, token_b)
    how = (how,) if isinstance(how, str) else tuple(how)
    if not how or any(h not in ("zero", "mean") for h in how):
        raise AnatomyError(f"how={how!r} is not allowed: use 'zero', 'mean' or both.")
    chosen = []
    for item in heads:
        l, h = int(item[0]), int(item[1])
        if not 0 <= l < model.n_layers or not 0 <= h < model.n_heads:
            raise AnatomyError(f"Head {(l, h)} is out of range: {model.name} has layers 0 to {model.n_layers - 1} and heads 0 to {model.n_heads - 1}.")
        chosen.append((l, h))
    chosen = sorted(set(chosen))
    if isinstance(sets, bool) or not isinstance(sets, int) or sets < 1 or not 0 <= loss_sets <= sets:
        raise AnatomyError(f"sets={sets!r}, loss_sets={loss_sets!r}: use sets >= 1 and 0 <= loss_sets <= sets.")
    if isinstance(loss_sets, bool) or not isinstance(loss_sets, int):
        raise AnatomyError(f"loss_sets={loss_sets!r} is not allowed: use a number of random sets (0 = none).")
    means = _head_means(model, reference)
    rnd = random_heads(model, max(len(chosen), 1), sets, exclude=chosen, seed=seed) if chosen else [[] for _ in range(sets)]
    batch = run.batch(model, [*a, *b])
    texts_b = run.batch(model, run.prompts(texts, "texts"), max_tokens=LOSS_TOKENS)
    if int(texts_b.lengths.min()) < LOSS_SKIP + 2:
        raise AnatomyError(f"Each ordinary text needs at least {LOSS_SKIP + 2} tokens for the loss check; give longer texts.")
    gap_conds = [("zero", [])] + [(w, chosen) for w in how] + [(w, s) for w in how for s in rnd]
    gaps = _gaps_of(model, _heads_removed(model, batch, gap_conds, means), batch, len(a), ia, ib)  # [K]
    loss_conds = [("zero", [])] + [(w, chosen) for w in how] + [(w, s) for w in how for s in rnd[:loss_sets]]
    losses = _losses_of(model, _heads_removed(model, texts_b, loss_conds, means), texts_b)  # [K']
    base, clean = float(gaps[0]), float(losses[0])
    n = len(how)
    removed = tuple(Ablated(w, (), float(gaps[1 + j]), float(losses[1 + j]), base, clean, heads=tuple(chosen))
                    for j, w in enumerate(how))
    return HeadSetAblation(model.name, tuple(chosen), base, clean, removed, gaps[1 + n:].view(n, sets),
                           losses[1 + n:].view(n, loss_sets))


# --- knowledge neurons: the FFN neurons that carry one fact (Dai et al. 2022) -----------------------------
@torch.no_grad()
def _neurons_scaled(model, b: run.Batch, conditions, last_only: bool) -> torch.Tensor:
    """Final-norm outputs under each condition [K, N, T, d]; a condition is (factor, [(layer, neuron), ...]).

    Copy k of the batch has its neurons multiplied by the factor (0 = suppressed), at each prompt's
    last real token only (``last_only``) or at every position; one batched pass for all conditions.
    """
    K, n = len(conditions), len(b)
    rows = torch.arange(K * n, device=model.device)
    last = (b.lengths - 1).repeat(K).to(model.device)  # [K*N] each row's last real token
    with contextlib.ExitStack() as stack:
        for layer in sorted({l for _, ns in conditions for l, _ in ns}):
            mult = torch.ones(K, _n_neurons(model, layer))  # [K, m]
            for c, (factor, ns) in enumerate(conditions):
                for l, j in ns:
                    if l == layer:
                        mult[c, j] = factor
            mult = mult.repeat_interleave(n, 0).to(model.device)  # [K*N, m]

            def f(x, mult=mult):  # x: [K*N, T, m]
                x = x.clone()
                if last_only:
                    x[rows, last] = x[rows, last] * mult.to(x)
                else:
                    x = x * mult.to(x)[:, None]
                return x
            stack.enter_context(hooks.edit(model, f"layers.{layer}.mlp.neurons", f))
        h = run.run_to(model, b.repeat(K), "final_norm")  # [K*N, T, d]
    return h.view(K, n, *h.shape[1:])


@dataclass(frozen=True)
class KnowledgeNeurons:
    """Each fact's top neurons, suppressed (×0) and amplified, at the answer position (Chapter 14; Dai et al. 2022).

    ``suppressed[f, g]`` is the probability of fact g's answer when fact f's neurons are set to 0
    (the diagonal: the fact itself; off it: the other facts, the control); ``random_*`` rows are
    random sets of neurons of the same size. The loss check applies the same edits at every position
    of ordinary text, to all the facts' neurons together.
    """

    model_name: str
    prompts: tuple[str, ...]  # [F]
    answers: tuple[str, ...]  # the first token of each answer
    relations: tuple[str, ...]
    right: torch.Tensor  # [F] bool: the model's top next token is the answer's first token
    neurons: tuple[tuple[tuple[int, int], ...], ...]  # per fact: its k neurons (layer, neuron), best first
    factor: float  # the amplifying factor
    base: torch.Tensor  # [F] the answer's probability, untouched
    suppressed: torch.Tensor  # [F, F]
    amplified: torch.Tensor  # [F, F]
    random_suppressed: torch.Tensor  # [R, F]
    random_amplified: torch.Tensor  # [R, F]
    clean_loss: float
    losses: torch.Tensor  # [2] the loss with all the facts' neurons together ×0, then ×factor, at every position

    @property
    def loss_rise(self) -> torch.Tensor:
        """How much the loss on ordinary text rose with all the facts' neurons ×0, then ×factor (nats). Shape [2]."""
        return self.losses - self.clean_loss

    @property
    def shared(self) -> int:
        """How many of the chosen neurons belong to the sets of two facts or more."""
        count: dict = {}
        for ns in self.neurons:
            for x in ns:
                count[x] = count.get(x, 0) + 1
        return sum(1 for c in count.values() if c > 1)

    def change(self, what: str) -> torch.Tensor:
        """Relative change of each answer's probability (0 = unchanged, -1 = gone), suppressed then amplified: [2, ...].

        "own" [2, F]: each fact under its own neurons; "related" [2, F]: the other facts of the same relation
        (mean), "unrelated" [2, F]: the facts of other relations (mean); "random" [2, R, F]: random sets."""
        both = torch.stack([self.suppressed, self.amplified]) / self.base - 1  # [2, F, F]
        F = len(self.base)
        if what == "own":
            return both.diagonal(dim1=1, dim2=2)  # [2, F]
        if what in ("related", "unrelated"):
            same = torch.tensor([[a == b for b in self.relations] for a in self.relations])  # [F, F]
            keep = ~torch.eye(F, dtype=torch.bool) & (~same if what == "unrelated" else same)
            return (both * keep).sum(-1) / keep.sum(-1).clamp(min=1)  # [2, F]
        if what == "random":
            return torch.stack([self.random_suppressed, self.random_amplified]) / self.base - 1  # [2, R, F]
        raise AnatomyError(f"what={what!r} is not allowed: use 'own', 'related', 'unrelated' or 'random'.")

    def table(self) -> Table:
        own, oth, rnd = self.change("own"), self.change("unrelated"), self.change("random").mean(1)  # [2, F] each
        f = lambda v: f"{float(v):+.0%}"  # noqa: E731
        rows = tuple((p, a, bool(r), round(float(b), 3), " ".join(f"{l}.{j}" for l, j in ns), f(own[0, i]), f(oth[0, i]),
                      f(rnd[0, i]), f(own[1, i]), f(oth[1, i]), f(rnd[1, i]))
                     for i, (p, a, r, b, ns) in enumerate(zip(self.prompts, self.answers, self.right, self.base, self.neurons)))
        x = f"×{self.factor:g}"
        return Table(("prompt", "answer", "answered right", "p(answer)", "its neurons (layer.neuron)", "own fact, ×0",
                      "unrelated facts, ×0", "random sets, ×0", f"own fact, {x}", f"unrelated facts, {x}", f"random sets, {x}"), rows,
                     f"{self.model_name}: each fact's {len(self.neurons[0])} neurons suppressed or amplified at the answer position "
                     f"(change of the answer's probability; random: mean of {self.random_suppressed.shape[0]} sets)")


def _round_robin(items) -> list:
    """Items (relation, ...) reordered one relation after another (relation 1, 2, ..., 1, 2, ...), each in its own order."""
    by: dict[str, list] = {}
    for item in items:
        by.setdefault(item[0], []).append(item)
    out, lists = [], list(by.values())
    for i in range(max((len(v) for v in lists), default=0)):
        out += [v[i] for v in lists if i < len(v)]
    return out


def knowledge_neurons(model, facts, *, texts, n: int = 6, k: int = 5, factor: float = 2.0, sets: int = 8,
                      seed: int = 0) -> KnowledgeNeurons:
    """Find each fact's ``k`` top FFN neurons, suppress (×0) and amplify (×``factor``) them (Chapter 14; Dai et al. 2022).

    ``facts``: (relation, template, subject, answer) rows, as ``anatomy.facts()`` gives. The first
    ``n`` facts the model answers right are kept (taking the relations in turn; facts answered wrong
    fill up if there are too few). A neuron's score for a fact is activation × gradient of the
    answer's probability at the prompt's last token: the one-step stand-in for Dai et al.'s integrated
    gradients. Edits act at the last token only, as Dai et al.'s do at the answer position; ``sets``
    seeded random sets of ``k`` neurons from every layer are the control.
    """
    rows, seen_answers = [], set()
    for fact in facts:  # each fact with an answer of its own (first tokens differ), in the order given
        first = model.tokenizer(fact[3], add_special_tokens=False)["input_ids"][0]
        if first not in seen_answers:
            rows.append(fact)
            seen_answers.add(first)
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(rows):
        raise AnatomyError(f"n={n!r} is not allowed: use from 2 to the {len(rows)} facts with answers of their own.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or isinstance(sets, bool) or not isinstance(sets, int) or sets < 1:
        raise AnatomyError(f"k={k!r}, sets={sets!r}: use k >= 0 neurons per fact and sets >= 1 random sets.")
    by: dict[str, list] = {}
    for fact in rows:
        by.setdefault(fact[0], []).append(fact)
    cand = [f for v in by.values() for f in v[:2 * n]]  # a few more facts than needed from each relation
    prompts = [t.format(s) for _, t, s, _ in cand]
    ids = [model.tokenizer(a, add_special_tokens=False)["input_ids"][0] for *_, a in cand]
    b = run.batch(model, prompts)
    with torch.no_grad():
        top = run.head(model, run.last(run.run_to(model, b, "final_norm"), b).float()).argmax(-1).cpu()  # [C]
    right = [bool(int(t) == i) for t, i in zip(top, ids)]
    turns = _round_robin([(cand[i][0], i) for i in range(len(cand)) if right[i]]) \
        + _round_robin([(cand[i][0], i) for i in range(len(cand)) if not right[i]])  # answered right first, relations in turn
    order = [i for _, i in turns[:n]]
    prompts, ids, right = [prompts[i] for i in order], [ids[i] for i in order], torch.tensor([right[i] for i in order])
    relations = tuple(cand[i][0] for i in order)
    b = run.batch(model, prompts)
    L = model.n_layers
    places = [f"layers.{i}.mlp.neurons" for i in range(L)]
    where = (torch.arange(n, device=model.device), (b.lengths - 1).to(model.device))
    with hooks.graph(model, *places) as acts:
        h = run.last(run.run_to(model, b, "final_norm"), b).float()  # [F, d]
        p = torch.softmax(run.head(model, h), -1)[torch.arange(n), ids]  # [F] each answer's probability
        grads = torch.autograd.grad(p.sum(), [acts[q] for q in places])  # rows are independent: row f's gradient is fact f's
    scores = torch.stack([(acts[q].detach()[where] * g[where]).float().cpu() for q, g in zip(places, grads)], 1)  # [F, L, m]
    m = scores.shape[-1]
    chosen = [tuple((int(j) // m, int(j) % m) for j in s.flatten().topk(k).indices) for s in scores]
    g = torch.Generator().manual_seed(seed)
    rnd = [[(int(j) // m, int(j) % m) for j in torch.randperm(L * m, generator=g)[:k]] for _ in range(sets)]
    conds = [(1.0, [])] + [(0.0, list(c)) for c in chosen] + [(float(factor), list(c)) for c in chosen] \
        + [(0.0, r) for r in rnd] + [(float(factor), r) for r in rnd]
    with torch.no_grad():
        h = run.last(_neurons_scaled(model, b, conds, True).flatten(0, 1), b.repeat(len(conds))).float()  # [K*F, d]
        want = torch.tensor(ids).repeat(len(conds))  # [K*F]
        probs = torch.cat([torch.softmax(run.head(model, part), -1)[torch.arange(len(part)), w]
                           for part, w in zip(h.split(4 * n), want.split(4 * n))]).view(len(conds), n).cpu()  # [K, F]
    every = sorted({x for c in chosen for x in c})
    texts_b = run.batch(model, run.prompts(texts, "texts"), max_tokens=LOSS_TOKENS)
    if int(texts_b.lengths.min()) < LOSS_SKIP + 2:
        raise AnatomyError(f"Each ordinary text needs at least {LOSS_SKIP + 2} tokens for the loss check; give longer texts.")
    lconds = [(1.0, []), (0.0, every), (float(factor), every)]
    losses = _losses_of(model, _neurons_scaled(model, texts_b, lconds, False), texts_b)  # [3]
    s = 1 + 2 * n
    return KnowledgeNeurons(model.name, tuple(prompts), tuple(readable(model.tokenizer, i) for i in ids), relations, right,
                            tuple(chosen), float(factor), probs[0], probs[1:1 + n], probs[1 + n:s], probs[s:s + sets],
                            probs[s + sets:], float(losses[0]), losses[1:])
