"""Model fixtures: every model is loaded once per test session (``anatomy.load`` caches per process)."""

import pytest

import anatomy


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
