"""Capture what each layer outputs: the hidden states, a.k.a. contextualized embeddings (Chapter 3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import AnatomyError
from .prediction import check_prompt
from .tokens import Token, readable

__all__ = ["HiddenStates", "hidden_states"]


@dataclass(frozen=True)
class HiddenStates:
    """Every layer's output for one prompt, as transformers returns it with output_hidden_states=True.

    ``states[0]`` is the token embedding as the model feeds it to layer 1 (for Gemma: the table row
    times sqrt(d)); ``states[i]`` is the output of layer i. Caution: transformers applies the final
    norm to the last entry, so ``states[-1]`` is ``final_norm(output of the last layer)``.
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    states: torch.Tensor  # [L+1, T, d]
    logits: torch.Tensor  # [T, V] the model's own next-token scores at every position

    @property
    def n_layers(self) -> int:
        return self.states.shape[0] - 1

    def layer(self, i: int) -> torch.Tensor:
        """The output of layer ``i`` (0 = embeddings, L = last layer). Shape [T, d]."""
        if not -self.states.shape[0] <= i < self.states.shape[0]:
            raise AnatomyError(f"Layer {i} is out of range: {self.model_name} has layers 0 (embeddings) to {self.n_layers}.")
        return self.states[i]


@torch.no_grad()
def hidden_states(model, prompt: str) -> HiddenStates:
    """Run the model once and keep every layer's output for every token (Chapter 3)."""
    ids = check_prompt(model, prompt)  # [1, T]
    out = model.hf(input_ids=ids, output_hidden_states=True)
    states = torch.stack(out.hidden_states)[:, 0].float().cpu()  # [L+1, T, d]
    special = set(model.tokenizer.all_special_ids)
    tokens = tuple(
        Token(int(i), model.tokenizer.convert_ids_to_tokens(int(i)), readable(model.tokenizer, i), int(i) in special)
        for i in ids[0]
    )
    return HiddenStates(model.name, prompt, tokens, states, out.logits[0].float().cpu())
