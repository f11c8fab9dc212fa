"""Self-attention computed by hand from the real weights (Chapter 9), many heads and causality (Chapter 10).

One attention sub-layer, step by step, with plain tensor operations, for every family that
``anatomy.families`` describes (each family file writes its own version of these lines):

    x  = input of layer ℓ (the previous layer's output, or the embeddings)     [T, d]
    xn = norm(x)                            RMSNorm or LayerNorm (none in OLMo2)  [T, d]
    Q, K, V = xn W_q, xn W_k, xn W_v        (separate or fused matrices; split into heads)
                                                                 [H, T, hd] / [H_kv, T, hd]
    Q, K = q_norm(Q), k_norm(K)             (Qwen3, Gemma 3 per head; OLMo2 over all heads)
    Q, K = rotate(Q), rotate(K)             (RoPE: each pair of dimensions turned by position × θ_i;
                                             GPT-NeoX turns only part of each head, GPT-2 none)
    K, V shared by groups of H / H_kv query heads (grouped-query attention)
    S = Q Kᵀ · scale                        scale = 1/√hd (Gemma 2/3: 1/√query_pre_attn_scalar)
    S = cap · tanh(S / cap)                 (Gemma 2 only: soft-capping)
    S[i, j] = -inf where j > i              (causal; local layers also where i - j ≥ window)
    A = softmax(S)                          the attention weights                  [H, T, T]
    O = A V, heads concatenated, times W_O                                          [T, d]
    x + O                                   (Gemma 2/3 and OLMo2 normalize O first)

The model's own weights, for comparison, come from ``anatomy.attention_weights`` (dissect.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .families.base import apply_norm, get, rope_parameters, weight
from .lm_head import softmax_by_hand
from .tokens import Token, tokens_of

__all__ = [
    "AttentionByHand",
    "Rotary",
    "Timing",
    "attention_by_hand",
    "attention_projection",
    "rotary",
    "time_by_length",
]


@dataclass(frozen=True)
class AttentionByHand:
    """Every intermediate of one layer's attention, computed by hand (Chapter 9). H heads, H_kv K/V heads."""

    model_name: str
    layer: int
    tokens: tuple[Token, ...]  # the T tokens read
    x: torch.Tensor  # [T, d] input of the layer (residual stream)
    x_norm: torch.Tensor  # [T, d] after the norm before attention (x itself when there is none: OLMo2)
    q: torch.Tensor  # [H, T, hd] queries, before RoPE (after the q_norm of Qwen3, Gemma 3, OLMo2)
    k: torch.Tensor  # [H_kv, T, hd] keys, before RoPE (after the k_norm)
    v: torch.Tensor  # [H_kv, T, hd] values
    cos: torch.Tensor  # [T, r/2] cos(position × θ_i) for each pair i of the r rotated dimensions (r = 0: no RoPE)
    sin: torch.Tensor  # [T, r/2]
    q_rot: torch.Tensor  # [H, T, hd] queries after RoPE
    k_rot: torch.Tensor  # [H_kv, T, hd] keys after RoPE
    scale: float  # what Q Kᵀ is multiplied by
    window: int | None  # sliding window of this layer (None: sees every earlier token)
    scores: torch.Tensor  # [H, T, T] Q Kᵀ × scale, before the mask
    allowed: torch.Tensor  # [T, T] bool: may query i look at key j?
    weights: torch.Tensor  # [H, T, T] softmax of the masked scores (rows sum to 1)
    heads: torch.Tensor  # [H, T, hd] each head's weighted sum of values
    concat: torch.Tensor  # [T, H*hd] heads side by side (the input of W_O)
    attn_out: torch.Tensor  # [T, d] concat × W_Oᵀ: the attention sub-layer's output
    update: torch.Tensor  # [T, d] what is added to the residual stream (Gemma 2/3, OLMo2: normalized attn_out)
    residual: torch.Tensor  # [T, d] x + update: the residual stream after attention (a parallel-residual
    #                         layer, GPT-NeoX, adds the FFN's output to it too, computed from x)

    @property
    def n_heads(self) -> int:
        return self.q.shape[0]

    @property
    def n_kv_heads(self) -> int:
        return self.k.shape[0]

    def head(self, head: int) -> torch.Tensor:
        """One head's attention weights. Shape [T, T]: row = query token, column = key token."""
        return self.weights[_check_head(self.model_name, self.n_heads, head)]

    def kv_group(self, head: int) -> int:
        """Which K/V head query head ``head`` reads (grouped-query attention)."""
        return _check_head(self.model_name, self.n_heads, head) // (self.n_heads // self.n_kv_heads)


def _ids(model, prompt) -> torch.Tensor:
    """Token ids [1, T] of a prompt (text, or ids for models without a tokenizer)."""
    if isinstance(prompt, torch.Tensor):
        ids = prompt.reshape(1, -1).long()
        if ids.shape[1] == 0:
            raise AnatomyError("The prompt is empty: give at least one token id.")
        return ids.to(model.device)
    return run.check_prompt(model, prompt)


def _tokens(model, ids: torch.Tensor) -> tuple[Token, ...]:
    return tokens_of(model, ids[0])


def attention_projection(model, layer: int, role: str) -> torch.Tensor:
    """The weight matrix W [out, in] of one attention projection of layer ``layer`` (Chapters 10, 13).

    ``role`` is "q", "k", "v" or "o". It is read from the architecture description, so it is the
    same question on every family: a separate ``q_proj`` (Llama, Gemma), the query rows of a fused
    ``qkv_proj`` (Phi-3) or ``query_key_value`` (GPT-NeoX), or GPT-2's ``c_attn`` (stored [in, out],
    returned [out, in] like every other).
    """
    if role not in ("q", "k", "v", "o"):
        raise AnatomyError(f"Projection {role!r} is not one of 'q', 'k', 'v', 'o'.")
    i = hooks.layer_index(model, layer)
    spec = model.arch.blocks[i].attn
    w, _ = weight(get(model.layers[i], spec.path), getattr(spec, role))
    return w


def _check_head(model_name: str, n: int, head) -> int:
    """Check a 0-based head index (negative counts from the end) and return it as non-negative."""
    if not isinstance(head, int) or isinstance(head, bool) or not -n <= head < n:
        raise AnatomyError(f"Head {head!r} is out of range: {model_name} has heads 0 to {n - 1} in every layer.")
    return head % n


def _project(x: torch.Tensor, attn: torch.nn.Module, proj) -> torch.Tensor:
    """x W (+ b) for one projection, or its rows of a fused one. W is read as [out, in], hence the .T."""
    w, b = weight(attn, proj)
    y = x @ w.T
    return y + b if b is not None else y


def _cos_sin(model, layer: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of (position × θ_i) from the model's own rotary module. Each [P, r/2] (r = rotary dims)."""
    spec = model.arch.blocks[layer].attn
    if model.arch.rotary is None or spec.rotary_dim == 0:
        P = positions.numel()
        return torch.ones(P, 0), torch.zeros(P, 0)  # no RoPE (GPT-2 adds learned positions to the input)
    rope = get(model.decoder, model.arch.rotary)
    dummy = torch.zeros(1, dtype=model.dtype, device=model.device)
    pos = positions.reshape(1, -1).to(model.device)
    extra = {} if spec.rope_layer_type is None else {"layer_type": spec.rope_layer_type}  # one base per layer type
    cos, sin = rope(dummy, pos, **extra)
    half = cos.shape[-1] // 2
    return cos[0, :, :half].float(), sin[0, :, :half].float()  # HF repeats the angles: [θ, θ]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE by hand: in the first r = 2·len(θ) dimensions, i and i + r/2 form a pair, turned by position × θ_i.

    Dimensions past r (partial RoPE: GPT-NeoX, some Phi-3) pass through unchanged.
    """
    half = cos.shape[-1]
    if half == 0:
        return x
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]  # [.., T, r/2] the two coordinates of every pair
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest), dim=-1)  # [.., T, hd] a 2-D rotation per pair


@torch.no_grad()
def attention_by_hand(model, prompt, layer: int) -> AttentionByHand:
    """Recompute layer ``layer``'s self-attention for ``prompt`` from the weights, step by step (Chapter 9).

    ``prompt`` is text (or a tensor of token ids, for models without a tokenizer). Only the layer's
    input is taken from the model; everything after it is done here, following ``model.arch``.
    """
    layer = hooks.layer_index(model, layer)
    spec = model.arch.blocks[layer]
    a = spec.attn
    block = model.layers[layer]
    attn = get(block, a.path)
    ids = _ids(model, prompt)  # [1, T]
    out = run.forward(model, ids, hidden_states=True)
    x = out.hidden_states[layer][0].float()  # [T, d] what enters the layer (embeddings for layer 0)
    T = x.shape[0]
    H, H_kv, hd = a.n_heads, a.n_kv_heads, a.head_dim

    xn = apply_norm(x, spec.attn_norm, block)  # [T, d] (OLMo2 has no norm here: xn = x)
    q, k, v = (_project(xn, attn, p) for p in (a.q, a.k, a.v))  # [T, H*hd], [T, H_kv*hd], [T, H_kv*hd]
    if a.q_norm is not None and not a.qk_norm_per_head:  # OLMo2: one RMSNorm over all heads at once
        q, k = apply_norm(q, a.q_norm, attn), apply_norm(k, a.k_norm, attn)
    q = q.view(T, H, hd).transpose(0, 1)  # [H, T, hd]
    k = k.view(T, H_kv, hd).transpose(0, 1)  # [H_kv, T, hd]
    v = v.view(T, H_kv, hd).transpose(0, 1)  # [H_kv, T, hd]
    if a.q_norm is not None and a.qk_norm_per_head:  # Qwen3, Gemma 3: RMSNorm on each head's query and key
        q, k = apply_norm(q, a.q_norm, attn), apply_norm(k, a.k_norm, attn)

    cos, sin = _cos_sin(model, layer, torch.arange(T))  # [T, r/2] each
    q_rot, k_rot = _rotate(q, cos, sin), _rotate(k, cos, sin)  # [H, T, hd], [H_kv, T, hd]

    group = H // H_kv  # query heads per K/V head
    k_all = k_rot.repeat_interleave(group, dim=0)  # [H, T, hd]: head h reads K/V head h // group
    v_all = v.repeat_interleave(group, dim=0)  # [H, T, hd]

    scores = q_rot @ k_all.transpose(-1, -2) * a.scale  # [H, T, T]: query i · key j
    if a.softcap:  # Gemma 2 squashes scores into (-cap, cap)
        scores = a.softcap * torch.tanh(scores / a.softcap)

    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    allowed = j <= i  # [T, T] causal: only keys to the left (and itself)
    if a.window:
        allowed = allowed & (i - j < a.window)  # local layer: only the last `window` tokens
    weights = softmax_by_hand(scores.masked_fill(~allowed, float("-inf")))  # [H, T, T], rows sum to 1

    heads = weights @ v_all  # [H, T, hd]: weighted sum of values
    concat = heads.transpose(0, 1).reshape(T, H * hd)  # [T, H*hd]
    attn_out = _project(concat, attn, a.o)  # [T, d]: W_O mixes the heads
    update = apply_norm(attn_out, spec.post_attn_norm, block)  # [T, d] (Gemma 2/3, OLMo2 normalize it first)
    residual = x + update  # [T, d] residual connection

    return AttentionByHand(
        model.name, layer, _tokens(model, ids), x, xn, q, k, v, cos, sin, q_rot, k_rot, float(a.scale),
        int(a.window) if a.window else None, scores, allowed, weights, heads, concat, attn_out, update, residual,
    )


@dataclass(frozen=True)
class Rotary:
    """RoPE angles of one layer, read from the model's own rotary module (Chapter 9)."""

    model_name: str
    layer: int
    base: float | None  # the rope_theta of this layer
    theta: torch.Tensor  # [r/2] angle per position of each pair of rotated dimensions (radians); r = hd
    #                      unless RoPE turns only part of each head (GPT-NeoX, some Phi-3)
    cos: torch.Tensor  # [P, r/2] cos(p × θ_i) for positions p = 0..P-1
    sin: torch.Tensor  # [P, r/2]

    def rotate(self, x: torch.Tensor, position: int) -> torch.Tensor:
        """Rotate a vector [.., hd] as if it sat at ``position`` (< P)."""
        return _rotate(x, self.cos[position], self.sin[position])


@torch.no_grad()
def rotary(model, layer: int, n_positions: int = 64) -> Rotary:
    """The rotation angles RoPE uses at layer ``layer`` for positions 0..n_positions-1 (Chapter 9)."""
    layer = hooks.layer_index(model, layer)
    spec = model.arch.blocks[layer].attn
    if model.arch.rotary is None or spec.rotary_dim == 0:
        raise AnatomyError(f"{model.name} has no rotary position embedding (RoPE): it adds a learned table of positions to its input instead.")
    if not isinstance(n_positions, int) or n_positions < 2:
        raise AnatomyError(f"n_positions={n_positions!r}: ask for at least 2 positions.")
    cos, sin = _cos_sin(model, layer, torch.arange(n_positions))  # [P, hd/2]
    theta = torch.atan2(sin[1], cos[1])  # the angle of position 1 is θ_i itself
    base = rope_parameters(model.config, spec.rope_layer_type).get("rope_theta")
    return Rotary(model.name, layer, float(base) if base else None, theta, cos, sin)


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds against input length, measured at build time (Chapter 10)."""

    model_name: str
    lengths: tuple[int, ...]
    forward: tuple[float, ...]  # one forward pass of the whole model (seconds)
    attention: tuple[float, ...]  # the T×T part alone (scores, softmax, weighted sum) for all layers
    repeats: int


@torch.no_grad()
def time_by_length(model, lengths: Sequence[int] = (64, 128, 256, 512, 1024), repeats: int = 1, seed: int = 0) -> Timing:
    """Time a forward pass, and separately the quadratic part of attention, for each length (Chapter 10).

    The inputs are random token ids (the time does not depend on which tokens). The attention part
    repeats, on random tensors of the model's own sizes, what every layer does with a T×T matrix:
    Q Kᵀ, the causal mask, softmax and the weighted sum of V. The best of ``repeats`` runs is kept.
    """
    lengths = tuple(lengths)
    window = getattr(model.config, "max_position_embeddings", None)
    if not lengths or any(not isinstance(n, int) or n < 1 or (window and n > window) for n in lengths):
        raise AnatomyError(f"lengths={lengths!r}: give positive token counts up to {model.name}'s window of {window}.")
    if not isinstance(repeats, int) or repeats < 1:
        raise AnatomyError(f"repeats={repeats!r}: run each length at least once.")
    g = torch.Generator().manual_seed(seed)
    H, hd, L = model.n_heads, model.head_dim, model.n_layers
    forward, attention = [], []
    run.forward(model, torch.zeros(1, min(lengths), dtype=torch.long, device=model.device))  # warm-up, not timed
    for n in lengths:
        ids = torch.randint(0, model.vocab_size, (1, n), generator=g).to(model.device)
        q, k, v = (torch.randn(H, n, hd, generator=g).to(model.device, model.dtype) for _ in range(3))
        causal = torch.ones(n, n, dtype=torch.bool, device=model.device).tril()
        best_f = best_a = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            run.forward(model, ids, logits="last")  # logits for the last position only
            best_f = min(best_f, time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(L):  # the same T×T work as every layer does
                s = (q @ k.transpose(-1, -2)).masked_fill(~causal, float("-inf"))  # [H, T, T]
                torch.softmax(s, dim=-1) @ v  # [H, T, hd]
            best_a = min(best_a, time.perf_counter() - t)
        forward.append(best_f)
        attention.append(best_a)
    return Timing(model.name, lengths, tuple(forward), tuple(attention), repeats)
