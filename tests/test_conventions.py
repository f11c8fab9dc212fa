"""The library's conventions, written once (issue 12 §3): names that do not shadow their module, public hooks."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import anatomy
import anatomy.plot

SRC = Path(anatomy.__file__).parent


def _modules():
    for pkg in (anatomy, anatomy.plot, importlib.import_module("anatomy.families")):
        for info in pkgutil.iter_modules(pkg.__path__):
            yield f"{pkg.__name__}.{info.name}", Path(pkg.__path__[0]) / f"{info.name}.py"


def test_no_function_shadows_its_module():
    shadowing = []
    for name, path in _modules():
        if not path.exists():
            continue
        short = name.rsplit(".", 1)[1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == short for n in tree.body):
            shadowing.append(name)
    assert shadowing == []


def test_every_public_name_of_the_package_is_what_it_says():
    # anatomy.X for X in __all__ is the documented object, never a submodule hidden by a function
    for name in anatomy.__all__:
        assert not inspect.ismodule(getattr(anatomy, name)) or name == "plot", name


def test_hook_helpers_are_public():
    from anatomy import hooks

    assert {"capture", "edit", "places"} <= set(anatomy.__all__)
    assert anatomy.capture is hooks.capture and anatomy.edit is hooks.edit and anatomy.places is hooks.places
