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

from ._ch01_function_and_tokens import check_greedy_next_token
from ._ch02_embedding_table import check_nearest_tokens
from ._ch03_layers import check_rms_norm
from ._ch04_lm_head import check_softmax_with_temperature
from ._ch05_probing import check_control_r2, check_country_split, check_ridge_probe
from ._ch06_steering import check_difference_of_means, check_loss_rise, check_steered_probs
from ._ch07_logit_lens import check_first_top1_layer, check_lens_grid, check_logit_lens
from ._ch08_patchscopes import check_patched_probs, check_placeholder_position, check_repeating_layers
from ._ch09_attention import check_causal_attention
from ._ch10_multi_head import check_kv_head
from ._ch11_ffn import check_swiglu_neuron
from ._judge import ExerciseFailed, Verdict

__all__ = [
    "ExerciseFailed",
    "Verdict",
    "check_causal_attention",
    "check_control_r2",
    "check_country_split",
    "check_difference_of_means",
    "check_first_top1_layer",
    "check_greedy_next_token",
    "check_kv_head",
    "check_lens_grid",
    "check_logit_lens",
    "check_loss_rise",
    "check_nearest_tokens",
    "check_patched_probs",
    "check_placeholder_position",
    "check_repeating_layers",
    "check_ridge_probe",
    "check_rms_norm",
    "check_softmax_with_temperature",
    "check_steered_probs",
    "check_swiglu_neuron",
]
