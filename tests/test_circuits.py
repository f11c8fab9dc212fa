"""Activation patching, attribution patching and back-patching (Chapter 17), on the default models."""

import contextlib

import pytest
import torch

import anatomy
from anatomy import hooks

CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"  # same length on both tokenizers
ANSWERS = (" Paris", " Rome")


@pytest.fixture(scope="module")
def few(model):
    """Exact patching of three layers (first, middle, last) with a small batch, to cross batch boundaries."""
    layers = [0, model.n_layers // 2, model.n_layers - 1]
    return layers, anatomy.activation_patching(model, CLEAN, CORRUPTED, *ANSWERS, layers=layers, batch_size=7)


def _single(model, place, position, vector, cols=None):
    """The logit difference of the corrupted run with one place overwritten by hand."""
    def put(h):
        h = h.clone()
        if cols is None:
            h[:, position] = vector
        else:
            h[:, :, cols] = vector
        return h
    with hooks.edit(model, place, put):
        return anatomy.logit_difference(model, CORRUPTED, *ANSWERS)


def test_the_name_patching_is_chapter_8s_context_manager():
    assert callable(anatomy.patching) and not isinstance(anatomy.patching, type(anatomy))


def test_patching_the_clean_run_into_itself_restores_it_exactly(model):
    layers = [0, model.n_layers - 1]
    r = anatomy.activation_patching(model, CLEAN, CLEAN, *ANSWERS, layers=layers, batch_size=16)
    assert r.clean_difference == pytest.approx(r.corrupted_difference, abs=1e-5)
    for grid in (r.embedding, r.residual[layers], r.heads[layers]):
        torch.testing.assert_close(grid, torch.full_like(grid, r.clean_difference), rtol=0, atol=1e-4)


def test_shapes_and_the_unpatched_runs(model, few):
    layers, r = few
    T = len(anatomy.tokenize(model, CORRUPTED))
    assert r.residual.shape == (model.n_layers, T) and r.heads.shape == (model.n_layers, model.n_heads) and r.embedding.shape == (T,)
    skipped = [l for l in range(model.n_layers) if l not in layers]
    assert r.residual[skipped].isnan().all() and not r.residual[layers].isnan().any()
    assert r.clean_difference == pytest.approx(anatomy.logit_difference(model, CLEAN, *ANSWERS), abs=1e-4)
    assert r.corrupted_difference == pytest.approx(anatomy.logit_difference(model, CORRUPTED, *ANSWERS), abs=1e-4)
    assert r.clean_difference > 0 > r.corrupted_difference  # each prompt prefers its own answer


def test_patching_nothing_changes_nothing(model, few):
    """Where the two prompts have the same token, the embedding patch writes the same vector: no change.
    Where they differ, it does change the result."""
    _, r = few
    same = torch.tensor([a.id == b.id for a, b in zip(r.clean_tokens, r.corrupted_tokens)])
    assert same.any() and not same.all()
    torch.testing.assert_close(r.embedding[same], torch.full((int(same.sum()),), r.corrupted_difference), rtol=0, atol=1e-4)
    assert (r.embedding[~same] - r.corrupted_difference).abs().max() > 0.5


def test_the_last_layer_at_the_last_position_recovers_everything(model, few):
    _, r = few
    rec = r.recovered[model.n_layers - 1]
    assert float(rec[-1]) == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(rec[:-1], torch.zeros_like(rec[:-1]), rtol=0, atol=1e-4)  # nothing later reads them


def test_each_batched_cell_equals_a_single_patch(model, few):
    layers, r = few
    mid = layers[1]
    same = [a.id == b.id for a, b in zip(r.clean_tokens, r.corrupted_tokens)]
    p = same.index(False)  # the first position where the prompts differ
    v = anatomy.source_vector(model, CLEAN, mid, p)
    with anatomy.patching(model, mid, p, v):
        alone = anatomy.logit_difference(model, CORRUPTED, *ANSWERS)
    assert float(r.residual[mid, p]) == pytest.approx(alone, abs=1e-4)
    # one head, by hand: its slice of the concatenated heads, at every position
    place, hd = f"layers.{mid}.attn.o.input", model.head_dim
    with hooks.capture(model, place) as seen:
        anatomy.logit_difference(model, CLEAN, *ANSWERS)
    h = model.n_heads - 1
    cols = slice(h * hd, (h + 1) * hd)
    assert float(r.heads[mid, h]) == pytest.approx(_single(model, place, None, seen[place][0, :, cols], cols), abs=1e-4)


def test_attribution_is_the_first_order_term_of_patching(model):
    """A patch of ε·(clean − corrupted) changes the logit difference by ε times the attribution, to first order."""
    a = anatomy.attribution_patching(model, CLEAN, CORRUPTED, *ANSWERS)
    assert a.clean_difference == pytest.approx(anatomy.logit_difference(model, CLEAN, *ANSWERS), abs=1e-4)
    eps = 1e-2
    effect = (a.residual - a.corrupted_difference).abs()  # [L, T]
    T = effect.shape[1]
    cells = [divmod(int(i), T) for i in effect.flatten().topk(3).indices]  # the three largest estimates
    for layer, p in cells:
        c, d = anatomy.source_vector(model, CLEAN, layer, p), anatomy.source_vector(model, CORRUPTED, layer, p)
        with anatomy.patching(model, layer, p, d + eps * (c - d)):
            exact = anatomy.logit_difference(model, CORRUPTED, *ANSWERS) - a.corrupted_difference
        first = eps * (float(a.residual[layer, p]) - a.corrupted_difference)
        assert abs(first) > 1e-3
        assert exact == pytest.approx(first, rel=0.05, abs=2e-4)


def test_mismatched_token_lengths_are_refused(model):
    with pytest.raises(anatomy.AnatomyError, match="same number of tokens"):
        anatomy.activation_patching(model, CLEAN, "The capital of the United Kingdom is", *ANSWERS)
    with pytest.raises(anatomy.AnatomyError, match="same number of tokens"):
        anatomy.attribution_patching(model, CLEAN, "The capital of the United Kingdom is", *ANSWERS)


def test_bad_arguments_are_refused(model):
    with pytest.raises(anatomy.AnatomyError, match="batch_size"):
        anatomy.activation_patching(model, CLEAN, CORRUPTED, *ANSWERS, batch_size=0)
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.activation_patching(model, CLEAN, CORRUPTED, *ANSWERS, layers=[model.n_layers])
    with pytest.raises(anatomy.AnatomyError, match="No pair"):
        anatomy.back_patching(model, CLEAN, " Paris", sources=[1], targets=[3])
    with pytest.raises(anatomy.AnatomyError, match="not a word"):
        anatomy.logit_difference(model, CLEAN, "", " Rome")


def test_back_patching_equals_patching_the_whole_prompt(model):
    """The cached one-token runs give what patching the full prompt gives (Chapter 8's `patching`)."""
    prompt = "The capital of the country of the Eiffel Tower is the city of"
    s, t = 2 * model.n_layers // 3, model.n_layers // 3
    bp = anatomy.back_patching(model, prompt, " Paris", sources=[s, s + 1], targets=[t, s])
    assert bp.prob[s, t].isfinite() and bp.prob[s, s].isnan() and bp.prob[s + 1, s].isfinite()
    T = len(bp.tokens)
    for src, tgt in [(s, t), (s + 1, s)]:
        with anatomy.patching(model, tgt, T - 1, anatomy.source_vector(model, prompt, src)):
            probs = anatomy.next_token(model, prompt).probs
        assert float(bp.prob[src, tgt]) == pytest.approx(float(probs[bp.answer_id]), abs=1e-5)
        assert int(bp.top_ids[src, tgt]) == int(probs.argmax())
    assert bp.base_prob == pytest.approx(float(anatomy.next_token(model, prompt).probs[bp.answer_id]), abs=1e-6)


def test_plots_describe_themselves(model, few):
    _, r = few
    fig = anatomy.plot.patching_grid(r)
    assert model.name in fig.description["en"] and model.name in fig.description["zh"]
    fig = anatomy.plot.attribution_scatter([(r, r)])
    assert CLEAN in fig.description["en"]
    table = r.table(k=3)
    assert len(table.rows) == 6 and table.rows[0][2] >= table.rows[1][2] >= table.rows[2][2]


# --- the set of facts, and components over it (issue 25) ---------------------------------------------
@pytest.fixture(scope="module")
def facts(model):
    return anatomy.fact_pairs(model, "en", n=6, dev=2)


def test_fact_pairs_are_answered_right_and_line_up(model, facts):
    assert len(facts) == 6 and len(facts.dev) == 2 and len(facts.test) == 4
    for p in facts.pairs:
        assert len(anatomy.tokenize(model, p.clean)) == len(anatomy.tokenize(model, p.corrupted)) == p.n_tokens
        for prompt, answer in zip((p.clean, p.corrupted), p.answer_ids):
            assert int(anatomy.next_token(model, prompt).top_ids[0]) == answer
        assert p.answer_ids[0] != p.answer_ids[1] and p.subject and p.n_tokens - 1 not in p.subject


def test_fact_pairs_are_seeded(model, facts):
    again = anatomy.fact_pairs(model, "en", n=6, dev=2)
    assert again.pairs == facts.pairs
    other = anatomy.fact_pairs(model, "en", n=6, dev=2, seed=1)
    assert other.pairs != facts.pairs


def _self_pair(p):
    return anatomy.FactPair(p.relation, p.clean, p.clean, p.answers, p.answer_ids, p.subject, p.n_tokens, p.split)


def test_component_patching_the_clean_run_into_itself_restores_it_exactly(model, facts):
    p = facts.pairs[0]
    r = anatomy.component_patching(model, [_self_pair(p)], layers=[0, model.n_layers // 2, model.n_layers - 1])
    for grid in (r.denoised, r.noised):
        done = grid[grid.isfinite()]
        assert len(done) == 2 * 3 * 3
        torch.testing.assert_close(done, torch.full_like(done, float(r.clean[0])), rtol=0, atol=1e-4)


def test_patching_nothing_changes_nothing(model, facts):
    """Nothing after the last layer reads the subject's positions: patching them there changes nothing.
    Patching a position before the subject writes what was there already."""
    p = facts.pairs[0]
    L = model.n_layers
    r = anatomy.component_patching(model, [p], layers=[L - 1])
    for kind in range(3):
        assert float(r.denoised[0, kind, L - 1, 0]) == pytest.approx(float(r.corrupted[0]), abs=1e-4)
        assert float(r.noised[0, kind, L - 1, 0]) == pytest.approx(float(r.clean[0]), abs=1e-4)
    assert float(r.recovered[0, 0, L - 1, 1]) == pytest.approx(1.0, abs=1e-4)  # the last layer, last position: everything
    before = [q for q in range(min(p.subject))]
    if before:  # same tokens before the subject: the same head outputs there
        h = anatomy.head_patching(model, [p], heads=[(L // 2, 0)], positions=("other",))
        assert h.recovered.isfinite().sum() == 1


def test_component_cells_equal_single_patches(model, facts):
    p = facts.pairs[1]
    l = model.n_layers // 2
    r = anatomy.component_patching(model, [p], layers=[l])
    for k, kind in enumerate(anatomy.circuits.KINDS):
        place = f"layers.{l}" if kind == "layer" else f"layers.{l}.{kind}"
        for g, positions in enumerate((list(p.subject), [p.n_tokens - 1])):
            with hooks.capture(model, place) as seen:
                anatomy.logit_difference(model, p.clean, *p.answer_ids)

            def put(h, v=seen[place][0, positions], positions=positions):
                h = h.clone()
                h[:, positions] = v
                return h
            with hooks.edit(model, place, put):
                alone = anatomy.logit_difference(model, p.corrupted, *p.answer_ids)
            assert float(r.denoised[0, k, l, g]) == pytest.approx(alone, abs=1e-4)


def _with(model, prompt, answers, edits):
    with contextlib.ExitStack() as stack:
        for place, fn in edits:
            stack.enter_context(hooks.edit(model, place, fn))
        return anatomy.logit_difference(model, prompt, *answers)


def test_attention_and_mlp_patches_add_up_where_the_model_is_close_to_linear(model, facts):
    """Layer l's update at the last position is its attention output plus its MLP output. Moving both a
    small step eps towards the clean run changes Δ by the sum of the two moves alone (the MLP held at
    its corrupted value while the attention moves), to first order; with eps = 1 it need not."""
    p = facts.pairs[0]
    h = anatomy.component_patching(model, [p], kinds=("layer",), positions=("last",), directions=("denoise",))
    l, last = max(1, int(h.handover[0])), p.n_tokens - 1  # the hand-over layer: big enough effects
    places = (f"layers.{l}.attn", f"layers.{l}.mlp")
    seen = {}
    for prompt in (p.clean, p.corrupted):
        with hooks.capture(model, *places) as s:
            anatomy.logit_difference(model, prompt, *p.answer_ids)
        seen[prompt] = s
    base = anatomy.logit_difference(model, p.corrupted, *p.answer_ids)

    def to(place, eps):
        c, d = seen[p.clean][place][0, last], seen[p.corrupted][place][0, last]

        def fn(h):
            h = h.clone()
            h[:, last] = d + eps * (c - d)
            return h
        return place, fn

    for eps in (1e-2, 1.0):
        attn = _with(model, p.corrupted, p.answer_ids, [to(places[0], eps), to(places[1], 0.0)]) - base
        mlp = _with(model, p.corrupted, p.answer_ids, [to(places[1], eps)]) - base
        both = _with(model, p.corrupted, p.answer_ids, [to(places[0], eps), to(places[1], eps)]) - base
        if eps < 1:
            assert abs(both) > 1e-3
            assert both == pytest.approx(attn + mlp, rel=0.05, abs=1e-4)
    # and patching the layer's whole output equals patching its input, attention and MLP together
    layer_in, layer_out = f"layers.{l - 1}", f"layers.{l}"
    with hooks.capture(model, layer_in, layer_out) as s:
        anatomy.logit_difference(model, p.clean, *p.answer_ids)
    def put(v):
        def fn(h):
            h = h.clone()
            h[:, last] = v
            return h
        return fn
    whole = _with(model, p.corrupted, p.answer_ids, [(layer_out, put(s[layer_out][0, last]))])
    parts = _with(model, p.corrupted, p.answer_ids, [(layer_in, put(s[layer_in][0, last])), to(places[0], 1.0), to(places[1], 1.0)])
    assert whole == pytest.approx(parts, abs=1e-4)


def test_head_patching_equals_a_single_patch(model, facts):
    p = facts.pairs[0]
    l, h, hd = model.n_layers - 2, model.n_heads - 1, model.head_dim
    r = anatomy.head_patching(model, [p], heads=[(l, h)], positions=("subject", "last"))
    place, cols = f"layers.{l}.attn.o.input", slice(h * hd, (h + 1) * hd)
    with hooks.capture(model, place) as seen:
        clean = anatomy.logit_difference(model, p.clean, *p.answer_ids)
    corrupted = anatomy.logit_difference(model, p.corrupted, *p.answer_ids)
    for g, positions in enumerate((list(p.subject), [p.n_tokens - 1])):
        def put(x, positions=positions):
            x = x.clone()
            x[:, positions, cols] = seen[place][0, positions, cols]
            return x
        alone = _with(model, p.corrupted, p.answer_ids, [(place, put)])
        assert float(r.recovered[0, l, h, g]) == pytest.approx((alone - corrupted) / (clean - corrupted), abs=1e-4)


def test_faithfulness_of_every_head_is_the_full_model_and_draws_are_seeded(model, facts):
    every = [(l, h) for l in range(model.n_layers) for h in range(model.n_heads)]
    f = anatomy.circuit_faithfulness(model, facts.test[:2], every, facts.right_prompts, draws=2)
    assert f.n_pairs >= 1
    torch.testing.assert_close(f.kept, f.full, rtol=0, atol=1e-4)
    assert f.share == pytest.approx(1.0, abs=1e-4)
    g = anatomy.circuit_faithfulness(model, facts.test[:2], every[:3], facts.right_prompts, draws=2)
    again = anatomy.circuit_faithfulness(model, facts.test[:2], every[:3], facts.right_prompts, draws=2)
    torch.testing.assert_close(g.random, again.random)
    assert not torch.allclose(g.empty, g.full)


def test_attention_knockout_blocks_only_from_its_layer_on(model, facts):
    p = facts.pairs[0]
    k = anatomy.attention_knockout(model, [p])
    probs = anatomy.next_token(model, p.clean).probs
    assert float(k.prob[0, -1]) == pytest.approx(float(probs[p.answer_ids[0]]), rel=1e-4)  # nothing blocked
    # blocking only in the last layer equals an additive mask written there by hand
    attn, _ = hooks.module_at(model, f"layers.{model.n_layers - 1}.attn")

    def pre(mod, args, kwargs):
        m = kwargs["attention_mask"].clone()
        m[:, :, p.n_tokens - 1, list(p.subject)] = torch.finfo(m.dtype).min
        kwargs["attention_mask"] = m
        return args, kwargs
    handle = attn.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        by_hand = anatomy.next_token(model, p.clean).probs[p.answer_ids[0]]
    finally:
        handle.remove()
    assert float(k.prob[0, model.n_layers - 1]) == pytest.approx(float(by_hand), rel=1e-4)
    assert abs(float(k.prob[0, 0]) - float(k.prob[0, -1])) > 1e-6  # blocking everywhere does something


def test_empty_sets_give_empty_results(model):
    r = anatomy.component_patching(model, [])
    assert r.denoised.shape[0] == 0 and r.handover.shape == (0,)
    with pytest.raises(anatomy.AnatomyError, match="language"):
        anatomy.fact_pairs(model, "fr")


def test_next_token_ids_are_next_tokens_top_in_padded_batches(model):
    prompts = ["The capital of France is", "The Eiffel Tower is in the city of", "Hello", "巴黎是法国的"]
    expected = tuple(int(anatomy.next_token(model, p).top_ids[0]) for p in prompts)
    assert anatomy.next_token_ids(model, prompts, batch_size=3) == expected
    assert anatomy.next_token_ids(model, prompts[::-1]) == expected[::-1]
