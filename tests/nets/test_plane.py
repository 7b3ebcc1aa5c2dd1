"""evaluate_plane's parts: its options, the grid's points, the backends, the strategy decision."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import mlp
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import (
    LOOP_CHUNK,
    PLAN_STEPS,
    ChunkWork,
    EvaluationOptions,
    LocalBackend,
    ModelData,
    PlaneGrid,
    PlanMethod,
    Trials,
    _plan_method,
    auto_chunk,
    decide,
    evaluate_plane,
)
from gdscope.nets.recorder import ParamLayout


def small():
    """An MLP, 120 points in batches of 50 (the last one short), a 3 × 4 grid."""
    model = mlp.make_model(seed=1).eval()
    data = torch.utils.data.DataLoader(mlp.make_dataset(120, seed=2), batch_size=50)
    dx, dy = (random_direction(model, seed=seed) for seed in (1, 2))
    return model, data, {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 4),
                         "ys": np.linspace(-0.5, 0.5, 3)}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "fast"}, "strategy must be one of auto, vmap, loop"),
        ({"memory_format": "nhwc"}, "memory_format must be one of auto, contiguous"),
        ({"strategy": "vmap", "memory_format": "channels_last"}, "channels-last layout is for"),
        ({"backend": LocalBackend(), "memory_format": "channels_last"}, "backends take"),
        ({"strategy": "loop", "plan": [("warp", 1)]}, "a plan step is"),
        ({"strategy": "loop", "plan": [("loop", 0)]}, "a plan step is"),
        ({"strategy": "loop", "plan": [("loop", True)]}, "a plan step is"),
        ({"plan": [("loop", 1)]}, "give the strategy they led to"),
        ({"chunk": 0}, "chunk must be a positive integer or 'auto'"),
        ({"chunk": True}, "chunk must be a positive integer or 'auto'"),
        ({"chunk": "big"}, "chunk must be a positive integer or 'auto'"),
    ],
)
def test_evaluation_options_refuse_what_cannot_run(options, message):
    with pytest.raises(GdscopeError, match=message):
        EvaluationOptions(**options)


def test_evaluation_options_keep_a_plan_from_json_as_tuples():
    options = EvaluationOptions(strategy="vmap", chunk=4, plan=[["loop", 1], ["vmap", 4]])
    assert options.plan == (("loop", 1), ("vmap", 4))
    assert options == EvaluationOptions(strategy="vmap", chunk=4, plan=(("loop", 1), ("vmap", 4)))


def test_plan_methods_name_every_method_and_layout_once():
    assert set(get_args(PlanMethod)) == set(PLAN_STEPS)
    assert len(set(PLAN_STEPS.values())) == len(PLAN_STEPS)
    for name, (method, form) in PLAN_STEPS.items():
        assert _plan_method(method, form) == name


def test_grid_points_are_numbered_row_by_row_like_the_loss():
    model, _, grid = small()
    layout = ParamLayout.of(model)
    centre = layout.vector(model)
    plane = PlaneGrid.of(layout, centre=centre, device=torch.device("cpu"), **grid)
    assert plane.shape == (3, 4)
    indices = np.array([0, 5, 11])
    expected = [centre + grid["xs"][i % 4] * grid["dx"] + grid["ys"][i // 4] * grid["dy"]
                for i in indices]  # fmt: skip
    torch.testing.assert_close(plane.vectors(indices), torch.stack(expected))
    line = PlaneGrid.of(layout, centre=centre, dx=grid["dx"], dy=None, xs=grid["xs"],
                        ys=grid["ys"], device=torch.device("cpu"))  # fmt: skip
    assert line.shape == (1, 4) and line.ys.tolist() == [0.0]
    with pytest.raises(GdscopeError, match="dx has 3 entries"):
        PlaneGrid.of(layout, centre=centre, dx=torch.ones(3), dy=None, xs=[0.0], ys=[0.0],
                     device=torch.device("cpu"))  # fmt: skip
    with pytest.raises(GdscopeError, match="finite 1-D"):
        PlaneGrid.of(layout, centre=centre, dx=grid["dx"], dy=None, xs=[np.nan], ys=[0.0],
                     device=torch.device("cpu"))  # fmt: skip


class Backwards:
    """A ``Backend`` of the test's own: the chunks in reverse order, each recorded."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def run(self, work, chunks, store):
        for indices in reversed(chunks):
            self.chunks.append(indices.tolist())
            store(indices, *work.evaluate(work.data.batches, indices))


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_any_backend_places_its_chunks_by_their_indices(strategy):
    model, data, grid = small()
    local = evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy=strategy, chunk=5, **grid)
    backend = Backwards()
    other = evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy=strategy, chunk=5,
                           backend=backend, **grid)  # fmt: skip
    assert backend.chunks == [[10, 11], [5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]
    np.testing.assert_array_equal(other.loss, local.loss)
    np.testing.assert_array_equal(other.accuracy, local.accuracy)
    assert other.meta == local.meta


def test_options_and_keywords_are_the_same_evaluation():
    model, data, grid = small()
    options = EvaluationOptions(strategy="vmap", chunk=3)
    given = evaluate_plane(model, data, nn.CrossEntropyLoss(), options=options, **grid)
    flat = evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy="vmap", chunk=3, **grid)
    np.testing.assert_array_equal(given.loss, flat.loss)
    assert given.meta == flat.meta and given.meta["chunk"] == 3
    override = evaluate_plane(model, data, nn.CrossEntropyLoss(), options=options, chunk=12,
                              **grid)  # fmt: skip
    assert override.meta["chunk"] == 12 and override.meta["strategy"] == "vmap"
    with pytest.raises(TypeError, match="speed"):
        evaluate_plane(model, data, nn.CrossEntropyLoss(), speed=2, **grid)


def work_on(model, data, grid):
    layout = ParamLayout.of(model)
    centre = layout.vector(model)
    plane = PlaneGrid.of(layout, centre=centre, device=torch.device("cpu"), **grid)
    batches = [(x, y) for x, y in data]
    return ChunkWork(ModelData(model, batches), nn.CrossEntropyLoss(), layout, plane)


def test_decide_without_timing_when_told_or_when_a_backend_runs_it():
    model, data, grid = small()
    work = work_on(model, data, grid)
    todo = np.arange(12)

    def trials():
        return Trials(work, todo, lambda *_: pytest.fail("nothing is timed"))

    cpu = torch.device("cpu")
    told = decide(EvaluationOptions(strategy="loop"), trials(), cpu)
    assert (told.method, told.chunk, told.memory_format, told.trials) == (
        "loop", LOOP_CHUNK, "contiguous", None)  # fmt: skip
    vmap = decide(EvaluationOptions(strategy="vmap"), trials(), cpu)
    assert vmap.chunk == auto_chunk(model, work.data.batches, work.layout)
    remote = decide(EvaluationOptions(backend=LocalBackend()), trials(), cpu)
    assert (remote.method, remote.trials) == ("loop", None)
    on_gpu = decide(EvaluationOptions(backend=LocalBackend(), chunk=7), trials(),
                    torch.device("cuda"))  # fmt: skip
    assert (on_gpu.method, on_gpu.chunk) == ("vmap", 7)


def test_auto_times_here_and_its_trials_points_are_kept():
    model, data, grid = small()
    work = work_on(model, data, grid)
    stored: list[list[int]] = []
    trials = Trials(work, np.arange(12), lambda indices, *_: stored.append(indices.tolist()))
    choice = decide(EvaluationOptions(chunk=4), trials, torch.device("cpu"))
    assert choice.trials is not None and choice.trials[0][:2] == ("loop", 1)
    assert [step[0] for step in trials.plan][:2] == ["loop", "loop"]
    assert [i for chunk in stored for i in chunk] == list(range(trials.taken))  # once each
    assert trials.rest().tolist() == list(range(trials.taken, 12))
