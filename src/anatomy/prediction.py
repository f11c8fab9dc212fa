"""A language model is a function: prompt in, probability of every possible next token out (Chapter 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import run
from .errors import AnatomyError
from .show import Table
from .tokens import readable

__all__ = ["NextTokens", "next_token"]


@dataclass(frozen=True)
class NextTokens:
    """The model's answer f(x) for one prompt: a score (logit) and a probability per token."""

    model_name: str
    prompt: str
    input_ids: torch.Tensor  # [T] the token IDs the model read
    logits: torch.Tensor  # [V] one score per vocabulary entry, any real number
    probs: torch.Tensor  # [V] softmax(logits / temperature): in (0, 1), sums to 1
    temperature: float
    labels: tuple[str, ...]  # readable text of the top 50 tokens, in order

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The k most likely next tokens as (readable text, probability), most likely first."""
        if not 1 <= k <= len(self.labels):
            raise AnatomyError(f"k={k} is out of range: ask for between 1 and {len(self.labels)} tokens.")
        p = self.probs.topk(k).values
        return [(self.labels[j], float(p[j])) for j in range(k)]

    def table(self, k: int = 10):
        """The k most likely next tokens as a table: rank, token, probability (Chapter 1)."""
        rows = tuple((i + 1, t, f"{p:.3g}") for i, (t, p) in enumerate(self.top(k)))
        return Table(("rank", "next token", "probability"), rows, f"{self.model_name}: {self.prompt}")

    @property
    def top_ids(self) -> torch.Tensor:
        """IDs of the top 50 tokens, most likely first. Shape [50]."""
        return self.probs.topk(len(self.labels)).indices


@torch.no_grad()
def next_token(model, prompt: str, *, temperature: float = 1.0) -> NextTokens:
    """Run the model on ``prompt`` and return its distribution over the next token (Chapter 1)."""
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise AnatomyError(f"temperature={temperature!r} is not allowed: use a positive number such as 0.7, 1 or 2.")
    ids = run.check_prompt(model, prompt)  # [1, T]
    logits = run.forward(model, ids).logits[0, -1].float()  # [V]
    probs = torch.softmax(logits / temperature, dim=-1)  # [V]
    labels = tuple(readable(model.tokenizer, i) for i in probs.topk(50).indices)
    return NextTokens(model.name, prompt, ids[0].cpu(), logits.cpu(), probs.cpu(), float(temperature), labels)
