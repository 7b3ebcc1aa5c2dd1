"""Panel figures keep their parts apart: captions, legends, markers and colorbars are checked
on the artists' window extents after a draw, not on pixels."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import ARTICLE_LOSSES, LossSpec
from gdscope.problem.maps import Grid, gradient_field, loss_map
from gdscope.problem.testfunctions import TestFunction
from gdscope.render import overlays
from gdscope.render.panels import (
    panel_legend,
    plot_data,
    plot_descent,
    plot_fit,
    plot_landscape,
    plot_panels,
    plot_path,
    visible_path,
    wrap_caption,
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


@pytest.mark.parametrize("kind", ["heatmap", "contour"])
def test_a_partly_nan_map_marks_its_finite_minimum_and_an_all_nan_one_none(article_data, kind):
    from gdscope.problem.maps import Landscape

    landscape = loss_map(article_data, LossSpec("mse"), SMALL)
    values = landscape.values.clone()
    values[:3] = torch.nan  # the first rows overflowed
    partly = Landscape(SMALL, values, landscape.loss)
    drawn = plot_landscape(partly, ax=plt.figure().gca(), kind=kind)
    i, j = np.unravel_index(np.nanargmin(values.numpy()), values.shape)
    assert marker_xy(drawn.minimum) == (SMALL.biases[j], SMALL.weights[i])
    ax = plt.figure().gca()
    blank = plot_landscape(Landscape(SMALL, values * torch.nan, landscape.loss), ax=ax, kind=kind)
    assert blank.minimum is None and blank.colorbar is None  # no made-up 0–1 scale
    assert [t.get_text() for t in ax.texts] == ["no finite value"]


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
    # wd/2 is worked out (weight decay 2: 1·(w²+b²)), not written as "2/2".
    assert shown.landscape.colorbar.ax.get_ylabel() == "loss + 1·(w²+b²)"
    assert drawn.effective_minimum.get_label() == "minimum of loss + 1·(w²+b²)"


@pytest.mark.parametrize("decay", [0.0, 2.0])
def test_the_end_star_is_drawn_above_the_minima_it_lands_on(article_data, decay):
    landscape = loss_map(article_data, LossSpec("mse"), SMALL)
    run = train(article_data, sgd=SGDConfig(lr=0.1, weight_decay=decay), epochs=100)
    drawn = plot_descent(landscape, run, ax=Figure().subplots())
    assert drawn.path.end.get_label() == "end"
    end = drawn.path.end
    assert end.get_zorder() > drawn.loss_minimum.get_zorder()
    if decay:  # the objective's minimum, where the run ends, drawn small on top of the star
        on_end = drawn.effective_minimum
        assert on_end.get_zorder() > end.get_zorder()
        assert on_end.get_markersize() < end.get_markersize() * 0.6
    assert drawn.path.start.get_zorder() > end.get_zorder()
    # The --data plot's and small multiples' way: a map that marks its own minimum, then a path.
    ax = Figure().subplots()
    alone = plot_landscape(landscape, ax=ax)
    path = plot_path(run, ax=ax, grid=landscape.grid)
    assert alone.minimum is not None and path.end.get_zorder() > alone.minimum.get_zorder()


def test_a_minimum_on_the_maps_edge_is_drawn_whole_and_named_for_what_it_is(article_data):
    # A map whose lowest point lies on its left border: the loss goes on falling beyond it.
    grid = Grid(w_range=(0.0, 2.0), b_range=(-5.0, -3.0), w_size=11, b_size=11)
    landscape = loss_map(article_data, LossSpec("mse"), grid)
    w, b, _ = landscape.argmin()
    assert b == grid.b_range[1] or w in grid.w_range  # the test's premise
    minimum = plot_landscape(landscape, ax=Figure().subplots()).minimum
    assert minimum is not None and not minimum.get_clip_on()
    assert minimum.get_label() == "lowest loss on the map (at its edge)"
    inside = plot_landscape(loss_map(article_data, LossSpec("mse"), SMALL),
                            ax=Figure().subplots()).minimum  # fmt: skip
    assert inside is not None and inside.get_clip_on() and inside.get_label() == "loss minimum"


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
    texts += [legend.get_title().get_text() for legend in panels.figure.legends]  # the notes
    assert any("identical" in t for t in texts)


def test_distinct_huber_and_smoothl1_get_no_note(article_data):
    losses = [LossSpec("huber", delta=2.0), LossSpec("smoothl1", beta=1.0)]
    landscapes = [loss_map(article_data, loss, SMALL) for loss in losses]
    runs = [train(article_data, loss=loss, epochs=5) for loss in losses]
    panels = plot_panels(landscapes, runs, fig=Figure())
    assert panels.notes == []
    assert not np.array_equal(landscapes[0].values.numpy(), landscapes[1].values.numpy())


README = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"  # the snippet's page


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def _figure(**kwargs):
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # a canvas with a renderer, as savefig would use
    return fig


def test_wrap_caption_breaks_only_at_separators_outside_points():
    text = "SGD(lr=0.05), batch 10 (shuffle seed 1), 5 epochs, start (w=6, b=-3)"
    for width in range(10, 70):
        lines = wrap_caption(text, width).split("\n")
        assert " ".join(lines) == text
        assert all(line.count("(") == line.count(")") for line in lines), lines


def test_minibatch_caption_keeps_the_start_whole(article_data):
    run = train(article_data, loss=LossSpec("mse"), sgd=SGDConfig(lr=0.05), epochs=5,
                batch_size=10, shuffle_seed=1)  # fmt: skip
    landscape = loss_map(article_data, LossSpec("mse"), Grid())
    drawn = plot_panels([landscape], [run], fig=Figure())
    assert "start (w=6, b=-3)" in drawn.figure.get_suptitle()
    assert "\n" in drawn.figure.get_suptitle()  # it is wrapped, at a separator


def _functions_figure():
    functions = [TestFunction("himmelblau"), TestFunction("rosenbrock")]
    landscapes = [loss_map(None, f, f.default_grid(41)) for f in functions]
    runs = [train(None, loss=f, optimizer=OptimizerSpec.of("sgd", lr=1e-3, momentum=0.8),
                  epochs=20) for f in functions]  # fmt: skip
    drawn = plot_panels(landscapes, runs, fig=_figure(), kind="contour", log=True)
    for ax, landscape in zip(drawn.axes, landscapes, strict=True):
        points, grads, _ = gradient_field(None, landscape.loss, landscape.grid)
        overlays.plot_gradient_field(points, grads, ax=ax, grid=landscape.grid)
        ax.legend()  # a panel legend that panel_legend must take away
    panel_legend(drawn.figure, drawn.axes)
    return drawn


def test_function_panels_share_one_legend_entry_per_meaning_outside_the_maps():
    drawn = _functions_figure()
    fig = drawn.figure
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == len(set(labels))
    assert [label for label in labels if label.startswith("known")] == ["known minimum"]
    assert "−gradient" in labels
    assert all(ax.get_legend() is None for ax in drawn.axes)
    # The white arrows' key shows against the legend's background.
    key = legend.legend_handles[labels.index("−gradient")]
    assert to_rgb(key.get_facecolor()) != to_rgb(legend.get_frame().get_facecolor())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = _extent(legend, renderer)
    assert box.y1 <= fig.bbox.height and box.y0 >= 0
    for ax in drawn.axes:
        assert not box.overlaps(_extent(ax, renderer))
        assert not box.overlaps(_extent(ax.xaxis.label, renderer))


def test_start_is_drawn_above_the_last_point_cross(article_data):
    run = train(article_data, sgd=SGDConfig(lr=2.0))
    landscape = loss_map(article_data, LossSpec("mse"), Grid())
    fig = Figure()
    drawn = plot_descent(landscape, run, ax=fig.subplots())
    assert drawn.path.end.get_label() == "last point on the map"
    assert drawn.path.start.get_xydata().tolist() == drawn.path.end.get_xydata().tolist()
    assert drawn.path.start.get_zorder() > drawn.path.end.get_zorder()


def test_descent_legend_sits_under_the_axis_label(article_data):
    run = train(article_data, sgd=SGDConfig(lr=0.1), epochs=20)
    landscape = loss_map(article_data, LossSpec("mse"), Grid(w_size=21, b_size=21))
    fig = _figure(layout="constrained")
    ax = fig.subplots()
    plot_descent(landscape, run, ax=ax, legend=True)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = _extent(ax.get_legend(), renderer)
    assert not box.overlaps(_extent(ax, renderer))
    assert not box.overlaps(_extent(ax.xaxis.label, renderer))
    assert box.y0 >= 0


def test_readme_snippet_keeps_its_colorbar_labels_inside_the_figure(tmp_path):
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
               if "legend=True" in block]  # fmt: skip
    backend = matplotlib.get_backend()
    plt.switch_backend("agg")
    try:
        scope: dict = {}
        exec(compile(code, README.name, "exec"), scope)  # the documentation's own code
        fig = scope["fig"]
        fig.savefig(tmp_path / "snippet.png", bbox_inches=None)
        renderer = fig.canvas.get_renderer()
        bar = fig.axes[-1]
        assert bar.yaxis.label.get_text()
        box = bar.get_tightbbox(renderer)  # the drawn tick labels and the colorbar's label
        assert box.x1 <= fig.bbox.x1 and box.y0 >= 0 and box.y1 <= fig.bbox.y1
        plt.close(fig)
    finally:
        plt.switch_backend(backend)


def test_identical_panels_note_clears_the_legend_entries_and_the_maps(article_data):
    losses = [LossSpec("huber"), LossSpec("smoothl1")]
    landscapes = [loss_map(article_data, loss, Grid(w_size=21, b_size=21)) for loss in losses]
    runs = [train(article_data, loss=loss, epochs=5) for loss in losses]
    drawn = plot_panels(landscapes, runs, fig=_figure())
    assert drawn.notes
    drawn.figure.canvas.draw()
    renderer = drawn.figure.canvas.get_renderer()
    (legend,) = drawn.figure.legends
    note = _extent(legend.get_title(), renderer)
    assert legend.get_title().get_text() == "\n".join(drawn.notes)
    assert note.x0 >= 0 and note.x1 <= drawn.figure.bbox.x1 and note.y0 >= 0
    for text in legend.get_texts():
        assert not note.overlaps(_extent(text, renderer))
    for ax in drawn.axes:
        assert not note.overlaps(_extent(ax, renderer))
        assert not note.overlaps(_extent(ax.xaxis.label, renderer))
