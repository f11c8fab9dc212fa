"""Gemma 2: norms before *and after* each sub-layer, local/global layers, soft-capped scores and logits.

    x = embed_tokens(ids) * sqrt(d)
    h = x + post_attention_layernorm(self_attn(input_layernorm(x)))
    x = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))
    scores = cap_a * tanh(q·k / sqrt(query_pre_attn_scalar) / cap_a)      # attn_logit_softcapping
    logits = cap_f * tanh(lm_head(norm(x)) / cap_f)                       # final_logit_softcapping

Every norm is RMSNorm with gain (1 + w). Layers marked "sliding_attention" see the last
``sliding_window`` tokens only; the others see everything before them.
"""

from .base import Arch, Layer, Norm, gated_mlp, separate_qkv, window_of

MODEL_TYPES = ("gemma2",)


def describe(cfg, multimodal: bool = False) -> Arch:
    eps = cfg.rms_norm_eps
    n = lambda path: Norm(path, "rms_1p", eps)  # noqa: E731
    blocks = tuple(
        Layer(separate_qkv(cfg, scale=cfg.query_pre_attn_scalar**-0.5,
                           softcap=cfg.attn_logit_softcapping, window=window_of(cfg, i)),
              gated_mlp(cfg, cfg.hidden_activation),
              attn_norm=n("input_layernorm"), ffn_norm=n("pre_feedforward_layernorm"),
              post_attn_norm=n("post_attention_layernorm"), post_ffn_norm=n("post_feedforward_layernorm"))
        for i in range(cfg.num_hidden_layers)
    )
    return Arch("gemma2", "model", "layers", n("norm"), "rotary_emb", cfg.hidden_size**0.5, cfg.final_logit_softcapping, blocks)
