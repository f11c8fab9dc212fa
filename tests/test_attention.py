"""Self-attention by hand (Chapters 9-10): every step equals the model's own values, on every family."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError, hooks
from random_models import in_memory as _tiny

SENTENCE = "The apple is green. What color is the apple?"
TINY_IDS = torch.arange(3, 15)  # 12 tokens: longer than the tiny Gemma's sliding window of 8


def _model_values(model, prompt, layer):
    """The model's own weights, attention output and residual stream after attention, for one layer."""
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"] if isinstance(prompt, str) else prompt.reshape(1, -1)
    places = (f"layers.{layer}.attn", f"layers.{layer}.attn.o.input", f"layers.{layer}.resid_mid")
    with torch.no_grad(), hooks.capture(model, *places) as seen:
        out = model.hf(input_ids=ids, output_attentions=True)
    return out.attentions[layer][0], *(seen[p][0] for p in places)


def _assert_equal_to_model(model, prompt, layer):
    hand = anatomy.attention_by_hand(model, prompt, layer)
    weights, attn, concat, mid = _model_values(model, prompt, layer)
    torch.testing.assert_close(hand.weights, weights, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(hand.concat, concat, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hand.attn_out, attn, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hand.residual, mid, rtol=1e-4, atol=1e-3)
    return hand


@pytest.mark.parametrize("layer", [0, 5, -1])
def test_hand_attention_equals_the_default_models(model, layer):
    hand = _assert_equal_to_model(model, SENTENCE, layer)
    T = len(hand.tokens)
    assert hand.weights.shape == (model.n_heads, T, T)
    assert hand.q.shape == (model.n_heads, T, model.head_dim) and hand.k.shape == (model.n_kv_heads, T, model.head_dim)
    torch.testing.assert_close(hand.weights.sum(-1), torch.ones(model.n_heads, T))
    assert torch.all(hand.weights.triu(diagonal=1) == 0)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3_text", "gemma3", "gpt2"])
def test_hand_attention_equals_random_weight_models(family):
    tiny = _tiny(family)
    for layer in range(tiny.n_layers):
        hand = _assert_equal_to_model(tiny, TINY_IDS, layer)
    if family.startswith("gemma3"):  # local layers: a query sees only the last 8 tokens
        assert hand.window == 8
        assert torch.all(hand.weights[:, 11, :4] == 0) and torch.all(hand.weights[:, 11, 4:] > 0)


def test_gemma_global_and_local_layers(gemma):
    assert anatomy.attention_by_hand(gemma, "兩顆青蘋果", 0).window == 512
    assert anatomy.attention_by_hand(gemma, "兩顆青蘋果", 5).window is None  # every 6th layer is global
    local, glob = anatomy.rotary(gemma, 0), anatomy.rotary(gemma, 5)
    assert (local.base, glob.base) == (10_000.0, 1_000_000.0)
    hd = gemma.head_dim
    torch.testing.assert_close(local.theta, 10_000.0 ** (-torch.arange(0, hd, 2).float() / hd), rtol=1e-4, atol=1e-7)
    assert torch.all(glob.theta[1:] < local.theta[1:])  # the global base turns more slowly


def test_gqa_heads_share_keys_but_not_weights(smollm2):
    hand = anatomy.attention_by_hand(smollm2, SENTENCE, 3)
    assert [hand.kv_group(h) for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert smollm2.layers[3].self_attn.k_proj.weight.shape == (192, 576)
    assert not torch.allclose(hand.head(0), hand.head(1), atol=1e-3)
    # W_O is a sum over heads: each head's slice of W_O adds its own contribution
    Wo, hd = smollm2.layers[3].self_attn.o_proj.weight, smollm2.head_dim
    parts = sum(hand.heads[h] @ Wo[:, h * hd:(h + 1) * hd].T for h in range(9))
    torch.testing.assert_close(parts, hand.attn_out, rtol=1e-4, atol=1e-5)


def test_positions_only_enter_through_rope(gemma):
    """Layer 0, no context: the 蘋果→青 score without RoPE is the same in both sentences, with RoPE it is not."""
    out = []
    for s in ("兩顆青蘋果", "青的山綠的水紅的蘋果"):
        h = anatomy.attention_by_hand(gemma, s, 0)
        texts = [t.text for t in h.tokens]
        i, j = texts.index("蘋果"), texts.index("青")
        out.append((float(h.q[0, i] @ h.k[0, j]), float(h.scores[0, i, j] / h.scale)))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-5)
    assert out[0][1] != pytest.approx(out[1][1], rel=1e-3)


def test_rope_depends_on_distance_only_and_keeps_length(smollm2):
    r = anatomy.rotary(smollm2, 0, 32)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(64, generator=g), torch.randn(64, generator=g)
    a, b = r.rotate(q, 5) @ r.rotate(k, 2), r.rotate(q, 30) @ r.rotate(k, 27)
    assert float(a) == pytest.approx(float(b), rel=1e-4)
    assert float(r.rotate(q, 17).norm()) == pytest.approx(float(q.norm()), rel=1e-5)
    assert float(r.theta[0]) == pytest.approx(1.0)


def test_appending_tokens_leaves_earlier_weights_alone(smollm2):
    short = anatomy.attention_by_hand(smollm2, "The apple is green.", 4)
    long = anatomy.attention_by_hand(smollm2, SENTENCE, 4)
    T = len(short.tokens)
    torch.testing.assert_close(long.weights[:, :T, :T], short.weights, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(long.residual[:T], short.residual, rtol=1e-4, atol=1e-4)


def test_timing_grows_with_length():
    tiny = _tiny("llama")
    t = anatomy.time_by_length(tiny, (16, 512))
    assert t.lengths == (16, 512) and len(t.forward) == len(t.attention) == 2
    assert t.attention[1] > t.attention[0] > 0  # 1000x more T×T work


@pytest.mark.parametrize("call, words", [
    (lambda m: anatomy.attention_by_hand(m, SENTENCE, 30), "out of range"),
    (lambda m: anatomy.attention_by_hand(m, SENTENCE, -31), "out of range"),
    (lambda m: anatomy.attention_by_hand(m, "", 0), "empty"),
    (lambda m: anatomy.attention_by_hand(m, "apple", 0).head(9), "Head 9 is out of range"),
    (lambda m: anatomy.attention_by_hand(m, "apple", 0).kv_group(-10), "out of range"),
    (lambda m: anatomy.rotary(m, 0, 1), "at least 2"),
    (lambda m: anatomy.time_by_length(m, (0,)), "positive token counts"),
    (lambda m: anatomy.plot.attention_bar(torch.ones(9, 2, 2), anatomy.tokenize(m, "apple"), head=0), "shape"),
])
def test_bad_input_gets_one_clear_sentence(smollm2, call, words):
    with pytest.raises(AnatomyError, match=words) as err:
        call(smollm2)
    assert "\n" not in str(err.value)


def test_gpt2_has_no_rotary_angles_to_show():
    with pytest.raises(AnatomyError, match="learned table of positions"):
        anatomy.rotary(_tiny("gpt2"), 0)


def test_figures(gemma):
    hand = anatomy.attention_by_hand(gemma, "兩顆青蘋果", 2)
    fig = anatomy.plot.attention_bar(hand.weights, hand.tokens, head=3, query=-1)
    assert len(fig.axes[0].patches) == len(hand.tokens)
    assert len(anatomy.plot.attention_heads(hand.weights, hand.tokens).axes) == 4
    assert len(anatomy.plot.rope([anatomy.rotary(gemma, 0, 8), anatomy.rotary(gemma, 5, 8)]).axes) == 3
    t = anatomy.Timing("x", (1, 2), (0.1, 0.2), (0.01, 0.04), 1)
    assert len(anatomy.plot.timing(t).axes) == 2
    fig = anatomy.plot.window({"a": hand.weights[0, -1]}, window=2)
    assert len(fig.axes[0].lines) == 2  # the weights and the window edge


def test_attention_projection_reads_the_family_description(smollm2, gemma):
    for m in (smollm2, gemma):
        attn = m.layers[1].self_attn
        for role, lin in zip("qkvo", (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)):
            assert torch.equal(anatomy.attention_projection(m, 1, role), lin.weight)
    with pytest.raises(anatomy.AnatomyError, match="not one of"):
        anatomy.attention_projection(smollm2, 0, "x")
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.attention_projection(smollm2, smollm2.n_layers, "q")
