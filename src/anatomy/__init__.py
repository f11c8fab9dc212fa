"""anatomy: dissect real pretrained language models, as in the LLM Anatomy textbook.

    import anatomy
    model = anatomy.load("smollm2-135m")          # or "gemma-3-270m", or a Hugging Face id
    anatomy.tokenize(model, "今天天氣真好！")
    anatomy.next_token(model, "The capital of France is").top(5)
"""

from . import plot
from .about import versions
from .capture import HiddenStates, hidden_states
from .context import LargestDimensions, TokenVectors, WordSimilarity, largest_dimensions, layer_similarity, max_difference, mean_similarity, token_vectors, word_similarity
from .embedding import Analogy, Projection, analogy, analogy_table, embed, lookup, nearest_table, nearest_tokens, project_2d, unit_table
from .errors import AnatomyError
from .lm_head import UnembeddingRank, entropy, logits_from_hidden, sample, softmax_by_hand, unembedding_rank, with_temperature
from .load import DEFAULT_MODELS, Model, cache_dir, load
from .next_token import NextTokens, next_token
from .show import Table, token_table, vocabulary_table
from .tokens import Token, VocabularyCensus, readable, single_token_id, token_bytes, tokenize, vocabulary_census

__version__ = "0.1.0"

__all__ = [
    "Analogy",
    "AnatomyError",
    "DEFAULT_MODELS",
    "HiddenStates",
    "LargestDimensions",
    "Model",
    "NextTokens",
    "Projection",
    "Table",
    "Token",
    "TokenVectors",
    "UnembeddingRank",
    "VocabularyCensus",
    "WordSimilarity",
    "analogy",
    "analogy_table",
    "cache_dir",
    "embed",
    "entropy",
    "hidden_states",
    "largest_dimensions",
    "layer_similarity",
    "load",
    "logits_from_hidden",
    "lookup",
    "max_difference",
    "mean_similarity",
    "nearest_table",
    "nearest_tokens",
    "next_token",
    "plot",
    "project_2d",
    "readable",
    "sample",
    "single_token_id",
    "softmax_by_hand",
    "token_bytes",
    "token_table",
    "token_vectors",
    "tokenize",
    "unembedding_rank",
    "unit_table",
    "versions",
    "vocabulary_census",
    "vocabulary_table",
    "with_temperature",
    "word_similarity",
]
