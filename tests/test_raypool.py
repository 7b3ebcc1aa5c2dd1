"""Ray across machines: the user's own modules travel by value (``local_modules``), a worker
lacking a package says which, and a network study on a multi-node cluster started here (each
node in its own folder, the user's module on this process's path only) spreads its chunks over
the nodes, re-runs the chunk of a node killed mid-run, and equals the local run exactly."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import gdscope
from gdscope.errors import GdscopeError
from gdscope.jobs.landscape import load_callable, load_model
from gdscope.nets.plane import materialize
from gdscope.raypool import RayPool, local_modules
from gdscope.studies.netstudy import Network, run_network_grid
from gdscope.studies.sweep import Axis

NODE = "GDSCOPE_TEST_RAY_NODE"
"""The environment variable naming a test cluster's node (set for its raylet and workers)."""
NODES = ("head", "a", "b")
VICTIM = "b"
"""The node whose first chunk waits there until the node is killed."""
PATIENCE = 600.0
"""Seconds anything here waits for the cluster (generous: a loaded 2-core machine)."""

USERS_MODULE = '''
"""A user's network, importable only by the test's own process."""
import os
import time
from pathlib import Path

import torch
from torch import nn

SEEN = Path({seen!r})  # each worker's forward marks it with its node and process


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        node = os.environ.get({node!r})
        if node is not None:  # on a test node's worker; the local run leaves no mark
            (SEEN / f"{{node}}-{{os.getpid()}}").touch()
            waited = time.monotonic() + {patience!r}
            while node == {victim!r} and time.monotonic() < waited:
                time.sleep(0.05)  # until the node is killed: the chunk is re-run elsewhere
        return self.out(torch.tanh(self.hidden(x)))


def make_model():
    torch.manual_seed(0)
    return Net()


def make_data():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 4, generator=g), torch.randint(0, 3, (24,), generator=g)
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)]
'''


def _write_module(folder: Path, name: str, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    importlib.invalidate_caches()


@pytest.fixture
def forget_modules() -> Iterator[list[str]]:
    """Names of modules a test imports from its own folders, dropped from ``sys.modules``
    afterwards (the folder goes; a later test must not find the module cached)."""
    names: list[str] = []
    yield names
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[loaded]


def test_local_modules_are_those_imported_from_outside_installed_places(
    tmp_path, monkeypatch, forget_modules
):
    _write_module(tmp_path, "users_own_module", "VALUE = 1\n")
    (tmp_path / "users_namespace").mkdir()  # a namespace package: no __init__, no __file__
    _write_module(tmp_path / "users_namespace", "inner", "VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_modules += ["users_own_module", "users_namespace"]
    importlib.import_module("users_own_module")
    importlib.import_module("users_namespace.inner")
    # a package of the user's with compiled code: it must be installed on the workers anyway
    _write_module(tmp_path / "users_compiled", "__init__", "VALUE = 3\n")
    forget_modules.append("users_compiled")
    importlib.import_module("users_compiled")
    extension = types.ModuleType("users_compiled._fast")  # as an imported .so would appear
    extension.__file__ = str(tmp_path / "users_compiled" / f"_fast{EXTENSION_SUFFIXES[0]}")
    monkeypatch.setitem(sys.modules, "users_compiled._fast", extension)
    names = {module.__name__ for module in local_modules()}
    assert {"users_own_module", "users_namespace"} <= names
    assert "users_compiled" not in names
    assert "users_namespace.inner" not in names  # its package is registered: it covers it
    # built in, the standard library, site-packages, compiled, and gdscope (the tasks run it)
    installed = {"sys", "importlib", "torch", "numpy", "pytest", "_ctypes", gdscope.__name__}
    importlib.import_module("_ctypes")
    assert installed <= set(sys.modules)
    assert not names & installed


def _needs_absent_package(chunk: int) -> int:
    importlib.import_module("gdscope_test_absent_package")
    return chunk


@pytest.mark.ray
def test_a_worker_lacking_a_package_names_it_in_one_line(local_ray):
    with pytest.raises(GdscopeError, match="cannot import 'gdscope_test_absent_package'"):
        RayPool().run_tasks(_needs_absent_package, [0, 1], lambda c: (c,), lambda c, r: None)


class Nodes(NamedTuple):
    cluster: Any
    """``ray.cluster_utils.Cluster``."""
    started: dict[str, Any]
    """Each node's ``ray._private.node.Node`` by its name in ``NODE``."""


HEAD_ONLY = {
    "include_dashboard": False,
    # a killed node is declared dead within seconds, not the default half minute
    "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                       "health_check_failure_threshold": 5},
}  # fmt: skip


@pytest.fixture
def nodes(tmp_path) -> Iterator[Nodes]:
    """A Ray cluster of three one-CPU nodes on this machine: the head (which this process
    joins: Ray prefers the head among a host's nodes) and two more, each started in its own
    folder with its name in ``NODE``; Ray's files in a folder of their own, so no other Ray on
    the machine finds this one or is found."""
    if os.environ.get("CI") == "true":  # the dev extra has Ray: missing, it fails, not skips
        import ray
    else:
        ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the tests' shared local Ray: a later test starts one again
        ray.shutdown()
    short = "/tmp" if os.path.isdir("/tmp") else None  # Ray's socket paths must stay short
    own = Path(tempfile.mkdtemp(prefix="gdscope-ray-", dir=short))
    made = Cluster()
    started: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", str(own))
        try:
            for name in NODES:
                (tmp_path / name).mkdir()
                patch.chdir(tmp_path / name)  # the node's processes start there
                extra = HEAD_ONLY if not started else {}
                # wait=False: Ray's own wait gives up after 30 s; a loaded machine needs more
                started[name] = made.add_node(wait=False, num_cpus=1, env_vars={NODE: name},
                                              **extra)  # fmt: skip
            patch.chdir(tmp_path)
            made.wait_for_nodes(timeout=PATIENCE)
            yield Nodes(made, started)
        finally:
            ray.shutdown()
            made.shutdown()
            shutil.rmtree(own, ignore_errors=True)


AXES = (Axis("lr", (0.05, 0.1, 0.2)), Axis("momentum", (0.0, 0.9)))
OPTIONS = {"steps": 3, "chunk": 1, "dtype": torch.float64, "init": "seeded", "method": "vmap"}


@pytest.mark.ray
def test_a_study_on_a_cluster_ships_the_users_module_and_survives_a_node(
    nodes, tmp_path, monkeypatch, forget_modules
):
    seen = tmp_path / "seen"
    seen.mkdir()
    users = tmp_path / "users"  # on this process's path only: no node can import from it
    source = USERS_MODULE.format(seen=str(seen), node=NODE, victim=VICTIM, patience=PATIENCE)
    _write_module(users, "users_net", textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(users))
    forget_modules.append("users_net")
    # as the CLI imports --model users_net:make_model and --data users_net:make_data
    network = Network.of(load_model("users_net:make_model"),
                         materialize(load_callable("users_net:make_data", "--data")()),
                         torch.nn.CrossEntropyLoss())  # fmt: skip
    local = run_network_grid(network, "sgd", AXES, **OPTIONS)
    assert not list(seen.iterdir())  # the local run marks nothing

    monkeypatch.setenv("RAY_ADDRESS", nodes.cluster.address)  # as the docs say to join one
    pool = RayPool()
    rays = pool.ray()
    assert "users_net" in rays.cloudpickle.list_registry_pickle_by_value()

    @rays.remote(num_cpus=0)
    def importable(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    where = rays.util.scheduling_strategies.NodeAffinitySchedulingStrategy
    ids = [node["NodeID"] for node in rays.nodes() if node["Alive"]]
    assert len(ids) == len(NODES)
    on_each = [importable.options(scheduling_strategy=where(i, soft=False)).remote("users_net")
               for i in ids]  # fmt: skip
    assert rays.get(on_each, timeout=PATIENCE) == [False] * len(NODES)  # by value, or not at all

    killed: list[str] = []
    failed: list[BaseException] = []

    def kill_the_victim_mid_chunk() -> None:
        try:
            waited = time.monotonic() + PATIENCE
            while not list(seen.glob(f"{VICTIM}-*")) and time.monotonic() < waited:
                time.sleep(0.05)
            if list(seen.glob(f"{VICTIM}-*")):  # its chunk is training there, now
                nodes.cluster.remove_node(nodes.started[VICTIM], allow_graceful=False)
                killed.append(VICTIM)
        except BaseException as error:  # re-raised by the test
            failed.append(error)

    killer = threading.Thread(target=kill_the_victim_mid_chunk, daemon=True)
    killer.start()
    remote = run_network_grid(network, "sgd", AXES, backend=pool, **OPTIONS)
    killer.join(PATIENCE)
    assert not failed, failed
    assert killed == [VICTIM]
    assert {mark.name.split("-")[0] for mark in seen.iterdir()} == set(NODES)
    assert remote.completed.all() and not remote.interrupted
    assert set(remote.metrics) == set(local.metrics)
    for name, values in local.metrics.items():
        np.testing.assert_array_equal(remote.metrics[name], values, err_msg=name)
    np.testing.assert_array_equal(remote.losses, local.losses)
    for name, values in local.options.items():
        np.testing.assert_array_equal(remote.options[name], values, err_msg=name)
