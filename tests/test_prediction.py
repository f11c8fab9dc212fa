"""f(x): the next-token distribution of Chapter 1."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError


def test_distribution_is_a_softmax_over_the_vocabulary(model):
    d = anatomy.next_token(model, "The capital of France is")
    assert d.logits.shape == d.probs.shape == (model.vocab_size,)
    torch.testing.assert_close(d.probs, torch.softmax(d.logits, -1))
    assert float(d.probs.double().sum()) == pytest.approx(1.0, abs=1e-4)  # float32 softmax over 262,144 entries
    assert bool((d.probs > 0).all())


def test_logits_are_the_models_own(model):
    d = anatomy.next_token(model, "今天天氣真")
    with torch.no_grad():
        own = model.hf(**model.tokenizer("今天天氣真", return_tensors="pt")).logits[0, -1]
    torch.testing.assert_close(d.logits, own)


def test_paris_ranks(smollm2, gemma):
    """Rank facts shown in Chapter 1."""
    assert [t for t, _ in anatomy.next_token(smollm2, "The capital of France is").top(1)] == ["␣Paris"]
    assert "␣Paris" in [t for t, _ in anatomy.next_token(gemma, "The capital of France is").top(5)]


def test_gemma_continues_chinese_with_characters(gemma):
    top = [t for t, _ in anatomy.next_token(gemma, "今天天氣真").top(10)]
    assert "好" in top and not any(t.startswith("<") for t in top)


def test_temperature_flattens(smollm2):
    cold = anatomy.next_token(smollm2, "The capital of France is", temperature=0.5).probs.max()
    hot = anatomy.next_token(smollm2, "The capital of France is", temperature=2.0).probs.max()
    assert cold > hot


@pytest.mark.parametrize("kwargs, words", [(dict(prompt=""), "empty"), (dict(prompt="   "), "empty"), (dict(prompt="hi", temperature=0), "temperature"), (dict(prompt="hi", temperature=-1), "temperature")])
def test_bad_input(smollm2, kwargs, words):
    with pytest.raises(AnatomyError, match=words):
        anatomy.next_token(smollm2, **kwargs)


def test_too_long_prompt(smollm2):
    with pytest.raises(AnatomyError, match="longer than"):
        anatomy.next_token(smollm2, "hi " * 9000)


def test_top_k_range(smollm2):
    with pytest.raises(AnatomyError, match="out of range"):
        anatomy.next_token(smollm2, "hi").top(0)


def test_top_tokens_as_a_table(smollm2):
    answer = anatomy.next_token(smollm2, "The capital of France is")
    t = answer.table(3)
    assert t.columns == ("rank", "next token", "probability")
    assert [r[1] for r in t.rows] == [w for w, _ in answer.top(3)] and t.rows[0][0] == 1
    assert t.rows[0][2] == f"{answer.top(1)[0][1]:.3g}"
