"""Sparse autoencoders: one layer's vectors written as a few directions out of many (Chapter 16).

The lecture's notes ask for a set of "function vectors" v_1..v_K such that each residual vector of a
layer is a sum of a few of them plus a small error, x_n ≈ Σ_k α_k^n v_k + e_n, with the loss

    L = Σ_n ‖e_n‖² + λ Σ_n Σ_k |α_k^n|

(reconstruction plus an L1 sparsity term). A sparse autoencoder learns both at once: the encoder
computes the coefficients α = ReLU(W_enc (x - b_dec) + b_enc), the decoder's columns are the v_k
(kept at unit length, so that λ cannot be dodged by shrinking α and growing v), and x̂ = W_dec α + b_dec.

    acts = residual_vectors(model, texts, layer)          # [N, d] one vector per token
    sae = train_sae(acts, n_latents=4 * model.d_model)    # seeded, a few seconds on a CPU
    saes = train_saes(acts, m, l1s=(1, 2), ks=(16,))      # several at once, for a frontier
    sae_frontier(model, dev, saes, train=acts, held_out=dev_acts)  # L0, FVE, loss recovered of each
    sae_metrics(sae, held, mean=acts.mean)                # FVE, mean L0, dead latents (held-out)
    spliced_losses(model, held_out, sae, acts.mean)       # next-token loss: clean / SAE / mean vector
    feature_gallery(model, sae, acts, random_latents(sae, 12))  # top contexts, tokens promoted
    ablate_latent(model, texts, sae, acts, latent)        # causal test against matched controls
    basis_stats(acts.neurons, acts, "neurons")            # the neuron basis on the same criteria
"""

from __future__ import annotations

import dataclasses
import html
import numbers
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .lm_head import logits_from_hidden
from .show import Table
from .tokens import Token, readable, tokens_of

__all__ = ["AblationLosses", "Activations", "BasisStats", "FeatureGallery", "FeaturePage", "FrontierPoint", "LatentAblation",
           "SAEFrontier", "SAEMetrics", "SparseAutoencoder", "SplicedLosses", "ablate_latent", "ablation_losses", "basis_stats",
           "basis_table", "feature_gallery", "feature_page", "l0", "metrics_table", "next_token_loss",
           "promoted_ids", "random_latents", "residual_vectors", "sae_frontier", "sae_metrics", "spliced_losses",
           "train_sae", "train_saes"]


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
    neurons: torch.Tensor | None = None  # [N, d_ff] the layer's FFN neuron activations, when asked for

    def select(self, keep: torch.Tensor) -> Activations:
        """The same record for the rows where ``keep`` ([N] bool) is True, e.g. ``acts.select(acts.position >= 4)``."""
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != (len(self.tokens),):
            raise AnatomyError(f"select takes one True/False per vector ([{len(self.tokens)}] bool), e.g. acts.position >= 4.")
        rows = keep.nonzero()[:, 0].tolist()
        return Activations(self.model_name, self.layer, self.vectors[keep], self.text_index[keep], self.position[keep],
                           self.ids[keep], tuple(self.tokens[k] for k in rows), tuple(self.contexts[k] for k in rows),
                           None if self.neurons is None else self.neurons[keep])

    @property
    def mean(self) -> torch.Tensor:
        """The mean vector: the baseline every reconstruction must beat. Shape [d]."""
        return self.vectors.mean(0)


def _texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise AnatomyError(f"{what} must be a non-empty list of non-empty texts, e.g. anatomy.book_text('en').")
    return list(texts)


@torch.no_grad()
def residual_vectors(model, texts, layer: int, *, max_tokens: int = 32, skip: int = SKIP, batch_size: int = 32,
                     neurons: bool = False) -> Activations:
    """The output of ``layer`` at every token of ``texts`` (each cut at ``max_tokens``), in batches (Chapter 16).

    ``neurons=True`` also keeps the layer's FFN neuron activations (``layers.N.mlp.neurons``) from
    the same pass, to compare the neuron basis with the SAE's latents.

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
    vectors, where, pos, tok_ids, contexts, units = [], [], [], [], [], []
    places = (f"layers.{layer}.mlp.neurons",) if neurons else ()
    for idx, batch in run.batches(model, texts, batch_size, max_tokens=max_tokens):
        with hooks.capture(model, *places) as seen:
            h = run.run_to(model, batch, f"layers.{layer}").float().cpu()  # [B, T, d]: the pass stops after the layer
        u = seen[places[0]].float().cpu() if neurons else None  # [B, T, d_ff]
        for b, i in enumerate(idx):
            row = batch.ids[b, :int(batch.lengths[b])].tolist()
            for t in range(skip, len(row)):
                if row[t] in special:
                    continue
                vectors.append(h[b, t])
                if neurons:
                    units.append(u[b, t])
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
                       tuple(contexts[k] for k in order),
                       torch.stack([units[k] for k in order]) if neurons else None)  # [N, d_ff]


# --- the autoencoder ----------------------------------------------------------------------------
class SparseAutoencoder(torch.nn.Module):
    """x ≈ W_dec · ReLU(W_enc (x - b_dec) + b_enc) + b_dec, with unit-norm decoder columns (Chapter 16).

    Works on residual vectors divided by ``scale`` (a number fixed from the training data so that the
    typical vector has length √d); ``encode`` and ``decode`` take and return residual-stream units.
    With ``k`` set it is a TopK SAE (Gao et al. 2024): only the ``k`` largest coefficients of each
    vector are kept, so L0 ≤ k by construction and no L1 term is needed.
    """

    def __init__(self, d: int, n_latents: int, *, scale: float = 1.0, seed: int = 0, model_name: str = "", layer: int = -1,
                 k: int | None = None, l1: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, n_latents, generator=g)
        w = w / w.norm(dim=0, keepdim=True)  # [d, m]: column k is latent k's direction
        self.W_dec = torch.nn.Parameter(w.clone())  # [d, m]
        self.W_enc = torch.nn.Parameter(w.T.clone())  # [m, d] starts as the decoder's transpose
        self.b_enc = torch.nn.Parameter(torch.zeros(n_latents))  # [m]
        self.b_dec = torch.nn.Parameter(torch.zeros(d))  # [d]
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.model_name, self.layer, self.k, self.l1 = model_name, layer, k, float(l1)

    def extra_repr(self) -> str:
        rule = f"k={self.k}" if self.k else f"l1={self.l1:g}"
        return f"d={self.W_dec.shape[0]}, n_latents={self.n_latents}, {rule}, model={self.model_name!r}, layer={self.layer}"

    @property
    def n_latents(self) -> int:
        return self.W_dec.shape[1]

    @property
    def label(self) -> str:
        """How the SAE was made sparse: "λ = 2" (L1) or "TopK k = 32"."""
        return f"TopK k = {self.k}" if self.k else f"L1 λ = {self.l1:g}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The coefficients α of each vector: [..., d] -> [..., m], zero for most latents."""
        return _sparsify(torch.relu((x / self.scale - self.b_dec) @ self.W_enc.T + self.b_enc), self.k)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Σ_k α_k v_k + b_dec, back in residual units: [..., m] -> [..., d]."""
        return (f @ self.W_dec.T + self.b_dec) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def direction(self, latent: int) -> torch.Tensor:
        """Latent ``latent``'s decoder column, a unit vector in the residual stream. Shape [d]."""
        return self.W_dec[:, _latent(self, latent)].detach().clone()


def _sparsify(f: torch.Tensor, k: int | None) -> torch.Tensor:
    """f [..., m] with all but its ``k`` largest entries set to 0 (TopK); f itself when k is None."""
    if not k or k >= f.shape[-1]:
        return f
    top = f.topk(k, dim=-1)
    return torch.zeros_like(f).scatter(-1, top.indices, top.values)


def _latent(sae: SparseAutoencoder, latent) -> int:
    if isinstance(latent, bool) or not isinstance(latent, numbers.Integral) or not 0 <= int(latent) < sae.n_latents:
        raise AnatomyError(f"Latent {latent!r} is out of range: this SAE has latents 0 to {sae.n_latents - 1}.")
    return int(latent)


def train_sae(acts: Activations, n_latents: int, *, l1: float = 2.0, k: int | None = None, steps: int = 2000,
              batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> SparseAutoencoder:
    """Train a sparse autoencoder on ``acts.vectors``: Adam on reconstruction + ``l1`` × Σ|α| (Chapter 16).

    Seeded (initial weights and the order of the batches), on the CPU. After each step the decoder
    columns are set back to unit length. With ``k`` it is a TopK SAE (the ``l1`` term is then 0).
    """
    kw = {"ks": (k,)} if k else {"l1s": (l1,)}
    return train_saes(acts, n_latents, steps=steps, batch_size=batch_size, lr=lr, seed=seed, **kw)[0]


def train_saes(acts: Activations, n_latents: int, *, l1s=(), ks=(), steps: int = 2000, batch_size: int = 256,
               lr: float = 1e-3, seed: int = 0) -> tuple[SparseAutoencoder, ...]:
    """Train several SAEs at once, one per ``l1s`` value (L1) and one per ``ks`` value (TopK) (Chapter 16).

    They share the initial weights (from ``seed``) and every batch, and their weights are stacked
    so that one matrix product serves them all; each SAE's loss reads only its own weights, so each
    trains exactly as it would alone. Returns the L1 SAEs, then the TopK ones, in the order given.
    """
    if not isinstance(acts, Activations):
        raise AnatomyError("train_sae needs the vectors of residual_vectors(model, texts, layer).")
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise AnatomyError(f"n_latents={n_latents!r} is not allowed: use a positive integer, e.g. 4 * model.d_model.")
    rules = [(float(v), None) for v in l1s] + [(0.0, k) for k in ks]
    if not rules or any(v < 0 for v, _ in rules) or any(isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= n_latents
                                                         for _, k in rules if k is not None):
        raise AnatomyError(f"l1s={tuple(l1s)!r}, ks={tuple(ks)!r}: give at least one λ ≥ 0 or one k between 1 and n_latents.")
    x = acts.vectors.float()  # [N, d]
    scale = float(x.norm(dim=1).mean()) / x.shape[1] ** 0.5  # so the typical vector has length √d
    saes = [SparseAutoencoder(x.shape[1], n_latents, scale=scale, seed=seed, model_name=acts.model_name,
                              layer=acts.layer, k=k, l1=v) for v, k in rules]
    x = x / scale
    P = len(saes)
    W_enc = torch.nn.Parameter(torch.stack([s.W_enc.detach() for s in saes]))  # [P, m, d]
    W_dec = torch.nn.Parameter(torch.stack([s.W_dec.detach() for s in saes]))  # [P, d, m]
    b_enc = torch.nn.Parameter(torch.zeros(P, n_latents))  # [P, m]
    b_dec = torch.nn.Parameter(x.mean(0).repeat(P, 1))  # [P, d] start from the mean vector
    lam = torch.tensor([v for v, _ in rules])  # [P]
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = x[torch.randint(len(x), (batch_size,), generator=g)]  # [B, d]
        pre = torch.relu(torch.baddbmm(b_enc[:, None], batch[None] - b_dec[:, None], W_enc.transpose(1, 2)))  # [P, B, m]
        f = torch.stack([_sparsify(pre[p], k) for p, (_, k) in enumerate(rules)])  # [P, B, m] the coefficients α
        x_hat = torch.baddbmm(b_dec[:, None], f, W_dec.transpose(1, 2))  # [P, B, d]
        per = ((x_hat - batch) ** 2).sum(-1).mean(-1) + lam * f.sum(-1).mean(-1)  # [P] ‖e‖² + λ Σ|α| (α ≥ 0)
        opt.zero_grad()
        per.sum().backward()  # the SAEs share no weight: each gets the gradient of its own loss
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)  # unit-norm columns
    with torch.no_grad():
        for p, s in enumerate(saes):
            s.W_enc.copy_(W_enc[p]), s.W_dec.copy_(W_dec[p]), s.b_enc.copy_(b_enc[p]), s.b_dec.copy_(b_dec[p])
    return tuple(s.eval().requires_grad_(False) for s in saes)


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
    data: str = ""  # which vectors: "training", "held-out"...
    n_vectors: int = 0

    def table(self) -> Table:
        return metrics_table(self)


def metrics_table(*metrics: SAEMetrics) -> Table:
    """Several SAEMetrics side by side, one row each (e.g. on the training and on the held-out vectors)."""
    return Table(("model", "layer", "latents", "vectors", "fraction of variance explained", "mean L0", "latents never active"),
                 tuple((m.model_name, m.layer, m.n_latents, f"{m.n_vectors:,} ({m.data})" if m.data else f"{m.n_vectors:,}",
                        round(m.fve, 3), round(m.mean_l0, 1), m.dead) for m in metrics))


@torch.no_grad()
def sae_metrics(sae: SparseAutoencoder, acts: Activations, *, mean: torch.Tensor | None = None, data: str = "") -> SAEMetrics:
    """Fraction of variance explained, mean L0 and dead latents of ``sae`` on ``acts`` (Chapter 16).

    The FVE compares the SAE's error with the error of always answering ``mean`` ([d]; by default
    the mean of ``acts`` itself). On held-out vectors pass the training mean: the baseline then
    knows no more than the SAE did. ``data`` names the vectors in the table ("held-out").
    """
    x = acts.vectors.float()  # [N, d]
    base = x.mean(0) if mean is None else mean.float()  # [d]
    f = sae.encode(x)  # [N, m]
    err = ((sae.decode(f) - x) ** 2).sum()
    total = ((x - base) ** 2).sum()
    frequency = (f > 0).float().mean(0)  # [m]
    return SAEMetrics(acts.model_name, acts.layer, sae.n_latents, float(1 - err / total), float((f > 0).sum(1).float().mean()),
                      int((frequency == 0).sum()), frequency, data, len(x))


_LOSS_ROWS = 256  # rows of logits computed at once by next_token_loss (256 x 262,144 floats: 268 MB)


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
        keep = mask[:, skip + 1:].bool()  # [B, T-1-skip]: the predictions of tokens skip+1..T-1 that count
        if replace is None:
            h = run.run_to(model, batch)  # final-norm vectors [B, T, d]
        else:
            with hooks.edit(model, f"layers.{layer}", splice):
                h = run.run_to(model, batch)
        h, targets = h[:, skip:-1][keep], ids[:, skip + 1:][keep]  # [N, d], [N]: only the rows that count
        for i in range(0, len(h), _LOSS_ROWS):  # the LM head a few rows at a time: never [B, T, V] at once
            logits = run.head(model, h[i:i + _LOSS_ROWS]).float()  # [n, V]
            nll = logits.logsumexp(-1) - logits.gather(-1, targets[i:i + _LOSS_ROWS, None])[:, 0]
            total += float(nll.sum())
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
    clean, rebuilt, flat = _losses(model, texts, sae.layer, (sae, lambda h: mean.to(h.dtype).expand_as(h)), **kw)
    return SplicedLosses(model.name, sae.layer, clean, rebuilt, flat)


@torch.no_grad()
def _losses(model, texts, layer: int, replaces, *, max_tokens: int = 32, skip: int = SKIP, batch_size: int = 16):
    """Next-token loss on ``texts``: clean, then with each of ``replaces`` applied to layer ``layer``'s output.

    One pass per batch runs the layers up to ``layer`` once (``run.pause``); each replacement then
    runs only the layers after it (``run.resume``). Returns (clean, loss with replaces[0], ...).
    """
    layer = hooks.layer_index(model, layer)
    texts = _texts(texts)
    if layer == model.n_layers - 1:  # nothing after the layer to resume: splice with a hook
        return tuple(next_token_loss(model, texts, layer, r, max_tokens=max_tokens, skip=skip, batch_size=batch_size)
                     for r in (None, *replaces))
    totals, count = [0.0] * (1 + len(replaces)), 0
    for _, batch in run.batches(model, texts, batch_size, max_tokens=max_tokens):
        p = run.pause(model, batch, layer + 1)  # p.hidden [B, T, d]: the output of `layer`
        finals = [p.final]
        for r in replaces:
            h = p.hidden.clone()
            h[:, skip:] = r(h[:, skip:].float()).to(h.dtype)
            finals.append(run.resume(model, dataclasses.replace(p, hidden=h)))  # [B, T, d] after the final norm
        ids, keep = batch.ids[:, skip + 1:], batch.mask[:, skip + 1:].bool()  # the tokens predicted from position skip on
        for n, f in enumerate(finals):
            logp = torch.log_softmax(run.head(model, f[:, skip:-1]).float(), -1)  # [B, T-1-skip, V]
            totals[n] += float(-logp.gather(-1, ids[..., None])[..., 0][keep].sum())
        count += int(keep.sum())
    if count == 0:
        raise AnatomyError(f"The texts have no tokens to predict after position {skip}; give longer texts.")
    return tuple(t / count for t in totals)


# --- the sparsity-fidelity frontier ---------------------------------------------------------------
@dataclass(frozen=True)
class FrontierPoint:
    """One SAE of a frontier: how sparse (L0) and how faithful (FVE, loss recovered) on unseen text (Chapter 16)."""

    label: str  # "L1 λ = 2" or "TopK k = 32"
    l1: float
    k: int | None
    mean_l0: float  # on the unseen text
    fve: float  # on the unseen text, against the training mean
    train_fve: float
    dead: int  # latents never active on the training vectors
    loss: float  # next-token loss on the unseen text with the SAE spliced in
    recovered: float  # share of the mean vector's loss increase that the SAE gets back


@dataclass(frozen=True)
class SAEFrontier:
    """SAEs of one layer trained with different sparsity, measured on the same unseen text (Chapter 16)."""

    model_name: str
    layer: int
    n_latents: int
    clean: float  # next-token loss on the unseen text, the model as it is
    mean_vector: float  # ... with the layer's output replaced by the training mean
    points: tuple[FrontierPoint, ...]

    def point(self, label: str) -> FrontierPoint:
        """The point with this label, e.g. frontier.point("L1 λ = 2")."""
        for q in self.points:
            if q.label == label:
                return q
        raise AnatomyError(f"No point {label!r} on this frontier: it has {', '.join(q.label for q in self.points)}.")

    def table(self) -> Table:
        return Table(("SAE", "mean L0", "FVE (unseen text)", "FVE (training)", "dead latents", "loss", "loss recovered"),
                     tuple((q.label, round(q.mean_l0, 1), round(q.fve, 3), round(q.train_fve, 3), q.dead, round(q.loss, 3),
                            round(q.recovered, 3)) for q in self.points),
                     caption=f"{self.model_name}, layer {self.layer}, {self.n_latents} latents; loss on unseen text: clean "
                             f"{self.clean:.3f}, mean vector {self.mean_vector:.3f}")


def sae_frontier(model, texts, saes, *, train: Activations, held_out: Activations, **kw) -> SAEFrontier:
    """Each SAE's L0, FVE and loss recovered on unseen ``texts`` (whose vectors are ``held_out``) (Chapter 16).

    Choose among SAEs on development text, and report the chosen one on other held-out text.

    The losses share one pass up to the layer per batch; only the layers after it run once per SAE.
    """
    saes = tuple(saes)
    if not saes or any(not isinstance(s, SparseAutoencoder) or s.layer != held_out.layer for s in saes):
        raise AnatomyError("sae_frontier needs SAEs (train_saes) of the layer the held-out vectors come from.")
    mean = train.mean
    clean, *spliced, flat = _losses(model, texts, held_out.layer, (*saes, lambda h: mean.to(h.dtype).expand_as(h)), **kw)
    points = []
    for s, loss in zip(saes, spliced):
        test, fit = sae_metrics(s, held_out, mean=mean), sae_metrics(s, train)
        points.append(FrontierPoint(s.label, s.l1, s.k, test.mean_l0, test.fve, fit.fve, fit.dead, loss,
                                    (flat - loss) / (flat - clean)))
    return SAEFrontier(model.name, held_out.layer, saes[0].n_latents, clean, flat, tuple(points))


# --- a basis, judged: how sparse, how consistent its top contexts -------------------------------
@dataclass(frozen=True)
class BasisStats:
    """How a basis (SAE latents, or the layer's neurons) writes the corpus' tokens (Chapter 16).

    ``top_share[u]``: of unit u's ``k`` strongest contexts, the share that end at the same token
    (the most common one among them); 1/k at worst, 1 when all do. NaN for a unit active on fewer
    than k tokens (not judged).
    """

    name: str
    n_units: int
    k: int
    positive_share: float  # mean share of the units with activation > 0 on a token
    mass90_share: float  # mean share of the units needed to carry 90% of a token's Σ|activation|
    top_share: torch.Tensor  # [u]
    top_token: torch.Tensor  # [u] the most common token ID among the top contexts

    @property
    def alive(self) -> torch.Tensor:
        """[u] True for the units judged: active (> 0) on at least ``k`` tokens."""
        return ~self.top_share.isnan()

    def single_token(self, threshold: float = 0.75) -> torch.Tensor:
        """[u] True where at least ``threshold`` of the top contexts end at one token."""
        return self.top_share >= threshold

    @property
    def single_token_share(self) -> float:
        """The share of the judged units that look single-token (≥ 75% of the top contexts on one token)."""
        return float(self.single_token()[self.alive].float().mean())

    def table(self) -> Table:
        return basis_table(self)


def basis_table(*stats: BasisStats) -> Table:
    """Several BasisStats side by side, one row each."""
    return Table(("basis", "units", "units > 0 per token", "units carrying 90% of |activation|",
                  "top contexts on one token (mean share)", "single-token units (≥ 75%)"),
                 tuple((b.name, b.n_units, f"{b.positive_share:.1%}", f"{b.mass90_share:.1%}",
                        f"{float(b.top_share[b.alive].mean()):.2f}", f"{b.single_token_share:.0%}") for b in stats),
                 caption=f"top contexts: the {stats[0].k} tokens of the corpus where each unit is largest")


@torch.no_grad()
def basis_stats(values: torch.Tensor, acts: Activations, name: str, k: int = 8) -> BasisStats:
    """Sparsity and top-context consistency of a basis: ``values`` [N, u] on the tokens of ``acts`` (Chapter 16).

    ``values`` is ``sae.encode(acts.vectors)`` for an SAE, ``acts.neurons`` for the neurons.
    """
    if not isinstance(values, torch.Tensor) or values.ndim != 2 or values.shape[0] != len(acts.ids):
        raise AnatomyError(f"values must be one row per vector of acts ([{len(acts.ids)}, units]), e.g. sae.encode(acts.vectors).")
    v = values.float()
    mag = v.abs().sort(-1, descending=True).values  # [N, u]
    need = (mag.cumsum(-1) < 0.9 * mag.sum(-1, keepdim=True)).sum(-1) + 1  # [N] units to reach 90% of Σ|a|
    top = v.topk(min(k, len(v)), dim=0)  # values, indices [k, u]
    tok = acts.ids[top.indices]  # [k, u]
    mode = tok.mode(0).values  # [u]
    share = (tok == mode).float().mean(0)  # [u]
    share[(top.values > 0).sum(0) < top.values.shape[0]] = float("nan")  # active on fewer than k tokens: not judged
    share[top.values[0] <= 0] = float("nan")
    return BasisStats(name, v.shape[1], top.values.shape[0], float((v > 0).float().mean()),
                      float(need.float().mean()) / v.shape[1], share, mode)


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
    highlights: tuple[tuple[tuple[str, float], ...], ...] = ()  # per top context: (token, the latent's activation) for its tokens

    @property
    def top_share(self) -> float:
        """The share of the top contexts that end at the most common token among them (1 = all at one token)."""
        ends = [t for t, _, _ in self.top]
        return max(ends.count(t) for t in ends) / len(ends) if ends else float("nan")

    def table(self) -> Table:
        rows = tuple((c, t, round(a, 2)) for t, c, a in self.top)
        return Table((f"latent {self.latent}: context (ends at the token)", "token", "activation"), rows,
                     caption=f"{self.model_name}, layer {self.layer}, active on {100 * self.frequency:.2g}% of tokens; "
                             f"promotes: {' '.join(self.promoted)}")

    def _repr_html_(self) -> str:
        return FeatureGallery((self,))._repr_html_()


@dataclass(frozen=True)
class FeatureGallery:
    """Feature pages shown as cards: each top context with every token shaded by the latent's activation (Chapter 16)."""

    pages: tuple[FeaturePage, ...]

    def _repr_html_(self) -> str:
        esc = lambda v: html.escape(str(v), quote=True)  # noqa: E731
        cards = []
        for p in self.pages:
            peak = max((a for _, _, a in p.top), default=0.0) or 1.0
            lines = []
            for (tok, context, a), row in zip(p.top, p.highlights):
                spans = "".join(
                    f'<span style="background:rgba(255,140,0,{min(1.0, max(0.0, v / peak)):.2f});color:#000" '
                    f'title="{v:.2f}">{esc(t)}</span>' for t, v in row)
                lines.append(f"<li><code>{spans}</code> <small>{a:.2f} · reads: {esc(context)}</small></li>")
            cards.append(
                f'<div class="anatomy-feature" style="background:#fff;color:#000;border:1px solid #bbb;border-radius:4px;'
                f'padding:2px 10px;margin:8px 0"><p><b>latent {p.latent}</b> · active on {100 * p.frequency:.2g}% of tokens · '
                f"top contexts ending at one token: {p.top_share:.0%}<br>promotes: <code>{esc(' '.join(p.promoted))}</code></p>"
                f"<ol>{''.join(lines)}</ol></div>")
        return f'<div class="anatomy-gallery">{"".join(cards)}</div>'

    def __str__(self) -> str:
        return "\n\n".join(str(p.table()) for p in self.pages)

    __repr__ = __str__


@torch.no_grad()
def promoted_ids(model, sae: SparseAutoencoder, latent: int, k: int = 8) -> torch.Tensor:
    """The ``k`` token IDs that latent ``latent``'s decoder column pushes up most through final norm and LM head. Shape [k]."""
    v = sae.direction(latent).to(device=model.device, dtype=model.dtype)  # [d]
    if model.final_norm is not None:
        v = model.final_norm(v[None, None])[0, 0]
    return logits_from_hidden(model, v).topk(k).indices.cpu()  # [k]


@torch.no_grad()
def feature_page(model, sae: SparseAutoencoder, acts: Activations, latent: int, k: int = 8, *,
                 features: torch.Tensor | None = None, width: int = 8) -> FeaturePage:
    """Top-``k`` contexts of one latent over ``acts`` and the tokens its decoder column promotes (Chapter 16).

    ``features`` ([N, m], ``sae.encode(acts.vectors)``) can be passed to avoid encoding again. Each
    top context also comes with its last ``width`` tokens and the latent's activation on each.
    """
    latent = _latent(sae, latent)
    a = (sae.encode(acts.vectors) if features is None else features)[:, latent]  # [N]
    top = a.topk(min(k, len(a)))
    promoted = tuple(readable(model.tokenizer, i) for i in promoted_ids(model, sae, latent, k).tolist())
    rows = top.indices.tolist()
    return FeaturePage(model.name, acts.layer, latent, float((a > 0).float().mean()),
                       tuple((acts.tokens[j].text, acts.contexts[j], float(a[j])) for j in rows), promoted,
                       tuple(_window(acts, a, j, width) for j in rows))


def _window(acts: Activations, a: torch.Tensor, j: int, width: int) -> tuple[tuple[str, float], ...]:
    """The tokens of vector j's text up to it (at most ``width``, only kept positions), with a's value on each."""
    first = j
    while first > 0 and j - first + 1 < width and acts.text_index[first - 1] == acts.text_index[j]:
        first -= 1
    return tuple((acts.tokens[n].text, float(a[n])) for n in range(first, j + 1))


def feature_gallery(model, sae: SparseAutoencoder, acts: Activations, latents, k: int = 8, *,
                    features: torch.Tensor | None = None) -> FeatureGallery:
    """Feature pages of several latents, shown as cards with per-token shading (Chapter 16)."""
    f = sae.encode(acts.vectors) if features is None else features  # [N, m]
    return FeatureGallery(tuple(feature_page(model, sae, acts, int(j), k, features=f) for j in latents))


def random_latents(sae: SparseAutoencoder, n: int, *, seed: int = 0, among: torch.Tensor | None = None) -> tuple[int, ...]:
    """``n`` latents drawn at random (seeded), in increasing order; ``among`` ([m] bool) restricts the draw (Chapter 16)."""
    pool = torch.arange(sae.n_latents) if among is None else among.nonzero()[:, 0]
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(pool):
        raise AnatomyError(f"Cannot draw {n!r} latents from {len(pool)}: ask for between 1 and {len(pool)}.")
    g = torch.Generator().manual_seed(seed)
    return tuple(sorted(pool[torch.randperm(len(pool), generator=g)[:n]].tolist()))


# --- a causal test of a latent --------------------------------------------------------------------
@dataclass(frozen=True)
class LatentAblation:
    """What removing one latent does to the tokens it promotes, against matched controls (Chapter 16).

    At the ``contexts`` positions where the latent is largest, its term a·v is removed from the
    layer's output, and the mean log-probability of its ``promoted`` tokens is read at the same
    position. A control removes the same amount a along the direction of another latent active at
    that position (one drawn at random per position and per control, seeded).
    """

    model_name: str
    layer: int
    latent: int
    promoted: tuple[str, ...]
    contexts: int
    change: float  # mean change of the promoted tokens' log-probability (negative: lowered)
    control_changes: torch.Tensor  # [controls] the same, for each control

    @property
    def beats(self) -> float:
        """The share of the controls that lower the promoted tokens less than the latent does."""
        return float((self.control_changes > self.change).float().mean())


@torch.no_grad()
def ablate_latent(model, texts, sae: SparseAutoencoder, acts: Activations, latent: int, *, contexts: int = 8,
                  promoted: int = 8, controls: int = 16, seed: int = 0, features: torch.Tensor | None = None,
                  max_tokens: int = 32) -> LatentAblation:
    """Remove ``latent`` where it fires most and measure its promoted tokens, against matched controls (Chapter 16).

    ``texts`` are the texts ``acts`` was collected from (same ``max_tokens``). Only the latent's
    position is edited and read: with causal attention the tokens before it are unchanged, so
    their keys and values are computed once (the model's cache) and each edit runs one token,
    the clean run and all the edits side by side as one batch.
    """
    latent = _latent(sae, latent)
    f = sae.encode(acts.vectors) if features is None else features  # [N, m]
    a = f[:, latent]
    rows = a.topk(min(contexts, int((a > 0).sum()))).indices.tolist()
    if not rows:
        raise AnatomyError(f"Latent {latent} is never active on these vectors; pick a live latent.")
    texts = _texts(texts)
    ids = promoted_ids(model, sae, latent, promoted).tolist()
    g = torch.Generator().manual_seed(seed)
    changes = torch.zeros(len(rows), 1 + controls)  # [B, 1 + controls]
    for r, j in enumerate(rows):
        tokens = model.tokenizer(texts[int(acts.text_index[j])], return_tensors="pt")["input_ids"][0, :max_tokens]
        t = int(acts.position[j])
        if t >= len(tokens) or int(tokens[t]) != int(acts.ids[j]):
            raise AnatomyError("These texts are not the ones acts was collected from; pass the same texts and max_tokens.")
        others = (f[j] > 0).nonzero()[:, 0]
        others = others[others != latent] if (others != latent).any() else torch.arange(sae.n_latents)
        picks = [latent] + others[torch.randint(len(others), (controls,), generator=g)].tolist()
        remove = torch.cat([torch.zeros(1, sae.W_dec.shape[0]), (a[j] * sae.scale) * sae.W_dec[:, picks].T])  # [2+R, d]
        n = len(remove)  # row 0: clean; row 1: the latent removed; rows 2..: the controls
        cache = None
        if t > 0:
            cache = run.forward(model, tokens[None, :t].to(model.device), keep=True).past_key_values
            cache.batch_repeat_interleave(n)

        def edit(h):  # h [n, 1, d]: the layer's output at position t, one row per edit
            return h - remove[:, None].to(h)

        with hooks.edit(model, f"layers.{acts.layer}", edit):
            logits = run.forward(model, tokens[t].repeat(n, 1).to(model.device), past=cache).logits[:, -1]
        logp = torch.log_softmax(logits.float().cpu(), -1)[:, ids].mean(-1)  # [n]
        changes[r] = logp[1:] - logp[0]
    return LatentAblation(model.name, acts.layer, latent, tuple(readable(model.tokenizer, i) for i in ids), len(rows),
                          float(changes[:, 0].mean()), changes[:, 1:].mean(0))


@dataclass(frozen=True)
class AblationLosses:
    """The general-loss check of latent ablations: next-token loss on ordinary text, clean and with each latent removed (Chapter 16)."""

    model_name: str
    layer: int
    clean: float
    ablated: dict  # latent -> loss with that latent removed at every position where it fires

    @property
    def largest_change(self) -> float:
        """The largest change of the loss (up or down, in absolute value) over the latents ablated, in nats."""
        return max(abs(v - self.clean) for v in self.ablated.values())


def ablation_losses(model, texts, sae: SparseAutoencoder, latents, **kw) -> AblationLosses:
    """Next-token loss on ``texts`` with each of ``latents`` removed wherever it fires (its term a·v subtracted) (Chapter 16).

    One pass up to the layer per batch, then the layers after it once per latent.
    """
    latents = [_latent(sae, j) for j in latents]

    def without(j):
        def replace(h):  # h [..., d]: the layer's output with latent j's term removed
            return h - sae.encode(h)[..., j:j + 1] * sae.W_dec[:, j] * sae.scale
        return replace

    clean, *losses = _losses(model, texts, sae.layer, [without(j) for j in latents], **kw)
    return AblationLosses(model.name, sae.layer, clean, dict(zip(latents, losses)))
