"""Shared test setup: offline guards and one feature cache per test session."""

from __future__ import annotations

import os

import pytest

from tests.helpers import run_itr
from tests.tiny_models import tiny_checkpoints  # noqa: F401 (a session fixture for every test)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning (libgomp spins by default). On a machine whose
# cores are busy with other work, a spinning torch thread holds a core its partner needs, and
# a training job runs about 3x slower (measured on 2 shared cores); on an idle machine it costs
# next to nothing. The thread count, and so every number a test sees, stays as it was. Set here,
# before torch is imported, for this process and the `itr` subprocesses it starts; a value set
# by the caller wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session", autouse=True)
def feature_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Every test (and every `itr` subprocess) shares one throw-away feature cache, so the real
    backbones run once per session and nothing is written to the user's ~/.cache."""
    path = tmp_path_factory.mktemp("feature-cache")
    previous = os.environ.get("ITR_CACHE_DIR")
    os.environ["ITR_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("ITR_CACHE_DIR", None)
    else:
        os.environ["ITR_CACHE_DIR"] = previous


@pytest.fixture
def itr():
    """The `itr` command line, run in a subprocess: ``itr("plan", path) -> Completed``."""
    return run_itr
