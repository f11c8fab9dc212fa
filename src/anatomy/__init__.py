"""anatomy: dissect real pretrained language models, as in the LLM Anatomy textbook.

    import anatomy
    model = anatomy.load("smollm2-135m")          # or "gemma-3-270m", or a Hugging Face id
    anatomy.tokenize(model, "今天天氣真好！")
    anatomy.next_token(model, "The capital of France is").top(5)
"""

from . import plot
from .about import versions
from .ablation import Attribution, HeadAblation, Means, NeuronAblation, Separation, TopContexts, ablate, head_ablation, last_token_neurons, mean_activations, neuron_ablation, neuron_attribution, random_neurons, separating_neurons, top_contexts
from .attention import AttentionByHand, Rotary, Timing, attention_by_hand, rotary, time_by_length
from .brains import Influence, ReadWrite, Schedule, greedy, influence, reading_vs_writing, schedule
from .claims import Claim, ClaimFailed, claim
from .capture import HiddenStates, hidden_states
from .corpus import book_text
from .context import LargestDimensions, TokenVectors, WordSimilarity, largest_dimensions, layer_similarity, max_difference, mean_similarity, token_vectors, word_similarity
from .dissect import Attention, Details, HeadSearch, ParameterBreakdown, attention_weights, find_heads, layer_parameters, parameter_breakdown, parameter_groups, parameter_list, sink_share
from .embedding import Analogy, Projection, analogy, analogy_table, embed, lookup, nearest_table, nearest_tokens, project_2d, unit_table
from .errors import AnatomyError
from .ffn import FFNRun, FFNWeights, Neuron, NeuronActivations, NeuronSteps, ffn_by_hand, ffn_run, ffn_weights, neuron, neuron_activations, neuron_by_hand, neurons_pushing, promoted_tokens
from .lens import LanguageCurves, LogitLens, ResidualStream, language_curves, lens_logits, logit_lens, residual_stream
from .lm_head import UnembeddingRank, entropy, logits_from_hidden, sample, softmax_by_hand, unembedding_rank, with_temperature
from .load import DEFAULT_MODELS, Model, cache_dir, load
from .next_token import NextTokens, next_token
from .patchscope import Patchscope, patching, patchscope, patchscope_sweep, patchscope_table, placeholder_position, source_vector, source_vectors
from .probe import LayerProbes, Places, ProbeResult, cities, fit_probe, group_split, last_token_states, probe_layers, r2_score, split
from .show import Table, token_table, vocabulary_table
from .steer import SteeringEffect, direction, directions, generate, marker_difference, random_directions, steer, steering_effect
from .tokens import Token, VocabularyCensus, readable, single_token_id, token_bytes, tokenize, vocabulary_census

__version__ = "0.1.0"

__all__ = [
    "Attribution", "HeadAblation", "Means", "NeuronAblation", "Separation", "TopContexts", "ablate", "head_ablation", "last_token_neurons", "mean_activations", "neuron_ablation", "neuron_attribution", "random_neurons", "separating_neurons", "top_contexts",
    "LayerProbes", "Places", "ProbeResult", "cities", "fit_probe", "group_split", "last_token_states", "probe_layers", "r2_score", "split",
    "SteeringEffect", "direction", "directions", "generate", "marker_difference", "random_directions", "steer", "steering_effect",
    "FFNRun", "FFNWeights", "Neuron", "NeuronActivations", "NeuronSteps", "ffn_by_hand", "ffn_run", "ffn_weights", "neuron", "neuron_activations", "neuron_by_hand", "neurons_pushing", "promoted_tokens",
    "Influence", "ReadWrite", "Schedule", "greedy", "influence", "reading_vs_writing", "schedule",
    "AttentionByHand", "Rotary", "Timing", "attention_by_hand", "rotary", "time_by_length",
    "Attention", "Details", "HeadSearch", "ParameterBreakdown", "attention_weights", "find_heads", "layer_parameters", "parameter_breakdown", "parameter_groups", "parameter_list", "sink_share",
    "LargestDimensions", "TokenVectors", "WordSimilarity", "largest_dimensions", "layer_similarity", "max_difference", "mean_similarity", "token_vectors", "word_similarity",
    "Analogy", "Projection", "analogy", "analogy_table", "embed", "lookup", "nearest_table", "nearest_tokens", "project_2d", "unit_table",
    "UnembeddingRank", "entropy", "logits_from_hidden", "sample", "softmax_by_hand", "unembedding_rank", "with_temperature",
    "AnatomyError",
    "book_text",
    "Claim", "ClaimFailed", "claim",
    "LanguageCurves", "LogitLens", "ResidualStream", "language_curves", "lens_logits", "logit_lens", "residual_stream",
    "Patchscope", "patching", "patchscope", "patchscope_sweep", "patchscope_table", "placeholder_position", "source_vector", "source_vectors",
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
    "versions",
    "vocabulary_census",
    "vocabulary_table",
]
