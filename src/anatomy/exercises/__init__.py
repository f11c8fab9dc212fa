"""Exercises: checkers that run a reader's function on the real models and say, in one sentence, whether it is right.

Chapters end with exercises. The reader writes a function; ``anatomy.exercises.check_...(fn)``
runs it on the book's default models and on seeded random inputs, compares what it returns with
the model itself (or with the library function the chapter checked against the model) and
answers in the reader's language: ✓; "not written yet" for a stub (``...`` or ``raise
NotImplementedError``); or what is wrong, naming the typical mistake when the answer is the one
that mistake gives (the causal mask forgotten, w where Gemma uses 1 + w, the wrong axis, one layer
off). A function that raises is reported in one sentence, never as a traceback from inside torch.

On the site each exercise has a folded reference solution, run at build time through its
checker with ``solution=True``: a reference solution that no longer passes fails the build.
"""

from ._ch01_function_and_tokens import check_count_tokens, check_greedy_continuation, check_greedy_next_token
from ._ch02_embedding_table import check_analogy_rank, check_embedding_step, check_nearest_tokens
from ._ch03_layers import check_normalized_similarity, check_position_differences, check_rms_norm
from ._ch04_lm_head import check_continuation_logprob, check_logits_by_hand, check_softmax_with_temperature
from ._ch05_probing import check_control_r2, check_country_split, check_ridge_probe
from ._ch06_steering import check_difference_of_means, check_loss_rise, check_steered_probs
from ._ch07_logit_lens import check_first_top1_layer, check_lens_grid, check_logit_lens
from ._ch08_patchscopes import check_patched_probs, check_placeholder_position, check_repeating_layers
from ._ch09_attention import check_after_attention, check_causal_attention, check_rope
from ._ch10_multi_head import check_gqa_weights, check_head_share, check_kv_head
from ._ch11_ffn import check_ffn_share, check_swiglu_neuron, check_value_neuron
from ._ch12_brains import check_kv_cache, check_nudge, check_schedule
from ._ch13_dissection import check_find_heads, check_parameters_by_role, check_sink_share
from ._ch14_ablation import check_ffn_mean_ablation, check_next_token_loss, check_position_means
from ._ch15_function_vectors import check_patched_logits, check_remove_direction, check_task_vector
from ._ch16_sparse_autoencoders import check_fve, check_sae_loss, check_topk_encode
from ._ch17_circuits import check_logit_difference, check_patch_one, check_recovered
from ._ch18_relations import check_faithfulness, check_map_answers, check_relation_prompt
from ._judge import ExerciseFailed, Verdict

__all__ = [
    "ExerciseFailed",
    "Verdict",
    "check_after_attention",
    "check_analogy_rank",
    "check_causal_attention",
    "check_continuation_logprob",
    "check_control_r2",
    "check_count_tokens",
    "check_country_split",
    "check_difference_of_means",
    "check_embedding_step",
    "check_faithfulness",
    "check_ffn_mean_ablation",
    "check_ffn_share",
    "check_find_heads",
    "check_first_top1_layer",
    "check_fve",
    "check_gqa_weights",
    "check_greedy_continuation",
    "check_greedy_next_token",
    "check_head_share",
    "check_kv_cache",
    "check_kv_head",
    "check_lens_grid",
    "check_logit_difference",
    "check_logit_lens",
    "check_logits_by_hand",
    "check_loss_rise",
    "check_map_answers",
    "check_nearest_tokens",
    "check_next_token_loss",
    "check_normalized_similarity",
    "check_nudge",
    "check_parameters_by_role",
    "check_patch_one",
    "check_patched_logits",
    "check_patched_probs",
    "check_placeholder_position",
    "check_position_differences",
    "check_position_means",
    "check_recovered",
    "check_relation_prompt",
    "check_remove_direction",
    "check_repeating_layers",
    "check_ridge_probe",
    "check_rms_norm",
    "check_rope",
    "check_sae_loss",
    "check_schedule",
    "check_sink_share",
    "check_softmax_with_temperature",
    "check_steered_probs",
    "check_swiglu_neuron",
    "check_task_vector",
    "check_topk_encode",
    "check_value_neuron",
]
