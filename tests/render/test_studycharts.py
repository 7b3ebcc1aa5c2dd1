"""Study charts name their axes after the objective, not after the regression."""

from __future__ import annotations

from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import loss_map
from gdscope.problem.testfunctions import TestFunction
from gdscope.render.studycharts import plot_small_multiples


def _labels(objective, data=None):
    landscape = loss_map(data, objective, objective.default_grid(21))
    runs = [train(data, loss=objective, optimizer=OptimizerSpec.of("sgd", lr=lr), epochs=3)
            for lr in (0.01, 0.02)]  # fmt: skip
    _, axes = plot_small_multiples(landscape, runs, ["a", "b"], fig=Figure())
    return {(ax.get_ylabel(), ax.get_xlabel()) for ax in axes}


def test_small_multiples_of_a_test_function_label_y_and_x():
    assert _labels(TestFunction("booth")) == {("y", "x")}


def test_small_multiples_of_a_regression_label_weight_and_bias(article_data):
    assert _labels(LossSpec("mse"), article_data) == {("Weight", "Bias")}
