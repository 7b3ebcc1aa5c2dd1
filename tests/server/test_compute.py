"""The computations and their price: everything a route runs is in the estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")

from gdscope.server.compute import ROUTINES, answer, estimate, phase
from gdscope.server.costs import COSTS, minimum_seconds, native, run_seconds
from gdscope.server.models import PhaseRequest, TrajectoryRequest
from tests.server.test_pool import STALL
from tests.server.test_security import HEAVY_PHASE


def test_the_phase_estimate_prices_find_minimum():
    """Issue 19: the stalling request was priced at 5.4 µs, its runs alone; the route also
    solves for the loss's minimum twice (the target and the answer's minimum) and once more
    per weight decay on the grid."""
    request = PhaseRequest.model_validate(STALL)
    runs = run_seconds("sgd", "huber", configurations=1, points=request.data.n, epochs=1)
    once = minimum_seconds("huber", points=request.data.n)
    assert once > 0
    assert estimate(request) == pytest.approx(runs + 3 * once)  # SGD: weight decay 0 once


def test_each_weight_decay_on_the_grid_costs_a_minimum():
    """Issue 19: an RMSprop 1×1 phase with a weight_decay axis was priced at its one run."""
    body = {**STALL, "optimizer": {"name": "rmsprop"},
            "x": {"name": "weight_decay", "lo": 0.1, "hi": 0.5, "count": 5}}  # fmt: skip
    five = estimate(PhaseRequest.model_validate(body))
    one = estimate(PhaseRequest.model_validate({**body, "x": {**body["x"], "count": 1}}))
    runs = five - one - 4 * minimum_seconds("huber", points=50)
    assert runs == pytest.approx(
        run_seconds("rmsprop", "huber", configurations=5, points=50, epochs=1)
        - run_seconds("rmsprop", "huber", configurations=1, points=50, epochs=1)
    )


def test_a_test_function_needs_no_minimum():
    body = {**STALL, "function": {"name": "rosenbrock"}}
    request = PhaseRequest.model_validate(body)
    assert estimate(request) == run_seconds("sgd", "function", configurations=1, points=1,
                                            epochs=1)  # fmt: skip


def test_the_budget_tracks_the_optimizer_and_loss():
    """The old budget counted point evaluations: SGD/MSE and Adam/L1 cost the same."""
    body = {**HEAVY_PHASE, "epochs": 100, "data": {"n": 50}}
    sgd = {**body, "optimizer": {"name": "sgd"}, "loss": {"name": "mse"},
           "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 64}}  # fmt: skip
    assert estimate(PhaseRequest.model_validate(body)) != estimate(PhaseRequest.model_validate(sgd))


def test_sgd_is_priced_by_the_engine_that_runs_it():
    """The native kernel where it loads; the tensor engine's price where it does not
    (issue 19: without a compiler SGD was priced as the kernel runs it: 1.99 s for 26 s)."""
    request = TrajectoryRequest.model_validate({"epochs": 2000, "data": {"n": 1000}})
    kernel = native("sgd", "mse")
    tensor = run_seconds("sgd", "mse", configurations=1, points=1000, epochs=2000)
    script = (
        "from gdscope.server.compute import estimate; from gdscope.server.models import "
        "TrajectoryRequest as T; from gdscope.server.costs import native; "
        "print(native('sgd', 'mse'), estimate(T.model_validate("
        "{'epochs': 2000, 'data': {'n': 1000}})))"
    )
    env = {**os.environ, "GDSCOPE_NO_NATIVE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out[0] == "False"
    step, _, element = COSTS["sgd"]["mse"]
    assert float(out[1]) > 2000 * (step + 1000 * element)  # the tensor engine's price
    if kernel:
        assert estimate(request) < float(out[1])
    else:
        assert estimate(request) == pytest.approx(tensor)


def test_answer_is_the_routine_s_json():
    body = {"x": {"name": "lr", "lo": 0.1, "hi": 0.5, "count": 3},
            "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 2}, "epochs": 20}  # fmt: skip
    assert set(ROUTINES) == {"landscape", "trajectories", "phase"}
    assert json.loads(answer("phase", body)) == json.loads(
        json.dumps(phase(PhaseRequest.model_validate(body)))
    )
