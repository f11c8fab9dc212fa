"""Gemma (1): Llama's block with RMSNorm gains stored as w - 1, GELU (tanh) gate, embeddings times sqrt(d).

    x = embed_tokens(ids) * sqrt(d)
    h = x + self_attn(input_layernorm(x))              # RMSNorm(x) = x / rms(x) * (1 + w)
    x = h + mlp(post_attention_layernorm(h))           # mlp(x) = down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))
"""

from .base import Arch, Layer, Norm, gated_mlp, separate_qkv

MODEL_TYPES = ("gemma",)


def describe(cfg, multimodal: bool = False) -> Arch:
    eps = cfg.rms_norm_eps
    act = getattr(cfg, "hidden_activation", None) or cfg.hidden_act
    blocks = tuple(
        Layer(separate_qkv(cfg), gated_mlp(cfg, act),
              attn_norm=Norm("input_layernorm", "rms_1p", eps), ffn_norm=Norm("post_attention_layernorm", "rms_1p", eps))
        for _ in range(cfg.num_hidden_layers)
    )
    return Arch("gemma", "model", "layers", Norm("norm", "rms_1p", eps), "rotary_emb", cfg.hidden_size**0.5, None, blocks)
