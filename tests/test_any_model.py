"""Every chapter runs unchanged when a reader swaps its two models for others (issue 12 §5).

Part of every test run. The pairs of tests/random_models.py (PAIRS) run by default, two side by side;
other pairs, other chapters, or the lecture-shaped models at full depth, by hand:

    ANATOMY_SWAP_PAIRS=phi3+gemma,gpt2+gpt-neox ANATOMY_SWAP_CHAPTERS=ffn.md ANATOMY_SWAP_FULL_DEPTH=1 \
    ANATOMY_SWAP_LOG=/tmp/swap.log ANATOMY_SWAP_MODELS=/tmp/swap python -m pytest tests/test_any_model.py

A reader changes the two `anatomy.load(...)` lines of a chapter and runs it. Here each chapter is
run that way with random-weight models saved as local directories (tests/random_models.py): one pair
shaped like the lecture's Llama 3.2 3B and Gemma 3 4B, and pairs of other families. All chapters of
a pair run in one Jupyter kernel, in order, as the site build runs a chapter; a block that raises
fails the test of its chapter. The chapters' claims do not fail on these models (they were written
about the default models): they show a note instead, and many of them must, since random weights
know nothing.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
import random_models
from sitetools import ROOT, executor, nav

from anatomy.claims import CLAIM_MIME

LOADS = {'anatomy.load("smollm2-135m")': 0, 'anatomy.load("gemma-3-270m")': 1}
CHAPTERS = [c for c in nav() if (ROOT / "docs" / "en" / c).read_text(encoding="utf-8").startswith("---\njupyter:")]
if os.environ.get("ANATOMY_SWAP_CHAPTERS"):  # e.g. "layers.md,probing.md": only these chapters (each loads its own models)
    CHAPTERS = [c for c in CHAPTERS if c in os.environ["ANATOMY_SWAP_CHAPTERS"].split(",")]


def _swapped(chapter: str, paths: tuple[str, str]) -> list[str]:
    """The chapter's code cells with its two load lines pointing at the given directories."""
    cells = [c.source for c in jupytext.read(ROOT / "docs" / "en" / chapter).cells if c.cell_type == "code"]
    # The exercises' checkers read the default models whatever the chapter loaded (they check the reader's
    # function, not the chapter's models), and each chapter's execution already runs them: not again here.
    cells = [c for c in cells if "anatomy.exercises." not in c]
    out = []
    for source in cells:
        for call, slot in LOADS.items():
            source = source.replace(call, f"anatomy.load({paths[slot]!r})")
        out.append(source)
    assert any(p in "".join(out) for p in paths), f"{chapter} has no anatomy.load line for a reader to change"
    return out


@pytest.fixture(scope="session")
def swap_dir(tmp_path_factory) -> Path:
    return Path(os.environ.get("ANATOMY_SWAP_MODELS") or tmp_path_factory.mktemp("swap-models"))


_RUNS: dict[str, dict] = {}
ALL_PAIRS = {**random_models.PAIRS, **random_models.EXTRA_PAIRS}


def _selected(pair: str) -> bool:
    """PAIRS by default; $ANATOMY_SWAP_PAIRS (comma-separated names of PAIRS or EXTRA_PAIRS) chooses others."""
    chosen = os.environ.get("ANATOMY_SWAP_PAIRS")
    return pair in chosen.split(",") if chosen else pair in random_models.PAIRS


def _run_pair(pair: str, paths: tuple[str, str]) -> dict:
    """Run every chapter with the pair's models in one kernel; chapter -> (failing code, error) or None."""
    from nbclient import NotebookClient

    cells, owner = [], []
    for chapter in CHAPTERS:
        for source in _swapped(chapter, paths):
            cells.append(nbformat.v4.new_code_cell(source))
            owner.append(chapter)
    nb = nbformat.v4.new_notebook(cells=cells)
    progress = os.environ.get("ANATOMY_SWAP_LOG")  # a file to follow the run: one line per block

    def done(cell, cell_index, **_):
        if progress:
            with open(progress, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {pair} {owner[cell_index]} block {cell_index}\n")

    NotebookClient(nb, kernel_name="python3", timeout=900, allow_errors=True, on_cell_executed=done,
                   resources={"metadata": {"path": str(ROOT / "docs" / "en")}}).execute(env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    result: dict = {c: None for c in CHAPTERS}
    notes: dict = {c: 0 for c in CHAPTERS}
    claims: dict = {c: [] for c in CHAPTERS}  # chapter -> every claim's record (holds, kind, text), in order
    for cell, chapter in zip(nb.cells, owner):
        for o in cell.outputs:
            if o.get("output_type") == "error" and result[chapter] is None:
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o.get("traceback", [])))
                result[chapter] = (cell.source, trace[-3000:])
            if "anatomy-claim-fails" in str(o.get("data", {}).get("text/html", "")):
                notes[chapter] += 1
            if CLAIM_MIME in o.get("data", {}):
                claims[chapter].append(o["data"][CLAIM_MIME])
    return {"errors": result, "notes": notes, "claims": claims}


def _runs(swap_dir: Path) -> dict[str, dict]:
    """Every pair's run, two pairs side by side (one kernel each), on first use."""
    if not _RUNS:
        import concurrent.futures

        paths = {pair: tuple(str(random_models.save(name, swap_dir)) for name in names) for pair, names in ALL_PAIRS.items() if _selected(pair)}
        workers = max(1, int(os.environ.get("ANATOMY_WORKERS", "2")))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            runs = {pair: pool.submit(_run_pair, pair, p) for pair, p in paths.items()}
            _RUNS.update({pair: job.result() for pair, job in runs.items()})
    return _RUNS


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if _selected(p)])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_on_other_models(pair, chapter, swap_dir):
    error = _runs(swap_dir)[pair]["errors"][chapter]
    if error is not None:
        code, trace = error
        pytest.fail(f"{chapter} on {pair} ({', '.join(ALL_PAIRS[pair])}) failed in the block\n{code}\n{trace}")


@pytest.mark.parametrize("pair", [p for p in ALL_PAIRS if _selected(p)])
def test_claims_say_they_do_not_hold_on_random_weights(pair, swap_dir):
    notes = _runs(swap_dir)[pair]["notes"]
    assert sum(notes.values()) >= 10, notes  # the checks are real: random weights fail many of them


# Chapters whose result sentences have been audited for issue 22 (every behaviour claim must be able to
# fail). A chapter joins when its audit lands; the list only grows, and the closing note names the rest.
AUDITED = ["index.md", "function-and-tokens.md", "embedding-table.md", "layers.md", "lm-head.md", "probing.md",
           "steering.md", "logit-lens.md", "patchscopes.md", "attention.md", "multi-head.md", "ffn.md", "brains.md",
           "dissection.md", "relations.md", "ablation.md"]


def _default_claims(chapter: str) -> list[dict]:
    """The claims of the chapter's own execution on the default models (shared with the site build)."""
    nb = executor().with_outputs(str(ROOT / "docs" / "en" / chapter))
    return [o["data"][CLAIM_MIME] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if CLAIM_MIME in o.get("data", {})]


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c in AUDITED])
def test_every_behaviour_claim_can_fail_on_random_weights(chapter, swap_dir):
    """A claim about learned behaviour must be able to fail: it does not hold on at least one pair of
    random-weight models. A claim true by construction says kind="architecture" and is counted apart."""
    runs = {pair: run["claims"][chapter] for pair, run in _runs(swap_dir).items()}
    real = _default_claims(chapter)
    for pair, claims in runs.items():
        assert len(claims) == len(real), (f"{chapter} states {len(real)} claims on the default models but "
                                          f"{len(claims)} on {pair}: claims must not depend on the model's answers")
    never = [c["text"] for i, c in enumerate(real)
             if c["kind"] == "behaviour" and all(claims[i]["holds"] for claims in runs.values())]
    assert not never, f"{chapter}: these behaviour claims hold on random weights too, so they cannot fail: {never}"
