"""Chapter 15: task vectors from few-shot prompts, patched or added into zero-shot prompts."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy.function_vectors import (Correct, _accuracies, continuation_id, cross_task, decode_vector, few_shot_prompts,
                                      task_accuracy, task_vector_test, task_vectors, wilson, zero_shot_prompt)
from anatomy.hooks import capture

PAIRS = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("happy", "sad"), ("wet", "dry"),
         ("early", "late"), ("rich", "poor"), ("full", "empty"), ("strong", "weak")]


def test_few_shot_prompts_are_seeded_and_shaped():
    prompts = few_shot_prompts(PAIRS, n_prompts=3, n_shots=4, seed=0)
    assert prompts == few_shot_prompts(PAIRS, n_prompts=3, n_shots=4, seed=0)
    assert prompts != few_shot_prompts(PAIRS, n_prompts=3, n_shots=4, seed=1)
    for p in prompts:
        lines = p.split("\n")
        assert len(lines) == 5 and lines[-1].endswith(":") and all(": " in line for line in lines[:-1])
        assert len(set(lines)) == 5  # no example repeated, the query is not among them
    assert zero_shot_prompt("wet") == "wet:"


def test_task_vector_is_mean_last_token_vector(model):
    prompts = few_shot_prompts(PAIRS, n_prompts=3, n_shots=3)
    v = task_vectors(model, prompts)
    assert v.shape == (model.n_layers, model.d_model)
    layer = model.n_layers // 2
    assert v[layer].shape == (model.d_model,)

    def one(p):
        ids = model.tokenizer(p, return_tensors="pt")["input_ids"]
        with capture(model, f"layers.{layer}") as seen, torch.no_grad():
            model.hf(input_ids=ids)
        return seen[f"layers.{layer}"][0, -1].float()  # [d]

    assert torch.allclose(v[layer], torch.stack([one(p) for p in prompts]).mean(0), atol=1e-3)


def test_answer_id_is_the_next_token(smollm2):
    i = continuation_id(smollm2, "hot:", "cold")
    assert smollm2.tokenizer.decode([i]).strip() == "cold"


def test_adding_zero_and_patching_the_own_vector_change_nothing(smollm2):
    """Adding the zero vector, or patching each prompt's own vector back in, gives the plain run's answers exactly."""
    test, layer = PAIRS[:6], smollm2.n_layers // 2
    prompts = [few_shot_prompts(PAIRS[6:], 1, 3, seed=k)[0].rsplit("\n", 1)[0] + "\n" + zero_shot_prompt(x) for k, (x, _) in enumerate(test)]
    plain = _accuracies(smollm2, test, None, torch.zeros(1, smollm2.d_model), "patch", prompts=prompts)
    assert 0 < float(plain[0]) <= 1  # few-shot: some answers are right, so a change would show
    added = _accuracies(smollm2, test, layer, torch.zeros(1, smollm2.d_model), "add", prompts=prompts)
    assert torch.equal(added, plain)
    assert task_accuracy(smollm2, test, layer, torch.zeros(smollm2.d_model), mode="add") == task_accuracy(smollm2, test)


def test_patching_the_few_shot_vector_restores_the_answers(gemma):
    """Patching one few-shot prompt's own last-token vector into its zero-shot query makes it answer as few-shot did."""
    pair, layer = ("wet", "dry"), gemma.n_layers - 1
    prompt = few_shot_prompts(PAIRS[:5] + [pair], 1, 5, seed=0)[0]
    prompt = prompt.rsplit("\n", 1)[0] + "\nwet:"
    own = task_vectors(gemma, [prompt])[layer]  # [d]: the last layer's output, after which only the final norm is left
    few = _accuracies(gemma, [pair], None, torch.zeros(1, gemma.d_model), "patch", prompts=[prompt])
    patched = task_accuracy(gemma, [pair], layer, own)
    assert float(few[0]) == 1.0 and patched == 1.0
    assert task_accuracy(gemma, [pair]) == 0.0  # zero-shot it does not answer


def test_decode_vector_of_the_last_layer_is_the_next_token(model):
    prompt = "The capital of France is"
    v = task_vectors(model, [prompt])[-1]  # [d] output of the last layer at the last token
    assert decode_vector(model, v, 1)[0] == anatomy.next_token(model, prompt).labels[0]


def test_shuffled_labels_keep_the_words_and_break_the_mapping():
    plain = few_shot_prompts(PAIRS, n_prompts=4, n_shots=4, seed=3)
    shuffled = few_shot_prompts(PAIRS, n_prompts=4, n_shots=4, seed=3, shuffle_labels=True)
    answer = dict(PAIRS)
    for p, q in zip(plain, shuffled):
        lp, lq = p.split("\n"), q.split("\n")
        assert lp[-1] == lq[-1]  # the same query
        assert sorted(x.split(": ")[1] for x in lp[:-1]) == sorted(x.split(": ")[1] for x in lq[:-1])
        assert all(answer[x.split(": ")[0]] != x.split(": ")[1] for x in lq[:-1])  # no example keeps its answer


def test_wilson_interval():
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and 0.69 < lo < 0.73  # 10/10: 72.2 % to 100 %
    lo, hi = wilson(0, 12)
    assert lo == 0.0 and 0.24 < hi < 0.25
    lo, hi = wilson(5, 10)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
    assert str(Correct(3, 12)).startswith("3/12 (")
    with pytest.raises(AnatomyError, match="wilson"):
        wilson(3, 2)


def test_task_vector_test_and_cross_task(gemma):
    t = task_vector_test(gemma, PAIRS[:6], PAIRS[6:8], PAIRS[8:], [0, gemma.n_layers // 2], task="antonyms",
                         n_prompts=3, n_shots=3)
    assert t.layers == (0, gemma.n_layers // 2) and t.dev_accuracy.shape == (2,) and t.layer in t.layers
    assert t.vectors.shape == (gemma.n_layers, gemma.d_model)
    for c in (t.task_vector, t.shuffled, t.zero_mean, t.zero_shot, t.few_shot):
        assert c.n == 2 and 0 <= c.k <= 2
    assert len(t.table().rows) == 5
    x = cross_task(gemma, {"a": t, "b": t}, {"a": PAIRS[8:], "b": PAIRS[8:]})
    assert x.correct[0][1] == x.correct[0][0] == t.task_vector  # the same vector on the same queries
    assert len(x.table().rows) == 2


def test_bad_input(smollm2):
    with pytest.raises(AnatomyError, match="word pairs"):
        few_shot_prompts([("hot",)])
    with pytest.raises(AnatomyError, match="n_shots"):
        few_shot_prompts(PAIRS[:3], n_shots=3)
    with pytest.raises(AnatomyError, match="mode"):
        task_accuracy(smollm2, PAIRS, 3, torch.zeros(smollm2.d_model), mode="replace")
    with pytest.raises(AnatomyError, match="both a layer and a vector"):
        task_accuracy(smollm2, PAIRS, 3)
    with pytest.raises(AnatomyError, match="out of range"):
        task_accuracy(smollm2, PAIRS, smollm2.n_layers, torch.zeros(smollm2.d_model))
    with pytest.raises(AnatomyError, match="non-empty list of few-shot"):
        task_vectors(smollm2, [])


def test_plot_names_model_and_tasks():
    from anatomy.function_vectors import TaskVectorTest
    c = Correct(1, 2)
    t = TaskVectorTest("m", "antonyms", (0, 2), torch.tensor([0.0, 0.5]), 2, c, c, c, c, c, torch.zeros(3, 4))
    fig = anatomy.plot.function_vectors([t])
    assert "m" in fig.description["en"] and "antonyms" in fig.description["en"] and "antonyms" in fig.description["zh"]
    with pytest.raises(AnatomyError, match="task_vector_test"):
        anatomy.plot.function_vectors([])
