"""A network study's chunks as Ray tasks (one local Ray for the module): the same cells, the
same numbers as the local run; Ctrl-C keeps the chunks that finished."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdscope.raypool import RayPool
from gdscope.studies.netstudy import Network, run_network_grid
from gdscope.studies.sweep import Axis
from tests.jobs.test_studies_network import tiny_data, tiny_model

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def network() -> Network:
    batches = list(tiny_data())
    return Network.of(tiny_model(), batches, torch.nn.CrossEntropyLoss(), val=batches)


AXES = (Axis("momentum", (0.0, 0.9)), Axis("lr", (0.05, 0.2, 0.8)))
OPTIONS = {"steps": 5, "chunk": 2, "dtype": torch.float64, "init": "seeded", "target": 0.9}


def test_a_ray_run_equals_the_local_run(local_ray):
    local = run_network_grid(network(), "sgd", AXES, **OPTIONS)
    seen: list[int] = []
    remote = run_network_grid(network(), "sgd", AXES, backend=RayPool(),
                              progress=lambda done, _: seen.append(done), **OPTIONS)  # fmt: skip
    assert remote.completed.all() and not remote.interrupted
    assert sorted(seen) == [0, 2, 4, 6]
    assert set(remote.metrics) == set(local.metrics) >= {"val_accuracy", "steps_to_target"}
    for name, values in local.metrics.items():
        np.testing.assert_allclose(remote.metrics[name], values, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(remote.losses, local.losses, rtol=1e-10)
    for name, values in local.options.items():  # each result placed at its own cells
        np.testing.assert_array_equal(remote.options[name], values)


def test_stopping_keeps_the_chunks_that_finished(local_ray):
    stored: list[int] = []
    run = run_network_grid(network(), "sgd", AXES, backend=RayPool(),
                           progress=lambda done, total: stored.append(done),
                           should_stop=lambda: len(stored) > 1, **OPTIONS)  # fmt: skip
    assert run.interrupted and int(run.completed.sum()) == 2
    local = run_network_grid(network(), "sgd", AXES, **OPTIONS)
    kept = run.completed
    np.testing.assert_allclose(run.losses[kept], local.losses[kept], rtol=1e-10)


def test_a_model_that_fails_fails_as_it_would_here_not_after_resubmits(local_ray):
    batches = list(tiny_data())
    wrong = Network.of(torch.nn.Linear(5, 3), batches, torch.nn.CrossEntropyLoss())
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        run_network_grid(wrong, "sgd", AXES, backend=RayPool(), chunk=2, steps=2)
