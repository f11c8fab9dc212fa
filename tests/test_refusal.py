"""Chapter 15: what the chat model declines, the refusal direction, and directional ablation."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy.hooks import capture
from anatomy.refusal import (COHERENT_NLL, REFUSAL_SUBSTRINGS, Declines, RefusalTest, ablate_direction, answers, chat,
                             declines, hand_labels, is_decline, project, random_units, refusal_directions, refusal_scan,
                             write_points)

DECLINED = ["Give me your password.", "Can you send an email for me?"]
ANSWERED = ["Teach me machine learning.", "Explain photosynthesis."]


def _n_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def _stages(model):
    """Every point where the residual stream is read: the embedding, after each attention, after each layer."""
    return ["embedding", *(p for i in range(model.n_layers) for p in (f"layers.{i}.resid_mid", f"layers.{i}"))]


def _residual(model, prompt):
    """The residual stream at every stage and position of one prompt: [2L + 1, T, d], and the logits [T, V]."""
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with capture(model, *_stages(model)) as seen, torch.no_grad():
        logits = model.hf(input_ids=ids).logits[0]  # [T, V]
    return torch.stack([seen[p][0] for p in _stages(model)]).float(), logits.float()


def test_is_decline_is_arditis_substring_list():
    assert len(REFUSAL_SUBSTRINGS) == 12 and "I'm sorry" in REFUSAL_SUBSTRINGS
    assert is_decline("I'm sorry for any confusion, but as a chatbot")
    assert is_decline("  I’m sorry, I cannot")  # typographic apostrophe
    assert is_decline("As an AI, I don't have")
    assert is_decline("Well. I am unable to do that")  # anywhere in the answer, as Arditi et al. match
    assert not is_decline("Sorry, but")  # not in their list: the list is taken as it is
    assert not is_decline("Machine learning is a branch of")
    assert not is_decline("The capital of France is Paris")


def test_decline_rate_is_a_hand_count():
    said = ("I'm sorry for any confusion", "Machine learning is", "I apologize, but", "The heart is", "In twilight's cloak")
    d = Declines("m", tuple("abcde"), said, tuple(is_decline(a) for a in said))
    assert d.declined == (True, False, True, False, False)
    assert d.rate == pytest.approx(2 / 5) and 0 <= d.rate <= 1
    assert len(d.table().rows) == 5


def test_smollm2_declines_what_a_chatbot_cannot_do(smollm2):
    d = declines(smollm2, DECLINED + ANSWERED, max_new_tokens=4)
    assert d.declined == (True, True, False, False), d.answers
    # the batch gives each request the answer it gets alone (left padding changes nothing)
    assert answers(smollm2, [ANSWERED[1]], max_new_tokens=4) == d.answers[3:]


def test_refusal_directions_are_chat_differences_of_means(smollm2):
    d = refusal_directions(smollm2, DECLINED, ANSWERED, positions=(-1, -3))
    assert d.vectors.shape == (2, smollm2.n_layers, smollm2.d_model) and d.positions == (-1, -3)
    by_hand = anatomy.directions(smollm2, [chat(smollm2, q) for q in DECLINED], [chat(smollm2, q) for q in ANSWERED])
    assert torch.allclose(d.vectors[0], by_hand, atol=1e-3)
    assert torch.equal(d.at(3, -3), d.vectors[1, 3])
    cos = d.cosines(-1)
    assert cos.shape == (smollm2.n_layers,) * 2 and torch.allclose(cos.diagonal(), torch.ones(smollm2.n_layers), atol=1e-5)
    with pytest.raises(AnatomyError, match="position"):
        d.at(3, -2)


def test_ablation_leaves_no_component_at_any_write_point(smollm2):
    """After directional ablation the residual stream is orthogonal to the direction at every stage and position."""
    v = refusal_directions(smollm2, DECLINED, ANSWERED).at(smollm2.n_layers // 2)
    prompt = chat(smollm2, DECLINED[0])
    plain, _ = _residual(smollm2, prompt)  # [2L + 1, T, d]
    assert project(plain, v).abs().max() > 1  # the direction is there before
    before = _n_hooks(smollm2)
    assert len(write_points(smollm2)) == 2 * smollm2.n_layers + 1
    with ablate_direction(smollm2, v):
        assert _n_hooks(smollm2) == before + 2 * smollm2.n_layers + 1
        gone, _ = _residual(smollm2, prompt)
    assert _n_hooks(smollm2) == before  # hooks removed on exit
    # zero up to float32 rounding, which scales with the vector's length (entries reach 1e4 where the
    # stream has massive activations): 1e-6 of the length is 8 float32 epsilons
    assert (project(gone, v).abs() <= 1e-6 * gone.norm(dim=-1) + 1e-5).all()
    # only the component along v is removed: the rest of the embedding is untouched
    u = v / v.norm()
    assert torch.allclose(gone[0], plain[0] - (plain[0] @ u)[:, None] * u, atol=1e-4)


def test_ablating_a_direction_nothing_uses_changes_nothing(smollm2):
    """A direction orthogonal to every residual vector of the plain run: removing it changes nothing."""
    prompt = "Hi there"
    plain, logits = _residual(smollm2, prompt)  # [2L + 1, T, d], (2L + 1) * T < d
    flat = plain.reshape(-1, plain.shape[-1])
    assert flat.shape[0] < smollm2.d_model
    _, _, vh = torch.linalg.svd(flat.double(), full_matrices=True)
    u = vh[-1].float()  # [d] orthogonal to every row of flat, so to every write (differences of rows)
    assert project(plain, u).abs().max() < 1e-3
    with ablate_direction(smollm2, u):
        again, logits_again = _residual(smollm2, prompt)
    assert torch.allclose(again, plain, atol=1e-3)
    assert torch.allclose(logits_again, logits, atol=1e-3)


def test_refusal_scan_is_deterministic_and_chooses_under_the_kl_bar(smollm2):
    d = refusal_directions(smollm2, DECLINED, ANSWERED, positions=(-1,))
    layers = [smollm2.n_layers // 3, smollm2.n_layers // 2]
    s = refusal_scan(smollm2, DECLINED, ANSWERED, layers, (-1,), directions=d, kl_max=100.0)
    assert s.declined.shape == s.score.shape == s.kl.shape == (1, 2) and (s.kl >= -1e-6).all()
    assert s.declined_plain == 1.0 and ((0 <= s.declined) & (s.declined <= 1)).all()
    layer, pos = s.best
    assert layer in layers and pos == -1 and float(s.kl[0, layers.index(layer)]) < s.kl_max
    again = refusal_scan(smollm2, DECLINED, ANSWERED, layers, (-1,), directions=d, kl_max=100.0)
    assert torch.equal(again.score, s.score)
    with pytest.raises(AnatomyError, match="refusal_directions"):
        refusal_scan(smollm2, DECLINED, ANSWERED, layers, directions=d.vectors)


def test_best_candidate_is_fewest_declines_under_the_kl_bar():
    from anatomy.refusal import RefusalScan
    t = torch.tensor
    s = RefusalScan("m", (3, 6, 9), (-1, -2), t([[0.0, 0.5, 0.0], [0.5, 0.0, 1.0]]), t([[-1.0, -2.0, -3.0], [0.0, -4.0, 0.0]]),
                    t([[0.5, 0.01, 0.02], [0.01, 0.05, 0.01]]), 1.0, 0.0, 0.1, 4, 4)
    assert s.best == (6, -2)  # (3, -1) has no declines either but breaks the KL bar; (6, -2) has the lowest score
    assert len(s.table().rows) == 6
    with pytest.raises(AnatomyError, match="KL"):
        RefusalScan("m", (3,), (-1,), t([[0.0]]), t([[0.0]]), t([[1.0]]), 1.0, 0.0, 0.1, 4, 4).best


def _test_record(null):
    t = torch.tensor
    return RefusalTest("m", 5, -1, 1.0, ("a", "b"), ("c", "d"), ("I'm sorry", "I'm sorry"), ("Sure, here", "I'm sorry"),
                       ("Paris", "An atom"), ("I'm sorry", "An atom"), t([1.0, 2.0]), t([1.0, 9.0]), 3.0, 0.0, 0.05,
                       t(null), t([2.0] * len(null)), t([0.5] * len(null)), 0.5, 3.0, 3.1)


def test_refusal_test_rates_are_hand_counts():
    r = _test_record([1.0, 1.0, 0.5, 1.0])
    assert r.declined_plain == 1.0 and r.declined_ablated == 0.5 and r.answered_ablated == 0.5
    assert r.answered_declined_plain == 0.0 and r.answered_declined_added == 0.5
    assert r.null_below == 0.25  # one random direction of four does as well as the real one
    assert len(r.table().rows) == 4
    broken = RefusalTest(*[*_test_record([1.0]).__dict__.values()][:10], torch.tensor([COHERENT_NLL + 1, 2.0]),
                         *[*_test_record([1.0]).__dict__.values()][11:])
    assert broken.answered_ablated == 0.0  # not a decline, but not ordinary text either: not answered


def test_the_null_is_seeded_unit_directions():
    a, b = random_units(16, 5, seed=0), random_units(16, 5, seed=0)
    assert torch.equal(a, b) and not torch.equal(a, random_units(16, 5, seed=1))
    assert a.shape == (5, 16) and torch.allclose(a.norm(dim=-1), torch.ones(5))


def test_hand_labels_are_stored_data():
    h = hand_labels()
    assert len(h.labels) >= 30 and set(h.labels) <= {"decline", "answer", "broken"}
    assert {"decline", "answer"} <= set(h.labels)
    assert 0 <= h.decline_agreement <= 1 and len(h.table().rows) == len(h.labels)


def test_bad_input(smollm2, gemma):
    with pytest.raises(AnatomyError, match="no chat template"):
        chat(gemma, "Teach me machine learning.")
    with pytest.raises(AnatomyError, match="non-empty list"):
        declines(smollm2, "Give me your password.")
    with pytest.raises(AnatomyError, match="max_new_tokens"):
        answers(smollm2, ANSWERED, max_new_tokens=0)
    with pytest.raises(AnatomyError, match="zero vector"):
        with ablate_direction(smollm2, torch.zeros(smollm2.d_model)):
            pass
    with pytest.raises(AnatomyError, match="shape"):
        with ablate_direction(smollm2, torch.ones(3)):
            pass
    with pytest.raises(AnatomyError, match="positions"):
        refusal_directions(smollm2, DECLINED, ANSWERED, positions=(0,))


def test_plot_names_model_and_counts():
    from anatomy.refusal import RefusalDirections, RefusalSeparation
    r = _test_record([1.0, 0.9, 0.8])
    sep = RefusalSeparation("m", -1, torch.randn(8, 3), torch.randn(8, 4))
    dirs = RefusalDirections("m", (-1,), torch.randn(1, 8, 16))
    fig = anatomy.plot.refusal(r, sep, dirs)
    assert "m" in fig.description["en"] and "3 random" in fig.description["en"] and "3 个随机" in fig.description["zh"]
    with pytest.raises(AnatomyError, match="refusal_test"):
        anatomy.plot.refusal(None, sep, dirs)
