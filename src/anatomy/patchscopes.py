"""Patchscopes: let the model put a hidden vector into words (Chapter 8).

Ghandeharioun et al. 2024 (arXiv 2401.06102). Run a *source* prompt and keep the vector that one
layer outputs at one position. Run a *target* prompt that holds a placeholder token, overwrite the
placeholder's vector at some layer with the kept vector, and let the model continue: from that layer
on, it reads the target prompt as if the placeholder were whatever the vector stands for.

Layers count like the hook places of ``anatomy.hooks``: ``layer=5`` is ``"layers.5"``, the output of
``model.layers[5]`` (``hidden_states(...).layer(5)``).
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from . import hooks, run
from .brains import greedy
from .errors import AnatomyError
from .show import Table
from .tokens import readable

__all__ = ["Patchscope", "patching", "patchscope", "patchscope_sweep", "patchscope_table", "placeholder_position", "source_vector", "source_vectors"]


def _position(ids: torch.Tensor, position, what: str) -> int:
    T = ids.shape[-1]
    if isinstance(position, bool) or not isinstance(position, numbers.Integral) or not -T <= position < T:
        raise AnatomyError(f"Position {position!r} is out of range: the {what} has {T} tokens (positions 0 to {T - 1}, or -1 for the last).")
    return int(position) % T


@torch.no_grad()
def source_vectors(model, prompt: str, layers, position: int = -1) -> torch.Tensor:
    """The vectors that the given layers output at ``position`` of ``prompt``, from one forward pass (Chapter 8). Shape [len(layers), d]."""
    ids = run.check_prompt(model, prompt)  # [1, T]
    places = [f"layers.{hooks.layer_index(model, layer)}" for layer in layers]
    p = _position(ids, position, "source prompt")
    with hooks.capture(model, *places) as seen:
        run.forward(model, ids, logits="last")  # only the hidden states matter here
    return torch.stack([seen[place][0, p] for place in places])  # [len(layers), d]


def source_vector(model, prompt: str, layer: int, position: int = -1) -> torch.Tensor:
    """The vector that layer ``layer`` outputs at ``position`` of ``prompt`` (Chapter 8). Shape [d]."""
    return source_vectors(model, prompt, [layer], position)[0]


def placeholder_position(model, prompt: str, placeholder: str = "X") -> int:
    """The position of the one token of ``prompt`` that reads as ``placeholder`` (spaces aside) (Chapter 8)."""
    if not isinstance(placeholder, str) or placeholder.strip() == "":
        raise AnatomyError("The placeholder is empty: pass the text of one token of the target prompt, such as 'X' or '?'.")
    ids = run.check_prompt(model, prompt)[0]  # [T]
    texts = [model.tokenizer.decode([int(i)]) for i in ids]
    hits = [p for p, t in enumerate(texts) if t.strip() == placeholder.strip()]
    if not hits:
        shown = " | ".join(readable(model.tokenizer, i) for i in ids)
        raise AnatomyError(
            f"The placeholder {placeholder!r} is not a token of the target prompt for {model.name} (its tokens: {shown}); "
            "write it in the prompt with a space before it, e.g. 'Please briefly introduce X'."
        )
    if len(hits) > 1:
        raise AnatomyError(f"The placeholder {placeholder!r} appears {len(hits)} times in the target prompt (positions {hits}); use it exactly once.")
    return hits[0]


@contextlib.contextmanager
def patching(model, layer: int, position: int, vector: torch.Tensor) -> Iterator[None]:
    """Inside the block, layer ``layer``'s output at ``position`` is replaced by ``vector`` (Chapter 8).

    Only forward passes that cover ``position`` are changed, so during generation with a cache the
    prompt pass is patched and the later one-token passes run untouched (they read the patched
    position through the cache). The hook is removed on exit, even on error.
    """
    place = f"layers.{hooks.layer_index(model, layer)}"
    if not isinstance(vector, torch.Tensor) or vector.shape != (model.d_model,):
        shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise AnatomyError(f"The patched vector must have shape [{model.d_model}] for {model.name}, got {shape}.")
    if isinstance(position, bool) or not isinstance(position, numbers.Integral) or position < 0:
        raise AnatomyError(f"Position {position!r} is not allowed: pass a non-negative token position of the target prompt.")

    def overwrite(h: torch.Tensor) -> torch.Tensor:  # h: [B, T, d]
        if h.shape[1] <= position:  # a later generation step: one new token, nothing to patch
            return h
        h = h.clone()
        h[:, position] = vector.to(device=h.device, dtype=h.dtype)
        return h

    with hooks.edit(model, place, overwrite):
        yield


@dataclass(frozen=True)
class Patchscope:
    """One patchscope reading: which vector went where, and what the model said (Chapter 8)."""

    model_name: str
    source_prompt: str
    source_layer: int  # 0-based, as in "layers.N"
    source_position: int  # non-negative position in the source prompt
    source_token: str  # readable text of the source token
    target_prompt: str
    target_layer: int  # 0-based, as in "layers.N"
    target_position: int  # position of the placeholder in the target prompt
    continuation_ids: tuple[int, ...]  # the greedy continuation, at most max_new_tokens IDs, cut at end-of-text
    continuation: str  # the same, decoded


def _read(model, vector, s_prompt, s_layer, s_pos, s_token, target_prompt, t_layer, t_pos, max_new_tokens) -> Patchscope:
    with patching(model, t_layer, t_pos, vector), torch.no_grad():
        new = list(greedy(model, target_prompt, max_new_tokens))  # Chapter 12's token loop, KV cache
    eos = model.tokenizer.eos_token_id
    new = new[:new.index(eos)] if eos in new else new
    return Patchscope(model.name, s_prompt, s_layer, s_pos, s_token, target_prompt, t_layer, t_pos,
                      tuple(new), model.tokenizer.decode(new, skip_special_tokens=True))


def _check_new(max_new_tokens) -> int:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 64:
        raise AnatomyError(f"max_new_tokens={max_new_tokens!r} is out of range: ask for 1 to 64 tokens (10 is plenty to read a patch).")
    return max_new_tokens


def patchscope(
    model, source_prompt: str, source_layer: int, source_position: int = -1, *,
    target_prompt: str, target_layer: int | None = None, placeholder: str = "X", max_new_tokens: int = 10,
) -> Patchscope:
    """Read a hidden vector by patching it into a target prompt and letting the model continue (Chapter 8).

    The vector that layer ``source_layer`` outputs at ``source_position`` of ``source_prompt``
    replaces, at layer ``target_layer`` (default: the same layer), the vector of the placeholder
    token in ``target_prompt``. The continuation is greedy, so the same call gives the same text.
    """
    _check_new(max_new_tokens)
    s_layer = hooks.layer_index(model, source_layer)
    t_layer = s_layer if target_layer is None else hooks.layer_index(model, target_layer)
    s_ids = run.check_prompt(model, source_prompt)
    s_pos = _position(s_ids, source_position, "source prompt")
    t_pos = placeholder_position(model, target_prompt, placeholder)
    vector = source_vector(model, source_prompt, s_layer, s_pos)  # [d]
    return _read(model, vector, source_prompt, s_layer, s_pos, readable(model.tokenizer, s_ids[0, s_pos]),
                 target_prompt, t_layer, t_pos, max_new_tokens)


def patchscope_sweep(
    model, source_prompt: str, *, target_prompt: str, layers: Iterable[int] | None = None, source_position: int = -1,
    placeholder: str = "X", max_new_tokens: int = 10,
) -> tuple[Patchscope, ...]:
    """The same patchscope at several layers, each vector patched back into its own layer (Chapter 8).

    ``layers`` defaults to every layer; pass e.g. ``range(0, model.n_layers, 3)`` to save time. The
    source prompt runs once for all layers; the target prompt runs once per layer.
    """
    _check_new(max_new_tokens)
    layers = [hooks.layer_index(model, i) for i in (range(model.n_layers) if layers is None else layers)]
    if len(layers) == 0:
        raise AnatomyError("No layers to sweep: pass at least one layer index, e.g. range(0, model.n_layers, 3).")
    s_ids = run.check_prompt(model, source_prompt)
    s_pos = _position(s_ids, source_position, "source prompt")
    s_token = readable(model.tokenizer, s_ids[0, s_pos])
    t_pos = placeholder_position(model, target_prompt, placeholder)
    vectors = source_vectors(model, source_prompt, layers, s_pos)  # [len(layers), d]
    return tuple(_read(model, v, source_prompt, i, s_pos, s_token, target_prompt, i, t_pos, max_new_tokens)
                 for i, v in zip(layers, vectors))


def patchscope_table(scopes: Iterable[Patchscope], caption: str | None = None) -> Table:
    """One row per patchscope: the layer and what the model said (newlines shown as ↵) (Chapter 8)."""
    scopes = tuple(scopes)
    if not scopes:
        raise AnatomyError("No patchscopes to show: pass the result of patchscope_sweep(...).")
    s = scopes[0]
    if caption is None:
        caption = f"{s.model_name}: “{s.source_prompt}” at position {s.source_position} ({s.source_token}) → “{s.target_prompt}”"
    rows = tuple((p.source_layer, p.target_layer, p.continuation.replace("\n", "↵")) for p in scopes)
    return Table(("source layer", "target layer", "continuation"), rows, caption)
