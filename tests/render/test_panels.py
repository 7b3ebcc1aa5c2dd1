"""Panel figures keep their parts apart: captions, legends, markers and colorbars are checked
on the artists' window extents after a draw, not on pixels."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from gdscope.engines.reference import train
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, gradient_field, loss_map
from gdscope.problem.testfunctions import TestFunction
from gdscope.render import overlays
from gdscope.render.panels import panel_legend, plot_descent, plot_panels, wrap_caption

README = Path(__file__).resolve().parents[2] / "README.md"


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def _figure(**kwargs):
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # a canvas with a renderer, as savefig would use
    return fig


def test_wrap_caption_breaks_only_at_separators_outside_points():
    text = "SGD(lr=0.05), batch 10 (shuffle seed 1), 5 epochs, start (6, -3)"
    for width in range(10, 70):
        lines = wrap_caption(text, width).split("\n")
        assert " ".join(lines) == text
        assert all(line.count("(") == line.count(")") for line in lines), lines


def test_minibatch_caption_keeps_the_start_whole(article_data):
    run = train(article_data, loss=LossSpec("mse"), sgd=SGDConfig(lr=0.05), epochs=5,
                batch_size=10, shuffle_seed=1)  # fmt: skip
    landscape = loss_map(article_data, LossSpec("mse"), Grid())
    drawn = plot_panels([landscape], [run], fig=Figure())
    assert "start (6, -3)" in drawn.figure.get_suptitle()
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
        exec(compile(code, "README.md", "exec"), scope)  # the README's own code
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
