"""Places in the model, by one name whatever the family, and hooks that read or change them.

A *place* is a string naming the output of one module, resolved here from the model's architecture
description (``model.arch``, written per family in ``anatomy.families``):

==========================  ====================================================================
``"embedding"``             the token embeddings (already scaled for Gemma; GPT-2 adds its learned
                            positions after this place, so layer 0 reads embedding + positions)
``"layers.5"``              the output of layer 5, ``model.layers[5]`` (``hidden_states(...).layer(5)``)
``"layers.5.attn"``         the attention sub-layer's output, before it is added to the residual
``"layers.5.attn.q"``       the query projection (also ``.k``, ``.v``), shape [B, T, heads*head_dim];
                            for a fused projection (Phi-3, GPT-2, GPT-NeoX) its rows of the fused output
``"layers.5.attn.o.input"`` the heads' weighted sums, concatenated, as they enter W_O
``"layers.5.mlp"``          the feed-forward sub-layer's output, before the residual add
``"layers.5.mlp.neurons"``  the neuron activations (the input of the down projection)
``"layers.5.mlp.input"``    what enters the feed-forward sub-layer (after the norm before it)
``"layers.5.resid_mid"``    the residual stream between the two sub-layers: layer input + attention
                            (none in a parallel-residual layer, GPT-NeoX)
``"final_norm"``            the output of the final norm
==========================  ====================================================================

Layer indices count from 0, like the Hugging Face module path (``model.layers.5``). Hooks exist only
inside ``with`` blocks and are removed on exit, even when an exception is raised (Chapters 6-11).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .errors import AnatomyError
from .families.base import get, row_index

__all__ = ["Site", "capture", "edit", "module_at", "places", "site"]

_PLACE = re.compile(r"^layers\.(-?\d+)(?:\.(attn|mlp)(?:\.(q|k|v|o\.input|neurons|input))?|\.(resid_mid))?$")


def places(model) -> list[str]:
    """Examples of every kind of place this model has (layer 0 only, to keep the list short)."""
    mid = [] if model.arch.blocks[0].parallel else ["layers.0.resid_mid"]
    return ["embedding", "layers.0", "layers.0.attn", "layers.0.attn.q", "layers.0.attn.k", "layers.0.attn.v",
            "layers.0.attn.o.input", "layers.0.mlp", "layers.0.mlp.input", "layers.0.mlp.neurons", *mid, "final_norm"]


def layer_index(model, layer: int) -> int:
    """Check a 0-based layer index (negative counts from the end) and return it as non-negative."""
    n = model.n_layers
    if not isinstance(layer, int) or not -n <= layer < n:
        raise AnatomyError(f"Layer {layer!r} is out of range: {model.name} has layers 0 to {n - 1}.")
    return layer % n


@dataclass(frozen=True)
class Site:
    """Where a place is read: a module's output (or input), and for a fused projection its rows."""

    module: torch.nn.Module
    is_input: bool
    rows: torch.Tensor | None = None  # [n] indices of the last axis that belong to the place

    def take(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.rows is None else t[..., self.rows.to(t.device)]

    def put(self, t: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.rows is None:
            return fn(t)
        rows = self.rows.to(t.device)
        out = t.clone()
        out[..., rows] = fn(t[..., rows])
        return out


def site(model, place: str) -> Site:
    """Resolve a place name to its Site, reading the model's architecture description (``model.arch``)."""
    if place == "embedding":
        return Site(model.embedding, False)
    if place == "final_norm":
        return Site(model.final_norm, False)
    m = _PLACE.match(place) if isinstance(place, str) else None
    if m is None:
        raise AnatomyError(f"Unknown place {place!r}: use 'embedding', 'layers.N', 'layers.N.attn', 'layers.N.attn.q|k|v|o.input', 'layers.N.mlp', 'layers.N.mlp.neurons|input', 'layers.N.resid_mid' or 'final_norm'.")
    i = layer_index(model, int(m.group(1)))
    layer, spec = model.layers[i], model.arch.blocks[i]
    part, sub = m.group(2), m.group(3)
    if m.group(4):  # the residual stream between the sub-layers: what the FFN's norm (or the FFN) reads
        if spec.parallel:
            raise AnatomyError(f"{model.name} runs attention and the feed-forward sub-layer side by side (parallel residual), so there is no 'layers.{m.group(1)}.resid_mid'; use 'layers.{m.group(1)}.attn' and 'layers.{m.group(1)}.mlp'.")
        if spec.ffn_norm is not None:
            return Site(get(layer, spec.ffn_norm.path), True)
        return Site(get(layer, spec.ffn.path), True)
    if part is None:
        return Site(layer, False)
    if part == "attn":
        attn = get(layer, spec.attn.path)
        if sub is None:
            return Site(attn, False)
        if sub in ("neurons", "input"):  # those belong to the feed-forward sub-layer
            raise AnatomyError(f"Unknown place {place!r}: '.{sub}' exists only under 'layers.N.mlp', e.g. 'layers.{m.group(1)}.mlp.{sub}'.")
        if sub == "o.input":
            return Site(get(attn, spec.attn.o.path), True)
        proj = getattr(spec.attn, sub)
        return Site(get(attn, proj.path), False, None if proj.rows is None else row_index(proj.rows))
    mlp = get(layer, spec.ffn.path)
    if sub is None:
        return Site(mlp, False)
    if sub == "input":
        return Site(mlp, True)  # what enters the feed-forward sub-layer, after its norm (Chapter 11)
    return Site(get(mlp, spec.ffn.down.path), True)  # neurons = what enters the down projection


def module_at(model, place: str) -> tuple[torch.nn.Module, bool]:
    """The module behind a place, and whether the place is that module's *input* (not its output)."""
    s = site(model, place)
    return s.module, s.is_input


def _first(x):
    return x[0] if isinstance(x, tuple) else x


@contextlib.contextmanager
def capture(model, *place_names: str) -> Iterator[dict[str, torch.Tensor]]:
    """Record what flows through the named places during the forward passes run inside the block.

    >>> with capture(model, "layers.3", "layers.3.mlp.neurons") as seen:
    ...     anatomy.run.forward(model, ids)
    >>> seen["layers.3"].shape          # [batch, tokens, d]

    A place visited several times (generation) keeps the last visit. Tensors are detached copies.
    """
    seen: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in place_names:
            s = site(model, name)

            def hook(mod, args, output, name=name, s=s):
                seen[name] = s.take(_first(args if s.is_input else output)).detach().clone()

            handles.append(s.module.register_forward_hook(hook))
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def edit(model, place: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace what flows through ``place`` by ``fn(value)`` for forward passes inside the block.

    Used to steer (add a vector to a layer's output) and to patch (overwrite one position).
    The hook is removed on exit, even if the block raises. ``fn`` gets the value on the device of
    the module that computes it (with a device map, each layer's own device); its result is moved
    back there, so a vector kept on another device can be added or written in.
    """
    s = site(model, place)
    user_fn = fn

    def fn(t: torch.Tensor) -> torch.Tensor:
        out = user_fn(t)
        return out.to(t.device) if isinstance(out, torch.Tensor) and out.device != t.device else out

    if s.is_input:
        def hook(mod, args):
            return (s.put(args[0], fn), *args[1:])

        handle = s.module.register_forward_pre_hook(hook)
    else:
        def hook(mod, args, output):
            if isinstance(output, tuple):
                return (s.put(output[0], fn), *output[1:])
            return s.put(output, fn)

        handle = s.module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def graph(model, *place_names: str) -> Iterator[dict[str, torch.Tensor]]:
    """Keep what flows through the named places *in* the autograd graph, for ``torch.autograd.grad`` (Chapters 14, 17).

    Inside the block gradients are on, and the graph starts at the embedding's output (the weights'
    gradients are never needed); ``kept[place]`` is the value itself, not a detached copy as in
    ``capture``. "embedding" may be one of the places: its value is where the graph starts.
    """
    kept: dict[str, torch.Tensor] = {}

    def start(x):
        return x.detach().requires_grad_(True)

    def keep(name):
        def fn(x):
            kept[name] = x
            return x
        return fn

    with torch.enable_grad(), contextlib.ExitStack() as stack:
        stack.enter_context(edit(model, "embedding", start))
        for name in place_names:
            stack.enter_context(edit(model, name, keep(name)))
        yield kept
