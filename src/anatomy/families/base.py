"""The standard description of a decoder-only transformer: what each family file fills in.

One ``Arch`` per loaded model, resolved once by ``anatomy.families.describe`` (nnterp /
TransformerLens style). Module paths are relative: a layer's parts to the layer module
(``model.layers[i]``), the decoder's parts to the decoder. Everything downstream (hooks, the
by-hand attention and FFN, dissect, the LM head, steering) reads only this description.

A block, in the notation every family file uses (nanoGPT style)::

    h   = x + post_attn_norm(attn(attn_norm(x)))          # sequential residual
    out = h + post_ffn_norm(ffn(ffn_norm(h)))
    out = x + attn(attn_norm(x)) + ffn(ffn_norm(x))         # parallel residual (GPT-NeoX)

A missing norm (None) is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Kinds of norm. "rms": x / rms(x) * w;  "rms_1p": x / rms(x) * (1 + w) (Gemma stores w - 1);
#: "layer": (x - mean) / std * w + b (LayerNorm).
NORM_KINDS = ("rms", "rms_1p", "layer")


@dataclass(frozen=True)
class Norm:
    path: str  # e.g. "input_layernorm"
    kind: str  # one of NORM_KINDS
    eps: float


@dataclass(frozen=True)
class Proj:
    """One linear map y = x Wᵀ + b, or the rows of a fused one that belong to it.

    ``rows`` lists (start, stop) segments of the fused output (None: the whole output).
    ``conv1d`` marks GPT-2's Conv1D, which stores W as [in, out] instead of nn.Linear's [out, in].
    """

    path: str
    rows: tuple[tuple[int, int], ...] | None = None
    conv1d: bool = False


def blocks(sizes: tuple[int, ...], which: int) -> tuple[tuple[int, int], ...]:
    """Rows of part ``which`` of an output made of consecutive blocks ([q | k | v], [gate | up])."""
    start = sum(sizes[:which])
    return ((start, start + sizes[which]),)


def per_head(n_heads: int, head_dim: int, n_parts: int, which: int) -> tuple[tuple[int, int], ...]:
    """Rows of part ``which`` when each head's parts sit together ([q_h k_h v_h] for h = 0..H-1)."""
    step = n_parts * head_dim
    return tuple((h * step + which * head_dim, h * step + (which + 1) * head_dim) for h in range(n_heads))


@dataclass(frozen=True)
class SelfAttention:
    """One self-attention sub-layer: where its projections sit and how it scores (not ``anatomy.Attention``, the weights it computed)."""

    path: str  # the attention module, relative to the layer
    q: Proj
    k: Proj
    v: Proj
    o: Proj
    n_heads: int
    n_kv_heads: int
    head_dim: int
    scale: float  # what Q Kᵀ is multiplied by
    q_norm: Norm | None = None  # a norm on the queries (and keys), relative to the attention module
    k_norm: Norm | None = None
    qk_norm_per_head: bool = True  # True: over each head's hd numbers; False: over all H*hd (OLMo2)
    rotary_dim: int = 0  # dimensions of each head turned by RoPE (0: no RoPE; < head_dim: partial)
    rope_layer_type: str | None = None  # passed to the rotary module when it has one base per layer type
    softcap: float | None = None  # scores -> cap * tanh(scores / cap)
    window: int | None = None  # a local layer sees only the last `window` tokens


@dataclass(frozen=True)
class FFN:
    path: str  # the feed-forward module, relative to the layer
    up: Proj
    down: Proj
    activation: str  # "silu", "gelu_tanh", "gelu" or "relu"
    gate: Proj | None = None  # None: classic FFN act(x W_up + b) W_down + b


@dataclass(frozen=True)
class Layer:
    attn: SelfAttention
    ffn: FFN
    attn_norm: Norm | None  # before attention
    ffn_norm: Norm | None  # before the FFN
    post_attn_norm: Norm | None = None  # on the attention output, before the residual add
    post_ffn_norm: Norm | None = None  # on the FFN output, before the residual add
    parallel: bool = False  # attention and FFN both read the layer input (GPT-NeoX)


@dataclass(frozen=True)
class Arch:
    family: str  # the family file that described the model, e.g. "llama"
    decoder: str  # path of the decoder (the stack of layers plus final norm) in the HF model
    layers: str  # path of the ModuleList of layers, relative to the decoder
    final_norm: Norm | None  # relative to the decoder
    rotary: str | None  # path of the rotary module relative to the decoder (None: learned positions)
    embed_scale: float  # what a table row is multiplied by before layer 0 (Gemma: sqrt(d))
    final_softcap: float | None  # logits -> cap * tanh(logits / cap)
    blocks: tuple[Layer, ...]

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def global_layers(self) -> tuple[int, ...]:
        """The layers whose attention sees the whole input (no sliding window), counted from 0."""
        return tuple(i for i, b in enumerate(self.blocks) if b.attn.window is None)

    @property
    def local_layers(self) -> tuple[int, ...]:
        """The layers whose attention sees only the last ``window`` tokens (Gemma 2/3, Mistral)."""
        return tuple(i for i, b in enumerate(self.blocks) if b.attn.window is not None)


# --- reading the description on a live model ------------------------------------------------------
def get(module: torch.nn.Module, path: str) -> torch.nn.Module:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def row_index(rows: tuple[tuple[int, int], ...]) -> torch.Tensor:
    return torch.cat([torch.arange(a, b) for a, b in rows])


def weight(layer: torch.nn.Module, proj: Proj) -> tuple[torch.Tensor, torch.Tensor | None]:
    """W [out, in] and b [out] (or None) of a projection, in nn.Linear's orientation."""
    lin = get(layer, proj.path)
    w = lin.weight.detach()
    w = w.T if proj.conv1d else w  # Conv1D stores [in, out]: transpose
    b = None if getattr(lin, "bias", None) is None else lin.bias.detach()
    if proj.rows is not None:
        idx = row_index(proj.rows).to(w.device)
        w = w[idx]
        b = None if b is None else b[idx]
    return w, b


def apply_norm(x: torch.Tensor, norm: Norm | None, module: torch.nn.Module) -> torch.Tensor:
    """A norm by hand from its description and its module's weights (the identity when None)."""
    if norm is None:
        return x
    m = get(module, norm.path)
    xf = x.float()
    if norm.kind == "layer":
        mu = xf.mean(-1, keepdim=True)
        var = (xf - mu).pow(2).mean(-1, keepdim=True)
        y = (xf - mu) * torch.rsqrt(var + norm.eps)
        y = y * m.weight.float() if m.weight is not None else y
        return y + m.bias.float() if getattr(m, "bias", None) is not None else y
    gain = m.weight.float()
    if norm.kind == "rms_1p":
        gain = 1.0 + gain
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps) * gain


def gain(module: torch.nn.Module, norm: Norm) -> torch.Tensor:
    """The per-dimension gain a norm multiplies by ([d]): w, or 1 + w."""
    w = get(module, norm.path).weight.detach().float()
    return 1.0 + w if norm.kind == "rms_1p" else w


# --- helpers the family files share ------------------------------------------------------------
_ACTIVATIONS = {
    "silu": "silu", "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu_tanh": "gelu_tanh",
    "gelu": "gelu", "relu": "relu",
}


def activation(raw: str) -> str:
    """The activation written out by ``anatomy.ffn.act_fn``, from a configuration's name for it."""
    if raw not in _ACTIVATIONS:
        from ..errors import AnatomyError

        raise AnatomyError(f"The activation {raw!r} is not one anatomy computes by hand; it knows SiLU, GELU (exact or tanh) and ReLU.")
    return _ACTIVATIONS[raw]


def rope_parameters(cfg, layer_type: str | None = None) -> dict:
    """The rope_parameters of a configuration (of one layer type when they differ per type)."""
    params = getattr(cfg, "rope_parameters", None) or {}
    if layer_type is not None and layer_type in params:
        params = params[layer_type]
    return params if isinstance(params, dict) else {}


def rotary_dim(cfg, head_dim: int, layer_type: str | None = None) -> int:
    """Dimensions RoPE turns in each head: all, or a fraction (``partial_rotary_factor``)."""
    factor = rope_parameters(cfg, layer_type).get("partial_rotary_factor", None)
    if factor is None:
        factor = getattr(cfg, "partial_rotary_factor", None) or 1.0
    return int(head_dim * factor)


def sizes(cfg) -> tuple[int, int, int]:
    """(query heads, K/V heads, head dimension) from a configuration."""
    H = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or H
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    return H, kv, hd


def window_of(cfg, i: int) -> int | None:
    """The sliding window of layer i when ``layer_types`` marks it local, else None."""
    types = getattr(cfg, "layer_types", None)
    if types and types[i] == "sliding_attention":
        return getattr(cfg, "sliding_window", None)
    return None


def separate_qkv(cfg, *, scale: float | None = None, layer_type: str | None = None, **extra) -> SelfAttention:
    """``self_attn`` with q_proj, k_proj, v_proj and o_proj (Llama and most families since), RoPE as the
    configuration says (for layers of ``layer_type`` when the rotary module has one base per type)."""
    H, kv, hd = sizes(cfg)
    return SelfAttention("self_attn", Proj("q_proj"), Proj("k_proj"), Proj("v_proj"), Proj("o_proj"), H, kv, hd,
                     hd**-0.5 if scale is None else scale, rotary_dim=rotary_dim(cfg, hd, layer_type),
                     rope_layer_type=layer_type, **extra)


def gated_mlp(cfg, act: str) -> FFN:
    """``mlp`` = down_proj(act(gate_proj(x)) * up_proj(x))."""
    return FFN("mlp", up=Proj("up_proj"), down=Proj("down_proj"), activation=activation(act), gate=Proj("gate_proj"))
