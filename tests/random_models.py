"""Random-weight models saved as local directories, the way a reader points a chapter at another model.

Each is built from its family's transformers configuration with a real tokenizer (SmolLM2's for
most families, Gemma's for Gemma), seeded, and saved with ``save_pretrained``, so
``anatomy.load(path)`` takes the same road as a Hugging Face model id does. Two are shaped like the
lecture's own models (Llama 3.2 3B and Gemma 3 4B: their head ratios, RoPE settings (Llama 3's
scaling), Gemma 3's multimodal wrapper and local/global pattern, with small vectors and 6 layers so
they run in seconds); the others are 4-layer members of other common families.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# The lecture-shaped models keep everything of the lecture's models but their depth: 6 layers (one
# Gemma 3 period of five local layers and a global one) instead of 28 and 34, since sweeps over
# every layer cost depth x depth and would take minutes. ANATOMY_SWAP_FULL_DEPTH=1 builds them at
# full depth, to run by hand.
FULL_DEPTH = os.environ.get("ANATOMY_SWAP_FULL_DEPTH") == "1"

# name -> (tokenizer source, builder). Sizes are small; layer counts and head ratios are the point.
SMALL = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)


def _llama_3b_shaped(t, vocab):
    return t.LlamaForCausalLM(t.LlamaConfig(
        vocab_size=vocab, hidden_size=192, intermediate_size=512, num_hidden_layers=28 if FULL_DEPTH else 6,
        num_attention_heads=24, num_key_value_heads=8, head_dim=8, tie_word_embeddings=True,
        max_position_embeddings=131072,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    ))


def _gemma3_4b_shaped(t, vocab):
    text = t.Gemma3TextConfig(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=34 if FULL_DEPTH else 6,
        num_attention_heads=8, num_key_value_heads=4, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=1024, max_position_embeddings=4096,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
    )
    vision = t.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  image_size=28, patch_size=14)
    return t.Gemma3ForConditionalGeneration(t.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                                           mm_tokens_per_image=4))


def _small(cls, config, **extra):
    def build(t, vocab):
        return getattr(t, cls)(getattr(t, config)(vocab_size=vocab, num_hidden_layers=4, **SMALL, **extra))
    return build


MODELS = {
    "llama-3.2-3b-shaped": ("smollm2-135m", _llama_3b_shaped),
    "gemma-3-4b-shaped": ("gemma-3-270m", _gemma3_4b_shaped),
    "qwen3-small": ("smollm2-135m", _small("Qwen3ForCausalLM", "Qwen3Config", head_dim=16)),
    "mistral-small": ("smollm2-135m", _small("MistralForCausalLM", "MistralConfig", head_dim=16, sliding_window=4096)),
    "olmo2-small": ("smollm2-135m", _small("Olmo2ForCausalLM", "Olmo2Config")),
    "gemma2-small": ("gemma-3-270m", _small("Gemma2ForCausalLM", "Gemma2Config", head_dim=16, query_pre_attn_scalar=16)),
    "phi3-small": ("smollm2-135m", _small("Phi3ForCausalLM", "Phi3Config")),
    "qwen2-small": ("smollm2-135m", _small("Qwen2ForCausalLM", "Qwen2Config")),
    "gemma-small": ("gemma-3-270m", _small("GemmaForCausalLM", "GemmaConfig", head_dim=16)),
    "gpt2-small": ("smollm2-135m", lambda t, vocab: t.GPT2LMHeadModel(t.GPT2Config(
        vocab_size=vocab, n_embd=64, n_layer=4, n_head=4, n_positions=2048))),
    "gpt-neox-small": ("smollm2-135m", lambda t, vocab: t.GPTNeoXForCausalLM(t.GPTNeoXConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
        rotary_pct=0.25, max_position_embeddings=2048))),
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
    """The model `name` saved under root/name (built once; later calls reuse the directory)."""
    import anatomy
    import transformers as t

    where = root / (f"{name}-full" if FULL_DEPTH and name.endswith("-shaped") else name)
    if (where / "config.json").exists():
        return where
    tokenizer_of, build = MODELS[name]
    tokenizer = anatomy.load(tokenizer_of).tokenizer
    torch.manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        hf = build(t, len(tokenizer))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the tokenizer's special tokens, not the family's defaults
        value = getattr(tokenizer, key)
        for config in {id(c): c for c in (hf.config, hf.config.get_text_config())}.values():
            setattr(config, key, value)
    hf.generation_config.bos_token_id, hf.generation_config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    hf.generation_config.pad_token_id = tokenizer.pad_token_id
    hf.save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where
