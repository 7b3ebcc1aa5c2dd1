"""Study charts name their axes after the objective, not after the regression."""

from __future__ import annotations

import itertools

import torch
from matplotlib.figure import Figure
from torch import nn

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


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_sweep_rows_x_labels_clear_the_next_rows_titles(article_data):
    objective = LossSpec("mse")
    landscape = loss_map(article_data, objective, objective.default_grid(21))
    runs = [train(article_data, loss=objective, optimizer=OptimizerSpec.of("sgd", lr=lr),
                  epochs=3) for lr in (0.01, 0.02, 0.05) * 3]  # fmt: skip
    fig, axes = plot_small_multiples(landscape, runs, [f"lr={i}" for i in range(9)], fig=Figure())
    fig.suptitle("sgd on MSELoss, 100 epochs")  # as the sweep job adds it, after the panels
    renderer = _drawn(fig)
    rows = [axes[i : i + 3] for i in range(0, 9, 3)]
    for row, below in itertools.pairwise(rows):
        for upper in row:
            label = upper.xaxis.label.get_window_extent(renderer)
            ticks = upper.xaxis.get_tightbbox(renderer)
            for lower in below:
                title = lower.title.get_window_extent(renderer)
                assert not label.overlaps(title) and not ticks.overlaps(title)
    caption = fig._suptitle.get_window_extent(renderer)
    assert not any(caption.overlaps(ax.title.get_window_extent(renderer)) for ax in axes)


def test_shootout_title_says_whose_paths_are_drawn(article_data):
    from gdscope.render.studycharts import plot_shootout
    from gdscope.studies.shootout import compare
    from gdscope.studies.sweep import Axis

    result = compare(article_data, ["sgd", "adam"], budget=5, starts=3,
                     lr=Axis("lr", (0.01, 0.1)))  # fmt: skip
    landscape = loss_map(article_data, LossSpec("mse"), LossSpec("mse").default_grid(21))
    fig = plot_shootout(landscape, result, fig=Figure())
    title = fig.axes[0].get_title()
    assert "3 starts" in title and "paths from start (w=6, b=-3)" in title
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sgd", "adam", "other starts (scored, paths not drawn)"]


def test_a_networks_phase_diagram_outlines_its_measured_border_and_no_analytic_one():
    import numpy as np

    from gdscope.render.studycharts import ANALYTIC_NOTE, plot_phase
    from gdscope.studies.netstudy import run_network_grid
    from gdscope.studies.sweep import Axis

    from ..studies.test_netstudy import _network

    lr = Axis("lr", (0.01, 0.3, 100.0, 1e6), log=True)
    run = run_network_grid(_network(), "sgd", (Axis("momentum", (0.0, 0.9)), lr), steps=6)
    ax = Figure().subplots()
    drawn = plot_phase(run, "final_loss", ax=ax)
    diverged = run.grid("diverged")
    assert 0 < diverged.sum() < diverged.size  # both sides of a border
    assert drawn.border is not None
    x_edges = set(np.round(drawn.mesh.get_coordinates()[0, :, 0], 12))
    y_edges = set(np.round(drawn.mesh.get_coordinates()[:, 0, 1], 12))
    for (x0, y0), (x1, y1) in drawn.border.get_segments():  # on cell edges, not through cells
        assert (x0 == x1 and round(x0, 12) in x_edges) or (y0 == y1 and round(y0, 12) in y_edges)
        assert {round(y0, 12), round(y1, 12)} <= y_edges and {
            round(x0, 12),
            round(x1, 12),
        } <= x_edges
    crossings = (diverged[:, 1:] != diverged[:, :-1]).sum() + (diverged[1:] != diverged[:-1]).sum()
    assert len(drawn.border.get_segments()) == crossings
    assert ANALYTIC_NOTE in ax.get_title()
    shown = np.ma.filled(
        np.asarray(drawn.mesh.get_array(), dtype=float).reshape(diverged.shape), np.nan
    )
    assert np.isnan(shown[diverged > 0.5]).all()  # grey cells


def test_a_short_linear_axis_is_ticked_at_its_values():
    import numpy as np

    from gdscope.render.studycharts import plot_phase
    from gdscope.studies.netstudy import run_network_grid
    from gdscope.studies.sweep import Axis

    from ..studies.test_netstudy import _network

    lr = Axis("lr", (0.01, 0.1), log=True)
    run = run_network_grid(_network(), "sgd", (Axis("momentum", (0.0, 0.9)), lr), steps=2)
    ax = Figure().subplots()
    plot_phase(run, "final_loss", ax=ax)
    np.testing.assert_allclose(ax.get_yticks(), [0.0, 0.9])  # not -0.4 … 1.2


def _drawn(fig: Figure) -> None:
    """Render ``fig`` (matplotlib scales and ticks its axes only when drawn)."""
    import io

    fig.savefig(io.BytesIO(), format="png")


def test_a_network_shootout_where_every_setting_diverged_is_drawn_as_diverged():
    import numpy as np

    from gdscope.render.studycharts import plot_network_shootout
    from gdscope.studies.netstudy import compare_network
    from gdscope.studies.sweep import Axis

    from ..studies.test_netstudy import _network

    result = compare_network(_network(), ("sgd",), lr=Axis("lr", (1e30, 1e35), log=True),
                             steps=3)  # fmt: skip
    assert np.isinf(result.scores("sgd")).all()
    fig = plot_network_shootout(result, fig=Figure())
    _drawn(fig)  # raised "Data cannot be log-scaled" before
    left, right = fig.axes
    assert "every setting diverged" in [text.get_text() for text in left.texts]
    crosses = [line for line in left.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and len(crosses[0].get_xdata()) == 2
    assert "every setting diverged" in right.get_legend().get_texts()[0].get_text()


class _NaNOut(nn.Module):
    """A model whose outputs are all NaN: every copy diverges at its first step."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * float("nan")


def test_network_sweep_panels_say_diverged_as_the_phase_diagram_does():
    from gdscope.render.studycharts import plot_loss_curves
    from gdscope.studies.netstudy import Network, run_network_grid
    from gdscope.studies.sweep import Axis

    from ..studies.test_netstudy import _network

    lr = Axis("lr", (0.01, 10.0))
    run = run_network_grid(_network(), "sgd", (lr,), steps=3)
    assert run.metrics["diverged"].tolist() == [0, 1] and run.metrics["diverged_at"][1] == -1
    titles = [ax.get_title() for ax in plot_loss_curves(run, fig=Figure()).axes]
    assert "diverged" not in titles[0] and "diverged" in titles[1]  # grew, finite
    net = _network()
    nan = Network.of(_NaNOut(), [(net.x, net.y)], net.loss_fn)
    gone = run_network_grid(nan, "sgd", (lr,), steps=3)
    fig = plot_loss_curves(gone, fig=Figure(), log=True)
    _drawn(fig)  # all-NaN panels on a log scale raised before
    assert all("diverged at step 1" in ax.get_title() for ax in fig.axes)
