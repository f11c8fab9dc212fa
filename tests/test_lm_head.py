"""Chapter 4: LM head, logits, softmax, temperature, sampling, unembedding with a tied table."""

from __future__ import annotations

import math

import pytest
import torch

import anatomy

PROMPT = "今天天氣真"


@pytest.fixture(scope="module")
def final(model):
    """(model, hidden states, last position's final vector [d]) for the prompt."""
    hs = anatomy.hidden_states(model, PROMPT)
    return model, hs, hs.final[-1]


def test_lm_head_product_equals_models_logits(final):
    model, hs, v = final
    assert v.shape == (model.d_model,)
    assert model.lm_head.weight.shape == (model.vocab_size, model.d_model)
    logits = anatomy.logits_from_hidden(model, v)
    assert logits.shape == (model.vocab_size,)
    assert torch.allclose(logits, hs.logits[-1], atol=1e-3, rtol=1e-4)
    # and for every position at once: [T, d] @ [d, V] -> [T, V]
    assert torch.allclose(anatomy.logits_from_hidden(model, hs.final), hs.logits, atol=1e-3, rtol=1e-4)


def test_logits_are_any_real_numbers_probabilities_are_not(final):
    model, hs, v = final
    logits = anatomy.logits_from_hidden(model, v)
    assert logits.min() < 0 < logits.max()  # signed scores, not probabilities
    p = anatomy.softmax_by_hand(logits)
    assert ((p > 0) & (p < 1)).all()
    assert math.isclose(float(p.double().sum()), 1.0, abs_tol=1e-5)


@pytest.mark.parametrize("t", [0.3, 1.0, 2.0])
def test_softmax_by_hand_equals_torch(final, t):
    _, hs, _ = final
    logits = hs.logits[-1]
    assert torch.allclose(anatomy.softmax_by_hand(logits, t), torch.softmax(logits / t, dim=-1), atol=1e-7, rtol=1e-5)
    # and it matches what next_token reports at that temperature
    nt = anatomy.next_token(final[0], PROMPT, temperature=t)
    assert torch.allclose(anatomy.softmax_by_hand(nt.logits, t), nt.probs, atol=1e-7, rtol=1e-5)


def test_subtracting_the_max_keeps_softmax_finite_and_unchanged():
    s = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.exp(s) / torch.exp(s).sum()
    assert torch.allclose(anatomy.softmax_by_hand(s), expected)
    big = anatomy.softmax_by_hand(s + 1000.0)  # exp(1003) overflows float32, the shifted form does not
    assert torch.isfinite(big).all() and torch.allclose(big, expected)


def test_higher_temperature_gives_higher_entropy(final):
    _, hs, _ = final
    logits = hs.logits[-1]
    h = [anatomy.entropy(anatomy.softmax_by_hand(logits, t)) for t in (0.3, 1.0, 2.0)]
    assert h[0] < h[1] < h[2] < math.log2(logits.numel())
    top = [float(anatomy.softmax_by_hand(logits, t).max()) for t in (0.3, 1.0, 2.0)]
    assert top[0] > top[1] > top[2]


def test_with_temperature_equals_running_again(final):
    model = final[0]
    d1 = anatomy.next_token(model, PROMPT)
    d2 = anatomy.with_temperature(d1, 2.0)
    ref = anatomy.next_token(model, PROMPT, temperature=2.0)
    assert torch.allclose(d2.probs, ref.probs, atol=1e-7, rtol=1e-5)
    assert d2.labels == ref.labels and d2.temperature == 2.0


def test_lm_head_shares_storage_with_embedding_table(model):
    assert model.lm_head.weight.data_ptr() == model.embedding_table.data_ptr()
    assert model.tied


def test_predicted_token_ranks_first_by_dot_product(final):
    model, hs, v = final
    predicted = int(hs.logits[-1].argmax())
    r = anatomy.unembedding_rank(model, v, predicted)
    assert r.dot_rank == 1  # the logits ARE these dot products (rank 1 = nearest)
    assert math.isclose(r.dot, float(hs.logits[-1, predicted]), rel_tol=1e-4, abs_tol=1e-3)
    # cosine ignores the length of each row; measured: rank 1 on Gemma 3 270M, 5 on SmolLM2-135M
    assert 1 <= r.cosine_rank <= 10
    assert r.token in r.nearest_by_cosine


def test_gemma_prediction_after_prompt(gemma):
    # measured: Gemma 3 270M continues 今天天氣真 with 冷, then 好 and 熱
    top = [t for t, _ in anatomy.next_token(gemma, PROMPT).top(3)]
    assert "冷" in top and "好" in top


def test_seeded_sampling_is_reproducible(final):
    _, hs, _ = final
    p = anatomy.softmax_by_hand(hs.logits[-1], 1.0)
    a = anatomy.sample(p, 20, seed=7)
    assert a.shape == (20,)
    assert torch.equal(a, anatomy.sample(p, 20, seed=7))
    state = torch.random.get_rng_state()
    anatomy.sample(p, 5, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # global random state untouched


def test_low_temperature_samples_concentrate(final):
    _, hs, _ = final
    logits = hs.logits[-1]
    distinct = [len(set(anatomy.sample(anatomy.softmax_by_hand(logits, t), 50, seed=0).tolist())) for t in (0.3, 2.0)]
    assert distinct[0] < distinct[1]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "hot", None, True])
def test_bad_temperature_errors(bad):
    with pytest.raises(anatomy.AnatomyError, match="temperature"):
        anatomy.softmax_by_hand(torch.zeros(3), bad)
    dist = anatomy.NextTokens("m", "p", torch.zeros(1), torch.zeros(3), torch.ones(3) / 3, 1.0, ("a", "b", "c"))
    with pytest.raises(anatomy.AnatomyError, match="temperature"):
        anatomy.with_temperature(dist, bad)


def test_bad_inputs_error(smollm2):
    with pytest.raises(anatomy.AnatomyError, match="size d=576"):
        anatomy.logits_from_hidden(smollm2, torch.zeros(640))
    with pytest.raises(anatomy.AnatomyError, match="not probabilities"):
        anatomy.sample(torch.tensor([2.0, -1.0]), 3)
    with pytest.raises(anatomy.AnatomyError, match="positive whole number"):
        anatomy.sample(torch.tensor([0.5, 0.5]), 0)
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.unembedding_rank(smollm2, torch.zeros(576), smollm2.vocab_size)


def test_temperature_figure(smollm2):
    d = anatomy.next_token(smollm2, PROMPT)
    fig = anatomy.plot.temperatures([anatomy.with_temperature(d, t) for t in (0.3, 1, 2)], k=5)
    assert len([ax for ax in fig.axes if ax.axison]) == 3
    with pytest.raises(anatomy.AnatomyError, match="No distributions"):
        anatomy.plot.temperatures([])
