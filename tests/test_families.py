"""Every supported family end to end, on small random-weight models saved as local directories.

Each model is built from its transformers configuration class (2 layers, d=64; no download) by
tests/random_models.py, saved with ``save_pretrained`` next to a real tokenizer (SmolLM2's), and loaded back through
``anatomy.load(directory)``. Then: hooks capture every place, and the by-hand attention and FFN
equal the model's own values.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest
import torch

import anatomy
from anatomy import AnatomyError, hooks

SENTENCE = "The apple is green, the sky is blue and the grass is wet today."  # > 8 tokens: past the sliding windows

def _ids(model):
    return model.tokenizer(SENTENCE, return_tensors="pt")["input_ids"]


def test_loads_with_its_description(tiny):
    family, model = tiny
    assert model.arch.n_layers == model.n_layers == 2
    assert model.d_model == 64 and model.n_heads == 4
    expected = {"llama3": "llama", "gemma3_text": "gemma3", "gpt_neox_sequential": "gpt_neox"}.get(family, family)
    assert model.arch.family == expected
    if family == "gemma3":
        assert model.paths["layers"] == "model.language_model.layers"


@torch.no_grad()
def test_every_place_is_captured(tiny):
    family, model = tiny
    ids = _ids(model)
    T = ids.shape[1]
    names = hooks.places(model)
    with hooks.capture(model, *names) as seen:
        out = model.hf(input_ids=ids, output_hidden_states=True)
    a = model.arch.blocks[0].attn
    shapes = {"layers.0.attn.q": a.n_heads * a.head_dim, "layers.0.attn.k": a.n_kv_heads * a.head_dim,
              "layers.0.attn.v": a.n_kv_heads * a.head_dim, "layers.0.attn.o.input": a.n_heads * a.head_dim,
              "layers.0.mlp.neurons": anatomy.ffn_weights(model, 0).n_neurons}
    for name in names:
        assert seen[name].shape == (1, T, shapes.get(name, model.d_model)), name
    torch.testing.assert_close(seen["layers.0"], out.hidden_states[1])
    # the layer's output is its input plus what the two sub-layers add
    spec = model.arch.blocks[0]
    hand = anatomy.attention_by_hand(model, ids, 0)
    mlp_update = seen["layers.0"][0] - (out.hidden_states[0][0] + hand.update)
    if spec.parallel:
        with pytest.raises(AnatomyError, match="parallel residual"):
            hooks.site(model, "layers.0.resid_mid")
    else:
        torch.testing.assert_close(seen["layers.0.resid_mid"][0], hand.residual, rtol=1e-4, atol=1e-4)
    if spec.post_ffn_norm is None:
        torch.testing.assert_close(mlp_update, seen["layers.0.mlp"][0], rtol=1e-4, atol=1e-4)
    if a.q_norm is None:  # the place .q is the projection's output (its rows of a fused one)
        torch.testing.assert_close(seen["layers.0.attn.q"][0], hand.q.transpose(0, 1).reshape(T, -1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(seen["layers.0.attn.v"][0], hand.v.transpose(0, 1).reshape(T, -1), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_edit_a_fused_projection_changes_only_its_rows(tiny):
    family, model = tiny
    ids = _ids(model)
    with hooks.capture(model, "layers.0.attn.q", "layers.0.attn.k", "layers.0.attn.v") as before:
        base = model.hf(input_ids=ids).logits
    with hooks.edit(model, "layers.0.attn.k", lambda k: k), hooks.capture(model, "layers.0.attn.q") as same:
        torch.testing.assert_close(model.hf(input_ids=ids).logits, base)
    with hooks.edit(model, "layers.0.attn.v", torch.zeros_like), hooks.capture(model, "layers.0.attn.q", "layers.0.attn.v") as after:
        changed = model.hf(input_ids=ids).logits
    assert torch.all(after["layers.0.attn.v"] == 0) or model.arch.blocks[0].attn.v.rows is None
    torch.testing.assert_close(after["layers.0.attn.q"], before["layers.0.attn.q"])
    assert not torch.allclose(changed, base)


@torch.no_grad()
def test_hand_attention_equals_the_model(tiny):
    family, model = tiny
    ids = _ids(model)
    L = range(model.n_layers)
    places = [f"layers.{i}{p}" for i in L for p in (".attn", ".attn.o.input", "", ".mlp")]
    with hooks.capture(model, *places) as seen:
        out = model.hf(input_ids=ids, output_attentions=True)
    for layer in L:
        hand = anatomy.attention_by_hand(model, ids, layer)
        attn, concat, output, mlp = (seen[p][0] for p in places[4 * layer: 4 * layer + 4])
        torch.testing.assert_close(hand.weights, out.attentions[layer][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(hand.concat, concat, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(hand.attn_out, attn, rtol=1e-4, atol=1e-5)
        if model.arch.blocks[layer].parallel:  # x + attn + mlp: the residual after attention is the output minus the FFN's part
            torch.testing.assert_close(hand.residual, output - mlp, rtol=1e-4, atol=1e-4)
        window = model.arch.blocks[layer].attn.window
        assert hand.window == window
        if window:  # a local layer: the last query sees exactly the last `window` keys
            T = ids.shape[1]
            assert torch.all(hand.weights[:, -1, : T - window] == 0) and torch.all(hand.weights[:, -1, T - window:] > 0)


def test_rotary_follows_the_configuration(tiny):
    family, model = tiny
    a = model.arch.blocks[0].attn
    if family == "gpt2":
        assert a.rotary_dim == 0
        with pytest.raises(AnatomyError, match="learned table of positions"):
            anatomy.rotary(model, 0)
        return
    rot = anatomy.rotary(model, -1)
    assert rot.theta.shape == (a.rotary_dim // 2,)
    expected_dim = {"phi3": 8, "gpt_neox": 4, "gpt_neox_sequential": 4}.get(family, 16)
    assert a.rotary_dim == expected_dim
    plain = rot.base ** (-torch.arange(0, a.rotary_dim, 2).float() / a.rotary_dim)
    if family == "llama3":  # long wavelengths stretched by the factor 32, short ones kept
        assert rot.theta[0] == pytest.approx(float(plain[0]), rel=1e-4)
        assert rot.theta[-1] == pytest.approx(float(plain[-1]) / 32, rel=1e-3)
    else:
        torch.testing.assert_close(rot.theta, plain, rtol=1e-4, atol=1e-7)


@torch.no_grad()
def test_hand_ffn_equals_the_model(tiny):
    family, model = tiny
    ids = _ids(model)
    for layer in range(model.n_layers):
        places = (f"layers.{layer}.mlp.input", f"layers.{layer}.mlp.neurons", f"layers.{layer}.mlp")
        with hooks.capture(model, *places) as seen:
            model.hf(input_ids=ids)
        x, neurons, out = (seen[p][0] for p in places)
        torch.testing.assert_close(anatomy.ffn_by_hand(model, layer, x), out, rtol=1e-4, atol=1e-5)
        w = anatomy.ffn_weights(model, layer)
        assert (w.gate is None) == family.startswith("gpt")
        for i in (0, 7, w.n_neurons - 1):
            steps = anatomy.neuron_by_hand(anatomy.neuron(model, layer, i), x[3])
            assert steps.output == pytest.approx(float(neurons[3, i]), rel=1e-4, abs=1e-5)


@torch.no_grad()
def test_logits_and_neuron_attribution(tiny):
    family, model = tiny
    ids = _ids(model)
    out = model.hf(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(anatomy.logits_from_hidden(model, out.hidden_states[-1][0, -1]), out.logits[0, -1], rtol=1e-4, atol=1e-4)
    acts, push = anatomy.ffn.neuron_logit_attribution(model, SENTENCE, 1, " the")
    assert acts.shape == push.shape == (anatomy.ffn_weights(model, 1).n_neurons,)


def test_unsupported_family_gets_one_sentence():
    import transformers as t

    hf = t.OPTForCausalLM(t.OPTConfig(vocab_size=64, hidden_size=32, ffn_dim=64, num_hidden_layers=1, num_attention_heads=2,
                                      word_embed_proj_dim=32, max_position_embeddings=32))
    with pytest.raises(AnatomyError, match="OPTForCausalLM.*supports Llama, Mistral.*GPT-NeoX") as err:
        anatomy.Model("tiny-opt", hf, None, "random weights")
    assert "\n" not in str(err.value)


# --- no family branching outside the family files ----------------------------------------------------
SRC = Path(anatomy.__file__).parent
_FAMILY_WORDS = re.compile(r"gemma|llama|qwen|mistral|phi-?3|olmo|gpt-?2|neox|smollm", re.I)
# Hugging Face module and configuration names that only a family file should know.
_HF_NAMES = re.compile(
    r"^(q_proj|k_proj|v_proj|o_proj|qkv_proj|c_attn|c_fc|c_proj|query_key_value|dense|gate_proj|up_proj|down_proj|"
    r"gate_up_proj|dense_h_to_4h|dense_4h_to_h|self_attn|input_layernorm|post_attention_layernorm|pre_feedforward_layernorm|"
    r"post_feedforward_layernorm|ln_1|ln_2|ln_f|rotary_emb|layer_types|sliding_window|query_pre_attn_scalar|"
    r"attn_logit_softcapping|final_logit_softcapping|hidden_activation|hidden_act|rope_parameters)$")
_ALLOWED = {"packaged.py", "hub.py", "loading.py", "claims.py", "about.py", "__main__.py", "__init__.py"}  # model names in messages, not branching


def _docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                yield id(first.value)


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docs = set(_docstrings(tree))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        words = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if path.name not in _ALLOWED:
                words = [node.value] if _FAMILY_WORDS.search(node.value) or _HF_NAMES.match(node.value) else []
        elif isinstance(node, ast.Name):
            words = [node.id] if _FAMILY_WORDS.search(node.id) else []
        elif isinstance(node, ast.Attribute):
            words = [node.attr] if _FAMILY_WORDS.search(node.attr) or _HF_NAMES.match(node.attr) else []
        elif isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            if text in ("inspect.signature", "signature"):
                words = ["inspect.signature"]
        elif isinstance(node, ast.Compare):
            text = ast.unparse(node)
            if "__name__" in text and "type(" in text:
                words = [text]
        found += [f"{where}: {w!r}" for w in words]
    return found


def test_no_family_branching_outside_the_family_files():
    files = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "families"]
    assert len(files) > 15
    offences = [o for p in files for o in _offences(p)]
    assert offences == [], "family knowledge outside src/anatomy/families:\n" + "\n".join(offences)


def test_the_branching_check_can_fail(tmp_path):
    bad = tmp_path / "probe_check.py"
    bad.write_text('def f(m):\n    """Gemma in a docstring is fine."""\n    if m.family == "gemma3_text":\n        return m.layers[0].self_attn.q_proj\n')
    assert len(_offences(bad)) == 3  # the string, .self_attn and .q_proj
