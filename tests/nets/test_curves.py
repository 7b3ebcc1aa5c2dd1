"""The Bézier curve between two networks (``nets.curves``), against torch computed directly:
exact ends, the line's loss from interpolated state_dicts in float64, BatchNorm's statistics
recomputed by hand, resume after Ctrl-C, and the curve below the line's barrier on digits."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.nets.curves import (
    ConnectOptions,
    bezier,
    connect,
    has_batchnorm,
    learning_rate,
    line,
)

TINY = {"epochs": 3, "points": 5, "grid": 3, "batch_size": 16}


def mlp(seed: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    with torch.no_grad():  # running statistics of their own, which the curve must not use
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net


def data(n: int = 50, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, 4, generator=generator, dtype=dtype)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def direct_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The loss of a real module in eval mode, with torch's own loss on all the data."""
    with torch.no_grad():
        return float(nn.CrossEntropyLoss()(model.eval()(x), y))


def blend(state_a: dict, state_b: dict, weights: tuple[float, ...], bend: dict | None = None
          ) -> dict:  # fmt: skip
    out = {}
    for name, value in state_a.items():
        mixed = weights[0] * value + weights[-1] * state_b[name]
        if bend is not None:
            mixed = (weights[0] * value + weights[1] * bend[name]) + weights[2] * state_b[name]
        out[name] = mixed
    return out


floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(floats, floats, floats), min_size=1, max_size=20))
def test_the_curve_and_the_line_are_exactly_the_networks_at_their_ends(rows):
    a, bend, b = (torch.tensor(column, dtype=torch.float32) for column in zip(*rows, strict=True))
    a[0] = -0.0  # a negative zero must stay one (0·bend added to it would make it +0.0)
    for path in (lambda t: bezier(t, a, bend, b), lambda t: line(t, a, b)):
        assert path(0).numpy().tobytes() == a.numpy().tobytes()
        assert path(1).numpy().tobytes() == b.numpy().tobytes()


def test_ends_of_the_result_are_the_loaded_modules_own_losses(tmp_path):
    x, y = data()
    first, second = mlp(0, torch.float32), mlp(1, torch.float32)
    result = connect(first, second, (x.float(), y), nn.CrossEntropyLoss(), **TINY)
    for index, model, name in ((0, first, "a.pt"), (-1, second, "b.pt")):
        torch.save(model.state_dict(), tmp_path / name)
        loaded = mlp(5, torch.float32)
        loaded.load_state_dict(torch.load(tmp_path / name, weights_only=True))
        expected = direct_loss(loaded, x.float(), y)
        assert result.line_loss[index] == pytest.approx(expected, rel=1e-15, abs=0)
        assert result.curve_loss[index] == pytest.approx(expected, rel=1e-15, abs=0)
    assert result.corners[0].tolist() == [0.0, 0.0] and result.corners[1][1] == 0.0


def test_the_line_and_the_curve_equal_torch_on_interpolated_state_dicts_in_float64():
    x, y = data()
    first, second = mlp(0), mlp(1)
    result = connect(first, second, (x, y), nn.CrossEntropyLoss(), **TINY)
    state_a, state_b = first.state_dict(), second.state_dict()
    fresh = mlp(9)
    bend = dict(zip(state_a, result.bend.split([p.numel() for p in state_a.values()]),
                    strict=True))  # fmt: skip
    bend = {name: value.reshape(state_a[name].shape) for name, value in bend.items()}
    for i, t in enumerate(result.ts):
        fresh.load_state_dict(blend(state_a, state_b, (1 - t, t)))
        assert result.line_loss[i] == pytest.approx(direct_loss(fresh, x, y), rel=1e-12)
        fresh.load_state_dict(blend(state_a, state_b, ((1 - t) ** 2, 2 * t * (1 - t), t**2),
                                    bend))  # fmt: skip
        assert result.curve_loss[i] == pytest.approx(direct_loss(fresh, x, y), rel=1e-12)
    accuracy = float((first(x).argmax(-1) == y).double().mean())
    assert result.line_accuracy is not None and result.line_accuracy[0] == accuracy


def test_the_plane_holds_the_three_networks_and_the_curve():
    x, y = data()
    first, second = mlp(0), mlp(1)
    result = connect(first, second, (x, y), nn.CrossEntropyLoss(), **TINY)
    plane = result.plane
    a = torch.cat([p.detach().reshape(-1) for p in first.parameters()])
    b = torch.cat([p.detach().reshape(-1) for p in second.parameters()])
    assert float(plane.dx @ plane.dy) == pytest.approx(0, abs=1e-12)
    assert float(plane.dx.norm()) == pytest.approx(1) == float(plane.dy.norm())
    for (px, py), vector in zip(result.corners, (a, b, result.bend), strict=True):
        assert torch.allclose(plane.point(px, py).double(), vector, atol=1e-10)
    xy = result.curve_xy()[2]  # t = 0.5
    midpoint = bezier(0.5, a, result.bend, b)
    assert torch.allclose(plane.point(*xy).double(), midpoint, atol=1e-10)
    xs, ys = plane.xs, plane.ys
    assert xs[0] < 0 < result.corners[1][0] < xs[-1] and ys[0] < 0 < result.corners[2][1] < ys[-1]


def test_batchnorm_statistics_are_recomputed_at_each_point_as_torch_computes_them():
    x, y = data(50)
    batches = [(x[:20], y[:20]), (x[20:40], y[20:40]), (x[40:], y[40:])]  # unequal last batch
    first, second = bn_net(0), bn_net(1)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    result = connect(first, second, batches, nn.CrossEntropyLoss(), **TINY)
    assert result.batchnorm and has_batchnorm(first)
    assert all(torch.equal(before[k], v) for k, v in first.state_dict().items())  # untouched
    state_a, state_b = first.state_dict(), second.state_dict()
    for i in (0, 2, 4):
        t = float(result.ts[i])
        w1 = (1 - t) * state_a["0.weight"] + t * state_b["0.weight"]
        b1 = (1 - t) * state_a["0.bias"] + t * state_b["0.bias"]
        gamma = (1 - t) * state_a["1.weight"] + t * state_b["1.weight"]
        beta = (1 - t) * state_a["1.bias"] + t * state_b["1.bias"]
        w2 = (1 - t) * state_a["3.weight"] + t * state_b["3.weight"]
        b2 = (1 - t) * state_a["3.bias"] + t * state_b["3.bias"]
        # (the ends too: statistics of their weights on the data, not those their files hold)
        hidden = [inputs @ w1.T + b1 for inputs, _ in batches]
        # momentum=None: the cumulative average over batches of each batch's mean and
        # unbiased variance
        mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
        var = torch.stack([h.var(0, unbiased=True) for h in hidden]).mean(0)
        normed = (x @ w1.T + b1 - mean) / torch.sqrt(var + 1e-5) * gamma + beta
        logits = torch.relu(normed) @ w2.T + b2
        expected = float(nn.functional.cross_entropy(logits, y))
        assert result.line_loss[i] == pytest.approx(expected, rel=1e-12)


def test_a_model_with_its_own_statistics_at_the_ends_is_not_measured_with_them():
    x, y = data(50)
    first, second = bn_net(0), bn_net(1)
    result = connect(first, second, (x, y), nn.CrossEntropyLoss(), **TINY)
    assert result.line_loss[0] != pytest.approx(direct_loss(first, x, y), rel=1e-6)


def test_ctrl_c_while_training_keeps_the_epochs_and_resume_goes_on_to_the_same_result(tmp_path):
    x, y = data()
    args = (mlp(0), mlp(1), (x, y), nn.CrossEntropyLoss())
    options = ConnectOptions(epochs=4, points=5, grid=4, batch_size=16)
    straight = connect(*args, options=options)
    file = tmp_path / "progress.npz"

    def stop_after_two(line_: str) -> None:
        if line_.startswith("connect: epoch 2/"):
            interrupts._STATE.request.set()

    try:
        cut = connect(*args, options=options, resume=file, log=stop_after_two)
    finally:
        interrupts._STATE.request.clear()
    assert cut.epochs_done == 2 and not cut.trained and cut.unfinished == cut.total
    assert np.isnan(cut.line_loss).all() and file.exists()
    went_on = connect(*args, options=options, resume=file)
    assert went_on.trained and not went_on.interrupted
    assert torch.equal(went_on.bend, straight.bend)
    for name in ("line_loss", "curve_loss", "epoch_loss"):
        assert np.array_equal(getattr(went_on, name), getattr(straight, name)), name
    assert np.array_equal(went_on.plane.loss, straight.plane.loss)


def test_ctrl_c_while_measuring_keeps_the_points_measured_and_resume_finishes(tmp_path):
    x, y = data()
    args = (mlp(0), mlp(1), (x, y), nn.CrossEntropyLoss())
    options = ConnectOptions(epochs=2, points=5, grid=6, batch_size=16)
    straight = connect(*args, options=options)
    file = tmp_path / "progress.npz"

    def stop_soon(done: int, total: int) -> None:
        if done >= 16:
            interrupts._STATE.request.set()

    try:
        cut = connect(*args, options=options, resume=file, progress=stop_soon)
    finally:
        interrupts._STATE.request.clear()
    assert cut.trained and cut.interrupted and cut.measured == 16
    assert np.array_equal(cut.line_loss, straight.line_loss)  # the first 16: line, curve, …
    assert np.isnan(cut.plane.loss).sum() == cut.unfinished
    went_on = connect(*args, options=options, resume=file)
    assert not went_on.interrupted
    assert np.array_equal(went_on.plane.loss, straight.plane.loss)


def test_a_resume_file_of_other_options_is_refused(tmp_path):
    x, y = data()
    file = tmp_path / "progress.npz"
    connect(mlp(0), mlp(1), (x, y), nn.CrossEntropyLoss(), resume=file, **TINY)
    with pytest.raises(GdscopeError, match="belongs to another computation"):
        connect(mlp(0), mlp(1), (x, y), nn.CrossEntropyLoss(), resume=file,
                **{**TINY, "seed": 1})  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be an integer ≥ 1"),
        ("points", 1, "points must be an integer ≥ 2"),
        ("points", 2.5, "points must be an integer ≥ 2"),
        ("grid", 202, "grid must be at most 201"),
        ("lr", 0.0, "lr must be a finite number > 0"),
        ("lr", math.inf, "lr must be a finite number > 0"),
        ("momentum", 1.0, "momentum must be a finite number in [0, 1)"),
        ("batch_size", 0, "batch_size must be an integer ≥ 1"),
        ("margin", -0.1, "margin must be a finite number ≥ 0"),
        ("seed", True, "seed must be an integer"),
    ],
)
def test_bad_options_are_refused_where_they_are_made(field, value, message):
    with pytest.raises(GdscopeError, match=re.escape(message)) as error:
        ConnectOptions(**{field: value})
    assert list(error.value.settings) == [field]


def test_networks_that_differ_are_refused_naming_what_differs():
    x, y = data()
    wide = nn.Sequential(nn.Linear(4, 9), nn.Tanh(), nn.Linear(9, 3)).double()
    with pytest.raises(GdscopeError, match=r"0\.weight is \(8, 4\) in the first, the second "
                                           r"has \(9, 4\)"):  # fmt: skip
        connect(mlp(0), wide, (x, y), nn.CrossEntropyLoss(), **TINY)
    with pytest.raises(GdscopeError, match="the same weights"):
        connect(mlp(0), mlp(0), (x, y), nn.CrossEntropyLoss(), **TINY)


def test_the_learning_rate_follows_the_papers_schedule():
    options = ConnectOptions(epochs=10, lr=0.1)
    rates = [learning_rate(options, epoch) for epoch in range(10)]
    assert rates[:6] == [0.1] * 6  # up to half the epochs
    assert rates[6] == pytest.approx(0.1 * (1 - 0.1 / 0.4 * 0.99))
    assert rates[9] == pytest.approx(0.001)
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_a_diverging_curve_is_refused_in_one_line():
    x, y = data()

    def overflowing(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs * 1e200).pow(2).mean()  # inf in float64

    with pytest.raises(GdscopeError, match=r"diverged in epoch 1 \(loss inf\): try a smaller lr"):
        connect(mlp(0), mlp(1), (x, y), overflowing, **TINY)


def digits_pair(epochs: int) -> tuple[nn.Module, nn.Module]:
    """Two digits MLPs from different seeds (start and shuffling), trained alike."""
    from gdscope.examples import digits
    from gdscope.nets.fit import fit

    nets = []
    for seed in (0, 1):
        model = digits.make_model(seed)
        loader = digits.make_loader(64, shuffle=True, seed=seed)
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        fit(model, loader, nn.CrossEntropyLoss(), sgd, epochs=epochs)
        nets.append(model)
    return nets[0], nets[1]


def test_on_digits_the_curve_stays_well_below_the_lines_barrier():
    """A smaller version of ``gdscope example connect`` (whose full run is a slow test in
    tests/jobs/test_connect.py): 20 epochs per network, 20 for the curve. Measured (2-core VM,
    load ~13, on one torch thread and on two): the line's highest loss 0.416 (182 times the
    ends'), the curve's 0.0476."""
    from gdscope.examples import digits

    first, second = digits_pair(20)
    result = connect(first, second, digits.make_loader(), nn.CrossEntropyLoss(), epochs=20,
                     lr=0.1, batch_size=64, points=21, grid=3)  # fmt: skip
    ends = max(result.line_loss[0], result.line_loss[-1])
    assert result.line_max > 100 * ends  # a real barrier on the line
    assert result.curve_max < result.line_max / 4
    assert result.barrier("curve") < result.barrier("line") / 4
