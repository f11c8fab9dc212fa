"""OLMo 2: norms *after* each sub-layer only (no norm on the way in), QK-norm over all heads at once.

    q = q_norm(x W_q), k = k_norm(x W_k)               # RMSNorm over all H*hd numbers, before the split into heads
    h = x + post_attention_layernorm(self_attn(x))
    x = h + post_feedforward_layernorm(mlp(h))         # mlp(x) = down_proj(silu(gate_proj(x)) * up_proj(x))
    logits = lm_head(norm(x))
"""

from .base import Arch, Layer, Norm, gated_mlp, separate_qkv

MODEL_TYPES = ("olmo2",)


def describe(cfg, multimodal: bool = False) -> Arch:
    eps = cfg.rms_norm_eps
    attn = separate_qkv(cfg, q_norm=Norm("q_norm", "rms", eps), k_norm=Norm("k_norm", "rms", eps), qk_norm_per_head=False)
    layer = Layer(attn, gated_mlp(cfg, cfg.hidden_act), attn_norm=None, ffn_norm=None,
                  post_attn_norm=Norm("post_attention_layernorm", "rms", eps),
                  post_ffn_norm=Norm("post_feedforward_layernorm", "rms", eps))
    return Arch("olmo2", "model", "layers", Norm("norm", "rms", eps), "rotary_emb", 1.0, None, (layer,) * cfg.num_hidden_layers)
