"""anatomy: dissect real pretrained language models, as in the LLM Anatomy textbook.

    import anatomy
    model = anatomy.load("smollm2-135m")          # or "gemma-3-270m", or a Hugging Face id
    anatomy.tokenize(model, "今天天氣真好！")
    anatomy.next_token(model, "The capital of France is").top(5)
"""

from . import plot
from .capture import HiddenStates, hidden_states
from .errors import AnatomyError
from .load import DEFAULT_MODELS, Model, cache_dir, load
from .next_token import NextTokens, next_token
from .show import Table, token_table, vocabulary_table
from .tokens import Token, VocabularyCensus, readable, single_token_id, token_bytes, tokenize, vocabulary_census

__version__ = "0.1.0"

__all__ = [
    "AnatomyError",
    "DEFAULT_MODELS",
    "HiddenStates",
    "Model",
    "NextTokens",
    "Table",
    "Token",
    "VocabularyCensus",
    "cache_dir",
    "hidden_states",
    "load",
    "next_token",
    "plot",
    "readable",
    "single_token_id",
    "token_bytes",
    "token_table",
    "tokenize",
    "vocabulary_census",
    "vocabulary_table",
]
