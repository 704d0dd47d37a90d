"""Shared fixtures of the pytest suite of the Python package."""

import importlib
import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def sim3d():
    """One small simulated 3-D crystal with a 4-px line gap (deterministic)."""
    import bragg

    return bragg.simulate(dim=3, size=32, count=1, gap="line:4", seed=3)


def require(module: str):
    """Imports `module`; skips the test when it is missing unless BRAGG_REQUIRE_PY_DEPS=1
    (set by .ci/run), where a missing module is a failure."""
    if os.environ.get("BRAGG_REQUIRE_PY_DEPS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
