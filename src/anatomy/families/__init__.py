"""One file per architecture family: where each part sits, and that family's equations.

``describe(hf)`` reads a Hugging Face model's configuration once, at load time, and returns its
``Arch`` (families/base.py): the standard description every other module reads. This package is
the only place in anatomy that asks which family a model belongs to.
"""

from __future__ import annotations

from ..errors import AnatomyError
from . import gemma, gemma2, gemma3, gpt2, gpt_neox, llama, mistral, olmo2, phi3, qwen2, qwen3
from .base import Arch, SelfAttention, FFN, Layer, Norm, Proj

__all__ = ["FAMILIES", "Arch", "SelfAttention", "FFN", "Layer", "Norm", "Proj", "describe"]

_FILES = (llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, phi3, olmo2, gpt2, gpt_neox)

#: transformers' model_type -> the family file that describes it
FAMILIES = {t: f for f in _FILES for t in f.MODEL_TYPES}

SUPPORTED = "Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3 (text and multimodal), Phi-3, OLMo 2, GPT-2 and GPT-NeoX"


def describe(hf) -> Arch:
    """The architecture description of a Hugging Face causal LM, or an AnatomyError naming what is supported."""
    outer = hf.config.model_type
    cfg = hf.config.get_text_config()
    file = FAMILIES.get(cfg.model_type) or FAMILIES.get(outer)
    if file is None:
        raise AnatomyError(f"anatomy does not know the {type(hf).__name__} architecture (model_type {cfg.model_type!r}); it supports {SUPPORTED}.")
    return file.describe(cfg, multimodal=cfg is not hf.config)
