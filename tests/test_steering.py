"""Chapter 6: directions between two kinds of prompts, and steering with them."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy.hooks import capture

ZH = ["今天天气很好，我们", "我最喜欢的食物是", "这本书讲的是", "他的工作是"]
EN = ["The weather is nice today, we", "My favourite food is", "This book is about", "His job is"]
HELD = ["The best way to learn is", "My sister works as a", "After dinner, the children"]
MA, MB = ["的", "是", "在", "了"], [" the", " a", " is", " and"]


def _n_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def _last_logits(model, prompt):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.hf(input_ids=ids).logits[0, -1]  # [V]


def test_direction_is_difference_of_means(smollm2):
    """direction = mean(last-token layer output of A) - mean(of B), checked one prompt at a time."""
    layer = 7

    def one(p):
        ids = smollm2.tokenizer(p, return_tensors="pt")["input_ids"]
        with capture(smollm2, f"layers.{layer}") as seen, torch.no_grad():
            smollm2.hf(input_ids=ids)
        return seen[f"layers.{layer}"][0, -1]  # [d]

    by_hand = torch.stack([one(p) for p in ZH]).mean(0) - torch.stack([one(p) for p in EN]).mean(0)
    v = anatomy.direction(smollm2, ZH, EN, layer)
    assert v.shape == (smollm2.d_model,)
    assert torch.allclose(v, by_hand, atol=1e-3)
    # directions() gives every layer at once; row `layer` is the same vector, and middle layers
    # match hidden_states(...).layer(layer).
    all_v = anatomy.directions(smollm2, ZH, EN)
    assert all_v.shape == (smollm2.n_layers, smollm2.d_model)
    assert torch.allclose(all_v[layer], v, atol=1e-3)
    hs = lambda ps: torch.stack([anatomy.hidden_states(smollm2, p).layer(layer)[-1] for p in ps]).mean(0)
    assert torch.allclose(all_v[layer], hs(ZH) - hs(EN), atol=1e-3)


def test_zero_vector_changes_nothing_and_hook_is_removed(model):
    before = _last_logits(model, HELD[0])
    n = _n_hooks(model)
    with anatomy.steer(model, 3, torch.zeros(model.d_model), strength=5.0):
        assert _n_hooks(model) == n + 1
        inside = _last_logits(model, HELD[0])
    assert torch.allclose(inside, before, atol=1e-5)
    assert _n_hooks(model) == n


def test_steering_changes_logits_then_restores(smollm2):
    v = anatomy.direction(smollm2, ZH, EN, 10)
    before = _last_logits(smollm2, HELD[0])
    with anatomy.steer(smollm2, 10, v, 1.0):
        steered = _last_logits(smollm2, HELD[0])
    assert not torch.allclose(steered, before, atol=1e-2)
    assert torch.allclose(_last_logits(smollm2, HELD[0]), before, atol=1e-5)


def test_adds_vector_at_every_position(smollm2):
    """Inside steer, layer 5's output is the unsteered output plus strength * vector at every token."""
    ids = smollm2.tokenizer(HELD[1], return_tensors="pt")["input_ids"]
    v = torch.randn(smollm2.d_model, generator=torch.Generator().manual_seed(0))
    with capture(smollm2, "layers.5") as plain, torch.no_grad():
        smollm2.hf(input_ids=ids)
    with anatomy.steer(smollm2, 5, v, -2.5), capture(smollm2, "layers.5") as steered, torch.no_grad():
        smollm2.hf(input_ids=ids)
    assert torch.allclose(steered["layers.5"], plain["layers.5"] - 2.5 * v, atol=1e-4)


def test_hook_removed_after_exception(smollm2):
    n = _n_hooks(smollm2)
    before = _last_logits(smollm2, HELD[0])
    with pytest.raises(RuntimeError, match="boom"):
        with anatomy.steer(smollm2, 2, torch.ones(smollm2.d_model), 3.0):
            assert _n_hooks(smollm2) == n + 1
            raise RuntimeError("boom")
    assert _n_hooks(smollm2) == n
    assert torch.allclose(_last_logits(smollm2, HELD[0]), before, atol=1e-5)


@pytest.mark.parametrize("bad", [torch.zeros(10), torch.zeros(2, 576), torch.zeros(577), [0.0] * 576])
def test_wrong_size_vector(smollm2, bad):
    with pytest.raises(AnatomyError, match=r"needs one vector of size 576"):
        with anatomy.steer(smollm2, 3, bad):
            pass


def test_bad_input(smollm2):
    n = _n_hooks(smollm2)
    v = torch.zeros(smollm2.d_model)
    with pytest.raises(AnatomyError, match=r"Layer 30 is out of range: .* layers 0 to 29"):
        with anatomy.steer(smollm2, 30, v):
            pass
    with pytest.raises(AnatomyError, match="out of range"):
        anatomy.direction(smollm2, ZH, EN, -31)
    with pytest.raises(AnatomyError, match="strength"):
        with anatomy.steer(smollm2, 3, v, float("nan")):
            pass
    with pytest.raises(AnatomyError, match="non-empty list"):
        anatomy.directions(smollm2, [], EN)
    with pytest.raises(AnatomyError, match="non-empty list"):
        anatomy.direction(smollm2, "one string", EN, 3)
    with pytest.raises(AnatomyError, match="is 2 tokens"):
        anatomy.marker_difference(smollm2, HELD, ["我"], MB)  # 我 is two byte tokens in SmolLM2
    with pytest.raises(AnatomyError, match=r"\[30, 576\]"):
        anatomy.steering_effect(smollm2, HELD, torch.zeros(576), MA, MB)
    with pytest.raises(AnatomyError, match="max_new_tokens"):
        anatomy.generate(smollm2, "Hello", 0)
    assert _n_hooks(smollm2) == n  # no hook left behind by a refused call


def test_marker_difference_matches_full_logits(gemma):
    """The batched, right-padded pass gives each prompt's own next-token logits."""
    diff = anatomy.marker_difference(gemma, HELD, MA, MB)  # [N]
    ia = [anatomy.single_token_id(gemma, w) for w in MA]
    ib = [anatomy.single_token_id(gemma, w) for w in MB]
    for k, p in enumerate(HELD):
        logits = _last_logits(gemma, p)
        assert torch.allclose(diff[k], logits[ia].mean() - logits[ib].mean(), atol=1e-2)


def test_effect_grows_and_flips_sign(model):
    """Adding the Chinese-minus-English direction raises the Chinese markers; subtracting lowers them."""
    vectors = anatomy.directions(model, ZH, EN)
    L = model.n_layers
    layers = (L // 3, 2 * L // 3, L - 2)
    eff = anatomy.steering_effect(model, HELD, vectors, MA, MB, layers=layers, strengths=(-1, 0, 1))
    assert eff.effect.shape == (3, 3)
    assert torch.allclose(eff.shift[:, 1], torch.zeros(3))  # strength 0 = no change
    best = layers.index(eff.best_layer)
    assert eff.shift[best, 2] > 1.0  # adding: clearly towards the A markers
    assert eff.shift[best, 0] < 0.0  # subtracting: the other way
    assert eff.baseline < 0  # English prompts lean to English markers before steering


def test_generate_is_greedy_and_steerable(smollm2):
    a = anatomy.generate(smollm2, "My favourite food is", 6)
    assert a == anatomy.generate(smollm2, "My favourite food is", 6)  # deterministic
    first = int(_last_logits(smollm2, "My favourite food is").argmax())
    assert a.startswith(smollm2.tokenizer.decode([first]))
    v = anatomy.direction(smollm2, ZH, EN, 10)
    with anatomy.steer(smollm2, 10, v, 1.0):
        b = anatomy.generate(smollm2, "My favourite food is", 6)
    assert b != a


def test_plot(smollm2):
    vectors = anatomy.directions(smollm2, ZH, EN)
    eff = anatomy.steering_effect(smollm2, HELD[:2], vectors, MA, MB, layers=(4, 20), strengths=(-1, 0, 1))
    fig = anatomy.plot.steering([eff])
    assert len(fig.axes) == 2  # one heat map + its colour bar
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["-1", "0", "1"]
    with pytest.raises(AnatomyError):
        anatomy.plot.steering([])


def test_random_directions_have_the_norm_of_the_real_ones_and_are_seeded(smollm2):
    vectors = anatomy.directions(smollm2, ZH, EN)
    r = anatomy.random_directions(vectors, 3, seed=0)
    assert r.shape == (3, smollm2.n_layers, smollm2.d_model)
    torch.testing.assert_close(r.norm(dim=-1), vectors.norm(dim=-1).expand(3, -1), rtol=1e-4, atol=1e-4)
    assert torch.equal(r, anatomy.random_directions(vectors, 3, seed=0))
    assert not torch.equal(r, anatomy.random_directions(vectors, 3, seed=1))
    cos = torch.nn.functional.cosine_similarity(r, vectors[None], dim=-1)  # [3, L]
    assert cos.abs().max() < 0.3  # random, not the real direction
    with pytest.raises(AnatomyError, match="at least one"):
        anatomy.random_directions(vectors, 0)


def test_controls_are_computed_in_the_same_pass_as_steering_one_vector_at_a_time(smollm2):
    """The batched control equals steering with each random vector alone; the real effect is unchanged by batching."""
    vectors = anatomy.directions(smollm2, ZH, EN)
    layer = smollm2.n_layers // 2
    eff = anatomy.steering_effect(smollm2, HELD, vectors, MA, MB, layers=(layer,), strengths=(1,), controls=2, seed=0)
    plain = anatomy.steering_effect(smollm2, HELD, vectors, MA, MB, layers=(layer,), strengths=(1,))
    assert eff.control.shape == (1, 1, 2)
    assert torch.allclose(eff.effect, plain.effect, atol=1e-3)
    randoms = anatomy.random_directions(vectors, 2, seed=0)
    for k in range(2):
        with anatomy.steer(smollm2, layer, randoms[k, layer], 1.0):
            alone = anatomy.marker_difference(smollm2, HELD, MA, MB).mean()
        assert float(eff.control[0, 0, k]) == pytest.approx(float(alone), abs=1e-3)
    assert eff.control_shift_at(layer, 1).shape == (2,)
    with pytest.raises(AnatomyError, match="was not tried"):
        eff.shift_at(layer + 1, 1)


def test_the_real_direction_beats_random_directions_of_the_same_norm(model):
    """At the layer chosen on development prompts, the direction moves held-out prompts far more than chance."""
    vectors = anatomy.directions(model, ZH, EN)
    L = model.n_layers
    dev = anatomy.steering_effect(model, ["This book is about", "His job is"], vectors, MA, MB,
                                  layers=(L // 3, 2 * L // 3), strengths=(1,))
    test = anatomy.steering_effect(model, HELD, vectors, MA, MB, layers=(dev.best_layer,), strengths=(1,), controls=4)
    real, random = test.shift_at(dev.best_layer, 1), test.control_shift_at(dev.best_layer, 1)
    assert real > 1.0 and real > 3 * float(random.abs().max())


def test_plot_with_controls_shows_them_beside_the_direction(smollm2):
    vectors = anatomy.directions(smollm2, ZH, EN)
    eff = anatomy.steering_effect(smollm2, HELD[:2], vectors, MA, MB, layers=(4, 20), strengths=(-1, 0, 1), controls=2)
    fig = anatomy.plot.steering([eff])
    assert len(fig.axes) == 4  # the direction, the random directions, and their colour bars
    assert "random" in fig.axes[1].get_title()
