"""Representation engineering: find a direction between two kinds of prompts, add it while the model runs (Chapter 6).

The recipe of the lecture, in four functions:

    v = direction(model, prompts_a, prompts_b, layer)     # mean(kind A) - mean(kind B) at layer l, [d]
    with steer(model, layer, v, strength=4):              # add strength * v to layer l's output
        generate(model, "My favourite food is")           # ...at every position, while generating
    steering_effect(model, dev, directions(...), markers_a, markers_b, controls=2)   # try every layer,
                                                          # beside random directions of the same norm

Layers count from 0 like the module path ``model.layers.N``; "layer l" means the *output* of that
layer (``hooks`` place ``"layers.l"``, i.e. ``hidden_states(...).layer(l)``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .brains import greedy
from .errors import AnatomyError
from .tokens import single_token_id

__all__ = ["SteeringEffect", "direction", "directions", "generate", "marker_difference", "random_directions", "steer", "steering_effect"]


def directions(model, prompts_a, prompts_b) -> torch.Tensor:
    """mean(layer-l output of kind A) - mean(kind B), at the last token, for every layer at once (Chapter 6).

    Shape [L, d]: row l is ``direction(model, prompts_a, prompts_b, l)``. Two batched forward passes.
    """
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    places = [f"layers.{i}" for i in range(model.n_layers)]
    seen_a, seen_b = run.last_tokens(model, run.batch(model, a), places), run.last_tokens(model, run.batch(model, b), places)
    return torch.stack([seen_a[p].mean(0) - seen_b[p].mean(0) for p in places])  # [L, d]


def direction(model, prompts_a, prompts_b, layer: int) -> torch.Tensor:
    """The lecture's direction at one layer: mean of kind A minus mean of kind B, last token. Shape [d] (Chapter 6)."""
    layer = hooks.layer_index(model, layer)
    a, b = run.prompts(prompts_a, "prompts_a"), run.prompts(prompts_b, "prompts_b")
    place = f"layers.{layer}"
    return run.last_tokens(model, run.batch(model, a), [place])[place].mean(0) - run.last_tokens(model, run.batch(model, b), [place])[place].mean(0)  # [d]


def _check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise AnatomyError(f"strength={strength!r} is not allowed: use a finite number such as 4 (add) or -4 (subtract).")
    return float(strength)


@contextlib.contextmanager
def steer(model, layer: int, vector: torch.Tensor, strength: float = 1.0) -> Iterator[None]:
    """Inside the block, layer ``layer`` outputs ``h + strength * vector`` at every position (Chapter 6).

    A negative strength subtracts the direction. Built on ``hooks.edit``: the hook is removed on
    exit, even if the block raises, so the model is unchanged afterwards.
    """
    layer = hooks.layer_index(model, layer)
    vector, strength = run.check_vector(model, vector), _check_strength(strength)

    def add(h):  # h: [B, T, d]
        return h + strength * vector.to(device=h.device, dtype=h.dtype)

    with hooks.edit(model, f"layers.{layer}", add):
        yield


def generate(model, prompt: str, max_new_tokens: int = 20) -> str:
    """Greedy continuation (always the most likely next token): deterministic, no sampling (Chapter 6).

    Returns only the new text, cut at the end-of-text token. Runs whatever hooks are active, so
    call it inside ``steer`` to steer. The token loop is ``greedy`` of Chapter 12 (with KV cache).
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 200:
        raise AnatomyError(f"max_new_tokens={max_new_tokens!r} is not allowed: use an integer from 1 to 200 (20 is plenty on a CPU).")
    with torch.no_grad():
        new = list(greedy(model, prompt, max_new_tokens))
    eos = model.tokenizer.eos_token_id
    if eos in new:
        new = new[:new.index(eos)]
    return model.tokenizer.decode(new)


def _marker_ids(model, markers, what: str) -> torch.Tensor:
    if isinstance(markers, str) or not isinstance(markers, Sequence) or len(markers) == 0:
        raise AnatomyError(f"{what} must be a non-empty list of single-token words, e.g. ['的', '是'] or [' the', ' is'].")
    return torch.tensor([single_token_id(model, w) for w in markers])  # [k]


@torch.no_grad()
def marker_difference(model, prompts, markers_a, markers_b) -> torch.Tensor:
    """Per prompt: mean next-token logit of the A markers minus that of the B markers. Shape [N] (Chapter 6).

    Positive = the model leans to kind A for its next token. Runs active hooks (use inside ``steer``).
    """
    prompts = run.prompts(prompts, "prompts")
    ia, ib = _marker_ids(model, markers_a, "markers_a"), _marker_ids(model, markers_b, "markers_b")
    return _marker_logits(model, run.last_tokens(model, run.batch(model, prompts), ["final_norm"])["final_norm"], ia, ib)


def _marker_logits(model, h: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """From final-norm vectors h [N, d]: mean logit of the A markers minus mean logit of the B markers. [N]"""
    ids = torch.cat([ia, ib])  # [ka + kb]
    logits = run.head(model, h, ids)  # [N, ka + kb]: only the marker rows of the LM head
    return logits[:, :len(ia)].mean(1) - logits[:, len(ia):].mean(1)  # [N]


def random_directions(vectors: torch.Tensor, n: int = 2, *, seed: int = 0) -> torch.Tensor:
    """The control of a steering experiment: n random directions per layer, each as long as that layer's real one.

    ``vectors`` is [L, d] from ``directions``; the result is [n, L, d], drawn from a seeded Gaussian
    and rescaled so that ``result[k, l].norm() == vectors[l].norm()``. A real direction matters only
    if it moves the model more than these do at the same layer and strength (Chapter 6).
    """
    if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2:
        raise AnatomyError("random_directions needs the [L, d] directions of every layer; use directions(model, prompts_a, prompts_b).")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AnatomyError(f"n={n!r} is not allowed: ask for at least one random direction, e.g. n=2.")
    r = torch.randn(n, *vectors.shape, generator=torch.Generator().manual_seed(seed))  # [n, L, d]
    return r / r.norm(dim=-1, keepdim=True) * vectors.float().norm(dim=-1, keepdim=True)


@torch.no_grad()
def _steered_differences(model, prompts: list[str], ia, ib, layer: int, vecs: torch.Tensor, strength: float) -> torch.Tensor:
    """Marker difference averaged over the prompts, for each of K vectors added at one layer, in one batched pass. [K]"""
    n = len(prompts)
    rows = (strength * vecs.float()).repeat_interleave(n, dim=0)  # [K*N, d]: prompt copy i gets vector i // N

    def add(h):  # h: [K*N, T, d]
        return h + rows.to(device=h.device, dtype=h.dtype)[:, None, :]

    with hooks.edit(model, f"layers.{layer}", add):
        h = run.last_tokens(model, run.batch(model, prompts).repeat(len(vecs)), ["final_norm"])["final_norm"]  # [K*N, d]
    return _marker_logits(model, h, ia, ib).view(len(vecs), n).mean(1)  # [K]


@dataclass(frozen=True)
class SteeringEffect:
    """How much steering moves the marker-logit difference, per layer and strength (Chapter 6).

    ``effect[i, j]`` is the mean over the held-out prompts of (mean logit of A markers - mean logit
    of B markers) with ``strengths[j] * vectors[layers[i]]`` added to the output of ``layers[i]``;
    ``baseline`` is the same mean without steering. ``shift = effect - baseline``. ``control[i, j, k]``
    is the same mean with random direction k of the same length instead (the control), if asked for.
    """

    model_name: str
    layers: tuple[int, ...]
    strengths: tuple[float, ...]
    effect: torch.Tensor  # [n_layers, n_strengths]
    baseline: float
    markers_a: tuple[str, ...]
    markers_b: tuple[str, ...]
    n_prompts: int
    control: torch.Tensor | None = None  # [n_layers, n_strengths, n_controls], random directions of the same norm

    @property
    def shift(self) -> torch.Tensor:
        """effect - baseline: how far steering moved the difference. Shape [n_layers, n_strengths]."""
        return self.effect - self.baseline

    @property
    def control_shift(self) -> torch.Tensor:
        """control - baseline: how far the random directions moved it. Shape [n_layers, n_strengths, n_controls]."""
        if self.control is None:
            raise AnatomyError("This steering effect was computed without controls; pass controls=2 to steering_effect.")
        return self.control - self.baseline

    def shift_at(self, layer: int, strength: float) -> float:
        """The real direction's shift at one layer and strength that were tried."""
        return float(self.shift[self._index(layer, strength)])

    def control_shift_at(self, layer: int, strength: float) -> torch.Tensor:
        """The random directions' shifts at one layer and strength that were tried. Shape [n_controls]."""
        return self.control_shift[self._index(layer, strength)]

    def _index(self, layer: int, strength: float) -> tuple[int, int]:
        if layer not in self.layers or float(strength) not in self.strengths:
            raise AnatomyError(f"Layer {layer} with strength {strength} was not tried; tried layers {list(self.layers)} and strengths {list(self.strengths)}.")
        return self.layers.index(layer), self.strengths.index(float(strength))

    @property
    def best_layer(self) -> int:
        """The layer whose largest positive strength moves the difference most towards kind A."""
        j = max(range(len(self.strengths)), key=lambda k: self.strengths[k])
        return self.layers[int(self.shift[:, j].argmax())]


def steering_effect(model, prompts, vectors: torch.Tensor, markers_a, markers_b, *,
                    layers: Sequence[int] | None = None, strengths: Sequence[float] = (-4, -2, 0, 2, 4),
                    controls: int = 0, seed: int = 0) -> SteeringEffect:
    """Try every layer (or ``layers``) and every strength on held-out prompts; one batched pass each (Chapter 6).

    ``vectors`` is [L, d] from ``directions``. With ``controls=k``, each cell also adds k random
    directions of the same norm (``random_directions(vectors, k, seed=seed)``), in the same batched
    pass. Cost: len(layers) * len(nonzero strengths) + 1 forward passes of (k + 1) * len(prompts) rows.
    """
    if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or tuple(vectors.shape) != (model.n_layers, model.d_model):
        shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
        raise AnatomyError(f"vectors has shape {shape}, but {model.name} needs one direction per layer, [{model.n_layers}, {model.d_model}]; use directions(model, prompts_a, prompts_b).")
    layers = tuple(range(model.n_layers)) if layers is None else tuple(hooks.layer_index(model, i) for i in layers)
    strengths = tuple(_check_strength(s) for s in strengths)
    if not layers or not strengths:
        raise AnatomyError("Give at least one layer and one strength, e.g. layers=range(0, 30, 3), strengths=(-4, 0, 4).")
    prompts = run.prompts(prompts, "prompts")
    ia, ib = _marker_ids(model, markers_a, "markers_a"), _marker_ids(model, markers_b, "markers_b")
    baseline = float(marker_difference(model, prompts, markers_a, markers_b).mean())
    randoms = random_directions(vectors, controls, seed=seed) if controls else torch.empty(0, *vectors.shape)  # [k, L, d]
    both = torch.empty(len(layers), len(strengths), 1 + len(randoms))  # [n_layers, n_strengths, 1 + k]
    for i, layer in enumerate(layers):
        for j, s in enumerate(strengths):
            if s == 0:  # adding a zero vector changes nothing (tested); skip the pass
                both[i, j] = baseline
                continue
            vecs = torch.cat([vectors[layer].float()[None], randoms[:, layer]])  # [1 + k, d]: the real one first
            both[i, j] = _steered_differences(model, prompts, ia, ib, layer, vecs, s)
    return SteeringEffect(model.name, layers, strengths, both[:, :, 0], baseline, tuple(markers_a), tuple(markers_b),
                          len(prompts), both[:, :, 1:] if controls else None)
