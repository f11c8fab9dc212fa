"""Gemma 3 (text, and the multimodal Gemma3ForConditionalGeneration): Gemma 2's block with QK-norm.

    x = embed_tokens(ids) * sqrt(d)
    q = q_norm(x W_q), k = k_norm(x W_k)               # per head, RMSNorm with gain (1 + w); then RoPE
    h = x + post_attention_layernorm(self_attn(input_layernorm(x)))
    x = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))
    logits = lm_head(norm(x))

Local ("sliding_attention") layers see the last ``sliding_window`` tokens and turn RoPE with
one base (10,000); global layers see everything and use another (1,000,000): the rotary module
takes the layer type. The multimodal model keeps this text model under ``model.language_model``,
next to a vision tower.
"""

from .base import Arch, Layer, Norm, gated_mlp, separate_qkv, window_of

MODEL_TYPES = ("gemma3_text", "gemma3")


def describe(cfg, multimodal: bool = False) -> Arch:
    eps = cfg.rms_norm_eps
    n = lambda path: Norm(path, "rms_1p", eps)  # noqa: E731
    blocks = []
    for i in range(cfg.num_hidden_layers):
        kind = cfg.layer_types[i]
        attn = separate_qkv(cfg, scale=cfg.query_pre_attn_scalar**-0.5, layer_type=kind, softcap=cfg.attn_logit_softcapping,
                            window=window_of(cfg, i), q_norm=n("q_norm"), k_norm=n("k_norm"))
        blocks.append(Layer(attn, gated_mlp(cfg, cfg.hidden_activation),
                            attn_norm=n("input_layernorm"), ffn_norm=n("pre_feedforward_layernorm"),
                            post_attn_norm=n("post_attention_layernorm"), post_ffn_norm=n("post_feedforward_layernorm")))
    decoder = "model.language_model" if multimodal else "model"
    return Arch("gemma3", decoder, "layers", n("norm"), "rotary_emb", cfg.hidden_size**0.5,
                getattr(cfg, "final_logit_softcapping", None), tuple(blocks))
