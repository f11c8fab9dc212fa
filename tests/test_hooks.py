"""Places and hooks: captured values equal the model's own, edits act only inside `with`."""

import importlib

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy.families.base import get

hooks = importlib.import_module("anatomy.hooks")


def _ids(model):
    return model.tokenizer("The apple is green.", return_tensors="pt")["input_ids"]


@torch.no_grad()
def test_captured_layers_equal_hidden_states(model):
    ids = _ids(model)
    with hooks.capture(model, "embedding", "layers.0", "layers.5", "final_norm") as seen:
        out = model.hf(input_ids=ids, output_hidden_states=True)
    hs = out.hidden_states
    torch.testing.assert_close(seen["embedding"], hs[0])  # Gemma's embedding module applies sqrt(d) itself
    torch.testing.assert_close(seen["layers.0"], hs[1])
    torch.testing.assert_close(seen["layers.5"], hs[6])
    torch.testing.assert_close(seen["final_norm"], hs[-1])
    mine = anatomy.hidden_states(model, "The apple is green.")  # the book's names for the same tensors
    torch.testing.assert_close(mine.embedding, seen["embedding"][0].float())
    torch.testing.assert_close(mine.layer(0), seen["layers.0"][0].float())
    torch.testing.assert_close(mine.layer(5), seen["layers.5"][0].float())
    torch.testing.assert_close(mine.final, seen["final_norm"][0].float())


@torch.no_grad()
def test_neurons_feed_the_down_projection(model):
    ids = _ids(model)
    with hooks.capture(model, "layers.2.mlp.neurons", "layers.2.mlp", "layers.2.attn.q") as seen:
        model.hf(input_ids=ids)
    mlp = model.layers[2].mlp
    torch.testing.assert_close(mlp.down_proj(seen["layers.2.mlp.neurons"]), seen["layers.2.mlp"])
    assert seen["layers.2.attn.q"].shape == (1, ids.shape[1], model.n_heads * model.head_dim)


@torch.no_grad()
def test_edit_zero_changes_nothing_and_a_vector_changes_logits(model):
    ids = _ids(model)
    base = model.hf(input_ids=ids).logits
    with hooks.edit(model, "layers.3", lambda h: h + 0):
        same = model.hf(input_ids=ids).logits
    torch.testing.assert_close(same, base)
    push = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0)) * 10
    with hooks.edit(model, "layers.3", lambda h: h + push):
        moved = model.hf(input_ids=ids).logits
    assert not torch.allclose(moved, base, atol=1e-3)
    torch.testing.assert_close(model.hf(input_ids=ids).logits, base)  # removed on exit


@torch.no_grad()
def test_hooks_removed_even_on_error(smollm2):
    layer = smollm2.layers[1]
    before = len(layer._forward_hooks)
    with pytest.raises(RuntimeError):
        with hooks.capture(smollm2, "layers.1"), hooks.edit(smollm2, "layers.1", lambda h: h):
            raise RuntimeError("boom")
    assert len(layer._forward_hooks) == before


@pytest.mark.parametrize("place, words", [("layers.99", "out of range"), ("layers.-99", "out of range"), ("layer.1", "Unknown place"), ("layers.1.ffn", "Unknown place")])
def test_bad_places(smollm2, place, words):
    with pytest.raises(AnatomyError, match=words):
        hooks.module_at(smollm2, place)


@torch.no_grad()
def test_mlp_input_is_what_the_feed_forward_sublayer_reads(model):
    ids = _ids(model)
    with hooks.capture(model, "layers.2.mlp.input", "layers.2.mlp") as seen:
        model.hf(input_ids=ids)
    assert seen["layers.2.mlp.input"].shape == (1, ids.shape[1], model.d_model)
    torch.testing.assert_close(model.layers[2].mlp(seen["layers.2.mlp.input"]), seen["layers.2.mlp"])
    with pytest.raises(AnatomyError, match="only under 'layers.N.mlp'"):
        hooks.module_at(model, "layers.2.attn.input")


@torch.no_grad()
def test_resid_mid_is_layer_input_plus_attention_and_feeds_the_ffn_norm(model):
    ids = _ids(model)
    with hooks.capture(model, "layers.1", "layers.2.attn", "layers.2.resid_mid", "layers.2.mlp", "layers.2") as seen:
        model.hf(input_ids=ids)
    mid, attn, mlp = seen["layers.2.resid_mid"], seen["layers.2.attn"], seen["layers.2.mlp"]
    block, spec = model.layers[2], model.arch.blocks[2]
    post_attn = get(block, spec.post_attn_norm.path) if spec.post_attn_norm else torch.nn.Identity()  # Gemma normalizes
    post_ffn = get(block, spec.post_ffn_norm.path) if spec.post_ffn_norm else torch.nn.Identity()  # each branch before adding it
    torch.testing.assert_close(mid, seen["layers.1"] + post_attn(attn))
    torch.testing.assert_close(seen["layers.2"], mid + post_ffn(mlp))
    with pytest.raises(AnatomyError, match="Unknown place"):
        hooks.module_at(model, "layers.2.resid_mid.q")
