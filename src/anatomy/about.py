"""What this copy of the book was built with: versions of Python, the libraries and the models (Start here)."""

from __future__ import annotations

import importlib.metadata
import platform

from .loading import DEFAULT_MODELS
from .show import Table

__all__ = ["versions"]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> Table:
    """A table of the software and model packages in use, for the Start page."""
    from . import __version__

    rows = [
        ("Python", platform.python_version()),
        ("torch", _version("torch")),
        ("transformers", _version("transformers")),
        ("anatomy", __version__),
    ]
    rows += [(f"model {m.name}", f"{m.title}, {m.quantization}, from {m.package} {_version(m.package)}") for m in DEFAULT_MODELS.values()]
    return Table(("software", "version"), tuple(rows))
