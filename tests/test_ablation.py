"""Chapter 14: ablation of FFN neurons and attention heads, neurons that separate two kinds of input."""

import contextlib

import pytest
import torch

import anatomy
from anatomy import hooks

PROMPT = "The dogs in the garden"
PLURAL = ["The dogs", "The cars", "In the garden, the trees", "The birds"]
SINGULAR = ["The dog", "The car", "In the garden, the tree", "The bird"]


def _logits(model, prompt=PROMPT):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.hf(input_ids=ids).logits[0]  # [T, V]


def _run(model, layer, prompt=PROMPT):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    places = {"input": f"layers.{layer}.mlp.input", "neurons": f"layers.{layer}.mlp.neurons", "mlp": f"layers.{layer}.mlp",
              "heads": f"layers.{layer}.attn.o.input", "attn": f"layers.{layer}.attn"}
    with torch.no_grad(), hooks.capture(model, *places.values()) as seen:
        logits = model.hf(input_ids=ids).logits[0]
    return logits, {k: seen[p][0] for k, p in places.items()}


def test_ablating_nothing_changes_nothing(model):
    layer = model.n_layers // 2
    clean = _logits(model)
    with anatomy.ablate(model, layer, neurons=[], heads=[]):
        same = _logits(model)
    assert torch.equal(clean, same)


def test_zero_ablating_a_neuron_removes_exactly_its_write(model):
    """FFN output with neuron i removed = the by-hand FFN output minus activation_i × column i of W_down."""
    layer, i = model.n_layers // 3, 7
    _, clean = _run(model, layer)
    with anatomy.ablate(model, layer, neurons=[i]):
        _, cut = _run(model, layer)
    assert torch.equal(cut["input"], clean["input"])  # the FFN reads the same input
    assert (cut["neurons"][:, i] == 0).all() and clean["neurons"][:, i].abs().max() > 0
    assert torch.equal(torch.cat([cut["neurons"][:, :i], cut["neurons"][:, i + 1:]], 1),
                       torch.cat([clean["neurons"][:, :i], clean["neurons"][:, i + 1:]], 1))
    write = clean["neurons"][:, i:i + 1] * anatomy.ffn_weights(model, layer).down[:, i]  # [T, d]
    by_hand = anatomy.ffn_by_hand(model, clean["input"], layer)  # [T, d]
    assert torch.allclose(cut["mlp"], by_hand - write, atol=1e-4)
    assert not torch.allclose(cut["mlp"], clean["mlp"], atol=1e-4)


def test_mean_ablation_with_the_neurons_own_value_changes_nothing(model):
    layer, ns = model.n_layers // 2, [3, 11, 200]
    logits, clean = _run(model, layer)
    own = torch.zeros(anatomy.ffn_weights(model, layer).n_neurons)
    own[ns] = clean["neurons"][-1, ns].float()
    means = anatomy.Means(model.name, layer, own, torch.zeros(model.n_heads, model.head_dim))
    with anatomy.ablate(model, layer, neurons=ns, mean=means, position=-1):
        same = _logits(model)
    assert torch.allclose(same, logits, atol=1e-4)
    with anatomy.ablate(model, layer, neurons=ns, position=-1):  # zero instead: the last position changes only
        zeroed = _logits(model)
    assert torch.equal(zeroed[:-1], logits[:-1]) and not torch.allclose(zeroed[-1], logits[-1], atol=1e-4)


def test_zero_ablating_a_head_removes_its_slice_of_w_o(model):
    layer, h = model.n_layers // 2, model.n_heads - 1
    hd = model.head_dim
    _, clean = _run(model, layer)
    with anatomy.ablate(model, layer, heads=[h]):
        _, cut = _run(model, layer)
    assert (cut["heads"][:, h * hd:(h + 1) * hd] == 0).all()
    assert torch.equal(cut["heads"][:, :h * hd], clean["heads"][:, :h * hd])
    o = hooks.module_at(model, f"layers.{layer}.attn.o.input")[0]
    head_write = clean["heads"][:, h * hd:(h + 1) * hd] @ o.weight[:, h * hd:(h + 1) * hd].T  # [T, d]
    assert torch.allclose(cut["attn"], clean["attn"] - head_write, atol=1e-4)


def test_hooks_are_gone_after_the_block(smollm2):
    clean = _logits(smollm2)
    with pytest.raises(RuntimeError):
        with anatomy.ablate(smollm2, 3, neurons=list(range(50)), heads=[0, 1]):
            raise RuntimeError("inside")
    assert torch.equal(_logits(smollm2), clean)


@pytest.mark.parametrize("kwargs, words", [
    (dict(heads=[99]), "Head 99 is out of range"),
    (dict(neurons=[10 ** 6]), "out of range"),
    (dict(neurons="all"), "list of indices"),
    (dict(neurons=[1], position=1.5), "position"),
])
def test_bad_input_is_a_clear_error(smollm2, kwargs, words):
    with pytest.raises(anatomy.AnatomyError, match=words):
        with anatomy.ablate(smollm2, 2, **kwargs):
            pass


def test_mean_must_come_from_the_same_layer(smollm2):
    means = anatomy.mean_activations(smollm2, SINGULAR, 4)
    assert means.neurons.shape == (anatomy.ffn_weights(smollm2, 4).n_neurons,)
    assert means.heads.shape == (smollm2.n_heads, smollm2.head_dim)
    with pytest.raises(anatomy.AnatomyError, match="layer=5"):
        with anatomy.ablate(smollm2, 5, neurons=[1], mean=means):
            pass
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.ablate(smollm2, 99, neurons=[1]).__enter__()


def test_last_token_neurons_equal_one_prompt_at_a_time(smollm2):
    batch = anatomy.last_token_neurons(smollm2, ["The dog", "In the garden, the trees"])  # [2, L, m]
    assert batch.shape == (2, smollm2.n_layers, anatomy.ffn_weights(smollm2, 0).n_neurons)
    alone = anatomy.last_token_neurons(smollm2, ["In the garden, the trees"])
    assert torch.allclose(batch[1], alone[0], atol=1e-4)


def test_separation_finds_number_neurons_that_hold_on_held_out_nouns(smollm2):
    nouns = "dog cat car book house tree bird friend student teacher river window table chair flower road".split()
    sep = anatomy.separating_neurons(smollm2, [f"The {n}s" for n in nouns], [f"The {n}" for n in nouns])
    assert sep.scores.shape == (smollm2.n_layers, anatomy.ffn_weights(smollm2, 0).n_neurons)
    layer, n, d = sep.top(1)[0]
    assert layer == sep.best_layer and abs(d) == pytest.approx(float(sep.scores.abs().max()))
    held = anatomy.separating_neurons(smollm2, ["The girls", "Yesterday the boys", "The songs"], ["The girl", "Yesterday the boy", "The song"])
    assert held.scores[layer, n].sign() == torch.tensor(d).sign() and abs(float(held.scores[layer, n])) > 2
    assert [t[1] for t in sep.top(3, layer)] == sep.scores[layer].abs().topk(3).indices.tolist()


TEXTS = ["The weather changed slowly over the afternoon, and by evening the streets were wet and quiet.",
         "A language model reads a sequence of tokens and predicts the next one, one position at a time.",
         "She opened the window, looked at the garden below and decided to plant tomatoes this year."]


def test_neuron_ablation_baseline_loss_and_controls(smollm2):
    layer = smollm2.n_layers // 2
    means = anatomy.mean_activations(smollm2, PLURAL + SINGULAR, layer)
    r = anatomy.neuron_ablation(smollm2, PLURAL, SINGULAR, layer, [5, 9], " are", " is", texts=TEXTS, mean=means, controls=2)
    pl = anatomy.marker_difference(smollm2, PLURAL, [" are"], [" is"])
    sg = anatomy.marker_difference(smollm2, SINGULAR, [" are"], [" is"])
    assert r.baseline == pytest.approx(float(pl.mean() - sg.mean()), abs=1e-4) and r.baseline > 3
    # the untouched loss is the library's next-token loss on the same texts, cut at the same length
    clean = anatomy.next_token_loss(smollm2, TEXTS, 0, max_tokens=anatomy.ablation.LOSS_TOKENS, skip=anatomy.ablation.LOSS_SKIP)
    assert r.clean_loss == pytest.approx(clean, abs=1e-4)
    assert [a.how for a in r.removed] == ["zero", "mean", "resample"] and r["zero"].neurons == (5, 9)
    assert len(r.controls) == 2 and r.neurons == (5, 9)
    with anatomy.ablate(smollm2, layer, neurons=[5, 9]):  # the batched zero ablation equals the hooked model's
        zero_loss = anatomy.next_token_loss(smollm2, TEXTS, 0, max_tokens=anatomy.ablation.LOSS_TOKENS, skip=anatomy.ablation.LOSS_SKIP)
        zpl = anatomy.marker_difference(smollm2, PLURAL, [" are"], [" is"])
        zsg = anatomy.marker_difference(smollm2, SINGULAR, [" are"], [" is"])
    assert r["zero"].loss == pytest.approx(zero_loss, abs=1e-4)
    assert r["zero"].gap == pytest.approx(float(zpl.mean() - zsg.mean()), abs=1e-4)
    sets = anatomy.random_neurons(smollm2, layer, 2, 2, exclude=[5, 9], seed=0)
    assert all(len(s) == 2 and not {5, 9} & set(s) for s in sets)
    assert [c.neurons for c in r.controls] == [tuple(s) for s in sets]
    every = list(range(anatomy.ffn_weights(smollm2, layer).n_neurons))
    whole = anatomy.neuron_ablation(smollm2, PLURAL, SINGULAR, layer, every, " are", " is", texts=TEXTS, how="zero", controls=0)
    assert abs(whole["zero"].gap - whole.baseline) > 0.05 * whole.baseline  # removing the whole FFN layer matters
    assert whole["zero"].loss_rise > 0.05


def test_scaling_by_one_changes_nothing_and_by_zero_is_zero_ablation(smollm2):
    layer = smollm2.n_layers // 2
    s = anatomy.neuron_scaling(smollm2, PLURAL, SINGULAR, layer, 7, " are", " is", texts=TEXTS, factors=(1.0, 0.0))
    assert float(s.gaps[0]) == pytest.approx(s.baseline, abs=1e-4) and float(s.losses[0]) == pytest.approx(s.clean_loss, abs=1e-4)
    r = anatomy.neuron_ablation(smollm2, PLURAL, SINGULAR, layer, [7], " are", " is", texts=TEXTS, how="zero", controls=0)
    assert float(s.gaps[1]) == pytest.approx(r["zero"].gap, abs=1e-4) and float(s.losses[1]) == pytest.approx(r["zero"].loss, abs=1e-4)


def test_resample_from_the_prompts_themselves_changes_nothing(smollm2):
    """Each prompt has a different length in tokens, so each draws its own values back: the gap cannot move."""
    a, b = ["The dogs in the big garden"], ["The dog"]
    layer = smollm2.n_layers // 2
    means = anatomy.mean_activations(smollm2, a + b, layer)
    r = anatomy.neuron_ablation(smollm2, a, b, layer, list(range(40)), " are", " is", texts=TEXTS, mean=means,
                                how="resample", controls=0)
    assert r["resample"].gap == pytest.approx(r.baseline, abs=1e-4)


def test_per_position_mean_of_a_sink_only_neuron_changes_nothing_after_position_0(smollm2):
    """A neuron that is 0 everywhere but position 0 (as a sink neuron nearly is): mean ablation with position 0 kept apart
    writes 0 after position 0 and the sink's own mean at it, so nothing changes; pooling position 0 in writes the sink's
    value everywhere and changes every later position."""
    layer, n = smollm2.n_layers // 2, 11

    def sink_only(x):  # x: [B, T, m]
        x = x.clone()
        x[:, 0, n], x[:, 1:, n] = 500.0, 0.0
        return x

    prompts = ["The dogs in the garden", "A cat sat on the old mat today"]
    with hooks.edit(smollm2, f"layers.{layer}.mlp.neurons", sink_only):
        apart = anatomy.mean_activations(smollm2, prompts, layer)
        pooled = anatomy.mean_activations(smollm2, prompts, layer, pool_first=True)
        clean = _logits(smollm2)
        with anatomy.ablate(smollm2, layer, neurons=[n], mean=apart):
            same = _logits(smollm2)
        with anatomy.ablate(smollm2, layer, neurons=[n], mean=pooled):
            broken = _logits(smollm2)
    assert float(apart.neurons[n]) == 0 and float(apart.first_neurons[n]) == 500
    assert torch.allclose(same, clean, atol=1e-4)
    assert float(pooled.neurons[n]) > 20 and not torch.allclose(broken[1:], clean[1:], atol=1e-2)


def test_nulls_are_seeded(smollm2):
    layer = smollm2.n_layers // 2
    assert anatomy.random_neurons(smollm2, layer, 5, 3, seed=4) == anatomy.random_neurons(smollm2, layer, 5, 3, seed=4)
    assert anatomy.random_neurons(smollm2, layer, 5, 3, seed=4) != anatomy.random_neurons(smollm2, layer, 5, 3, seed=5)
    ranked = list(range(20))
    args = (smollm2, PLURAL, SINGULAR, layer, ranked, " are", " is")
    one = anatomy.dose_response(*args, texts=TEXTS, ks=(1, 5), how="zero", sets=3, loss_sets=1, seed=2)
    two = anatomy.dose_response(*args, texts=TEXTS, ks=(1, 5), how="zero", sets=3, loss_sets=1, seed=2)
    other = anatomy.dose_response(*args, texts=TEXTS, ks=(1, 5), how="zero", sets=3, loss_sets=1, seed=3)
    assert torch.equal(one.random_gaps, two.random_gaps) and not torch.equal(one.random_gaps, other.random_gaps)
    assert one.random_gaps.shape == (2, 3) and one.random_losses.shape == (2, 1)
    r = anatomy.neuron_ablation(smollm2, PLURAL, SINGULAR, layer, [5], " are", " is", texts=TEXTS, how="zero", controls=2, seed=1)
    assert one.chosen[0].gap == pytest.approx(anatomy.neuron_ablation(
        smollm2, PLURAL, SINGULAR, layer, [0], " are", " is", texts=TEXTS, how="zero", controls=0)["zero"].gap, abs=1e-4)
    assert r.controls[0].neurons == tuple(anatomy.random_neurons(smollm2, layer, 1, 2, exclude=[5], seed=1)[0])


def test_sink_neurons_fire_at_position_0(smollm2):
    s = anatomy.sink_neurons(smollm2, TEXTS, 2)
    top = s.neurons[0]
    assert top.first.shape == (len(TEXTS),) and float(top.first.abs().min()) > 10 * float(top.rest.max())
    assert "position 0" in str(s.table())


def test_attribution_estimate_agrees_with_real_ablation_for_its_top_neuron(smollm2):
    attr = anatomy.neuron_attribution(smollm2, PLURAL, SINGULAR, " are", " is")
    assert attr.zero.shape == (smollm2.n_layers, anatomy.ffn_weights(smollm2, 0).n_neurons)
    layer, n, estimate = attr.top(1)[0]
    r = anatomy.neuron_ablation(smollm2, PLURAL, SINGULAR, layer, [n], " are", " is", texts=TEXTS, how="zero", controls=0)
    assert attr.gap == pytest.approx(r.baseline, abs=1e-3)
    real = r["zero"].gap - r.baseline
    assert real * estimate > 0 and abs(real) > 0.3 * abs(estimate)


def test_head_ablation_batch_equals_one_head_at_a_time(model):
    prompt = "The apple is green. What color is the apple? The apple is"
    r = anatomy.head_ablation(model, prompt, " green")
    assert r.logprobs.shape == (model.n_layers, model.n_heads)
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    tid = anatomy.single_token_id(model, " green")
    with torch.no_grad():
        base = torch.log_softmax(model.hf(input_ids=ids).logits[0, -1].float(), -1)[tid]
    assert r.baseline == pytest.approx(float(base), abs=1e-4)
    for layer, head, drop in r.top(2):
        with anatomy.ablate(model, layer, heads=[head]), torch.no_grad():
            lp = torch.log_softmax(model.hf(input_ids=ids).logits[0, -1].float(), -1)[tid]
        assert float(base - lp) == pytest.approx(drop, abs=1e-3)
    assert r.top(1)[0][2] > 0.3  # some head matters for fetching the colour


def test_top_contexts_group_the_strongest_activations():
    tokens = tuple(anatomy.Token(i, t, t, False) for i, t in enumerate(("␣cat", "␣Cat", "␣dog", "a")))
    acts = anatomy.NeuronActivations("m", 0, tokens, ("x[␣cat]", "y[␣Cat]", "z[␣dog]", "[a]"),
                                     torch.tensor([[3.0], [2.0], [2.5], [-4.0]]))
    top = anatomy.top_contexts(acts, 0, 3)
    assert [(g[0], g[1]) for g in top.groups] == [("␣cat", 2), ("␣dog", 1)]
    assert anatomy.top_contexts(acts, 0, 1, sign=-1).groups[0][:2] == ("a", 1)
    assert "token" in str(top.table())


def test_plots_describe_model_and_layer(smollm2):
    sep = anatomy.separating_neurons(smollm2, PLURAL, SINGULAR)
    fig = anatomy.plot.neuron_histograms(sep, sep.top(2), labels=("plural", "singular"))
    assert smollm2.name in fig.description["en"] and f"layer {sep.top(1)[0][0]}" in fig.description["en"]
    with pytest.raises(anatomy.AnatomyError):
        anatomy.plot.ablation_gaps([])


def test_dose_and_scaling_figures_describe_what_they_show():
    a = anatomy.Ablated("mean", (1,), 9.0, 5.1, 10.0, 5.0)
    dose = anatomy.DoseResponse("m", 3, "mean", (1, 5), 10.0, 5.0, (a, a), torch.tensor([[10.0, 9.9], [9.8, 10.1]]),
                                torch.tensor([[5.0], [5.01]]))
    assert a.kept == pytest.approx(0.9) and a.loss_rise == pytest.approx(0.1)
    assert dose.share_below(0) == 0 and "k = 1, 5" in anatomy.plot.dose_response(dose).description["en"]
    s = anatomy.NeuronScaling("m", 3, 7, torch.tensor([-1.0, 1.0]), torch.tensor([8.0, 10.0]), torch.tensor([5.1, 5.0]), 10.0, 5.0)
    fig = anatomy.plot.neuron_scaling(s)
    assert "neuron 7" in fig.description["en"] and "-1" in fig.description["zh"]
    with pytest.raises(anatomy.AnatomyError):
        anatomy.plot.dose_response([])


def test_removing_no_heads_changes_nothing_and_heads_removed_in_a_batch_equal_the_hooked_model(smollm2):
    layer = smollm2.n_layers // 2
    none = anatomy.head_set_ablation(smollm2, PLURAL, SINGULAR, [], " are", " is", texts=TEXTS, reference=PLURAL + SINGULAR,
                                     sets=2, loss_sets=1)
    assert all(a.gap == pytest.approx(none.baseline, abs=1e-4) and a.loss == pytest.approx(none.clean_loss, abs=1e-4)
               for a in none.removed)
    assert torch.allclose(none.random_gaps, torch.full_like(none.random_gaps, none.baseline), atol=1e-4)
    heads = [(layer, 1), (layer, 4), (layer + 2, 0)]
    r = anatomy.head_set_ablation(smollm2, PLURAL, SINGULAR, heads, " are", " is", texts=TEXTS, reference=PLURAL + SINGULAR,
                                  how="zero", sets=2)
    with anatomy.ablate(smollm2, layer, heads=[1, 4]), anatomy.ablate(smollm2, layer + 2, heads=[0]):
        pl = anatomy.marker_difference(smollm2, PLURAL, [" are"], [" is"])
        sg = anatomy.marker_difference(smollm2, SINGULAR, [" are"], [" is"])
        loss = anatomy.next_token_loss(smollm2, TEXTS, 0, max_tokens=anatomy.ablation.LOSS_TOKENS, skip=anatomy.ablation.LOSS_SKIP)
    assert r["zero"].gap == pytest.approx(float(pl.mean() - sg.mean()), abs=1e-4)
    assert r["zero"].loss == pytest.approx(loss, abs=1e-4) and r["zero"].heads == tuple(heads)
    assert r.baseline == pytest.approx(none.baseline, abs=1e-4)


def test_head_mean_ablation_writes_each_heads_per_position_mean(smollm2):
    """The batched mean ablation writes the same per-position means as anatomy.ablate with anatomy.mean_activations."""
    layer = smollm2.n_layers // 2
    means = anatomy.mean_activations(smollm2, PLURAL + SINGULAR, layer)
    r = anatomy.head_set_ablation(smollm2, PLURAL, SINGULAR, [(layer, 2)], " are", " is", texts=TEXTS,
                                  reference=PLURAL + SINGULAR, how="mean", sets=1)
    with anatomy.ablate(smollm2, layer, heads=[2], mean=means):
        pl = anatomy.marker_difference(smollm2, PLURAL, [" are"], [" is"])
        sg = anatomy.marker_difference(smollm2, SINGULAR, [" are"], [" is"])
    assert r["mean"].gap == pytest.approx(float(pl.mean() - sg.mean()), abs=1e-4)


def test_head_nulls_are_seeded_and_leave_the_chosen_heads_out(smollm2):
    chosen = [(3, 1), (20, 5)]
    one = anatomy.random_heads(smollm2, 2, 4, exclude=chosen, seed=7)
    assert one == anatomy.random_heads(smollm2, 2, 4, exclude=chosen, seed=7) != anatomy.random_heads(smollm2, 2, 4, exclude=chosen, seed=8)
    assert all(len(s) == 2 and not set(chosen) & set(s) for s in one)
    args = (smollm2, PLURAL, SINGULAR, chosen, " are", " is")
    a = anatomy.head_set_ablation(*args, texts=TEXTS, reference=PLURAL, how="zero", sets=3, seed=1)
    b = anatomy.head_set_ablation(*args, texts=TEXTS, reference=PLURAL, how="zero", sets=3, seed=1)
    c = anatomy.head_set_ablation(*args, texts=TEXTS, reference=PLURAL, how="zero", sets=3, seed=2)
    assert torch.equal(a.random_gaps, b.random_gaps) and not torch.equal(a.random_gaps, c.random_gaps)
    assert a.random_gaps.shape == (1, 3) and a.random_losses.shape == (1, 0)


def test_head_attribution_agrees_with_real_ablation_for_its_top_head(smollm2):
    est = anatomy.head_attribution(smollm2, PLURAL, SINGULAR, " are", " is")
    assert est.zero.shape == est.mean.shape == (smollm2.n_layers, smollm2.n_heads)
    layer, head, change = est.top(1, kind="zero")[0]
    assert change == pytest.approx(float(est.zero.min()))  # the largest estimated drop first
    r = anatomy.head_set_ablation(smollm2, PLURAL, SINGULAR, [(layer, head)], " are", " is", texts=TEXTS, reference=PLURAL,
                                  how="zero", sets=1)
    real = r["zero"].gap - r.baseline
    assert est.gap == pytest.approx(r.baseline, abs=1e-3) and real < 0 and change < 0


FACTS = [("capital", "The capital of {} is the city of", "France", " Paris"),
         ("capital", "The capital of {} is the city of", "Italy", " Rome"),
         ("capital", "The capital of {} is the city of", "Japan", " Tokyo"),
         ("landmark", "{} is in the city of", "The Sydney Opera House", " Sydney"),
         ("landmark", "{} is in the city of", "The Space Needle", " Seattle")]


def test_knowledge_neurons_of_no_neurons_change_nothing(smollm2):
    r = anatomy.knowledge_neurons(smollm2, FACTS, texts=TEXTS, n=4, k=0, sets=2)
    assert r.neurons == ((),) * 4 and set(r.relations) == {"capital", "landmark"}
    for t in (r.suppressed, r.amplified, r.random_suppressed, r.random_amplified):
        assert torch.allclose(t, r.base.expand_as(t), rtol=1e-4, atol=1e-7)
    assert torch.allclose(r.losses, torch.tensor([r.clean_loss] * 2), atol=1e-4) and r.shared == 0
    ids = smollm2.tokenizer(r.prompts[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        p = torch.softmax(smollm2.hf(input_ids=ids).logits[0, -1].float(), -1)
    answer = smollm2.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    assert float(r.base[0]) == pytest.approx(float(p[answer]), rel=1e-4) and bool(r.right[0]) == (int(p.argmax()) == answer)


def test_knowledge_neurons_suppressed_equal_the_hooked_model_and_nulls_are_seeded(smollm2):
    r = anatomy.knowledge_neurons(smollm2, FACTS, texts=TEXTS, n=3, k=3, sets=2, seed=5)
    assert all(len(ns) == 3 for ns in r.neurons)
    ids = smollm2.tokenizer(r.prompts[1], return_tensors="pt")["input_ids"]
    by_layer = {}
    for layer, j in r.neurons[0]:
        by_layer.setdefault(layer, []).append(j)
    with contextlib.ExitStack() as stack, torch.no_grad():
        for layer, js in by_layer.items():
            stack.enter_context(anatomy.ablate(smollm2, layer, neurons=js, position=-1))
        p = torch.softmax(smollm2.hf(input_ids=ids).logits[0, -1].float(), -1)
    answer = smollm2.tokenizer(r.answers[1].replace("␣", " "), add_special_tokens=False)["input_ids"][0]
    assert float(r.suppressed[0, 1]) == pytest.approx(float(p[answer]), rel=1e-3)
    again = anatomy.knowledge_neurons(smollm2, FACTS, texts=TEXTS, n=3, k=3, sets=2, seed=5)
    other = anatomy.knowledge_neurons(smollm2, FACTS, texts=TEXTS, n=3, k=3, sets=2, seed=6)
    assert torch.equal(r.random_suppressed, again.random_suppressed) and not torch.equal(r.random_suppressed, other.random_suppressed)
    assert r.change("own").shape == (2, 3) and r.change("random").shape == (2, 2, 3)
