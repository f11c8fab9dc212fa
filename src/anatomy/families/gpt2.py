"""GPT-2: LayerNorm, a learned table of positions, one fused Conv1D for q, k, v, a classic GELU FFN.

    x = wte(ids) + wpe(positions)                      # no RoPE: positions are added once, here
    q, k, v = split(c_attn(ln_1(x)), [d, d, d])        # Conv1D stores W as [in, out]: transpose it
    h = x + c_proj(attention(q, k, v))                 # attn.c_proj
    x = h + c_proj(gelu_tanh(c_fc(ln_2(h)) + b) ) + b  # mlp.c_fc, mlp.c_proj, both with biases
    logits = lm_head(ln_f(x))                          # LayerNorm(x) = (x - mean) / std * w + b
"""

from .base import FFN, Arch, SelfAttention, Layer, Norm, Proj, activation, blocks

MODEL_TYPES = ("gpt2",)


def describe(cfg, multimodal: bool = False) -> Arch:
    d, H, eps = cfg.n_embd, cfg.n_head, cfg.layer_norm_epsilon
    hd = d // H
    layers = []
    for i in range(cfg.n_layer):
        scale = hd**-0.5 if cfg.scale_attn_weights else 1.0
        if cfg.scale_attn_by_inverse_layer_idx:
            scale /= i + 1
        attn = SelfAttention("attn", *(Proj("c_attn", blocks((d, d, d), j), conv1d=True) for j in range(3)),
                         Proj("c_proj", conv1d=True), H, H, hd, scale)
        ffn = FFN("mlp", up=Proj("c_fc", conv1d=True), down=Proj("c_proj", conv1d=True), activation=activation(cfg.activation_function))
        layers.append(Layer(attn, ffn, attn_norm=Norm("ln_1", "layer", eps), ffn_norm=Norm("ln_2", "layer", eps)))
    return Arch("gpt2", "transformer", "h", Norm("ln_f", "layer", eps), None, 1.0, None, tuple(layers))
