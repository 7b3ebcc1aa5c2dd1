"""Study charts name their axes after the objective, not after the regression."""

from __future__ import annotations

import itertools

import pytest
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


def _neuron_phase(article_data, lr=(0.01, 0.5, 1.5, 3.0), momentum=(0.0, 0.5, 0.9)):
    from gdscope.studies.phase import analytic_stable, phase_diagram
    from gdscope.studies.sweep import Axis

    run = phase_diagram(article_data, x=Axis("lr", lr, log=True),
                        y=Axis("momentum", momentum), epochs=20)  # fmt: skip
    return run, analytic_stable(run, article_data)


def _legend_texts(ax):
    legend = ax.get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def test_phase_colour_bars_are_labelled_and_a_yes_no_bar_says_did_not_diverge(article_data):
    from gdscope.render.studycharts import plot_phase

    run, stable = _neuron_phase(article_data)
    fig = Figure()
    plot_phase(run, "final_loss", ax=fig.subplots(), stable=stable)
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "final loss (log); grey: diverged"
    fig = Figure()
    plot_phase(run, "diverged", ax=fig.subplots(), stable=stable)
    ticks = [text.get_text() for text in fig.axes[-1].get_yticklabels()]
    assert ticks == ["did not diverge", "diverged"]  # not "converged": it may not have


def test_the_phase_legend_sits_under_the_diagram_not_on_its_border(article_data):
    from gdscope.render.studycharts import ANALYTIC_BORDER, plot_phase

    run, stable = _neuron_phase(article_data)
    fig = Figure(figsize=(8, 6.5))
    ax = fig.subplots()
    drawn = plot_phase(run, "diverged", ax=ax, stable=stable, mark=(0.5, 0.5))
    fig.tight_layout()
    renderer = _renderer(fig)
    assert drawn.border is not None
    assert _legend_texts(ax) == [ANALYTIC_BORDER, "lr=0.5, momentum=0.5"]
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))  # covers no cell
    assert not legend.overlaps(ax.xaxis.label.get_window_extent(renderer))
    assert legend.y0 >= 0  # inside the figure


def test_an_interrupted_phase_diagram_draws_and_lists_no_border_it_did_not_reach(article_data):
    import dataclasses

    import numpy as np

    from gdscope.render.studycharts import ANALYTIC_BORDER, plot_phase

    run, stable = _neuron_phase(article_data)
    columns = stable.all(axis=0)  # the lr columns stable at every momentum
    assert columns.any() and not columns.all()  # the border runs through the grid
    done = np.broadcast_to(columns, run.shape).ravel().copy()  # only those columns finished
    cut = dataclasses.replace(run, completed=done, interrupted=True)
    fig = Figure()
    ax = fig.subplots()
    drawn = plot_phase(cut, "diverged", ax=ax, stable=stable)
    assert drawn.border is None and ANALYTIC_BORDER not in _legend_texts(ax)
    fig = Figure()
    plot_phase(cut, "final_loss", ax=fig.subplots(), stable=stable)
    assert fig.axes[-1].get_ylabel() == "final loss (log)"  # its unrun cells did not diverge
    ax = Figure().subplots()
    whole = plot_phase(run, "diverged", ax=ax, stable=stable)
    assert whole.border is not None and ANALYTIC_BORDER in _legend_texts(ax)


def test_a_phase_star_outside_the_diagram_is_said_not_drawn(article_data):
    from gdscope.render.studycharts import plot_phase

    run, stable = _neuron_phase(article_data)
    ax = Figure().subplots()
    limits = None
    drawn = plot_phase(run, "diverged", ax=ax, stable=stable, mark=(50.0, 0.5))
    limits = ax.get_xlim()
    assert drawn.marker is None
    assert "★ lr=50, momentum=0.5 lies outside this diagram" in ax.get_title()
    assert limits[1] < 50  # the axes were not stretched to it
    inside = plot_phase(run, "diverged", ax=Figure().subplots(), mark=(1.5, 0.5))
    assert inside.marker is not None and inside.marker.get_label() == "lr=1.5, momentum=0.5"


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_network_sweep_panels_name_their_axes_and_clip_spikes():
    import dataclasses

    import numpy as np

    from gdscope.render.studycharts import clip_spikes, plot_loss_curves
    from gdscope.studies.netstudy import run_network_grid
    from gdscope.studies.sweep import Axis

    from ..studies.test_netstudy import _network

    run = run_network_grid(_network(), "sgd", (Axis("lr", (0.01, 0.02)),), steps=20)
    losses = run.losses.copy()
    losses[0, 5] = 1e3 * float(np.nanmax(losses[0]))  # a spike
    spiky = dataclasses.replace(run, losses=losses)
    fig = plot_loss_curves(spiky, fig=Figure())
    for ax in fig.axes:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "mini-batch loss")
    first, second = fig.axes
    assert first.get_ylim()[1] < 1e3 * float(np.nanmax(run.losses[0])) / 10
    assert any(text.get_text().startswith("clipped: spikes up to") for text in first.texts)
    assert not second.texts  # a smooth curve is shown whole
    assert clip_spikes(Figure().subplots(), run.losses[1]) is None
    logged = plot_loss_curves(spiky, fig=Figure(), log=True)
    assert all(ax.get_yscale() == "log" and not ax.texts for ax in logged.axes)


def test_the_shootout_table_fills_its_axes_with_no_blank_band(article_data):
    from gdscope.render.studycharts import TABLE_ROW, plot_shootout
    from gdscope.studies.shootout import compare
    from gdscope.studies.sweep import Axis

    result = compare(article_data, ["sgd", "adam"], budget=5, starts=2,
                     lr=Axis("lr", (0.01, 0.1)))  # fmt: skip
    landscape = loss_map(article_data, LossSpec("mse"), LossSpec("mse").default_grid(21))
    fig = plot_shootout(landscape, result, fig=Figure())
    renderer = _renderer(fig)
    (table_ax,) = [ax for ax in fig.axes if ax.tables]
    (table,) = table_ax.tables
    box, axes_box = table.get_window_extent(renderer), table_ax.get_window_extent(renderer)
    assert abs(box.y0 - axes_box.y0) < 2 and abs(box.y1 - axes_box.y1) < 2
    # As tall as its rows: header and one row per optimizer.
    assert axes_box.height / fig.dpi == pytest.approx(TABLE_ROW * 3, rel=0.25)
    map_ax = fig.axes[0]
    for label in (map_ax.yaxis.label, map_ax.xaxis.label, map_ax.title):  # all inside the figure
        box = label.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
