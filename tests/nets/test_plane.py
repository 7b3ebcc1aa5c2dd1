"""A network's loss on a plane of parameters: strategies (vmap, loop, channels-last), auto's
timing on a sliver, chunks, resume, old records' plans, the data forms it takes."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.engines.runner import TIMED_POINTS, TRIAL_BUDGET
from gdscope.errors import GdscopeError
from gdscope.examples import mlp
from gdscope.nets import plane
from gdscope.nets.directions import random_direction
from gdscope.nets.plane import (
    LOOP_CHUNK,
    PLAN_METHODS,
    PLAN_STEPS,
    ChunkWork,
    EvaluationOptions,
    LocalBackend,
    ModelData,
    PlaneGrid,
    Timing,
    _plan_method,
    auto_chunk,
    decide,
    evaluate_plane,
    evaluate_plane_loop,
    evaluate_vectors,
    materialize,
    sliver,
)
from gdscope.nets.recorder import ParamLayout

from ..reference import direct_loss, small_cnn_data


def test_origin_is_the_models_own_loss_and_a_grid_value_is_a_direct_evaluation(trained_cnn):
    loader = small_cnn_data()
    loss_fn = nn.CrossEntropyLoss()
    dx = random_direction(trained_cnn, seed=1)
    dy = random_direction(trained_cnn, seed=2)
    xs, ys = [-0.5, 0.0, 0.25], [-0.2, 0.0, 0.4]
    surface = evaluate_plane(trained_cnn, loader, loss_fn, dx=dx, dy=dy, xs=xs, ys=ys,
                             strategy="vmap", chunk=4)  # fmt: skip
    own, own_acc = direct_loss(trained_cnn, loader, loss_fn)
    assert surface.loss[1, 1] == pytest.approx(own, rel=1e-5)
    assert surface.accuracy[1, 1] == pytest.approx(own_acc)
    shifted = copy.deepcopy(trained_cnn)
    layout = ParamLayout.of(shifted)
    moved = layout.vector(trained_cnn) + 0.25 * dx + 0.4 * dy
    with torch.no_grad():
        for name, value in layout.unflatten(moved).items():
            dict(shifted.named_parameters())[name].copy_(value)
    value, accuracy = direct_loss(shifted, loader, loss_fn)
    assert surface.loss[2, 2] == pytest.approx(value, rel=1e-5)  # rows are y, columns x
    assert surface.accuracy[2, 2] == pytest.approx(accuracy)
    # the model itself is untouched, and still in eval mode
    assert torch.equal(layout.vector(trained_cnn), surface.centre)


@dataclass
class Output:
    """Like a Hugging Face ``ModelOutput``: the scores in a field."""

    logits: torch.Tensor


class LogitsDict(dict):
    """A dict subclass with the scores also as an attribute (``ModelOutput`` is one)."""

    @property
    def logits(self) -> torch.Tensor:
        return self["logits"]


WRAPS = {
    "tuple": (lambda t: (t,), lambda out: out[0]),
    "dict": (lambda t: {"logits": t}, lambda out: out["logits"]),
    "dataclass": (Output, lambda out: out.logits),
    "dict subclass": (lambda t: LogitsDict(logits=t), lambda out: out.logits),
}


class Wrapped(nn.Module):
    """A linear classifier whose forward returns its scores wrapped by ``wrap``."""

    def __init__(self, wrap) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 2)
        self.wrap = wrap

    def forward(self, x: torch.Tensor):
        return self.wrap(self.linear(x))


@pytest.mark.parametrize("kind", WRAPS)
def test_outputs_the_loss_unpacks_are_evaluated_without_accuracy(kind):
    wrap, unpack = WRAPS[kind]
    x = torch.randn(16, 3)
    batches = [(x, (x[:, 0] > 0).long())]
    plain, wrapped = Wrapped(lambda t: t), Wrapped(wrap)
    vectors = torch.stack([ParamLayout.of(plain).vector(plain)] * 2) + torch.randn(2, 8)
    ce = nn.CrossEntropyLoss()
    for evaluate in (evaluate_vectors, evaluate_plane_loop):
        expected, accuracy = evaluate(plain, batches, ce, vectors)
        loss, none = evaluate(wrapped, batches, lambda out, y: ce(unpack(out), y), vectors)
        torch.testing.assert_close(loss, expected)
        assert accuracy is not None and none is None


def test_vmap_and_loop_strategies_agree_with_batchnorm(trained_cnn):
    batches = materialize(small_cnn_data(), "cpu")
    centre = ParamLayout.of(trained_cnn).vector(trained_cnn)
    vectors = centre + 0.3 * torch.randn(
        5, centre.numel(), generator=torch.Generator().manual_seed(0)
    )
    a = evaluate_vectors(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    b = evaluate_plane_loop(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a[1], b[1])


def test_resume_computes_only_what_is_missing(trained_cnn, tmp_path):
    loader = small_cnn_data(128)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 4), "ys": np.linspace(-1, 1, 3),
            "strategy": "loop"}  # fmt: skip
    full = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, **grid)
    calls = []

    def crash_after_two(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    resume = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, resume=resume,
                       progress=crash_after_two, **grid)  # fmt: skip
    assert calls == [2, 4]
    later = []
    again = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=2, resume=resume,
                           progress=lambda d, t: later.append(d), **grid)  # fmt: skip
    assert later == [6, 8, 10, 12]  # the first four points were not computed again
    np.testing.assert_array_equal(again.loss, full.loss)
    other = {**grid, "xs": np.linspace(-2, 2, 4)}
    with pytest.raises(GdscopeError, match="belongs to another computation"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), resume=resume, **other)


@pytest.mark.cuda
def test_cuda_surface_equals_cpu(trained_cnn):
    loader = small_cnn_data(128)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": [-1, 0, 1], "ys": [-1, 0, 1]}
    cpu = evaluate_plane(copy.deepcopy(trained_cnn), loader, nn.CrossEntropyLoss(), **grid)
    gpu = evaluate_plane(copy.deepcopy(trained_cnn), loader, nn.CrossEntropyLoss(),
                         device="cuda", strategy="vmap", **grid)  # fmt: skip
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4)


def test_auto_chunk_follows_free_memory(trained_cnn, monkeypatch):
    from gdscope import modules
    from gdscope.nets import plane

    batches = materialize(small_cnn_data(), "cpu")
    layout = ParamLayout.of(trained_cnn)
    monkeypatch.setattr(modules, "free_memory", lambda device: 1 << 30)
    big = plane.auto_chunk(trained_cnn, batches, layout)
    monkeypatch.setattr(modules, "free_memory", lambda device: 1 << 24)
    small = plane.auto_chunk(trained_cnn, batches, layout)
    # largest activation: the first conv's output for a batch of 64 (64×8×16×16 floats)
    per_point = 4 * (64 * 8 * 16 * 16 * 4) + 4 * layout.size
    assert big == min(1024, (1 << 28) // per_point) and small == max(1, (1 << 22) // per_point)
    dx = random_direction(trained_cnn, seed=1)
    auto = evaluate_plane(trained_cnn, small_cnn_data(), nn.CrossEntropyLoss(), dx=dx,
                          xs=np.linspace(-1, 1, 5), strategy="vmap")  # fmt: skip
    fixed = evaluate_plane(trained_cnn, small_cnn_data(), nn.CrossEntropyLoss(), dx=dx,
                           xs=np.linspace(-1, 1, 5), strategy="vmap", chunk=2)  # fmt: skip
    np.testing.assert_allclose(auto.loss, fixed.loss, rtol=1e-6)


def test_data_may_be_a_loader_a_dataset_or_one_pair():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.randn(300, 2, generator=torch.Generator().manual_seed(0)), torch.arange(300) % 2
    dataset = TensorDataset(x, y)
    from_dataset = materialize(dataset)
    from_loader = materialize(DataLoader(dataset, batch_size=256))
    assert [len(b[0]) for b in from_dataset] == [256, 44]
    for (a, b), (c, d) in zip(from_dataset, from_loader, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d)
    assert torch.equal(materialize((x, y))[0][0], x)
    with pytest.raises(GdscopeError, match=r"yield \(inputs, targets\) pairs, got dict"):
        materialize([{"x": x, "y": y}])
    with pytest.raises(GdscopeError, match="DataLoader or Dataset, got int"):
        materialize(3)
    empty = (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    full = (torch.ones(3, 2), torch.ones(3, dtype=torch.long))
    kept = materialize([empty, full, empty])  # (a mean over samples: they add nothing)
    assert len(kept) == 1 and torch.equal(kept[0][0], full[0])
    with pytest.raises(GdscopeError, match=r"^the validation data has no batches$"):
        materialize([empty], what="the validation data")


def test_channels_last_loop_agrees_and_leaves_the_model_as_it_was(trained_cnn):
    from gdscope.nets.plane import channels_last

    loader = small_cnn_data(64)
    batches = materialize(loader, "cpu")
    nhwc = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    dx = random_direction(trained_cnn, seed=1)
    centre = ParamLayout.of(trained_cnn).vector(trained_cnn)
    vectors = torch.stack([centre + t * dx for t in (-0.5, 0.0, 0.5)])
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    plain, _ = evaluate_plane_loop(trained_cnn, batches, nn.CrossEntropyLoss(), vectors)
    with channels_last(trained_cnn):
        weight = trained_cnn.features[0].weight
        assert weight.is_contiguous(memory_format=torch.channels_last)
        fast, _ = evaluate_plane_loop(trained_cnn, nhwc, nn.CrossEntropyLoss(), vectors)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=0)
    assert trained_cnn.features[0].weight.is_contiguous()
    for key, value in trained_cnn.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_auto_times_on_a_sliver_and_computes_every_point_by_the_way_it_chose(trained_cnn):
    loader = small_cnn_data(64)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 10), "ys": np.linspace(-1, 1, 8)}
    seen = []
    auto = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), chunk=8,
                          progress=lambda done, total: seen.append(done), **grid)  # fmt: skip
    assert seen == sorted(set(seen)) and seen[-1] == 80
    # images: the loop is timed in both memory layouts on 4 points each (after one untimed);
    # then vmap on chunks of 1, 4 and (if those do not decide) 8, the chunk asked for
    trials = [tuple(t[:2]) for t in auto.meta["trials"]]
    assert trials[:2] == [("loop", 4), ("loop/channels_last", 4)]
    assert trials[2:] in ([("vmap", 1), ("vmap", 4)], [("vmap", 1), ("vmap", 4), ("vmap", 8)])
    assert auto.meta["plan"] == []  # no point was computed by a trial
    chosen = {"strategy": auto.meta["strategy"], "chunk": auto.meta["chunk"],
              "memory_format": auto.meta["memory_format"]}  # fmt: skip
    again = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), **chosen, **grid)
    np.testing.assert_array_equal(auto.loss, again.loss)  # every point by the chosen way
    np.testing.assert_array_equal(auto.accuracy, again.accuracy)
    loop = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy="loop", **grid)
    np.testing.assert_allclose(auto.loss, loop.loss, rtol=1e-5)


@pytest.mark.parametrize(
    ("sizes", "points", "expected"),
    [
        ([50, 50, 20], 12, 32),  # a small grid: the fewest samples worth timing
        ([500, 500], 121, 57),  # TRIAL_BUDGET × 121 points × 1,000 samples / 64 points
        ([100] * 15, 441, 100),  # at most the first batch
        ([20], 10_000, 20),  # a first batch smaller than the fewest
    ],
)
def test_a_sliver_is_the_first_samples_sized_to_the_grid(sizes, points, expected):
    batches = [(torch.arange(n).float()[:, None] + 1000 * i, torch.arange(n))
               for i, n in enumerate(sizes)]  # fmt: skip
    assert TRIAL_BUDGET == 0.03  # (the expected counts follow from it)
    (inputs, targets), *rest = sliver(batches, points)
    assert not rest and len(targets) == expected
    assert torch.equal(inputs, batches[0][0][:expected])


class ItemInForward(nn.Module):
    """A module vmap cannot run (``.item()`` in ``forward``) but the loop can."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if self.linear.weight.sum().item() > -1e9 else 2.0
        return scale * self.linear(x)


def test_auto_falls_back_to_the_loop_when_vmap_cannot_run_the_module():
    torch.manual_seed(0)
    model = ItemInForward()
    data = (torch.randn(64, 2), torch.randint(0, 3, (64,)))
    dx, dy = random_direction(model, seed=1), random_direction(model, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 30), "ys": np.linspace(-1, 1, 30)}
    with pytest.raises(RuntimeError):  # what vmap says about .item()
        evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy="vmap", **grid)
    seen = []
    auto = evaluate_plane(model, data, nn.CrossEntropyLoss(), chunk=16,
                          progress=lambda done, total: seen.append(done), **grid)  # fmt: skip
    loop = evaluate_plane(model, data, nn.CrossEntropyLoss(), strategy="loop", **grid)
    assert auto.meta["strategy"] == "loop" and ".item()" in auto.meta["vmap_failure"]
    assert auto.meta["trials"][-1][0] == "vmap" and np.isnan(auto.meta["trials"][-1][2])
    np.testing.assert_array_equal(auto.loss, loop.loss)  # every point, by the loop
    assert seen == sorted(set(seen)) and seen[-1] == 900


def test_a_plan_repeats_an_old_records_trials_point_for_point(trained_cnn):
    # An older auto evaluated the grid's first points by its trials (the loop, then vmap):
    # its record's plan repeats that, and the rest by the strategy it chose.
    loader = small_cnn_data(64)
    dx, dy = random_direction(trained_cnn, seed=1), random_direction(trained_cnn, seed=2)
    grid = {"dx": dx, "dy": dy, "xs": np.linspace(-1, 1, 9), "ys": np.linspace(-1, 1, 8)}
    plan = [("loop", 1), ("loop", 4), ("loop/channels_last", 5), ("vmap", 1), ("vmap", 4)]
    old = evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy="loop",
                         memory_format="contiguous", plan=plan, **grid)  # fmt: skip
    assert old.meta["plan"] == [list(step) for step in plan]
    flat = old.loss.ravel()
    by = {way: evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy=method,
                              memory_format=form, **grid).loss.ravel()
          for way, (method, form) in PLAN_STEPS.items()}  # fmt: skip
    np.testing.assert_array_equal(flat[:5], by["loop"][:5])
    np.testing.assert_array_equal(flat[5:10], by["loop/channels_last"][5:10])
    np.testing.assert_array_equal(flat[10:15], by["vmap"][10:15])
    np.testing.assert_array_equal(flat[15:], by["loop"][15:])
    with pytest.raises(GdscopeError, match="a plan step is"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), strategy="loop",
                       plan=[("warp", 1)], **grid)  # fmt: skip
    with pytest.raises(GdscopeError, match="give the strategy they led to"):
        evaluate_plane(trained_cnn, loader, nn.CrossEntropyLoss(), plan=[("loop", 1)], **grid)


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
    assert set(PLAN_METHODS) == set(PLAN_STEPS)
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


def test_decide_without_timing_when_told_or_when_a_backend_runs_it(monkeypatch):
    model, data, grid = small()
    work = work_on(model, data, grid)
    todo = np.arange(12)
    monkeypatch.setattr(Timing, "__call__", lambda *_: pytest.fail("nothing is timed"))
    cpu = torch.device("cpu")
    told = decide(EvaluationOptions(strategy="loop"), work, todo, cpu)
    assert (told.method, told.chunk, told.memory_format, told.trials) == (
        "loop", LOOP_CHUNK, "contiguous", None)  # fmt: skip
    vmap = decide(EvaluationOptions(strategy="vmap"), work, todo, cpu)
    assert vmap.chunk == auto_chunk(model, work.data.batches, work.layout)
    remote = decide(EvaluationOptions(backend=LocalBackend()), work, todo, cpu)
    assert (remote.method, remote.trials) == ("loop", None)
    on_gpu = decide(EvaluationOptions(backend=LocalBackend(), chunk=7), work, todo,
                    torch.device("cuda"))  # fmt: skip
    assert (on_gpu.method, on_gpu.chunk) == ("vmap", 7)


def test_autos_chunk_is_sized_for_the_whole_data_not_the_sliver(monkeypatch):
    # auto times on a sliver, but the chunks it chooses run on every batch: sized from those
    from gdscope import modules

    model, _, grid = small()
    data = [(x, y) for x, y in torch.utils.data.DataLoader(mlp.make_dataset(400, seed=2),
                                                           batch_size=200)]  # fmt: skip
    work = work_on(model, data, grid)
    monkeypatch.setattr(modules, "free_memory", lambda device: 2**22)
    whole = auto_chunk(model, work.data.batches, work.layout)
    assert whole < auto_chunk(model, sliver(work.data.batches, 12), work.layout)
    monkeypatch.setattr(Timing, "__call__", lambda self, method, count: 1.0)  # a tie: the loop
    limits = []
    real = plane.choose_strategy

    def spy(run, *, limit, **kwargs):
        limits.append(limit)
        return real(run, limit=limit, **kwargs)

    monkeypatch.setattr(plane, "choose_strategy", spy)
    decide(EvaluationOptions(), work, np.arange(12), torch.device("cpu"))
    assert limits == [min(whole, 12)]


def test_autos_timing_keeps_nothing_and_leaves_the_model_as_it_was(trained_cnn):
    loader = small_cnn_data(64)
    dx = random_direction(trained_cnn, seed=1)
    layout = ParamLayout.of(trained_cnn)
    plane = PlaneGrid.of(layout, centre=layout.vector(trained_cnn), dx=dx, dy=None,
                         xs=np.linspace(-1, 1, 5), ys=[0.0],
                         device=torch.device("cpu"))  # fmt: skip
    work = ChunkWork(ModelData(trained_cnn, materialize(loader)), nn.CrossEntropyLoss(), layout,
                     plane)  # fmt: skip
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    timing = Timing(work, np.arange(5))
    assert sum(len(y) for _, y in timing.work.data.batches) == 32  # the sliver, not the data
    assert timing.scale == 2.0 and timing.samples == 32
    choice = decide(EvaluationOptions(chunk=4), work, np.arange(5), torch.device("cpu"))
    assert choice.trial_samples == 32
    assert [t[:2] for t in choice.trials[:2]] == [("loop", 4), ("loop/channels_last", 4)]
    assert all(t[2] > 0 for t in choice.trials)  # seconds per point
    assert trained_cnn.features[0].weight.is_contiguous()
    for key, value in trained_cnn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert Timing(work, np.arange(0))("loop", 4) is None  # nothing to do: nothing to time


@pytest.mark.parametrize("when", ["during the trials", "before the trials"])
def test_ctrl_c_during_autos_trials_stops_with_nothing_lost(monkeypatch, when):
    # A Ctrl-C between two of auto's timing trials (outside any chunk) once raised past the
    # points already evaluated; now it ends the trials and the run, with the grid left blank.
    import os
    import signal

    from gdscope import interrupts

    model, data, grid = small()
    calls: list[str] = []
    if when == "during the trials":
        timed = plane.Timing.__call__

        def interrupted_timing(self, method, count):
            calls.append(method)
            if method == "vmap":  # its warm-up, after the loop was timed
                os.kill(os.getpid(), signal.SIGINT)
            return timed(self, method, count)

        monkeypatch.setattr(plane.Timing, "__call__", interrupted_timing)
    else:
        sized = plane.auto_chunk

        def interrupted_sizing(*args, **kwargs):  # runs outside every chunk
            os.kill(os.getpid(), signal.SIGINT)
            return sized(*args, **kwargs)

        monkeypatch.setattr(plane, "auto_chunk", interrupted_sizing)
    with interrupts.handle_sigint():
        surface = evaluate_plane(model, data, nn.CrossEntropyLoss(), **grid)
        assert interrupts.requested()
    assert np.isnan(surface.loss).all() and surface.meta["unfinished"] == surface.loss.size
    assert surface.meta["plan"] == []
    if when == "during the trials":
        assert calls == ["loop", "loop", "vmap"]  # stopped at vmap's warm-up
        assert [t[:2] for t in surface.meta["trials"]] == [["loop", TIMED_POINTS]]
