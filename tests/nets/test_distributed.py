"""The grid split over Ray workers: a local Ray started here; results identical to local."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.examples import cnn
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import evaluate_plane

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def problem():
    model = cnn.make_model(seed=4).eval()
    loader = torch.utils.data.DataLoader(cnn.make_dataset(192, seed=5), batch_size=64)
    grid = {
        "dx": random_direction(model, seed=1),
        "dy": random_direction(model, seed=2),
        "xs": np.linspace(-1, 1, 4),
        "ys": np.linspace(-0.5, 0.5, 3),
        "chunk": 3,
    }
    return model, loader, grid


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_ray_results_are_identical_to_local(local_ray, strategy):
    from gdscope.nets.distributed import RayBackend

    model, loader, grid = problem()
    local = evaluate_plane(model, loader, nn.CrossEntropyLoss(), strategy=strategy, **grid)
    done = []
    remote = evaluate_plane(
        model,
        loader,
        nn.CrossEntropyLoss(),
        strategy=strategy,
        backend=RayBackend(),
        progress=lambda d, t: done.append(d),
        **grid,
    )
    np.testing.assert_array_equal(remote.loss, local.loss)
    np.testing.assert_array_equal(remote.accuracy, local.accuracy)
    assert sorted(done) == [3, 6, 9, 12]


def test_a_crashed_workers_chunk_is_run_again(local_ray, tmp_path, monkeypatch):
    from gdscope.nets import distributed

    model, loader, grid = problem()
    marker = tmp_path / "crashed"
    evaluate_chunk = distributed._evaluate_chunk

    def crash_once(*args):  # a local function: Ray ships it to the workers by value
        if not os.path.exists(marker):  # the first task to get here kills its worker process
            marker.touch()
            os._exit(1)
        return evaluate_chunk(*args)

    monkeypatch.setattr(distributed, "_evaluate_chunk", crash_once)
    backend = distributed.RayBackend()
    surface = evaluate_plane(model, loader, nn.CrossEntropyLoss(), backend=backend, **grid)
    assert marker.exists()  # one worker really died
    assert surface.meta["strategy"] == "loop"  # "auto" with a backend: the loop on CPU workers
    local = evaluate_plane(model, loader, nn.CrossEntropyLoss(), strategy="loop", **grid)
    np.testing.assert_array_equal(surface.loss, local.loss)
