"""Random-weight models of every supported family: the one factory the tests build small models with.

- ``config(family, layers=..., d=..., **extra)``: the family's transformers configuration, small
  (d=64, 4 heads, 2 K/V heads); ``extra`` sets any other field of it.
- ``build(family, ...)``: a seeded Hugging Face model from that configuration (no download).
- ``in_memory(family, ...)``: the same wrapped in ``anatomy.Model`` directly, without a tokenizer.
- ``saved(family, where, tokenizer, ...)``: saved with ``save_pretrained`` next to a real tokenizer,
  so ``anatomy.load(path)`` takes the road a Hugging Face model id takes.
- ``variant(name, where)``: one of the family variants of ``VARIANTS`` saved that way, the models of
  the session fixture ``tiny`` (tests/conftest.py) that tests/test_families.py runs end to end.
- ``save(name, root)``: one of the named models of ``MODELS`` saved that way, the models a chapter
  is run with in tests/test_any_model.py. Two are shaped like the lecture's own models (Llama 3.2
  3B and Gemma 3 4B: their head ratios, RoPE settings (Llama 3's scaling), Gemma 3's multimodal
  wrapper and local/global pattern, with small vectors and 6 layers so they run in seconds); the
  others are 4-layer members of other common families.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

V = 49152  # SmolLM2's vocabulary: its tokenizer's ids fit the embedding table

# The families, by transformers' configuration class, with the fields a small model of the family needs
# (head_dim: Qwen 3 and Gemma default to 128 and 256, far wider than d=64 allows).
FAMILIES = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 16, "query_pre_attn_scalar": 16}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 16}),
    "gemma3": ("Gemma3TextConfig", {"head_dim": 16}),  # inside Gemma 3's multimodal wrapper, beside a vision tower
    "phi3": ("Phi3Config", {}),
    "olmo2": ("Olmo2Config", {}),
    "gpt2": ("GPT2Config", {}),
    "gpt_neox": ("GPTNeoXConfig", {}),
}


def config(family: str, *, vocab: int = V, layers: int = 2, d: int = 64, ffn: int = 128, heads: int = 4,
           kv_heads: int = 2, **extra):
    """The transformers configuration of a small model of ``family``; ``extra`` sets any other field."""
    import transformers as t

    name, needs = FAMILIES[family]
    if family == "gpt2":
        return t.GPT2Config(vocab_size=vocab, n_embd=d, n_layer=layers, n_head=heads,
                            n_positions=extra.pop("max_position_embeddings", 2048), **extra)
    if family == "gpt_neox":  # no separate K/V heads
        return t.GPTNeoXConfig(vocab_size=vocab, hidden_size=d, intermediate_size=ffn, num_hidden_layers=layers,
                               num_attention_heads=heads, **extra)
    text = getattr(t, name)(vocab_size=vocab, hidden_size=d, intermediate_size=ffn, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv_heads, **{**needs, **extra})
    if family != "gemma3":
        return text
    vision = t.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  image_size=28, patch_size=14)
    return t.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)


def build(family: str, *, seed: int = 0, vary_norms: bool = False, **sizes) -> torch.nn.Module:
    """A seeded random-weight Hugging Face model of ``family`` (see ``config`` for ``sizes``).

    ``vary_norms`` adds noise to every norm gain: Gemma's start at 0 (the gain is 1 + w), so a test
    of the norms by hand would not see a wrong formula on them.
    """
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hf = AutoModelForCausalLM.from_config(config(family, **sizes))
        if vary_norms:
            with torch.no_grad():
                for name, p in hf.named_parameters():
                    if "norm" in name or "ln_" in name:
                        p.add_(0.1 * torch.randn_like(p))
    return hf


def in_memory(family: str, **sizes):
    """``anatomy.Model`` around a random-weight model of ``family``, eager attention, no tokenizer.

    Vocabulary 256; Gemma 3's local layers see 8 tokens, so a 12-token input crosses their window.
    """
    import anatomy

    window = {"sliding_window": 8} if family.startswith("gemma3") else {}
    hf = build(family, **{"vocab": 256, **window, **sizes})
    hf.set_attn_implementation("eager")
    return anatomy.Model(f"tiny-{family}", hf.eval(), tokenizer=None, source="random weights")


def saved(family: str, where: Path, tokenizer, **kwargs) -> Path:
    """A random-weight model of ``family`` saved in ``where`` with ``tokenizer`` (its special tokens in the configuration)."""
    hf = build(family, vocab=len(tokenizer), **kwargs)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the tokenizer's special tokens, not the family's defaults
        value = getattr(tokenizer, key)
        for c in {id(c): c for c in (hf.config, hf.config.get_text_config())}.values():
            setattr(c, key, value)
    hf.generation_config.bos_token_id, hf.generation_config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    hf.generation_config.pad_token_id = tokenizer.pad_token_id
    hf.save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


# --- every family end to end (the session fixture `tiny` of tests/conftest.py) ----------------------
# name -> (family of FAMILIES, what the variant sets: short sliding windows, soft-caps, partial RoPE...)
LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=64)  # Llama 3.x: RoPE's long wavelengths stretched
GEMMA3 = dict(sliding_window=8, layer_types=["sliding_attention", "full_attention"])
VARIANTS = {
    "llama": ("llama", dict(tie_word_embeddings=True)),
    "llama3": ("llama", dict(rope_parameters=LLAMA3_ROPE)),
    "mistral": ("mistral", dict(sliding_window=8)),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "gemma": ("gemma", {}),
    "gemma2": ("gemma2", dict(sliding_window=8, query_pre_attn_scalar=24, attn_logit_softcapping=5.0, final_logit_softcapping=3.0)),
    "gemma3_text": ("gemma3_text", GEMMA3),
    "gemma3": ("gemma3", GEMMA3),
    "phi3": ("phi3", dict(partial_rotary_factor=0.5, pad_token_id=0)),
    "olmo2": ("olmo2", dict(pad_token_id=0)),
    "gpt2": ("gpt2", {}),
    "gpt_neox": ("gpt_neox", dict(use_parallel_residual=True)),
    "gpt_neox_sequential": ("gpt_neox", dict(use_parallel_residual=False)),
}


def variant(name: str, where: Path) -> Path:
    """The variant ``name`` of VARIANTS saved in ``where`` with SmolLM2's tokenizer (2 layers, noisy norm gains)."""
    import anatomy

    family, settings = VARIANTS[name]
    return saved(family, where, anatomy.load("smollm2-135m").tokenizer, vary_norms=True, max_position_embeddings=128,
                 **settings)


# --- the named models a chapter is run with (tests/test_any_model.py) ----------------------------------
# The lecture-shaped models keep everything of the lecture's models but their depth: 6 layers (one
# Gemma 3 period of five local layers and a global one) instead of 28 and 34, since sweeps over
# every layer cost depth x depth and would take minutes. ANATOMY_SWAP_FULL_DEPTH=1 builds them at
# full depth, to run by hand.
FULL_DEPTH = os.environ.get("ANATOMY_SWAP_FULL_DEPTH") == "1"

# name -> (tokenizer source, family, sizes). Sizes are small; layer counts and head ratios are the point.
MODELS = {
    "llama-3.2-3b-shaped": ("smollm2-135m", "llama", dict(
        layers=28 if FULL_DEPTH else 6, d=192, ffn=512, heads=24, kv_heads=8, head_dim=8, tie_word_embeddings=True,
        max_position_embeddings=131072,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})),
    "gemma-3-4b-shaped": ("gemma-3-270m", "gemma3", dict(
        layers=34 if FULL_DEPTH else 6, d=128, ffn=256, heads=8, kv_heads=4, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=1024, max_position_embeddings=4096,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
    "qwen3-small": ("smollm2-135m", "qwen3", dict(layers=4)),
    "mistral-small": ("smollm2-135m", "mistral", dict(layers=4, head_dim=16, sliding_window=4096)),
    "olmo2-small": ("smollm2-135m", "olmo2", dict(layers=4)),
    "gemma2-small": ("gemma-3-270m", "gemma2", dict(layers=4)),
    "phi3-small": ("smollm2-135m", "phi3", dict(layers=4)),
    "qwen2-small": ("smollm2-135m", "qwen2", dict(layers=4)),
    "gemma-small": ("gemma-3-270m", "gemma", dict(layers=4)),
    "gpt2-small": ("smollm2-135m", "gpt2", dict(layers=4)),
    "gpt-neox-small": ("smollm2-135m", "gpt_neox", dict(layers=4, ffn=256, rotary_pct=0.25, max_position_embeddings=2048)),
}

# The pairs a chapter is run with: its `smol` slot first, its `gemma` slot second. PAIRS run in
# every test run; EXTRA_PAIRS cover the other families, run by hand (ANATOMY_SWAP_PAIRS=...).
PAIRS = {
    "lecture-shaped": ("llama-3.2-3b-shaped", "gemma-3-4b-shaped"),
    "qwen3+mistral": ("qwen3-small", "mistral-small"),
    "olmo2+gemma2": ("olmo2-small", "gemma2-small"),
}
EXTRA_PAIRS = {
    "phi3+gemma": ("phi3-small", "gemma-small"),
    "gpt2+gpt-neox": ("gpt2-small", "gpt-neox-small"),
    "qwen2+gemma2": ("qwen2-small", "gemma2-small"),
}


def save(name: str, root: Path) -> Path:
    """The named model saved under root/name (built once; later calls reuse the directory)."""
    import anatomy

    where = root / (f"{name}-full" if FULL_DEPTH and name.endswith("-shaped") else name)
    if (where / "config.json").exists():
        return where
    tokenizer_of, family, sizes = MODELS[name]
    return saved(family, where, anatomy.load(tokenizer_of).tokenizer, **sizes)
