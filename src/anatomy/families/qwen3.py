"""Qwen3: Llama's block with an RMSNorm on each head's query and key (QK-norm), no q/k/v bias.

    q = q_norm(x W_q) per head, k = k_norm(x W_k) per head, then RoPE
    h = x + self_attn(input_layernorm(x))
    x = h + mlp(post_attention_layernorm(h))           # mlp(x) = down_proj(silu(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))
"""

from . import llama
from .base import Arch, Norm, window_of

MODEL_TYPES = ("qwen3",)


def describe(cfg, multimodal: bool = False) -> Arch:
    return Arch("qwen3", "model", "layers", Norm("norm", "rms", cfg.rms_norm_eps), "rotary_emb", 1.0, None,
                tuple(llama.block(cfg, i, q_norm=True, window=window_of(cfg, i)) for i in range(cfg.num_hidden_layers)))
