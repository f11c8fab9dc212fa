"""What several tests (and the root conftest's chapter runner) read about the site project."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium(needed_for: str) -> None:
    """Skip the calling test when Chromium is missing; under CI (CI=true) fail instead, since CI installs it.

    ``needed_for`` completes the sentence "Chromium is not installed, so ...".
    """
    import pytest

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}, so {needed_for} (scripts/install-browser.sh installs it).")
        pytest.skip(f"Chromium is not installed (sh scripts/install-browser.sh), so {needed_for}; CI installs it and runs these tests.")


def script(name: str):
    """The module scripts/<name>.py of the package scripts/, imported as the site hooks import it (one copy per process)."""
    import importlib
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"scripts.{name}")


def executor():
    """The chapter executor (scripts/executor.py): runs a chapter once, caches its outputs; no mkdocs."""
    return script("executor")


@functools.cache
def site_hooks():
    """The site build's hooks module (mkdocs hooks), loaded once per process."""
    return script("site_hooks")


def mkdocs_config() -> dict:
    """mkdocs.yml as a dict; its !!python tags (material's emoji functions and the like) read as None."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def nav() -> list[str]:
    """The pages of the navigation in both languages, in order (paths relative to a language folder).

    A section of the navigation (the API reference: English pages generated from the docstrings,
    which the other languages fall back to) is left out; tests/test_reference.py checks it.
    """
    return [page for item in mkdocs_config()["nav"] for page in item.values() if isinstance(page, str)]


_BUILD: dict = {}  # the test session's site build: "out" (its directory), "proc", "log"
_LOCK = threading.RLock()  # the build and the background work are reached from several threads


def start_site_build() -> None:
    """Start building the whole site in the background (once per process); `site_build` waits for it.

    The root conftest starts it as soon as the chapters have executed, so that the build (one
    process, about a minute) runs beside the library tests instead of after them.
    """
    with _LOCK:
        if _BUILD or os.environ.get("ANATOMY_BUILT_SITE"):
            return
        _start_site_build()


def _start_site_build() -> None:
    import atexit
    import shutil
    import subprocess
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="anatomy-site-"))
    log = open(out.with_suffix(".log"), "w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out / "site")],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    _BUILD.update(out=out / "site", proc=proc, log=log)

    def clean_up():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(out, ignore_errors=True)
        out.with_suffix(".log").unlink(missing_ok=True)

    atexit.register(clean_up)


def site_build() -> tuple[Path, int, str]:
    """The session's site build (started now if it was not): its directory, exit code and last output.

    $ANATOMY_BUILT_SITE names a site built before (`mkdocs build --site-dir DIR`) to test instead, for
    a person working on these tests; it must be a build of the current tree (CI never sets it).
    """
    if os.environ.get("ANATOMY_BUILT_SITE"):
        return Path(os.environ["ANATOMY_BUILT_SITE"]), 0, ""
    start_site_build()
    code = _BUILD["proc"].wait()
    with _LOCK:
        log = _BUILD["log"]
        log.flush()
        log.seek(0)
        return _BUILD["out"], code, log.read()[-8000:]


# --- work that starts early and runs beside the other tests -------------------------------------
_LATER: dict = {}  # name -> Future of work started by `in_background`


def in_background(name: str, work):
    """``work()`` in a thread of its own, started once per process under ``name``; returns its Future.

    The root conftest calls each collected test module's ``start_early()`` right after it starts
    the site build: the browser visits (tests/test_site.py) and the reading of the PDFs
    (tests/test_pdf.py) then wait for the build in such a thread and run beside the library tests,
    which leave one of CI's two cores mostly idle, instead of after them.
    """
    from concurrent.futures import Future

    with _LOCK:
        if name not in _LATER:
            future = Future()

            def run():
                try:
                    future.set_result(work())
                except BaseException as err:  # handed to whoever waits for it
                    future.set_exception(err)

            threading.Thread(target=run, name=f"anatomy-{name}", daemon=True).start()
            _LATER[name] = future
        return _LATER[name]


def _page_texts(path: str, start: int, stop: int) -> list[str]:
    """The text of pages start..stop-1 of a PDF (pypdf), in a worker process of `pdf_texts`."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    return [reader.pages[i].extract_text() or "" for i in range(start, stop)]


def pdf_texts(paths, chunk: int = 24) -> dict[str, list[str]]:
    """The text of every page of each PDF (pypdf's extract_text), read in one process per core.

    pypdf's text extraction is pure Python: a book of 200 pages takes it 10-20 s on one core.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from pypdf import PdfReader

    jobs = [(str(path), start, min(start + chunk, n)) for path in paths
            for n in [len(PdfReader(str(path)).pages)] for start in range(0, n, chunk)]
    # spawn, not fork: the test process holds threads (Playwright, torch) that a fork would copy mid-step
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_page_texts, *zip(*jobs))) if jobs else []
    texts: dict[str, list[str]] = {str(path): [] for path in paths}
    for (path, _, _), part in zip(jobs, parts):
        texts[path] += part
    return texts


_SERVING: dict[Path, str] = {}
_SERVE_LOCK = threading.Lock()


def serve(out: Path) -> str:
    """The built site served on 127.0.0.1, once per session (a thread of its own); its base URL."""
    import http.server

    with _SERVE_LOCK:
        if out not in _SERVING:
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
            handler.log_message = lambda *a, **k: None
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            _SERVING[out] = f"http://127.0.0.1:{server.server_address[1]}/"
        return _SERVING[out]
