from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.problem.losses import ARTICLE_LOSSES, LossSpec
from gdscope.problem.maps import Grid, loss_map
from gdscope.render.panels import (
    plot_data,
    plot_descent,
    plot_fit,
    plot_landscape,
    plot_panels,
    plot_path,
    visible_path,
)

from ..reference import SMALL


def marker_xy(line):
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


def test_plot_data_returns_the_points(article_data):
    _fig, ax = plt.subplots()
    points = plot_data(article_data, ax=ax)
    np.testing.assert_array_equal(points.get_offsets(), np.c_[article_data.x, article_data.y])


def test_plot_fit_draws_the_final_line(article_data):
    run = train(article_data)
    line = plot_fit(article_data, run, ax=plt.gca())
    w, b = run.final
    xs = line.get_xdata()
    assert xs[0] == pytest.approx(article_data.x.min()) and xs[-1] == pytest.approx(
        article_data.x.max()
    )
    np.testing.assert_allclose(line.get_ydata(), w * xs + b)


def test_landscape_image_is_pixel_centred_with_bias_on_x(article_data):
    landscape = loss_map(article_data, LossSpec("mse"), SMALL)
    _fig, ax = plt.subplots()
    drawn = plot_landscape(landscape, ax=ax)
    np.testing.assert_array_equal(drawn.image.get_array(), landscape.values.numpy())
    assert drawn.image.get_extent() == pytest.approx(list(SMALL.extent))
    assert drawn.image.origin == "lower"
    assert ax.get_xlabel() == "Bias" and ax.get_ylabel() == "Weight"
    assert ax.get_aspect() == 1.0
    assert drawn.colorbar is not None and drawn.image.get_cmap().name == "terrain"
    w, b, _ = landscape.argmin()
    assert marker_xy(drawn.minimum) == (b, w)


def test_log_colour_scale(article_data):
    landscape = loss_map(article_data, LossSpec("l1"), SMALL)
    drawn = plot_landscape(landscape, ax=plt.gca(), log=True)
    assert isinstance(drawn.image.norm, LogNorm)
    assert drawn.image.norm.vmin == pytest.approx(float(landscape.values.min()))


def test_path_markers(article_data):
    run = train(article_data, sgd=SGDConfig(momentum=0.9))
    drawn = plot_path(run, ax=plt.gca(), grid=Grid())
    np.testing.assert_array_equal(drawn.line.get_xdata(), run.biases)
    np.testing.assert_array_equal(drawn.line.get_ydata(), run.weights)
    assert marker_xy(drawn.start) == (6.0 * 0 - 3.0, 6.0)
    assert marker_xy(drawn.end) == (run.final[1], run.final[0])
    assert drawn.note is None


def test_diverged_path_is_cut_at_the_map_edge_and_labelled(article_data):
    run = train(article_data, sgd=SGDConfig(lr=2.0))
    grid = Grid()
    w, _b, left_at = visible_path(run, grid)
    assert left_at is not None and len(w) == left_at + 1
    fig, ax = plt.subplots()
    drawn = plot_path(run, ax=ax, grid=grid)
    assert f"diverged at step {run.diverged_at}" in drawn.note.get_text()
    assert f"left the map at step {left_at}" in drawn.note.get_text()
    assert np.isfinite(drawn.line.get_xydata()).all()
    fig.canvas.draw()  # renders without error


def test_far_away_points_are_clipped_to_a_bounded_border(article_data):
    run = train(article_data, sgd=SGDConfig(lr=1.5), epochs=60)
    w, b, _ = visible_path(run, Grid())
    assert np.abs(w).max() < 1e3 and np.abs(b).max() < 1e3


def test_weight_decay_marks_both_minima(article_data):
    landscape = loss_map(article_data, LossSpec("mse"), SMALL)
    run = train(article_data, sgd=SGDConfig(weight_decay=2.0), epochs=50)
    _fig, ax = plt.subplots()
    drawn = plot_descent(landscape, run, ax=ax)
    w, b = np.meshgrid(SMALL.weights, SMALL.biases, indexing="ij")
    objective = landscape.values.numpy() + 1.0 * (w**2 + b**2)
    i, j = np.unravel_index(np.argmin(objective), objective.shape)
    assert marker_xy(drawn.effective_minimum) == (SMALL.biases[j], SMALL.weights[i])
    lw, lb, _ = landscape.argmin()
    assert marker_xy(drawn.loss_minimum) == (lb, lw)
    assert drawn.loss_minimum.get_xydata().tolist() != drawn.effective_minimum.get_xydata().tolist()
    # The map itself is the plain loss unless asked otherwise...
    np.testing.assert_array_equal(drawn.landscape.image.get_array(), landscape.values.numpy())
    # ...and the effective objective with effective=True.
    _fig, ax = plt.subplots()
    shown = plot_descent(landscape, run, ax=ax, effective=True)
    np.testing.assert_allclose(shown.landscape.image.get_array(), objective, rtol=1e-6)
    assert "w²+b²" in shown.landscape.colorbar.ax.get_ylabel()


def test_no_effective_minimum_without_weight_decay(article_data):
    landscape = loss_map(article_data, LossSpec("mse"), SMALL)
    drawn = plot_descent(landscape, train(article_data, epochs=5), ax=plt.gca())
    assert drawn.effective_minimum is None


def test_panels_have_one_colorbar_each_and_note_identical_losses(article_data):
    landscapes = [loss_map(article_data, loss, SMALL) for loss in ARTICLE_LOSSES]
    runs = [train(article_data, loss=loss, epochs=10) for loss in ARTICLE_LOSSES]
    panels = plot_panels(landscapes, runs, fig=Figure())
    assert len(panels.axes) == 4
    bars = [p.landscape.colorbar for p in panels.panels]
    assert len({id(bar) for bar in bars}) == 4
    ranges = {(bar.mappable.norm.vmin, bar.mappable.norm.vmax) for bar in bars}
    assert len(ranges) == 3  # Huber(1) and SmoothL1(1) share values; MSE and L1 differ
    assert [ax.get_title() for ax in panels.axes] == [loss.title for loss in ARTICLE_LOSSES]
    assert len(panels.notes) == 1 and "identical" in panels.notes[0]
    texts = [t.get_text() for t in panels.figure.texts]
    assert any("identical" in t for t in texts)


def test_distinct_huber_and_smoothl1_get_no_note(article_data):
    losses = [LossSpec("huber", delta=2.0), LossSpec("smoothl1", beta=1.0)]
    landscapes = [loss_map(article_data, loss, SMALL) for loss in losses]
    runs = [train(article_data, loss=loss, epochs=5) for loss in losses]
    panels = plot_panels(landscapes, runs, fig=Figure())
    assert panels.notes == []
    assert not np.array_equal(landscapes[0].values.numpy(), landscapes[1].values.numpy())
