"""Chapter 16's exercises: a TopK SAE's coefficients, the SAE's training loss, the fraction of variance explained."""

from __future__ import annotations

import functools

import torch

from ._judge import Case, Mistake, Verdict, close, default_models, judge, seeded_generator

# two short texts: the first plays the training vectors (its mean is the baseline), the second the held-out ones
_TEXTS = ("The capital of France is Paris, and the capital of Japan is Tokyo; both are large and old cities.",
          "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen.")


@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _vectors(model, text: int) -> torch.Tensor:
    """The middle layer's output at every token of one text, from position SKIP on, [N, d] (as the chapter collects them)."""
    from ..sae import residual_vectors

    return residual_vectors(model, [_TEXTS[text]], model.n_layers // 2, max_tokens=24).vectors.float()


@torch.no_grad()
def _sae(model, *, k: int | None = None, l1: float = 0.0, bias: float = -1.0, seed: int = 0):
    """An untrained SAE of the chapter's shape (2 d latents) on the model's middle layer, with seeded nonzero biases,
    so that every term of the formulas matters."""
    from ..sae import SparseAutoencoder

    x = _vectors(model, 0)
    d = x.shape[1]
    scale = float(x.norm(dim=1).mean()) / d ** 0.5  # as train_saes fixes it: the typical vector has length √d
    sae = SparseAutoencoder(d, 2 * d, scale=scale, seed=seed, model_name=model.name, layer=model.n_layers // 2, k=k, l1=l1)
    g = seeded_generator(seed + 1)
    sae.b_enc.copy_(bias + 0.5 * torch.randn(sae.n_latents, generator=g))
    sae.b_dec.copy_(x.mean(0) / scale + 0.3 * torch.randn(d, generator=g))
    return sae.requires_grad_(False)


def _where(m, what: str) -> tuple[str, str]:
    zh = {"text": "一段文本的向量", "held-out": "留出向量"}[what]
    return f"{m.name}'s middle layer, {what} vectors", f"{m.name} 中间层的{zh}"


# --- 16.1 the TopK coefficients -----------------------------------------------------------------------
def _pre(sae, x, *, b_dec=True, scale=True):
    z = x / sae.scale if scale else x
    return (z - sae.b_dec if b_dec else z) @ sae.W_enc.T + sae.b_enc  # [N, m]


def _keep(f, k, dim=-1):
    top = f.topk(k, dim=dim)
    return torch.zeros_like(f).scatter(dim, top.indices, top.values)


def check_topk_encode(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 16: ``fn(sae, x)`` returns a TopK SAE's coefficients for residual vectors x [N, d]: ReLU(W_enc (x / scale
    − b_dec) + b_enc), with all but the ``sae.k`` largest of each vector set to 0 ([N, n_latents])."""
    cases = []
    for m in default_models():
        sae = _sae(m, k=16, bias=-2.0)
        x = _vectors(m, 1)
        with torch.no_grad():
            cases.append(Case((sae, x), *_where(m, "text"), sae.encode(x)))
    relu = torch.relu
    mistakes = (
        Mistake("you kept the k largest of each latent over the vectors (dim=0); keep the k largest of each vector "
                "(the last axis).",
                "你对每个潜变量在所有向量之间取了前 k 个（dim=0）；应该对每个向量取前 k 个（最后一个轴）。",
                wrong=lambda sae, x: _keep(relu(_pre(sae, x)), sae.k, dim=0)),
        Mistake("you forgot the ReLU: a vector with fewer than k positive coefficients then keeps negative ones.",
                "你忘了 ReLU：正系数不到 k 个的向量就会留下负的系数。",
                wrong=lambda sae, x: _keep(_pre(sae, x), sae.k)),
        Mistake("you kept the k largest in absolute value; TopK keeps the k largest after the ReLU.",
                "你按绝对值取了前 k 个；TopK 取的是 ReLU 之后最大的 k 个。",
                matches=lambda got, sae, x: close(got, torch.zeros_like(got).scatter(
                    -1, _pre(sae, x).abs().topk(sae.k, -1).indices,
                    relu(_pre(sae, x)).gather(-1, _pre(sae, x).abs().topk(sae.k, -1).indices)))),
        Mistake("you forgot to subtract b_dec before the encoder: the SAE encodes x / scale − b_dec.",
                "你在编码前忘了减去 b_dec：SAE 编码的是 x / scale − b_dec。",
                wrong=lambda sae, x: _keep(relu(_pre(sae, x, b_dec=False)), sae.k)),
        Mistake("you forgot to divide by sae.scale: the SAE works on x / scale.",
                "你忘了除以 sae.scale：SAE 处理的是 x / scale。",
                wrong=lambda sae, x: _keep(relu(_pre(sae, x, scale=False)), sae.k)),
    )
    return judge("topk_encode", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-3))


# --- 16.2 the loss -----------------------------------------------------------------------------------
@torch.no_grad()
def _loss(sae, x, *, per_coordinate=False, scaled=True, sparsity=True):
    f = sae.encode(x)  # [N, m] α, in the SAE's (scaled) units
    e = sae.decode(f) - x  # [N, d] in residual units
    e = e / sae.scale if scaled else e
    err = (e ** 2).mean() if per_coordinate else (e ** 2).sum(-1).mean()
    return float(err + (sae.l1 * f.sum(-1).mean() if sparsity else 0.0))


def check_sae_loss(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 16: ``fn(sae, x)`` returns the loss ``train_saes`` minimises for an L1 SAE on vectors x [N, d] (a float):
    the mean over vectors of ‖x̂ − x‖² plus sae.l1 times the mean of Σ_k α_k, measured on x / sae.scale."""
    cases = []
    for m in default_models():
        sae = _sae(m, l1=2.0, bias=-1.0)
        x = _vectors(m, 1)
        cases.append(Case((sae, x), *_where(m, "text"), _loss(sae, x)))
    mistakes = (
        Mistake("you averaged the squared error over the d coordinates too (as F.mse_loss does); ‖e‖² sums them, "
                "and only the vectors are averaged.",
                "你把平方误差也在 d 个坐标上取了平均（F.mse_loss 就是这样）；‖e‖² 是对坐标求和，只对向量取平均。",
                wrong=lambda sae, x: _loss(sae, x, per_coordinate=True)),
        Mistake("you measured the error in residual units; the SAE trains on x / sae.scale, so divide the error by "
                "sae.scale before squaring.",
                "你在残差流的单位下度量误差；SAE 训练时用的是 x / sae.scale，所以平方之前先把误差除以 sae.scale。",
                wrong=lambda sae, x: _loss(sae, x, scaled=False)),
        Mistake("you forgot the sparsity term: add sae.l1 times the mean over vectors of the sum of the coefficients.",
                "你忘了稀疏项：加上 sae.l1 乘以各向量系数之和的平均值。",
                wrong=lambda sae, x: _loss(sae, x, sparsity=False)),
    )
    return judge("sae_loss", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-4))


# --- 16.3 the fraction of variance explained -----------------------------------------------------------
@torch.no_grad()
def _fve_parts(sae, x, mean):
    err = float(((sae(x) - x) ** 2).sum())
    return err, float(((x - mean) ** 2).sum())


def check_fve(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 16: ``fn(sae, x, mean)`` returns the fraction of variance the SAE explains on vectors x [N, d]
    against the baseline ``mean`` [d] (the training mean): 1 − Σ‖x − x̂‖² / Σ‖x − mean‖² (a float)."""
    from ..sae import Activations, sae_metrics

    cases = []
    for m in default_models():
        x, mean = _vectors(m, 1), _vectors(m, 0).mean(0)
        n = len(x)
        acts = Activations(m.name, m.n_layers // 2, x, torch.zeros(n, dtype=torch.long), torch.arange(n),
                           torch.zeros(n, dtype=torch.long), (), ())
        sae = _sae(m, k=32, bias=0.0)
        cases.append(Case((sae, x, mean), *_where(m, "held-out"), sae_metrics(sae, acts, mean=mean).fve))
    mistakes = (
        Mistake("you compared with the mean of these vectors; the baseline is the training mean you are given "
                "(on held-out vectors it knows no more than the SAE did).",
                "你拿这些向量自己的平均值作比较；基线是传进来的训练平均值（在留出向量上，它知道的不比 SAE 多）。",
                wrong=lambda sae, x, mean: 1 - _fve_parts(sae, x, x.mean(0))[0] / _fve_parts(sae, x, x.mean(0))[1]),
        Mistake("you returned the fraction left unexplained, Σ‖x − x̂‖² / Σ‖x − mean‖²; the FVE is 1 minus it.",
                "你返回的是没有解释的那部分，Σ‖x − x̂‖² / Σ‖x − mean‖²；FVE 是 1 减去它。",
                wrong=lambda sae, x, mean: _fve_parts(sae, x, mean)[0] / _fve_parts(sae, x, mean)[1]),
        Mistake("the denominator is the variance around the mean, Σ‖x − mean‖²; you divided by Σ‖x‖².",
                "分母是围绕平均值的方差 Σ‖x − mean‖²；你除的是 Σ‖x‖²。",
                wrong=lambda sae, x, mean: 1 - _fve_parts(sae, x, mean)[0] / _fve_parts(sae, x, torch.zeros_like(mean))[1]),
    )
    return judge("fve", fn, cases, mistakes, solution=solution, same=lambda g, e: close(g, e, atol=1e-4, rtol=1e-3))
