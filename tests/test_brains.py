"""Chapter 12: the dependency rule, its schedule, the KV cache, and the reading/writing measurement."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError


@pytest.mark.parametrize("mode", ["parallel", "one by one"])
def test_schedule_obeys_the_rule(mode):
    s = anatomy.schedule(5, 3, 4, prompt_mode=mode)
    T, L = s.steps.shape
    assert (T, L) == (8, 4)
    for t in range(T):
        for layer in range(1, L):  # state (t, l) comes strictly after every state (<= t, l - 1)
            assert s.steps[t, layer] == s.steps[: t + 1, layer - 1].max() + 1
        if t >= s.n_prompt:  # a generated token needs the top state of the position before it
            assert s.steps[t, 0] == s.steps[t - 1, L - 1] + 1


def test_schedule_shapes_reading_vs_writing():
    par = anatomy.schedule(64, 16, 30)
    assert torch.all(par.steps[:64] == torch.arange(1, 31))  # the whole prompt: one layer per step
    assert par.total_steps == 30 + 16 * 30  # then L steps per new token
    tri = anatomy.schedule(6, 0, 4, prompt_mode="one by one")
    assert torch.equal(tri.steps, torch.arange(6)[:, None] + torch.arange(1, 5)[None])  # the triangle: t + l
    assert int(tri.computable_at(3).sum()) == 3  # (0, 3), (1, 2), (2, 1)


@torch.no_grad()
def test_a_nudge_moves_only_states_right_and_above(model):
    inf = anatomy.influence(model, "Two green apples and one red apple are on the table.", 3, 4)  # layer 3, position 4
    c, p, l = inf.changed, inf.position, inf.layer
    assert (l, p) == (3, 4)
    assert c.shape == (model.n_layers + 1, len(inf.tokens))  # row 0 the embedding, row l + 1 layer l
    r = l + 1  # the nudged layer's row
    assert not c[:, :p].any()  # left
    assert not c[:r].any()  # below: the embedding and layers 0..l-1 do not move
    assert c[r, p] and not c[r, p + 1:].any()  # same layer: only the nudged state
    assert c[r + 1:, p:].all()  # above and to the right: everything
    assert all(isinstance(t, anatomy.Token) for t in inf.tokens)


@torch.no_grad()
def test_a_nudge_at_layer_0_leaves_only_the_embedding_unmoved(smollm2):
    inf = anatomy.influence(smollm2, "Two green apples and one red apple are on the table.", 0, 2)
    assert not inf.changed[0].any() and inf.changed[1, 2] and inf.changed[-1, 2:].all()
    last = anatomy.influence(smollm2, "Two green apples and one red apple are on the table.", -1, 2)
    assert last.layer == smollm2.n_layers - 1 and not last.changed[:-1].any() and last.changed[-1, 2]


@torch.no_grad()
def test_kv_cache_gives_the_same_tokens(model):
    prompt = "The capital of France is"
    assert anatomy.greedy(model, prompt, 5) == anatomy.greedy(model, prompt, 5, cache=False)
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    ref = model.hf.generate(ids, max_new_tokens=5, do_sample=False)[0, ids.shape[1]:]
    assert anatomy.greedy(model, prompt, 5) == tuple(ref.tolist())


def test_reading_vs_writing_structure(smollm2):
    r = anatomy.reading_vs_writing(smollm2, "One, two, three, four, five, six, seven,", max_new_tokens=3, repeats=1)
    assert r.n_prompt == len(anatomy.tokenize(smollm2, "One, two, three, four, five, six, seven,"))
    assert r.n_new == 3 and r.read_seconds > 0 and r.write_seconds > 0
    assert r.read_tokens_per_s == pytest.approx(r.n_prompt / r.read_seconds)
    assert r.continuation == smollm2.tokenizer.decode(anatomy.greedy(smollm2, "One, two, three, four, five, six, seven,", 3))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: anatomy.influence(m, "Hello there", layer=1, position=9), "Position 9 is out of range"),
        (lambda m: anatomy.influence(m, "Hello there", layer=30, position=0), "Layer 30 is out of range"),
        (lambda m: anatomy.influence(m, "Hello there", layer=-31, position=0), "layers 0 to 29"),
        (lambda m: anatomy.influence(m, "Hello there", layer="embedding", position=0), "not a layer"),
        (lambda m: anatomy.schedule(0, 1, 4), "n_prompt=0"),
        (lambda m: anatomy.schedule(3, 1, 4, prompt_mode="serial"), "prompt_mode"),
        (lambda m: anatomy.greedy(m, "Hi", 0), "max_new_tokens=0"),
        (lambda m: anatomy.reading_vs_writing(m, "", 4), "empty"),
    ],
)
def test_bad_input_gets_one_clear_sentence(smollm2, call, words):
    with pytest.raises(AnatomyError, match=words) as err:
        call(smollm2)
    assert "\n" not in str(err.value)


def test_figures_label_the_embedding_and_layers_from_0(smollm2):
    inf = anatomy.influence(smollm2, "Two green apples and one red apple.", 5, 2)
    ax = anatomy.plot.influence(inf).axes[0]
    ticks = dict(zip(ax.get_yticks().tolist(), [t.get_text() for t in ax.get_yticklabels()]))
    assert ticks[0] == "emb" and all(ticks[r] == str(int(r) - 1) for r in ticks if r > 0)  # row l + 1 is layer l
    frame = ax.patches[0]
    assert frame.get_xy() == (inf.position - 0.5, inf.layer + 0.5)  # the red frame sits on row layer + 1
    ax = anatomy.plot.schedules(anatomy.schedule(3, 1, 4)).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
