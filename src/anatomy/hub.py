"""Load any Hugging Face model id or local directory, and say in one sentence why a load failed (Start here)."""

from __future__ import annotations

import contextlib

import torch

from .errors import AnatomyError
from .model import Model

__all__ = ["hub_error", "load_pretrained", "quiet_transformers"]


def load_pretrained(name: str, where: str, dtype: torch.dtype, **placement) -> Model:
    """A model id or a directory (``save_pretrained`` output with a tokenizer), with eager attention.

    ``placement`` (``device_map``, ``max_memory``, ``offload_folder``) goes to ``from_pretrained``,
    which then loads each part straight onto its device (see ``anatomy.devices``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(where)
            hf = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, attn_implementation="eager",
                                                      **{k: v for k, v in placement.items() if v is not None})
    except (OSError, ValueError) as err:
        raise hub_error(name, err) from err
    return Model(name, hf, tokenizer, source=f"{where} (transformers)")


def hub_error(name: str, err: Exception) -> AnatomyError:
    """The reason a Hub load failed (gated, missing, offline...), as one sentence with what to do."""
    text = " ".join(str(e) for e in _chain(err)).lower()
    kinds = {type(e).__name__ for e in _chain(err)}
    if "GatedRepoError" in kinds or "gated" in text or "restricted" in text:
        return AnatomyError(
            f"{name!r} is a gated model: accept its licence on huggingface.co/{name}, then log in with "
            "`hf auth login` (or set HF_TOKEN) and load it again."
        )
    if "RepositoryNotFoundError" in kinds or "not a valid model identifier" in text or "404" in text:
        return AnatomyError(f"No model {name!r} on the Hugging Face Hub or on disk: check the spelling, or log in if it is private.")
    if "LocalEntryNotFoundError" in kinds or "connect" in text or "offline" in text or "network" in text:
        return AnatomyError(
            f"Cannot download {name!r}: there is no network (or HF_HUB_OFFLINE is set) and no copy in the "
            "Hugging Face cache; connect and try again, or pass a local directory, or use 'smollm2-135m' / 'gemma-3-270m'."
        )
    return AnatomyError(f"Could not load {name!r}: {str(err).splitlines()[0]}")


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings for the duration of a load, then restore its verbosity."""
    from transformers.utils import logging as tlog

    before = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(before)
