"""The Objective protocol: every objective answers the same questions, and records round-trip."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import gdscope.problem
from gdscope.errors import GdscopeError
from gdscope.problem.grid import ARTICLE_GRID, ARTICLE_START
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import loss_map
from gdscope.problem.objective import Objective, objective_from_dict
from gdscope.problem.testfunctions import TestFunction
from gdscope.render.networks import ModelObjective

OBJECTIVES: list[Objective] = [
    LossSpec("huber", delta=0.5),
    TestFunction.of("quadratic", condition=20.0),
    ModelObjective("accuracy (%)", ("dir 2", "dir 1")),
]


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: o.title)
def test_records_round_trip(objective):
    again = objective_from_dict(objective.to_dict())
    assert again == objective and again.same_function_as(objective)


def test_records_of_today_still_read():
    assert objective_from_dict({"name": "mse", "delta": 1.0, "beta": 1.0}) == LossSpec()
    assert objective_from_dict({"function": "booth"}) == TestFunction("booth")
    with pytest.raises(GdscopeError, match=r"losses\[0\]\.delta must be a number"):
        objective_from_dict({"name": "huber", "delta": "x"}, "losses[0]")


def test_what_callers_used_to_branch_on():
    loss, function, model = OBJECTIVES
    assert (loss.labels, function.labels, model.labels) == (("Weight", "Bias"), ("y", "x"),
                                                            ("dir 2", "dir 1"))  # fmt: skip
    assert (loss.needs_data, function.needs_data, model.needs_data) == (True, False, False)
    assert loss.regression is loss and function.regression is None and model.regression is None
    assert loss.start == ARTICLE_START == (6.0, -3.0)
    assert function.start == (3.0, -4.0)  # quadratic starts at x=-4, y=3
    assert loss.default_grid() == ARTICLE_GRID
    assert function.default_grid(11) == TestFunction("quadratic").default_grid(11)
    assert function.default_grid(11).w_size == 11
    assert (loss.point_text(6, -3), function.point_text(3, -4)) == ("(w=6, b=-3)", "(x=-4, y=3)")
    assert function.known_minima == ((0.0, 0.0),) and loss.known_minima == ()


def test_values_agree_between_a_point_and_the_grid(article_data):
    for objective, data in ((LossSpec("l1"), article_data), (TestFunction("booth"), None)):
        grid = objective.default_grid(5)
        values = loss_map(data, objective, grid, dtype=torch.float64).values
        point = torch.tensor([grid.weights[3], grid.biases[1]], dtype=torch.float64)
        torch.testing.assert_close(objective.at(data, point), values[3, 1])


def test_a_model_objective_cannot_be_evaluated_here():
    model = OBJECTIVES[2]
    with pytest.raises(GdscopeError):
        model.at(None, torch.zeros(2))
    with pytest.raises(GdscopeError):
        model.default_grid()


def test_the_problem_layer_imports_nothing_above_it():
    allowed = ("gdscope.problem", "gdscope.errors", "gdscope.files", "gdscope.version")
    for path in Path(gdscope.problem.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gdscope"):
                assert node.module.startswith(allowed), (path.name, node.module)
