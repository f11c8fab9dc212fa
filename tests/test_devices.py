"""anatomy.devices: a model spread over several devices by a device map gives the results it gives in memory.

This machine has no GPU, so SmolLM2 is spread over the CPU and the disk: the upper layers, the
final norm and the (tied) embedding / LM head are offloaded to a folder on disk, empty ("meta")
tensors in memory, brought in by accelerate for each forward pass; the way a model bigger than
memory runs. Once with an explicit map, once with ``device_map="auto"`` and a ``max_memory`` too
small for the model. Capture, edit, steering, patching, activation patching and the logit lens must
equal the in-memory model's. Moving tensors between two GPUs is not exercised here (no GPU).
"""

from __future__ import annotations

import pytest
import torch

import anatomy
import random_models
from anatomy import AnatomyError, hooks

PROMPT = "The capital of France is"
CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"
ANSWERS = (" Paris", " Rome")
ZH, EN = ["今天天气很好，我们", "这本书讲的是"], ["The weather is nice today, we", "This book is about"]


def _explicit_map(model) -> dict:
    """Lower half of the layers in memory; upper half, final norm and embedding / LM head (tied) on disk."""
    L = model.n_layers
    dm = {f"{model.paths['layers']}.{i}": "cpu" if i < L // 2 else "disk" for i in range(L)}
    names = {m: n for n, m in model.hf.named_modules()}
    dm.update({names[model.embedding]: "disk", names[model.lm_head]: "disk", model.paths["final_norm"]: "disk"})
    for n, m in model.hf.named_children():  # what else sits at the top (rotary embedding...)
        for c, _ in m.named_children():
            if not any(k == f"{n}.{c}" or k.startswith(f"{n}.{c}.") for k in dm):
                dm[f"{n}.{c}"] = "cpu"
    return dm


def _offloaded(request, smollm2, tmp_path_factory, **placement):
    model = anatomy.load("smollm2-135m", offload_folder=tmp_path_factory.mktemp("offload"), **placement)
    request.addfinalizer(lambda: anatomy.load.cache_clear(model))  # this model only: the session's smollm2 stays
    return model


@pytest.fixture(scope="module")
def spread(request, smollm2, tmp_path_factory):
    """SmolLM2 over the CPU and the disk, by an explicit device map."""
    return _offloaded(request, smollm2, tmp_path_factory, device_map=_explicit_map(smollm2))


@pytest.fixture(scope="module")
def auto(request, smollm2, tmp_path_factory):
    """SmolLM2 placed by accelerate (device_map="auto") with room in memory for half of it: the rest goes to disk."""
    size = sum(p.numel() * p.element_size() for p in smollm2.hf.parameters())
    return _offloaded(request, smollm2, tmp_path_factory, device_map="auto", max_memory={"cpu": size // 2})


def _layers(model) -> tuple[int, int]:
    """A layer held in memory and a layer on disk."""
    where = model.hf.hf_device_map
    held = [i for i in range(model.n_layers) if where.get(f"{model.paths['layers']}.{i}", "cpu") == "cpu"]
    disk = [i for i in range(model.n_layers) if where.get(f"{model.paths['layers']}.{i}") == "disk"]
    return held[len(held) // 2], disk[len(disk) // 2]


@pytest.mark.parametrize("placed", ["spread", "auto"])
def test_the_model_really_sits_on_two_devices(placed, request, smollm2):
    spread = request.getfixturevalue(placed)
    assert spread is not smollm2 and anatomy.load("smollm2-135m") is smollm2
    assert {"cpu", "disk"} <= set(spread.hf.hf_device_map.values())
    assert spread.layers[_layers(spread)[1]].mlp.down_proj.weight.device.type == "meta"  # offloaded: not in memory
    assert spread.device == torch.device("cpu") and spread.tied == smollm2.tied
    assert spread.dtype == smollm2.dtype and "cpu" in repr(spread)


@torch.no_grad()
@pytest.mark.parametrize("placed", ["spread", "auto"])
def test_capture_and_logits(placed, request, smollm2):
    spread = request.getfixturevalue(placed)
    low, high = _layers(spread)
    places = ["embedding", f"layers.{low}", f"layers.{high}", f"layers.{high}.attn.q", f"layers.{high}.mlp.neurons", "final_norm"]
    ids = anatomy.tokenize(smollm2, PROMPT)
    ids = torch.tensor([[t.id for t in ids]])
    seen = {}
    for name, model in (("spread", spread), ("memory", smollm2)):
        with hooks.capture(model, *places) as got:
            logits = model.hf(input_ids=ids.to(model.device)).logits
        seen[name] = (got, logits)
    for p in places:
        torch.testing.assert_close(seen["spread"][0][p], seen["memory"][0][p])
    torch.testing.assert_close(seen["spread"][1], seen["memory"][1])


@pytest.mark.parametrize("placed", ["spread", "auto"])
def test_logit_lens(placed, request, smollm2):
    spread = request.getfixturevalue(placed)
    a, b = (anatomy.logit_lens(m, PROMPT, [" Paris", " London"]) for m in (spread, smollm2))
    assert torch.equal(a.top_ids, b.top_ids)
    torch.testing.assert_close(a.top_probs, b.top_probs)
    torch.testing.assert_close(a.target_probs, b.target_probs)


def test_activation_patching(spread, smollm2):
    layers = list(_layers(spread))
    a, b = (anatomy.activation_patching(m, CLEAN, CORRUPTED, *ANSWERS, layers=layers) for m in (spread, smollm2))
    torch.testing.assert_close(a.residual, b.residual, equal_nan=True)
    torch.testing.assert_close(a.heads, b.heads, equal_nan=True)
    torch.testing.assert_close(a.embedding, b.embedding)


def test_steering_and_patching(spread, smollm2):
    low, high = _layers(spread)
    v = anatomy.direction(smollm2, ZH, EN, high)
    torch.testing.assert_close(anatomy.direction(spread, ZH, EN, high), v)
    out = {}
    for name, m in (("spread", spread), ("memory", smollm2)):
        with anatomy.steer(m, high, v, 4.0):  # the vector stays on the CPU; the layer runs from disk
            text = anatomy.generate(m, PROMPT, max_new_tokens=3)
        vec = anatomy.source_vector(m, CLEAN, low)
        with anatomy.patching(m, high, 1, vec):
            nt = anatomy.next_token(m, CORRUPTED)
        out[name] = (text, nt.logits)
    assert out["spread"][0] == out["memory"][0]
    torch.testing.assert_close(out["spread"][1], out["memory"][1])


@torch.no_grad()
def test_a_local_directory_is_placed_by_transformers(smollm2, tmp_path):
    """A Hugging Face id or a directory goes through from_pretrained(device_map=...): the same results."""
    where = random_models.saved("llama", tmp_path / "tiny", smollm2.tokenizer, layers=4)
    dm = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu",
          "model.layers.2": "disk", "model.layers.3": "disk", "model.norm": "disk", "lm_head": "disk"}
    whole = anatomy.load(str(where))
    spread = anatomy.load(str(where), device_map=dm, offload_folder=tmp_path / "offload")
    try:
        assert spread is not whole and spread.hf.hf_device_map == dm
        assert spread.lm_head.weight.device.type == "meta" and spread.device == torch.device("cpu")
        a, b = (anatomy.logit_lens(m, PROMPT, [" Paris"]) for m in (spread, whole))
        torch.testing.assert_close(a.top_probs, b.top_probs)
        torch.testing.assert_close(a.target_probs, b.target_probs)
        with anatomy.steer(spread, 3, torch.ones(spread.d_model), 2.0), hooks.capture(spread, "layers.3") as s:
            spread.hf(input_ids=torch.tensor([[1, 2, 3]]))
        with anatomy.steer(whole, 3, torch.ones(whole.d_model), 2.0), hooks.capture(whole, "layers.3") as w:
            whole.hf(input_ids=torch.tensor([[1, 2, 3]]))
        torch.testing.assert_close(s["layers.3"], w["layers.3"])
    finally:
        anatomy.load.cache_clear(str(where))


@pytest.mark.parametrize("kwargs, words", [
    (dict(device_map="everywhere"), "Unknown device_map"),
    (dict(device_map={"model": "gpu"}), "Unknown device"),
    (dict(device_map={"model": "disk"}), "offload_folder"),
    (dict(device_map="auto", max_memory="1GB"), "max_memory must be a dict"),
    (dict(max_memory={"cpu": "1GB"}), "only apply with a device_map"),
    (dict(device_map="auto", device="cuda"), "either device"),
])
def test_bad_device_maps_get_one_sentence(kwargs, words):
    with pytest.raises(AnatomyError) as err:
        anatomy.load("smollm2-135m", **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)
