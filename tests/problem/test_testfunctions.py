"""Test functions: formulas, minima, both engines against real torch.optim, the registry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gdscope.engines.batched import run_batched
from gdscope.engines.reference import train
from gdscope.errors import GdscopeError
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.maps import Grid, gradient_field, loss_map
from gdscope.problem.objective import default_grid
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction, register

from ..reference import run

# Literature values at a few points, written out independently of functions.py.
REFERENCE = {
    "rosenbrock": lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
    "rastrigin": lambda x, y: (
        20 + x * x - 10 * math.cos(2 * math.pi * x) + y * y - 10 * math.cos(2 * math.pi * y)
    ),
    "himmelblau": lambda x, y: (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
    "beale": lambda x, y: (
        (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2
    ),
    "booth": lambda x, y: (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
    "saddle": lambda x, y: x * x - y * y,
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@given(x=st.floats(-3, 3), y=st.floats(-3, 3))
@settings(max_examples=25, deadline=None)
def test_formula_matches_the_literature(name, x, y):
    f = TestFunction(name)
    value = float(f(torch.tensor([y, x], dtype=torch.float64)))
    assert value == pytest.approx(REFERENCE[name](x, y), rel=1e-12, abs=1e-12)


def test_quadratic_has_the_chosen_condition_number():
    f = TestFunction.of("quadratic", condition=50.0, angle=20.0)
    p = torch.zeros(2, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(f, p)
    eig = torch.linalg.eigvalsh(hessian)
    assert float(eig[1] / eig[0]) == pytest.approx(50.0)
    assert float(eig[1]) == pytest.approx(2.0)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_known_minima_are_stationary_and_lowest_on_the_grid(name):
    f = TestFunction(name)
    for y, x in f.minima:
        p = torch.tensor([y, x], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(f(p), p)
        assert grad.abs().max() < 1e-4, (name, x, y, grad)
    if f.definition.stationary == "minimum":
        landscape = loss_map(None, f, default_grid(f, 201), dtype=torch.float64)
        lowest = min(float(f(torch.tensor(m, dtype=torch.float64))) for m in f.minima)
        assert lowest <= float(landscape.values.min()) + 1e-9


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_map_equals_pointwise_evaluation(name):
    f = TestFunction(name)
    grid = default_grid(f, 11)
    landscape = loss_map(None, f, grid, dtype=torch.float64)
    for i, w in enumerate(grid.weights):
        for j, b in enumerate(grid.biases):
            assert float(landscape.values[i, j]) == pytest.approx(
                REFERENCE.get(
                    name, lambda x, y: float(f(torch.tensor([y, x], dtype=torch.float64)))
                )(b, w)
            )


OPTIMIZERS = [
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {}),
    ("rmsprop", {"momentum": 0.3}),
    ("adagrad", {}),
]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize(("optimizer", "options"), OPTIMIZERS)
def test_batched_engine_equals_torch_optim_on_functions(name, optimizer, options):
    f = TestFunction(name)
    lr = f.definition.lr
    reference = train(None, loss=f, optimizer=OptimizerSpec.of(optimizer, lr=lr, **options),
                      epochs=60, dtype=torch.float64)  # fmt: skip
    ours = run_batched(None, optimizer, {"lr": lr, **options}, loss=f, epochs=60,
                       dtype=torch.float64).trajectory(0)  # fmt: skip
    assert ours.diverged_at == reference.diverged_at
    n = reference.n_finite
    np.testing.assert_allclose(ours.path[:n], reference.path[:n], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.losses[:n], reference.losses[:n], rtol=1e-10, atol=1e-12)


def test_reference_engine_is_plain_torch_optim_on_a_parameter():
    f = TestFunction("booth")
    point = torch.nn.Parameter(torch.tensor(f.start, dtype=torch.float64))
    opt = torch.optim.SGD([point], lr=0.05, momentum=0.9)
    path = [point.detach().clone()]
    for _ in range(20):
        opt.zero_grad()
        x, y = point[1], point[0]
        ((x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2).backward()
        opt.step()
        path.append(point.detach().clone())
    ours = train(None, loss=f, optimizer=OptimizerSpec.of("sgd", lr=0.05, momentum=0.9),
                 epochs=20, dtype=torch.float64)  # fmt: skip
    np.testing.assert_array_equal(ours.path, torch.stack(path).numpy())


def test_saddle_escape_diverges_cleanly():
    run = train(None, loss=TestFunction("saddle"), optimizer=OptimizerSpec.of("sgd", lr=0.05),
                epochs=1000)  # fmt: skip
    assert run.diverged and np.isnan(run.losses[run.diverged_at :]).all()


def test_gradient_field_matches_autograd_at_a_point():
    f = TestFunction("rosenbrock")
    grid = Grid((-1.0, 3.0), (-2.0, 2.0), 5, 5)
    points, grads, values = gradient_field(None, f, grid, size=5)
    y, x = points[1, 3]
    expected = [200 * (y - x * x), -2 * (1 - x) - 400 * x * (y - x * x)]  # d/dy, d/dx
    np.testing.assert_allclose(grads[1, 3], expected, rtol=1e-12)
    assert values[1, 3] == pytest.approx(REFERENCE["rosenbrock"](x, y))


def test_registry_takes_one_function(monkeypatch):
    monkeypatch.setattr("gdscope.problem.testfunctions.FUNCTIONS", dict(FUNCTIONS))

    @register(domain=((-1, 1), (-1, 1)), minima=[(0.5, 0.0)], start=(0.9, 0.9), lr=0.1)
    def shifted(x, y, k=2.0):
        return k * (x - 0.5) ** 2 + y**2

    f = TestFunction.of("shifted", k=3.0)
    assert f.minima == [(0.0, 0.5)] and f.kwargs() == {"k": 3.0}
    run = train(None, loss=f, optimizer=OptimizerSpec.of("sgd", lr=0.1), epochs=200)
    assert run.final == pytest.approx((0.0, 0.5), abs=1e-5)


def test_bad_function_input():
    with pytest.raises(GdscopeError, match="unknown function"):
        TestFunction("nope")
    with pytest.raises(GdscopeError, match="no option 'cond'"):
        TestFunction.of("quadratic", cond=3)
    with pytest.raises(GdscopeError, match="must be finite"):
        TestFunction.of("quadratic", condition=float("nan"))
    with pytest.raises(GdscopeError, match="mini-batches need data"):
        train(None, loss=TestFunction("booth"), batch_size=4)


def test_plot_function_cli_and_bad_options(tmp_path, capsys):
    out = tmp_path / "f.png"
    code, _, _ = run(capsys, "plot", "--function", "quadratic:condition=30", "--view",
                     "surface", "--out", out)  # fmt: skip
    assert code == 0 and out.exists()
    record = json.loads(Image.open(out).text["Description"])
    assert record["config"]["losses"] == [{"function": "quadratic", "condition": 30.0}]
    assert record["config"]["optimizer"]["lr"] == 0.4  # the function's customary lr
    for args, message in (
        (["--function", "nope"], "unknown function"),
        (["--function", "quadratic:cond=3"], "no option 'cond'"),
        (["--function", "booth", "--batch-size", "4"], "mini-batches need data"),
        (["--overlay", "batches"], "needs a mini-batch run (--batch-size)"),
    ):
        code, _, err = run(capsys, "plot", *args, "--out", tmp_path / "g.png")
        assert code == 2 and message in err, (args, err)
