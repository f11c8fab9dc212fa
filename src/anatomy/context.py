"""Contextualized embeddings: one token's vector at every layer, and how alike two of them are (Chapter 3).

Every per-layer result here has one row per stage (see ``anatomy.hidden``): row 0 the embedding,
row ℓ + 1 the output of layer ℓ.

A layer turns each token's vector into a new one that has read the tokens to its left; that
output goes by several names (contextualized embedding, hidden or latent representation). Here we
follow one word through the layers and compare its vectors across sentences with cosine
similarity, raw and normalized by the average similarity of all token pairs at the same layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .hidden import HiddenStates, Stages, hidden_states
from .errors import AnatomyError
from .show import Table
from .tokens import Token, word_positions

__all__ = [
    "LargestDimensions",
    "TokenVectors",
    "WordSimilarity",
    "largest_dimensions",
    "layer_similarity",
    "max_difference",
    "mean_similarity",
    "token_vectors",
    "word_similarity",
]


@dataclass(frozen=True)
class TokenVectors:
    """The vectors of one word of a prompt at every layer: its trajectory up the stack.

    Usually the word is one token (``positions`` has one entry); a word of several tokens is
    reduced to its first piece or to the mean of its pieces, as asked.
    """

    hidden: HiddenStates  # every layer's output for the whole prompt
    word: str
    positions: tuple[int, ...]  # the word's token indices among hidden.tokens (one unless reduced)

    @property
    def position(self) -> int:
        """The index of the word's (first) token among hidden.tokens."""
        return self.positions[0]

    @property
    def vectors(self) -> torch.Tensor:
        """The word's vector at every stage: row 0 the embedding, row ℓ + 1 the output of layer ℓ. Shape [L+1, d]."""
        return self.hidden.states[:, list(self.positions)].mean(dim=1)

    @property
    def embedding(self) -> torch.Tensor:
        """The word's token embedding, as it enters layer 0. Shape [d]."""
        return self.vectors[0]

    @property
    def token(self) -> Token:
        """The word's (first) token."""
        return self.hidden.tokens[self.positions[0]]

    def layer(self, i: int) -> torch.Tensor:
        """The word's vector at the output of layer ``i`` (0..L-1, negative from the end). Shape [d]."""
        self.hidden.layer(i)  # range check with a clear message
        return self.vectors[self.hidden.row(i)]


def token_vectors(model, prompt, word: str, *, occurrence: int = 0, reduce: str | None = None) -> TokenVectors:
    """Run ``prompt`` and keep the vectors of ``word`` at every layer (Chapter 3).

    ``prompt`` is a string, or the ``HiddenStates`` of an earlier run of the same model (no new run).

    ``word`` should be one token where it stands in the prompt (e.g. " apple" in "I ate an apple");
    if it is several, pass ``reduce="first"`` (its first piece) or ``reduce="mean"`` (the mean of its
    pieces). ``occurrence`` picks which one if the word appears several times (0 = first).
    """
    if reduce not in (None, "first", "mean"):
        raise AnatomyError(f"reduce={reduce!r} is not allowed: use None (one token only), 'first' or 'mean'.")
    if not isinstance(word, str) or word.strip() == "":
        raise AnatomyError("The word is empty: give a word of the prompt, such as 'apple'.")
    word = word.strip()
    if isinstance(prompt, HiddenStates):
        if prompt.model_name != model.name:
            raise AnatomyError(f"These hidden states come from {prompt.model_name}, not {model.name}; pass the model that made them.")
        hidden, prompt = prompt, prompt.prompt
    else:
        hidden = hidden_states(model, prompt)  # checks the prompt
    positions = word_positions(model, prompt, word, occurrence, whole_word=True)  # same tokens as hidden
    hit = [i for i in positions if not hidden.tokens[i].special]
    if not hit:
        raise AnatomyError(f"No token of {prompt!r} covers {word!r} for {model.name}; pick another word.")
    pieces = ", ".join(repr(hidden.tokens[i].text) for i in hit)
    if len(hit) > 1:
        if reduce == "first":
            return TokenVectors(hidden, word, (hit[0],))
        if reduce == "mean":
            return TokenVectors(hidden, word, tuple(hit))
        raise AnatomyError(
            f"{word!r} is {len(hit)} tokens in this prompt for {model.name} ({pieces}); use a word that is one token, "
            f"or pass reduce='first' (the vector of {hidden.tokens[hit[0]].text!r}) or reduce='mean' (the mean of the pieces)."
        )
    token = hidden.tokens[hit[0]]
    if token.text.replace("␣", " ").strip() != word:
        raise AnatomyError(f"{word!r} is only part of the token {token.text!r} in this prompt for {model.name}; pick the whole token.")
    return TokenVectors(hidden, word, (hit[0],))


def _trajectory(v) -> torch.Tensor:
    t = v.vectors if isinstance(v, TokenVectors) else torch.as_tensor(v)
    if t.ndim != 2:
        raise AnatomyError(f"Expected one vector per stage (shape [L+1, d]: the embedding, then each layer's output), got shape {tuple(t.shape)}.")
    return t.float()


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _trajectory(a), _trajectory(b)
    if a.shape != b.shape:
        raise AnatomyError(f"The two trajectories have shapes {tuple(a.shape)} and {tuple(b.shape)}; compare vectors of the same model.")
    return a, b


def layer_similarity(a, b) -> torch.Tensor:
    """Cosine similarity of two words' vectors at each stage (Chapter 3).

    Shape [L+1]: entry 0 the embedding, entry ℓ + 1 the output of layer ℓ.
    """
    a, b = _pair(a, b)
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def max_difference(a, b) -> torch.Tensor:
    """The largest |a - b| over the d dimensions, at each stage: 0 means identical (Chapter 3).

    Shape [L+1]: entry 0 the embedding, entry ℓ + 1 the output of layer ℓ.
    """
    a, b = _pair(a, b)
    return (a - b).abs().amax(dim=-1)


def mean_similarity(hiddens) -> torch.Tensor:
    """Average cosine similarity of all pairs of tokens of the given prompts, at each layer (Chapter 3).

    This is the baseline the lecture normalizes by: how alike two vectors of that layer are anyway.
    Tokens of every prompt are pooled. The first position of every prompt is left out, in every
    model alike: it is the attention sink (Chapters 11 and 13), an outlier whatever token sits there
    (Gemma's <bos>, identical in every prompt; SmolLM2's first word). Shape [L+1]: entry 0 the
    embedding, entry ℓ + 1 the output of layer ℓ.
    """
    hiddens = [h.hidden if isinstance(h, TokenVectors) else h for h in hiddens]
    unique = list({id(h): h for h in hiddens}.values())
    if not unique or len({h.states.shape[0] for h in unique}) != 1:
        raise AnatomyError("Give the hidden states of one or more prompts run through the same model.")
    states = torch.cat([h.states[:, 1:] for h in unique], dim=1)  # [L+1, N, d], the sink position left out
    n = states.shape[1]
    if n < 2:
        raise AnatomyError("The baseline needs at least two tokens; give longer or more prompts.")
    unit = torch.nn.functional.normalize(states, dim=-1)
    cos = unit @ unit.transpose(1, 2)  # [L+1, N, N]
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    return cos[:, off_diagonal].mean(dim=-1)


@dataclass(frozen=True)
class WordSimilarity(Stages):
    """One word in several sentences: cosine of every pair of its vectors at every layer (Chapter 3).

    ``normalized = (raw - baseline) / (1 - baseline)``: where the pair sits between "as alike as two
    tokens picked at random from these sentences at this layer" (0) and "identical" (1). Dividing by
    the baseline (the lecture's choice) blows up where the baseline is near 0 (token embeddings);
    subtracting it alone squeezes layers whose baseline is near 1 (Gemma: about 0.97) into a few
    hundredths. At any one layer all three keep the pairs in the same order.

    The layer axis of ``raw``, ``baseline`` and ``normalized`` has one entry per stage: entry 0 the
    embedding, entry ℓ + 1 the output of layer ℓ (labels in ``stages``).
    """

    model_name: str
    word: str
    sentences: tuple[str, ...]
    senses: tuple[str, ...]  # a label per sentence, e.g. "fruit" / "company"
    pairs: tuple[tuple[int, int], ...]  # P pairs of sentence indices
    raw: torch.Tensor  # [P, L+1] cosine similarity of the word's vectors (entry 0 the embedding, ℓ+1 layer ℓ)
    baseline: torch.Tensor  # [L+1] mean cosine of all token pairs at that stage
    vectors: tuple[TokenVectors, ...]  # the word in each sentence (with the sentence's hidden states)

    @property
    def normalized(self) -> torch.Tensor:
        """(raw - baseline) / (1 - baseline): 0 = chance level at this layer, 1 = identical. Shape [P, L+1]."""
        return (self.raw - self.baseline) / (1 - self.baseline)

    @property
    def same_sense(self) -> torch.Tensor:
        """True for the pairs whose two sentences have the same sense label. Shape [P]."""
        return torch.tensor([self.senses[i] == self.senses[j] for i, j in self.pairs])

    @property
    def n_layers(self) -> int:
        return self.raw.shape[1] - 1

    def middle_layers(self) -> slice:
        """The entries of the layer axis for the middle half of the stack: outputs of layers L/4 to 3L/4."""
        L = self.n_layers
        return slice(self.row(L // 4), self.row(min(3 * L // 4, L - 1)) + 1)

    def middle_mean(self, which: str = "normalized") -> torch.Tensor:
        """Each pair's raw or normalized similarity, averaged over the middle layers. Shape [P]."""
        if which not in ("raw", "normalized"):
            raise AnatomyError(f"which={which!r} is not allowed: use 'raw' or 'normalized'.")
        values = self.raw if which == "raw" else self.normalized
        return values[:, self.middle_layers()].mean(dim=1)

    def sense_gap(self, which: str = "normalized") -> float:
        """Lowest same-sense pair minus highest cross-sense pair, on the middle-layer mean (> 0: separated)."""
        mid = self.middle_mean(which)
        same = self.same_sense
        if same.all() or not same.any():
            raise AnatomyError("sense_gap needs pairs of the same sense and pairs of different senses; give two senses.")
        return float(mid[same].min() - mid[~same].max())

    def table(self, which: str = "raw", layers=None) -> Table:
        """One row per pair at a few layers (default: L/4, L/2, 3L/4, L-1); the raw table adds the baseline.

        ``layers`` are layer indices 0..L-1 (negative from the end) or "embedding".
        """
        if which not in ("raw", "normalized"):
            raise AnatomyError(f"which={which!r} is not allowed: use 'raw' or 'normalized'.")
        L = self.n_layers
        layers = list(layers) if layers is not None else [L // 4, L // 2, 3 * L // 4, L - 1]
        idx = [self.row(k) for k in layers]
        values = self.raw if which == "raw" else self.normalized
        rows = [
            (f"{i + 1}–{j + 1}", f"{self.senses[i]} · {self.senses[j]}") + tuple(float(values[p, k]) for k in idx)
            for p, (i, j) in enumerate(self.pairs)
        ]
        if which == "raw":
            rows.append(("all token pairs", "baseline") + tuple(float(self.baseline[k]) for k in idx))
        caption = f"{self.model_name}: {which} cosine similarity of “{self.word}”"
        names = tuple("embedding" if k == "embedding" else f"layer {self.stages[r]}" for k, r in zip(layers, idx))
        return Table(("pair", "senses") + names, tuple(rows), caption)


def word_similarity(model, sentences, word: str, senses=None) -> WordSimilarity:
    """Compare ``word``'s vectors across ``sentences``, pair by pair and layer by layer (Chapter 3)."""
    sentences = tuple(sentences)
    if len(sentences) < 2:
        raise AnatomyError("Give at least two sentences that contain the word, so there is a pair to compare.")
    senses = tuple(senses) if senses is not None else tuple(str(i + 1) for i in range(len(sentences)))
    if len(senses) != len(sentences):
        raise AnatomyError(f"Give one sense label per sentence: got {len(senses)} labels for {len(sentences)} sentences.")
    vectors = [token_vectors(model, s, word) for s in sentences]
    pairs = tuple(itertools.combinations(range(len(sentences)), 2))
    raw = torch.stack([layer_similarity(vectors[i], vectors[j]) for i, j in pairs])  # [P, L+1]
    return WordSimilarity(model.name, word, sentences, senses, pairs, raw, mean_similarity(vectors), tuple(vectors))


@dataclass(frozen=True)
class LargestDimensions:
    """The few dimensions that carry most of a vector's length (Chapter 3)."""

    indices: torch.Tensor  # [k] which dimensions, largest |value| first
    values: torch.Tensor  # [k] their values (with sign)
    median_abs: float  # the typical |value| of a dimension
    share: float  # fraction of the squared length ||v||^2 held by these k dimensions


def largest_dimensions(vector: torch.Tensor, k: int = 3) -> LargestDimensions:
    """The ``k`` dimensions of ``vector`` [d] with the largest |value|, against the typical one (Chapter 3)."""
    vector = torch.as_tensor(vector).float()
    if vector.ndim != 1:
        raise AnatomyError(f"Give one vector of shape [d], got shape {tuple(vector.shape)}; pick a layer and a token first.")
    if not 1 <= k <= vector.shape[0]:
        raise AnatomyError(f"k={k} is out of range: the vector has {vector.shape[0]} dimensions.")
    top = vector.abs().topk(k).indices
    share = float((vector[top] ** 2).sum() / (vector**2).sum())
    return LargestDimensions(top, vector[top], float(vector.abs().median()), share)
