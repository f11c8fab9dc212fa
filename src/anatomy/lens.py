"""Logit lens: read every layer's vector with the final norm and the LM head (Chapter 7).

Only the last layer's vector is meant to go through the LM head. The logit lens
(nostalgebraist 2020) sends every layer's vector through the same two steps the last one takes,
the final norm then the LM head, and reads the result as a next-token distribution: what the model
"would say" if it stopped after that layer. Every result has one row per stage (see
``anatomy.hidden``): row 0 the embedding, row ℓ + 1 the output of layer ℓ; its last row is the
model's own next-token distribution.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from . import run
from .hidden import HiddenStates, Stages, hidden_states
from .errors import AnatomyError
from .hooks import capture
from .lm_head import logits_from_hidden
from .show import Table
from .tokens import Token, answer_id, readable, tokenize, tokens_of

__all__ = ["LanguageCurves", "LogitLens", "ResidualStream", "language_curves", "lens_logits", "logit_lens", "residual_stream"]


@torch.no_grad()
def lens_logits(model, hs: HiddenStates, layers=None) -> torch.Tensor:
    """Logits that the LM head gives for the chosen stages' vectors, at every position (Chapter 7).

    ``layers`` is one layer ℓ (0..L-1, negative from the end) or "embedding", or a list of them;
    None means all L + 1 stages (row 0 the embedding, row ℓ + 1 layer ℓ). Every stage is raw in
    ``hidden_states``, so the final norm is applied to each, then the LM head. Shape [T, V] for
    one layer, else [len(layers), T, V]. All go through the LM head in one product: for Gemma the
    head is 262,144 x 640 floats, and reading it once per layer would cost more than the model itself.
    """
    one = layers is not None and isinstance(layers, (numbers.Integral, str))
    chosen = [layers] if one else ["embedding", *range(hs.n_layers)] if layers is None else list(layers)
    idx = [hs.row(i) for i in chosen]
    h = hs.states[idx].to(device=model.device, dtype=model.lm_head.weight.dtype)  # [K, T, d]
    logits = logits_from_hidden(model, model.final_norm(h))  # [K, T, V]
    return logits[0] if one else logits


@dataclass(frozen=True)
class LogitLens(Stages):
    """What the LM head reads at every stage and position of one prompt (Chapter 7).

    One row per stage, like ``hidden_states``: row 0 the embedding, row ℓ + 1 the output of layer
    ℓ (labels in ``stages``). The last row, layer L - 1, is the model's own next-token distribution.
    Methods take a layer ℓ (0..L-1, negative from the end) or "embedding".
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    top_ids: torch.Tensor  # [L+1, T, k] most likely next tokens per layer and position
    top_probs: torch.Tensor  # [L+1, T, k] their probabilities
    top_text: tuple[tuple[tuple[str, ...], ...], ...]  # [L+1][T][k] readable text of top_ids
    targets: tuple[str, ...]  # readable text of the n target tokens
    target_ids: tuple[int, ...]  # their IDs
    target_probs: torch.Tensor  # [L+1, T, n] probability of each target token

    @property
    def n_layers(self) -> int:
        return self.top_ids.shape[0] - 1

    def _position(self, position: int) -> int:
        T = len(self.tokens)
        if isinstance(position, bool) or not isinstance(position, numbers.Integral) or not -T <= position < T:
            raise AnatomyError(f"Position {position!r} is out of range: the prompt has {T} tokens (positions 0 to {T - 1}, or -1 for the last).")
        return int(position) % T

    def top(self, layer: int, position: int = -1, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely tokens read at the output of ``layer`` (or "embedding") and a position, as (text, probability)."""
        p = self._position(position)
        r = self.row(layer)
        if not 1 <= k <= self.top_ids.shape[-1]:
            raise AnatomyError(f"k={k} is out of range: this lens kept the top {self.top_ids.shape[-1]} tokens; call logit_lens(..., k=...) for more.")
        return [(self.top_text[r][p][j], float(self.top_probs[r, p, j])) for j in range(k)]

    def table(self, position: int = -1, k: int = 3, layers: Sequence | None = None) -> Table:
        """One row per stage at one position: the top-k tokens with probabilities, then the targets.

        ``layers`` picks rows (ℓ or "embedding"); default: the embedding and every layer.
        """
        p = self._position(position)
        layers = ["embedding", *range(self.n_layers)] if layers is None else layers
        cols = ("layer (output of)", *(f"top {j + 1}" for j in range(k)), *(f"p({t})" for t in self.targets))
        rows = tuple(
            (self.stages[self.row(i)],
             *(f"{text} {prob:.2f}" for text, prob in self.top(i, p, k)),
             *(float(self.target_probs[self.row(i), p, j]) for j in range(len(self.targets))))
            for i in layers
        )
        caption = f"{self.model_name}: logit lens at position {p} ({self.tokens[p].text!r}) of “{self.prompt}”"
        return Table(cols, rows, caption)


@torch.no_grad()
def logit_lens(model, prompt: str, targets: Sequence = (), *, k: int = 5) -> LogitLens:
    """Final norm + LM head applied to every stage's vector at every position (Chapter 7).

    Rows: 0 the embedding, ℓ + 1 the output of layer ℓ; the last row is the model's own output.

    ``targets`` are words or token IDs whose probability is tracked per layer; a word counts by
    its first token. Only the top ``k`` tokens are kept per layer and position (a full
    [L+1, T, V] table would be hundreds of megabytes for Gemma's 262,144-token vocabulary).
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise AnatomyError(f"k={k!r} is out of range: keep between 1 and 100 top tokens per layer.")
    if isinstance(targets, (str, numbers.Integral)):
        targets = (targets,)
    target_ids = tuple(answer_id(model, t) for t in targets)
    hs = hidden_states(model, prompt)
    # The embedding and layers 0..L-2 through the LM head in one product; the last layer's row is the
    # model's own logits, which its forward pass already computed (hs.logits), so the 262k x 640 head
    # is not read twice for it.
    inner = lens_logits(model, hs, ["embedding", *range(hs.n_layers - 1)])  # [L, T, V]
    parts = [_top_and_targets(rows, k, target_ids) for rows in (*inner, hs.logits.clone())]  # per stage: [T, .]
    top_ids, top_probs, tprobs = (torch.stack(x) for x in zip(*parts))  # [L+1, T, k], [L+1, T, k], [L+1, T, n]
    tok = model.tokenizer
    shown = {j: readable(tok, j) for j in set(top_ids.flatten().tolist())}  # each distinct token read once
    text = tuple(tuple(tuple(shown[j] for j in pos) for pos in layer) for layer in top_ids.tolist())
    return LogitLens(
        model.name, prompt, hs.tokens, top_ids, top_probs, text,
        tuple(readable(tok, j) for j in target_ids), target_ids, tprobs,
    )


def _top_and_targets(logits: torch.Tensor, k: int, target_ids: tuple[int, ...]):
    """Top-k token IDs and probabilities, and the targets' probabilities, from logits [T, V].

    Softmax written out (p_i = exp(s_i - max) / sum_j exp(s_j - max)) but computed only for the
    k + n probabilities that are kept: the top-k logits give the max, the exponentials are taken in
    place (``logits`` is overwritten: pass a tensor that is not needed afterwards), and no [T, V]
    table of probabilities is made. One layer at a time, so the temporaries stay small.
    """
    top = logits.topk(k, dim=-1)  # [T, k]: the same order as the probabilities (exp is increasing)
    top_logit = top.values[:, :1]  # [T, 1] the largest logit of each row
    e = logits.sub_(top_logit).exp_()  # [T, V] exp(s - max), in place
    total = e.sum(dim=-1, keepdim=True)  # [T, 1]
    return top.indices, (top.values - top_logit).exp() / total, e[:, list(target_ids)] / total


@dataclass(frozen=True)
class LanguageCurves(Stages):
    """Per stage, the probability of the answer written in each language, averaged over prompts (Chapter 7).

    The stage axis has row 0 the embedding, row ℓ + 1 the output of layer ℓ (labels in ``stages``).
    """

    model_name: str
    prompts: tuple[str, ...]  # the N prompts, each asking for one word
    languages: tuple[str, ...]  # the G language names, e.g. ("English", "中文")
    answers: tuple[tuple[str, ...], ...]  # [N][G] readable first token of each expected answer
    probs: torch.Tensor  # [N, L+1, G] probability of each answer's first token at the last position

    @property
    def n_layers(self) -> int:
        return self.probs.shape[1] - 1

    def peak(self, n: int, g: int):
        """The layer ℓ (or "embedding") where answer ``g`` of prompt ``n`` is most probable."""
        r = int(self.probs[n, :, g].argmax())
        return "embedding" if r == 0 else r - 1

    @property
    def mean(self) -> torch.Tensor:
        """Average over the prompts. Shape [L+1, G]."""
        return self.probs.mean(0)

    def table(self) -> Table:
        """One row per prompt: the first token of each answer, and the layer where it peaks."""
        cols = ("prompt (last line)", *(f"{g} (first token)" for g in self.languages), *(f"{g} peaks at layer" for g in self.languages))
        rows = tuple(
            (p.splitlines()[-1], *self.answers[n], *(self.peak(n, g) for g in range(len(self.languages))))
            for n, p in enumerate(self.prompts)
        )
        return Table(cols, rows, f"{self.model_name}: first tokens tracked by the logit lens")


def language_curves(model, prompts: Sequence[str], answers: Mapping[str, Sequence]) -> LanguageCurves:
    """Track, layer by layer, the probability of the same answer in several languages (Chapter 7).

    Wendler et al. 2024 ask for a translation (``Français: "fleur" - 中文: "``) and read the last
    position with the logit lens: the probability of the first token of the English word and of
    the Chinese word, per layer. ``answers`` maps a language name to one word per prompt.
    """
    prompts = tuple(prompts)
    if not prompts:
        raise AnatomyError("No prompts given: pass a list of prompts, each ending where the answer word should start.")
    if not answers:
        raise AnatomyError("No answers given: pass e.g. {'English': ['flower', ...], '中文': ['花', ...]}.")
    for lang, words in answers.items():
        if len(words) != len(prompts):
            raise AnatomyError(f"{len(prompts)} prompts but {len(words)} {lang} answers: give one answer per prompt in every language.")
    langs = tuple(answers)
    tok = model.tokenizer
    rows, shown = [], []
    for n, prompt in enumerate(prompts):
        ids = [answer_id(model, answers[g][n]) for g in langs]
        hs = hidden_states(model, prompt)
        last = dataclasses.replace(hs, states=hs.states[:, -1:], tokens=hs.tokens[-1:], final=hs.final[-1:], logits=hs.logits[-1:])
        probs = torch.softmax(lens_logits(model, last)[:, 0], dim=-1)  # [L+1, V], last position only
        rows.append(probs[:, ids])  # [L+1, G]
        shown.append(tuple(readable(tok, i) for i in ids))
    return LanguageCurves(model.name, prompts, langs, tuple(shown), torch.stack(rows))


@dataclass(frozen=True)
class ResidualStream(Stages):
    """The residual stream of one prompt: what each layer reads, and what its two parts write (Chapter 7).

    Every layer adds to one running sum, in one d-dimensional space: layer i reads ``stream[i]``,
    its attention writes ``attn[i]`` and its feed-forward part writes ``ffn[i]``, and
    ``stream[i + 1] = stream[i] + attn[i] + ffn[i]``. ``stream`` has one row per stage: row 0 the
    embedding, row i + 1 the output of layer i (so row i is also the input of layer i), the last row
    the last layer's output *before* the final norm. Writes are taken as they are
    added: for Gemma, after the norm that follows each part (``post_attention_layernorm``,
    ``post_feedforward_layernorm``).
    """

    model_name: str
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    stream: torch.Tensor  # [L+1, T, d] the input of each layer, then the last layer's output
    attn: torch.Tensor  # [L, T, d] what each layer's attention adds
    ffn: torch.Tensor  # [L, T, d] what each layer's feed-forward part adds

    @property
    def n_layers(self) -> int:
        return self.attn.shape[0]

    @property
    def sums(self) -> torch.Tensor:
        """``stream[i] + attn[i] + ffn[i]`` per layer, added by hand. Shape [L, T, d]; equals ``stream[1:]``."""
        return (self.stream[:-1] + self.attn) + self.ffn

    def norms(self, position: int = -1) -> torch.Tensor:
        """Length of the stream, of the attention write and of the FFN write per layer at one position.

        Shape [L+1, 3]: row i is (|stream[i]|, |attn[i]|, |ffn[i]|); the last row has no writes (NaN).
        """
        T = len(self.tokens)
        if isinstance(position, bool) or not isinstance(position, numbers.Integral) or not -T <= position < T:
            raise AnatomyError(f"Position {position!r} is out of range: the prompt has {T} tokens (positions 0 to {T - 1}, or -1 for the last).")
        nan = torch.full((1,), float("nan"))
        return torch.stack([
            self.stream[:, position].norm(dim=-1),
            torch.cat([self.attn[:, position].norm(dim=-1), nan]),
            torch.cat([self.ffn[:, position].norm(dim=-1), nan]),
        ], dim=1)

    def table(self, position: int = -1) -> Table:
        """One row per layer at one position: the lengths, and how far the hand-made sum is from the next input."""
        n = self.norms(position)
        gap = (self.sums[:, position] - self.stream[1:, position]).abs().amax(-1)  # [L]
        rows = tuple(
            (str(i), float(n[i, 0]), float(n[i, 1]), float(n[i, 2]), float(n[i + 1, 0]), float(gap[i]))
            for i in range(self.n_layers)
        )
        cols = ("layer", "|input|", "|attention write|", "|FFN write|", "|input + writes| = |next input|",
                "largest difference, sum vs next input")
        p = position % len(self.tokens)
        return Table(cols, rows, f"{self.model_name}: residual stream at position {p} ({self.tokens[p].text!r}) of “{self.prompt}”")


@torch.no_grad()
def residual_stream(model, prompt: str) -> ResidualStream:
    """Capture what every layer reads and what its attention and feed-forward parts add (Chapter 7).

    One forward pass with hooks (``anatomy.hooks``): what layer 0 reads (the embedding; in GPT-2 with its
    learned positions added), each layer's attention and FFN
    outputs, and each layer's output. The writes are what is added to the stream: some families
    (Gemma 2 and 3, OLMo2) normalize a part's output before adding it, so that norm, named by the
    model's architecture description (``model.arch``), is applied here with the model's own module. Nothing else is computed by hand, so
    ``stream[i] + attn[i] + ffn[i] == stream[i + 1]`` is a check on this reading, not a definition.
    """
    ids = run.check_prompt(model, prompt)  # [1, T]
    L = model.n_layers
    places = [f"layers.{i}{part}" for i in range(L) for part in ("", ".attn", ".mlp")]
    with capture(model, *places) as seen:
        # hidden_states[0] is what layer 0 reads: the embedding, plus learned positions in GPT-2
        first = run.forward(model, ids, hidden_states=True).hidden_states[0]
    attn, ffn = [], []
    for i, block in enumerate(model.layers):
        a, f = seen[f"layers.{i}.attn"], seen[f"layers.{i}.mlp"]
        spec = model.arch.blocks[i]  # where this family normalizes a part's output before adding it
        if spec.post_attn_norm is not None:
            a = block.get_submodule(spec.post_attn_norm.path)(a)
        if spec.post_ffn_norm is not None:
            f = block.get_submodule(spec.post_ffn_norm.path)(f)
        attn.append(a[0])
        ffn.append(f[0])
    stream = torch.stack([first[0], *(seen[f"layers.{i}"][0] for i in range(L))]).float().cpu()
    return ResidualStream(model.name, prompt, tokens_of(model, ids[0]), stream,
                          torch.stack(attn).float().cpu(), torch.stack(ffn).float().cpu())
