"""Chapter 3: hidden states, causality, and contextualized embeddings of "apple"."""

from __future__ import annotations

import pytest
import torch

import anatomy

FRUIT = ["I ate an apple for breakfast.", "She baked an apple pie for dessert."]
COMPANY = ["The company that makes the iPhone and the iPad is apple.", "My new laptop and my phone are both made by apple."]


def test_hidden_states_are_embeddings_plus_one_per_layer(model):
    h = anatomy.hidden_states(model, "how are you?")
    T = len(h.tokens)
    assert len(h.states) == model.n_layers + 1
    assert all(s.shape == (T, model.d_model) for s in h.states)


def test_state_zero_is_the_scaled_table_row(model):
    h = anatomy.hidden_states(model, "how are you?")
    ids = torch.tensor([t.id for t in h.tokens])
    expected = model.embedding_table.detach()[ids].float() * model.embed_scale  # [T, d]
    torch.testing.assert_close(h.states[0], expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_every_stage_is_raw_and_the_normed_last_one_is_kept_apart(model):
    captured = {}

    def keep(module, args, output):
        captured["out"] = (output[0] if isinstance(output, tuple) else output).detach().float()

    before = set(model.layers[-1]._forward_hooks)  # transformers keeps a hook of its own there
    handle = model.layers[-1].register_forward_hook(keep)
    try:
        h = anatomy.hidden_states(model, "how are you?")
    finally:
        handle.remove()
    assert set(model.layers[-1]._forward_hooks) == before  # ours is gone, and hidden_states removed its own
    last = captured["out"][0]  # [T, d]
    torch.testing.assert_close(h.states[-1], last, rtol=1e-5, atol=1e-5)  # raw, like every other stage
    torch.testing.assert_close(h.layer(-1), last, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h.final, model.final_norm(last).float(), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(h.final, last, atol=1e-2)  # the norm really changes it


@torch.no_grad()
def test_layer_l_is_the_hook_place_layers_l_and_the_embedding_is_apart(model):
    """The book's one numbering: hidden_states(...).layer(l) is what "layers.l" (model.layers[l]) outputs."""
    h = anatomy.hidden_states(model, "how are you?")
    L = model.n_layers
    ids = model.tokenizer("how are you?", return_tensors="pt")["input_ids"]
    places = ["embedding", *(f"layers.{i}" for i in range(L))]
    with anatomy.capture(model, *places) as seen:
        model.hf(input_ids=ids)
    torch.testing.assert_close(h.embedding, seen["embedding"][0].float(), rtol=1e-5, atol=1e-5)
    for i in range(L):
        torch.testing.assert_close(h.layer(i), seen[f"layers.{i}"][0].float(), rtol=1e-5, atol=1e-5)
        assert h.row(i) == i + 1 and h.stages[i + 1] == str(i)
    assert h.stages[0] == "embedding" and h.row("embedding") == 0 and len(h.stages) == L + 1
    torch.testing.assert_close(h.layer(-L), h.layer(0))
    for bad in (L, -L - 1, "embedding", 1.5):
        with pytest.raises(anatomy.AnatomyError):
            h.layer(bad)


def test_causality_how_identical_you_differs(model):
    how = [anatomy.token_vectors(model, s, "how") for s in ("how about you?", "how are you?")]
    you = [anatomy.token_vectors(model, s, "you") for s in ("how about you?", "how are you?", "nice to meet you")]
    torch.testing.assert_close(how[0].vectors, how[1].vectors, rtol=0, atol=1e-6)  # every layer
    for other in you[1:]:
        d = anatomy.max_difference(you[0], other)  # [L+1]
        assert d[0] == 0  # same token, same embedding
        assert (d[1:] > 1e-3).all()  # from layer 1 on, the left context shows


def test_token_vectors_finds_the_word(smollm2, gemma):
    s = anatomy.token_vectors(smollm2, FRUIT[0], "apple")
    g = anatomy.token_vectors(gemma, FRUIT[0], "apple")
    assert s.token.text == "␣apple" and s.position == 3
    assert g.token.text == "␣apple" and g.position == 4  # after <bos>
    assert s.vectors.shape == (smollm2.n_layers + 1, smollm2.d_model)
    torch.testing.assert_close(g.layer(5), g.hidden.states[6, 4])  # the output of layer 5 is row 6
    torch.testing.assert_close(g.embedding, g.hidden.embedding[4])


def test_similarity_per_layer_is_cosine(model):
    a = anatomy.token_vectors(model, FRUIT[0], "apple")
    b = anatomy.token_vectors(model, COMPANY[0], "apple")
    sim = anatomy.layer_similarity(a, b)
    assert sim.shape == (model.n_layers + 1,)
    assert sim[0] == pytest.approx(1.0, abs=1e-5)  # same token embedding
    k = model.n_layers // 2
    va, vb = a.vectors[k], b.vectors[k]
    assert float(sim[k]) == pytest.approx(float(va @ vb / (va.norm() * vb.norm())), abs=1e-5)


def test_baseline_is_mean_cosine_of_all_token_pairs(smollm2):
    hs = [anatomy.hidden_states(smollm2, s) for s in ("how are you?", "nice to meet you")]
    base = anatomy.mean_similarity(hs)
    k = 7
    vecs = torch.cat([h.states[k, 1:] for h in hs])  # position 0 (the attention sink) left out
    cos = [float(torch.nn.functional.cosine_similarity(vecs[i], vecs[j], dim=0)) for i in range(len(vecs)) for j in range(len(vecs)) if i != j]
    assert float(base[k]) == pytest.approx(sum(cos) / len(cos), abs=1e-5)


def test_baseline_leaves_out_the_first_position_in_both_families(model):
    """Gemma's <bos> and SmolLM2's first word are both attention sinks: the baseline treats them alike."""
    hs = [anatomy.hidden_states(model, s) for s in ("how are you?", "nice to meet you")]
    k = model.n_layers // 2
    vecs = torch.cat([h.states[k, 1:] for h in hs])
    unit = torch.nn.functional.normalize(vecs, dim=-1)
    n = len(vecs)
    expected = float((unit @ unit.T).sum() - n) / (n * (n - 1))
    assert float(anatomy.mean_similarity(hs)[k]) == pytest.approx(expected, abs=1e-5)
    with_sink = torch.nn.functional.normalize(torch.cat([h.states[k] for h in hs]), dim=-1)
    m = len(with_sink)
    assert abs(float((with_sink @ with_sink.T).sum() - m) / (m * (m - 1)) - expected) > 1e-3  # the sink changes it


def test_same_sense_apples_are_closer_on_the_normalized_measure(model):
    r = anatomy.word_similarity(model, FRUIT + COMPANY, "apple", ["fruit"] * 2 + ["company"] * 2)
    mid = r.normalized[:, r.middle_layers()].mean(dim=1)  # [P]
    same = r.same_sense
    assert same.sum() == 2 and (~same).sum() == 4
    assert mid[same].min() > mid[~same].max()
    torch.testing.assert_close(r.middle_mean("normalized"), mid)
    assert r.sense_gap("normalized") == pytest.approx(float(mid[same].min() - mid[~same].max()))
    assert r.sense_gap("raw") == pytest.approx(float(r.middle_mean("raw")[same].min() - r.middle_mean("raw")[~same].max()))
    with pytest.raises(anatomy.AnatomyError, match="raw"):
        r.middle_mean("cosine")
    # normalization: 1 for identical vectors (layer 0: same token), 0 at the baseline
    torch.testing.assert_close(r.normalized[:, 0], torch.ones(len(r.pairs)), rtol=0, atol=1e-4)


def test_gemma_raw_cosine_is_high_because_a_few_dimensions_dominate(gemma):
    r = anatomy.word_similarity(gemma, FRUIT + COMPANY, "apple", ["fruit"] * 2 + ["company"] * 2)
    mid = r.middle_layers()
    assert (r.raw[:, mid] > 0.9).all() and (r.baseline[mid] > 0.85).all()
    mid = gemma.n_layers // 2
    v = anatomy.token_vectors(gemma, FRUIT[0], "apple").layer(mid)
    top = anatomy.largest_dimensions(v, k=3)
    assert top.share > 0.8  # three of 640 dimensions hold most of the squared length
    assert float(top.values.abs()[0]) > 50 * top.median_abs
    # the same two dimensions, with the same signs, lead in every token of the four sentences
    states = torch.cat([v.hidden.layer(mid)[1:] for v in r.vectors])  # [N, d], <bos> left out
    assert (states.abs().topk(2, dim=-1).indices.sort(dim=-1).values == top.indices[:2].sort().values).all()
    assert (torch.sign(states[:, top.indices[:2]]) == torch.sign(top.values[:2])).all()


def test_bad_input_gets_a_clear_error(smollm2, gemma):
    with pytest.raises(anatomy.AnatomyError, match="does not occur"):
        anatomy.token_vectors(smollm2, "I ate an apple", "pear")
    with pytest.raises(anatomy.AnatomyError, match="does not occur"):
        anatomy.token_vectors(smollm2, "I ate pineapples", "apple")
    with pytest.raises(anatomy.AnatomyError, match=r"is 5 tokens .*reduce='first'"):
        anatomy.token_vectors(gemma, "Antidisestablishmentarianism is long", "Antidisestablishmentarianism")
    with pytest.raises(anatomy.AnatomyError, match="empty"):
        anatomy.token_vectors(smollm2, "   ", "apple")
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.token_vectors(smollm2, "how are you?", "you").layer(smollm2.n_layers + 1)
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.hidden_states(gemma, "how are you?").layer(-gemma.n_layers - 2)
    with pytest.raises(anatomy.AnatomyError, match="same model"):
        anatomy.layer_similarity(anatomy.token_vectors(smollm2, "hi you", "you"), anatomy.token_vectors(gemma, "hi you", "you"))


def test_a_word_of_several_tokens_can_be_reduced(gemma):
    prompt, word = "Antidisestablishmentarianism is long", "Antidisestablishmentarianism"
    first = anatomy.token_vectors(gemma, prompt, word, reduce="first")
    mean = anatomy.token_vectors(gemma, prompt, word, reduce="mean")
    assert first.token.text == "Ant" and len(mean.positions) == 5
    torch.testing.assert_close(mean.vectors, mean.hidden.states[:, 1:6].mean(dim=1))


def test_figures(smollm2):
    r = anatomy.word_similarity(smollm2, FRUIT + COMPANY, "apple", ["fruit"] * 2 + ["company"] * 2)
    fig = anatomy.plot.word_similarity([r])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 6 + 1  # six pairs and the baseline
    d = anatomy.max_difference(anatomy.token_vectors(smollm2, "how about you?", "you"), anatomy.token_vectors(smollm2, "how are you?", "you"))
    fig = anatomy.plot.differences({"you": d})
    assert len(fig.axes[0].lines) == 1
