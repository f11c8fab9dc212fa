"""anatomy: dissect real pretrained language models, as in the LLM Anatomy textbook.

    import anatomy
    model = anatomy.load("smollm2-135m")          # or "gemma-3-270m", or a Hugging Face id
    anatomy.tokenize(model, "今天天氣真好！")
    anatomy.next_token(model, "The capital of France is").top(5)

Conventions, the same in every module (and stated once on the book's Start here page):

* Layers: layer ``l`` is the block ``model.layers[l]``, counted from 0 like the module path and the
  hook place ``"layers.l"``; "the output of layer l" is the residual stream after that block. The
  token embeddings that enter layer 0 are "the embedding", never a layer. Results with one row per
  stage (embedding, then every layer) say so and label their rows.
* Arguments come in the order ``(model, prompt, layer, position, ...)``; heads and positions count
  from 0; a generation length is ``max_new_tokens``; a result's ``tokens`` are ``Token`` objects.
* Functions that compute return plain tensors or small frozen dataclasses. A result shows itself
  as a table with its ``.table()`` method; a function named ``*_table`` compares several results or
  models in one table. Plot functions (``anatomy.plot``) take results and return a figure that
  carries its own description.
* Places in a model are named the same whatever its family (``anatomy.places(model)``); reading and
  changing them: ``anatomy.capture`` and ``anatomy.edit``. Families: ``anatomy.families``.
* Bad input raises ``AnatomyError`` with one sentence saying what is wrong and what to do.
"""

from . import exercises, plot
from .about import versions
from .ablation import Ablated, Attribution, DoseResponse, HeadAblation, HeadAttribution, HeadSetAblation, KnowledgeNeurons, Means, NeuronAblation, NeuronScaling, Separation, SinkNeuron, SinkNeurons, TopContexts, ablate, dose_response, head_ablation, head_attribution, head_set_ablation, knowledge_neurons, last_token_neurons, mean_activations, neuron_ablation, neuron_attribution, neuron_scaling, random_heads, random_neurons, separating_neurons, sink_neurons, top_contexts
from .attention import AttentionByHand, Rotary, Timing, attention_by_hand, attention_projection, rotary, time_by_length
from .brains import Influence, ReadWrite, Schedule, greedy, influence, reading_vs_writing, schedule
from .claims import Claim, ClaimFailed, Glue, claim, glue
from .hidden import HiddenStates, hidden_states
from .hooks import capture, edit, places
from .corpus import book_text
from .context import LargestDimensions, TokenVectors, WordSimilarity, largest_dimensions, layer_similarity, max_difference, mean_similarity, token_vectors, word_similarity
from .dissect import Attention, Details, HeadSearch, ParameterBreakdown, attention_weights, find_heads, layer_parameters, parameter_breakdown, parameter_groups, parameter_list, sink_share
from .embedding import Analogy, Projection, analogy, analogy_table, embed, lookup, nearest_table, nearest_tokens, project_2d, unit_table
from .errors import AnatomyError
from .ffn import FFNRun, FFNWeights, Neuron, NeuronActivations, NeuronPushes, NeuronSteps, Push, ffn_by_hand, ffn_run, ffn_weights, neuron, neuron_activations, neuron_by_hand, neuron_logit_attribution, neurons_pushing, promoted_tokens
from .function_vectors import Correct, CrossTask, TaskVectorTest, cross_task, decode_vector, few_shot_prompts, task_accuracy, task_vector_table, task_vector_test, task_vectors, wilson, zero_shot_prompt
from .lens import LanguageCurves, LogitLens, ResidualStream, language_curves, lens_logits, logit_lens, residual_stream
from .lm_head import UnembeddingRank, entropy, logits_from_hidden, sample, softmax_by_hand, unembedding_rank, with_temperature
from .loading import DEFAULT_MODELS, Model, cache_dir, load
from .prediction import NextTokens, next_token
from .patchscopes import Patchscope, patching, patchscope, patchscope_sweep, patchscope_table, placeholder_position, source_vector, source_vectors
from .circuits import BackPatching, PatchingResult, activation_patching, attribution_patching, back_patching, logit_difference
from .circuits import AttentionKnockout, ComponentPatching, FactPair, FactPairs, Faithfulness, HeadPatching, attention_knockout, attribution_components, circuit_faithfulness, component_patching, fact_pairs, facts, head_patching, next_token_ids
from .probe import LayerProbes, Places, ProbeResult, cities, fit_probe, group_split, last_token_states, probe_layers, r2_score, split
from .relations import RelationEdits, RelationFaithfulness, RelationMap, RelationReading, read_relation, relation_faithfulness, relation_edits, relation_map, relation_prompt, relation_table
from .refusal import COHERENT_NLL, REFUSAL_SUBSTRINGS, Declines, HandLabels, RefusalDirections, RefusalScan, RefusalSeparation, RefusalTest, ablate_direction, answers, chat, declines, hand_labels, is_decline, refusal_directions, refusal_scan, refusal_separation, refusal_test
from .sae import AblationLosses, Activations, BasisStats, FeatureGallery, FeaturePage, FrontierPoint, LatentAblation, SAEFrontier, SAEMetrics, SparseAutoencoder, SplicedLosses, ablate_latent, ablation_losses, basis_stats, basis_table, feature_gallery, feature_page, l0, metrics_table, next_token_loss, promoted_ids, random_latents, residual_vectors, sae_frontier, sae_metrics, spliced_losses, train_sae, train_saes
from .show import Table, token_table, vocabulary_table
from .steering import SteeringEffect, direction, directions, generate, marker_difference, random_directions, steer, steering_effect
from .tokens import Token, VocabularyCensus, answer_id, continuation_id, readable, single_token_id, token_bytes, tokenize, vocabulary_census, word_positions

__version__ = "0.1.0"

__all__ = [
    "Ablated", "Attribution", "DoseResponse", "HeadAblation", "HeadAttribution", "HeadSetAblation", "KnowledgeNeurons", "Means", "NeuronAblation", "NeuronScaling", "Separation", "SinkNeuron", "SinkNeurons", "TopContexts", "ablate", "dose_response", "head_ablation", "head_attribution", "head_set_ablation", "knowledge_neurons", "last_token_neurons", "mean_activations", "neuron_ablation", "neuron_attribution", "neuron_scaling", "random_heads", "random_neurons", "separating_neurons", "sink_neurons", "top_contexts",
    "LayerProbes", "Places", "ProbeResult", "cities", "fit_probe", "group_split", "last_token_states", "probe_layers", "r2_score", "split",
    "AblationLosses", "Activations", "BasisStats", "FeatureGallery", "FeaturePage", "FrontierPoint", "LatentAblation", "SAEFrontier", "SAEMetrics", "SparseAutoencoder", "SplicedLosses", "ablate_latent", "ablation_losses", "basis_stats", "basis_table", "feature_gallery", "feature_page", "l0", "metrics_table", "next_token_loss", "promoted_ids", "random_latents", "residual_vectors", "sae_frontier", "sae_metrics", "spliced_losses", "train_sae", "train_saes",
    "SteeringEffect", "direction", "directions", "generate", "marker_difference", "random_directions", "steer", "steering_effect",
    "FFNRun", "FFNWeights", "Neuron", "NeuronActivations", "NeuronPushes", "NeuronSteps", "Push", "ffn_by_hand", "ffn_run", "ffn_weights", "neuron", "neuron_activations", "neuron_by_hand", "neuron_logit_attribution", "neurons_pushing", "promoted_tokens",
    "Influence", "ReadWrite", "Schedule", "greedy", "influence", "reading_vs_writing", "schedule",
    "AttentionByHand", "Rotary", "Timing", "attention_by_hand", "attention_projection", "rotary", "time_by_length",
    "Attention", "Details", "HeadSearch", "ParameterBreakdown", "attention_weights", "find_heads", "layer_parameters", "parameter_breakdown", "parameter_groups", "parameter_list", "sink_share",
    "LargestDimensions", "TokenVectors", "WordSimilarity", "largest_dimensions", "layer_similarity", "max_difference", "mean_similarity", "token_vectors", "word_similarity",
    "Analogy", "Projection", "analogy", "analogy_table", "embed", "lookup", "nearest_table", "nearest_tokens", "project_2d", "unit_table",
    "UnembeddingRank", "entropy", "logits_from_hidden", "sample", "softmax_by_hand", "unembedding_rank", "with_temperature",
    "Correct", "CrossTask", "TaskVectorTest", "continuation_id", "cross_task", "decode_vector", "few_shot_prompts", "task_accuracy", "task_vector_table", "task_vector_test", "task_vectors", "wilson", "zero_shot_prompt",
    "RelationEdits", "RelationFaithfulness", "RelationMap", "RelationReading", "read_relation", "relation_faithfulness", "relation_edits", "relation_map", "relation_prompt", "relation_table",
    "COHERENT_NLL", "REFUSAL_SUBSTRINGS", "Declines", "HandLabels", "RefusalDirections", "RefusalScan", "RefusalSeparation", "RefusalTest", "ablate_direction", "answers", "chat", "declines", "hand_labels", "is_decline", "refusal_directions", "refusal_scan", "refusal_separation", "refusal_test",
    "AnatomyError",
    "book_text",
    "Claim", "ClaimFailed", "Glue", "claim", "glue",
    "LanguageCurves", "LogitLens", "ResidualStream", "language_curves", "lens_logits", "logit_lens", "residual_stream",
    "BackPatching", "PatchingResult", "activation_patching", "answer_id", "attribution_patching", "back_patching", "logit_difference",
    "AttentionKnockout", "ComponentPatching", "FactPair", "FactPairs", "Faithfulness", "HeadPatching", "attention_knockout", "attribution_components", "circuit_faithfulness", "component_patching", "fact_pairs", "facts", "head_patching", "next_token_ids",
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
    "capture",
    "edit",
    "places",
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
    "word_positions",
]
