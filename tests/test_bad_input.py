"""Bad input, tried on purpose: each gets one clear sentence (or, for a damaged cache, a silent rebuild).

One table, so a reader can see every mistake the library guards against and what it answers.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import anatomy
from anatomy import AnatomyError

hooks = importlib.import_module("anatomy.hooks")
load_module = importlib.import_module("anatomy.loading")


def _offline_hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)


# (what the reader did, the call, words the answer must contain)
CASES = [
    ("unknown model name", lambda s, g: anatomy.load("gpt-7"), "Unknown model"),
    ("misspelt default model", lambda s, g: anatomy.load("gemma-3-207m"), "did you mean 'gemma-3-270m'"),
    ("bad device", lambda s, g: anatomy.load("smollm2-135m", device="tpu"), "device"),
    ("bad dtype", lambda s, g: anatomy.load("smollm2-135m", dtype="int4"), "dtype"),
    ("word that is several tokens", lambda s, g: anatomy.single_token_id(g, "龘"), "is 3 tokens"),
    ("word that is several tokens (embedding)", lambda s, g: anatomy.embed(s, "李"), "tokens"),
    ("empty prompt", lambda s, g: anatomy.next_token(s, ""), "empty"),
    ("empty text to tokenize", lambda s, g: anatomy.tokenize(g, ""), "empty"),
    ("prompt longer than the window", lambda s, g: anatomy.next_token(s, "hi " * 9000), "longer than"),
    ("layer out of range (hidden states)", lambda s, g: anatomy.hidden_states(s, "hi").layer(99), "out of range"),
    ("layer out of range (place)", lambda s, g: hooks.module_at(g, "layers.18"), "out of range"),
    ("unknown place", lambda s, g: hooks.module_at(g, "layers.1.ffn"), "Unknown place"),
    ("zero temperature", lambda s, g: anatomy.next_token(s, "hi", temperature=0), "temperature"),
    ("head out of range", lambda s, g: anatomy.attention_by_hand(s, "the apple is green", 3).head(9), "ead"),
    ("layer out of range (attention)", lambda s, g: anatomy.attention_by_hand(s, "the apple is green", 30), "out of range"),
    ("position out of range (patchscope)", lambda s, g: anatomy.patchscope(s, "Diana, Princess of Wales", 3, 99, target_prompt="cat -> cat; X ->"), "osition"),
    ("placeholder missing (patchscope)", lambda s, g: anatomy.patchscope(s, "Diana", 3, -1, target_prompt="cat -> cat; ? ->"), "X"),
    ("steering vector of the wrong size", lambda s, g: anatomy.steer(s, torch.zeros(7), 3).__enter__(), "size"),
    ("negative temperature", lambda s, g: anatomy.softmax_by_hand(torch.zeros(3), temperature=-1), "emperature"),
]


@pytest.mark.parametrize("what, call, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_sentence(smollm2, gemma, what, call, words):
    with pytest.raises(AnatomyError) as err:
        call(smollm2, gemma)
    message = str(err.value)
    assert words in message
    assert "\n" not in message and len(message) < 400  # one sentence, not a traceback
    assert message.rstrip().endswith((".", ")", "'"))


def test_model_id_without_network(monkeypatch, tmp_path):
    _offline_hub(monkeypatch, tmp_path)
    with pytest.raises(AnatomyError, match="no network|Cannot download|No model"):
        anatomy.load("meta-llama/Llama-3.2-3B")


LOAD = "import anatomy, sys; m = anatomy.load('smollm2-135m'); print(m.hf.num_parameters())"


def _first_loads() -> dict:
    """The processes of test_first_loads_at_once_and_a_damaged_cache, run in a thread of its own.

    Two processes load SmolLM2 into an empty cache at once; what the cache then holds is noted;
    its weights file is damaged (half-written) and a third process loads it again. Started early by
    the root conftest (start_early), so that the three processes (two conversions of the GGUF file)
    run beside the other tests; the test checks what they did.
    """
    import tempfile
    from pathlib import Path

    cache = Path(tempfile.mkdtemp(prefix="anatomy-cache-"))
    env = {**os.environ, "ANATOMY_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", LOAD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    found = {"cache": cache, "codes": [p.returncode for p in procs], "outs": outs,
             "entries": [p for p in cache.iterdir() if p.is_dir() and p.name.startswith("smollm2")],
             "leftovers": [p for p in cache.iterdir() if p.name.startswith(".tmp")]}
    if found["codes"] != [0, 0] or len(found["entries"]) != 1:
        return found
    entry = found["entries"][0]
    found["manifest"] = json.loads((entry / "anatomy-manifest.json").read_text())
    with open(entry / "model.safetensors", "r+b") as f:  # damage it: a half-written weights file
        f.truncate(4096)
    found["again"] = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=900)
    found["size"] = (entry / "model.safetensors").stat().st_size
    return found


def start_early(items) -> None:
    """Called by the root conftest with the collected tests: the loads of the test below start now."""
    from sitetools import in_background

    if any(item.path.name == "test_bad_input.py" and item.name == "test_first_loads_at_once_and_a_damaged_cache" for item in items):
        in_background("first-loads", _first_loads)


def test_first_loads_at_once_and_a_damaged_cache():
    """Two processes filling an empty cache at once both succeed and leave one good entry;
    a damaged entry is then rebuilt silently by the next load (the processes: `_first_loads`)."""
    from sitetools import in_background

    found = in_background("first-loads", _first_loads).result()
    try:
        outs = found["outs"]
        assert found["codes"] == [0, 0], [o[1][-2000:] for o in outs]
        assert outs[0][0].strip() == outs[1][0].strip() == str(anatomy.load("smollm2-135m").hf.num_parameters())
        assert len(found["entries"]) == 1 and not found["leftovers"]
        again = found["again"]
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.stdout.strip() == outs[0][0].strip()
        assert found["size"] == found["manifest"]["files"]["model.safetensors"]
    finally:
        shutil.rmtree(found["cache"], ignore_errors=True)
