"""Chapter 11's exercises: one neuron of a gated FFN."""

from __future__ import annotations

import torch

from ._judge import Case, Mistake, Verdict, _models, _seeded, close, judge


@torch.no_grad()
def _neuron_in_model(model, layer: int, neuron: int, x: torch.Tensor) -> torch.Tensor:
    """What the model's own FFN computes for neuron ``neuron`` (its input to down_proj) on vectors x [N, d]."""
    spec = model.arch.blocks[layer].ffn
    mlp = model.layers[layer].get_submodule(spec.path)
    down = mlp.get_submodule(spec.down.path)
    seen = {}
    handle = down.register_forward_hook(lambda mod, inp, out: seen.setdefault("a", inp[0].detach()))
    try:
        mlp(x.to(model.dtype))
    finally:
        handle.remove()
    return seen["a"][..., neuron].float()


def check_swiglu_neuron(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 11: ``fn(x, gate_row, up_row, act)`` is one neuron's activation in a gated FFN,
    act(x · gate_row) × (x · up_row), for vectors x [N, d] (a tensor [N])."""
    import torch.nn.functional as F

    from ..ffn import ffn_weights

    acts = {"silu": F.silu, "gelu_tanh": lambda z: F.gelu(z, approximate="tanh")}
    cases = []
    for m in _models():
        layer, neuron = m.n_layers // 2, 7
        w = ffn_weights(m, layer)  # [m, d] rows, whatever the family calls its projections
        act = acts[w.activation]
        x = torch.randn(4, m.d_model, generator=_seeded(3))
        cases.append(Case((x, w.gate[neuron].detach().float(), w.up[neuron].detach().float(), act),
                          f"{m.name}, layer {layer}, neuron {neuron}", f"{m.name} 第 {layer} 层的第 {neuron} 个神经元",
                          _neuron_in_model(m, layer, neuron, x)))
    mistakes = (
        Mistake("the activation goes on the gate's product (x · gate_row), not on the up projection's.",
                "激活函数作用在门控的乘积（x · gate_row）上，而不是上投影的乘积上。",
                wrong=lambda x, g, u, act: (x @ g) * act(x @ u)),
        Mistake("you forgot the activation: act(x · gate_row) × (x · up_row).",
                "你忘了激活函数：act(x · gate_row) × (x · up_row)。",
                wrong=lambda x, g, u, act: (x @ g) * (x @ u)),
        Mistake("the activation goes on the gate alone, before multiplying by the up projection.",
                "激活函数只作用在门控上，然后再乘以上投影。",
                wrong=lambda x, g, u, act: act((x @ g) * (x @ u))),
    )
    return judge("swiglu_neuron", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))
