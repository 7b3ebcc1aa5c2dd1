from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from types import ModuleType

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


ON_CI = os.environ.get("CI") == "true"
"""Under CI every dev extra and the browser are installed (``make test``): one that is missing
is a broken install, so the tests that need it fail instead of skipping (``missing``)."""


def missing(what: str) -> None:
    """Skip the calling test (or module) because ``what`` is not installed; under ``CI=true``
    fail it instead. The one place that decides between the two, for every test file."""
    if ON_CI:
        pytest.fail(f"{what} is missing under CI=true: `make test` installs it", pytrace=False)
    pytest.skip(f"{what} is not installed", allow_module_level=True)


def require(module: str, *, why: str | None = None) -> ModuleType:
    """``pytest.importorskip`` for a dev extra's module, except under ``CI=true``, where a
    module that cannot be imported fails the test (``missing``)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing(f"{module} ({why or error})")
        raise  # not reached: missing() always raises


def chromium() -> str:
    """Debian's Chromium, which the browser tests drive; missing: skip, or fail under CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("Debian's chromium (`make browser` installs it)")
        raise AssertionError  # not reached
    return found


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under CI, a module skipped by a bare ``pytest.importorskip`` (not ``require``) fails."""
    report = yield
    _fail_import_skips(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a test skipped by a bare ``pytest.importorskip`` (not ``require``) fails."""
    report = yield
    _fail_import_skips(report)
    return report


def _fail_import_skips(report: pytest.CollectReport | pytest.TestReport) -> None:
    # pytest.importorskip's wording ("could not import 'x': …"); pytest is pinned
    # (constraints.txt), and tests/test_conftest.py checks that the wording still matches.
    if ON_CI and report.skipped and "could not import" in str(report.longrepr):
        report.outcome = "failed"


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
    ray = require("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
