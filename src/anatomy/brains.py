"""The Transformer as many little brains: who can compute what, and when (Chapter 12).

Picture one small brain per token, each thinking for L steps (the layers 0..L-1). The state of
brain ``t`` at layer ``l`` (the output of layer ``l``) is computed from the states at layer ``l - 1``
of brains ``0..t`` (attention looks left only; each layer reads the one below; layer 0 reads the
embedding). From this single rule follow the schedule of
parallel reading, the slowness of writing one token at a time, and why a late insight cannot
reach an early layer within one pass.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .hidden import stage_row
from .tokens import Token, tokens_of

__all__ = ["Influence", "ReadWrite", "Schedule", "greedy", "influence", "reading_vs_writing", "schedule"]


# --- the schedule, from the dependency rule ------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """The earliest step at which each state (position t, layer l) can be computed (Chapter 12).

    ``steps[t, l]`` is that step for the output of layer l = 0..L-1. Step 0 is when the first
    tokens (their embeddings) are known.
    """

    n_prompt: int
    n_new: int
    n_layers: int
    prompt_mode: str  # "parallel": the whole prompt is known at once; "one by one": a token per step
    steps: torch.Tensor  # [T, L] int, T = n_prompt + n_new

    def computable_at(self, step: int) -> torch.Tensor:
        """Boolean [T, L]: the states computed exactly at ``step``."""
        return self.steps == step

    @property
    def total_steps(self) -> int:
        return int(self.steps.max())


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise AnatomyError(f"{name}={value!r} is not allowed: use a whole number >= {minimum}.")
    return int(value)


def schedule(n_prompt: int, n_new: int, n_layers: int, *, prompt_mode: str = "parallel") -> Schedule:
    """Derive the schedule from the rule "state (t, l) needs the states (<= t, l - 1)" (Chapter 12).

    ``n_new`` is the number of generated positions drawn after the prompt. Prompt tokens are known at step 0 (``prompt_mode="parallel"``) or arrive one per step
    (``"one by one"``, the triangle drawn in the brains metaphor). A generated token is known only
    once the top state of the position before it is computed: it is the prediction made there.
    """
    n_prompt, n_new, n_layers = _positive("n_prompt", n_prompt), _positive("n_new", n_new, 0), _positive("n_layers", n_layers)
    if prompt_mode not in ("parallel", "one by one"):
        raise AnatomyError(f"prompt_mode={prompt_mode!r} is not allowed: use 'parallel' or 'one by one'.")
    T, L = n_prompt + n_new, n_layers
    steps = torch.zeros(T, L + 1, dtype=torch.long)  # column 0: when the token (its embedding) is known; column l + 1: layer l
    for t in range(T):
        if t < n_prompt:
            steps[t, 0] = 0 if prompt_mode == "parallel" else t
        else:
            steps[t, 0] = steps[t - 1, L]  # the token predicted by the top state at t - 1
        for layer in range(1, L + 1):
            # the rule: every state (t' <= t, layer - 1) must exist; then one step of work
            steps[t, layer] = steps[: t + 1, layer - 1].max() + 1
    return Schedule(n_prompt, n_new, L, prompt_mode, steps[:, 1:])


# --- the rule, measured on a real model -----------------------------------------------------------
@dataclass(frozen=True)
class Influence:
    """Which states change when one state (layer, position) is nudged (Chapter 12).

    ``change`` has one row per stage: row 0 the embedding, row ℓ + 1 the output of layer ℓ.
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    layer: int  # the layer ℓ (0..L-1) whose output was nudged: row ℓ + 1 of ``change``
    position: int
    change: torch.Tensor  # [L+1, T] largest absolute change of each state (row 0 the embedding, row ℓ+1 layer ℓ)

    @property
    def n_layers(self) -> int:
        return self.change.shape[0] - 1

    @property
    def changed(self) -> torch.Tensor:
        """Boolean [L+1, T]: states that moved by more than float rounding."""
        return self.change > 1e-4


@torch.no_grad()
def influence(model, prompt: str, layer: int, position: int, *, size: float = 10.0, seed: int = 0) -> Influence:
    """Add a random vector to the output of ``layer`` (0..L-1) at ``position``; see which states move (Chapter 12).

    The rule predicts: the nudged state itself, and above it every state at positions >= ``position``;
    nothing to the left, nothing below, and in the nudged layer nothing to the right (those states
    were computed from the layer below). Rows: 0 the embedding, ℓ + 1 the output of layer ℓ
    (before the final norm).
    """
    ids = run.check_prompt(model, prompt)  # [1, T]
    T, L = ids.shape[1], model.n_layers
    if isinstance(position, bool) or not isinstance(position, numbers.Integral) or not -T <= position < T:
        raise AnatomyError(f"Position {position!r} is out of range: the prompt has {T} tokens (0 to {T - 1}).")
    if layer == "embedding":
        raise AnatomyError("'embedding' is not a layer here: nudge the output of a layer 0 to " f"{L - 1}.")
    layer = stage_row(layer, L, model.name) - 1
    p = int(position) % T
    gen = torch.Generator().manual_seed(seed)
    push = (torch.randn(model.d_model, generator=gen) * size).to(device=model.device, dtype=model.dtype)  # [d]

    def nudge(h):  # h: [1, T, d]
        h = h.clone()
        h[:, p] += push
        return h

    places = ["embedding"] + [f"layers.{i}" for i in range(L)]  # every stage (no final norm)

    def states() -> torch.Tensor:  # [L+1, T, d]
        with hooks.capture(model, *places) as seen:  # registered after the edit: sees the nudged value
            run.forward(model, ids, logits="last")
        return torch.stack([seen[p][0] for p in places])

    base = states()
    with hooks.edit(model, f"layers.{layer}", nudge):
        moved = states()
    change = (moved - base).abs().amax(-1).float().cpu()  # [L+1, T]
    return Influence(model.name, prompt, tokens_of(model, ids[0]), layer, p, change)


# --- reading is fast, writing is slow ------------------------------------------------------------
@torch.no_grad()
def greedy(model, prompt: str, max_new_tokens: int, *, cache: bool = True) -> tuple[int, ...]:
    """Generate ``max_new_tokens`` tokens greedily (it does not stop at end-of-text), one at a time, with or without the KV cache (Chapter 12).

    With the cache each step feeds only the newest token and reuses the keys and values of all
    earlier positions ("cache and repeat"); without it each step re-reads the whole text.
    """
    n_new = _positive("max_new_tokens", max_new_tokens)
    ids = run.check_prompt(model, prompt)  # [1, T]
    new: list[int] = []
    if cache:
        out = run.forward(model, ids, logits="last", keep=True)
        for _ in range(n_new):
            nxt = int(out.logits[0, -1].argmax())
            new.append(nxt)
            if len(new) == n_new:
                break
            out = run.forward(model, torch.tensor([[nxt]], device=model.device), logits="last", past=out.past_key_values, keep=True)
    else:
        for _ in range(n_new):
            out = run.forward(model, ids, logits="last")
            nxt = int(out.logits[0, -1].argmax())
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]], device=model.device)], dim=1)
    return tuple(new)


@dataclass(frozen=True)
class ReadWrite:
    """Measured speed of reading a prompt (one forward pass) and of writing (one token per pass) (Chapter 12)."""

    model_name: str
    n_prompt: int  # tokens read in one pass
    n_new: int  # tokens written one at a time
    read_seconds: float  # best of `repeats` passes over the whole prompt
    write_seconds: float  # best of `repeats` runs of n_new cached generation steps (prefill excluded)
    continuation: str  # the greedy continuation, as text

    @property
    def read_tokens_per_s(self) -> float:
        return self.n_prompt / self.read_seconds

    @property
    def write_tokens_per_s(self) -> float:
        return self.n_new / self.write_seconds


@torch.no_grad()
def reading_vs_writing(model, prompt: str, max_new_tokens: int = 16, *, repeats: int = 2) -> ReadWrite:
    """Time one forward pass over ``prompt`` against ``max_new_tokens`` greedy steps with the KV cache (Chapter 12).

    Each measurement is the best of ``repeats`` runs (the least disturbed by other work on the
    machine). Numbers depend on the computer: only their ratio is the lesson.
    """
    n_new, repeats = _positive("max_new_tokens", max_new_tokens), _positive("repeats", repeats)
    ids = run.check_prompt(model, prompt)  # [1, T]
    read, write = float("inf"), float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run.forward(model, ids, logits="last", keep=True)  # reading: all T tokens at once
        read = min(read, time.perf_counter() - t0)
        new = []
        t0 = time.perf_counter()
        for _ in range(n_new):  # writing: one token per pass, reusing the cache
            nxt = out.logits[0, -1].argmax().view(1, 1)
            new.append(int(nxt))
            out = run.forward(model, nxt, logits="last", past=out.past_key_values, keep=True)
        write = min(write, time.perf_counter() - t0)
    text = model.tokenizer.decode(new)
    return ReadWrite(model.name, ids.shape[1], n_new, read, write, text)
