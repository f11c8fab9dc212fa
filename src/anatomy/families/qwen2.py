"""Qwen2 / Qwen2.5: Llama's block with a bias on q_proj, k_proj and v_proj.

    h = x + self_attn(input_layernorm(x))              # q = x W_q + b_q (likewise k, v); o_proj has no bias
    x = h + mlp(post_attention_layernorm(h))           # mlp(x) = down_proj(silu(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))

Layers that ``layer_types`` marks "sliding_attention" see only the last ``sliding_window`` tokens.
"""

from . import llama
from .base import Arch, Norm, window_of

MODEL_TYPES = ("qwen2",)


def describe(cfg, multimodal: bool = False) -> Arch:
    return Arch("qwen2", "model", "layers", Norm("norm", "rms", cfg.rms_norm_eps), "rotary_emb", 1.0, None,
                tuple(llama.block(cfg, i, window=window_of(cfg, i)) for i in range(cfg.num_hidden_layers)))
