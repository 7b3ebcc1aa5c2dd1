from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import settings

from gdscope.problem.data import Dataset, make_data

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per test worker (and per CLI the tests start): the workers already use
    # every core, and torch's threads spinning against each other made small ops 10× slower.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


# The suite draws the same examples on every run and every clone, so CI never fails on a draw
# that nobody can make again; `make explore` (pytest --hypothesis-profile=explore) draws new
# ones from a random seed, and what it finds is pinned with @example.
settings.register_profile("suite", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``@pytest.mark.cuda`` tests run only where torch sees a CUDA device."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if item.get_closest_marker("cuda"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def article_data() -> Dataset:
    return make_data()


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (two CPUs) for every ``@pytest.mark.ray`` test that asks for it: starting
    Ray costs seconds, so the test modules share it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
