"""The library's structure (issue 23): modules use each other only through public names; one module runs part of a model."""

import ast
from pathlib import Path

import anatomy

SRC = Path(anatomy.__file__).parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports_of_private_names(path: Path) -> list[str]:
    """Every ``from .x import _name`` and every ``module._name`` of an imported anatomy module in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("anatomy")):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)  # may be a module (from . import hooks)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("anatomy"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"{path.relative_to(SRC)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = [f for path in sorted(SRC.rglob("*.py")) for f in _imports_of_private_names(path)]
    assert found == []


def test_the_check_catches_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .steering import _batch\nfrom . import hooks\nx = hooks._first\n")
    original = SRC
    try:
        globals()["SRC"] = tmp_path
        assert _imports_of_private_names(bad) == ["bad.py:1 imports _batch", "bad.py:3 uses hooks._first"]
    finally:
        globals()["SRC"] = original


def test_only_the_run_module_pads_batches_or_stops_a_pass():
    # padding with the tokenizer's pad token, and stopping a forward pass with an exception from a hook,
    # are written once, in anatomy/run.py
    others = [p for p in sorted(SRC.glob("*.py")) if p.name != "run.py"]
    padding = [p.name for p in others if "pad_token_id" in p.read_text(encoding="utf-8") and "torch.full(" in p.read_text(encoding="utf-8")]
    stopping = [p.name for p in others if "class _Stop" in p.read_text(encoding="utf-8") or "class _Enough" in p.read_text(encoding="utf-8")]
    assert padding == [] and stopping == []


def test_no_module_replaces_a_forward():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            found += [f"{path.name}:{node.lineno}" for t in targets if isinstance(t, ast.Attribute) and t.attr == "forward"]
            if isinstance(node, ast.Delete):
                found += [f"{path.name}:{node.lineno}" for t in node.targets if isinstance(t, ast.Attribute) and t.attr == "forward"]
    assert found == []


def test_soft_cap_is_written_once():
    # cap * tanh(logits / cap) for the final logits lives in anatomy.run.soft_cap; the attention
    # scores' own soft-cap (Gemma 2) is another formula, in attention.py
    found = [p.name for p in sorted(SRC.glob("*.py")) if "final_softcap" in p.read_text(encoding="utf-8")]
    assert found == ["run.py"]


def test_one_meaning_of_family(tiny):
    # Model.family names the family file that describes the model, as Arch.family does;
    # transformers' own name stays in config.model_type ('gemma3_text')
    name, model = tiny
    assert model.family == model.arch.family
    if name == "gemma3_text":
        assert model.family == "gemma3" and model.config.model_type == "gemma3_text"


# --- who runs the model ------------------------------------------------------------------------------
# The modules that own the Hugging Face model and may call it: anatomy.run runs it (a whole pass, part
# of one, generation); model.py, loading.py and the family files load and describe it.
OWNERS = {"run.py", "model.py", "loading.py", "families"}


def _owner(path: Path, allowed: set[str]) -> bool:
    return path.relative_to(SRC).parts[0] in allowed


def _calls_of_the_model(path: Path) -> list[str]:
    """Every call of the model itself in one file: ``x.hf(...)``, ``x.decoder(...)``, ``x.hf.generate(...)``, ``x.hf.forward(...)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        f = node.func
        if f.attr in ("hf", "decoder") or (f.attr in ("generate", "forward") and isinstance(f.value, ast.Attribute) and f.value.attr == "hf"):
            found.append(f"{path.relative_to(SRC)}:{node.lineno} calls {ast.unparse(f)}(...)")
    return found


def test_only_the_run_module_calls_the_model():
    # every other module runs the model through anatomy.run (forward, generate, run_to, pause/resume, prefix/run_after)
    found = [f for path in sorted(SRC.rglob("*.py")) if not _owner(path, OWNERS)
             for f in _calls_of_the_model(path)]
    assert found == []


def test_the_check_catches_a_call_of_the_model(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(model, ids):\n    model.hf(input_ids=ids)\n    model.decoder(input_ids=ids)\n"
                   "    model.hf.generate(input_ids=ids)\n    model.hf.num_parameters()\n    '''model.hf(input_ids=ids)'''\n")
    original = SRC
    try:
        globals()["SRC"] = tmp_path
        assert _calls_of_the_model(bad) == ["bad.py:2 calls model.hf(...)", "bad.py:3 calls model.decoder(...)",
                                            "bad.py:4 calls model.hf.generate(...)"]
    finally:
        globals()["SRC"] = original


def _uses(tree: ast.Module) -> tuple[bool, bool]:
    """(imports anatomy.run, reads or changes a pass: calls the model, run.*, or hooks' capture/edit)."""
    imports_run = runs = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = {a.name for a in node.names}
            imports_run |= (node.module is None and "run" in names) or node.module == "run"
            runs |= node.module == "run" or (node.module == "hooks" and bool(names & {"capture", "edit"}))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            runs |= node.value.id == "run" or (node.value.id == "hooks" and node.attr in ("capture", "edit"))
    return imports_run, runs


def test_every_chapter_module_that_runs_the_model_imports_run():
    chapters = [p for p in sorted(SRC.glob("*.py")) if p.name not in OWNERS | {"hooks.py", "__init__.py", "__main__.py"}]
    running = {p.name: _uses(ast.parse(p.read_text(encoding="utf-8"))) for p in chapters}
    running = {name: imports for name, (imports, runs) in running.items()
               if runs or _calls_of_the_model(SRC / name)}
    # the modules of the chapters that run a model (Chapters 1, 3-18) are all found
    assert {"prediction.py", "hidden.py", "lm_head.py", "probe.py", "steering.py", "lens.py", "patchscopes.py",
            "attention.py", "ffn.py", "brains.py", "dissect.py", "ablation.py", "function_vectors.py", "refusal.py",
            "sae.py", "circuits.py", "relations.py"} <= set(running)
    assert [name for name, imports in running.items() if not imports] == []
