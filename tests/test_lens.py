"""Chapter 7: the logit lens reads every layer with the final norm and the LM head."""

from __future__ import annotations

import pytest
import torch

import anatomy
from anatomy.lens import lens_logits

PROMPT = "今天天氣真"


@pytest.fixture(scope="module")
def lens(model):
    return model, anatomy.logit_lens(model, PROMPT, ["weather", "好"], k=5)


def test_shapes(lens):
    model, ll = lens
    T = len(anatomy.tokenize(model, PROMPT))
    L = model.n_layers
    assert len(ll.tokens) == T
    assert ll.top_ids.shape == (L + 1, T, 5) and ll.top_probs.shape == (L + 1, T, 5)
    assert ll.target_probs.shape == (L + 1, T, 2)
    assert len(ll.top_text) == L + 1 and len(ll.top_text[0]) == T and len(ll.top_text[0][0]) == 5
    assert (ll.top_probs[..., :-1] >= ll.top_probs[..., 1:]).all()  # sorted, most likely first
    assert ((ll.top_probs >= 0) & (ll.top_probs <= 1)).all()  # Gemma at <bos>, layer 0: 1.0 then exact zeros


def test_last_layer_is_the_models_own_next_token_distribution(lens):
    model, ll = lens
    own = anatomy.next_token(model, PROMPT)  # the model's forward pass, softmax at T=1
    assert torch.equal(ll.top_ids[-1, -1], own.probs.topk(5).indices)
    assert torch.allclose(ll.top_probs[-1, -1], own.probs.topk(5).values, atol=1e-5)
    ids = list(ll.target_ids)
    assert torch.allclose(ll.target_probs[-1, -1], own.probs[ids], atol=1e-6, rtol=1e-4)


def test_final_norm_is_applied_exactly_once(model):
    hs = anatomy.hidden_states(model, PROMPT)
    L = model.n_layers
    # the last layer's raw output, normed once, gives the model's own logits
    assert torch.allclose(lens_logits(model, hs, L - 1), hs.logits, atol=1e-3, rtol=1e-4)
    assert torch.allclose(lens_logits(model, hs, -1), hs.logits, atol=1e-3, rtol=1e-4)
    # norming it a second time is a different (wrong) reading: the test would catch a double norm
    twice = anatomy.logits_from_hidden(model, model.final_norm(model.final_norm(hs.layer(L - 1))))
    assert not torch.allclose(twice, hs.logits, atol=1e-2)
    # any layer, and the embedding: final norm then LM head, by hand
    by_hand = anatomy.logits_from_hidden(model, model.final_norm(hs.layer(L // 2)))
    assert torch.allclose(lens_logits(model, hs, L // 2), by_hand, atol=1e-4)
    emb = anatomy.logits_from_hidden(model, model.final_norm(hs.embedding))
    assert torch.allclose(lens_logits(model, hs, "embedding"), emb, atol=1e-4)
    every = lens_logits(model, hs)
    assert every.shape == (L + 1, len(hs.tokens), model.vocab_size)  # row 0 the embedding, row l + 1 layer l
    assert torch.allclose(lens_logits(model, hs, [L // 2, "embedding"]), every[[L // 2 + 1, 0]], atol=1e-4)


def test_embedding_layer_predicts_the_input_token_itself(gemma):
    # Tied LM head: layer 0 is (a normed, scaled) row of the table, whose best match is itself.
    ll = anatomy.logit_lens(gemma, PROMPT, k=1)
    ids = torch.tensor([t.id for t in ll.tokens])
    assert torch.equal(ll.top_ids[0, 1:, 0], ids[1:])  # every position after <bos>


def test_gemma_weather_in_english_in_middle_layers(gemma):
    # Measured on Gemma 3 270M: 天气 reads as English weather words at the outputs of layers 11-14, then Chinese.
    ll = anatomy.logit_lens(gemma, "天气", k=1)
    middle = {ll.top(i, -1, k=1)[0][0] for i in range(11, 15)}
    assert middle == {ll.top_text[i + 1][-1][0] for i in range(11, 15)}  # row l + 1 holds layer l
    assert "␣weather" in middle
    assert all(t.startswith("␣") and t[1:].isascii() for t in middle)
    assert not ll.top_text[-1][-1][0].isascii()  # the last layer is back to Chinese


def test_language_curves_shape_and_last_layer(gemma):
    prompts = ['Français: "neige" - 中文: "雪"\nFrançais: "fleur" - 中文: "']
    c = anatomy.language_curves(gemma, prompts, {"English": ["flower"], "中文": ["花"]})
    assert c.probs.shape == (1, gemma.n_layers + 1, 2)
    own = anatomy.next_token(gemma, prompts[0]).probs
    ids = [anatomy.tokenize(gemma, w, add_special_tokens=False)[0].id for w in ("flower", "花")]
    assert torch.allclose(c.probs[0, -1], own[ids], atol=1e-6, rtol=1e-4)
    assert c.mean[-1, 1] > c.mean[-1, 0]  # the last layer answers in Chinese
    assert c.probs[0, :, 0].argmax() < gemma.n_layers  # English peaks before the last layer
    assert c.peak(0, 0) == int(c.probs[0, :, 0].argmax()) - 1  # reported as a layer number, row l + 1 = layer l


def test_bad_input(smollm2):
    hs = anatomy.hidden_states(smollm2, PROMPT)
    for bad in (smollm2.n_layers, -smollm2.n_layers - 1, "final"):
        with pytest.raises(anatomy.AnatomyError, match="out of range"):
            lens_logits(smollm2, hs, bad)
    ll = anatomy.logit_lens(smollm2, "Hello", k=2)
    with pytest.raises(anatomy.AnatomyError, match="Position 5 is out of range"):
        ll.top(3, 5)
    with pytest.raises(anatomy.AnatomyError, match="Layer 99 is out of range"):
        ll.top(99)
    with pytest.raises(anatomy.AnatomyError, match="kept the top 2"):
        ll.top(3, -1, k=3)
    with pytest.raises(anatomy.AnatomyError, match="empty"):
        anatomy.logit_lens(smollm2, "")
    with pytest.raises(anatomy.AnatomyError, match="one answer per prompt"):
        anatomy.language_curves(smollm2, ["a", "b"], {"English": ["x"]})


def test_figures(gemma):
    ll = anatomy.logit_lens(gemma, "天气", k=1)
    fig = anatomy.plot.logit_lens(ll)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["<bos>", "天气"]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["emb", *(str(i) for i in range(gemma.n_layers))]  # bottom: the embedding, then layer 0...
    assert ll.stages == ("embedding", *(str(i) for i in range(gemma.n_layers)))
    t = ll.table(k=1, layers=["embedding", 0, -1])
    assert [r[0] for r in t.rows] == ["embedding", "0", str(gemma.n_layers - 1)]
    c = anatomy.language_curves(gemma, ['Français: "fleur" - 中文: "'], {"English": ["flower"], "中文": ["花"]})
    assert len(anatomy.plot.language_curves([c, c]).axes) == 2
    with pytest.raises(anatomy.AnatomyError, match="LogitLens"):
        anatomy.plot.logit_lens(c)


def test_residual_stream_each_layer_adds_its_two_writes_to_one_running_sum(model):
    rs = anatomy.residual_stream(model, PROMPT)
    L, T, d = model.n_layers, len(rs.tokens), model.d_model
    assert rs.stream.shape == (L + 1, T, d) and rs.attn.shape == rs.ffn.shape == (L, T, d)
    torch.testing.assert_close(rs.sums, rs.stream[1:])  # input + attention write + FFN write = next input
    hs = anatomy.hidden_states(model, PROMPT)
    torch.testing.assert_close(rs.stream, hs.states)  # the same stages: the embedding, then each layer's raw output
    torch.testing.assert_close(model.final_norm(rs.stream[L]), hs.final)
    assert rs.stages == hs.stages
    assert (rs.attn.norm(dim=-1) > 0).all() and (rs.ffn.norm(dim=-1) > 0).all()  # both parts write something
    n = rs.norms(-1)
    assert n.shape == (L + 1, 3) and n[-1, 1:].isnan().all()
    assert n[-1, 0] > 20 * n[0, 0]  # the stream grows by more than an order of magnitude with depth
    t = rs.table()
    assert len(t.rows) == L and max(r[-1] for r in t.rows) < 1e-3


def test_residual_stream_bad_input_and_figure(smollm2, gemma):
    rs = anatomy.residual_stream(smollm2, "Hello world")
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        rs.norms(5)
    fig = anatomy.plot.residual_stream([rs, anatomy.residual_stream(gemma, "Hello world")])
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    with pytest.raises(anatomy.AnatomyError, match="ResidualStream"):
        anatomy.plot.residual_stream(rs.stream)
