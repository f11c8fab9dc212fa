"""GPT-NeoX (Pythia): LayerNorm, attention and FFN side by side (parallel residual), partial RoPE.

    q, k, v = query_key_value(input_layernorm(x))      # per head [q_h k_h v_h]: interleaved, not three blocks
    q, k = rope(q[:r]), rope(k[:r])                    # only the first r = rotary_pct * hd dims of a head turn
    x = x + dense(attention(q, k, v)) + mlp(post_attention_layernorm(x))      # use_parallel_residual=True
    (sequential when use_parallel_residual=False: h = x + attention; x = h + mlp(post_attention_layernorm(h)))
    mlp(x) = dense_4h_to_h(gelu(dense_h_to_4h(x)))     # classic FFN with biases
    logits = embed_out(final_layer_norm(x))
"""

from .base import FFN, Arch, SelfAttention, Layer, Norm, Proj, activation, per_head, rotary_dim

MODEL_TYPES = ("gpt_neox",)


def describe(cfg, multimodal: bool = False) -> Arch:
    d, H, eps = cfg.hidden_size, cfg.num_attention_heads, cfg.layer_norm_eps
    hd = d // H
    attn = SelfAttention("attention", *(Proj("query_key_value", per_head(H, hd, 3, j)) for j in range(3)), Proj("dense"),
                     H, H, hd, hd**-0.5, rotary_dim=rotary_dim(cfg, hd))
    ffn = FFN("mlp", up=Proj("dense_h_to_4h"), down=Proj("dense_4h_to_h"), activation=activation(cfg.hidden_act))
    layer = Layer(attn, ffn, attn_norm=Norm("input_layernorm", "layer", eps), ffn_norm=Norm("post_attention_layernorm", "layer", eps),
                  parallel=cfg.use_parallel_residual)
    return Arch("gpt_neox", "gpt_neox", "layers", Norm("final_layer_norm", "layer", eps), "rotary_emb", 1.0, None,
                (layer,) * cfg.num_hidden_layers)
