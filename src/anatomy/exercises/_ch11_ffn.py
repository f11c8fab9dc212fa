"""Chapter 11's exercises: one neuron of a gated FFN."""

from __future__ import annotations

import torch

from ._judge import Case, Mistake, Verdict, as_int, close, default_models, judge, seeded_generator


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
    for m in default_models():
        layer, neuron = m.n_layers // 2, 7
        w = ffn_weights(m, layer)  # [m, d] rows, whatever the family calls its projections
        act = acts[w.activation]
        x = torch.randn(4, m.d_model, generator=seeded_generator(3))
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


# --- Exercise 11.2: what share of the parameters sits in the FFNs? --------------------------------
def _ffn_count(model) -> int:
    """The parameters of every layer's feed-forward sub-layer, counted on the modules themselves."""
    from ..families.base import get

    return sum(p.numel() for i, layer in enumerate(model.layers)
               for p in get(layer, model.arch.blocks[i].ffn.path).parameters())


def _total(model) -> int:
    return sum(p.numel() for p in model.hf.parameters())  # a tied LM head counts once


def _share_matches(factor: float = 1.0, extra_head: bool = False):
    def test(got, model):
        total = _total(model) + (model.lm_head.weight.numel() if extra_head else 0)
        return close(got, _ffn_count(model) * factor / total, atol=1e-4, rtol=1e-3)
    return test


def check_ffn_share(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 11: ``fn(model)`` is the share (a number between 0 and 1) of all the model's parameters that sit in
    the feed-forward sub-layers of its layers, compared with a count of the model's own modules."""
    cases = [Case((m,), m.name, m.name, _ffn_count(m) / _total(m)) for m in default_models()]
    mistakes = (
        Mistake("you counted two matrices per layer; a gated FFN has three (gate, up, down), each d × m.",
                "你每层只数了两个矩阵；门控前馈网络有三个（gate、up、down），每个都是 d × m。",
                matches=_share_matches(2 / 3)),
        Mistake("you counted the LM head apart from the embedding table, but the two share one matrix (tied weights): "
                "count it once, as model.hf.parameters() does.",
                "你把 LM Head 和嵌入表分开数了，但两者共用同一个矩阵（权重共享）：只数一次，就像 "
                "model.hf.parameters() 那样。",
                matches=_share_matches(1.0, extra_head=True)),
        Mistake("you counted the FFN of one layer only; every layer has its own.",
                "你只数了一层的前馈网络；每一层都有自己的一个。",
                matches=lambda got, m: _share_matches(1 / m.n_layers)(got, m)),
        Mistake("you returned a count; the exercise asks for a share between 0 and 1 (divide by all the parameters).",
                "你返回的是个数；题目要的是 0 到 1 之间的占比（除以全部参数的个数）。",
                matches=lambda got, m: _as_number(got) is not None and _as_number(got) > 1),
    )
    return judge("ffn_share", fn, cases, mistakes, solution=solution)


def _as_number(got) -> float | None:
    try:
        return float(got)
    except (TypeError, ValueError, RuntimeError):
        return None


# --- Exercise 11.3: which neuron's value vector raises a token the most? ---------------------------
_TOKEN = " Paris"


def _value_logits(model, layer: int, token_id: int, key: str = "down") -> torch.Tensor:
    """Each neuron's effect on one token's logit per unit of activation, the norms left out: [m]."""
    from .. import run
    from ..ffn import ffn_weights

    w = ffn_weights(model, layer)
    vectors = w.down.T if key == "down" else getattr(w, key)  # [m, d]: value vectors (or, wrongly, key rows)
    return run.head(model, vectors.detach().float(), rows=[token_id])[:, 0]


def check_value_neuron(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 11: ``fn(model, layer, token_id)`` is the neuron of layer ``layer`` whose value vector (its column of
    W_down) gives token ``token_id`` the largest logit through the LM head (the norms left out)."""
    from ..tokens import single_token_id

    cases = []
    for m in default_models():
        tid = single_token_id(m, _TOKEN)
        for layer in (2 * m.n_layers // 3, m.n_layers - 1):
            cases.append(Case((m, layer, tid), f"{m.name}, layer {layer}, the token '{_TOKEN}'",
                              f"{m.name} 第 {layer} 层、词元“{_TOKEN}”", int(_value_logits(m, layer, tid).argmax())))
    mistakes = (
        Mistake("you read the neuron's key (its row of W_up or W_gate); what it writes is its value, a column of W_down.",
                "你读的是神经元的键（W_up 或 W_gate 的一行）；它写出去的是值，即 W_down 的一列。",
                matches=lambda got, m, layer, t: as_int(got) in {int(_value_logits(m, layer, t, k).argmax())
                                                                  for k in ("up", "gate")}),
        Mistake("that neuron lowers the token the most (the smallest logit); the exercise asks for the one that raises it.",
                "这个神经元是把该词元压得最低的（Logit 最小）；题目要的是把它抬得最高的。",
                matches=lambda got, m, layer, t: as_int(got) == int(_value_logits(m, layer, t).argmin())),
        Mistake("you ranked the neurons by the size of their effect (abs); a negative effect lowers the token.",
                "你按作用的大小（绝对值）排序了；负的作用是把词元压低。",
                matches=lambda got, m, layer, t: as_int(got) == int(_value_logits(m, layer, t).abs().argmax())),
    )
    return judge("value_neuron", fn, cases, mistakes, solution=solution, same=lambda g, e: as_int(g) == e)
