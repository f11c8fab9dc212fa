"""Llama (Llama 2, Llama 3.x, SmolLM2): pre-norm, RMSNorm, RoPE, grouped-query attention, gated SiLU FFN.

    h = x + self_attn(input_layernorm(x))              # q_proj, k_proj, v_proj, o_proj; RoPE on q, k
    x = h + mlp(post_attention_layernorm(h))           # the FFN's *input* norm, despite its name
    mlp(x) = down_proj(silu(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))                          # model.norm; RMSNorm(x) = x / rms(x) * w

Llama 3.x stretches RoPE's long wavelengths (rope_type "llama3"); the model's own rotary module
computes those angles, and the by-hand attention reads them from it.
"""

from .base import Arch, Layer, Norm, gated_mlp, separate_qkv, window_of

MODEL_TYPES = ("llama",)


def block(cfg, i: int, *, q_norm=None, window=None) -> Layer:
    """One Llama-style block; Mistral, Qwen2 and Qwen3 reuse it with their one difference."""
    eps = cfg.rms_norm_eps
    qk = dict(q_norm=Norm("q_norm", "rms", eps), k_norm=Norm("k_norm", "rms", eps)) if q_norm else {}
    attn = separate_qkv(cfg, window=window, **qk)
    return Layer(attn, gated_mlp(cfg, cfg.hidden_act), attn_norm=Norm("input_layernorm", "rms", eps),
                 ffn_norm=Norm("post_attention_layernorm", "rms", eps))


def describe(cfg, multimodal: bool = False) -> Arch:
    return Arch("llama", "model", "layers", Norm("norm", "rms", cfg.rms_norm_eps), "rotary_emb", 1.0, None,
                tuple(block(cfg, i, window=window_of(cfg, i)) for i in range(cfg.num_hidden_layers)))
