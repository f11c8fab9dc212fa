"""Chapter 11: the FFN and its neurons by hand equal the model's own values, in every family."""

import importlib

import pytest
import torch

import anatomy
from anatomy import AnatomyError, hooks

ffn = importlib.import_module("anatomy.ffn")


def _tiny_model(family):
    from random_models import in_memory

    return in_memory(family)


@pytest.mark.parametrize("layer", [0, -1])
def test_ffn_by_hand_equals_model(model, layer):
    run = anatomy.ffn_run(model, "The capital of France is Paris.", layer)
    hand = anatomy.ffn_by_hand(model, run.x, layer)
    assert hand.shape == run.output.shape == run.x.shape
    torch.testing.assert_close(hand, run.output, rtol=1e-4, atol=1e-4)
    # each position alone gives the same row: the FFN never mixes positions
    torch.testing.assert_close(anatomy.ffn_by_hand(model, run.x[1], layer), run.output[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3_text", "gemma3", "gpt2"])
@torch.no_grad()
def test_ffn_and_neuron_by_hand_on_random_weights(family):
    model = _tiny_model(family)
    ids = torch.tensor([[1, 17, 42, 99, 7, 3]])
    places = ("layers.1.mlp.input", "layers.1.mlp.neurons", "layers.1.mlp")
    with hooks.capture(model, *places) as seen:
        model.hf(input_ids=ids)
    x, neurons, out = (seen[p][0] for p in places)
    torch.testing.assert_close(anatomy.ffn_by_hand(model, x, 1), out, rtol=1e-4, atol=1e-5)
    w = anatomy.ffn_weights(model, 1)
    assert (w.gate is None) == (family == "gpt2")  # GPT-2: c_fc -> GELU -> c_proj, no gate
    for i in (0, 5, w.n_neurons - 1):
        steps = anatomy.neuron_by_hand(anatomy.neuron(model, 1, i), x[3])
        assert steps.output == pytest.approx(float(neurons[3, i]), rel=1e-4, abs=1e-5)


def test_one_neuron_by_hand_matches_intermediate_activation(model):
    run = anatomy.ffn_run(model, "Two green apples.", 3)
    idx = int(run.neurons[-1].abs().argmax())
    n = anatomy.neuron(model, 3, idx)
    assert n.up.shape == n.value.shape == n.gate.shape == (model.d_model,)
    steps = anatomy.neuron_by_hand(n, run.x[-1])
    assert steps.output == pytest.approx(float(run.neurons[-1, idx]), rel=1e-4, abs=1e-5)
    assert steps.activated == pytest.approx(float(ffn.act_fn(n.activation, torch.tensor(steps.gate_sum))), rel=1e-5)


def test_activations_written_out_equal_torch():
    z = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(ffn.act_fn("silu", z), torch.nn.functional.silu(z))
    torch.testing.assert_close(ffn.act_fn("gelu_tanh", z), torch.nn.functional.gelu(z, approximate="tanh"))
    torch.testing.assert_close(ffn.act_fn("relu", z), torch.relu(z))


def test_neuron_activations_equal_single_runs(smollm2):
    corpus = ("The cat sat on the mat.", "Paris is a city.", "Hi")  # different lengths: padding on the right
    acts = anatomy.neuron_activations(smollm2, corpus, 4)
    run = anatomy.ffn_run(smollm2, corpus[1], 4)
    n0 = len(anatomy.tokenize(smollm2, corpus[0])) - 1  # the first position of each sentence is left out
    assert acts.values.shape == (sum(len(anatomy.tokenize(smollm2, c)) - 1 for c in corpus), smollm2.config.intermediate_size)
    torch.testing.assert_close(acts.values[n0:n0 + run.neurons.shape[0] - 1], run.neurons[1:], rtol=1e-4, atol=1e-4)
    top = acts.top(7, k=3)
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]
    low = acts.top(7, k=2, sign=-1)
    assert low[0][2] <= low[1][2] <= top[-1][2]
    # tokens are Token objects, the same ones a run of the sentence reads (its first position left out)
    assert acts.tokens[n0:n0 + len(run.tokens) - 1] == run.tokens[1:]
    assert run.tokens == tuple(anatomy.tokenize(smollm2, corpus[1]))


def test_promoted_tokens_of_a_token_direction(model):
    """The value vector read through the LM head: ordered scores, and +v and -v promote different tokens."""
    w = anatomy.ffn_weights(model, -1)
    n = anatomy.neuron(model, -1, 0)
    promoted = anatomy.promoted_tokens(model, n, k=5)
    assert len(promoted) == 5 and promoted[0][1] >= promoted[-1][1]
    minus = anatomy.promoted_tokens(model, n, k=5, sign=-1)
    assert promoted[0][0] not in [t for t, _ in minus]  # +v and -v promote different tokens
    assert w.down.shape == (model.d_model, w.n_neurons)


def test_neurons_pushing_paris(model):
    rows = anatomy.neurons_pushing(model, "The capital of France is", model.n_layers - 4, " Paris", k=3)
    assert len(rows) == 3 and rows[0].push >= rows[1].push >= rows[2].push > 0
    assert all(isinstance(r, anatomy.Push) and r == (r.neuron, r.activation, r.push) for r in rows)
    pushes = anatomy.neuron_logit_attribution(model, "The capital of France is", model.n_layers - 4, " Paris")
    assert isinstance(pushes, anatomy.NeuronPushes) and pushes.pushes.shape == pushes.activations.shape
    assert rows[0].neuron == int(pushes.pushes.argmax())


@torch.no_grad()
def test_neuron_pushes_add_up_to_the_ffn_direct_effect(model):
    """Issue 13 §3: one shared denominator, so the neurons' direct effects sum to the FFN's direct effect."""
    from anatomy.families.base import gain

    layer, prompt, token = model.n_layers - 4, "The capital of France is", " Paris"
    acts, push = ffn.neuron_logit_attribution(model, prompt, layer, token)  # [m], [m]
    tid = anatomy.single_token_id(model, token)
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    places = (f"layers.{layer}", f"layers.{layer}.resid_mid", f"layers.{model.n_layers - 1}", f"layers.{layer}.mlp.neurons")
    with hooks.capture(model, *places) as seen:
        logits = model.hf(input_ids=ids).logits[0, -1]
    update = (seen[places[0]] - seen[places[1]])[0, -1]  # [d] what the FFN sub-layer added (after Gemma's post-FFN norm)
    h = seen[places[2]][0, -1]  # [d] the last residual stream, before the final norm
    rms = torch.sqrt(h.pow(2).mean() + model.arch.final_norm.eps)
    g = gain(model.decoder, model.arch.final_norm)
    row = model.lm_head.weight[tid]
    torch.testing.assert_close(row @ (g * h / rms), logits[tid], rtol=1e-4, atol=1e-4)  # the fixed denominator is the model's
    direct = row @ (g * update / rms)  # the FFN's direct contribution to the logit
    torch.testing.assert_close(push.sum(), direct, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(acts, seen[places[3]][0, -1])
    rows = anatomy.neurons_pushing(model, prompt, layer, token, k=3)
    assert [r[0] for r in rows] == push.topk(3).indices.tolist()
    assert rows[0][2] == pytest.approx(float(push.max()))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: anatomy.ffn_weights(m, 99), "out of range"),
        (lambda m: anatomy.neuron(m, 0, 10**6), "Neuron 1000000 is out of range"),
        (lambda m: anatomy.neuron(m, 0, -1), "out of range"),
        (lambda m: anatomy.ffn_by_hand(m, torch.zeros(3, 7), 0), "size d="),
        (lambda m: anatomy.ffn_run(m, "", 0), "empty"),
        (lambda m: anatomy.neurons_pushing(m, "The capital of France is", 0, " Parisian city"), "tokens"),
        (lambda m: anatomy.neuron_activations(m, (), 0), "corpus"),
        (lambda m: anatomy.neuron_activations(m, 0, ("A sentence.",)), "model, corpus, layer"),
    ],
)
def test_bad_input_gets_one_clear_sentence(smollm2, call, words):
    with pytest.raises(AnatomyError, match=words) as err:
        call(smollm2)
    assert "\n" not in str(err.value)
