"""Places in the model, by one name whatever the family, and hooks that read or change them.

A *place* is a string naming the output of one module, resolved per family here and nowhere else:

==========================  ====================================================================
``"embedding"``             the token embeddings fed to the first layer (already scaled for Gemma)
``"layers.5"``              the output of layer index 5 (the 6th layer; ``hidden_states[6]``)
``"layers.5.attn"``         the attention sub-layer's output, before it is added to the residual
``"layers.5.attn.q"``       the query projection (also ``.k``, ``.v``), shape [B, T, heads*head_dim]
``"layers.5.attn.o.input"`` the heads' weighted sums, concatenated, as they enter W_O
``"layers.5.mlp"``          the feed-forward sub-layer's output, before the residual add
``"layers.5.mlp.neurons"``  the neuron activations (the input of the down projection)
``"layers.5.mlp.input"``    what enters the feed-forward sub-layer (after the norm before it)
``"layers.5.resid_mid"``    the residual stream between the two sub-layers: layer input + attention
``"final_norm"``            the output of the final norm
==========================  ====================================================================

Layer indices count from 0, like the Hugging Face module path (``model.layers.5``). Hooks exist only
inside ``with`` blocks and are removed on exit, even when an exception is raised (Chapters 6-11).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import torch

from .errors import AnatomyError

__all__ = ["capture", "edit", "module_at", "places"]

# Sub-module names per family: attention, feed-forward, and the projections inside them.
_ATTN = ("self_attn", "attn", "self_attention")
_MLP = ("mlp", "feed_forward")
_PROJ = {
    "q": ("q_proj",), "k": ("k_proj",), "v": ("v_proj",),
    "o": ("o_proj", "c_proj", "dense"),
}
_DOWN = ("down_proj", "c_proj", "fc2")
_FFN_NORM = ("pre_feedforward_layernorm", "post_attention_layernorm", "ln_2")  # its input is resid_mid

_PLACE = re.compile(r"^layers\.(-?\d+)(?:\.(attn|mlp)(?:\.(q|k|v|o\.input|neurons|input))?|\.(resid_mid))?$")


def places(model) -> list[str]:
    """Examples of every kind of place this model has (layer 0 only, to keep the list short)."""
    return ["embedding", "layers.0", "layers.0.attn", "layers.0.attn.q", "layers.0.attn.k", "layers.0.attn.v",
            "layers.0.attn.o.input", "layers.0.mlp", "layers.0.mlp.input", "layers.0.mlp.neurons", "layers.0.resid_mid", "final_norm"]


def _child(module: torch.nn.Module, names: tuple[str, ...], what: str) -> torch.nn.Module:
    for n in names:
        if getattr(module, n, None) is not None:
            return getattr(module, n)
    raise AnatomyError(f"Cannot find the {what} in {type(module).__name__}; anatomy knows Llama, Gemma, Qwen and GPT-2 style layers.")


def layer_index(model, layer: int) -> int:
    """Check a 0-based layer index (negative counts from the end) and return it as non-negative."""
    n = model.n_layers
    if not isinstance(layer, int) or not -n <= layer < n:
        raise AnatomyError(f"Layer {layer!r} is out of range: {model.name} has layers 0 to {n - 1}.")
    return layer % n


def module_at(model, place: str) -> tuple[torch.nn.Module, bool]:
    """The module behind a place, and whether the place is that module's *input* (not its output)."""
    if place == "embedding":
        return model.embedding, False
    if place == "final_norm":
        return model.final_norm, False
    m = _PLACE.match(place) if isinstance(place, str) else None
    if m is None:
        raise AnatomyError(f"Unknown place {place!r}: use 'embedding', 'layers.N', 'layers.N.attn', 'layers.N.attn.q|k|v|o.input', 'layers.N.mlp', 'layers.N.mlp.neurons|input', 'layers.N.resid_mid' or 'final_norm'.")
    layer = model.layers[layer_index(model, int(m.group(1)))]
    part, sub = m.group(2), m.group(3)
    if m.group(4):  # the input of the norm before the FFN (Llama names it post_attention_layernorm)
        return _child(layer, _FFN_NORM, "norm before the feed-forward sub-layer"), True
    if part is None:
        return layer, False
    if part == "attn":
        attn = _child(layer, _ATTN, "attention sub-layer")
        if sub is None:
            return attn, False
        if sub in ("neurons", "input"):  # those belong to the feed-forward sub-layer
            raise AnatomyError(f"Unknown place {place!r}: '.{sub}' exists only under 'layers.N.mlp', e.g. 'layers.{m.group(1)}.mlp.{sub}'.")
        if sub == "o.input":
            return _child(attn, _PROJ["o"], "output projection W_O"), True
        return _child(attn, _PROJ[sub], f"{sub} projection"), False
    mlp = _child(layer, _MLP, "feed-forward sub-layer")
    if sub is None:
        return mlp, False
    if sub == "input":
        return mlp, True  # what enters the feed-forward sub-layer, after its norm (Chapter 11)
    return _child(mlp, _DOWN, "down projection"), True  # neurons = what enters the down projection


def _first(x):
    return x[0] if isinstance(x, tuple) else x


@contextlib.contextmanager
def capture(model, *place_names: str) -> Iterator[dict[str, torch.Tensor]]:
    """Record what flows through the named places during the forward passes run inside the block.

    >>> with capture(model, "layers.3", "layers.3.mlp.neurons") as seen:
    ...     model.hf(input_ids=ids)
    >>> seen["layers.3"].shape          # [batch, tokens, d]

    A place visited several times (generation) keeps the last visit. Tensors are detached copies.
    """
    seen: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in place_names:
            module, is_input = module_at(model, name)

            def hook(mod, args, output, name=name, is_input=is_input):
                seen[name] = _first(args if is_input else output).detach().clone()

            handles.append(module.register_forward_hook(hook))
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def edit(model, place: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace what flows through ``place`` by ``fn(value)`` for forward passes inside the block.

    Used to steer (add a vector to a layer's output) and to patch (overwrite one position).
    The hook is removed on exit, even if the block raises.
    """
    module, is_input = module_at(model, place)

    if is_input:
        def hook(mod, args):
            return (fn(args[0]), *args[1:])

        handle = module.register_forward_pre_hook(hook)
    else:
        def hook(mod, args, output):
            if isinstance(output, tuple):
                return (fn(output[0]), *output[1:])
            return fn(output)

        handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
