"""Mistral: Llama's block, with every layer local when ``sliding_window`` is set.

    h = x + self_attn(input_layernorm(x))              # each query sees only the last `sliding_window` keys
    x = h + mlp(post_attention_layernorm(h))           # mlp(x) = down_proj(silu(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))
"""

from . import llama
from .base import Arch, Norm

MODEL_TYPES = ("mistral",)


def describe(cfg, multimodal: bool = False) -> Arch:
    window = getattr(cfg, "sliding_window", None)
    return Arch("mistral", "model", "layers", Norm("norm", "rms", cfg.rms_norm_eps), "rotary_emb", 1.0, None,
                tuple(llama.block(cfg, i, window=window) for i in range(cfg.num_hidden_layers)))
