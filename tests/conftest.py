from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from gdscope.problem.data import Dataset, make_data

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per test worker (and per CLI the tests start): the workers already use
    # every core, and torch's threads spinning against each other made small ops 10× slower.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def article_data() -> Dataset:
    return make_data()
