"""Models spread over several devices: GPUs, the CPU and the disk, with accelerate (Start here).

``anatomy.load(name, device_map="auto")`` (or a dict from module path to device) places each part
of a model where the map says, with accelerate, the library transformers' ``from_pretrained`` uses
for the same thing. accelerate wraps every placed module's ``forward`` with a hook that moves the
module's inputs to its *execution device*, and for weights offloaded to the CPU or the disk brings
them there for the duration of the call (outside a forward pass such a weight is an empty tensor
on the "meta" device). So:

- a forward hook of ours (``anatomy.hooks``) sees tensors on the device of the module it hooks,
  and what it returns must stay there: ``hooks.edit`` moves the result back to that device;
- a weight read by hand (the LM head of the logit lens) is read inside ``weights_on(model,
  module)``, which brings it to its execution device first, like a forward pass does;
- inputs go to ``model.device``: the execution device of the embedding (never "meta").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from .errors import AnatomyError

__all__ = ["AUTO_MAPS", "check_placement", "checked_device", "dispatch", "execution_device", "weights_on"]

AUTO_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's automatic placements


def checked_device(device) -> torch.device:
    """A device name as a torch.device, or one sentence on why it cannot be used on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise AnatomyError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:0' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AnatomyError(f"device={device!r} needs a CUDA GPU, and torch sees none on this machine; use device='cpu' (or install a CUDA build of torch).")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise AnatomyError(f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s).")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise AnatomyError(f"device={device!r} needs Apple's MPS, which is not available here; use device='cpu'.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise AnatomyError(f"Unsupported device {device!r}: use 'cpu', 'cuda' or 'mps'.")
    return dev


def _check_device(where, what: str) -> None:
    if isinstance(where, int) and not isinstance(where, bool):
        where = f"cuda:{where}"
    if where == "disk":
        return
    try:
        checked_device(where)
    except AnatomyError as err:
        raise AnatomyError(f"{what}: {err}") from None


def check_placement(device, device_map, max_memory, offload_folder) -> dict | None:
    """The arguments of ``load`` that place a model on several devices, checked; None when there is no map."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise AnatomyError("max_memory and offload_folder only apply with a device_map: pass device_map='auto' as well (or drop them).")
        return None
    if str(device) != "cpu":
        raise AnatomyError(f"Pass either device={device!r} or device_map, not both: with a device map every part runs where the map puts it.")
    if isinstance(device_map, str):
        if device_map not in AUTO_MAPS:
            raise AnatomyError(f"Unknown device_map {device_map!r}: use one of {', '.join(map(repr, AUTO_MAPS))}, or a dict from module path to device.")
    elif isinstance(device_map, dict) and device_map:
        for path, where in device_map.items():
            _check_device(where, f"device_map[{path!r}] = {where!r}")
        if "disk" in device_map.values() and offload_folder is None:
            raise AnatomyError("The device_map puts weights on 'disk': pass offload_folder, a directory where they are written.")
    else:
        raise AnatomyError(f"device_map must be 'auto' or a dict from module path to device, got {device_map!r}.")
    if max_memory is not None:
        if not isinstance(max_memory, dict) or not max_memory:
            raise AnatomyError(f"max_memory must be a dict such as {{0: '20GiB', 'cpu': '60GiB'}}, got {max_memory!r}.")
        if isinstance(device_map, dict):
            raise AnatomyError("max_memory is for an automatic device_map ('auto'...); an explicit device map already says where each part goes.")
        for where in max_memory:
            _check_device(where, f"max_memory key {where!r}")
    if offload_folder is not None:
        offload_folder = str(Path(offload_folder).expanduser())
    return {"device_map": device_map, "max_memory": max_memory, "offload_folder": offload_folder}


def dispatch(hf: torch.nn.Module, device_map, max_memory=None, offload_folder=None) -> None:
    """Place an in-memory model's parts on the devices of ``device_map`` ('auto'... or a dict), in place."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    if isinstance(device_map, str):
        no_split = hf._no_split_modules or []  # a decoder layer is never cut across devices
        if device_map != "sequential":
            max_memory = get_balanced_memory(hf, max_memory=max_memory, no_split_module_classes=no_split,
                                             low_zero=device_map == "balanced_low_0")
        device_map = infer_auto_device_map(hf, max_memory=max_memory, no_split_module_classes=no_split)
        if "disk" in device_map.values() and offload_folder is None:
            raise AnatomyError(f"The model does not fit in max_memory={max_memory!r}, so part of it goes to the disk: pass offload_folder, a directory where those weights are written.")
    dispatch_model(hf, device_map=device_map, offload_dir=offload_folder)


def _hook_device(module: torch.nn.Module):
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or [hook]:  # accelerate's SequentialHook holds several
        dev = getattr(h, "execution_device", None)
        if dev is not None:
            return torch.device(f"cuda:{dev}" if isinstance(dev, int) else dev)
    return None


def execution_device(hf: torch.nn.Module, module: torch.nn.Module) -> torch.device:
    """The device that runs ``module``: where its weights are, or with a device map where accelerate brings them."""
    if getattr(hf, "hf_device_map", None) is None:  # one device: where the weights are
        return next(module.parameters()).device
    dev = _hook_device(module)
    if dev is None:  # a submodule of a placed block: the block's hook runs it (the nearest hooked parent)
        names = {m: n for n, m in hf.named_modules()}
        path = names.get(module, "")
        parents = {n: m for n, m in hf.named_modules() if path.startswith(n + ".") or n == ""}
        for n in sorted(parents, key=len, reverse=True):
            dev = _hook_device(parents[n])
            if dev is not None:
                break
    if dev is None:
        params = [p for p in module.parameters() if p.device.type != "meta"]
        dev = params[0].device if params else torch.device("cpu")
    return dev


@contextlib.contextmanager
def weights_on(hf: torch.nn.Module, module: torch.nn.Module) -> Iterator[torch.device]:
    """Inside the block, ``module``'s own weights are real tensors on its execution device (yielded).

    On one device this changes nothing. With a device map, weights offloaded to the CPU or the disk
    are brought to the execution device for the block and put back after it, as a forward pass does.
    """
    dev = execution_device(hf, module)
    own = list(module.parameters(recurse=False))
    if all(p.device == dev for p in own):
        yield dev
        return
    from accelerate.utils import align_module_device

    with align_module_device(module, dev):
        yield dev
