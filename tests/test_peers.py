"""Agreement with a peer library on the same weights: nnsight 0.8 (issue 16).

Each test computes one of our results and the same thing written independently in nnsight
(``LanguageModel(model.hf, tokenizer=model.tokenizer)``: read a module's output inside a trace,
apply modules by hand), on both default models and on prompts in English and Chinese.
Activation patching (Chapter 17): one layer × position patched from the clean into the corrupted run.
"""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
from nnsight import LanguageModel

import anatomy

PROMPTS = ["The capital of France is", "The opposite of hot is", "中国的首都是", "天空是蓝色的，草是"]
LENS_PROMPTS = ["The capital of France is", "中国的首都是"]  # the lens reads Gemma's 262k-row head per layer: two suffice


@contextlib.contextmanager
def nnsight_view(model):
    """nnsight's view of our model. nnsight gives every module a ``forward`` wrapper and an
    ``__nnsight__`` attribute; both are removed on exit, so later code runs on the model as loaded
    (and a later view wraps it afresh)."""
    before = {id(m): set(m.__dict__) for m in model.hf.modules()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel is deprecated in favour of TransformersModel(repo_id)
        lm = LanguageModel(model.hf, tokenizer=model.tokenizer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield lm
    finally:
        for m in model.hf.modules():
            for attr in ("forward", "__nnsight__"):
                if attr in m.__dict__ and attr not in before[id(m)]:
                    delattr(m, attr)


@pytest.fixture(scope="module")
def peer(model):
    with nnsight_view(model) as lm:
        yield model, lm


def _ids(model, prompt):
    return [t.id for t in anatomy.hidden_states(model, prompt).tokens]


def test_nnsight_view_leaves_the_model_as_loaded(model):
    before = {n: set(m.__dict__) for n, m in model.hf.named_modules()}
    with nnsight_view(model):
        assert all("forward" in m.__dict__ for m in model.hf.modules())
    assert {n: set(m.__dict__) for n, m in model.hf.named_modules()} == before


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hidden_states_equal_nnsight(peer, prompt):
    model, lm = peer
    with torch.no_grad(), lm.trace(prompt):
        rows = list().save()
        rows.append(lm.model.embed_tokens.output)  # what the first layer reads (Gemma: scaled)
        for layer in lm.model.layers:
            rows.append(layer.output)
        final = lm.model.norm.output.save()
    ref = torch.cat(rows)  # [L+1, T, d]: the embedding, then every layer's raw output
    hs = anatomy.hidden_states(model, prompt)
    assert hs.states.shape == (model.n_layers + 1, len(lm.tokenizer(prompt).input_ids), model.d_model)
    torch.testing.assert_close(hs.states, ref.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hs.final, final[0].float(), rtol=1e-6, atol=1e-6)  # the final norm's output, kept apart


def _nnsight_lens(model, lm, prompt) -> torch.Tensor:
    """The logit lens in nnsight: final norm then LM head on the embedding and every layer's output.

    The last layer's row is the model's own logits (its output goes through the final norm once).
    Gemma 3 has no final logit soft-capping (Gemma 2 had); apply it if the config asks for it.
    """
    L = model.n_layers
    with torch.no_grad(), lm.trace(prompt):
        rows = list().save()
        rows.append(lm.lm_head(lm.model.norm(lm.model.embed_tokens.output)))
        for i, layer in enumerate(lm.model.layers):
            if i < L - 1:
                rows.append(lm.lm_head(lm.model.norm(layer.output)))
        rows.append(lm.lm_head.output)
    logits = torch.cat(rows).float()  # [L+1, T, V]
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits[:-1] = cap * torch.tanh(logits[:-1] / cap)  # the model's own output is already capped
    return logits


@pytest.mark.parametrize("prompt", LENS_PROMPTS)
def test_logit_lens_equals_nnsight(peer, prompt):
    model, lm = peer
    ref = _nnsight_lens(model, lm, prompt)  # [L+1, T, V]
    hs = anatomy.hidden_states(model, prompt)
    torch.testing.assert_close(anatomy.lens_logits(model, hs), ref, rtol=1e-5, atol=2e-4)

    targets = [" Paris", "北京", " cold"]
    lens = anatomy.logit_lens(model, prompt, targets, k=5)
    probs = torch.softmax(ref, dim=-1)
    top = probs.topk(5, dim=-1)
    torch.testing.assert_close(lens.top_probs, top.values, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(probs.gather(-1, lens.top_ids), lens.top_probs, rtol=1e-4, atol=1e-6)
    # the most likely token is the same wherever it leads clearly (ties may order either way)
    clear = (top.values[..., 0] - top.values[..., 1]) > 1e-4
    assert torch.equal(lens.top_ids[..., 0][clear], top.indices[..., 0][clear])
    torch.testing.assert_close(lens.target_probs, probs[..., list(lens.target_ids)], rtol=1e-4, atol=1e-7)
    # and the last row is the model's own next-token distribution
    torch.testing.assert_close(lens.top_probs[-1], torch.softmax(hs.logits, -1).topk(5, dim=-1).values, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_attention_weights_equal_nnsight(peer, prompt):
    model, lm = peer
    with torch.no_grad(), lm.trace(prompt):
        rows = list().save()
        for layer in lm.model.layers:
            rows.append(layer.self_attn.output[1])  # eager attention returns (output, weights [1, H, T, T])
    ref = torch.cat(rows).float()  # [L, H, T, T]
    ours = anatomy.attention_weights(model, prompt).weights
    assert ours.shape == ref.shape == (model.n_layers, model.n_heads, len(_ids(model, prompt)), len(_ids(model, prompt)))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("prompt", ["My favourite food is", "我最喜欢的食物是"])
def test_steered_generation_equals_nnsight(peer, prompt):
    """Add strength × direction to one layer's output at every position and step, generate 20 tokens greedily."""
    model, lm = peer
    layer, strength = model.n_layers // 2, 4.0
    v = anatomy.direction(model, ["I love this, it is wonderful.", "我今天非常开心。"],
                          ["I hate this, it is awful.", "我今天非常难过。"], layer)
    with anatomy.steer(model, layer, v, strength):
        ours = anatomy.generate(model, prompt, max_new_tokens=20)
    assert ours != anatomy.generate(model, prompt, max_new_tokens=20)  # the steering changes the text

    with torch.no_grad(), lm.generate(prompt, max_new_tokens=20, do_sample=False) as tracer:
        new = list().save()
        for _ in tracer.all():  # every step: the prompt, then each new token
            lm.model.layers[layer].output = lm.model.layers[layer].output + strength * v
            new.append(lm.lm_head.output[0, -1].argmax().item())
    eos = model.tokenizer.eos_token_id
    new = new[:new.index(eos)] if eos in new else new
    assert ours == model.tokenizer.decode(new)


@pytest.mark.parametrize("pair", [("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
                                  ("法国的首都叫", "德国的首都叫", "巴黎", "柏林")], ids=["en", "zh"])
def test_activation_patching_equals_nnsight(peer, pair):
    """One layer's clean output at one position written into the corrupted run: the logit difference (Chapter 17)."""
    model, lm = peer
    clean, corrupted, a, b = pair
    if len(_ids(model, clean)) != len(_ids(model, corrupted)):
        with pytest.raises(anatomy.AnatomyError, match="same number of tokens"):
            anatomy.activation_patching(model, clean, corrupted, a, b, layers=[0], heads=False)
        return
    layer = model.n_layers // 2
    ours = anatomy.activation_patching(model, clean, corrupted, a, b, layers=[layer], heads=False)
    ia, ib = anatomy.answer_id(model, a), anatomy.answer_id(model, b)
    T = ours.residual.shape[1]
    differ = [p for p, (x, y) in enumerate(zip(_ids(model, clean), _ids(model, corrupted))) if x != y]
    for p in (differ[0], T - 1):
        with torch.no_grad(), lm.trace(clean):
            v = lm.model.layers[layer].output[:, p].save()
        with torch.no_grad(), lm.trace(corrupted):
            lm.model.layers[layer].output[:, p] = v
            logits = lm.lm_head.output.save()
        ref = float(logits[0, -1, ia] - logits[0, -1, ib])
        assert float(ours.residual[layer, p]) == pytest.approx(ref, abs=1e-4)
    assert abs(float(ours.residual[layer, differ[0]]) - ours.corrupted_difference) > 0.1  # the patch did something


@pytest.mark.parametrize("kind", ["attn", "mlp"])
def test_component_patching_equals_nnsight(peer, kind):
    """One layer's attention (or MLP) output written from the clean run into the corrupted run, at the
    subject's positions and at the last position: the logit difference (Chapter 17, Meng et al.'s split)."""
    model, lm = peer
    pair = anatomy.fact_pairs(model, "en", n=2, dev=0).pairs[0]
    layer = model.n_layers // 2
    ours = anatomy.component_patching(model, [pair], layers=[layer], kinds=(kind,), directions=("denoise",))
    ia, ib = pair.answer_ids
    k = anatomy.circuits.KINDS.index(kind)
    for g, positions in enumerate((list(pair.subject), [pair.n_tokens - 1])):
        module = lambda: lm.model.layers[layer].self_attn if kind == "attn" else lm.model.layers[layer].mlp  # noqa: E731
        with torch.no_grad(), lm.trace(pair.clean):
            out = module().output
            v = (out[0] if kind == "attn" else out)[:, positions].save()
        with torch.no_grad(), lm.trace(pair.corrupted):
            if kind == "attn":
                module().output[0][:, positions] = v
            else:
                module().output[:, positions] = v
            logits = lm.lm_head.output.save()
        ref = float(logits[0, -1, ia] - logits[0, -1, ib])
        assert float(ours.denoised[0, k, layer, g]) == pytest.approx(ref, abs=1e-4)
