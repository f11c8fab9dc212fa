"""From the last vector to a probability: LM head, logits, softmax, temperature, sampling (Chapter 4).

The last layer leaves one vector per token. The vector at the last position, multiplied by the
LM head (a V x d matrix), gives V scores called logits: any real numbers. Softmax turns them into
probabilities: exponentiate, add them up (call the sum M), divide each by M. Dividing the logits
by a temperature T first makes the distribution flatter (T > 1) or sharper (T < 1). When the LM
head is the embedding table itself (tied weights), each logit is the dot product of the final
vector with one token's embedding: unembedding.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from . import run
from .errors import AnatomyError
from .prediction import NextTokens
from .tokens import readable

__all__ = [
    "UnembeddingRank",
    "entropy",
    "logits_from_hidden",
    "sample",
    "softmax_by_hand",
    "unembedding_rank",
    "with_temperature",
]


def _check_temperature(temperature) -> float:
    ok = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not ok or not math.isfinite(float(temperature)) or not float(temperature) > 0:
        raise AnatomyError(f"temperature={temperature!r} is not allowed: use a positive finite number such as 0.3, 1 or 2.")
    return float(temperature)


def _check_vector(model, vector) -> torch.Tensor:
    if not isinstance(vector, torch.Tensor) or vector.ndim == 0 or vector.shape[-1] != model.d_model:
        shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise AnatomyError(f"Expected a vector of size d={model.d_model} for {model.name} (shape [..., {model.d_model}]), got {shape}.")
    return vector.to(device=model.device, dtype=model.lm_head.weight.dtype)


@torch.no_grad()
def logits_from_hidden(model, last_vector: torch.Tensor) -> torch.Tensor:
    """The LM head by hand: ``last_vector @ W.T`` with W the V x d LM head matrix (Chapter 4).

    ``last_vector`` has shape [d] (or [..., d]); the result has shape [V] (or [..., V]). Pass the
    final vector *after* the final norm (``hidden_states(...).final[-1]``), as the model does.
    """
    v = _check_vector(model, last_vector)  # [..., d]
    logits = run.head(model, v)  # [..., V]: v @ W.T (+ bias), soft-capped for Gemma 2 (not Gemma 3)
    return logits.float().cpu()


def softmax_by_hand(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax written out: divide by T, exponentiate, sum to M, divide by M (Chapter 4).

    Shape in = shape out ([V] or [..., V], over the last axis). For numerical safety the largest
    logit is subtracted first: exp(s - c) / sum exp(s - c) = exp(s) / sum exp(s) for any constant
    c (the factor exp(-c) cancels), but exp of a large logit would overflow float32.
    """
    t = _check_temperature(temperature)
    if not isinstance(logits, torch.Tensor) or logits.ndim == 0 or logits.shape[-1] == 0:
        raise AnatomyError("softmax_by_hand needs a tensor of logits with at least one entry on its last axis.")
    s = logits.float() / t  # [..., V]
    s = s - s.max(dim=-1, keepdim=True).values  # largest becomes 0: no overflow, same result
    e = torch.exp(s)  # [..., V] all positive
    M = e.sum(dim=-1, keepdim=True)  # [..., 1]
    return e / M  # [..., V] in (0, 1], sums to 1


def with_temperature(dist: NextTokens, temperature: float) -> NextTokens:
    """The same next-token logits re-read at another temperature, without running the model again (Chapter 4).

    Dividing by T > 0 never changes the order of the logits, so the top tokens stay the same;
    only their probabilities move.
    """
    t = _check_temperature(temperature)
    return NextTokens(dist.model_name, dist.prompt, dist.input_ids, dist.logits, softmax_by_hand(dist.logits, t), t, dist.labels)


def entropy(probs: torch.Tensor) -> float:
    """Entropy of one distribution in bits: 0 when one token has all the mass, log2(V) when uniform (Chapter 4)."""
    p = probs.double()
    return float(-(p[p > 0] * torch.log2(p[p > 0])).sum())


def sample(probs: torch.Tensor, n: int = 10, *, seed: int = 0) -> torch.Tensor:
    """Draw ``n`` token IDs from a distribution [V], with replacement, reproducibly (Chapter 4).

    Uses its own ``torch.Generator`` seeded with ``seed``: the global random state is untouched,
    and the same seed gives the same draws. Returns shape [n].
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AnatomyError(f"n={n!r} is not allowed: ask for a positive whole number of samples, e.g. 10.")
    if not isinstance(probs, torch.Tensor) or probs.ndim != 1:
        raise AnatomyError("sample needs one distribution: a 1-D tensor of probabilities of shape [V].")
    if (probs < 0).any() or not math.isclose(float(probs.double().sum()), 1.0, abs_tol=1e-3):
        raise AnatomyError("These are not probabilities (negative, or not summing to 1): pass softmax_by_hand(logits), not the logits.")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.multinomial(probs.detach().float().cpu(), n, replacement=True, generator=gen)  # [n]


@dataclass(frozen=True)
class UnembeddingRank:
    """Where one token's embedding stands among all V rows, seen from a final vector (Chapter 4).

    A rank is 1 plus the number of rows that score strictly higher: 1 means the nearest (the book's one
    convention for ranks, as in Chapter 2's analogies).
    """

    model_name: str
    token_id: int
    token: str  # readable text of the token
    dot: float  # vector . embedding row = the token's logit when the LM head is tied
    cosine: float  # the same, with both vectors scaled to length 1
    dot_rank: int  # among all V rows, by dot product
    cosine_rank: int  # among all V rows, by cosine similarity
    nearest_by_cosine: tuple[str, ...]  # readable text of the 10 rows with the highest cosine


@torch.no_grad()
def unembedding_rank(model, vector: torch.Tensor, token_id: int) -> UnembeddingRank:
    """Rank a token's embedding among all rows of the embedding table, by dot product and by cosine (Chapter 4).

    ``vector`` has shape [d]. With a tied LM head the dot products are exactly the logits, so the
    predicted token has dot rank 1; cosine ignores the rows' lengths and can rank it lower.
    """
    v = _check_vector(model, vector)
    if v.ndim != 1:
        raise AnatomyError(f"unembedding_rank needs one vector of shape [{model.d_model}], got shape {tuple(v.shape)}.")
    E = model.embedding_table  # [V, d] the raw rows (no sqrt(d) scale), which is what the tied LM head uses
    V = E.shape[0]
    if isinstance(token_id, bool) or not isinstance(token_id, numbers.Integral) or not 0 <= int(token_id) < V:
        raise AnatomyError(f"token_id={token_id!r} is out of range: {model.name} has token IDs 0 to {V - 1}.")
    i = int(token_id)
    dots = E @ v  # [V]
    cos = dots / (E.norm(dim=-1) * v.norm()).clamp_min(1e-12)  # [V]
    nearest = tuple(readable(model.tokenizer, j) for j in cos.topk(10).indices)
    return UnembeddingRank(
        model.name, i, readable(model.tokenizer, i), float(dots[i]), float(cos[i]),
        1 + int((dots > dots[i]).sum()), 1 + int((cos > cos[i]).sum()), nearest,
    )
