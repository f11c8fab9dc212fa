"""Model fixtures: every model is loaded once per test session (``anatomy.load`` caches per process)."""

import pytest

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
