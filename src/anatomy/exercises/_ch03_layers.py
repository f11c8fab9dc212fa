"""Chapter 3's exercises: RMSNorm, as each family writes it."""

from __future__ import annotations

import torch

from ._judge import Case, Mistake, Verdict, _models, _seeded, judge


def _rms(x, w, eps, one_plus):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if one_plus else w)


def check_rms_norm(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 3: ``fn(x, weight, eps, one_plus)`` is RMSNorm over the last axis; with ``one_plus`` (Gemma) the gain is ``1 + weight``.

    The right answer is what the model's own first norm module computes on the same vectors."""
    cases = []
    for m in _models():
        spec = m.arch.blocks[0].attn_norm
        module = m.layers[0].get_submodule(spec.path)
        x = torch.randn(3, m.d_model, generator=_seeded(0)) * 4
        with torch.no_grad():
            expected = module(x.to(m.dtype)).float()
        cases.append(Case((x, module.weight.detach().float().clone(), spec.eps, spec.kind == "rms_1p"),
                          f"{m.name}'s first norm", f"{m.name} 的第一个归一化层", expected))
    mistakes = (
        Mistake("you multiplied by w; with one_plus the gain is stored as w and the norm multiplies by (1 + w).",
                "你乘的是 w；one_plus 为真时，增益存成 w，归一化实际乘的是 (1 + w)。",
                wrong=lambda x, w, eps, op: _rms(x, w, eps, False)),
        Mistake("you subtracted the mean (that is LayerNorm); RMSNorm only divides by the root mean square.",
                "你减去了均值（那是 LayerNorm）；RMSNorm 只除以均方根。",
                wrong=lambda x, w, eps, op: _rms(x - x.mean(-1, keepdim=True), w, eps, op)),
        Mistake("you divided by the vector's length; RMSNorm divides by the root of the mean square (length / √d).",
                "你除以的是向量的长度；RMSNorm 除以的是平方的平均值的平方根（长度 / √d）。",
                wrong=lambda x, w, eps, op: x / x.norm(dim=-1, keepdim=True) * ((1 + w) if op else w)),
    )
    return judge("rms_norm", fn, cases, mistakes, solution=solution)
