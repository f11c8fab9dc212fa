"""Model fixtures: every model is loaded once per test session (``anatomy.load`` caches per process)."""

import pytest
from sitetools import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve, site_build

import anatomy
import random_models


@pytest.fixture(scope="session")
def smollm2():
    return anatomy.load("smollm2-135m")


@pytest.fixture(scope="session")
def gemma():
    return anatomy.load("gemma-3-270m")


@pytest.fixture(scope="session", params=["smollm2-135m", "gemma-3-270m"])
def model(request):
    """Each default model in turn (a test using it runs twice)."""
    return anatomy.load(request.param)


@pytest.fixture(scope="session", params=list(random_models.VARIANTS))
def tiny(request, tmp_path_factory):
    """(name, model): a random-weight model of each family variant in turn (tests/random_models.py), saved
    to a directory and loaded through anatomy.load; built once per session, dropped when the next one comes."""
    where = random_models.variant(request.param, tmp_path_factory.mktemp(request.param))
    model = anatomy.load(str(where))
    yield request.param, model
    anatomy.load.cache_clear(str(where))  # this model only: the session's default models stay shared


# --- the built site and Chromium: one of each per session, shared by every browser test module -----------
# (Playwright's sync API runs one instance per thread: a second module-level `browser` fixture would fail.)
@pytest.fixture(scope="session")
def browser():
    require_chromium("the site cannot be opened in a browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def site_dir():
    """The whole site, built once per test session (`mkdocs build --strict`, started early by the root conftest)."""
    out, code, log = site_build()
    assert code == 0, log
    return out


@pytest.fixture(scope="session")
def served(site_dir):
    """The built site served on 127.0.0.1; the base URL."""
    return serve(site_dir)


@pytest.fixture(scope="session")
def site(served, browser):
    """The served site's base URL, with the browser the tests drive."""
    return served
