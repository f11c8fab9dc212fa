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


# --- one argument order in the whole library (issue 22 §4) ----------------------------------------
# __init__.py states it: (model, prompt, layer, position, ...). What the reader feeds the model (a
# prompt, texts, a corpus, pairs, the input vector x) comes first, then where in the model (layer),
# then where in the text or which part (position, head, neuron), then everything else (a vector to
# add, a strength, a count).
_INPUT = ("prompt", "text", "corpus", "word", "noun", "pair", "request", "sentence", "declined", "answered",
          "held_out", "train", "dev", "test", "queries", "x", "hidden", "hs", "ids", "tokens", "inputs")
_WHERE = {"layer": 2, "layers": 2, "position": 3, "positions": 3, "head": 3, "heads": 3, "neuron": 3, "neurons": 3}


def _group(param: str) -> int:
    if param in ("model", "models"):
        return 0
    if param in _WHERE:
        return _WHERE[param]
    if param.startswith(_INPUT):
        return 1
    return 4


def test_every_public_function_takes_its_arguments_in_the_stated_order():
    wrong = []
    for name in anatomy.__all__:
        f = getattr(anatomy, name)
        if not inspect.isfunction(f):
            continue
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not params or params[0] not in ("model", "models"):
            continue
        groups = [_group(p) for p in params]
        if groups != sorted(groups):
            wrong.append(f"{name}({', '.join(params)})")
    assert wrong == [], "(model, prompt, layer, position, ...) as anatomy/__init__.py states: " + "; ".join(wrong)
