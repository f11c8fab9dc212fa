"""Chapter 8: patchscopes move a hidden vector into a target prompt and let the model talk about it."""

from __future__ import annotations

import pytest
import torch

import anatomy
from anatomy import hooks
from anatomy.brains import greedy
from anatomy.run import check_prompt

SOURCE = "Diana, Princess of Wales"
TARGET = "Syria: Country in the Middle East, Leonardo DiCaprio: American actor, X"
SELF = "The capital of X is"


def test_placeholder_position(model):
    p = anatomy.placeholder_position(model, TARGET, "X")
    tokens = anatomy.tokenize(model, TARGET)
    assert tokens[p].text == "␣X" and p == len(tokens) - 1
    assert anatomy.placeholder_position(model, "cat → cat; hello → hello; ? →", "?") == len(anatomy.tokenize(model, "cat → cat; hello → hello; ? →")) - 2


def test_source_vector_is_the_hidden_state(model):
    hs = anatomy.hidden_states(model, SOURCE)
    for layer in (0, model.n_layers // 2, model.n_layers - 2):
        v = anatomy.source_vector(model, SOURCE, layer)
        assert v.shape == (model.d_model,)
        assert torch.allclose(v, hs.layer(layer)[-1], atol=1e-4)  # "layers.N" = hidden_states(...).layer(N)
    both = anatomy.source_vectors(model, SOURCE, [1, 3], 2)
    assert torch.allclose(both, hs.states[[2, 4], 2], atol=1e-4)


@pytest.mark.parametrize("layer", [0, 5])
def test_patching_a_vector_into_its_own_place_changes_nothing(model, layer):
    ids = check_prompt(model, SELF)
    pos = anatomy.placeholder_position(model, SELF)
    with torch.no_grad():
        plain = model.hf(input_ids=ids).logits[0]  # [T, V]
        own = anatomy.source_vector(model, SELF, layer, pos)
        with anatomy.patching(model, layer, pos, own):
            same = model.hf(input_ids=ids).logits[0]
        other = anatomy.source_vector(model, SOURCE, layer, -1)
        with anatomy.patching(model, layer, pos, other):
            changed = model.hf(input_ids=ids).logits[0]
    assert torch.allclose(same, plain, atol=1e-4)
    assert not torch.allclose(changed[pos:], plain[pos:], atol=1e-2)  # a foreign vector does change it
    assert torch.allclose(changed[:pos], plain[:pos], atol=1e-4)  # causal: earlier positions untouched
    # and the whole patchscope (greedy continuation) equals the unpatched continuation
    scope = anatomy.patchscope(model, SELF, layer, pos, target_prompt=SELF, max_new_tokens=4)
    assert scope.target_position == pos and scope.source_position == pos
    assert list(scope.continuation_ids) == list(greedy(model, SELF, 4))[: len(scope.continuation_ids)]


def test_hook_is_removed_even_on_error(smollm2):
    module, _ = hooks.module_at(smollm2, "layers.3")
    before = len(module._forward_hooks)
    with pytest.raises(RuntimeError):
        with anatomy.patching(smollm2, 3, 0, torch.zeros(smollm2.d_model)):
            assert len(module._forward_hooks) == before + 1
            raise RuntimeError("boom")
    assert len(module._forward_hooks) == before


def test_sweep_is_deterministic_and_tabled(smollm2):
    a = anatomy.patchscope_sweep(smollm2, SOURCE, target_prompt=TARGET, layers=[0, 6], max_new_tokens=5)
    b = anatomy.patchscope_sweep(smollm2, SOURCE, target_prompt=TARGET, layers=[0, 6], max_new_tokens=5)
    assert [s.continuation for s in a] == [s.continuation for s in b]
    assert [s.source_layer for s in a] == [0, 6] and all(s.target_layer == s.source_layer for s in a)
    assert all(1 <= len(s.continuation_ids) <= 5 for s in a)
    one = anatomy.patchscope(smollm2, SOURCE, 6, target_prompt=TARGET, max_new_tokens=5)
    assert one.continuation == a[1].continuation  # the sweep is the single call, layer by layer
    t = anatomy.patchscope_table(a)
    assert t.columns == ("source layer", "target layer", "continuation") and len(t.rows) == 2
    assert a[0].source_token == "␣Wales"


def test_bad_input(smollm2):
    L = smollm2.n_layers
    with pytest.raises(anatomy.AnatomyError, match=f"Layer {L} is out of range"):
        anatomy.patchscope(smollm2, SOURCE, L, target_prompt=TARGET)
    with pytest.raises(anatomy.AnatomyError, match="Layer 40 is out of range"):
        anatomy.patchscope(smollm2, SOURCE, 3, target_prompt=TARGET, target_layer=40)
    with pytest.raises(anatomy.AnatomyError, match="Position 50 is out of range"):
        anatomy.patchscope(smollm2, SOURCE, 3, 50, target_prompt=TARGET)
    with pytest.raises(anatomy.AnatomyError, match="placeholder 'X' is not a token"):
        anatomy.patchscope(smollm2, SOURCE, 3, target_prompt="Please introduce this person.")
    with pytest.raises(anatomy.AnatomyError, match="appears 2 times"):
        anatomy.patchscope(smollm2, SOURCE, 3, target_prompt="X and X")
    with pytest.raises(anatomy.AnatomyError, match="empty"):
        anatomy.patchscope(smollm2, "", 3, target_prompt=TARGET)
    with pytest.raises(anatomy.AnatomyError, match="shape"):
        with anatomy.patching(smollm2, 3, 0, torch.zeros(7)):
            pass
    with pytest.raises(anatomy.AnatomyError, match="max_new_tokens"):
        anatomy.patchscope(smollm2, SOURCE, 3, target_prompt=TARGET, max_new_tokens=0)
