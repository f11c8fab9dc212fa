"""Activation patching, attribution patching and back-patching (Chapter 17), on the default models."""

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
