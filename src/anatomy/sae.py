"""Sparse autoencoders: one layer's vectors written as a few directions out of many (Chapter 16).

The lecture's notes ask for a set of "function vectors" v_1..v_K such that each residual vector of a
layer is a sum of a few of them plus a small error, x_n ≈ Σ_k α_k^n v_k + e_n, with the loss

    L = Σ_n ‖e_n‖² + λ Σ_n Σ_k |α_k^n|

(reconstruction plus an L1 sparsity term). A sparse autoencoder learns both at once: the encoder
computes the coefficients α = ReLU(W_enc (x - b_dec) + b_enc), the decoder's columns are the v_k
(kept at unit length, so that λ cannot be dodged by shrinking α and growing v), and x̂ = W_dec α + b_dec.

    acts = residual_vectors(model, texts, layer)          # [N, d] one vector per token
    sae = train_sae(acts, n_latents=4 * model.d_model)    # seeded, a few seconds on a CPU
    sae_metrics(sae, acts)                                # FVE, mean L0, dead latents
    spliced_losses(model, held_out, sae, acts.mean)       # next-token loss: clean / SAE / mean vector
    feature_page(model, sae, acts, latent)                # top contexts, tokens its direction promotes
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .lm_head import logits_from_hidden
from .show import Table
from .tokens import Token, readable, tokens_of

__all__ = ["Activations", "FeaturePage", "SAEMetrics", "SparseAutoencoder", "SplicedLosses", "feature_page",
           "l0", "latent_for", "next_token_loss", "residual_vectors", "sae_metrics", "spliced_losses", "train_sae"]


SKIP = 4  # leading positions of each text left out (attention sinks; see residual_vectors)


# --- the corpus' vectors ------------------------------------------------------------------------
@dataclass(frozen=True)
class Activations:
    """One layer's residual vectors over a corpus, one per token, with where each came from (Chapter 16)."""

    model_name: str
    layer: int
    vectors: torch.Tensor  # [N, d] output of the layer at each kept token
    text_index: torch.Tensor  # [N] which text of the corpus each vector comes from
    position: torch.Tensor  # [N] the token's position in its text
    ids: torch.Tensor  # [N] the token's ID
    tokens: tuple[Token, ...]  # [N] the token (its .text is readable)
    contexts: tuple[str, ...]  # [N] the text of the last few tokens, up to and including this one

    @property
    def mean(self) -> torch.Tensor:
        """The mean vector: the baseline every reconstruction must beat. Shape [d]."""
        return self.vectors.mean(0)


def _texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise AnatomyError(f"{what} must be a non-empty list of non-empty texts, e.g. anatomy.book_text('en').")
    return list(texts)


@torch.no_grad()
def residual_vectors(model, texts, layer: int, *, max_tokens: int = 32, skip: int = SKIP, batch_size: int = 32) -> Activations:
    """The output of ``layer`` at every token of ``texts`` (each cut at ``max_tokens``), in batches (Chapter 16).

    Each pass stops after ``layer``. The first ``skip`` positions of each text and special tokens are
    left out: the first tokens serve as attention sinks (Xiao et al. 2023) and carry "massive
    activations" (Sun et al. 2024), vectors up to a hundred times longer than the others whatever
    the word; an SAE trained on them would spend its effort there.
    """
    layer = hooks.layer_index(model, layer)
    texts = _texts(texts)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or isinstance(skip, bool) or not isinstance(skip, int) \
            or not 0 <= skip < max_tokens:
        raise AnatomyError(f"max_tokens={max_tokens!r}, skip={skip!r} are not allowed: keep more tokens than you skip, e.g. max_tokens=32, skip=4.")
    special = set(model.tokenizer.all_special_ids)
    vectors, where, pos, tok_ids, contexts = [], [], [], [], []
    for idx, batch in run.batches(model, texts, batch_size, max_tokens=max_tokens):
        h = run.run_to(model, batch, f"layers.{layer}").float().cpu()  # [B, T, d]: the pass stops after the layer
        for b, i in enumerate(idx):
            row = batch.ids[b, :int(batch.lengths[b])].tolist()
            for t in range(skip, len(row)):
                if row[t] in special:
                    continue
                vectors.append(h[b, t])
                where.append(i)
                pos.append(t)
                tok_ids.append(row[t])
                # decoded as a whole, so that byte tokens join into characters ("…" marks a cut)
                text = model.tokenizer.decode(row[max(0, t - 8):t + 1]).replace("\n", " ")
                contexts.append("…" + text.lstrip("\ufffd"))  # a character cut in half at the start: dropped
    if not vectors:
        raise AnatomyError(f"The texts have no tokens after the first {skip}; give longer texts or a smaller skip.")
    order = sorted(range(len(where)), key=lambda k: (where[k], pos[k]))  # back to corpus order
    tokens = tokens_of(model, tok_ids)
    return Activations(model.name, layer, torch.stack([vectors[k] for k in order]),  # [N, d]
                       torch.tensor([where[k] for k in order]), torch.tensor([pos[k] for k in order]),
                       torch.tensor([tok_ids[k] for k in order]), tuple(tokens[k] for k in order),
                       tuple(contexts[k] for k in order))


# --- the autoencoder ----------------------------------------------------------------------------
class SparseAutoencoder(torch.nn.Module):
    """x ≈ W_dec · ReLU(W_enc (x - b_dec) + b_enc) + b_dec, with unit-norm decoder columns (Chapter 16).

    Works on residual vectors divided by ``scale`` (a number fixed from the training data so that the
    typical vector has length √d); ``encode`` and ``decode`` take and return residual-stream units.
    """

    def __init__(self, d: int, n_latents: int, *, scale: float = 1.0, seed: int = 0, model_name: str = "", layer: int = -1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, n_latents, generator=g)
        w = w / w.norm(dim=0, keepdim=True)  # [d, m]: column k is latent k's direction
        self.W_dec = torch.nn.Parameter(w.clone())  # [d, m]
        self.W_enc = torch.nn.Parameter(w.T.clone())  # [m, d] starts as the decoder's transpose
        self.b_enc = torch.nn.Parameter(torch.zeros(n_latents))  # [m]
        self.b_dec = torch.nn.Parameter(torch.zeros(d))  # [d]
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.model_name, self.layer = model_name, layer

    def extra_repr(self) -> str:
        return f"d={self.W_dec.shape[0]}, n_latents={self.n_latents}, model={self.model_name!r}, layer={self.layer}"

    @property
    def n_latents(self) -> int:
        return self.W_dec.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The coefficients α of each vector: [..., d] -> [..., m], zero for most latents."""
        return torch.relu((x / self.scale - self.b_dec) @ self.W_enc.T + self.b_enc)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Σ_k α_k v_k + b_dec, back in residual units: [..., m] -> [..., d]."""
        return (f @ self.W_dec.T + self.b_dec) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def direction(self, latent: int) -> torch.Tensor:
        """Latent ``latent``'s decoder column, a unit vector in the residual stream. Shape [d]."""
        return self.W_dec[:, _latent(self, latent)].detach().clone()


def _latent(sae: SparseAutoencoder, latent) -> int:
    if isinstance(latent, bool) or not isinstance(latent, numbers.Integral) or not 0 <= int(latent) < sae.n_latents:
        raise AnatomyError(f"Latent {latent!r} is out of range: this SAE has latents 0 to {sae.n_latents - 1}.")
    return int(latent)


def train_sae(acts: Activations, n_latents: int, *, l1: float = 2.0, steps: int = 2000, batch_size: int = 256,
              lr: float = 1e-3, seed: int = 0) -> SparseAutoencoder:
    """Train a sparse autoencoder on ``acts.vectors``: Adam on reconstruction + ``l1`` × Σ|α| (Chapter 16).

    Seeded (initial weights and the order of the batches), on the CPU. After each step the decoder
    columns are set back to unit length.
    """
    if not isinstance(acts, Activations):
        raise AnatomyError("train_sae needs the vectors of residual_vectors(model, texts, layer).")
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise AnatomyError(f"n_latents={n_latents!r} is not allowed: use a positive integer, e.g. 4 * model.d_model.")
    x = acts.vectors.float()  # [N, d]
    scale = float(x.norm(dim=1).mean()) / x.shape[1] ** 0.5  # so the typical vector has length √d
    sae = SparseAutoencoder(x.shape[1], n_latents, scale=scale, seed=seed, model_name=acts.model_name, layer=acts.layer)
    x = x / scale
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0))  # start from the mean vector
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = x[torch.randint(len(x), (batch_size,), generator=g)]  # [B, d]
        f = torch.relu((batch - sae.b_dec) @ sae.W_enc.T + sae.b_enc)  # [B, m] the coefficients α
        x_hat = f @ sae.W_dec.T + sae.b_dec  # [B, d]
        loss = ((x_hat - batch) ** 2).sum(1).mean() + l1 * f.sum(1).mean()  # ‖e‖² + λ Σ|α| (α ≥ 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)  # unit-norm columns
    return sae.eval().requires_grad_(False)


# --- what practitioners report --------------------------------------------------------------------
def l0(sae: SparseAutoencoder, vectors: torch.Tensor) -> torch.Tensor:
    """How many latents are active (> 0) for each vector. Shape [N], integers."""
    with torch.no_grad():
        return (sae.encode(vectors) > 0).sum(-1)


@dataclass(frozen=True)
class SAEMetrics:
    """What practitioners report about an SAE on a set of vectors (Chapter 16)."""

    model_name: str
    layer: int
    n_latents: int
    fve: float  # fraction of variance explained: 1 - Σ‖x - x̂‖² / Σ‖x - mean‖²
    mean_l0: float  # mean number of active latents per vector
    dead: int  # latents active on none of the vectors
    frequency: torch.Tensor  # [m] fraction of the vectors on which each latent is active

    def table(self) -> Table:
        return Table(("model", "layer", "latents", "fraction of variance explained", "mean L0", "dead latents"),
                     ((self.model_name, self.layer, self.n_latents, round(self.fve, 3), round(self.mean_l0, 1), self.dead),))


@torch.no_grad()
def sae_metrics(sae: SparseAutoencoder, acts: Activations) -> SAEMetrics:
    """Fraction of variance explained, mean L0 and dead latents of ``sae`` on ``acts`` (Chapter 16)."""
    x = acts.vectors.float()  # [N, d]
    f = sae.encode(x)  # [N, m]
    err = ((sae.decode(f) - x) ** 2).sum()
    total = ((x - x.mean(0)) ** 2).sum()
    frequency = (f > 0).float().mean(0)  # [m]
    return SAEMetrics(acts.model_name, acts.layer, sae.n_latents, float(1 - err / total), float((f > 0).sum(1).float().mean()),
                      int((frequency == 0).sum()), frequency)


@torch.no_grad()
def next_token_loss(model, texts, layer: int, replace=None, *, max_tokens: int = 32, skip: int = SKIP,
                    batch_size: int = 32) -> float:
    """Mean next-token cross-entropy over ``texts``, with layer ``layer``'s output passed through ``replace`` (Chapter 16).

    ``replace`` maps vectors [..., d] to [..., d]; it is applied from position ``skip`` on (the
    positions the SAE was trained on), and the loss is averaged over the predictions made there.
    ``replace=None`` is the clean model.
    """
    layer = hooks.layer_index(model, layer)
    texts = _texts(texts)

    def splice(h):  # h: [B, T, d]
        out = h.clone()
        out[:, skip:] = replace(h[:, skip:].float()).to(h.dtype)
        return out

    total, count = 0.0, 0
    for _, batch in run.batches(model, texts, batch_size, max_tokens=max_tokens):
        ids, mask = batch.ids, batch.mask
        if replace is None:
            logits = model.hf(input_ids=ids, attention_mask=mask).logits
        else:
            with hooks.edit(model, f"layers.{layer}", splice):
                logits = model.hf(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
        logp = torch.log_softmax(logits[:, skip:-1].float(), -1)  # [B, T-1-skip, V] predicts tokens skip+1..T-1
        nll = -logp.gather(-1, ids[:, skip + 1:, None])[..., 0]  # [B, T-1-skip]
        keep = mask[:, skip + 1:].bool()
        total += float(nll[keep].sum())
        count += int(keep.sum())
    if count == 0:
        raise AnatomyError(f"The texts have no tokens to predict after position {skip}; give longer texts.")
    return total / count


@dataclass(frozen=True)
class SplicedLosses:
    """Next-token loss with the layer's vectors as they are, as the SAE rebuilds them, and as the mean (Chapter 16)."""

    model_name: str
    layer: int
    clean: float
    reconstruction: float
    mean_vector: float

    @property
    def recovered(self) -> float:
        """How much of the loss the mean vector loses the SAE gets back: 1 = as good as clean, 0 = as bad as the mean."""
        return (self.mean_vector - self.reconstruction) / (self.mean_vector - self.clean)

    def table(self) -> Table:
        return Table(("model", "layer", "clean", "SAE reconstruction", "mean vector", "loss recovered"),
                     ((self.model_name, self.layer, round(self.clean, 3), round(self.reconstruction, 3),
                       round(self.mean_vector, 3), round(self.recovered, 3)),))


def spliced_losses(model, texts, sae: SparseAutoencoder, mean: torch.Tensor, **kw) -> SplicedLosses:
    """The model's next-token loss on ``texts``: clean, with the SAE's layer spliced in, with the mean vector (Chapter 16)."""
    layer = sae.layer
    clean = next_token_loss(model, texts, layer, **kw)
    rebuilt = next_token_loss(model, texts, layer, sae, **kw)
    flat = next_token_loss(model, texts, layer, lambda h: mean.to(h.dtype).expand_as(h), **kw)
    return SplicedLosses(model.name, layer, clean, rebuilt, flat)


# --- feature pages --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeaturePage:
    """One latent: where it fires most, and what its direction says through the LM head (Chapter 16)."""

    model_name: str
    layer: int
    latent: int
    frequency: float  # fraction of the corpus' tokens where it is active
    top: tuple[tuple[str, str, float], ...]  # (the token, context ending at it, activation), most active first, as NeuronActivations.top
    promoted: tuple[str, ...]  # tokens its decoder direction pushes up most, through final norm and LM head

    def table(self) -> Table:
        rows = tuple((c, t, round(a, 2)) for t, c, a in self.top)
        return Table((f"latent {self.latent}: context (ends at the token)", "token", "activation"), rows,
                     caption=f"{self.model_name}, layer {self.layer}, active on {100 * self.frequency:.2g}% of tokens; "
                             f"promotes: {' '.join(self.promoted)}")


@torch.no_grad()
def feature_page(model, sae: SparseAutoencoder, acts: Activations, latent: int, k: int = 8, *,
                 features: torch.Tensor | None = None) -> FeaturePage:
    """Top-``k`` contexts of one latent over ``acts`` and the tokens its decoder column promotes (Chapter 16).

    ``features`` ([N, m], ``sae.encode(acts.vectors)``) can be passed to avoid encoding again.
    """
    latent = _latent(sae, latent)
    a = (sae.encode(acts.vectors) if features is None else features)[:, latent]  # [N]
    top = a.topk(min(k, len(a)))
    v = sae.direction(latent).to(device=model.device, dtype=model.dtype)  # [d]
    if model.final_norm is not None:
        v = model.final_norm(v[None, None])[0, 0]
    logits = logits_from_hidden(model, v)  # [V]
    promoted = tuple(readable(model.tokenizer, i) for i in logits.topk(k).indices.tolist())
    return FeaturePage(model.name, acts.layer, latent, float((a > 0).float().mean()),
                       tuple((acts.tokens[j].text, acts.contexts[j], float(a[j])) for j in top.indices.tolist()), promoted)


def latent_for(sae: SparseAutoencoder, acts: Activations, token_id: int, *, features: torch.Tensor | None = None) -> int:
    """The latent that belongs most to one token: large on it, and with most of its activation there (Chapter 16).

    Score per latent = (mean activation on the token) × (share of the latent's total activation that
    falls on the token). ``token_id`` must occur in ``acts``.
    """
    on = acts.ids == int(token_id)  # [N]
    if not on.any():
        raise AnatomyError(f"Token {token_id} does not occur in these vectors; pick a token of the corpus.")
    f = sae.encode(acts.vectors) if features is None else features  # [N, m]
    with torch.no_grad():
        score = f[on].mean(0) * f[on].sum(0) / f.sum(0).clamp_min(1e-9)  # [m]
    return int(score.argmax())
