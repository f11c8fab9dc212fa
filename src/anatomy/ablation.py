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

__all__ = ["Ablated", "Attribution", "DoseResponse", "HeadAblation", "Means", "NeuronAblation", "NeuronScaling", "Separation",
           "SinkNeuron", "SinkNeurons", "TopContexts", "ablate", "dose_response", "head_ablation", "last_token_neurons",
           "mean_activations", "neuron_ablation", "neuron_attribution", "neuron_scaling", "random_neurons", "separating_neurons",
           "sink_neurons", "top_contexts"]


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
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    ia, ib = single_token_id(model, token_a), single_token_id(model, token_b)
    batch = run.batch(model, [*a, *b])
    places = [f"layers.{i}.mlp.neurons" for i in range(model.n_layers)]
    with hooks.graph(model, *places) as acts:
        h = run.last(run.run_to(model, batch, "final_norm"), batch)  # [N, d] final-norm vector at each last token
        logits = run.head(model, h.float(), [ia, ib])  # [N, 2]: the LM head's two rows only
        d = logits[:, 0] - logits[:, 1]  # [N]
        gap = d[:len(a)].mean() - d[len(a):].mean()
        grads = torch.autograd.grad(gap, [acts[p] for p in places])
    real = batch.mask.bool()[..., None]  # [N, T, 1]
    later = real.clone()
    later[:, 0] = False  # position 0 (the attention sink) has its own mean, as in mean_activations
    zero, mean = [], []
    for p, g in zip(places, grads):
        x, g = acts[p].detach().float() * real, g.float() * real  # [N, T, m]
        target = ((x * later).sum((0, 1)) / later.sum()).expand_as(x).clone()  # [N, T, m] mean after position 0
        target[:, 0] = x[:, 0].mean(0)  # the mean at position 0
        zero.append((-x * g).sum((0, 1)).cpu())
        mean.append(((target - x) * real * g).sum((0, 1)).cpu())
    return Attribution(model.name, float(gap.detach()), torch.stack(zero), torch.stack(mean))


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
