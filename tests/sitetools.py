"""What several tests (and the root conftest's chapter runner) read about the site project."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def require_chromium(needed_for: str) -> None:
    """Skip the calling test when Chromium is missing; under CI (CI=true) fail instead, since CI installs it.

    ``needed_for`` completes the sentence "Chromium is not installed, so ...".
    """
    import pytest

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}, so {needed_for} (scripts/install-browser.sh installs it).")
        pytest.skip(f"Chromium is not installed (sh scripts/install-browser.sh), so {needed_for}; CI installs it and runs these tests.")


def _script(name: str):
    """scripts/<name>.py (scripts/ is not a package), once per process, shared with the site hooks."""
    import sys

    key = f"anatomy_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def executor():
    """The chapter executor (scripts/executor.py): runs a chapter once, caches its outputs; no mkdocs."""
    return _script("executor")


@functools.cache
def site_hooks():
    """The site build's hooks module (mkdocs hooks), loaded once per process."""
    return _script("site_hooks")


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


def start_site_build() -> None:
    """Start building the whole site in the background (once per process); `site_build` waits for it.

    The root conftest starts it as soon as the chapters have executed, so that the build (one
    process, about a minute) runs beside the library tests instead of after them.
    """
    if _BUILD or os.environ.get("ANATOMY_BUILT_SITE"):
        return
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
    log = _BUILD["log"]
    log.flush()
    log.seek(0)
    return _BUILD["out"], code, log.read()[-8000:]
