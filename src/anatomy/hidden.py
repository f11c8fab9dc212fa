"""Capture what each layer outputs: the hidden states, a.k.a. contextualized embeddings (Chapter 3).

The book's one layer numbering: **layer ℓ is the block ``model.layers[ℓ]``**, counted from 0 like
the module path (``model.layers.5``) and the hook place ``"layers.5"``; "the output of layer ℓ" is
the residual stream after that block. The token embeddings that enter layer 0 are "the
embedding" (place ``"embedding"``), never "layer 0". A result with one row per *stage* has
L + 1 rows: row 0 the embedding, row ℓ + 1 the output of layer ℓ; ``stage_labels`` names them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from . import run
from .errors import AnatomyError
from .hooks import capture
from .tokens import Token, tokens_of

__all__ = ["HiddenStates", "Stages", "hidden_states", "stage_labels", "stage_row"]

EMBEDDING = "embedding"


def stage_labels(n_layers: int) -> tuple[str, ...]:
    """The names of the L + 1 stages, row by row: ``("embedding", "0", "1", ..., str(L - 1))``."""
    return (EMBEDDING, *(str(i) for i in range(n_layers)))


def stage_row(layer, n_layers: int, model_name: str = "this model") -> int:
    """The row of a stage axis that holds ``layer``: "embedding" -> 0, layer ℓ -> ℓ + 1.

    ``layer`` is a layer index 0..L-1 (negative counts from the end: -1 is the last layer) or the
    string "embedding".
    """
    if layer == EMBEDDING:
        return 0
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not -n_layers <= layer < n_layers:
        raise AnatomyError(f"Layer {layer!r} is out of range: {model_name} has layers 0 to {n_layers - 1} "
                           f"(-1 for the last), and 'embedding' for what enters layer 0.")
    return int(layer) % n_layers + 1


class Stages:
    """What every per-stage result shares: ``stages`` labels the rows of its stage axis, ``row(ℓ)`` finds one.

    A result class mixes it in and defines ``n_layers`` (L, read from its own tensors); its
    ``model_name`` (or else ``_stages_of``) names what was asked in the error for a layer out of range.
    """

    _stages_of = "this model"

    @property
    def stages(self) -> tuple[str, ...]:
        """Labels of the stage axis: "embedding", "0", ..., str(L - 1)."""
        return stage_labels(self.n_layers)

    def row(self, layer) -> int:
        """The row that holds ``layer`` (ℓ -> ℓ + 1, "embedding" -> 0)."""
        return stage_row(layer, self.n_layers, getattr(self, "model_name", self._stages_of))


@dataclass(frozen=True)
class HiddenStates(Stages):
    """Every stage of the residual stream for one prompt: the embedding, then each layer's output.

    ``states[0]`` is the token embedding as the model feeds it to layer 0 (for Gemma: the table row
    times sqrt(d)); ``states[ℓ + 1]`` is the output of layer ℓ (``model.layers[ℓ]``, hook place
    ``"layers.ℓ"``). Every entry is raw: the final norm is *not* applied to the last one (unlike
    transformers' ``output_hidden_states``, whose last entry carries it); the normed vector the LM
    head reads is ``final``.
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    states: torch.Tensor  # [L+1, T, d] row 0 the embedding, row ℓ+1 the output of layer ℓ (all raw)
    final: torch.Tensor  # [T, d] final_norm(output of the last layer): what the LM head reads
    logits: torch.Tensor  # [T, V] the model's own next-token scores at every position

    @property
    def n_layers(self) -> int:
        return self.states.shape[0] - 1

    @property
    def embedding(self) -> torch.Tensor:
        """The token embeddings that enter layer 0. Shape [T, d]."""
        return self.states[0]

    def layer(self, i: int) -> torch.Tensor:
        """The output of layer ``i`` (0..L-1, negative from the end), before any final norm. Shape [T, d]."""
        if i == EMBEDDING:
            raise AnatomyError("'embedding' is not a layer: use .embedding for the vectors that enter layer 0.")
        return self.states[stage_row(i, self.n_layers, self.model_name)]


@torch.no_grad()
def hidden_states(model, prompt: str) -> HiddenStates:
    """Run the model once and keep the embedding and every layer's raw output for every token (Chapter 3)."""
    ids = run.check_prompt(model, prompt)  # [1, T]
    last = f"layers.{model.n_layers - 1}"
    with capture(model, last) as seen:  # the last layer's output before transformers applies the final norm
        out = run.forward(model, ids, hidden_states=True)
    states = torch.stack([h[0].float().cpu() for h in (*out.hidden_states[:-1], seen[last])])  # [L+1, T, d], all raw (gathered from every device)
    return HiddenStates(model.name, prompt, tokens_of(model, ids[0]), states, out.hidden_states[-1][0].float().cpu(), out.logits[0].float().cpu())
