"""Phi-3: Llama's block with fused projections.

    q, k, v = split(qkv_proj(input_layernorm(x)), [H*hd, H_kv*hd, H_kv*hd])    # one matrix, three blocks of rows
    h = x + o_proj(attention(q, k, v))
    gate, up = split(gate_up_proj(post_attention_layernorm(h)), [m, m])     # gate first
    x = h + down_proj(silu(gate) * up)
    logits = lm_head(norm(x))

RoPE may turn only part of each head (``partial_rotary_factor``); with ``sliding_window`` set,
every layer is local.
"""

from .base import FFN, Arch, SelfAttention, Layer, Norm, Proj, activation, blocks, rotary_dim, sizes

MODEL_TYPES = ("phi3",)


def describe(cfg, multimodal: bool = False) -> Arch:
    eps = cfg.rms_norm_eps
    H, kv, hd = sizes(cfg)
    qkv = (H * hd, kv * hd, kv * hd)
    m = cfg.intermediate_size
    attn = SelfAttention("self_attn", *(Proj("qkv_proj", blocks(qkv, j)) for j in range(3)), Proj("o_proj"), H, kv, hd,
                     hd**-0.5, rotary_dim=rotary_dim(cfg, hd), window=getattr(cfg, "sliding_window", None))
    ffn = FFN("mlp", up=Proj("gate_up_proj", blocks((m, m), 1)), down=Proj("down_proj"),
              activation=activation(cfg.hidden_act), gate=Proj("gate_up_proj", blocks((m, m), 0)))
    layer = Layer(attn, ffn, attn_norm=Norm("input_layernorm", "rms", eps), ffn_norm=Norm("post_attention_layernorm", "rms", eps))
    return Arch("phi3", "model", "layers", Norm("norm", "rms", eps), "rotary_emb", 1.0, None, (layer,) * cfg.num_hidden_layers)
