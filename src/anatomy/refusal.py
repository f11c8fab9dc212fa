"""The refusal direction: what a chat model declines, the direction that carries it, and removing it (Chapter 15).

The lecture's refusal experiment, on a behaviour our chat model really has:

    declines(model, requests)                      # greedy answers, batched; which ones open like "I'm sorry"
    v = refusal_directions(model, declined, answered)      # [L, d] difference of means, one per layer
    with anatomy.steer(model, l, v[l], 1.0): ...   # add it at layer l: harmless requests get declined
    with ablate_direction(model, v[l]): ...                  # project it out everywhere: declined requests get answered

Adding a direction is ``anatomy.steer`` of Chapter 6 (Arditi et al. 2024 add it at one layer, at every
position, the same way). Directional ablation (Arditi et al. 2024) removes the component along
``u = v / |v|`` from the residual stream at every layer and every position: ``h <- h - (h . u) u``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .show import Table
from .steering import directions

__all__ = ["DECLINE_OPENINGS", "Declines", "RefusalScan", "ablate_direction", "answers", "chat", "declines", "is_decline", "project", "refusal_directions", "refusal_scan"]

# How a declining answer starts (compared without case, after leading spaces). A chat model that
# declines tends to open with an apology or by naming what it is; the list is short on purpose.
DECLINE_OPENINGS = ("i'm sorry", "i'm so sorry", "i am sorry", "sorry", "i apologize", "i apologise", "i cannot", "i can't",
                    "i can not", "i'm unable", "i am unable", "i'm not able", "i am not able", "unfortunately", "i'm an ai", "i am an ai",
                    "i'll not", "i will not", "i won't",
                    "as an ai", "as a chatbot", "as a language model", "as an assistant")


def _requests(requests, what: str = "requests") -> list[str]:
    if isinstance(requests, str) or not isinstance(requests, Sequence) or len(requests) == 0:
        raise AnatomyError(f"{what} must be a non-empty list of requests, e.g. ['Teach me machine learning.', 'Write a poem about rain.'].")
    if not all(isinstance(r, str) and r.strip() for r in requests):
        raise AnatomyError(f"{what} contains an empty request or one that is not text; give each request as a non-empty string.")
    return list(requests)


def chat(model, request: str) -> str:
    """The request as the chat model reads it: its chat template, ending where the assistant's answer starts.

    A base model has no chat template and has never been taught to answer (or decline) requests:
    asking it raises a clear error instead of inventing a template (Chapter 15).
    """
    if getattr(model.tokenizer, "chat_template", None) is None:
        raise AnatomyError(f"{model.name} has no chat template (it is a base model, not a chat model); use an instruction-tuned chat model.")
    _requests([request], "request")
    return model.tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True)


def is_decline(answer: str) -> bool:
    """True if the answer opens like a refusal ("I'm sorry...", "As an AI..."), by DECLINE_OPENINGS."""
    return answer.lstrip().lower().replace("\u2019", "'").startswith(DECLINE_OPENINGS)


@torch.no_grad()
def answers(model, requests, max_new_tokens: int = 6) -> tuple[str, ...]:
    """The model's first ``max_new_tokens`` answer tokens to each request (chat template, greedy), batched.

    All requests run as one left-padded batch, with the KV cache; hooks active around the call
    (``anatomy.steer``, ``ablate_direction``) apply to every step. Deterministic (no sampling).
    """
    requests = _requests(requests)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 64:
        raise AnatomyError(f"max_new_tokens={max_new_tokens!r} is not allowed: use an integer from 1 to 64 (a few tokens show whether an answer declines).")
    tok = model.tokenizer
    texts = [chat(model, r) for r in requests]
    b = run.batch(model, texts, left=True, special_tokens=False)  # [B, T]: the template has its own start tokens
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = b.ids.shape[1]
    out = model.hf.generate(input_ids=b.ids, attention_mask=b.mask, do_sample=False,
                            max_new_tokens=max_new_tokens, pad_token_id=pad, temperature=None, top_p=None, top_k=None)
    stops = {tok.eos_token_id, pad}
    result = []
    for row in out[:, width:].tolist():  # [B, n_new]
        cut = next((j for j, t in enumerate(row) if t in stops), len(row))
        result.append(tok.decode(row[:cut]))
    return tuple(result)


@dataclass(frozen=True)
class Declines:
    """The model's first answer tokens to each request, and which ones decline (Chapter 15)."""

    model_name: str
    requests: tuple[str, ...]
    answers: tuple[str, ...]
    declined: tuple[bool, ...]

    @property
    def rate(self) -> float:
        """The fraction of requests declined, in [0, 1]."""
        return sum(self.declined) / len(self.declined)

    def table(self) -> Table:
        return Table(("request", f"{self.model_name}'s answer (first tokens)", "declines?"),
                     tuple((q, a, "yes" if d else "no") for q, a, d in zip(self.requests, self.answers, self.declined)))


def declines(model, requests, max_new_tokens: int = 6) -> Declines:
    """Generate the first answer tokens to each request (batched) and mark those that decline (Chapter 15)."""
    said = answers(model, requests, max_new_tokens)
    return Declines(model.name, tuple(requests), said, tuple(is_decline(a) for a in said))


def refusal_directions(model, declined, answered) -> torch.Tensor:
    """mean(declined requests) - mean(answered requests) at the answer's start, for every layer. [L, d] (Chapter 15).

    Each request goes through the chat template first; the vector is the output of layer l at the
    last template token (where the answer begins), as in ``anatomy.directions`` of Chapter 6.
    """
    a = [chat(model, r) for r in _requests(declined, "declined")]
    b = [chat(model, r) for r in _requests(answered, "answered")]
    return directions(model, a, b)  # [L, d]


def project(h: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The component of each vector along the direction: h . u with u = direction / |direction|. Shape h.shape[:-1]."""
    u = direction.to(device=h.device, dtype=h.dtype)
    return h @ (u / u.norm())


@contextlib.contextmanager
def ablate_direction(model, direction: torch.Tensor) -> Iterator[None]:
    """Directional ablation (Arditi et al. 2024): inside the block, no residual vector has a component along ``direction``.

    ``h <- h - (h . u) u`` with ``u = direction / |direction|``, applied to the token embeddings and
    to the output of every layer, at every position; what each layer adds along ``u`` is removed
    before the next layer reads it. Hooks are removed on exit, even if the block raises.
    """
    direction = run.check_vector(model, direction)
    if not direction.norm() > 0:
        raise AnatomyError("The direction to ablate is the zero vector, which has no direction; pass a difference of means such as refusal_directions(...)[layer].")
    u = direction.float() / direction.float().norm()  # [d]
    with _ablate_rows(model, u[None]):
        yield


@contextlib.contextmanager
def _ablate_rows(model, units: torch.Tensor) -> Iterator[None]:
    """Directional ablation with one unit direction per batch row (units [B, d], or [1, d] for all rows)."""
    def remove(h):  # h: [B, T, d]
        uu = units.to(device=h.device, dtype=h.dtype)[:, None, :]  # [B or 1, 1, d]
        return h - (h * uu).sum(-1, keepdim=True) * uu

    with contextlib.ExitStack() as stack:
        for place in ["embedding", *(f"layers.{i}" for i in range(model.n_layers))]:
            stack.enter_context(hooks.edit(model, place, remove))
        yield


@contextlib.contextmanager
def _add_rows(model, vectors: torch.Tensor, layer: int) -> Iterator[None]:
    """Add one vector per batch row (vectors [B, d]) to the output of ``layer`` at every position."""
    def add(h):  # h: [B, T, d]
        return h + vectors.to(device=h.device, dtype=h.dtype)[:, None, :]

    with hooks.edit(model, f"layers.{layer}", add):
        yield


@dataclass(frozen=True)
class RefusalScan:
    """Decline rates on held-out requests, with the direction of each layer added or ablated (Chapter 15).

    ``added[i]``: the fraction of the *answered* requests declined when ``strength * v[layers[i]]`` is
    added to the output of that layer at every position; ``ablated[i]``: the fraction of the
    *declined* requests still declined when ``v[layers[i]]`` is ablated at every layer and position.
    ``added_random`` / ``ablated_random``: the same with a random direction of the same norm (seeded).
    ``answered_base`` / ``declined_base``: the two lists' decline rates with nothing changed.
    """

    model_name: str
    layers: tuple[int, ...]
    strength: float
    added: torch.Tensor  # [n_layers]
    added_random: torch.Tensor  # [n_layers]
    ablated: torch.Tensor  # [n_layers]
    ablated_random: torch.Tensor  # [n_layers]
    answered_base: float
    declined_base: float
    n_answered: int
    n_declined: int

    @property
    def best_add_layer(self) -> int:
        """The layer whose added direction makes the most answered requests declined (earliest on a tie)."""
        return self.layers[int(self.added.argmax())]

    @property
    def best_ablate_layer(self) -> int:
        """The layer whose ablated direction leaves the fewest declined requests declined (earliest on a tie)."""
        return self.layers[int(self.ablated.argmin())]

    def table(self) -> Table:
        return Table(("layer of the direction", f"answered requests declined, +{self.strength:g}·v", "…, random",
                      "declined requests still declined, v ablated", "…, random"),
                     tuple((layer, round(float(a), 2), round(float(ar), 2), round(float(b), 2), round(float(br), 2))
                           for layer, a, ar, b, br in zip(self.layers, self.added, self.added_random, self.ablated, self.ablated_random)),
                     caption=f"{self.model_name}: without changes, {self.answered_base:.2f} of {self.n_answered} answered and {self.declined_base:.2f} of {self.n_declined} declined requests are declined")


def _rate(said: Sequence[str]) -> float:
    return sum(is_decline(a) for a in said) / len(said)


def refusal_scan(model, vectors: torch.Tensor, declined, answered, layers: Sequence[int], *, strength: float = 1.0,
                 max_new_tokens: int = 4, seed: int = 0) -> RefusalScan:
    """Add each layer's direction to the answered requests, ablate it from the declined ones, beside random controls.

    ``vectors`` is [L, d] from ``refusal_directions`` (built on other requests than these). Per layer,
    two batched generations: the real direction and a random one of the same norm run together.
    """
    if not isinstance(vectors, torch.Tensor) or tuple(vectors.shape) != (model.n_layers, model.d_model):
        raise AnatomyError(f"vectors must be [{model.n_layers}, {model.d_model}], one direction per layer; use refusal_directions(model, declined, answered).")
    declined, answered = _requests(declined, "declined"), _requests(answered, "answered")
    layers = tuple(hooks.layer_index(model, i) for i in layers)
    if not layers:
        raise AnatomyError("Give at least one layer to try, e.g. layers=range(0, model.n_layers, 4).")
    g = torch.Generator().manual_seed(seed)
    na, nd = len(answered), len(declined)
    added, added_random, ablated, ablated_random = [], [], [], []
    for layer in layers:
        v = vectors[layer].float()  # [d]
        r = torch.randn(model.d_model, generator=g)
        r = r / r.norm() * v.norm()  # [d], as long as v
        with _add_rows(model, strength * torch.cat([v.expand(na, -1), r.expand(na, -1)]), layer):
            said = answers(model, answered * 2, max_new_tokens)
        added.append(_rate(said[:na]))
        added_random.append(_rate(said[na:]))
        units = torch.cat([(v / v.norm()).expand(nd, -1), (r / r.norm()).expand(nd, -1)])  # [2 nd, d]
        with _ablate_rows(model, units):
            said = answers(model, declined * 2, max_new_tokens)
        ablated.append(_rate(said[:nd]))
        ablated_random.append(_rate(said[nd:]))
    base = answers(model, answered + declined, max_new_tokens)
    return RefusalScan(model.name, layers, float(strength), torch.tensor(added), torch.tensor(added_random), torch.tensor(ablated),
                       torch.tensor(ablated_random), _rate(base[:na]), _rate(base[na:]), na, nd)
