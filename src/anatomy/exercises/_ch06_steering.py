"""Chapter 6's exercises: a direction from two kinds of prompts."""

from __future__ import annotations

from ._judge import Case, Mistake, Verdict, last_states_at, default_models, close, judge

_HAPPY = ("I love this wonderful day.", "What a great and happy surprise!", "This is the best news ever.")
_SAD = ("I hate this terrible day.", "What an awful and sad surprise.", "This is the worst news ever.")




def _mean_state(model, prompts, stage):
    return last_states_at(model, prompts, stage).mean(0)


def check_difference_of_means(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 6: ``fn(model, prompts_a, prompts_b, layer)`` is the mean output of layer ``layer`` at the last token
    over prompts_a minus the same over prompts_b (a [d] vector)."""
    cases = []
    for m in default_models():
        layer = m.n_layers // 2
        expected = _mean_state(m, _HAPPY, layer + 1) - _mean_state(m, _SAD, layer + 1)
        cases.append(Case((m, list(_HAPPY), list(_SAD), layer), f"{m.name}, layer {layer}", f"{m.name} 的第 {layer} 层", expected))
    mistakes = (
        Mistake("your direction points the other way: A minus B, not B minus A.",
                "你的方向反了：应该是 A 减 B，而不是 B 减 A。",
                wrong=lambda m, a, b, layer: _mean_state(m, b, layer + 1) - _mean_state(m, a, layer + 1)),
        Mistake("one layer off: hidden_states[ℓ] is the input of layer ℓ; its output is hidden_states[ℓ + 1].",
                "差了一层：hidden_states[ℓ] 是第 ℓ 层的输入，它的输出是 hidden_states[ℓ + 1]。",
                wrong=lambda m, a, b, layer: _mean_state(m, a, layer) - _mean_state(m, b, layer)),
    )
    return judge("difference_of_means", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-3))
